//! Label quality against the simulator's ground truth. Ground truth only
//! ever scores labels here; it is never a label.

use nalgebra::{Point2, Point3, Vector3};
use nines_datasets::calib::CameraModel;
use nines_datasets::geometry::{Iso3, isometry_from_pose};
use nines_datasets::msg::{Image, ObjectArray};
use nines_kernels::{DepthImage, Lens};
use serde::{Deserialize, Serialize};

use super::lead::{LeadOptions, Path2};

/// Sums that make the drive's quality figures.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct QualitySums {
    /// Frames scored.
    pub frames: usize,
    /// Single sweep: sum of |label - truth| / truth, pixels, pixels with truth.
    pub single: DepthSums,
    /// Accumulated sweeps, the same.
    pub accumulated: DepthSums,
    /// Frames where both truth and label have a lead: sum of |error| / truth.
    pub lead_rel_error_sum: f64,
    /// Those frames.
    pub lead_both: usize,
    /// Truth has a lead, the label has none.
    pub lead_missed: usize,
    /// The label has a lead, truth has none.
    pub lead_spurious: usize,
}

/// Depth error sums.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct DepthSums {
    /// Sum of |label - truth| / truth over labelled pixels with truth.
    pub abs_rel_sum: f64,
    /// Labelled pixels with truth.
    pub labelled: usize,
    /// Pixels with truth.
    pub with_truth: usize,
}

impl DepthSums {
    fn add(&mut self, other: &Self) {
        self.abs_rel_sum += other.abs_rel_sum;
        self.labelled += other.labelled;
        self.with_truth += other.with_truth;
    }
}

/// The figures `nines distill --report` prints.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Quality {
    /// Frames scored.
    pub frames: usize,
    /// Depth AbsRel of the current sweep alone.
    pub single_abs_rel: f64,
    /// Fraction of pixels with truth that the current sweep labels.
    pub single_coverage: f64,
    /// Depth AbsRel of the accumulated label.
    pub accumulated_abs_rel: f64,
    /// Fraction of pixels with truth the accumulated label covers.
    pub accumulated_coverage: f64,
    /// Mean |lead distance error| / true distance where both have a lead.
    pub lead_distance_rel_error: f64,
    /// Frames where both have a lead.
    pub lead_frames: usize,
    /// Truth has a lead the label missed.
    pub lead_missed: usize,
    /// The label has a lead truth lacks.
    pub lead_spurious: usize,
}

impl QualitySums {
    /// Adds another frame's (or drive's) sums.
    pub fn add(&mut self, other: &Self) {
        self.frames += other.frames;
        self.single.add(&other.single);
        self.accumulated.add(&other.accumulated);
        self.lead_rel_error_sum += other.lead_rel_error_sum;
        self.lead_both += other.lead_both;
        self.lead_missed += other.lead_missed;
        self.lead_spurious += other.lead_spurious;
    }

    /// The figures, `None` if nothing was scored.
    #[must_use]
    pub fn quality(&self) -> Option<Quality> {
        let ratio = |a: f64, b: usize| if b == 0 { 0.0 } else { a / b as f64 };
        (self.frames > 0).then(|| Quality {
            frames: self.frames,
            single_abs_rel: ratio(self.single.abs_rel_sum, self.single.labelled),
            single_coverage: ratio(self.single.labelled as f64, self.single.with_truth),
            accumulated_abs_rel: ratio(self.accumulated.abs_rel_sum, self.accumulated.labelled),
            accumulated_coverage: ratio(self.accumulated.labelled as f64, self.accumulated.with_truth),
            lead_distance_rel_error: ratio(self.lead_rel_error_sum, self.lead_both),
            lead_frames: self.lead_both,
            lead_missed: self.lead_missed,
            lead_spurious: self.lead_spurious,
        })
    }
}

/// Rays per axis a label pixel's footprint is sampled with.
const SUB: usize = 4;

/// Ground-truth depth resampled into the label camera: each label pixel
/// takes the nearest surface over its footprint (4x4 rays), which is what
/// "nearest point wins" labels stand for.
#[must_use]
pub fn truth_in_label_camera(
    truth: &Image,
    real: &CameraModel,
    real_from_label: &Iso3,
    label: &Lens,
    unproject_label: &dyn Fn(f64, f64) -> Vector3<f64>,
) -> Option<DepthImage> {
    if truth.encoding != "32FC1" || truth.width != real.width || truth.height != real.height {
        return None;
    }
    let at = |col: i64, row: i64| -> f32 {
        if col < 0 || row < 0 || col >= i64::from(truth.width) || row >= i64::from(truth.height) {
            return 0.0;
        }
        let i = (row as usize * truth.width as usize + col as usize) * 4;
        truth.data.get(i..i + 4).map_or(0.0, |b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    };
    let label_from_real = real_from_label.inverse();
    let mut out = DepthImage::empty(label.width, label.height);
    for row in 0..label.height {
        for col in 0..label.width {
            let mut nearest = f32::INFINITY;
            for j in 0..SUB {
                for i in 0..SUB {
                    let u = f64::from(col) + (i as f64 + 0.5) / SUB as f64 - 0.5;
                    let v = f64::from(row) + (j as f64 + 0.5) / SUB as f64 - 0.5;
                    let ray_real = real_from_label.rotation * unproject_label(u, v);
                    let Some(px) = real.project(&ray_real) else { continue };
                    let z = at((px.x + 0.5).floor() as i64, (px.y + 0.5).floor() as i64);
                    if !(z > 0.0 && z.is_finite()) {
                        continue;
                    }
                    // The surface point in the real camera, then its z in the label camera.
                    let p_real = ray_real / ray_real.z * f64::from(z);
                    let z_label = (label_from_real.rotation * p_real).z as f32;
                    nearest = nearest.min(z_label);
                }
            }
            if nearest.is_finite() {
                out.depth_m[(row * label.width + col) as usize] = nearest;
            }
        }
    }
    Some(out)
}

/// AbsRel sums of `label` against `truth` (same size).
#[must_use]
pub fn score_depth(label: &DepthImage, truth: &DepthImage) -> DepthSums {
    let mut sums = DepthSums::default();
    for (l, t) in label.depth_m.iter().zip(&truth.depth_m) {
        if *t > 0.0 {
            sums.with_truth += 1;
            if *l > 0.0 {
                sums.labelled += 1;
                sums.abs_rel_sum += f64::from((l - t).abs() / t);
            }
        }
    }
    sums
}

/// The true lead: the nearest point of any ground-truth box footprint
/// (sampled every 0.1 m around its edge) inside the corridor of `path`.
#[must_use]
pub fn true_lead_distance(
    objects: &ObjectArray,
    base_from_map: &Iso3,
    path: &Path2,
    options: &LeadOptions,
) -> Option<f64> {
    let mut best: Option<f64> = None;
    for object in &objects.objects {
        let Some(map_from_box) = isometry_from_pose(&object.pose) else { continue };
        let base_from_box = base_from_map * map_from_box;
        let (hl, hw) = (object.size.x / 2.0, object.size.y / 2.0);
        let corners = [(hl, hw), (-hl, hw), (-hl, -hw), (hl, -hw)];
        for k in 0..4 {
            let (a, b) = (corners[k], corners[(k + 1) % 4]);
            let steps = (((b.0 - a.0).hypot(b.1 - a.1)) / 0.1).ceil().max(1.0) as usize;
            for s in 0..=steps {
                let t = s as f64 / steps as f64;
                let local = Point3::new(a.0 + t * (b.0 - a.0), a.1 + t * (b.1 - a.1), 0.0);
                let p = base_from_box * local;
                let (along, lateral) = path.locate(&Point2::new(p.x, p.y));
                let inside = lateral.abs() <= options.corridor_half_width_m
                    && along >= options.min_distance_m
                    && along <= options.max_distance_m;
                if inside && best.is_none_or(|d| along < d) {
                    best = Some(along);
                }
            }
        }
    }
    best
}
