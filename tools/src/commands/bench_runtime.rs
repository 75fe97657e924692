//! `nines bench runtime`: capture-to-publish latency of the onboard runtime
//! (threads, newest-frame slot, warp, stack, ONNX Runtime, controller,
//! safety monitor, publisher) against bare `session.run` on the same inputs,
//! same model, same process. Goal: runtime p99 <= 1.10x bare p99.

use std::path::PathBuf;
use std::sync::Arc;

use nines_datasets::contract::ModelContract;
use nines_datasets::drive::DriveReader;
use nines_datasets::msg::CompressedImage;
use nines_datasets::topics;
use nines_onboard::pipeline::{Pipeline, StepInput};
use nines_onboard::preprocess::FrameRef;
use nines_onboard::runtime::{self, Controls, RunOptions};
use nines_onboard::source::{self, Pacing, Source};
use nines_sim::record::{RecordOptions, record_expert};

use nines_onboard::config::Config;

/// Settings of `nines bench runtime`.
#[derive(Debug, Clone)]
pub struct RuntimeBench {
    /// Model, or an untrained export of `preset`.
    pub model: Option<PathBuf>,
    /// Preset for the untrained export.
    pub preset: String,
    /// Drive, or a simulated one of `duration` s.
    pub drive: Option<PathBuf>,
    /// Simulated seconds.
    pub duration: f64,
    /// Vehicle config.
    pub config: Option<PathBuf>,
    /// ONNX Runtime intra-op threads.
    pub threads: usize,
    /// Scratch folder.
    pub out: PathBuf,
    /// JSON output.
    pub json: bool,
}

/// Percentiles of a sample, ms.
fn percentiles(samples: &[f64]) -> [f64; 3] {
    let mut s = samples.to_vec();
    if s.is_empty() {
        return [f64::NAN; 3];
    }
    [0.5, 0.99, 0.999].map(|q| runtime::percentile(&mut s, q) * 1e3)
}

/// Runs the benchmark.
pub fn bench_runtime(b: &RuntimeBench) -> anyhow::Result<()> {
    std::fs::create_dir_all(&b.out)?;
    let drive = if let Some(d) = &b.drive {
        d.clone()
    } else {
        let path = b.out.join(format!("runtime-{:.0}s.mcap", b.duration));
        if !path.is_file() {
            eprintln!("simulating {:.0} s of lead_brake into {}", b.duration, path.display());
            let options = RecordOptions { duration_secs: Some(b.duration), ..RecordOptions::default() };
            let scenario = nines_sim::family("lead_brake")?.draw("lead_brake", 1);
            record_expert(scenario, &path, &options)?;
        }
        path
    };
    let model = if let Some(m) = &b.model {
        m.clone()
    } else {
        let path = b.out.join(format!("untrained-{}.onnx", b.preset));
        if !path.is_file() {
            eprintln!("exporting an untrained {} model to {}", b.preset, path.display());
            nines_offboard::export::export_untrained(&b.preset, &ModelContract::default(), 1, &path)?;
        }
        path
    };
    let mut config = Config::load_for_runtime(b.config.as_deref())?;
    config.model.threads = b.threads;
    config.recording.mode = nines_onboard::config::RecordMode::Off;
    // A slow frame is measured, not turned into a controlled stop (the
    // runtime's own pass below runs in real time, where the measured time
    // decides; the bare pass judges nothing).
    config.safety.inference_deadline_ms = config.safety.inference_deadline_ms.max(1000.0);

    // Bare session.run on the same inputs: the pipeline fills the input, then the session alone is timed.
    let opened = source::drive::DriveSource::open(&drive, &config.camera.topic)?;
    let (camera, mount) = opened
        .calibration()
        .ok_or_else(|| anyhow::anyhow!("{}: no camera calibration in the drive", drive.display()))?;
    let mut pipeline = Pipeline::new(&config, &model, &camera, &mount, Pacing::Lockstep)?;
    let reader = DriveReader::open(&drive)?;
    let frames = reader.read_topic::<CompressedImage>(topics::CAMERA_COMPRESSED)?;
    let progress = super::progress_bar(frames.len() as u64, "frames (bare session.run)");
    let mut bare = Vec::with_capacity(frames.len());
    for (t, msg) in &frames {
        let img = nines_datasets::image::decode_compressed(msg, "bench")?;
        let frame =
            FrameRef { stamp_ns: *t, rgb: Some(img.as_raw()), width: img.width(), height: img.height() };
        pipeline.step(&StepInput { now_ns: *t, frame: Some(frame), speed_mps: 8.0 });
        bare.push(pipeline.inference_mut().time_bare_run()?);
        progress.inc(1);
    }
    progress.finish_and_clear();
    let provider = pipeline.inference().provider().to_owned();
    drop(pipeline);

    eprintln!("playing {} in real time through the runtime ({} frames)", drive.display(), frames.len());
    let source = source::open(&drive.display().to_string(), &config.camera.topic, config.camera.fps)?;
    // Real time, as on the robot: in lockstep frames would wait in the channel.
    let options = RunOptions { pacing: Pacing::Realtime, record: None };
    let report =
        runtime::run(&config, source, &model, &options, Arc::new(Controls::default()), Box::new(|_| {}))?;
    let run = percentiles(&report.latency_s);
    let busy = percentiles(&report.busy_s);
    let base = percentiles(&bare);
    let ratio = run[1] / base[1];
    if b.json {
        println!(
            "{}",
            serde_json::json!({
                "model": model, "provider": provider, "frames": report.latency_s.len(),
                "runtime_ms": {"p50": run[0], "p99": run[1], "p999": run[2]},
                "preprocess_and_inference_ms": {"p50": busy[0], "p99": busy[1], "p999": busy[2]},
                "bare_session_run_ms": {"p50": base[0], "p99": base[1], "p999": base[2]},
                "p99_ratio": ratio,
            })
        );
    } else {
        println!("model {} on {provider}, {} frames", model.display(), report.latency_s.len());
        println!("                              p50 ms   p99 ms  p99.9 ms");
        println!("capture-to-publish (runtime) {:8.2} {:8.2} {:8.2}", run[0], run[1], run[2]);
        println!("  of which warp + inference  {:8.2} {:8.2} {:8.2}", busy[0], busy[1], busy[2]);
        println!("bare session.run             {:8.2} {:8.2} {:8.2}", base[0], base[1], base[2]);
        println!("runtime p99 / bare p99: {ratio:.2} (goal <= 1.10)");
    }
    Ok(())
}
