//! `step(frame) -> command`: the one decision function the threaded runtime
//! and the harness's lockstep closed loop both call. Everything it needs is
//! allocated in [`Pipeline::new`]; a step allocates nothing (a test proves
//! it with a counting allocator).
//!
//! Time is a dependency. Robot time comes in with each step (`now_ns`, the
//! source's clock). The inference deadline is judged on the measured wall
//! time only when the pipeline runs in real time; in lockstep it is judged
//! on the configured latency (`[safety] lockstep_latency_ms`), so a replay
//! or an eval decides the same on a loaded machine as on an idle one. The
//! measured time is always reported (`StepOutput::busy_s`), never decisive
//! in lockstep.

use std::path::Path;
use std::time::Instant;

use nines_datasets::calib::CameraModel;
use nines_datasets::contract::{CONTRACT_VERSION, ModelContract};
use nines_datasets::geometry::Iso3;
use nines_datasets::msg::AckermannDrive;
use nines_kernels::{Lens, Normalisation, WarpSpec};

use crate::config::Config;
use crate::controller::{Controller, MAX_PLAN, Prediction};
use crate::inference::Inference;
use crate::obstacle::{CorridorSpec, DepthCorridor, ObstacleTrack};
use crate::preprocess::{FrameRef, Preprocessor};
use crate::safety::{Fault, Mode, SafetyMonitor, Violation};
use crate::source::Pacing;
use crate::{OnboardError, Result};

/// Frames the lead head's closing speed is fitted over (its distance is
/// noisier than the depth obstacle's: a fit over a second).
const LEAD_TRACK_FRAMES: usize = 10;

/// What one step is given.
#[derive(Debug, Clone, Copy)]
pub struct StepInput<'a> {
    /// Now on the source's clock, ns (lockstep: the frame's stamp).
    pub now_ns: u64,
    /// A new frame, if one arrived since the last step.
    pub frame: Option<FrameRef<'a>>,
    /// Ego speed, m/s (odometry).
    pub speed_mps: f64,
}

/// What one step decided. `Copy`: it crosses to the publisher thread as is.
#[derive(Debug, Clone, Copy)]
pub struct StepOutput {
    /// Command stamp (the step's `now_ns`).
    pub stamp_ns: u64,
    /// The command.
    pub command: AckermannDrive,
    /// Engagement after the step.
    pub mode: Mode,
    /// The network's output, when this step ran it.
    pub prediction: Option<Prediction>,
    /// A violation seen in this step.
    pub violation: Option<Violation>,
    /// Whether this step's violation stopped the vehicle (an event).
    pub stopped: bool,
    /// Preprocess plus inference as measured on the wall clock, s (0
    /// without a frame). Performance only in lockstep.
    pub busy_s: f64,
    /// Good frames in a row after the step.
    pub good_frames: u32,
}

/// The runtime's decision pipeline.
#[derive(Debug)]
pub struct Pipeline {
    pre: Preprocessor,
    inference: Inference,
    controller: Controller,
    safety: SafetyMonitor,
    template: Prediction,
    latest: Option<Prediction>,
    last_frame_ns: Option<u64>,
    last_step_ns: Option<u64>,
    period_s: f64,
    stop_decel: f64,
    /// Depth obstacles in the plan's corridor (None: `depth_obstacles = false`).
    corridor: Option<DepthCorridor>,
    track: ObstacleTrack,
    /// The lead head's distance, followed to fit its closing speed.
    lead_track: ObstacleTrack<LEAD_TRACK_FRAMES>,
}

impl Pipeline {
    /// Loads the model and checks that its contract fits the camera and the
    /// config. `pacing` says whose clock decides: in lockstep the deadline
    /// check assumes `[safety] lockstep_latency_ms` instead of measuring.
    pub fn new(
        config: &Config,
        model: &Path,
        camera: &CameraModel,
        base_link_from_camera: &Iso3,
        pacing: Pacing,
    ) -> Result<Self> {
        let inference = Inference::load(model, &config.model, &config.base_dir)?;
        let contract = inference.card().contract.clone();
        check_fit(&contract, camera, base_link_from_camera, config.camera.fps)
            .map_err(|detail| OnboardError::Model { path: model.to_path_buf(), detail })?;
        Ok(Self {
            pre: Preprocessor::new(&contract, camera, base_link_from_camera, config.camera.fps),
            template: Prediction::new(&contract.plan_times_secs),
            inference,
            controller: Controller::new(config.controller, config.vehicle.clone()),
            safety: SafetyMonitor::new(config.safety, pacing == Pacing::Lockstep),
            latest: None,
            last_frame_ns: None,
            last_step_ns: None,
            period_s: config.control_period_s(),
            stop_decel: config.safety.stop_decel_mps2,
            corridor: config.controller.depth_obstacles.then(|| {
                let spec = CorridorSpec {
                    min_height_m: config.controller.obstacle_height_m as f32,
                    half_width_m: config.controller.corridor_half_width_m as f32,
                };
                DepthCorridor::new(&contract, base_link_from_camera, spec)
            }),
            track: ObstacleTrack::default(),
            lead_track: ObstacleTrack::default(),
        })
    }

    /// The loaded model.
    #[must_use]
    pub fn inference(&self) -> &Inference {
        &self.inference
    }

    /// The model and its input buffer (benchmarks time bare runs on it).
    pub fn inference_mut(&mut self) -> &mut Inference {
        &mut self.inference
    }

    /// The safety monitor.
    #[must_use]
    pub fn safety(&self) -> &SafetyMonitor {
        &self.safety
    }

    /// Asks to (re-)engage.
    pub fn request_engage(&mut self) {
        self.safety.request_engage();
    }

    /// One decision.
    pub fn step(&mut self, input: &StepInput<'_>) -> StepOutput {
        let dt = self
            .last_step_ns
            .map_or(self.period_s, |t| (input.now_ns.saturating_sub(t) as f64 / 1e9).clamp(1e-3, 1.0));
        self.last_step_ns = Some(input.now_ns);
        let was = self.safety.mode();
        let violation;
        let mut prediction = None;
        let mut busy_s = 0.0;
        if let Some(frame) = input.frame {
            self.last_frame_ns = Some(frame.stamp_ns);
            let start = Instant::now();
            violation = match frame.rgb {
                None => self.safety.check_failed_frame(Fault::BadFrame, frame.stamp_ns),
                Some(rgb) => self.run_frame(frame, rgb, input.speed_mps, start, &mut prediction, &mut busy_s),
            };
        } else {
            violation = self.safety.check_tick(input.now_ns, self.last_frame_ns);
        }
        let command = match (self.safety.engaged(), &self.latest) {
            (true, Some(plan)) => {
                let age = input.now_ns.saturating_sub(plan.stamp_ns) as f64 / 1e9;
                self.controller.track(plan, age, input.speed_mps, dt)
            }
            _ => self.controller.stop(self.stop_decel, input.speed_mps),
        };
        let mode = self.safety.mode();
        StepOutput {
            stamp_ns: input.now_ns,
            command,
            mode,
            prediction,
            violation,
            stopped: was == Mode::Engaged && mode == Mode::Stopped,
            busy_s,
            good_frames: self.safety.good_frames(),
        }
    }

    /// Preprocess, inference and the output checks of one decoded frame.
    fn run_frame(
        &mut self,
        frame: FrameRef<'_>,
        rgb: &[u8],
        speed_mps: f64,
        start: Instant,
        prediction: &mut Option<Prediction>,
        busy_s: &mut f64,
    ) -> Option<Violation> {
        if self.pre.push(frame.stamp_ns, rgb, frame.width, frame.height).is_err() {
            return self.safety.check_failed_frame(Fault::BadFrame, frame.stamp_ns);
        }
        let quality = self.pre.stack(self.inference.image_mut());
        let mut p = self.template;
        p.stamp_ns = frame.stamp_ns;
        let corridor = self.corridor.as_mut();
        let ran = self.inference.run(speed_mps as f32, |raw| {
            for (dst, src) in p.plan[..p.len].iter_mut().zip(raw.plan.chunks_exact(3)) {
                dst.copy_from_slice(src);
            }
            for (dst, src) in p.lead.iter_mut().zip(raw.lead) {
                *dst = *src;
            }
            corridor.and_then(|c| c.nearest(raw.depth, &p))
        });
        *busy_s = start.elapsed().as_secs_f64();
        let Ok(nearest) = ran else {
            return self.safety.check_failed_frame(Fault::Inference, frame.stamp_ns);
        };
        p.obstacle = self.track.update(frame.stamp_ns, nearest).map(|(d, v)| [d, v]);
        // The lead head's distance is sound, its relative speed a prior: the
        // leads it learnt from mostly move with the car, so a stopped car
        // ahead reads about 0 m/s while it closes at the car's own speed.
        // The closing speed fitted to its distances corrects that, and the
        // faster closing of the two is followed.
        let seen = self.controller.sees_lead(&p).then_some(p.lead[1]);
        if let Some((_, closing)) = self.lead_track.update(frame.stamp_ns, seen) {
            p.lead[2] = p.lead[2].min(closing);
        }
        *prediction = Some(p);
        let v = self.safety.check_frame(&p, *busy_s, quality.complete, speed_mps);
        if v.is_none() {
            self.latest = Some(p);
        }
        v
    }

    /// The source ended (or was lost): the controlled stop, and the event.
    pub fn finish(&mut self, now_ns: u64, fault: Fault, speed_mps: f64) -> StepOutput {
        let violation = self.safety.source_gone(fault, now_ns);
        self.last_step_ns = Some(now_ns);
        StepOutput {
            stamp_ns: now_ns,
            command: self.controller.stop(self.stop_decel, speed_mps),
            mode: self.safety.mode(),
            prediction: None,
            violation: Some(violation),
            // The source's end (or loss) is always an event, engaged or not.
            stopped: true,
            busy_s: 0.0,
            good_frames: self.safety.good_frames(),
        }
    }
}

/// Whether a model's contract can run on this camera: its version, plan
/// length, the virtual camera inside the real one, and history frames the
/// camera's rate can supply.
fn check_fit(
    contract: &ModelContract,
    camera: &CameraModel,
    mount: &Iso3,
    fps: f64,
) -> std::result::Result<(), String> {
    if contract.version != CONTRACT_VERSION {
        return Err(format!(
            "model contract version {} but this runtime reads version {CONTRACT_VERSION}; re-export the model with this nines",
            contract.version
        ));
    }
    if contract.plan_times_secs.len() > MAX_PLAN {
        return Err(format!(
            "the plan has {} points; the runtime takes at most {MAX_PLAN}",
            contract.plan_times_secs.len()
        ));
    }
    // Every virtual pixel on a coarse grid must see the real image.
    let spec = WarpSpec::to_virtual(contract, camera, mount, Normalisation::raw());
    let lens = Lens::from_model(camera);
    let (w, h) = (contract.input.width as f32, contract.input.height as f32);
    let mut outside = 0;
    let grid = 16;
    for j in 0..=grid {
        for i in 0..=grid {
            let (u, v) = (i as f32 / grid as f32 * (w - 1.0), j as f32 / grid as f32 * (h - 1.0));
            let m = &spec.ray_from_pixel;
            let ray = [m[0] * u + m[1] * v + m[2], m[3] * u + m[4] * v + m[5], m[6] * u + m[7] * v + m[8]];
            let inside = lens.project(ray, 1e-6).is_some_and(|(x, y)| {
                x >= -0.5 && y >= -0.5 && x <= camera.width as f32 - 0.5 && y <= camera.height as f32 - 0.5
            });
            outside += usize::from(!inside);
        }
    }
    // A sliver outside is normal (a camera pitched a little differently from
    // the virtual one; training images had it too, filled with the mean); a
    // quarter means a different rig.
    let total = (grid + 1) * (grid + 1);
    if outside * 4 > total {
        return Err(format!(
            "the model's virtual camera (fx {:.1}, pitch down {:.1} deg) sees outside this camera for {}% of its view; \
             the camera's calibration or mounting ([camera.calibration], [camera.mounting]) does not fit the model's contract",
            contract.camera.fx,
            contract.camera.pitch_down_deg,
            outside * 100 / total
        ));
    }
    if !contract.input.camera_supplies_history(fps) {
        return Err(format!(
            "the model stacks frames {:.0} ms apart but a {fps} Hz camera cannot supply them; set camera.fps to a multiple of {:.1} Hz",
            contract.input.frame_spacing_secs * 1e3,
            1.0 / contract.input.frame_spacing_secs
        ));
    }
    Ok(())
}
