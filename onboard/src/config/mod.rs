//! The vehicle configuration (TOML): the vehicle's geometry and limits, the
//! camera and its calibration, the model and its execution providers, rates,
//! safety thresholds and recording. Every key has a default except the ones
//! only the vehicle can know; unknown keys are refused with the file and the
//! key, so a typo never silently falls back to a default.

mod camera;
mod network;

use std::path::{Path, PathBuf};

use serde::Deserialize;

pub use self::camera::{Calibration, CameraConfig, Mounting};
pub use self::network::{NetworkConfig, TlsConfig};
use crate::{OnboardError, Result};

/// The whole configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Geometry and actuator limits.
    pub vehicle: VehicleConfig,
    /// The camera.
    pub camera: CameraConfig,
    /// The network and how ONNX Runtime runs it.
    pub model: ModelConfig,
    /// Loop rates.
    #[serde(default)]
    pub rates: Rates,
    /// Controller gains.
    #[serde(default)]
    pub controller: ControllerConfig,
    /// Safety monitor thresholds.
    #[serde(default)]
    pub safety: SafetyConfig,
    /// The runtime's own drive log.
    #[serde(default)]
    pub recording: RecordingConfig,
    /// The robot's network (zenoh, as ROS 2's rmw_zenoh speaks it): when
    /// present, a zenoh or live camera source publishes every command,
    /// diagnostic, model output and event on it (a replay only with
    /// `--publish`), and `--source zenoh` reads the camera from it.
    #[serde(default)]
    pub zenoh: Option<NetworkConfig>,
    /// Folder relative paths in the file are resolved against (set on load).
    #[serde(skip)]
    pub base_dir: PathBuf,
}

/// `[vehicle]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VehicleConfig {
    /// Name, for logs and diagnostics.
    #[serde(default = "default_name")]
    pub name: String,
    /// Rear to front axle, m.
    pub wheelbase_m: f64,
    /// Largest front-wheel angle, rad.
    pub max_steer_rad: f64,
    /// Fastest steering the controller commands, rad/s.
    pub max_steer_rate_radps: f64,
    /// Strongest acceleration commanded, m/s^2.
    pub max_accel_mps2: f64,
    /// Strongest braking commanded (positive), m/s^2.
    pub max_decel_mps2: f64,
    /// Largest change of acceleration, m/s^3.
    #[serde(default = "default_jerk")]
    pub max_jerk_mps3: f64,
    /// Fastest the controller ever asks for, m/s.
    #[serde(default = "default_max_speed")]
    pub max_speed_mps: f64,
    /// The shared libraries the robot's system provides, as sonames
    /// ("libz.so.1") or prefixes ending in `_` or `.` ("libopencv_" for
    /// every OpenCV module). When given, `nines bundle` refuses a runtime
    /// that needs a library outside it (glibc's and the C/C++ runtime's
    /// own always count as provided). Not given: not checked, only listed.
    #[serde(default)]
    pub system_libraries: Option<Vec<String>>,
}

/// `[model]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelConfig {
    /// The ONNX file (with the nines contract in its metadata). `--model` overrides it.
    #[serde(default)]
    pub path: Option<PathBuf>,
    /// Execution providers, tried in order; ONNX Runtime's CPU provider is
    /// always the last resort inside the session.
    #[serde(default = "default_providers")]
    pub providers: Vec<Provider>,
    /// Use the CPU when a provider asked for cannot be registered (otherwise
    /// that is an error).
    #[serde(default)]
    pub allow_fallback: bool,
    /// ONNX Runtime intra-op threads (0 = ONNX Runtime's default).
    #[serde(default)]
    pub threads: usize,
    /// The ONNX Runtime library the target provides (JetPack's GPU build,
    /// e.g. /usr/lib/aarch64-linux-gnu/libonnxruntime.so): the runtime loads
    /// it, and `nines bundle` then carries no library of its own.
    #[serde(default)]
    pub onnxruntime: Option<PathBuf>,
}

impl Default for ModelConfig {
    /// The `[model]` of a config that has none: no path, the default
    /// providers, no fallback, ONNX Runtime's own thread count.
    fn default() -> Self {
        Self {
            path: None,
            providers: default_providers(),
            allow_fallback: false,
            threads: 0,
            onnxruntime: None,
        }
    }
}

/// One execution provider and its options.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(tag = "kind", rename_all = "lowercase", deny_unknown_fields)]
pub enum Provider {
    /// NVIDIA TensorRT.
    Tensorrt {
        /// GPU index.
        #[serde(default)]
        device: i32,
        /// Build fp16 engines.
        #[serde(default)]
        fp16: bool,
        /// Folder for built engines (relative to the config file), so start-up
        /// does not rebuild them.
        #[serde(default)]
        engine_cache: Option<PathBuf>,
    },
    /// NVIDIA CUDA.
    Cuda {
        /// GPU index.
        #[serde(default)]
        device: i32,
    },
    /// ONNX Runtime's CPU provider.
    Cpu,
}

impl Provider {
    /// Short name, as logged and reported.
    #[must_use]
    pub fn name(&self) -> &'static str {
        match self {
            Self::Tensorrt { .. } => "tensorrt",
            Self::Cuda { .. } => "cuda",
            Self::Cpu => "cpu",
        }
    }
}

/// `[rates]`.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rates {
    /// Commands per second when no new frame arrives in between, Hz.
    #[serde(default = "default_control_hz")]
    pub control_hz: f64,
    /// Diagnostics per second, Hz.
    #[serde(default = "default_diagnostics_hz")]
    pub diagnostics_hz: f64,
}

/// `[controller]`.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ControllerConfig {
    /// Pure-pursuit lookahead = max(min, time * speed).
    #[serde(default = "default_lookahead_min")]
    pub lookahead_min_m: f64,
    /// Lookahead time, s.
    #[serde(default = "default_lookahead_time")]
    pub lookahead_time_s: f64,
    /// The plan's speed is tracked at this time ahead, s.
    #[serde(default = "default_speed_preview")]
    pub speed_preview_s: f64,
    /// Speed PID gains.
    #[serde(default = "default_kp")]
    pub speed_kp: f64,
    /// Integral gain.
    #[serde(default = "default_ki")]
    pub speed_ki: f64,
    /// Derivative gain.
    #[serde(default)]
    pub speed_kd: f64,
    /// Hardest braking to track the plan's speed, m/s^2: a plan slower than
    /// the car is reached at a comfortable rate.
    #[serde(default = "default_comfort_decel")]
    pub comfort_decel_mps2: f64,
    /// Hardest braking to follow a lead or a depth obstacle, m/s^2 (the
    /// vehicle's `max_decel_mps2` bounds it too). Harder braking is a
    /// failure of its own (`hard_braking`, past 4.05) and hits whoever
    /// follows; the controlled stop brakes at `safety.stop_decel_mps2`.
    #[serde(default = "default_follow_decel")]
    pub follow_decel_mps2: f64,
    /// Lead presence probability above which the lead is followed.
    #[serde(default = "default_lead_threshold")]
    pub lead_probability: f64,
    /// Standstill gap to the lead, m.
    #[serde(default = "default_gap")]
    pub lead_gap_m: f64,
    /// Time headway to the lead, s.
    #[serde(default = "default_headway")]
    pub lead_headway_s: f64,
    /// Also follow the nearest obstacle the depth output shows in the
    /// plan's corridor (`nines_onboard::obstacle`), as a lead.
    #[serde(default = "default_true")]
    pub depth_obstacles: bool,
    /// Lowest height above the ground of a depth obstacle, m.
    #[serde(default = "default_obstacle_height")]
    pub obstacle_height_m: f64,
    /// Half the width of the corridor about the plan where depth obstacles count, m.
    #[serde(default = "default_corridor_half_width")]
    pub corridor_half_width_m: f64,
}

/// `[safety]`.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SafetyConfig {
    /// Newest frame older than this (source clock) is a violation, ms.
    #[serde(default = "default_frame_age")]
    pub max_frame_age_ms: f64,
    /// Preprocess plus inference longer than this is a violation, ms.
    #[serde(default = "default_deadline")]
    pub inference_deadline_ms: f64,
    /// The inference latency lockstep runs (replays, evals, `--lockstep`)
    /// assume instead of reading the wall clock, ms; the deadline check
    /// trips only when it is strictly greater than `inference_deadline_ms`.
    /// Unset: equal to the deadline (never trips). The measured time is
    /// still reported; it just never decides a lockstep run.
    #[serde(default)]
    pub lockstep_latency_ms: Option<f64>,
    /// Largest plausible plan coordinate, m.
    #[serde(default = "default_plan_range")]
    pub max_plan_range_m: f64,
    /// Largest change of the plan's end point between frames beyond what
    /// the ego's own motion explains, m.
    #[serde(default = "default_plan_jump")]
    pub max_plan_jump_m: f64,
    /// Deceleration of the controlled stop, m/s^2.
    #[serde(default = "default_stop_decel")]
    pub stop_decel_mps2: f64,
    /// Good frames in a row before a re-engage request is honoured.
    #[serde(default = "default_good_frames")]
    pub reengage_good_frames: u32,
    /// Request engagement at start-up (a re-engage after a stop always needs a new request).
    #[serde(default = "default_true")]
    pub engage_on_start: bool,
}

/// `[recording]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecordingConfig {
    /// `all` (everything, from start to end), `events` (only the seconds
    /// around each event) or `off`.
    #[serde(default = "default_record_mode")]
    pub mode: RecordMode,
    /// Output file (`--record` overrides it); for `events`, one file per event
    /// next to it with the event's time in the name.
    #[serde(default)]
    pub path: Option<PathBuf>,
    /// Seconds kept before each event.
    #[serde(default = "default_pre")]
    pub pre_trigger_s: f64,
    /// Seconds recorded after each event.
    #[serde(default = "default_post")]
    pub post_trigger_s: f64,
}

/// What the recorder keeps.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum RecordMode {
    /// Everything.
    All,
    /// The seconds around each event.
    Events,
    /// Nothing.
    Off,
}

fn default_name() -> String {
    "vehicle".into()
}
fn default_jerk() -> f64 {
    10.0
}
fn default_max_speed() -> f64 {
    20.0
}
fn default_providers() -> Vec<Provider> {
    vec![Provider::Cpu]
}
fn default_control_hz() -> f64 {
    20.0
}
fn default_diagnostics_hz() -> f64 {
    2.0
}
fn default_lookahead_min() -> f64 {
    4.0
}
fn default_lookahead_time() -> f64 {
    0.8
}
fn default_speed_preview() -> f64 {
    1.0
}
fn default_kp() -> f64 {
    0.8
}
fn default_ki() -> f64 {
    0.1
}
fn default_comfort_decel() -> f64 {
    2.5
}
fn default_follow_decel() -> f64 {
    4.0
}
fn default_obstacle_height() -> f64 {
    0.5
}
fn default_corridor_half_width() -> f64 {
    1.3
}
fn default_lead_threshold() -> f64 {
    0.5
}
fn default_gap() -> f64 {
    4.0
}
fn default_headway() -> f64 {
    1.5
}
fn default_frame_age() -> f64 {
    300.0
}
fn default_deadline() -> f64 {
    80.0
}
fn default_plan_range() -> f64 {
    100.0
}
fn default_plan_jump() -> f64 {
    8.0
}
fn default_stop_decel() -> f64 {
    4.0
}
fn default_good_frames() -> u32 {
    5
}
fn default_true() -> bool {
    true
}
fn default_record_mode() -> RecordMode {
    RecordMode::All
}
fn default_pre() -> f64 {
    10.0
}
fn default_post() -> f64 {
    5.0
}

impl Default for Rates {
    fn default() -> Self {
        Self { control_hz: default_control_hz(), diagnostics_hz: default_diagnostics_hz() }
    }
}

impl Default for ControllerConfig {
    fn default() -> Self {
        Self {
            lookahead_min_m: default_lookahead_min(),
            lookahead_time_s: default_lookahead_time(),
            speed_preview_s: default_speed_preview(),
            speed_kp: default_kp(),
            speed_ki: default_ki(),
            speed_kd: 0.0,
            comfort_decel_mps2: default_comfort_decel(),
            follow_decel_mps2: default_follow_decel(),
            lead_probability: default_lead_threshold(),
            lead_gap_m: default_gap(),
            lead_headway_s: default_headway(),
            depth_obstacles: true,
            obstacle_height_m: default_obstacle_height(),
            corridor_half_width_m: default_corridor_half_width(),
        }
    }
}

impl Default for SafetyConfig {
    fn default() -> Self {
        Self {
            max_frame_age_ms: default_frame_age(),
            inference_deadline_ms: default_deadline(),
            lockstep_latency_ms: None,
            max_plan_range_m: default_plan_range(),
            max_plan_jump_m: default_plan_jump(),
            stop_decel_mps2: default_stop_decel(),
            reengage_good_frames: default_good_frames(),
            engage_on_start: true,
        }
    }
}

impl Default for RecordingConfig {
    fn default() -> Self {
        Self {
            mode: RecordMode::All,
            path: None,
            pre_trigger_s: default_pre(),
            post_trigger_s: default_post(),
        }
    }
}

/// The simulator's car (`configs/vehicle-sim.toml`), built in so replays,
/// evals and benchmarks run from any folder without a config of their own.
pub const BUILT_IN_SIM: &str = include_str!("../../../configs/vehicle-sim.toml");

impl Config {
    /// The config a runtime runs with: `path`, or the built-in simulator car
    /// when `None`; the ONNX Runtime library it names (`model.onnxruntime`),
    /// if any, is registered before any model loads. The robot's binary,
    /// replays, evals and benchmarks all load their config through this.
    pub fn load_for_runtime(path: Option<&Path>) -> Result<Self> {
        let config = match path {
            Some(path) => Self::load(path)?,
            None => Self::parse(BUILT_IN_SIM, Path::new("configs/vehicle-sim.toml (built in)"))?,
        };
        if let Some(lib) = &config.model.onnxruntime {
            crate::ort_env::use_library(&config.resolve(lib));
        }
        Ok(config)
    }

    /// Reads and checks `path`.
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| OnboardError::Config {
            path: path.to_path_buf(),
            detail: format!("cannot read it: {e}"),
        })?;
        let mut config = Self::parse(&text, path)?;
        config.base_dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
        Ok(config)
    }

    /// Parses `text` (named `path` in errors) and checks every value.
    pub fn parse(text: &str, path: &Path) -> Result<Self> {
        let config: Self = toml::from_str(text).map_err(|e| OnboardError::Config {
            path: path.to_path_buf(),
            detail: format!("{}; see configs/vehicle-sim.toml for every key", e.to_string().trim_end()),
        })?;
        config.check(path)?;
        Ok(config)
    }

    fn check(&self, path: &Path) -> Result<()> {
        let bad = |key: &str, fix: &str| OnboardError::Config {
            path: path.to_path_buf(),
            detail: format!("`{key}`: {fix}"),
        };
        let positive = [
            ("vehicle.wheelbase_m", self.vehicle.wheelbase_m),
            ("vehicle.max_steer_rad", self.vehicle.max_steer_rad),
            ("vehicle.max_steer_rate_radps", self.vehicle.max_steer_rate_radps),
            ("vehicle.max_accel_mps2", self.vehicle.max_accel_mps2),
            ("vehicle.max_decel_mps2", self.vehicle.max_decel_mps2),
            ("vehicle.max_jerk_mps3", self.vehicle.max_jerk_mps3),
            ("vehicle.max_speed_mps", self.vehicle.max_speed_mps),
            ("camera.fps", self.camera.fps),
            ("rates.control_hz", self.rates.control_hz),
            ("rates.diagnostics_hz", self.rates.diagnostics_hz),
            ("controller.lookahead_min_m", self.controller.lookahead_min_m),
            ("safety.max_frame_age_ms", self.safety.max_frame_age_ms),
            ("safety.inference_deadline_ms", self.safety.inference_deadline_ms),
            ("safety.max_plan_range_m", self.safety.max_plan_range_m),
            ("safety.max_plan_jump_m", self.safety.max_plan_jump_m),
            ("safety.stop_decel_mps2", self.safety.stop_decel_mps2),
            ("controller.comfort_decel_mps2", self.controller.comfort_decel_mps2),
            ("controller.follow_decel_mps2", self.controller.follow_decel_mps2),
            ("controller.obstacle_height_m", self.controller.obstacle_height_m),
            ("controller.corridor_half_width_m", self.controller.corridor_half_width_m),
        ];
        // Gains, times and gaps that may be 0 but must be finite.
        let non_negative = [
            ("controller.lookahead_time_s", self.controller.lookahead_time_s),
            ("controller.speed_preview_s", self.controller.speed_preview_s),
            ("controller.speed_kp", self.controller.speed_kp),
            ("controller.speed_ki", self.controller.speed_ki),
            ("controller.speed_kd", self.controller.speed_kd),
            ("controller.lead_gap_m", self.controller.lead_gap_m),
            ("controller.lead_headway_s", self.controller.lead_headway_s),
            ("recording.pre_trigger_s", self.recording.pre_trigger_s),
            ("recording.post_trigger_s", self.recording.post_trigger_s),
        ];
        for (key, value) in non_negative {
            if !(value.is_finite() && value >= 0.0) {
                return Err(bad(key, &format!("must be a finite number >= 0, got {value}")));
            }
        }
        if !(0.0..=1.0).contains(&self.controller.lead_probability) {
            return Err(bad(
                "controller.lead_probability",
                &format!("must lie in 0..=1, got {}", self.controller.lead_probability),
            ));
        }
        let optional = [("safety.lockstep_latency_ms", self.safety.lockstep_latency_ms)];
        for (key, value) in
            positive.into_iter().chain(optional.into_iter().filter_map(|(k, v)| Some((k, v?))))
        {
            if !(value.is_finite() && value > 0.0) {
                return Err(bad(key, &format!("must be a positive number, got {value}")));
            }
        }
        if self.safety.stop_decel_mps2 > self.vehicle.max_decel_mps2 {
            return Err(bad(
                "safety.stop_decel_mps2",
                &format!(
                    "{} exceeds vehicle.max_decel_mps2 = {}; the stop cannot brake harder than the vehicle may",
                    self.safety.stop_decel_mps2, self.vehicle.max_decel_mps2
                ),
            ));
        }
        if self.model.providers.is_empty() {
            return Err(bad(
                "model.providers",
                "list at least one provider, e.g. [[model.providers]] kind = \"cpu\"",
            ));
        }
        if let Some(c) = &self.camera.calibration {
            c.camera_model(path)?;
        }
        if let Some(z) = &self.zenoh {
            z.check().map_err(|(key, fix)| bad(&format!("zenoh.{key}"), &fix))?;
        }
        Ok(())
    }

    /// A path from the file, relative to the file's folder.
    #[must_use]
    pub fn resolve(&self, path: &Path) -> PathBuf {
        if path.is_absolute() { path.to_path_buf() } else { self.base_dir.join(path) }
    }

    /// Control period, s.
    #[must_use]
    pub fn control_period_s(&self) -> f64 {
        1.0 / self.rates.control_hz
    }
}

#[cfg(test)]
mod tests {
    use nalgebra::Vector3;

    use super::*;

    fn sim_config() -> Config {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../configs/vehicle-sim.toml");
        Config::load(&path).expect("the shipped config loads")
    }

    #[test]
    fn shipped_config_loads_with_its_values() {
        let c = sim_config();
        assert!((c.vehicle.wheelbase_m - 2.7).abs() < 1e-12);
        assert_eq!(c.model.providers.last(), Some(&Provider::Cpu));
        assert!((c.control_period_s() - 0.05).abs() < 1e-12);
        let cal = c.camera.calibration.as_ref().expect("calibration");
        assert_eq!((cal.width, cal.height), (512, 256));
    }

    #[test]
    fn unknown_keys_and_bad_values_name_the_key_and_the_file() {
        let path = Path::new("vehicle.toml");
        let base = std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../configs/vehicle-sim.toml"),
        )
        .expect("read");
        let typo = base.replace("wheelbase_m", "wheelbase");
        let err = Config::parse(&typo, path).expect_err("typo").to_string();
        assert!(err.contains("vehicle.toml") && err.contains("wheelbase"), "{err}");
        let negative = base.replace("control_hz = 20.0", "control_hz = -1.0");
        let err = Config::parse(&negative, path).expect_err("negative").to_string();
        assert!(err.contains("rates.control_hz") && err.contains("positive"), "{err}");
        let provider = base.replace("kind = \"cpu\"", "kind = \"npu\"");
        let err = Config::parse(&provider, path).expect_err("provider").to_string();
        assert!(err.contains("npu"), "{err}");
        let stop = base.replace("stop_decel_mps2 = 4.0", "stop_decel_mps2 = 40.0");
        let err = Config::parse(&stop, path).expect_err("stop").to_string();
        assert!(err.contains("safety.stop_decel_mps2"), "{err}");
        // Every number is finite and in range: an infinite gain, a probability of 2.
        let gain = base.replacen("speed_kp = ", "speed_kp = inf # was ", 1);
        let err = Config::parse(&gain, path).expect_err("inf gain").to_string();
        assert!(err.contains("controller.speed_kp") && err.contains("finite"), "{err}");
        let nan = base.replacen("speed_kd = ", "speed_kd = nan # was ", 1);
        let err = Config::parse(&nan, path).expect_err("nan gain").to_string();
        assert!(err.contains("controller.speed_kd"), "{err}");
        let probability = base.replacen("lead_probability = 0.5", "lead_probability = 2.0", 1);
        let err = Config::parse(&probability, path).expect_err("probability").to_string();
        assert!(err.contains("controller.lead_probability"), "{err}");
    }

    #[test]
    fn mounting_points_the_optical_axis_forward_and_down() {
        let m =
            Mounting { x_m: 1.6, y_m: 0.0, z_m: 1.4, pitch_down_deg: 10.0, roll_deg: 0.0, yaw_left_deg: 0.0 };
        let iso = m.base_link_from_optical();
        let forward = iso.rotation * Vector3::z();
        assert!(forward.x > 0.98 && forward.z < -0.17 && forward.z > -0.18, "{forward:?}");
        let right = iso.rotation * Vector3::x();
        assert!((right.y + 1.0).abs() < 1e-9, "{right:?}");
    }
}
