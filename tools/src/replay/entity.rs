//! Entity paths of a nines replay. The transform hierarchy follows the
//! frames: `world` is the map, `world/ego` is base_link, and the camera sits
//! under the ego with its mounting and pinhole model, so 3D data projects
//! into its image.

/// The map frame (z up).
pub const WORLD: &str = "world";
/// The ego (base_link): its pose over time.
pub const EGO: &str = "world/ego";
/// The ego's body box.
pub const EGO_BODY: &str = "world/ego/body";
/// The front camera: mounting and pinhole model.
pub const CAMERA: &str = "world/ego/camera";
/// The front camera image.
pub const CAMERA_IMAGE: &str = "world/ego/camera/image";
/// Lidar points projected into the camera image, coloured by depth.
pub const CAMERA_LIDAR: &str = "world/ego/camera/lidar_depth";
/// Annotated 2D boxes on the camera image (imported datasets).
pub const CAMERA_ANNOTATIONS: &str = "world/ego/camera/annotations";
/// Lidar points in 3D, de-skewed into the map frame.
pub const LIDAR: &str = "world/lidar";
/// The whole driven path.
pub const DRIVEN_PATH: &str = "world/driven_path";
/// The path the ego drives in the next seconds, in base_link (what a plan label is).
pub const PATH_AHEAD: &str = "world/ego/path_ahead";
/// Where events happened.
pub const EVENT_MARKERS: &str = "world/events";
/// Simulator ground-truth boxes.
pub const GROUND_TRUTH: &str = "world/ground_truth";
/// Annotated 3D boxes (imported datasets).
pub const ANNOTATIONS: &str = "world/annotations";
/// The plan the onboard network predicted.
pub const MODEL_PLAN: &str = "world/ego/model/plan";
/// The lead obstacle the onboard network predicted.
pub const MODEL_LEAD: &str = "world/ego/model/lead";
/// The depth the onboard network predicted.
pub const MODEL_DEPTH: &str = "model/depth";
/// Events as log lines.
pub const EVENTS: &str = "events";
/// Non-OK runtime diagnostics as log lines.
pub const DIAGNOSTICS: &str = "diagnostics";
/// Steering angle plots (rad).
pub const STEERING: &str = "plots/steering";
/// Speed plots (m/s).
pub const SPEED: &str = "plots/speed";
/// Acceleration plots (m/s^2).
pub const ACCELERATION: &str = "plots/acceleration";
/// Yaw rate plot (rad/s).
pub const YAW_RATE: &str = "plots/yaw_rate";
/// Lead obstacle plots (probability, distance).
pub const LEAD: &str = "plots/lead";
/// Who drove (0 human, 1 model, 2 safety driver) and the injected steering offset.
pub const CONTROL: &str = "plots/control";
/// Where the car is against its lane centre (simulator ground truth): lateral offset (m), heading error (deg).
pub const LANE: &str = "plots/lane";
/// Onboard network latency plot (ms).
pub const LATENCY: &str = "plots/latency_ms";
