//! Recording a run as a drive: sensors at 10 Hz, commands, who gave them
//! (/nines/control_source), poses and odometry at 20 Hz, events when they
//! begin, and ground truth (depth,
//! boxes, the expert's shadow command) on /sim/ground_truth/* for
//! evaluation only.

use std::path::Path;

use nalgebra::{Translation3, UnitQuaternion};
use nines_datasets::drive::{DriveScenario, DriveWriter, DriveWriterOptions, SCENARIO_METADATA};
use nines_datasets::geometry::{Iso3, pose_from_isometry, transform_stamped};
use nines_datasets::image::encode_jpeg;
use nines_datasets::msg::{
    AckermannDrive, AckermannDriveStamped, CompressedImage, ControlSource, Controller, Event, EventKind,
    Header, Image, LaneState, Object, ObjectArray, TfMessage, Twist, Vector3,
};
use nines_datasets::pointcloud::to_point_cloud2;
use nines_datasets::topics::{self, frames};

use crate::actors::Actor;
use crate::disturb::{DisturbProfile, DisturbancePlan, DisturbedExpert};
use crate::error::Result;
use crate::events::{SimEvent, blocked};
use crate::render::Scene;
use crate::render::camera::{self, CameraConfig};
use crate::render::lidar::{self, LidarConfig};
use crate::scenario::Scenario;
use crate::vehicle::VehicleState;
use crate::world::Sim;

pub use nines_datasets::topics::{GT_DEPTH, GT_EXPERT_COMMAND, GT_OBJECTS};

/// Sim time zero on the drive's clock, ns since the epoch.
pub const EPOCH_NANOS: u64 = 1_700_000_000_000_000_000;

/// Sensors and length of a recording.
#[derive(Debug, Clone)]
pub struct RecordOptions {
    /// Camera.
    pub camera: CameraConfig,
    /// Lidar.
    pub lidar: LidarConfig,
    /// Run length, s (the family's default if `None`).
    pub duration_secs: Option<f64>,
    /// JPEG quality, 1..100.
    pub jpeg_quality: u8,
    /// End the run this long after its first failure (`None`: run to the end).
    pub end_after_failure_secs: Option<f64>,
    /// Record lidar sweeps (by far the largest part of a drive).
    pub record_lidar: bool,
    /// Disturbances injected while the expert collects (DART); `none` by
    /// default. The initial offset applies to whoever drives; the injected
    /// commands only to [`record_expert`].
    pub disturb: DisturbProfile,
}

impl Default for RecordOptions {
    fn default() -> Self {
        Self {
            camera: CameraConfig::default(),
            lidar: LidarConfig::default(),
            duration_secs: None,
            jpeg_quality: 90,
            end_after_failure_secs: None,
            record_lidar: true,
            disturb: DisturbProfile::default(),
        }
    }
}

/// How a recorded run went.
#[derive(Debug, Clone)]
pub struct RunSummary {
    /// Family.
    pub family: String,
    /// Seed.
    pub seed: u64,
    /// Simulated time, s.
    pub duration_secs: f64,
    /// Progress along the road, m.
    pub progress_m: f64,
    /// Failures.
    pub events: Vec<SimEvent>,
    /// Camera frames (= lidar sweeps) written.
    pub frames: usize,
}

impl RunSummary {
    /// True if the run had no failure (and, given the expert's progress, was not blocked).
    #[must_use]
    pub fn passed(&self, expert_progress_m: Option<f64>) -> bool {
        self.events.is_empty() && !expert_progress_m.is_some_and(|e| blocked(self.progress_m, e))
    }
}

/// Sim time, s, on the drive's clock, ns since the epoch.
#[must_use]
pub fn stamp(time_secs: f64) -> u64 {
    EPOCH_NANOS + (time_secs * 1e9).round() as u64
}

fn isometry(state: &VehicleState) -> Iso3 {
    Iso3::from_parts(
        Translation3::new(state.x, state.y, 0.0),
        UnitQuaternion::from_euler_angles(0.0, 0.0, state.yaw),
    )
}

/// Ego pose at `t` from the physics history (linear between samples).
fn pose_at(history: &[(f64, VehicleState)], t: f64) -> Iso3 {
    let i = history.partition_point(|(s, _)| *s < t - 1e-9).min(history.len() - 1);
    if i == 0 {
        return isometry(&history[0].1);
    }
    let ((t0, a), (t1, b)) = (history[i - 1], history[i]);
    let w = ((t - t0) / (t1 - t0)).clamp(0.0, 1.0);
    isometry(&a).lerp_slerp(&isometry(&b), w)
}

fn objects_message(sim: &Sim, actors: &[Actor], stamp_nanos: u64) -> ObjectArray {
    let road = &sim.scenario.road;
    let objects = actors
        .iter()
        .map(|a| {
            let (x, y, yaw) = a.pose(road);
            let (l, w, h) = a.kind.size();
            let pose = Iso3::from_parts(
                Translation3::new(x, y, h / 2.0),
                UnitQuaternion::from_euler_angles(0.0, 0.0, yaw),
            );
            let heading = road.centre(a.s).heading;
            let (vx, vy) = (
                a.speed_mps * heading.cos() - a.lateral_mps * heading.sin(),
                a.speed_mps * heading.sin() + a.lateral_mps * heading.cos(),
            );
            Object {
                id: a.id,
                label: a.kind.label().into(),
                pose: pose_from_isometry(&pose),
                size: Vector3 { x: l, y: w, z: h },
                velocity: Twist { linear: Vector3 { x: vx, y: vy, z: 0.0 }, angular: Vector3::default() },
                truncation: -1.0,
                occlusion: 3,
                box_2d: [0.0; 4],
            }
        })
        .collect();
    ObjectArray { header: Header::new(stamp_nanos, frames::MAP), objects }
}

fn write_state(writer: &mut DriveWriter, time_secs: f64, state: &VehicleState) -> Result<()> {
    let mut twist = Twist::default();
    twist.linear.x = state.speed_mps;
    twist.angular.z = state.yaw_rate_radps;
    Ok(writer.write_ego_state(stamp(time_secs), &isometry(state), twist)?)
}

/// What a driver sees at each control step: the newest camera frame (taken
/// 0.05 s before the step, as a real pipeline would deliver it) and the
/// vehicle's own state, plus the simulator for privileged drivers.
pub struct Observation<'a> {
    /// Sim time, s.
    pub time_secs: f64,
    /// Newest camera frame and its sim time, s (none before the first).
    pub camera: Option<(f64, &'a image::RgbImage)>,
    /// Odometry speed, m/s.
    pub speed_mps: f64,
    /// The simulator (the expert uses its privileged state; a camera-only
    /// driver must not).
    pub sim: &'a Sim,
}

/// Who produced a control period's command, and what was injected into it:
/// what /nines/control_source records at the control rate.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Control {
    /// Who drove.
    pub controller: Controller,
    /// Whether a disturbance was injected (a disturbance ramping in or out counts).
    pub disturbed: bool,
    /// Injected steering offset, rad (0 without a disturbance).
    pub steering_offset_rad: f32,
    /// Injected factor on the commanded speed (1 without a disturbance).
    pub speed_factor: f32,
}

impl Control {
    /// `controller` drove, with nothing injected.
    #[must_use]
    pub fn by(controller: Controller) -> Self {
        Self { controller, disturbed: false, steering_offset_rad: 0.0, speed_factor: 1.0 }
    }

    /// The message, stamped `stamp_nanos`.
    #[must_use]
    pub fn message(&self, stamp_nanos: u64) -> ControlSource {
        ControlSource {
            header: Header::new(stamp_nanos, frames::BASE_LINK),
            source: self.controller as u8,
            disturbed: self.disturbed,
            steering_offset_rad: self.steering_offset_rad,
            speed_factor: self.speed_factor,
        }
    }
}

/// A moment a driver marks on /nines/events that is not a failure (a
/// disturbance starting, a takeover), stamped in sim time.
#[derive(Debug, Clone, PartialEq)]
pub struct Mark {
    /// Sim time, s.
    pub time_secs: f64,
    /// What kind of moment.
    pub kind: EventKind,
    /// Category (e.g. `disturbance_steering`).
    pub category: String,
    /// What happened, from when to when.
    pub detail: String,
    /// Category-specific magnitude (a disturbance's length, s).
    pub value: f64,
}

/// Whoever sits in the driver's seat of a simulated run.
pub trait Driver {
    /// Whether it looks at the camera (a privileged driver does not: its
    /// unrecorded runs then render nothing).
    fn wants_camera(&self) -> bool {
        true
    }

    /// The command for this control period.
    fn command(&mut self, observation: &Observation<'_>) -> AckermannDrive;

    /// Who gave the last command, and what was injected into it (the
    /// expert's seat by default: a human driver, nothing injected).
    fn control(&self) -> Control {
        Control::by(Controller::Human)
    }

    /// Failures of the driving system itself (safe stops, deadline misses)
    /// since the last call, stamped in sim time; they end up with the
    /// simulator's own events.
    fn faults(&mut self) -> Vec<SimEvent> {
        Vec::new()
    }

    /// Moments to mark on /nines/events that are not failures, due by
    /// `now_secs` and not yet given.
    fn marks(&mut self, _now_secs: f64) -> Vec<Mark> {
        Vec::new()
    }
}

impl<F: FnMut(&Observation<'_>) -> AckermannDrive> Driver for F {
    fn command(&mut self, observation: &Observation<'_>) -> AckermannDrive {
        self(observation)
    }
}

/// Runs `scenario` with `driver` choosing each command from what it observes
/// and records it to `out`. The expert runs in shadow on
/// /sim/ground_truth/expert_command whoever drives.
pub fn record(
    scenario: Scenario,
    out: &Path,
    options: &RecordOptions,
    mut driver: impl FnMut(&Observation<'_>) -> AckermannDrive,
) -> Result<RunSummary> {
    simulate(scenario, options, Some(out), &mut driver)
}

/// Runs `scenario` closed loop with `driver`, recording the drive to `out`
/// if given. Without `out` only what the driver sees is rendered (the
/// camera, and only if it [wants](Driver::wants_camera) it): the same
/// frames, bit for bit, that a recorded run of the same driver gets.
pub fn simulate(
    scenario: Scenario,
    options: &RecordOptions,
    out: Option<&Path>,
    driver: &mut dyn Driver,
) -> Result<RunSummary> {
    let mut sim = Sim::new(scenario);
    if let Some(duration) = options.duration_secs {
        sim.scenario.duration_secs = duration;
    }
    if options.disturb.active() {
        let plan = plan_of(&sim.scenario, options);
        // The start stays on the road with half a metre to spare, whatever was drawn.
        let (left, right) = sim.room_on_road();
        let lateral = plan.initial_lateral_m.clamp(-(right - 0.5).max(0.0), (left - 0.5).max(0.0));
        sim.displace_start(lateral, plan.initial_heading_rad);
    }
    let seed_mix = sim.scenario.seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ sim.scenario.family.len() as u64;
    let mut writer = match out {
        Some(path) => Some(start_drive(path, &sim.scenario, options)?),
        None => None,
    };
    let mut summary = RunSummary {
        family: sim.scenario.family.clone(),
        seed: sim.scenario.seed,
        duration_secs: 0.0,
        progress_m: 0.0,
        events: Vec::new(),
        frames: 0,
    };
    let render = writer.is_some() || driver.wants_camera();
    let mut step = 0u64;
    let mut last_frame: Option<(f64, image::RgbImage)> = None;
    while !sim.done() {
        let now = sim.time_secs();
        if let (Some(first), Some(after)) = (summary.events.first(), options.end_after_failure_secs)
            && now >= first.time_secs + after - 1e-9
        {
            break;
        }
        let command = driver.command(&Observation {
            time_secs: now,
            camera: last_frame.as_ref().map(|(t, img)| (*t, img)),
            speed_mps: sim.ego().speed_mps,
            sim: &sim,
        });
        if let Some(writer) = writer.as_mut() {
            write_state(writer, now, sim.ego())?;
            writer.write(topics::CONTROL_SOURCE, stamp(now), &driver.control().message(stamp(now)))?;
            let expert = sim.expert_command();
            let header = Header::new(stamp(now), frames::BASE_LINK);
            writer.write(
                topics::COMMAND,
                stamp(now),
                &AckermannDriveStamped { header: header.clone(), drive: command },
            )?;
            writer.write(
                GT_EXPERT_COMMAND,
                stamp(now),
                &AckermannDriveStamped { header: header.clone(), drive: expert },
            )?;
            let (lateral, heading) = sim.lane_error();
            let lane =
                LaneState { header, lateral_offset_m: lateral as f32, heading_error_rad: heading as f32 };
            writer.write(topics::GT_LANE, stamp(now), &lane)?;
        }
        // Sensors fire on odd steps (0.05 s, 0.15 s, ...): the camera at that
        // instant, mid-way through a sweep that started 0.05 s earlier.
        let frame_actors = (render && step % 2 == 1).then(|| sim.actors().to_vec());
        let result = sim.step(&command);
        let mut events = driver.faults();
        events.extend(result.events);
        let marks = driver.marks(now);
        if let Some(writer) = writer.as_mut() {
            for mark in &marks {
                write_mark(writer, mark)?;
            }
            for event in &events {
                write_event(writer, event)?;
            }
        }
        summary.events.extend(events);
        if let Some(actors) = frame_actors {
            let noise_seed = seed_mix ^ step;
            let rgb = match writer.as_mut() {
                Some(writer) => write_frame(writer, &sim, &actors, now, options, noise_seed)?,
                None => {
                    render_camera(&Scene::build(&sim.scenario, &actors), &sim, now, options, noise_seed).rgb
                }
            };
            last_frame = Some((now, rgb));
            summary.frames += 1;
        }
        step += 1;
    }
    summary.duration_secs = sim.time_secs();
    summary.progress_m = sim.progress_m();
    if let Some(mut writer) = writer {
        write_state(&mut writer, sim.time_secs(), sim.ego())?;
        writer.finish()?;
    }
    Ok(summary)
}

/// Opens a drive and writes the sensors' mounting.
fn start_drive(out: &Path, scenario: &Scenario, options: &RecordOptions) -> Result<DriveWriter> {
    // zstd level 1: simulated sweeps are large and generated at many times
    // real time; the larger file is the better trade there.
    let mut writer =
        DriveWriter::create_with(out, DriveWriterOptions { zstd_level: 1, ..DriveWriterOptions::default() })?;
    let t0 = stamp(0.0);
    let tf_static = TfMessage {
        transforms: vec![
            transform_stamped(
                t0,
                frames::BASE_LINK,
                frames::CAMERA_FRONT,
                &options.camera.base_link_from_camera(),
            ),
            transform_stamped(
                t0,
                frames::BASE_LINK,
                frames::LIDAR_TOP,
                &options.lidar.base_link_from_lidar(),
            ),
        ],
    };
    writer.write(topics::TF_STATIC, t0, &tf_static)?;
    let recorded = DriveScenario {
        family: scenario.family.clone(),
        seed: scenario.seed,
        duration_s: scenario.duration_secs,
        disturb: options.disturb.name.clone(),
    };
    writer.write_metadata(SCENARIO_METADATA, recorded.to_metadata())?;
    Ok(writer)
}

fn write_mark(writer: &mut DriveWriter, mark: &Mark) -> Result<()> {
    let msg = Event {
        header: Header::new(stamp(mark.time_secs), frames::BASE_LINK),
        kind: mark.kind as u8,
        category: mark.category.clone(),
        detail: mark.detail.clone(),
        value: mark.value,
    };
    Ok(writer.write(topics::EVENTS, stamp(mark.time_secs), &msg)?)
}

fn write_event(writer: &mut DriveWriter, event: &SimEvent) -> Result<()> {
    let msg = Event {
        header: Header::new(stamp(event.time_secs), frames::BASE_LINK),
        kind: EventKind::Failure as u8,
        category: event.category.as_str().into(),
        detail: event.detail.clone(),
        value: event.value,
    };
    Ok(writer.write(topics::EVENTS, stamp(event.time_secs), &msg)?)
}

/// The camera frame at `camera_secs`.
fn render_camera(
    scene: &Scene<'_>,
    sim: &Sim,
    camera_secs: f64,
    options: &RecordOptions,
    noise_seed: u64,
) -> camera::CameraFrame {
    camera::render(
        scene,
        &sim.scenario.environment,
        &options.camera,
        &pose_at(sim.history(), camera_secs),
        noise_seed,
    )
}

/// Camera at `camera_secs`, lidar sweep centred on it, ground truth; returns the camera image.
fn write_frame(
    writer: &mut DriveWriter,
    sim: &Sim,
    actors: &[Actor],
    camera_secs: f64,
    options: &RecordOptions,
    noise_seed: u64,
) -> Result<image::RgbImage> {
    let scene = Scene::build(&sim.scenario, actors);
    let history = sim.history();
    let t = stamp(camera_secs);
    let frame = render_camera(&scene, sim, camera_secs, options, noise_seed);
    let jpeg = encode_jpeg(&frame.rgb, options.jpeg_quality)?;
    writer.write(topics::CAMERA_INFO, t, &options.camera.camera_info(t))?;
    let image =
        CompressedImage { header: Header::new(t, frames::CAMERA_FRONT), format: "jpeg".into(), data: jpeg };
    writer.write(topics::CAMERA_COMPRESSED, t, &image)?;
    let depth = Image {
        header: Header::new(t, frames::CAMERA_FRONT),
        height: options.camera.height,
        width: options.camera.width,
        encoding: "32FC1".into(),
        is_bigendian: 0,
        step: options.camera.width * 4,
        data: frame.depth_m.iter().flat_map(|d| d.to_le_bytes()).collect(),
    };
    writer.write(GT_DEPTH, t, &depth)?;
    writer.write(GT_OBJECTS, t, &objects_message(sim, actors, t))?;
    if !options.record_lidar {
        return Ok(frame.rgb);
    }
    let sweep_start = camera_secs - options.lidar.sweep_secs() / 2.0;
    let points = lidar::sweep(
        &scene,
        &options.lidar,
        |dt| pose_at(history, sweep_start + dt),
        noise_seed.rotate_left(17),
    );
    let cloud = to_point_cloud2(Header::new(stamp(sweep_start), frames::LIDAR_TOP), &points);
    writer.write(topics::LIDAR, stamp(sweep_start), &cloud)?;
    Ok(frame.rgb)
}

/// The disturbance plan of a run of `scenario` under `options`.
fn plan_of(scenario: &Scenario, options: &RecordOptions) -> DisturbancePlan {
    let duration = options.duration_secs.unwrap_or(scenario.duration_secs);
    DisturbancePlan::draw(&options.disturb, &scenario.family, scenario.seed, duration)
}

/// Records the expert driving `scenario`, disturbed as `options.disturb`
/// says (the expert alone when it says `none`).
pub fn record_expert(scenario: Scenario, out: &Path, options: &RecordOptions) -> Result<RunSummary> {
    if options.disturb.active() {
        let mut driver = DisturbedExpert::new(plan_of(&scenario, options), options.disturb.max_lateral_m);
        return simulate(scenario, options, Some(out), &mut driver);
    }
    record(scenario, out, options, |observation| observation.sim.expert_command())
}
