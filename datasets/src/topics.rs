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
/// Who was in control at each control period, and any injected disturbance
/// (nines_msgs/ControlSource).
pub const CONTROL_SOURCE: &str = "/nines/control_source";
/// Re-engagement requests to the runtime after a controlled stop
/// (std_msgs/Empty; honoured after enough good frames).
pub const ENGAGE: &str = "/nines/engage";
/// Onboard network output.
pub const MODEL_OUTPUT: &str = "/nines/model_output";
/// Depth the onboard network predicted (sensor_msgs/Image 32FC1, camera z in m,
/// at the model's label resolution).
pub const MODEL_DEPTH: &str = "/nines/model_output/depth";
/// Annotated boxes of imported datasets.
pub const ANNOTATIONS: &str = "/annotations/objects";
/// Simulator ground-truth depth image of the front camera (32FC1, camera z in m).
/// Ground truth is for evaluation, never a training label.
pub const GT_DEPTH: &str = "/sim/ground_truth/depth";
/// Simulator ground-truth boxes of every actor (map frame).
pub const GT_OBJECTS: &str = "/sim/ground_truth/objects";
/// What the simulator's expert would have commanded (shadow driver).
pub const GT_EXPERT_COMMAND: &str = "/sim/ground_truth/expert_command";
/// Where the ego is against its lane centre (nines_msgs/LaneState), at the
/// control rate: for recovery-state statistics, never a label.
pub const GT_LANE: &str = "/sim/ground_truth/lane";

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
