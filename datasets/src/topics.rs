//! The topic names of a nines drive (DESIGN.md section 2).

/// Front camera, JPEG or PNG.
pub const CAMERA_COMPRESSED: &str = "/camera/front/image/compressed";
/// Front camera, raw pixels (accepted as an alternative to compressed).
pub const CAMERA_RAW: &str = "/camera/front/image";
/// Front camera calibration.
pub const CAMERA_INFO: &str = "/camera/front/camera_info";
/// Top lidar sweeps.
pub const LIDAR: &str = "/lidar/top/points";
/// Dynamic transforms (map -> base_link).
pub const TF: &str = "/tf";
/// Static transforms (base_link -> sensors), transient_local.
pub const TF_STATIC: &str = "/tf_static";
/// Ego odometry.
pub const ODOMETRY: &str = "/vehicle/odometry";
/// Whoever drove: human, expert or model.
pub const COMMAND: &str = "/control/command";
/// Runtime health.
pub const DIAGNOSTICS: &str = "/diagnostics";
/// Failures and interventions.
pub const EVENTS: &str = "/nines/events";
/// Onboard network output.
pub const MODEL_OUTPUT: &str = "/nines/model_output";
/// Annotated boxes of imported datasets.
pub const ANNOTATIONS: &str = "/annotations/objects";

/// Frame names (REP 103/105).
pub mod frames {
    /// World frame of the ego pose.
    pub const MAP: &str = "map";
    /// Vehicle body: x forward, y left, z up, on the ground below the rear axle or sensor.
    pub const BASE_LINK: &str = "base_link";
    /// Front camera optical frame: x right, y down, z forward.
    pub const CAMERA_FRONT: &str = "camera_front_optical";
    /// Top lidar.
    pub const LIDAR_TOP: &str = "lidar_top";
}
