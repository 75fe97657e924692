//! The simulated front camera: pinhole, mounted on base_link, rendering RGB
//! (with exposure and noise) and a ground-truth depth image of camera z.

use image::RgbImage;
use nalgebra::{Rotation3, Translation3, UnitQuaternion, Vector3};
use nines_datasets::geometry::Iso3;
use nines_datasets::msg::{CameraInfo, Header};
use nines_datasets::topics::frames;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::scene::Scene;
use super::shade::Lighting;
use crate::scenario::Environment;

/// Camera resolution, field of view and mounting.
#[derive(Debug, Clone)]
pub struct CameraConfig {
    /// Columns.
    pub width: u32,
    /// Rows.
    pub height: u32,
    /// Horizontal field of view, degrees.
    pub hfov_deg: f64,
    /// Optical centre forward of the rear axle, m.
    pub forward_m: f64,
    /// Optical centre height, m.
    pub height_m: f64,
    /// Downward pitch, degrees.
    pub pitch_down_deg: f64,
    /// Exposure gain.
    pub exposure: f64,
    /// Pixel noise, standard deviation in 0..1 units.
    pub noise: f64,
    /// plumb_bob distortion k1 k2 p1 p2 k3 (all zero: ideal pinhole).
    pub distortion: [f64; 5],
}

impl Default for CameraConfig {
    fn default() -> Self {
        Self {
            width: 512,
            height: 256,
            hfov_deg: 90.0,
            forward_m: 1.6,
            height_m: 1.4,
            pitch_down_deg: 2.0,
            exposure: 1.0,
            noise: 0.01,
            distortion: [0.0; 5],
        }
    }
}

impl CameraConfig {
    /// Focal length, pixels (square pixels).
    #[must_use]
    pub fn focal_px(&self) -> f64 {
        f64::from(self.width) / 2.0 / (self.hfov_deg.to_radians() / 2.0).tan()
    }

    /// `base_link_from_camera`: optical frame x right, y down, z forward.
    #[must_use]
    pub fn base_link_from_camera(&self) -> Iso3 {
        let optical = Rotation3::from_matrix_unchecked(nalgebra::Matrix3::new(
            0.0, 0.0, 1.0, -1.0, 0.0, 0.0, 0.0, -1.0, 0.0,
        ));
        let pitch = Rotation3::from_axis_angle(&Vector3::y_axis(), self.pitch_down_deg.to_radians());
        Iso3::from_parts(
            Translation3::new(self.forward_m, 0.0, self.height_m),
            UnitQuaternion::from_rotation_matrix(&(pitch * optical)),
        )
    }

    /// The calibration message: pinhole intrinsics and plumb_bob distortion.
    #[must_use]
    pub fn camera_info(&self, stamp_nanos: u64) -> CameraInfo {
        let (f, cx, cy) = (self.focal_px(), f64::from(self.width) / 2.0, f64::from(self.height) / 2.0);
        CameraInfo {
            header: Header::new(stamp_nanos, frames::CAMERA_FRONT),
            height: self.height,
            width: self.width,
            distortion_model: "plumb_bob".into(),
            d: self.distortion.to_vec(),
            k: [f, 0.0, cx, 0.0, f, cy, 0.0, 0.0, 1.0],
            r: [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0],
            p: [f, 0.0, cx, 0.0, 0.0, f, cy, 0.0, 0.0, 0.0, 1.0, 0.0],
            ..CameraInfo::default()
        }
    }
}

const GAMMA_STEPS: u32 = 4096;
/// Side of the pixel blocks that share a list of candidate boxes.
const TILE_PX: u32 = 16;

/// One rendered frame.
pub struct CameraFrame {
    /// Pixels.
    pub rgb: RgbImage,
    /// Camera-z depth per pixel, m (0 where the ray hit sky), row-major.
    pub depth_m: Vec<f32>,
}

/// Renders the camera at `map_from_base`. `noise_seed` makes the sensor noise
/// reproducible.
#[must_use]
pub fn render(
    scene: &Scene<'_>,
    env: &Environment,
    config: &CameraConfig,
    map_from_base: &Iso3,
    noise_seed: u64,
) -> CameraFrame {
    let map_from_camera = map_from_base * config.base_link_from_camera();
    let origin = map_from_camera.translation.vector;
    let forward = map_from_base.rotation * Vector3::x();
    let lamp = map_from_base * nalgebra::Point3::new(3.6, 0.0, 0.7);
    let lighting = Lighting::new(*env, (lamp.coords, (forward - Vector3::z() * 0.08).normalize()));
    let (f, cx, cy) = (config.focal_px(), f64::from(config.width) / 2.0, f64::from(config.height) / 2.0);
    let mut rng = ChaCha8Rng::seed_from_u64(noise_seed);
    // sRGB-like gamma through a table: powf per channel cost more than the ray.
    let gamma: Vec<u8> = (0..=GAMMA_STEPS)
        .map(|i| ((f64::from(i) / f64::from(GAMMA_STEPS)).powf(1.0 / 2.2) * 255.0).round() as u8)
        .collect();
    let mut rgb = RgbImage::new(config.width, config.height);
    let mut depth_m = vec![0.0f32; (config.width * config.height) as usize];
    // Rays through distorted pixels come from the calibrated model; box
    // culling by projected corners assumes straight edges, so it is used
    // only for an ideal pinhole.
    let distorted = config.distortion.iter().any(|c| *c != 0.0);
    let model = nines_datasets::calib::CameraModel::from_camera_info(&config.camera_info(0), "sim camera")
        .ok()
        .filter(|_| distorted);
    let tiles =
        scene.screen_tiles(&map_from_camera.inverse(), (f, cx, cy), (config.width, config.height), TILE_PX);
    let tiles_x = config.width.div_ceil(TILE_PX);
    for v in 0..config.height {
        for u in 0..config.width {
            let candidates = &tiles[((v / TILE_PX) * tiles_x + u / TILE_PX) as usize];
            let optical = match &model {
                Some(m) => m.unproject(&nalgebra::Point2::new(f64::from(u) + 0.5, f64::from(v) + 0.5)),
                None => Vector3::new((f64::from(u) + 0.5 - cx) / f, (f64::from(v) + 0.5 - cy) / f, 1.0),
            };
            let scale = optical.norm();
            let dir = map_from_camera.rotation * (optical / scale);
            let hit = if model.is_some() {
                scene.cast(&origin, &dir, 500.0)
            } else {
                scene.cast_among(&origin, &dir, 500.0, candidates)
            };
            if let Some(h) = &hit {
                depth_m[(v * config.width + u) as usize] = (h.t / scale) as f32;
            }
            let colour = lighting.shade(scene, &dir, hit.as_ref()) * config.exposure;
            // One draw per pixel: three 16-bit uniforms, scaled to the noise's
            // standard deviation (uniform noise of width w has sd w / sqrt(12)).
            let bits: u64 = rng.random();
            let channel = |i: u32, c: f64| {
                let uniform = f64::from(((bits >> (16 * i)) & 0xffff) as u16) / 65535.0 - 0.5;
                let noisy = c + config.noise * 3.46 * uniform;
                gamma[(noisy.clamp(0.0, 1.0) * f64::from(GAMMA_STEPS)) as usize]
            };
            rgb.put_pixel(
                u,
                v,
                image::Rgb([channel(0, colour.x), channel(1, colour.y), channel(2, colour.z)]),
            );
        }
    }
    CameraFrame { rgb, depth_m }
}
