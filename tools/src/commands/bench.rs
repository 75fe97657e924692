//! `nines bench`: measurements that go in docs/PERFORMANCE.md.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{Context, bail};
use clap::Subcommand;
use indicatif::{ProgressBar, ProgressStyle};
use nines_datasets::drive::{DriveReader, DriveWriter, ReadFilter};
use nines_datasets::geometry::{Iso3, transform_stamped};
use nines_datasets::msg::{
    AckermannDrive, AckermannDriveStamped, CompressedImage, Header, Odometry, PointCloud2, RosMessage,
    TfMessage,
};
use nines_datasets::pointcloud::{LidarPoint, to_point_cloud2};
use nines_datasets::topics::{self, frames};
use rand::{Rng, SeedableRng, rngs::SmallRng};

/// Benchmarks.
#[derive(Debug, Subcommand)]
pub enum BenchArgs {
    /// Drive read throughput, next to the Python `mcap` reader on the same file.
    Read {
        /// Drive to read [default: generate a synthetic one of --size-mb].
        #[arg(long)]
        file: Option<PathBuf>,
        /// Size of the generated drive, MB.
        #[arg(long, default_value_t = 512)]
        size_mb: u64,
        /// Where to generate the drive.
        #[arg(long, default_value = "target/nines-bench/read.mcap")]
        generate_at: PathBuf,
        /// Python with the `mcap` and `mcap-ros2-support` packages [default: the checkout's .venv/bin/python].
        #[arg(long)]
        python: Option<PathBuf>,
        /// Also time full ROS 2 decoding in Python (slow).
        #[arg(long)]
        python_decode: bool,
    },
    /// Simulator real-time factor on one core: the expert driving a family,
    /// camera and 32x1024 lidar at 10 Hz, recorded to a drive; at 256x128 and
    /// at the default 512x256.
    Sim {
        /// Scenario family.
        #[arg(long, default_value = "cut_in")]
        family: String,
        /// Simulated seconds per measurement.
        #[arg(long, default_value_t = 10.0)]
        duration: f64,
        /// Where to write the drives.
        #[arg(long, default_value = "target/nines-bench")]
        out: PathBuf,
    },
    /// Lidar points projected per second with a z-buffer: the CPU kernel on
    /// one core and on all, NumPy doing the same, and CUDA when there is a GPU.
    Project {
        /// Points per projection.
        #[arg(long, default_value_t = 4_000_000)]
        points: usize,
        /// Timed repetitions (the best is reported).
        #[arg(long, default_value_t = 5)]
        repeats: usize,
        /// Python with NumPy [default: the checkout's .venv/bin/python].
        #[arg(long)]
        python: Option<PathBuf>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    #[cfg(feature = "viewer")]
    /// Drive-to-.rrd conversion speed of `nines replay --save`, as a
    /// real-time factor, on a simulated drive (the default camera and lidar).
    Replay {
        /// Drive to convert [default: simulate one of --duration seconds].
        #[arg(long)]
        file: Option<PathBuf>,
        /// Scenario family of the generated drive (lead_brake runs the full 60 s).
        #[arg(long, default_value = "lead_brake")]
        family: String,
        /// Simulated seconds of the generated drive.
        #[arg(long, default_value_t = 60.0)]
        duration: f64,
        /// Conversions to time (the fastest and slowest are reported).
        #[arg(long, default_value_t = 3)]
        runs: u32,
        /// Where to write the drive and the recordings.
        #[arg(long, default_value = "target/nines-bench")]
        out: PathBuf,
    },
    #[cfg(feature = "network")]
    /// Camera frames over zenoh on loopback, with and without shared memory,
    /// next to a raw TCP socket in the same run: latency (one frame in
    /// flight) and throughput (back to back), for raw rgb8 Image frames.
    Zenoh {
        /// Frame sizes, columns x rows, comma-separated.
        #[arg(long, default_value = "512x256,1920x1080")]
        sizes: String,
        /// Frames per measurement.
        #[arg(long, default_value_t = 200)]
        frames: usize,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Training speed: steady-state steps (upload, forward, losses,
    /// backward, AdamW) on synthetic batches of the contract's shapes, the
    /// measurement beside the PyTorch peer (scripts/peers/torch_model.py).
    Train {
        /// Network preset (tiny or default).
        #[arg(long, default_value = "default")]
        preset: String,
        /// Batch sizes, comma-separated.
        #[arg(long, default_value = "32,128")]
        batch_sizes: String,
        /// Untimed steps before timing.
        #[arg(long, default_value_t = 5)]
        warmup: usize,
        /// Timed steps per batch size.
        #[arg(long, default_value_t = 20)]
        steps: usize,
        /// Where to train.
        #[arg(long, value_enum, default_value = "cpu")]
        device: super::train::TrainDeviceArg,
        /// The burn backend.
        #[arg(long, value_enum, default_value = "auto")]
        backend: super::train::BackendArg,
        /// Print JSON, one object per line.
        #[arg(long)]
        json: bool,
    },
    /// Onboard runtime latency: capture-to-publish through the threaded
    /// runtime (real-time pacing, as on the robot) next to bare
    /// `session.run` on the same inputs, same model, same process.
    Runtime {
        /// ONNX model [default: an untrained export of --preset].
        #[arg(long)]
        model: Option<PathBuf>,
        /// Network preset exported untrained when no --model is given (tiny or default).
        #[arg(long, default_value = "tiny")]
        preset: String,
        /// Drive to play [default: simulate one of --duration seconds].
        #[arg(long)]
        drive: Option<PathBuf>,
        /// Simulated seconds of the generated drive (10 camera frames a second).
        #[arg(long, default_value_t = 60.0)]
        duration: f64,
        /// Vehicle config [default: the built-in configs/vehicle-sim.toml].
        #[arg(long)]
        config: Option<PathBuf>,
        /// ONNX Runtime intra-op threads (0: ONNX Runtime's default).
        #[arg(long, default_value_t = 0)]
        threads: usize,
        /// Where to write the drive and the model.
        #[arg(long, default_value = "target/nines-bench")]
        out: PathBuf,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

/// Runs a benchmark.
pub fn run(args: BenchArgs) -> anyhow::Result<()> {
    match args {
        BenchArgs::Read { file, size_mb, generate_at, python, python_decode } => {
            let path = if let Some(file) = file {
                file
            } else {
                generate_drive(&generate_at, size_mb * 1_000_000)?;
                generate_at
            };
            bench_read(&path, python.as_deref(), python_decode)
        }
        #[cfg(feature = "network")]
        BenchArgs::Zenoh { sizes, frames, json } => {
            let sizes = sizes
                .split(',')
                .map(|s| {
                    let (w, h) = s
                        .trim()
                        .split_once('x')
                        .ok_or_else(|| anyhow::anyhow!("--sizes: `{s}` is not WxH"))?;
                    Ok((w.parse()?, h.parse()?))
                })
                .collect::<anyhow::Result<Vec<(u32, u32)>>>()?;
            super::bench_zenoh::bench(&sizes, frames, json)
        }
        BenchArgs::Sim { family, duration, out } => bench_sim(&family, duration, &out),
        BenchArgs::Train { preset, batch_sizes, warmup, steps, device, backend, json } => bench_train(
            &preset,
            &batch_sizes,
            warmup,
            steps,
            super::train::train_device(device, backend)?,
            json,
        ),
        BenchArgs::Project { points, repeats, python, json } => {
            super::bench_project::bench_project(points, repeats, python.as_deref(), json)
        }
        #[cfg(feature = "viewer")]
        BenchArgs::Replay { file, family, duration, runs, out } => {
            bench_replay(file, &family, duration, runs, &out)
        }
        BenchArgs::Runtime { model, preset, drive, duration, config, threads, out, json } => {
            super::bench_runtime::bench_runtime(&super::bench_runtime::RuntimeBench {
                model,
                preset,
                drive,
                duration,
                config,
                threads,
                out,
                json,
            })
        }
    }
}

fn bench_train(
    preset: &str,
    batch_sizes: &str,
    warmup: usize,
    steps: usize,
    device: nines_offboard::training::TrainDevice,
    json: bool,
) -> anyhow::Result<()> {
    use nines_offboard::training::bench::{StepBench, bench_steps};
    anyhow::ensure!(steps > 0, "--steps must be at least 1");
    for size in batch_sizes.split(',') {
        let batch_size: usize = size
            .trim()
            .parse()
            .ok()
            .filter(|&b| b > 0)
            .with_context(|| format!("--batch-sizes: `{size}` is not a positive whole number"))?;
        let spinner =
            super::spinner(format!("{preset}, batch {batch_size}: {warmup} warm-up + {steps} timed steps"));
        let spec = StepBench { preset: preset.to_owned(), batch_size, warmup, steps };
        let timing = bench_steps(&spec, device)?;
        spinner.finish_and_clear();
        if json {
            println!("{}", serde_json::to_string(&timing)?);
        } else {
            println!(
                "{} on {}: preset {}, batch {}: {:.1} images/s (median step {:.1} ms; {} steps after {} warm-up)",
                timing.framework,
                timing.device,
                timing.preset,
                timing.batch_size,
                timing.images_per_sec,
                timing.step_ms_median,
                timing.steps,
                timing.warmup
            );
        }
    }
    Ok(())
}

#[cfg(feature = "viewer")]
fn bench_replay(
    file: Option<PathBuf>,
    family: &str,
    duration: f64,
    runs: u32,
    out: &Path,
) -> anyhow::Result<()> {
    use nines_sim::record::{RecordOptions, record_expert};
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    let drive = if let Some(file) = file {
        file
    } else {
        let path = out.join(format!("replay-{family}-{duration:.0}s.mcap"));
        let options = RecordOptions { duration_secs: Some(duration), ..RecordOptions::default() };
        let spinner = super::spinner(format!("simulating {duration:.0} s of {family}"));
        record_expert(nines_sim::family(family)?.draw(family, 0), &path, &options)?;
        spinner.finish_and_clear();
        path
    };
    let drive_mb = std::fs::metadata(&drive).map_or(0.0, |m| m.len() as f64 / 1e6);
    let rrd = out.join("replay.rrd");
    let mut walls = Vec::new();
    let mut report = None;
    for _ in 0..runs.max(1) {
        let started = Instant::now();
        report = Some(crate::replay::save_rrd(&drive, &rrd, &crate::replay::ReplayOptions::default())?);
        walls.push(started.elapsed().as_secs_f64());
    }
    let report = report.context("no run")?;
    let span = report.span_secs();
    let (fast, slow) = walls.iter().fold((f64::MAX, 0.0f64), |(a, b), w| (a.min(*w), b.max(*w)));
    println!(
        "{}: {span:.1} s of drive ({drive_mb:.1} MB, {} messages) to {:.1} MB .rrd in {fast:.2}-{slow:.2} s = {:.1}-{:.1}x real time ({} runs)",
        drive.display(),
        report.messages,
        std::fs::metadata(&rrd).map_or(0.0, |m| m.len() as f64 / 1e6),
        span / slow,
        span / fast,
        walls.len()
    );
    Ok(())
}

fn bench_sim(name: &str, duration: f64, out: &Path) -> anyhow::Result<()> {
    use nines_sim::record::{RecordOptions, record_expert};
    use nines_sim::render::camera::CameraConfig;
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    let spec = nines_sim::family(name)?;
    for (width, height) in [(256, 128), (512, 256)] {
        let options = RecordOptions {
            camera: CameraConfig { width, height, ..CameraConfig::default() },
            duration_secs: Some(duration),
            ..RecordOptions::default()
        };
        let path = out.join(format!("sim-{width}x{height}.mcap"));
        let started = Instant::now();
        let summary = record_expert(spec.draw(name, 0), &path, &options)?;
        let wall = started.elapsed().as_secs_f64();
        println!(
            "{name} camera {width}x{height} + lidar 32x1024 at 10 Hz: {:.1} s simulated in {wall:.2} s on one core = {:.1}x real time ({} frames, {:.1} MB)",
            summary.duration_secs,
            summary.duration_secs / wall,
            summary.frames,
            std::fs::metadata(&path).map_or(0.0, |m| m.len() as f64 / 1e6)
        );
    }
    Ok(())
}

/// Writes a synthetic drive of at least `target_bytes` on disk, with realistic message sizes: JPEG-sized camera
/// payloads at 20 Hz, 32x1024 lidar sweeps at 10 Hz, tf and odometry at
/// 50 Hz, commands at 20 Hz. Payload bytes are random (JPEG data does not
/// compress either) and lidar ranges are noisy, so zstd sees realistic input.
fn generate_drive(path: &Path, target_bytes: u64) -> anyhow::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let bar = ProgressBar::new(target_bytes).with_style(
        ProgressStyle::with_template("generating {msg} [{bar:40}] {bytes}/{total_bytes} ({eta})")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar.set_message(path.display().to_string());
    let mut rng = SmallRng::seed_from_u64(9);
    let mut writer = DriveWriter::create(path)?;
    let start = 1_700_000_000_000_000_000u64;
    let mut written = 0u64;
    let mut tick = 0u64; // 100 Hz ticks
    while written < target_bytes {
        let t = start + tick * 10_000_000;
        let x = tick as f64 * 0.1;
        if tick.is_multiple_of(2) {
            let pose = Iso3::translation(x, 0.0, 0.0);
            writer.write(
                topics::TF,
                t,
                &TfMessage { transforms: vec![transform_stamped(t, frames::MAP, frames::BASE_LINK, &pose)] },
            )?;
            let mut odom = Odometry {
                header: Header::new(t, frames::MAP),
                child_frame_id: frames::BASE_LINK.into(),
                ..Odometry::default()
            };
            odom.twist.twist.linear.x = 10.0;
            writer.write(topics::ODOMETRY, t, &odom)?;
        }
        if tick.is_multiple_of(5) {
            let mut data = vec![0u8; rng.random_range(120_000..180_000)];
            rng.fill(&mut data[..]);
            writer.write(
                topics::CAMERA_COMPRESSED,
                t,
                &CompressedImage {
                    header: Header::new(t, frames::CAMERA_FRONT),
                    format: "jpeg".into(),
                    data,
                },
            )?;
            let cmd = AckermannDriveStamped {
                header: Header::new(t, frames::BASE_LINK),
                drive: AckermannDrive { speed: 10.0, ..Default::default() },
            };
            writer.write(topics::COMMAND, t, &cmd)?;
        }
        if tick.is_multiple_of(10) {
            let points: Vec<LidarPoint> = (0..32u16 * 1024)
                .map(|i| {
                    let (ring, step) = (i / 1024, f32::from(i % 1024));
                    let azimuth = step / 1024.0 * std::f32::consts::TAU;
                    let range = 20.0 + rng.random_range(-0.05f32..0.05);
                    let elevation = (-25.0 + f32::from(ring) * 40.0 / 31.0).to_radians();
                    LidarPoint {
                        x: range * elevation.cos() * azimuth.cos(),
                        y: range * elevation.cos() * azimuth.sin(),
                        z: range * elevation.sin(),
                        intensity: rng.random_range(0.0..1.0),
                        ring,
                        time: step / 1024.0 * 0.1,
                    }
                })
                .collect();
            let cloud = to_point_cloud2(Header::new(t, frames::LIDAR_TOP), &points);
            writer.write(topics::LIDAR, t, &cloud)?;
        }
        if tick.is_multiple_of(100) {
            // The file grows a chunk at a time; its size on disk is the target.
            written = std::fs::metadata(path).map_or(written, |m| m.len());
            bar.set_position(written.min(target_bytes));
        }
        tick += 1;
    }
    writer.finish()?;
    bar.finish_and_clear();
    Ok(())
}

/// Decodes a message of the types the generated drive carries; returns
/// whether it was one of them.
fn decode_by_type(view: &nines_datasets::drive::MessageView<'_>) -> anyhow::Result<bool> {
    match view.type_name {
        CompressedImage::TYPE_NAME => drop(view.decode::<CompressedImage>()?),
        PointCloud2::TYPE_NAME => drop(view.decode::<PointCloud2>()?),
        TfMessage::TYPE_NAME => drop(view.decode::<TfMessage>()?),
        Odometry::TYPE_NAME => drop(view.decode::<Odometry>()?),
        AckermannDriveStamped::TYPE_NAME => drop(view.decode::<AckermannDriveStamped>()?),
        _ => return Ok(false),
    }
    Ok(true)
}

fn bench_read(path: &Path, python: Option<&Path>, python_decode: bool) -> anyhow::Result<()> {
    let reader = DriveReader::open(path)?;
    let file_mb = reader.file_len() as f64 / 1e6;
    println!("drive {}: {file_mb:.1} MB, {} messages", path.display(), reader.message_count());
    // Warm the page cache so both readers see the same (cached) file.
    std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;

    let started = Instant::now();
    let (mut count, mut payload) = (0u64, 0u64);
    let mut messages = reader.messages(&ReadFilter::all())?;
    while let Some(view) = messages.next_message() {
        let view = view?;
        count += 1;
        payload += view.data.len() as u64;
    }
    let raw_secs = started.elapsed().as_secs_f64();

    let started = Instant::now();
    let mut decoded = 0usize;
    let mut messages = reader.messages(&ReadFilter::all())?;
    while let Some(view) = messages.next_message() {
        decoded += usize::from(decode_by_type(&view?)?);
    }
    let decoded_secs = started.elapsed().as_secs_f64();
    println!(
        "nines  raw:     {count} messages, {:.1} MB payload in {raw_secs:.2} s = {:.0} MB/s of file",
        payload as f64 / 1e6,
        file_mb / raw_secs
    );
    println!(
        "nines  decoded: {decoded} messages in {decoded_secs:.2} s = {:.0} MB/s of file",
        file_mb / decoded_secs
    );

    let python = super::peers::python(python)?;
    let mut cmd = Command::new(&python);
    cmd.arg(super::peers::find("scripts/peers/bench_read.py")?).arg(path);
    if python_decode {
        cmd.arg("--decode");
    }
    let output =
        cmd.output().with_context(|| format!("running {} (run scripts/setup.sh first)", python.display()))?;
    if !output.status.success() {
        bail!("python reader failed: {}", String::from_utf8_lossy(&output.stderr));
    }
    let peer: serde_json::Value =
        serde_json::from_slice(&output.stdout).context("parsing the python reader's output")?;
    let py_raw = peer["raw_secs"].as_f64().unwrap_or(f64::NAN);
    println!(
        "python raw:     {} messages in {py_raw:.2} s = {:.0} MB/s of file",
        peer["raw_messages"],
        file_mb / py_raw
    );
    if let Some(py_decoded) = peer["decoded_secs"].as_f64() {
        println!(
            "python decoded: {} messages in {py_decoded:.2} s = {:.0} MB/s of file",
            peer["decoded_messages"],
            file_mb / py_decoded
        );
        println!("speed-up decoded: {:.1}x", py_decoded / decoded_secs);
    }
    if peer["raw_messages"].as_u64() != Some(count) {
        bail!("message counts differ: nines {count}, python {}", peer["raw_messages"]);
    }
    println!("speed-up raw: {:.1}x", py_raw / raw_secs);
    Ok(())
}
