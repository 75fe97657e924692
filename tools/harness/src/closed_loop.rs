//! Closed-loop runs: the onboard pipeline (the library the robot runs, in
//! process, in lockstep) in the driver's seat of the simulator, the expert
//! in shadow. Until the runtime engages (its frame history full and enough
//! good frames) the expert drives, as a safety driver hands over; from then
//! on every command is the runtime's, and a controlled stop is a system
//! fault of the run.

use std::path::{Path, PathBuf};

use nines_datasets::calib::CameraModel;
use nines_datasets::msg::{AckermannDrive, Controller};
use nines_onboard::config::Config;
use nines_onboard::pipeline::{Pipeline, StepInput};
use nines_onboard::preprocess::FrameRef;
use nines_onboard::safety::Mode;
use nines_onboard::source::Pacing;
use nines_sim::events::{Category, SimEvent, blocked};
use nines_sim::record::{
    Control, Driver, EPOCH_NANOS, Mark, Observation, RecordOptions, RunSummary, simulate, stamp,
};

use super::safety_driver::{Intervention, SafetyDriver, Takeover, Watch};
use super::suite::{ClosedRun, Suite};
use crate::Result;

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
    /// Every command the model's seat gave the simulator (the expert's
    /// until the runtime engaged), with its simulated time, s; empty for
    /// the expert's seat. Lockstep makes it a function of the model, the
    /// scenario and the config alone.
    pub commands: Vec<(f64, AckermannDrive)>,
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
        jpeg_quality: suite.camera.jpeg_quality,
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
) -> Result<ClosedResult> {
    let options = record_options(suite, run);
    let scenario = || -> Result<_> { Ok(nines_sim::family(&run.family)?.draw(&run.family, run.seed)) };
    let unended = RecordOptions { end_after_failure_secs: None, ..options.clone() };
    let expert_progress = simulate(scenario()?, &unended, None, &mut ExpertDriver)?.progress_m;
    let (mut summary, mut metrics, commands) = match seat {
        Seat::Expert => {
            (simulate(scenario()?, &options, record_to, &mut ExpertDriver)?, Vec::new(), Vec::new())
        }
        Seat::Model { path, config } => {
            let mut driver = ModelDriver::new(&options, path, config, suite.camera.jpeg())?;
            let mut summary = simulate(scenario()?, &options, record_to, &mut driver)?;
            // Where the car was when it failed, before a never-engaged fault is added.
            let mut metrics = driver.metrics();
            metrics.extend(driver.failure_onset(&summary));
            if driver.engaged_at_s.is_none() {
                summary.events.push(SimEvent {
                    time_secs: summary.duration_secs,
                    category: Category::SystemFault,
                    detail: "the runtime never engaged (its frame history never filled with good frames)"
                        .into(),
                    value: 0.0,
                });
            }
            (summary, metrics, driver.commands)
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
    Ok(ClosedResult { summary, metrics, commands })
}

/// A collection run (HG-DAgger): `model` drives `scenario` with a safety
/// driver who takes over at `takeover`, recorded to `out` as `options` say.
/// Returns what the simulator saw and the takeovers.
pub fn run_supervised(
    scenario: nines_sim::Scenario,
    options: &RecordOptions,
    model: &Path,
    config: &Config,
    jpeg: Option<u8>,
    takeover: Takeover,
    out: &Path,
) -> Result<(RunSummary, Vec<Intervention>)> {
    let mut driver = ModelDriver::new(options, model, config, jpeg)?;
    driver.safety_driver = Some(SafetyDriver::new(takeover));
    let summary = simulate(scenario, options, Some(out), &mut driver)?;
    let interventions = driver.safety_driver.map(|d| d.interventions).unwrap_or_default();
    Ok((summary, interventions))
}

/// A run's measured inference times (preprocess + inference per frame, s)
/// as metrics: mean, p50, p99 and max in ms, and the deadline they would be
/// judged against in real time. They are measured on the wall clock and
/// never decide a lockstep run's outcome; the report flags a slow model.
#[must_use]
pub fn inference_metrics(busy_s: &[f64], deadline_ms: f64) -> Vec<(String, f64)> {
    if busy_s.is_empty() {
        return Vec::new();
    }
    let mut ms: Vec<f64> = busy_s.iter().map(|s| s * 1e3).collect();
    let mean = ms.iter().sum::<f64>() / ms.len() as f64;
    vec![
        ("inference_mean_ms".to_string(), mean),
        ("inference_p50_ms".to_string(), nines_onboard::runtime::percentile(&mut ms, 0.5)),
        ("inference_p99_ms".to_string(), nines_onboard::runtime::percentile(&mut ms, 0.99)),
        ("inference_max_ms".to_string(), ms.iter().copied().fold(f64::NEG_INFINITY, f64::max)),
        ("inference_deadline_ms".to_string(), deadline_ms),
    ]
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
    /// Measured preprocess + inference per frame, s (performance only).
    busy_s: Vec<f64>,
    deadline_ms: f64,
    commands: Vec<(f64, AckermannDrive)>,
    /// (sim time s, lateral offset m, heading error rad) at every step.
    lane_errors: Vec<(f64, f64, f64)>,
    /// JPEG quality of the camera path frames take, if they take it.
    jpeg: Option<u8>,
    /// The newest frame after that path (`None` if it could not be carried).
    seen: Option<image::RgbImage>,
    /// The safety driver of a collection run; none in evaluation.
    safety_driver: Option<SafetyDriver>,
}

impl ModelDriver {
    /// The runtime on `model` with `config`, for the camera of `options`,
    /// fed frames through JPEG at `jpeg` quality if given.
    fn new(options: &RecordOptions, model: &Path, config: &Config, jpeg: Option<u8>) -> Result<Self> {
        let camera =
            CameraModel::from_camera_info(&options.camera.camera_info(EPOCH_NANOS), "the suite's camera")?;
        let mount = options.camera.base_link_from_camera();
        let pipeline = Pipeline::new(config, model, &camera, &mount, Pacing::Lockstep)?;
        Ok(Self {
            pipeline,
            last_frame_s: None,
            engaged_at_s: None,
            faults: Vec::new(),
            steer_error: 0.0,
            speed_error: 0.0,
            engaged_steps: 0,
            busy_s: Vec::new(),
            deadline_ms: config.safety.inference_deadline_ms,
            commands: Vec::new(),
            lane_errors: Vec::new(),
            jpeg,
            seen: None,
            safety_driver: None,
        })
    }

    fn metrics(&self) -> Vec<(String, f64)> {
        let steps = self.engaged_steps.max(1) as f64;
        let mut metrics = vec![
            ("steer_vs_expert_rad".to_string(), self.steer_error / steps),
            ("speed_vs_expert_mps".to_string(), self.speed_error / steps),
        ];
        metrics.extend(inference_metrics(&self.busy_s, self.deadline_ms));
        if let Some(t) = self.engaged_at_s {
            metrics.push(("engaged_at_s".to_string(), t));
        }
        metrics
    }

    /// Where the car was against its lane when the run's first failure
    /// began: how far off-centre (m) and how far turned (degrees) the model
    /// gets before it fails, which sizes the disturbances of recovery data.
    fn failure_onset(&self, summary: &RunSummary) -> Vec<(String, f64)> {
        let Some(first) = summary.events.first() else { return Vec::new() };
        let at = self.lane_errors.iter().rev().find(|(t, _, _)| *t <= first.time_secs + 1e-9);
        at.map_or_else(Vec::new, |(_, lateral, heading)| {
            vec![
                ("failure_lateral_offset_m".to_string(), lateral.abs()),
                ("failure_heading_error_deg".to_string(), heading.abs().to_degrees()),
            ]
        })
    }
}

impl Driver for ModelDriver {
    fn command(&mut self, o: &Observation<'_>) -> AckermannDrive {
        let frame = match o.camera {
            Some((t, image)) if self.last_frame_s != Some(t) => {
                self.last_frame_s = Some(t);
                // A frame the camera path cannot carry reaches the runtime
                // as an undecodable one, which its safety monitor counts.
                let rgb = match self.jpeg {
                    Some(quality) => {
                        self.seen = nines_datasets::image::through_jpeg(image, quality).ok();
                        self.seen.as_ref().map(|i| i.as_raw().as_slice())
                    }
                    None => Some(image.as_raw().as_slice()),
                };
                Some(FrameRef { stamp_ns: stamp(t), rgb, width: image.width(), height: image.height() })
            }
            _ => None,
        };
        let out =
            self.pipeline.step(&StepInput { now_ns: stamp(o.time_secs), frame, speed_mps: o.speed_mps });
        if frame.is_some() {
            self.busy_s.push(out.busy_s);
        }
        if out.mode == Mode::Engaged && self.engaged_at_s.is_none() {
            self.engaged_at_s = Some(o.time_secs);
        }
        // With a safety driver a controlled stop is a takeover, not a failure.
        if out.stopped
            && self.safety_driver.is_none()
            && let Some(v) = out.violation
        {
            self.faults.push(SimEvent {
                time_secs: o.time_secs,
                category: Category::SystemFault,
                detail: format!("the runtime made a controlled stop: {}", v.fault.name()),
                value: v.value,
            });
        }
        let (lateral, heading) = o.sim.lane_error();
        self.lane_errors.push((o.time_secs, lateral, heading));
        let expert = o.sim.expert_command();
        let pipeline = &mut self.pipeline;
        let safety_drives = self.safety_driver.as_mut().is_some_and(|driver| {
            let watch = Watch {
                time_s: o.time_secs,
                lateral_m: lateral,
                heading_rad: heading,
                ttc_s: o.sim.time_to_collision(),
                runtime_stopped: out.stopped,
                runtime_engaged: out.mode == Mode::Engaged,
            };
            driver.watch(&watch, &mut || pipeline.request_engage())
        });
        let command = if self.engaged_at_s.is_none() || safety_drives {
            expert
        } else {
            self.engaged_steps += 1;
            self.steer_error += f64::from((out.command.steering_angle - expert.steering_angle).abs());
            self.speed_error += f64::from((out.command.speed - expert.speed).abs());
            out.command
        };
        self.commands.push((o.time_secs, command));
        command
    }

    fn control(&self) -> Control {
        // The expert holds the seat until the runtime engages, as a safety driver hands over.
        Control::by(if self.safety_driver.as_ref().is_some_and(SafetyDriver::driving) {
            Controller::SafetyDriver
        } else if self.engaged_at_s.is_some() {
            Controller::Model
        } else {
            Controller::Human
        })
    }

    fn faults(&mut self) -> Vec<SimEvent> {
        std::mem::take(&mut self.faults)
    }

    fn marks(&mut self, _now_secs: f64) -> Vec<Mark> {
        self.safety_driver.as_mut().map(SafetyDriver::take_marks).unwrap_or_default()
    }
}
