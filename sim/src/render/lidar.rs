//! The simulated spinning lidar: beams from `min_elevation` to
//! `max_elevation`, columns swept clockwise from facing backwards, each
//! column cast from where the vehicle is at that instant (so a moving
//! vehicle's sweep is skewed, as on a real car), with range noise, dropout
//! and intensity by material and incidence.

use nalgebra::{Point3, Translation3, UnitQuaternion, Vector3};
use nines_datasets::geometry::Iso3;
use nines_datasets::pointcloud::LidarPoint;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::scene::Scene;

/// Azimuth sectors that share a list of candidate boxes.
const AZIMUTH_BINS: usize = 256;

/// Lidar geometry, timing and noise.
#[derive(Debug, Clone)]
pub struct LidarConfig {
    /// Beams.
    pub beams: u16,
    /// Lowest beam, degrees.
    pub min_elevation_deg: f64,
    /// Highest beam, degrees.
    pub max_elevation_deg: f64,
    /// Azimuth steps per revolution.
    pub columns: u16,
    /// Revolutions per second.
    pub rate_hz: f64,
    /// No return beyond this, m.
    pub max_range_m: f64,
    /// Range noise, standard deviation, m.
    pub range_noise_m: f64,
    /// Fraction of returns lost.
    pub dropout: f64,
    /// Sensor position on base_link (x forward, z up), m.
    pub mount_m: (f64, f64),
}

impl Default for LidarConfig {
    fn default() -> Self {
        Self {
            beams: 32,
            min_elevation_deg: -25.0,
            max_elevation_deg: 15.0,
            columns: 1024,
            rate_hz: 10.0,
            max_range_m: 120.0,
            range_noise_m: 0.02,
            dropout: 0.01,
            mount_m: (1.2, 1.9),
        }
    }
}

impl LidarConfig {
    /// `base_link_from_lidar` (axes aligned with base_link).
    #[must_use]
    pub fn base_link_from_lidar(&self) -> Iso3 {
        Iso3::from_parts(Translation3::new(self.mount_m.0, 0.0, self.mount_m.1), UnitQuaternion::identity())
    }

    /// Sweep duration, s.
    #[must_use]
    pub fn sweep_secs(&self) -> f64 {
        1.0 / self.rate_hz
    }
}

/// One sweep. `map_from_base_at(dt)` gives the vehicle pose `dt` seconds
/// after the sweep start; points are in the lidar frame at their own capture
/// time, with `time` = seconds since the sweep start.
pub fn sweep(
    scene: &Scene<'_>,
    config: &LidarConfig,
    map_from_base_at: impl Fn(f64) -> Iso3,
    noise_seed: u64,
) -> Vec<LidarPoint> {
    let mut rng = ChaCha8Rng::seed_from_u64(noise_seed);
    let base_from_lidar = config.base_link_from_lidar();
    let beams: Vec<(u16, f64, f64)> = (0..config.beams)
        .map(|i| {
            let span = config.max_elevation_deg - config.min_elevation_deg;
            let elevation = (config.min_elevation_deg
                + span * f64::from(i) / f64::from(config.beams.max(2) - 1))
            .to_radians();
            (i, elevation.sin(), elevation.cos())
        })
        .collect();
    let mut points = Vec::with_capacity(usize::from(config.beams) * usize::from(config.columns));
    // Candidate boxes per azimuth sector, from the mid-sweep pose, widened by
    // how far the sensor moves and turns during the sweep.
    let (start, mid, end) = (
        map_from_base_at(0.0),
        map_from_base_at(config.sweep_secs() / 2.0),
        map_from_base_at(config.sweep_secs()),
    );
    let travel = (end.translation.vector - start.translation.vector).norm() + 0.05;
    let turn = start.rotation.angle_to(&end.rotation) + 0.01;
    let sectors = scene.azimuth_bins(&(mid * base_from_lidar).inverse(), AZIMUTH_BINS, travel, turn);
    for column in 0..config.columns {
        let fraction = f64::from(column) / f64::from(config.columns);
        let dt = fraction * config.sweep_secs();
        let map_from_lidar = map_from_base_at(dt) * base_from_lidar;
        let origin = map_from_lidar.translation.vector;
        let azimuth = std::f64::consts::PI - std::f64::consts::TAU * fraction;
        let (sa, ca) = azimuth.sin_cos();
        let sector =
            (((azimuth + std::f64::consts::PI) / std::f64::consts::TAU * AZIMUTH_BINS as f64).floor()
                as usize)
                .min(AZIMUTH_BINS - 1);
        for &(ring, se, ce) in &beams {
            let local = Vector3::new(ce * ca, ce * sa, se);
            let dir = map_from_lidar.rotation * local;
            let Some(hit) = scene.cast_among(&origin, &dir, config.max_range_m, &sectors[sector]) else {
                continue;
            };
            if rng.random::<f64>() < config.dropout {
                continue;
            }
            let noise = config.range_noise_m
                * (rng.random::<f64>() + rng.random::<f64>() + rng.random::<f64>() - 1.5)
                * 2.0;
            let range = hit.t + noise;
            let incidence = hit.normal.dot(&-dir).abs();
            let p = Point3::from(local * range);
            points.push(LidarPoint {
                x: p.x as f32,
                y: p.y as f32,
                z: p.z as f32,
                intensity: (hit.material.reflectivity() * (0.3 + 0.7 * incidence)) as f32,
                ring,
                time: dt as f32,
            });
        }
    }
    points
}
