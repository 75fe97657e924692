//! ROS 2 message types (Rust structs whose fields carry the ROS names, so
//! serde's view of them is the ROS view) and their `ros2msg` schemas.

mod builtin;
mod diagnostic;
mod geometry;
mod nines;
mod schema;
mod sensor;
mod type_hash;

pub use builtin::{Empty, Header, Time};
pub use diagnostic::{DiagnosticArray, DiagnosticStatus, KeyValue};
pub use geometry::{
    AckermannDrive, AckermannDriveStamped, Odometry, Point, Pose, PoseWithCovariance, Quaternion, TfMessage,
    Transform, TransformStamped, Twist, TwistWithCovariance, Vector3,
};
pub use nines::{ControlSource, Controller, Event, EventKind, LaneState, ModelOutput, Object, ObjectArray};
pub use schema::{KNOWN_TYPES, schema_text};
pub use sensor::{CameraInfo, CompressedImage, Image, PointCloud2, PointField, RegionOfInterest};
pub use type_hash::type_hash;

use serde::{Serialize, de::DeserializeOwned};

/// A ROS 2 message nines can put in a drive log.
pub trait RosMessage: Serialize + DeserializeOwned {
    /// Full ROS 2 type name as MCAP's `ros2msg` profile wants it, e.g.
    /// `sensor_msgs/msg/Image`.
    const TYPE_NAME: &'static str;
}

/// Messages whose first field is a `std_msgs/Header`; the header can be read
/// without decoding the (possibly megabytes of) body.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct HeaderPrefix {
    /// The message's header.
    pub header: Header,
}

macro_rules! ros_message {
    ($($ty:ty => $name:literal),* $(,)?) => {
        $(impl RosMessage for $ty { const TYPE_NAME: &'static str = $name; })*
    };
}

ros_message! {
    CompressedImage => "sensor_msgs/msg/CompressedImage",
    Image => "sensor_msgs/msg/Image",
    CameraInfo => "sensor_msgs/msg/CameraInfo",
    PointCloud2 => "sensor_msgs/msg/PointCloud2",
    TfMessage => "tf2_msgs/msg/TFMessage",
    Odometry => "nav_msgs/msg/Odometry",
    AckermannDriveStamped => "ackermann_msgs/msg/AckermannDriveStamped",
    DiagnosticArray => "diagnostic_msgs/msg/DiagnosticArray",
    Event => "nines_msgs/msg/Event",
    ControlSource => "nines_msgs/msg/ControlSource",
    LaneState => "nines_msgs/msg/LaneState",
    ModelOutput => "nines_msgs/msg/ModelOutput",
    ObjectArray => "nines_msgs/msg/ObjectArray",
    Empty => "std_msgs/msg/Empty",
}
