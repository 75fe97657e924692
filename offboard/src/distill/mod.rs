//! Distillation: one drive's lidar and poses into labels for each camera
//! frame (DESIGN.md section 3).
//!
//! The drive is read twice: a light pass for calibration, mounting and
//! poses ([`source::DriveSetup`]), then one pass in time order that keeps
//! only a sliding window of de-skewed sweeps, labelling each frame once the
//! sweeps it accumulates have arrived. Lead speeds, which need the frames on
//! both sides, are filled in at the end.

pub mod depth;
pub mod lead;
pub mod quality;
pub mod source;

use std::collections::VecDeque;
use std::path::Path;

use nalgebra::{Point2, Point3, Vector3};
use nines_datasets::contract::ModelContract;
use nines_datasets::drive::{DriveReader, ReadFilter};
use nines_datasets::geometry::Iso3;
use nines_datasets::image::decode_camera;
use nines_datasets::msg::{Image, ObjectArray};
use nines_datasets::topics;
use nines_kernels::{Kernels, Lens, Normalisation, RgbView, WarpSpec};

use self::depth::{DepthOptions, LabelCamera, depth_label};
use self::lead::{Lead, LeadOptions, Path2, find_lead};
use self::quality::{QualitySums, score_depth, true_lead_distance, truth_in_label_camera};
use self::source::{DriveSetup, Frame, POSE_MAX_GAP_NANOS, Sweep};
use crate::error::Result;
use crate::labels::{RecoveryStates, ShardLayout};

/// A sweep is a frame's own if its middle is this close to the frame (ns).
const CURRENT_SWEEP_NANOS: u64 = 150_000_000;
/// The driven path the lead corridor follows: this far ahead in time (s) ...
const PATH_HORIZON_SECS: f64 = 8.0;
/// ... sampled this often (s).
const PATH_STEP_SECS: f64 = 0.1;

/// Which camera the depth (and image) labels are in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LabelMode {
    /// The model contract's virtual camera at the label resolution.
    Virtual,
    /// The source camera's own geometry and resolution.
    Native,
}

/// How to distil.
#[derive(Debug, Clone)]
pub struct DistillOptions {
    /// The model contract (virtual camera, sizes, plan times).
    pub contract: ModelContract,
    /// Virtual or native camera.
    pub mode: LabelMode,
    /// Depth tunables.
    pub depth: DepthOptions,
    /// Lead tunables.
    pub lead: LeadOptions,
}

impl Default for DistillOptions {
    fn default() -> Self {
        Self {
            contract: ModelContract::default(),
            mode: LabelMode::Virtual,
            depth: DepthOptions::default(),
            lead: LeadOptions::default(),
        }
    }
}

/// The labels of one drive, as the shard stores them (row-major, frame first).
#[derive(Debug, Clone, Default)]
pub struct DriveLabels {
    /// Frames labelled.
    pub frames: usize,
    /// Camera frames skipped for want of an ego pose.
    pub skipped_frames: usize,
    /// The shapes of each frame's tensors (the shard's layout).
    pub layout: ShardLayout,
    /// u8 images, planar RGB.
    pub image: Vec<u8>,
    /// Camera z, m, 0 = unknown.
    pub depth: Vec<f32>,
    /// x, y, v per plan time.
    pub plan: Vec<f32>,
    /// 1 where the plan entry is known (and may be imitated).
    pub plan_valid: Vec<u8>,
    /// Plan entries made invalid because their window overlaps the model's
    /// own driving or a disturbance (/nines/control_source).
    pub plan_masked: usize,
    /// Frames with at least one masked plan entry.
    pub frames_masked: usize,
    /// Where the labelled frames put the vehicle against its lane centre,
    /// if the drive records it.
    pub recovery: Option<RecoveryStates>,
    /// Frames showing a recovery state (off-centre, turned, or a safety
    /// driver driving): training may sample them more often.
    pub recovering_frames: Vec<u32>,
    /// present, distance m, relative speed m/s.
    pub lead: Vec<f32>,
    /// distance known, speed known.
    pub lead_valid: Vec<u8>,
    /// Ego speed, m/s (0 where unknown).
    pub speed: Vec<f32>,
    /// Capture times, ns.
    pub stamp: Vec<i64>,
    /// Scores against simulator ground truth (zero frames on real drives).
    pub quality: QualitySums,
}

/// Where a frame's lead was, for the speed pass.
#[derive(Debug, Clone, Copy)]
struct LeadSighting {
    stamp_nanos: u64,
    distance_m: f64,
    map_xy: Point2<f64>,
}

/// One drive in progress.
struct Distiller<'a> {
    kernels: &'a Kernels,
    options: &'a DistillOptions,
    setup: DriveSetup,
    camera: LabelCamera,
    real_from_label: Iso3,
    warp: Option<WarpSpec>,
    out: DriveLabels,
    sightings: Vec<Option<LeadSighting>>,
}

/// Distils one drive. `on_frame` is called after each labelled frame.
pub fn distill_drive(
    path: &Path,
    kernels: &Kernels,
    options: &DistillOptions,
    on_frame: &(dyn Fn() + Sync),
) -> Result<DriveLabels> {
    let reader = DriveReader::open(path)?;
    let setup = DriveSetup::read(&reader)?;
    let mut distiller = Distiller::new(kernels, options, setup);
    let accumulate = options.depth.accumulate;
    let mut sweeps: VecDeque<Sweep> = VecDeque::new();
    let mut pending: VecDeque<Frame> = VecDeque::new();
    let mut messages = reader.messages(&ReadFilter::topics(distiller.setup.frame_topics()))?;
    while let Some(view) = messages.next_message() {
        let view = view?;
        match view.topic {
            t if t == distiller.setup.camera_topic => pending.push_back(Frame {
                stamp_nanos: view.log_time_nanos,
                rgb: decode_camera(&view)?,
                gt_depth: None,
                gt_objects: None,
            }),
            topics::GT_DEPTH => {
                let image = view.decode::<Image>()?;
                let stamp = image.header.stamp.as_nanos();
                if let Some(frame) = pending.iter_mut().rev().find(|f| f.stamp_nanos == stamp) {
                    frame.gt_depth = Some(image);
                }
            }
            topics::GT_OBJECTS => {
                let objects = view.decode::<ObjectArray>()?;
                let stamp = objects.header.stamp.as_nanos();
                if let Some(frame) = pending.iter_mut().rev().find(|f| f.stamp_nanos == stamp) {
                    frame.gt_objects = Some(objects);
                }
            }
            topics::LIDAR => {
                if let Some(sweep) = distiller.setup.sweep(&view)? {
                    sweeps.push_back(sweep);
                }
                // Label every frame whose later sweeps have all arrived.
                while let Some(front) = pending.front() {
                    let after = sweeps.iter().filter(|s| s.centre_nanos > front.stamp_nanos).count();
                    if after <= accumulate {
                        break;
                    }
                    let Some(frame) = pending.pop_front() else { break };
                    distiller.label(&frame, sweeps.make_contiguous())?;
                    on_frame();
                    let next = pending.front().map_or(frame.stamp_nanos, |f| f.stamp_nanos);
                    while sweeps.iter().filter(|s| s.centre_nanos < next).count() > accumulate + 1 {
                        sweeps.pop_front();
                    }
                }
            }
            _ => {}
        }
    }
    for frame in pending {
        distiller.label(&frame, sweeps.make_contiguous())?;
        on_frame();
    }
    Ok(distiller.finish())
}

impl<'a> Distiller<'a> {
    fn new(kernels: &'a Kernels, options: &'a DistillOptions, setup: DriveSetup) -> Self {
        let contract = &options.contract;
        let (camera, warp, image_shape) = match options.mode {
            LabelMode::Virtual => {
                let (lw, lh) = contract.label_size();
                let c = &contract.camera;
                let full = Lens::pinhole(
                    c.fx as f32,
                    c.fy as f32,
                    c.cx as f32,
                    c.cy as f32,
                    contract.input.width,
                    contract.input.height,
                );
                let camera = LabelCamera {
                    base_from_camera: c.mounted_like(&setup.base_from_camera),
                    lens: full.scaled_to(lw, lh),
                    radius: 1,
                };
                let warp = WarpSpec::to_virtual(
                    contract,
                    &setup.camera,
                    &setup.base_from_camera,
                    Normalisation::raw(),
                );
                (camera, Some(warp), [3, contract.input.height as usize, contract.input.width as usize])
            }
            LabelMode::Native => {
                let camera = LabelCamera {
                    base_from_camera: setup.base_from_camera,
                    lens: Lens::from_model(&setup.camera),
                    radius: 2,
                };
                (camera, None, [3, setup.camera.height as usize, setup.camera.width as usize])
            }
        };
        let out = DriveLabels {
            layout: ShardLayout {
                image: image_shape,
                depth: [camera.lens.height as usize, camera.lens.width as usize],
                plan_steps: contract.plan_times_secs.len(),
            },
            ..DriveLabels::default()
        };
        Self {
            real_from_label: setup.base_from_camera.inverse() * camera.base_from_camera,
            kernels,
            options,
            setup,
            camera,
            warp,
            out,
            sightings: Vec::new(),
        }
    }

    /// Labels one frame with the sweeps now held.
    fn label(&mut self, frame: &Frame, sweeps: &[Sweep]) -> Result<()> {
        let stamp = frame.stamp_nanos;
        let Some(map_from_base) = self.setup.ego_at(stamp) else {
            self.out.skipped_frames += 1;
            return Ok(());
        };
        self.push_image(&frame.rgb)?;
        let current = sweeps
            .iter()
            .enumerate()
            .min_by_key(|(_, s)| s.centre_nanos.abs_diff(stamp))
            .filter(|(_, s)| s.centre_nanos.abs_diff(stamp) <= CURRENT_SWEEP_NANOS)
            .map(|(i, _)| i);
        let path = self.driven_path(stamp);
        let k = self.options.depth.accumulate;
        let (label, lead) = match current {
            Some(c) => {
                let first = c.saturating_sub(k);
                let window: Vec<&Sweep> = sweeps[first..sweeps.len().min(c + k + 1)].iter().collect();
                let label = depth_label(
                    self.kernels,
                    &self.camera,
                    &map_from_base,
                    &window,
                    c - first,
                    &self.options.depth,
                )?;
                let base_from_lidar = map_from_base.inverse() * sweeps[c].map_from_lidar;
                let points: Vec<[f64; 3]> = sweeps[c]
                    .points
                    .iter()
                    .map(|p| {
                        let q =
                            base_from_lidar * Point3::new(f64::from(p[0]), f64::from(p[1]), f64::from(p[2]));
                        [q.x, q.y, q.z]
                    })
                    .collect();
                (Some(label), find_lead(&points, &path, &self.options.lead))
            }
            None => (None, None),
        };
        let depth = label.as_ref().map(|l| &l.accumulated);
        match depth {
            Some(d) => self.out.depth.extend_from_slice(&d.depth_m),
            None => self
                .out
                .depth
                .extend(std::iter::repeat_n(0.0, self.out.layout.depth[0] * self.out.layout.depth[1])),
        }
        self.push_lead(lead, &map_from_base, stamp);
        self.push_plan(stamp);
        if let Some((lateral, heading)) = self.setup.lane_at(stamp) {
            self.out.recovery.get_or_insert_with(RecoveryStates::default).add(lateral, heading);
        }
        if self.setup.recovering_at(stamp) {
            self.out.recovering_frames.push(self.out.frames as u32);
        }
        self.out.speed.push(self.setup.speed_at(stamp).unwrap_or(0.0) as f32);
        self.out.stamp.push(stamp as i64);
        self.out.frames += 1;
        if let Some(label) = &label {
            self.score(frame, &map_from_base, label, lead, &path);
        }
        Ok(())
    }

    fn push_image(&mut self, rgb: &image::RgbImage) -> Result<()> {
        let [_, h, w] = self.out.layout.image;
        if let Some(spec) = &self.warp {
            let src = RgbView { width: rgb.width(), height: rgb.height(), data: rgb.as_raw() };
            let mut planes = vec![0.0f32; spec.output_len()];
            self.kernels.warp_image(&src, spec, &mut planes)?;
            self.out.image.extend(planes.iter().map(|v| v.round().clamp(0.0, 255.0) as u8));
        } else {
            // Native: planar copy (a frame of another size than the first is cut or padded).
            let raw = rgb.as_raw();
            let pixels = (rgb.width() as usize * rgb.height() as usize).min(w * h);
            for c in 0..3 {
                self.out.image.extend((0..pixels).map(|i| raw[i * 3 + c]));
                self.out.image.extend(std::iter::repeat_n(0, w * h - pixels));
            }
        }
        Ok(())
    }

    /// The ego's own future path in base_link at `stamp`, extended straight.
    fn driven_path(&self, stamp: u64) -> Path2 {
        let steps = (PATH_HORIZON_SECS / PATH_STEP_SECS) as u64;
        let offsets: Vec<u64> = (0..=steps).map(|i| (i as f64 * PATH_STEP_SECS * 1e9) as u64).collect();
        let points = self
            .setup
            .poses
            .ahead_in_own_frame(stamp, &offsets, POSE_MAX_GAP_NANOS)
            .into_iter()
            .map_while(|p| p.map(|p| Point2::new(p.translation.x, p.translation.y)))
            .collect();
        Path2::extended(points, self.options.lead.max_distance_m + 10.0)
    }

    /// Presence, distance and (for now) unknown speed; no lead, or no sweep, is all zeros.
    fn push_lead(&mut self, lead: Option<Lead>, map_from_base: &Iso3, stamp: u64) {
        let sighting = lead.map(|l| {
            let p = map_from_base * Point3::new(l.nearest.x, l.nearest.y, 0.0);
            LeadSighting { stamp_nanos: stamp, distance_m: l.distance_m, map_xy: Point2::new(p.x, p.y) }
        });
        if let Some(s) = sighting {
            self.out.lead.extend([1.0, s.distance_m as f32, 0.0]);
            self.out.lead_valid.extend([1, 0]);
        } else {
            self.out.lead.extend([0.0; 3]);
            self.out.lead_valid.extend([0, 0]);
        }
        self.sightings.push(sighting);
    }

    /// The driven path at the contract's plan times. A point whose window
    /// [now, now + t] overlaps the model's own driving or an injected
    /// disturbance is invalid: the label imitates the reaction, never the drift.
    fn push_plan(&mut self, stamp: u64) {
        let times = &self.options.contract.plan_times_secs;
        let offsets: Vec<u64> = times.iter().map(|t| (t * 1e9) as u64).collect();
        let ahead = self.setup.poses.ahead_in_own_frame(stamp, &offsets, POSE_MAX_GAP_NANOS);
        let masked_before = self.out.plan_masked;
        for (pose, offset) in ahead.iter().zip(&offsets) {
            let speed = self.setup.speed_at(stamp + offset);
            if self.setup.not_imitable.overlaps(stamp, stamp + offset) {
                self.out.plan.extend([0.0; 3]);
                self.out.plan_valid.push(0);
                self.out.plan_masked += 1;
            } else if let (Some(p), Some(v)) = (pose, speed) {
                self.out.plan.extend([p.translation.x as f32, p.translation.y as f32, v as f32]);
                self.out.plan_valid.push(1);
            } else {
                self.out.plan.extend([0.0; 3]);
                self.out.plan_valid.push(0);
            }
        }
        self.out.frames_masked += usize::from(self.out.plan_masked > masked_before);
    }

    fn score(
        &mut self,
        frame: &Frame,
        map_from_base: &Iso3,
        label: &depth::DepthLabel,
        lead: Option<Lead>,
        path: &Path2,
    ) {
        let mut sums = QualitySums::default();
        if let Some(gt) = &frame.gt_depth {
            let lens = self.camera.lens;
            let native = self.options.mode == LabelMode::Native;
            let camera = &self.setup.camera;
            let unproject = |u: f64, v: f64| {
                if native {
                    camera.unproject(&nalgebra::Point2::new(u, v))
                } else {
                    Vector3::new(
                        (u - f64::from(lens.cx)) / f64::from(lens.fx),
                        (v - f64::from(lens.cy)) / f64::from(lens.fy),
                        1.0,
                    )
                }
            };
            if let Some(truth) = truth_in_label_camera(gt, camera, &self.real_from_label, &lens, &unproject) {
                sums.frames = 1;
                sums.single = score_depth(&label.single, &truth);
                sums.accumulated = score_depth(&label.accumulated, &truth);
            }
        }
        if let Some(objects) = &frame.gt_objects {
            sums.frames = 1;
            let truth = true_lead_distance(objects, &map_from_base.inverse(), path, &self.options.lead);
            match (truth, lead) {
                (Some(t), Some(l)) => {
                    sums.lead_both = 1;
                    sums.lead_rel_error_sum = (l.distance_m - t).abs() / t;
                }
                (Some(_), None) => sums.lead_missed = 1,
                (None, Some(_)) => sums.lead_spurious = 1,
                (None, None) => {}
            }
        }
        self.out.quality.add(&sums);
    }

    /// Relative lead speed from the same lead seen in the frames either side
    /// (matched in the map frame, so the ego's own motion does not confuse
    /// the association); the rate of change of the gap.
    fn finish(mut self) -> DriveLabels {
        const GATE_M: f64 = 1.5;
        const CLOSING_MPS: f64 = 40.0;
        let same = |a: &LeadSighting, b: &LeadSighting| {
            let dt = a.stamp_nanos.abs_diff(b.stamp_nanos) as f64 * 1e-9;
            dt > 0.0 && dt < 0.5 && (a.map_xy - b.map_xy).norm() < GATE_M + CLOSING_MPS * dt
        };
        let n = self.sightings.len();
        for i in 0..n {
            let Some(now) = self.sightings[i] else { continue };
            let before = i.checked_sub(1).and_then(|j| self.sightings[j]).filter(|s| same(&now, s));
            let after = self.sightings.get(i + 1).copied().flatten().filter(|s| same(&now, s));
            let (a, b) = match (before, after) {
                (Some(a), Some(b)) => (a, b),
                (Some(a), None) => (a, now),
                (None, Some(b)) => (now, b),
                (None, None) => continue,
            };
            let dt = (b.stamp_nanos - a.stamp_nanos) as f64 * 1e-9;
            self.out.lead[i * 3 + 2] = ((b.distance_m - a.distance_m) / dt) as f32;
            self.out.lead_valid[i * 2 + 1] = 1;
        }
        self.out
    }
}
