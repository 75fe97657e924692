//! `nines bench project`: lidar points projected into a camera with a
//! z-buffer per second, by the CPU kernel on one core and on all cores, by a
//! NumPy implementation of the same projection, and by the CUDA kernel when
//! a GPU is there; one run, side by side.

use std::path::Path;
use std::time::Instant;

use anyhow::Context;
use nalgebra::{Translation3, UnitQuaternion};
use nines_datasets::geometry::Iso3;
use nines_kernels::{Lens, Projection, project_points_cpu, rigid_f32};
use rand::{Rng, SeedableRng, rngs::SmallRng};

/// One row of the table.
#[derive(Debug, serde::Serialize)]
struct Row {
    what: String,
    seconds: f64,
    points_per_sec: f64,
    pixels_with_depth: usize,
}

/// Sweeps of a 64-beam spinning lidar in firing order (column by column,
/// azimuth increasing), ranges random: about a quarter of the points fall in
/// a KITTI-like camera looking forward, as in a real sweep.
fn points(n: usize) -> Vec<[f32; 3]> {
    const BEAMS: usize = 64;
    const COLUMNS: usize = 2048;
    let mut rng = SmallRng::seed_from_u64(8);
    (0..n)
        .map(|i| {
            let column = (i / BEAMS) % COLUMNS;
            let azimuth = -std::f32::consts::PI + column as f32 * std::f32::consts::TAU / COLUMNS as f32;
            let elevation = -0.43 + 0.46 * (i % BEAMS) as f32 / BEAMS as f32;
            let range = rng.random_range(2.0f32..80.0);
            [
                range * elevation.cos() * azimuth.cos(),
                range * elevation.cos() * azimuth.sin(),
                range * elevation.sin(),
            ]
        })
        .collect()
}

fn time_best(repeats: usize, mut f: impl FnMut() -> usize) -> (f64, usize) {
    let mut best = f64::INFINITY;
    let mut hits = f();
    for _ in 0..repeats {
        let start = Instant::now();
        hits = f();
        best = best.min(start.elapsed().as_secs_f64());
    }
    (best, hits)
}

fn hits(depth: &nines_kernels::DepthImage) -> usize {
    depth.depth_m.iter().filter(|d| **d > 0.0).count()
}

/// Runs the benchmark: `n` points, best of `repeats`.
pub fn bench_project(n: usize, repeats: usize, python: Option<&Path>, json: bool) -> anyhow::Result<()> {
    let pts = points(n);
    let optical =
        UnitQuaternion::from_euler_angles(-std::f64::consts::FRAC_PI_2, 0.0, -std::f64::consts::FRAC_PI_2);
    let lidar_from_camera = Iso3::from_parts(Translation3::new(0.27, 0.0, -0.08), optical);
    let lens = Lens::pinhole(721.5, 721.5, 609.6, 172.9, 1242, 375);
    let projection =
        Projection { camera_from_points: rigid_f32(&lidar_from_camera.inverse()), lens, min_depth_m: 0.5 };
    let mut rows = Vec::new();
    let mut row = |what: String, (seconds, pixels): (f64, usize)| {
        rows.push(Row { what, seconds, points_per_sec: n as f64 / seconds, pixels_with_depth: pixels });
    };
    let one = rayon::ThreadPoolBuilder::new().num_threads(1).build()?;
    row(
        "cpu kernel, 1 core".into(),
        time_best(repeats, || one.install(|| hits(&project_points_cpu(&pts, &projection)))),
    );
    let cores = rayon::current_num_threads();
    row(
        format!("cpu kernel, {cores} cores"),
        time_best(repeats, || hits(&project_points_cpu(&pts, &projection))),
    );
    row("numpy (generate_depth_map style)".into(), numpy(&pts, &projection, repeats, python)?);
    cuda_rows(&pts, &projection, repeats, &mut row);
    if json {
        println!("{}", serde_json::to_string_pretty(&rows)?);
        return Ok(());
    }
    println!("{n} points into a 1242x375 camera with a z-buffer, best of {repeats}");
    println!("{:<44} {:>10} {:>16} {:>10}", "", "ms", "points/s", "pixels");
    let numpy_rate = rows.iter().find(|r| r.what.starts_with("numpy")).map_or(f64::NAN, |r| r.points_per_sec);
    for r in &rows {
        println!(
            "{:<44} {:>10.3} {:>16.3e} {:>10}   {:.1}x numpy",
            r.what,
            r.seconds * 1e3,
            r.points_per_sec,
            r.pixels_with_depth,
            r.points_per_sec / numpy_rate
        );
    }
    Ok(())
}

#[cfg(feature = "cuda")]
fn cuda_rows(
    pts: &[[f32; 3]],
    projection: &Projection,
    repeats: usize,
    row: &mut impl FnMut(String, (f64, usize)),
) {
    let gpu = match nines_kernels::cuda::CudaKernels::new(0) {
        Ok(gpu) => gpu,
        Err(e) => {
            eprintln!("no CUDA row: {e}");
            return;
        }
    };
    let mut kernel = f64::INFINITY;
    let mut pixels = 0;
    let total = time_best(repeats, || match gpu.project_timed(pts, projection) {
        Ok((depth, timing)) => {
            kernel = kernel.min(timing.kernel_secs);
            pixels = hits(&depth);
            pixels
        }
        Err(e) => {
            eprintln!("CUDA projection failed: {e}");
            0
        }
    });
    row(format!("cuda kernel ({}), points on the GPU", gpu.name()), (kernel, pixels));
    row("cuda, with upload and download".into(), total);
}

#[cfg(not(feature = "cuda"))]
fn cuda_rows(_: &[[f32; 3]], _: &Projection, _: usize, _: &mut impl FnMut(String, (f64, usize))) {
    eprintln!("no CUDA row: built without the `cuda` feature");
}

fn numpy(
    pts: &[[f32; 3]],
    projection: &Projection,
    repeats: usize,
    python: Option<&Path>,
) -> anyhow::Result<(f64, usize)> {
    let dir = tempfile::tempdir()?;
    let bin = dir.path().join("points.bin");
    let bytes: Vec<u8> = pts.as_flattened().iter().flat_map(|v| v.to_le_bytes()).collect();
    std::fs::write(&bin, bytes)?;
    let l = &projection.lens;
    let params = serde_json::json!({
        "camera_from_points": projection.camera_from_points, "fx": l.fx, "fy": l.fy, "cx": l.cx, "cy": l.cy,
        "width": l.width, "height": l.height, "min_depth_m": projection.min_depth_m, "repeats": repeats,
    });
    let params_path = dir.path().join("params.json");
    std::fs::write(&params_path, params.to_string())?;
    let python = super::peers::python(python)?;
    let output = std::process::Command::new(&python)
        .arg(super::peers::find("scripts/peers/bench_project.py")?)
        .arg(&bin)
        .arg(&params_path)
        .output()
        .with_context(|| format!("running {} (run scripts/setup.sh, or pass --python)", python.display()))?;
    anyhow::ensure!(
        output.status.success(),
        "bench_project.py failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let result: serde_json::Value = serde_json::from_slice(&output.stdout)?;
    Ok((
        result["seconds"].as_f64().unwrap_or(f64::NAN),
        result["pixels_with_depth"].as_u64().unwrap_or(0) as usize,
    ))
}
