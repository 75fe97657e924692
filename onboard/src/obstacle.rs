//! Obstacles in the planned corridor from the network's depth output.
//!
//! The depth head is trained on lidar and is the network's best-learnt
//! output; the lead head learns from far fewer examples (a lead near enough
//! to matter is rare in expert driving). So the runtime also reads the depth
//! map directly: every depth pixel is lifted into base_link through the
//! contract's virtual camera and the camera's mounting, and a point that
//! stands above the ground (`min_height_m` or more) inside the plan's
//! corridor is an obstacle, when the pixel below it is about as far (a
//! standing surface, where the road's depth falls fast from row to row).
//! Only pixels below the horizon count: lidar
//! never returns from the sky, so the depth head learns nothing there, and
//! whatever stands on the road reaches below the camera. The nearest such
//! distance, with its closing speed over the last frames, is followed like
//! a lead.
//!
//! The ground is base_link's z = 0 (REP 105's base_footprint); a depth that
//! is too short on the road lifts road pixels, so the height threshold sits
//! well above what the depth head's error does at the distances that
//! matter (a 20% short depth lifts a road point 0.28 m for a camera 1.4 m up).

use nalgebra::{Matrix3, Vector3};
use nines_datasets::contract::ModelContract;
use nines_datasets::geometry::Iso3;

use crate::controller::Prediction;

/// Obstacle points nearer than this are the vehicle's own bonnet or noise, m.
const MIN_RANGE_M: f32 = 1.0;
/// Obstacle points farther than this are not looked at, m: near the
/// horizon a road pixel spans tens of metres and its depth is least sure.
const MAX_RANGE_M: f32 = 40.0;
/// Rays less steep than this below the horizon are not looked at (dz per
/// metre of depth).
const MIN_DESCENT: f32 = 0.01;
/// An obstacle needs at least this many depth pixels (one pixel is noise).
const MIN_PIXELS: usize = 4;
/// Depth pixels of one obstacle lie within this fraction of its distance.
const CLUSTER: f32 = 0.15;
/// An obstacle covers at least this share of the pixels a car's rear
/// (1.8 m wide, 1.2 m of it below the camera) covers at its distance: 0.15
/// rather than 0.3 on the tuning suite (suites/tune.toml, docs/NINES.md),
/// where it took failures from 28 to 26 and collisions from 10 to 8 with
/// no false braking on parked cars (0.08 braked for them).
const SUPPORT: f32 = 0.15;
/// An obstacle is reported once seen in this many frames in a row.
const CONFIRM_FRAMES: usize = 3;
/// Largest relative depth change to the pixel below for a standing surface.
const VERTICAL: f32 = 0.1;
/// Frames the closing speed is fitted over.
const TRACK_FRAMES: usize = 5;
/// A depth map that puts more than this share of the corridor's pixels
/// below the ground is no scene (an untrained or lost network's depth is
/// near uniform: a wall across the whole view): it shows no obstacles.
const UNDERGROUND: f32 = 0.2;

/// What makes a depth pixel an obstacle.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CorridorSpec {
    /// Lowest height above the ground of an obstacle point, m.
    pub min_height_m: f32,
    /// Half the corridor's width about the plan, m.
    pub half_width_m: f32,
}

/// The depth map's pixels as rays in base_link, from the camera.
#[derive(Debug, Clone)]
pub struct DepthCorridor {
    /// Camera position in base_link, m.
    origin: [f32; 3],
    /// Per depth pixel, base_link direction per metre of depth (optical z).
    rays: Vec<[f32; 3]>,
    /// Depth map columns.
    width: usize,
    /// Depth pixels a car's rear covers 1 m away (times 1/distance^2 farther).
    pixels_per_m2: f32,
    spec: CorridorSpec,
    /// The frame's obstacle points' distances (allocated once: the runtime's
    /// steady state allocates nothing).
    near: Vec<f32>,
}

impl DepthCorridor {
    /// For a model with `contract`, its depth output at 1/`label_stride`
    /// of the input, on a camera mounted at `base_link_from_camera`.
    #[must_use]
    pub fn new(contract: &ModelContract, base_link_from_camera: &Iso3, spec: CorridorSpec) -> Self {
        let stride = f64::from(contract.label_stride.max(1));
        let (w, h) = (
            (contract.input.width as usize) / contract.label_stride.max(1) as usize,
            (contract.input.height as usize) / contract.label_stride.max(1) as usize,
        );
        let k_inv = contract.camera.k().try_inverse().unwrap_or_else(Matrix3::identity);
        let rotation = contract.camera.base_link_from_optical_rotation();
        let mut rays = Vec::with_capacity(w * h);
        for row in 0..h {
            for col in 0..w {
                let (u, v) = ((col as f64 + 0.5) * stride - 0.5, (row as f64 + 0.5) * stride - 0.5);
                let ray = rotation * (k_inv * Vector3::new(u, v, 1.0));
                rays.push([ray.x as f32, ray.y as f32, ray.z as f32]);
            }
        }
        let t = base_link_from_camera.translation.vector;
        let (fx, fy) = (contract.camera.fx / stride, contract.camera.fy / stride);
        let pixels_per_m2 = (1.8 * fx * 1.2 * fy) as f32;
        let near = Vec::with_capacity(rays.len());
        Self { origin: [t.x as f32, t.y as f32, t.z as f32], rays, width: w, pixels_per_m2, spec, near }
    }

    /// Distance ahead (base_link x, m) of the nearest obstacle in `plan`'s
    /// corridor in `depth` (metres per pixel, row-major), if any.
    pub fn nearest(&mut self, depth: &[f32], plan: &Prediction) -> Option<f32> {
        let near = &mut self.near;
        near.clear();
        let (mut looked, mut underground) = (0usize, 0usize);
        for (i, (ray, &d)) in self.rays.iter().zip(depth).enumerate() {
            if !d.is_finite() || d <= 0.0 || ray[2] > -MIN_DESCENT {
                continue;
            }
            let p = [self.origin[0] + d * ray[0], self.origin[1] + d * ray[1], self.origin[2] + d * ray[2]];
            if p[0] < MIN_RANGE_M
                || p[0] > MAX_RANGE_M
                || (p[1] - lateral_at(plan, p[0])).abs() > self.spec.half_width_m
            {
                continue;
            }
            looked += 1;
            if p[2] < -self.spec.min_height_m {
                underground += 1;
                continue;
            }
            // Something standing: the pixel below is as far (a road's depth
            // falls fast from row to row; a depth too short on the road
            // lifts it, but leaves that fall).
            let below = depth.get(i + self.width).copied().unwrap_or(0.0);
            if p[2] >= self.spec.min_height_m && (below - d).abs() <= VERTICAL * d {
                near.push(p[0]);
            }
        }
        if underground as f32 > UNDERGROUND * looked as f32 {
            return None;
        }
        near.sort_unstable_by(f32::total_cmp);
        // The nearest distance with enough pixels about it for something of
        // a car's size there (a patch of road with a wrong depth is smaller).
        near.iter().enumerate().find_map(|(i, &x)| {
            let count = near[i..].iter().take_while(|&&y| y <= x * (1.0 + CLUSTER)).count();
            let wanted = (SUPPORT * self.pixels_per_m2 / (x * x)).max(MIN_PIXELS as f32);
            (count as f32 >= wanted).then_some(x)
        })
    }
}

/// The plan's lateral position (y) where it is `x` ahead: linear along the
/// polyline from the origin through the plan points, held past its end.
fn lateral_at(plan: &Prediction, x: f32) -> f32 {
    let mut from = [0.0f32, 0.0];
    for p in plan.points() {
        if x <= p[0] {
            let span = p[0] - from[0];
            let a = if span > 1e-3 { ((x - from[0]) / span).clamp(0.0, 1.0) } else { 1.0 };
            return from[1] + a * (p[1] - from[1]);
        }
        from = [p[0], p[1]];
    }
    from[1]
}

/// The obstacle followed from frame to frame: its distance and closing
/// speed, the least-squares slope of its distance over the last `N` frames
/// (a difference of two noisy distances would brake for noise).
#[derive(Debug, Clone, Copy)]
pub struct ObstacleTrack<const N: usize = TRACK_FRAMES> {
    /// (stamp ns, distance m), oldest first; the first `len` are in use.
    seen: [(u64, f32); N],
    len: usize,
}

impl<const N: usize> Default for ObstacleTrack<N> {
    fn default() -> Self {
        Self { seen: [(0, 0.0); N], len: 0 }
    }
}

impl<const N: usize> ObstacleTrack<N> {
    /// Takes a frame's nearest obstacle at `stamp_ns`; returns distance m
    /// and relative speed m/s (negative: closing), or None.
    pub fn update(&mut self, stamp_ns: u64, nearest: Option<f32>) -> Option<(f32, f32)> {
        let Some(distance) = nearest else {
            self.len = 0;
            return None;
        };
        // A jump of more than 5 m, or a gap of a second, starts another track.
        if self.len > 0 {
            let (t, d) = self.seen[self.len - 1];
            if (distance - d).abs() > 5.0 || stamp_ns.saturating_sub(t) > 1_000_000_000 || stamp_ns < t {
                self.len = 0;
            }
        }
        if self.len == N {
            self.seen.copy_within(1.., 0);
            self.len -= 1;
        }
        self.seen[self.len] = (stamp_ns, distance);
        self.len += 1;
        // Depth noise flickers; what stands in the way stays.
        (self.len >= CONFIRM_FRAMES).then(|| (distance, self.closing_speed()))
    }

    fn closing_speed(&self) -> f32 {
        let seen = &self.seen[..self.len];
        let Some(&(t0, _)) = seen.first() else { return 0.0 };
        if seen.len() < 3 {
            return 0.0;
        }
        let n = seen.len() as f64;
        let point = |&(t, d): &(u64, f32)| ((t - t0) as f64 / 1e9, f64::from(d));
        let (mt, md) = seen.iter().map(point).fold((0.0, 0.0), |(a, b), (t, d)| (a + t / n, b + d / n));
        let (num, den) = seen
            .iter()
            .map(point)
            .fold((0.0, 0.0), |(num, den), (t, d)| (num + (t - mt) * (d - md), den + (t - mt) * (t - mt)));
        if den > 1e-9 { (num / den) as f32 } else { 0.0 }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nines_datasets::geometry::Iso3;

    fn corridor() -> (DepthCorridor, ModelContract) {
        let contract = ModelContract::default();
        let mount = Iso3::translation(1.6, 0.0, 1.4);
        let spec = CorridorSpec { min_height_m: 0.5, half_width_m: 1.3 };
        (DepthCorridor::new(&contract, &mount, spec), contract)
    }

    /// Depth of flat ground for the default (level) virtual camera 1.4 m up,
    /// 120 m above the horizon; with a wall (distance m, first column, end column).
    fn scene(contract: &ModelContract, wall: Option<(f64, usize, usize)>) -> Vec<f32> {
        let c = &contract.camera;
        let (w, h) = (64usize, 32usize);
        let mut depth = vec![120.0f32; w * h];
        for row in 0..h {
            let v = (row as f64 + 0.5) * 4.0 - 0.5;
            for col in 0..w {
                let ground = if v > c.cy { (c.fy * 1.4 / (v - c.cy)).min(120.0) } else { 120.0 };
                let mut d = ground;
                if let Some((wall_m, first, end)) = wall {
                    // The wall stands from the ground to 1.5 m up.
                    let height_seen = 1.4 - (v - c.cy) / c.fy * wall_m;
                    if (first..end).contains(&col) && wall_m < ground && (0.0..=1.5).contains(&height_seen) {
                        d = wall_m;
                    }
                }
                depth[row * w + col] = d as f32;
            }
        }
        depth
    }

    fn straight(times: &[f64]) -> Prediction {
        let mut p = Prediction::new(times);
        for (i, t) in times.iter().enumerate() {
            p.plan[i] = [(10.0 * t) as f32, 0.0, 10.0];
        }
        p
    }

    #[test]
    fn the_road_is_no_obstacle_and_a_wall_in_the_corridor_is() {
        let (mut corridor, contract) = corridor();
        let plan = straight(&contract.plan_times_secs);
        assert_eq!(corridor.nearest(&scene(&contract, None), &plan), None);
        // A wall 15 m ahead of the camera (16.6 m of base_link), across the middle.
        let depth = scene(&contract, Some((15.0, 28, 36)));
        let d = corridor.nearest(&depth, &plan).expect("the wall");
        assert!((d - 16.6).abs() < 0.05, "{d}");
        // The same wall when the plan turns away from it by more than the corridor.
        let mut away = plan;
        for p in &mut away.plan[..away.len] {
            p[1] = p[0] * 0.5;
        }
        assert_eq!(corridor.nearest(&depth, &away), None);
        // A patch one pixel wide at 15 m is too small for anything standing there.
        assert_eq!(corridor.nearest(&scene(&contract, Some((15.0, 31, 32))), &plan), None);
        // Short depth on the road (20% everywhere) does not lift it into an obstacle.
        let short: Vec<f32> = scene(&contract, None).iter().map(|d| d * 0.8).collect();
        assert_eq!(corridor.nearest(&short, &plan), None);
        // Nor does long depth (20% everywhere) hide the wall.
        let long: Vec<f32> = depth.iter().map(|d| d * 1.2).collect();
        assert!(corridor.nearest(&long, &plan).is_some(), "the wall, 20% farther");
        // A near-uniform depth (an untrained network's) is no scene: were it
        // read as one, it would be a wall across the whole view.
        assert_eq!(corridor.nearest(&vec![10.0f32; depth.len()], &plan), None);
    }

    #[test]
    fn the_track_measures_closing_speed_and_forgets_a_lost_obstacle() {
        let mut track: ObstacleTrack = ObstacleTrack::default();
        let s = 1_000_000_000u64;
        assert_eq!(track.update(0, Some(30.0)), None, "seen once: not yet");
        assert_eq!(track.update(s / 10, Some(29.0)), None);
        let (_, v) = track.update(2 * s / 10, Some(28.0)).unwrap();
        assert!((v + 10.0).abs() < 1e-3, "{v}");
        // Noise of +-0.5 m about a steady 10 m/s close stays near -10 m/s.
        for (i, noise) in [0.5f32, -0.5, 0.5, -0.5].iter().enumerate() {
            let t = (3 + i as u64) * s / 10;
            let (_, v) = track.update(t, Some(27.0 - i as f32 + noise)).unwrap();
            assert!((v + 10.0).abs() < 6.0, "{v}");
        }
        assert_eq!(track.update(8 * s / 10, None), None);
        assert_eq!(track.update(9 * s / 10, Some(27.0)), None, "lost, then seen once again");
    }
}
