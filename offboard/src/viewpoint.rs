//! Viewpoint augmentation: a training frame seen from a car standing
//! beside and turned against where the recording car stood, with the plan
//! it should then drive.
//!
//! Behaviour cloning from an expert that holds the lane centre never shows
//! the network an off-centre view, so the model it trains cannot steer back
//! (the drift of the first closed-loop runs). Disturbed collection (DART)
//! shows some; this shows every frame that way, as PilotNet's shifted and
//! rotated views did. The new view is the recorded image re-projected under
//! a flat-ground assumption: pixels below the horizon lie on the ground
//! plane (exact for lane markings and the road edge, the cues lane keeping
//! needs), pixels above it are at infinity (exact for a pure rotation).
//! Raised objects near the car smear, which is why only a share of frames
//! is moved and why a moved frame's depth label is dropped. The camera's
//! height above the ground comes from the lidar depth labels of the drive
//! itself, never from a simulator.
//!
//! The plan label is the recorded path expressed in the moved car's frame,
//! with the start offset handed back over a critically damped recovery,
//! `w(t) = (1 + t/tau) exp(-t/tau)`: the car starts where it stands and
//! joins the recorded path, as the expert's pure pursuit would.
//!
//! Written here rather than through OpenCV's `warpPerspective`: the map is
//! a homography only for the ground part, and the offboard crate keeps
//! OpenCV out of training.

use nalgebra::{Matrix3, Rotation3, Vector3};
use nines_datasets::contract::ModelContract;
use serde::{Deserialize, Serialize};

/// Frames of a car slower than this, m/s, are never moved.
pub const MIN_SPEED_MPS: f64 = 3.0;

/// How training frames are moved (the training config's `[viewpoint]`).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ViewpointAugment {
    /// Share of training samples moved (0 turns it off).
    pub probability: f64,
    /// Lateral shift drawn uniformly within +-this, m.
    pub max_shift_m: f64,
    /// Heading change drawn uniformly within +-this, degrees.
    pub max_yaw_deg: f64,
    /// Time constant of the recovery the plan label asks for, s.
    pub recovery_time_s: f64,
}

impl Default for ViewpointAugment {
    fn default() -> Self {
        Self { probability: 0.5, max_shift_m: 1.0, max_yaw_deg: 6.0, recovery_time_s: 0.4 }
    }
}

impl ViewpointAugment {
    /// The config key that is out of range, and why.
    #[must_use]
    pub fn problem(&self) -> Option<(&'static str, &'static str)> {
        if !(0.0..=1.0).contains(&self.probability) {
            return Some(("viewpoint.probability", "must be in [0, 1]"));
        }
        if !(0.0..=2.0).contains(&self.max_shift_m) {
            return Some((
                "viewpoint.max_shift_m",
                "must be in [0, 2] m (farther than that the flat-ground view is mostly smear)",
            ));
        }
        if !(0.0..=15.0).contains(&self.max_yaw_deg) {
            return Some(("viewpoint.max_yaw_deg", "must be in [0, 15] degrees"));
        }
        if !(self.recovery_time_s > 0.0 && self.recovery_time_s <= 5.0) {
            return Some(("viewpoint.recovery_time_s", "must be in (0, 5] s"));
        }
        None
    }
}

/// One move of the car: left of where it was recorded, and turned left.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Shift {
    /// Lateral offset, m (positive: left, base_link y).
    pub lateral_m: f64,
    /// Heading change, rad (positive: turned left).
    pub yaw_rad: f64,
}

impl Shift {
    /// `plan` ([T, 3]: x, y, v per plan time, base_link of the recorded car)
    /// rewritten for the moved car: the recorded path in its frame, the
    /// start offset recovered with time constant `tau` s.
    pub fn move_plan(&self, plan: &mut [f32], times: &[f64], tau: f64) {
        let (sin, cos) = self.yaw_rad.sin_cos();
        // Into the moved frame: rotate by -yaw after subtracting its origin.
        let to_moved = |x: f64, y: f64| (cos * x + sin * y, -sin * x + cos * y);
        // The moved car's origin, less the recorded path's start, in its frame.
        let offset = to_moved(0.0, self.lateral_m);
        for (point, &t) in plan.chunks_exact_mut(3).zip(times) {
            let (x, y) = to_moved(f64::from(point[0]), f64::from(point[1]) - self.lateral_m);
            let w = (1.0 + t / tau) * (-t / tau).exp();
            point[0] = (x + w * offset.0) as f32;
            point[1] = (y + w * offset.1) as f32;
        }
    }
}

/// The label camera seen from the ground: where each pixel of a moved view
/// comes from in the recorded one.
#[derive(Debug, Clone)]
pub struct GroundView {
    /// Intrinsics at the image resolution.
    k: Matrix3<f64>,
    k_inv: Matrix3<f64>,
    /// base_link axes <- optical axes.
    base_from_optical: Rotation3<f64>,
    width: usize,
    height: usize,
}

impl GroundView {
    /// The contract's virtual camera at its input resolution.
    #[must_use]
    pub fn of_contract(contract: &ModelContract) -> Self {
        let k = contract.camera.k();
        Self {
            k,
            k_inv: k.try_inverse().unwrap_or_else(Matrix3::identity),
            base_from_optical: contract.camera.base_link_from_optical_rotation().to_rotation_matrix(),
            width: contract.input.width as usize,
            height: contract.input.height as usize,
        }
    }

    /// The camera's height above the ground, m, from one frame's depth
    /// labels (`depth`, row-major `[h, w]` at 1/`stride` of the input, 0 =
    /// none): the median drop below the camera of the labelled points in
    /// the lowest quarter of the image, which is road. None when fewer
    /// than 20 such points are labelled.
    #[must_use]
    pub fn height_from_depth(&self, depth: &[f32], [h, w]: [usize; 2], stride: usize) -> Option<f64> {
        let s = stride as f64;
        let mut drops: Vec<f64> = Vec::new();
        for row in h - h / 4..h {
            for col in 0..w {
                let d = f64::from(depth[row * w + col]);
                if d <= 0.0 {
                    continue;
                }
                // The label pixel's centre in input pixels.
                let (u, v) = ((col as f64 + 0.5) * s - 0.5, (row as f64 + 0.5) * s - 0.5);
                let ray = self.k_inv * Vector3::new(u, v, 1.0);
                let point = self.base_from_optical * (ray * d);
                drops.push(-point.z);
            }
        }
        if drops.len() < 20 {
            return None;
        }
        drops.sort_by(f64::total_cmp);
        let median = drops[drops.len() / 2];
        (median > 0.2 && median < 5.0).then_some(median)
    }

    /// For each pixel of the view from the car moved by `shift` (row-major),
    /// the recorded image's pixel (x, y) it shows, for a camera
    /// `camera_height_m` above flat ground.
    #[must_use]
    pub fn source_pixels(&self, shift: Shift, camera_height_m: f64) -> Vec<[f32; 2]> {
        let yaw = Rotation3::from_axis_angle(&Vector3::z_axis(), shift.yaw_rad);
        // Recorded optical <- moved optical, for directions.
        let rotate = self.base_from_optical.inverse() * yaw * self.base_from_optical;
        let origin = self.base_from_optical.inverse() * Vector3::new(0.0, shift.lateral_m, 0.0);
        let down = self.base_from_optical.inverse() * Vector3::new(0.0, 0.0, -1.0);
        let mut out = Vec::with_capacity(self.width * self.height);
        for v in 0..self.height {
            for u in 0..self.width {
                let ray = rotate * (self.k_inv * Vector3::new(u as f64, v as f64, 1.0));
                let descent = ray.dot(&down);
                // Below the horizon: the ground point; above: the direction.
                let seen = if descent > 1e-6 { origin + ray * (camera_height_m / descent) } else { ray };
                let pixel = self.k * seen;
                let z = pixel.z.max(1e-9);
                out.push([(pixel.x / z) as f32, (pixel.y / z) as f32]);
            }
        }
        out
    }
}

/// Bilinear sample of one `[height, width]` u8 plane at (x, y), clamped to the edge.
#[must_use]
pub fn sample(plane: &[u8], width: usize, height: usize, [x, y]: [f32; 2]) -> f32 {
    let x = x.clamp(0.0, (width - 1) as f32);
    let y = y.clamp(0.0, (height - 1) as f32);
    let (x0, y0) = (x.floor() as usize, y.floor() as usize);
    let (x1, y1) = ((x0 + 1).min(width - 1), (y0 + 1).min(height - 1));
    let (fx, fy) = (x - x0 as f32, y - y0 as f32);
    let at = |xx: usize, yy: usize| f32::from(plane[yy * width + xx]);
    let top = at(x0, y0) * (1.0 - fx) + at(x1, y0) * fx;
    let bottom = at(x0, y1) * (1.0 - fx) + at(x1, y1) * fx;
    top * (1.0 - fy) + bottom * fy
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view() -> GroundView {
        GroundView::of_contract(&ModelContract::default())
    }

    /// Depth labels of flat ground for a level camera `h` m up (stride 4).
    fn ground_depth(h: f64) -> (Vec<f32>, [usize; 2]) {
        let c = ModelContract::default().camera;
        let (dh, dw) = (32usize, 64usize);
        let mut depth = vec![0.0f32; dh * dw];
        for row in 0..dh {
            let v = (row as f64 + 0.5) * 4.0 - 0.5;
            if v > c.cy + 1.0 {
                for col in 0..dw {
                    depth[row * dw + col] = (c.fy * h / (v - c.cy)) as f32;
                }
            }
        }
        (depth, [dh, dw])
    }

    #[test]
    fn the_camera_height_comes_back_from_ground_depth() {
        let (depth, shape) = ground_depth(1.4);
        let h = view().height_from_depth(&depth, shape, 4).expect("enough ground");
        assert!((h - 1.4).abs() < 1e-6, "{h}");
        assert!(view().height_from_depth(&vec![0.0; shape[0] * shape[1]], shape, 4).is_none());
    }

    #[test]
    fn no_move_is_the_identity_and_a_turn_slides_the_horizon() {
        let view = view();
        let still = view.source_pixels(Shift { lateral_m: 0.0, yaw_rad: 0.0 }, 1.4);
        for (i, p) in still.iter().enumerate() {
            let (u, v) = ((i % 256) as f32, (i / 256) as f32);
            assert!((p[0] - u).abs() < 1e-3 && (p[1] - v).abs() < 1e-3, "{i}: {p:?}");
        }
        // Turned left by atan(1/128): what was straight ahead is now right
        // of the axis, so every row shows the recorded image a pixel to the left.
        let turned = view.source_pixels(Shift { lateral_m: 0.0, yaw_rad: (1.0f64 / 128.0).atan() }, 1.4);
        for v in [10, 63, 100] {
            let p = turned[v * 256 + 128];
            assert!((p[0] - 127.0).abs() < 0.05, "row {v}: {p:?}");
        }
        // Moved 1 m left: a ground point straight ahead now shows left of the
        // centre; the sky does not move.
        let moved = view.source_pixels(Shift { lateral_m: 1.0, yaw_rad: 0.0 }, 1.4);
        let ground = moved[100 * 256 + 128];
        // Row 100 is 36.5 rows below the centre: ground 4.9 m ahead, which
        // lies 1 m left of the recorded car: 26 pixels further left.
        assert!((ground[0] - (128.0 - 128.0 * 36.5 / (128.0 * 1.4))).abs() < 1e-3, "{ground:?}");
        assert!((ground[1] - 100.0).abs() < 1e-3, "{ground:?}");
        let sky = moved[10 * 256 + 40];
        assert!((sky[0] - 40.0).abs() < 1e-3 && (sky[1] - 10.0).abs() < 1e-3, "{sky:?}");
    }

    #[test]
    fn the_moved_plan_starts_at_the_car_and_rejoins_the_recorded_path() {
        let times = [0.5, 1.0, 1.5, 2.0, 2.5, 3.0];
        // Straight ahead at 10 m/s.
        let straight: Vec<f32> = times.iter().flat_map(|&t| [10.0 * t as f32, 0.0, 10.0]).collect();
        let mut plan = straight.clone();
        Shift { lateral_m: 1.0, yaw_rad: 0.0 }.move_plan(&mut plan, &times, 0.6);
        // Moved left: the path is to the right, and the plan heads back to it,
        // closer at every step.
        let ys: Vec<f32> = plan.chunks(3).map(|p| p[1]).collect();
        assert!(ys.windows(2).all(|w| w[1] < w[0]), "{ys:?}");
        assert!(ys[0] < 0.0 && ys[0] > -1.0 && (ys[5] + 1.0).abs() < 0.05, "{ys:?}");
        assert!(plan.chunks(3).all(|p| (p[2] - 10.0).abs() < 1e-6));
        // Turned left: the path bends right, growing with distance.
        let mut turned = straight;
        Shift { lateral_m: 0.0, yaw_rad: 0.1 }.move_plan(&mut turned, &times, 0.6);
        let ys: Vec<f32> = turned.chunks(3).map(|p| p[1]).collect();
        assert!(ys.windows(2).all(|w| w[1] < w[0]) && (ys[5] + 30.0 * 0.1f32.sin()).abs() < 1e-3, "{ys:?}");
        // No move: the plan is untouched.
        let mut same: Vec<f32> = times.iter().flat_map(|&t| [9.0 * t as f32, 0.3, 9.0]).collect();
        let before = same.clone();
        Shift { lateral_m: 0.0, yaw_rad: 0.0 }.move_plan(&mut same, &times, 0.6);
        assert!(same.iter().zip(&before).all(|(a, b)| (a - b).abs() < 1e-6));
    }

    #[test]
    fn sampling_is_bilinear_and_clamped() {
        let plane = [0u8, 100, 200, 50];
        assert!((sample(&plane, 2, 2, [0.5, 0.0]) - 50.0).abs() < 1e-4);
        assert!((sample(&plane, 2, 2, [0.5, 0.5]) - 87.5).abs() < 1e-4);
        assert!((sample(&plane, 2, 2, [-3.0, 9.0]) - 200.0).abs() < 1e-4);
    }
}
