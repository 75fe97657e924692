//! `nines-onboard`: the runtime on the robot.
//!
//! `nines-onboard --config configs/vehicle-sim.toml --source drive.mcap --model model.onnx --record out.mcap`

use std::io::BufRead;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use clap::Parser;
use nines_onboard::config::Config;
use nines_onboard::runtime::{self, Controls, Published, RunOptions};
use nines_onboard::source::{self, Pacing};

/// Camera frames in, the camera-only network through ONNX Runtime, control
/// commands out, behind a safety monitor; records its own drive.
///
/// Recorded sources (MCAP drives, video files) run in lockstep: every frame,
/// as fast as possible, on the source's clock, so a replay is reproducible.
/// `--realtime` plays them at the recorded rate; cameras are always live.
/// Type `engage` on stdin to ask for re-engagement after a controlled stop.
#[derive(Debug, Parser)]
#[command(name = "nines-onboard", version)]
struct Args {
    /// Vehicle configuration (TOML), e.g. configs/vehicle-sim.toml.
    #[arg(long)]
    config: PathBuf,
    /// Frame source, overriding camera.source: a .mcap drive, a video file,
    /// /dev/videoN or v4l2:N, gst:<pipeline ending in appsink>, or `zenoh`
    /// (camera.topic and zenoh.odometry_topic on the robot's network, as
    /// ROS 2 publishes them with rmw_zenoh; `[zenoh]` says how to join).
    #[arg(long)]
    source: Option<String>,
    /// ONNX model written by `nines export`, overriding model.path.
    #[arg(long)]
    model: Option<PathBuf>,
    /// Record the runtime's drive here (recording.mode decides what).
    #[arg(long)]
    record: Option<PathBuf>,
    /// Play a recorded source at its recorded rate instead of lockstep.
    #[arg(long)]
    realtime: bool,
    /// With `--source zenoh`: run on the publisher's clock, one step per
    /// message, instead of the wall clock (for `nines sim serve` in
    /// lockstep). Without it a zenoh camera is treated as live: the control
    /// loop ticks at the control rate and a stalled camera is stopped for.
    #[arg(long)]
    lockstep: bool,
    /// Print every command as a line of JSON on stdout.
    #[arg(long)]
    print: bool,
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: &Args) -> nines_onboard::Result<()> {
    let config = Config::load(&args.config)?;
    let source_spec = args.source.clone().or_else(|| config.camera.source.clone()).ok_or_else(|| {
        nines_onboard::OnboardError::Config {
            path: args.config.clone(),
            detail: "no source: set camera.source or pass --source".into(),
        }
    })?;
    let model =
        args.model.clone().or_else(|| config.model.path.as_ref().map(|p| config.resolve(p))).ok_or_else(
            || nines_onboard::OnboardError::Config {
                path: args.config.clone(),
                detail: "no model: set model.path or pass --model".into(),
            },
        )?;
    // With [zenoh] (or a zenoh source) the runtime joins the network as an
    // rmw_zenoh node and publishes everything it decides there.
    #[cfg(feature = "zenoh")]
    let node = (config.zenoh.is_some() || source_spec == "zenoh")
        .then(|| {
            nines_onboard::zenoh_io::Node::open(&config.zenoh.clone().unwrap_or_default(), &config.base_dir)
        })
        .transpose()?;
    #[cfg(feature = "zenoh")]
    let source: Box<dyn source::Source> = match &node {
        Some(node) if source_spec == "zenoh" => {
            let odometry =
                config.zenoh.as_ref().map_or(nines_datasets::topics::ODOMETRY, |z| &z.odometry_topic);
            Box::new(source::zenoh::ZenohSource::new(Arc::clone(node), &config.camera.topic, odometry))
        }
        _ => source::open(&source_spec, &config.camera.topic, config.camera.fps)?,
    };
    #[cfg(not(feature = "zenoh"))]
    let source = source::open(&source_spec, &config.camera.topic, config.camera.fps)?;
    let controls = Arc::new(Controls::default());
    {
        let controls = Arc::clone(&controls);
        // Operator input: `engage` asks for re-engagement. The thread ends with stdin.
        let _ = std::thread::Builder::new().name("nines-stdin".into()).spawn(move || {
            for line in std::io::stdin().lock().lines().map_while(Result::ok) {
                if line.trim() == "engage" {
                    controls.engage.store(true, Ordering::Relaxed);
                }
            }
        });
    }
    let print = args.print;
    let sink: runtime::Sink = Box::new(move |m| {
        if print && let Published::Command(c) = m {
            println!(
                "{{\"stamp_ns\":{},\"steering_angle\":{},\"speed\":{},\"acceleration\":{}}}",
                c.header.stamp.as_nanos(),
                c.drive.steering_angle,
                c.drive.speed,
                c.drive.acceleration
            );
        }
    });
    #[cfg(feature = "zenoh")]
    let sink = match &node {
        Some(node) => nines_onboard::zenoh_io::RuntimePublishers::declare(node)?.into_sink(sink),
        None => sink,
    };
    let lockstep = if source_spec == "zenoh" { args.lockstep } else { !args.realtime };
    let options = RunOptions {
        pacing: if lockstep { Pacing::Lockstep } else { Pacing::Realtime },
        record: args.record.clone(),
    };
    let report = runtime::run(&config, source, &model, &options, controls, sink)?;
    let mut latency = report.latency_s.clone();
    latency.sort_by(f64::total_cmp);
    let pct =
        |q: f64| latency.get(((latency.len() as f64 - 1.0) * q).round() as usize).map_or(0.0, |v| v * 1e3);
    eprintln!(
        "{} frames, {} commands, {} event(s), provider {}, capture-to-publish p50 {:.2} ms p99 {:.2} ms",
        report.frames,
        report.commands,
        report.events.len(),
        report.provider,
        pct(0.5),
        pct(0.99)
    );
    for e in &report.events {
        eprintln!("  event at {:.3} s: {}", e.header.stamp.as_nanos() as f64 / 1e9, e.detail);
    }
    for f in &report.recorded {
        eprintln!("  recorded {}", f.display());
    }
    Ok(())
}
