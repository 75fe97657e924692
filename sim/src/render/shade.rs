//! Camera shading: base colours with procedural texture, sun and sky light
//! with cast shadows, headlights at night, fog.

use nalgebra::Vector3;

use super::scene::{Hit, Material, Scene};
use crate::scenario::{Environment, TimeOfDay};

/// Cheap deterministic hash of a lattice cell to 0..1.
fn hash(x: i64, y: i64, z: i64) -> f64 {
    let mut h = (x as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15)
        ^ (y as u64).wrapping_mul(0xC2B2_AE3D_27D4_EB4F)
        ^ (z as u64).wrapping_mul(0x1656_67B1_9E37_79F9);
    h ^= h >> 29;
    h = h.wrapping_mul(0xBF58_476D_1CE4_E5B9);
    h ^= h >> 32;
    (h >> 11) as f64 / (1u64 << 53) as f64
}

fn base_colour(hit: &Hit) -> Vector3<f64> {
    let p = hit.point;
    let grain = hash((p.x * 6.0).floor() as i64, (p.y * 6.0).floor() as i64, 0);
    match hit.material {
        Material::Asphalt => Vector3::repeat(0.22 + 0.06 * grain),
        Material::Paint => Vector3::new(0.85, 0.85, 0.8),
        Material::Kerb => Vector3::repeat(0.6),
        Material::Sidewalk => {
            Vector3::repeat(0.45 + 0.05 * hash((p.x * 1.5).floor() as i64, (p.y * 1.5).floor() as i64, 1))
        }
        Material::Grass => Vector3::new(0.2, 0.38 + 0.1 * grain, 0.12),
        Material::Building => {
            // Windows: a grid on the walls.
            let along = if hit.normal.x.abs() > hit.normal.y.abs() { p.y } else { p.x };
            let window = along.rem_euclid(3.0) < 1.6
                && p.z.rem_euclid(3.2) > 1.0
                && p.z.rem_euclid(3.2) < 2.4
                && p.z > 1.0;
            if window { Vector3::new(0.15, 0.2, 0.28) } else { Vector3::new(0.62, 0.55, 0.48) }
        }
        Material::Trunk => Vector3::new(0.35, 0.25, 0.15),
        Material::Foliage => Vector3::new(0.12, 0.35 + 0.15 * grain, 0.1),
        Material::Pole => Vector3::repeat(0.5),
        Material::Car(i) => [
            Vector3::new(0.7, 0.1, 0.1),
            Vector3::new(0.15, 0.25, 0.6),
            Vector3::repeat(0.85),
            Vector3::repeat(0.12),
            Vector3::new(0.6, 0.6, 0.65),
            Vector3::new(0.2, 0.45, 0.25),
        ][usize::from(i) % 6],
        Material::Glass => Vector3::new(0.08, 0.1, 0.12),
        Material::Pedestrian => Vector3::new(0.55, 0.3, 0.5),
        Material::Cone => Vector3::new(0.95, 0.4, 0.05),
    }
}

/// Sky colour for a viewing direction.
pub(crate) fn sky(env: &Environment, dir: &Vector3<f64>) -> Vector3<f64> {
    let up = dir.z.max(0.0);
    match env.time_of_day {
        TimeOfDay::Day => Vector3::new(0.55, 0.7, 0.9) * (1.0 - 0.4 * up) + Vector3::new(0.2, 0.3, 0.5) * up,
        TimeOfDay::Dusk => Vector3::new(0.85, 0.55, 0.35) * (1.0 - up) + Vector3::new(0.3, 0.3, 0.5) * up,
        TimeOfDay::Night => Vector3::new(0.02, 0.02, 0.05),
    }
}

/// Lighting for one frame.
pub(crate) struct Lighting {
    pub env: Environment,
    pub sun_dir: Vector3<f64>,
    pub sun_colour: Vector3<f64>,
    pub ambient: f64,
    /// Headlight origin and forward direction in the map (night only).
    pub headlights: Option<(Vector3<f64>, Vector3<f64>)>,
}

impl Lighting {
    pub fn new(env: Environment, headlights: (Vector3<f64>, Vector3<f64>)) -> Self {
        let (sa, ca) = env.sun_azimuth_rad.sin_cos();
        let (se, ce) = env.sun_elevation_rad.sin_cos();
        let sun_dir = Vector3::new(ca * ce, sa * ce, se);
        let (sun_colour, ambient, headlights) = match env.time_of_day {
            TimeOfDay::Day => (Vector3::new(1.0, 0.97, 0.9), 0.38, None),
            TimeOfDay::Dusk => (Vector3::new(1.0, 0.7, 0.45), 0.25, Some(headlights)),
            TimeOfDay::Night => (Vector3::zeros(), 0.04, Some(headlights)),
        };
        Self { env, sun_dir, sun_colour, ambient, headlights }
    }

    /// Colour seen along a ray that hit `hit` (or the sky).
    pub fn shade(&self, scene: &Scene<'_>, dir: &Vector3<f64>, hit: Option<&Hit>) -> Vector3<f64> {
        let Some(hit) = hit else { return self.fog(sky(&self.env, dir), f64::INFINITY) };
        let albedo = base_colour(hit);
        let mut light = Vector3::repeat(self.ambient);
        let facing = hit.normal.dot(&self.sun_dir);
        if facing > 0.0 && self.sun_dir.z > 0.0 {
            let from = hit.point + hit.normal * 1e-4;
            if !scene.occluded(&from, &self.sun_dir, 200.0) {
                light += self.sun_colour * facing;
            }
        }
        if let Some((origin, forward)) = self.headlights {
            let to = hit.point - origin;
            let distance = to.norm().max(0.1);
            let cone = (to / distance).dot(&forward);
            if cone > 0.9 {
                let beam = ((cone - 0.9) / 0.1).min(1.0);
                light += Vector3::repeat(
                    beam * 6.0 / (1.0 + (distance / 6.0).powi(2))
                        * (-hit.normal.dot(&(to / distance))).max(0.1),
                );
            }
        }
        self.fog(albedo.component_mul(&light), hit.t)
    }

    fn fog(&self, colour: Vector3<f64>, distance: f64) -> Vector3<f64> {
        if self.env.fog_visibility_m >= 4000.0 {
            return colour;
        }
        // Visibility is where contrast drops to 5%: exp(-3) ~ 0.05.
        let keep = (-3.0 * distance / self.env.fog_visibility_m).exp();
        let fog = match self.env.time_of_day {
            TimeOfDay::Night => Vector3::repeat(0.04),
            _ => Vector3::repeat(0.7),
        };
        colour * keep + fog * (1.0 - keep)
    }
}
