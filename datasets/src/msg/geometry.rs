//! `geometry_msgs`, `tf2_msgs`, `nav_msgs` and `ackermann_msgs`: poses,
//! transforms, odometry and drive commands.

use serde::{Deserialize, Serialize};
use serde_big_array::BigArray;

use super::Header;

/// `geometry_msgs/Vector3`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Vector3 {
    /// x.
    pub x: f64,
    /// y.
    pub y: f64,
    /// z.
    pub z: f64,
}

/// `geometry_msgs/Point`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Point {
    /// x.
    pub x: f64,
    /// y.
    pub y: f64,
    /// z.
    pub z: f64,
}

/// `geometry_msgs/Quaternion` (x, y, z, w order on the wire).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Quaternion {
    /// i component.
    pub x: f64,
    /// j component.
    pub y: f64,
    /// k component.
    pub z: f64,
    /// Real component.
    pub w: f64,
}

impl Default for Quaternion {
    fn default() -> Self {
        Self { x: 0.0, y: 0.0, z: 0.0, w: 1.0 }
    }
}

/// `geometry_msgs/Pose`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Pose {
    /// Position, metres.
    pub position: Point,
    /// Orientation.
    pub orientation: Quaternion,
}

/// `geometry_msgs/Transform`: maps child-frame coordinates into the parent frame.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Transform {
    /// Translation, metres.
    pub translation: Vector3,
    /// Rotation.
    pub rotation: Quaternion,
}

/// `geometry_msgs/TransformStamped`: `header.frame_id` <- `child_frame_id`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TransformStamped {
    /// Time and parent frame.
    pub header: Header,
    /// Child frame.
    pub child_frame_id: String,
    /// parent_from_child.
    pub transform: Transform,
}

/// `tf2_msgs/TFMessage`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TfMessage {
    /// Transforms.
    pub transforms: Vec<TransformStamped>,
}

/// `geometry_msgs/PoseWithCovariance` (covariance row-major 6x6: x y z rx ry rz).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct PoseWithCovariance {
    /// Pose.
    pub pose: Pose,
    /// Covariance.
    #[serde(with = "BigArray")]
    pub covariance: [f64; 36],
}

/// `geometry_msgs/Twist`: linear (m/s) and angular (rad/s) velocity.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Twist {
    /// Linear velocity, m/s.
    pub linear: Vector3,
    /// Angular velocity, rad/s.
    pub angular: Vector3,
}

/// `geometry_msgs/TwistWithCovariance`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct TwistWithCovariance {
    /// Twist.
    pub twist: Twist,
    /// Covariance.
    #[serde(with = "BigArray")]
    pub covariance: [f64; 36],
}

impl Default for PoseWithCovariance {
    fn default() -> Self {
        Self { pose: Pose::default(), covariance: [0.0; 36] }
    }
}

impl Default for TwistWithCovariance {
    fn default() -> Self {
        Self { twist: Twist::default(), covariance: [0.0; 36] }
    }
}

/// `nav_msgs/Odometry`: pose in `header.frame_id`, twist in `child_frame_id`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Odometry {
    /// Time and pose frame (nines: `map`).
    pub header: Header,
    /// Body frame of the twist (nines: `base_link`).
    pub child_frame_id: String,
    /// Pose of the body.
    pub pose: PoseWithCovariance,
    /// Velocity of the body, in the body frame.
    pub twist: TwistWithCovariance,
}

/// `ackermann_msgs/AckermannDrive`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct AckermannDrive {
    /// Front-wheel angle, rad, positive left.
    pub steering_angle: f32,
    /// Steering rate, rad/s (0 = as fast as possible).
    pub steering_angle_velocity: f32,
    /// Speed, m/s.
    pub speed: f32,
    /// Acceleration, m/s^2.
    pub acceleration: f32,
    /// Jerk, m/s^3.
    pub jerk: f32,
}

/// `ackermann_msgs/AckermannDriveStamped`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AckermannDriveStamped {
    /// Time and frame (`base_link`).
    pub header: Header,
    /// Command.
    pub drive: AckermannDrive,
}
