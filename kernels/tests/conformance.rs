//! Conformance: the CPU reference against an independent f64 calculation,
//! and the CUDA kernels against the CPU reference on the same inputs, with
//! explicit tolerances. The CUDA half needs a GPU:
//! `cargo test -p nines-kernels --test conformance -- --ignored`.

#![allow(clippy::unwrap_used, reason = "a test fails loudly on any error")]

use nalgebra::{Translation3, UnitQuaternion, Vector3};
use nines_datasets::calib::{CameraModel, Distortion};
use nines_datasets::geometry::Iso3;
use nines_kernels::{Lens, Normalisation, Projection, RgbView, WarpSpec, project_points_cpu, rigid_f32};
use rand::{Rng, SeedableRng, rngs::SmallRng};

/// A KITTI-sized camera with the given lens distortion.
fn camera(distortion: Distortion) -> CameraModel {
    CameraModel {
        width: 1242,
        height: 375,
        fx: 721.5,
        fy: 721.5,
        cx: 609.6,
        cy: 172.9,
        distortion,
        frame_id: "camera".into(),
    }
}

fn lenses() -> Vec<CameraModel> {
    vec![
        camera(Distortion::None),
        camera(Distortion::PlumbBob { k1: -0.17, k2: 0.02, p1: 0.001, p2: -0.0005, k3: 0.0 }),
        camera(Distortion::Equidistant { k1: 0.05, k2: -0.01, k3: 0.002, k4: 0.0 }),
    ]
}

/// Lidar-like points all around a sensor (many behind the camera), and the
/// transform of a camera 0.3 m ahead looking along x.
fn scene(n: usize, seed: u64) -> (Vec<[f32; 3]>, Iso3) {
    let mut rng = SmallRng::seed_from_u64(seed);
    let points = (0..n)
        .map(|_| {
            let azimuth = rng.random_range(-std::f32::consts::PI..std::f32::consts::PI);
            let elevation = rng.random_range(-0.4f32..0.2);
            let range = rng.random_range(1.0f32..80.0);
            [
                range * elevation.cos() * azimuth.cos(),
                range * elevation.cos() * azimuth.sin(),
                range * elevation.sin(),
            ]
        })
        .collect();
    let optical =
        UnitQuaternion::from_euler_angles(-std::f64::consts::FRAC_PI_2, 0.0, -std::f64::consts::FRAC_PI_2);
    let lidar_from_camera = Iso3::from_parts(Translation3::new(0.3, 0.05, -0.1), optical);
    (points, lidar_from_camera.inverse())
}

#[test]
fn cpu_reference_agrees_with_the_calibrated_model_in_f64() {
    let (points, camera_from_lidar) = scene(20_000, 1);
    for model in lenses() {
        let lens = Lens::from_model(&model);
        let projection =
            Projection { camera_from_points: rigid_f32(&camera_from_lidar), lens, min_depth_m: 0.5 };
        let depth = project_points_cpu(&points, &projection);
        let mut expected = vec![f64::INFINITY; depth.depth_m.len()];
        for p in &points {
            let c = camera_from_lidar * nalgebra::Point3::from(Vector3::new(p[0], p[1], p[2]).cast::<f64>());
            if c.z <= 0.5 || (c.x / c.z).hypot(c.y / c.z).powi(2) > f64::from(lens.max_r2) {
                continue;
            }
            let Some(px) = model.project(&c.coords) else { continue };
            let (col, row) = ((px.x + 0.5).floor(), (px.y + 0.5).floor());
            if col >= 0.0 && row >= 0.0 && col < f64::from(model.width) && row < f64::from(model.height) {
                let i = row as usize * model.width as usize + col as usize;
                expected[i] = expected[i].min(c.z);
            }
        }
        let (mut agree, mut occupied) = (0usize, 0usize);
        for (ours, theirs) in depth.depth_m.iter().zip(&expected) {
            if theirs.is_finite() || *ours > 0.0 {
                occupied += 1;
                if theirs.is_finite() && (f64::from(*ours) - theirs).abs() <= 1e-4 * theirs {
                    agree += 1;
                }
            }
        }
        // f32 against f64 may move a point that sits on a pixel edge to the next pixel.
        assert!(occupied > 3_000, "{model:?}: only {occupied} pixels hit");
        assert!(
            agree as f64 >= 0.998 * occupied as f64,
            "{:?}: {agree} of {occupied} pixels agree",
            model.distortion
        );
    }
}

/// A random-ish 8-bit image with structure (gradients and a checkerboard).
fn image(width: u32, height: u32) -> Vec<u8> {
    let mut data = Vec::with_capacity(width as usize * height as usize * 3);
    for y in 0..height {
        for x in 0..width {
            let check = if (x / 16 + y / 16) % 2 == 0 { 60 } else { 0 };
            data.push(((x * 255 / width) as u8).saturating_add(check));
            data.push(((y * 255 / height) as u8).saturating_add(check));
            data.push(((x ^ y) & 0xff) as u8);
        }
    }
    data
}

#[cfg(feature = "cuda")]
mod cuda {
    use super::*;
    use nines_datasets::contract::ModelContract;
    use nines_kernels::{Device, Kernels};

    #[test]
    #[ignore = "needs a CUDA GPU"]
    fn cuda_projection_matches_the_cpu_reference() {
        let gpu = Kernels::new(Device::Cuda).unwrap();
        let (points, camera_from_lidar) = scene(2_000_000, 7);
        for model in lenses() {
            for (w, h) in [(1242, 375), (256, 128), (64, 32)] {
                let lens = Lens::from_model(&model).scaled_to(w, h);
                let projection =
                    Projection { camera_from_points: rigid_f32(&camera_from_lidar), lens, min_depth_m: 0.1 };
                let cpu = project_points_cpu(&points, &projection);
                let cuda = gpu.project_points(&points, &projection).unwrap();
                let (mut both, mut differ) = (0usize, 0usize);
                for (a, b) in cpu.depth_m.iter().zip(&cuda.depth_m) {
                    if *a > 0.0 || *b > 0.0 {
                        both += 1;
                        if (a - b).abs() > 1e-6 * a.max(*b) {
                            differ += 1;
                        }
                    }
                }
                // Same arithmetic, no FMA: depths equal to rounding. A pixel may differ
                // only where a point sits on a pixel edge and the last bit of atanf
                // (equidistant lenses) moves it to the neighbour.
                assert!(both > 500, "{w}x{h}: {both} pixels");
                assert!(
                    differ as f64 <= 1e-3 * both as f64,
                    "{:?} {w}x{h}: {differ} of {both} pixels differ",
                    model.distortion
                );
            }
        }
    }

    #[test]
    #[ignore = "needs a CUDA GPU"]
    fn cuda_warp_matches_the_cpu_reference() {
        let gpu = Kernels::new(Device::Cuda).unwrap();
        let data = image(1242, 375);
        let src = RgbView { width: 1242, height: 375, data: &data };
        let contract = ModelContract::default();
        let mount = Iso3::from_parts(
            Translation3::new(1.6, 0.0, 1.4),
            UnitQuaternion::from_euler_angles(
                -std::f64::consts::FRAC_PI_2 - 0.03,
                0.0,
                -std::f64::consts::FRAC_PI_2,
            ),
        );
        for model in lenses() {
            for normalisation in [Normalisation::of_contract(&contract), Normalisation::raw()] {
                let spec = WarpSpec::to_virtual(&contract, &model, &mount, normalisation);
                let mut cpu = vec![0.0; spec.output_len()];
                let mut cuda = vec![0.0; spec.output_len()];
                nines_kernels::warp_image_cpu(&src, &spec, &mut cpu);
                gpu.warp_image(&src, &spec, &mut cuda).unwrap();
                let tolerance = 1e-3 * normalisation.scale[0].abs().max(1.0 / 255.0) * 255.0;
                let off = cpu.iter().zip(&cuda).filter(|(a, b)| (*a - *b).abs() > tolerance).count();
                assert!(
                    off as f64 <= 1e-3 * cpu.len() as f64,
                    "{:?}: {off} of {} values differ by more than {tolerance}",
                    model.distortion,
                    cpu.len()
                );
            }
        }
    }
}

#[test]
fn cpu_warp_of_a_pinhole_into_itself_is_the_identity() {
    // Virtual camera = the real camera at half size: each output pixel
    // averages the 2x2 source block under it.
    let (w, h) = (64u32, 32u32);
    let data = image(w, h);
    let src = RgbView { width: w, height: h, data: &data };
    let lens = Lens::pinhole(40.0, 40.0, 31.5, 15.5, w, h);
    let half = lens.scaled_to(w / 2, h / 2);
    let k_inv =
        [1.0 / half.fx, 0.0, -half.cx / half.fx, 0.0, 1.0 / half.fy, -half.cy / half.fy, 0.0, 0.0, 1.0];
    let spec = WarpSpec {
        ray_from_pixel: k_inv,
        real: lens,
        out_width: w / 2,
        out_height: h / 2,
        samples_per_axis: 2,
        normalisation: Normalisation::raw(),
    };
    let mut out = vec![0.0; spec.output_len()];
    nines_kernels::warp_image_cpu(&src, &spec, &mut out);
    for (row, col) in [(0u32, 0u32), (5, 9), (15, 31)] {
        for c in 0..3usize {
            let px = |x: u32, y: u32| f32::from(data[(y * w + x) as usize * 3 + c]);
            let (x, y) = (col * 2, row * 2);
            let expected = (px(x, y) + px(x + 1, y) + px(x, y + 1) + px(x + 1, y + 1)) / 4.0;
            let got = out[c * (w * h / 4) as usize + (row * w / 2 + col) as usize];
            assert!((got - expected).abs() < 1e-3, "pixel ({col}, {row}) channel {c}: {got} vs {expected}");
        }
    }
}
