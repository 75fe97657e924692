//! Closed-loop runs: the onboard pipeline (the library the robot runs, in
//! process, in lockstep) in the driver's seat of the simulator, the expert
//! in shadow. Until the runtime engages (its frame history full and enough
//! good frames) the expert drives, as a safety driver hands over; from then
//! on every command is the runtime's, and a controlled stop is a system
//! fault of the run.

use std::path::{Path, PathBuf};

use nines_datasets::calib::CameraModel;
use nines_datasets::msg::AckermannDrive;
use nines_onboard::config::Config;
use nines_onboard::pipeline::{Pipeline, StepInput};
use nines_onboard::preprocess::FrameRef;
use nines_onboard::safety::Mode;
use nines_sim::events::{Category, SimEvent, blocked};
use nines_sim::record::{Driver, EPOCH_NANOS, Observation, RecordOptions, RunSummary, simulate, stamp};

use super::suite::{ClosedRun, Suite};

/// Who drives closed-loop runs.
#[derive(Debug, Clone)]
pub enum Seat {
    /// An exported model through the onboard pipeline, with this vehicle config.
    Model {
        /// The ONNX file.
        path: PathBuf,
        /// The vehicle config (the simulator's car unless given).
        config: Box<Config>,
    },
    /// The simulator's reference driver.
    Expert,
}

/// A finished closed-loop run.
#[derive(Debug, Clone)]
pub struct ClosedResult {
    /// What the simulator saw, with the runtime's own faults and any
    /// blocked or never-engaged failure added.
    pub summary: RunSummary,
    /// Metrics by name.
    pub metrics: Vec<(String, f64)>,
}

impl ClosedResult {
    /// True without failures.
    #[must_use]
    pub fn passed(&self) -> bool {
        self.summary.events.is_empty()
    }
}

/// The simulator options of a suite's closed-loop runs.
#[must_use]
pub fn record_options(suite: &Suite, run: &ClosedRun) -> RecordOptions {
    RecordOptions {
        camera: suite.camera.config(),
        duration_secs: run.duration_s,
        end_after_failure_secs: Some(suite.thresholds.end_after_failure_s),
        // A failed run's drive is kept for replay: camera, poses, commands,
        // events and ground truth; the lidar would make it ten times larger.
        record_lidar: false,
        ..RecordOptions::default()
    }
}

/// Runs one closed-loop run; with `record_to`, the whole drive (sensors,
/// commands, the expert's shadow commands, events) is written there.
pub fn run_closed(
    suite: &Suite,
    run: &ClosedRun,
    seat: &Seat,
    record_to: Option<&Path>,
) -> anyhow::Result<ClosedResult> {
    let options = record_options(suite, run);
    let scenario =
        || -> anyhow::Result<_> { Ok(nines_sim::family(&run.family)?.draw(&run.family, run.seed)) };
    let unended = RecordOptions { end_after_failure_secs: None, ..options.clone() };
    let expert_progress = simulate(scenario()?, &unended, None, &mut ExpertDriver)?.progress_m;
    let (mut summary, mut metrics) = match seat {
        Seat::Expert => (simulate(scenario()?, &options, record_to, &mut ExpertDriver)?, Vec::new()),
        Seat::Model { path, config } => {
            let camera_config = options.camera.clone();
            let camera =
                CameraModel::from_camera_info(&camera_config.camera_info(EPOCH_NANOS), "the suite's camera")?;
            let pipeline = Pipeline::new(config, path, &camera, &camera_config.base_link_from_camera())?;
            let mut driver = ModelDriver::new(pipeline);
            let mut summary = simulate(scenario()?, &options, record_to, &mut driver)?;
            if driver.engaged_at_s.is_none() {
                summary.events.push(SimEvent {
                    time_secs: summary.duration_secs,
                    category: Category::SystemFault,
                    detail: "the runtime never engaged (its frame history never filled with good frames)"
                        .into(),
                    value: 0.0,
                });
            }
            (summary, driver.metrics())
        }
    };
    if summary.events.is_empty() && blocked(summary.progress_m, expert_progress) {
        summary.events.push(SimEvent {
            time_secs: summary.duration_secs,
            category: Category::Blocked,
            detail: format!("made {:.0} m of the expert's {expert_progress:.0} m", summary.progress_m),
            value: summary.progress_m / expert_progress,
        });
    }
    metrics.extend([
        ("progress_m".to_string(), summary.progress_m),
        ("expert_progress_m".to_string(), expert_progress),
        ("duration_s".to_string(), summary.duration_secs),
    ]);
    Ok(ClosedResult { summary, metrics })
}

/// The expert: privileged, so it renders nothing.
struct ExpertDriver;

impl Driver for ExpertDriver {
    fn wants_camera(&self) -> bool {
        false
    }

    fn command(&mut self, observation: &Observation<'_>) -> AckermannDrive {
        observation.sim.expert_command()
    }
}

/// The onboard pipeline as a simulator driver.
struct ModelDriver {
    pipeline: Pipeline,
    last_frame_s: Option<f64>,
    engaged_at_s: Option<f64>,
    faults: Vec<SimEvent>,
    steer_error: f64,
    speed_error: f64,
    engaged_steps: u64,
    busy_sum_s: f64,
    busy_max_s: f64,
    frames: u64,
}

impl ModelDriver {
    fn new(pipeline: Pipeline) -> Self {
        Self {
            pipeline,
            last_frame_s: None,
            engaged_at_s: None,
            faults: Vec::new(),
            steer_error: 0.0,
            speed_error: 0.0,
            engaged_steps: 0,
            busy_sum_s: 0.0,
            busy_max_s: 0.0,
            frames: 0,
        }
    }

    fn metrics(&self) -> Vec<(String, f64)> {
        let steps = self.engaged_steps.max(1) as f64;
        let mut metrics = vec![
            ("steer_vs_expert_rad".to_string(), self.steer_error / steps),
            ("speed_vs_expert_mps".to_string(), self.speed_error / steps),
            ("inference_mean_ms".to_string(), 1e3 * self.busy_sum_s / self.frames.max(1) as f64),
            ("inference_max_ms".to_string(), 1e3 * self.busy_max_s),
        ];
        if let Some(t) = self.engaged_at_s {
            metrics.push(("engaged_at_s".to_string(), t));
        }
        metrics
    }
}

impl Driver for ModelDriver {
    fn command(&mut self, o: &Observation<'_>) -> AckermannDrive {
        let frame = match o.camera {
            Some((t, image)) if self.last_frame_s != Some(t) => {
                self.last_frame_s = Some(t);
                Some(FrameRef {
                    stamp_ns: stamp(t),
                    rgb: Some(image.as_raw()),
                    width: image.width(),
                    height: image.height(),
                })
            }
            _ => None,
        };
        let out =
            self.pipeline.step(&StepInput { now_ns: stamp(o.time_secs), frame, speed_mps: o.speed_mps });
        if frame.is_some() {
            self.frames += 1;
            self.busy_sum_s += out.busy_s;
            self.busy_max_s = self.busy_max_s.max(out.busy_s);
        }
        if out.mode == Mode::Engaged && self.engaged_at_s.is_none() {
            self.engaged_at_s = Some(o.time_secs);
        }
        if out.stopped
            && let Some(v) = out.violation
        {
            self.faults.push(SimEvent {
                time_secs: o.time_secs,
                category: Category::SystemFault,
                detail: format!("the runtime made a controlled stop: {}", v.fault.name()),
                value: v.value,
            });
        }
        let expert = o.sim.expert_command();
        if self.engaged_at_s.is_none() {
            return expert;
        }
        self.engaged_steps += 1;
        self.steer_error += f64::from((out.command.steering_angle - expert.steering_angle).abs());
        self.speed_error += f64::from((out.command.speed - expert.speed).abs());
        out.command
    }

    fn faults(&mut self) -> Vec<SimEvent> {
        std::mem::take(&mut self.faults)
    }
}
