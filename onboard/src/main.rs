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
#[expect(clippy::struct_excessive_bools, reason = "command-line switches")]
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
    /// With `--source zenoh`: step once per message on the publisher's
    /// clock (for `nines sim serve` in lockstep). Without it the control
    /// loop runs on the wall clock at the control rate, so a stalled camera
    /// trips the frame-age check.
    #[arg(long)]
    lockstep: bool,
    /// Publish on zenoh ([zenoh]) even when replaying a drive or a video
    /// file. By default only a zenoh or live camera source publishes, so a
    /// replay on a robot never sends recorded decisions to its actuators.
    #[arg(long)]
    publish: bool,
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

#[cfg(feature = "zenoh")]
type NetworkNode = Option<Arc<nines_onboard::zenoh_io::Node>>;
#[cfg(not(feature = "zenoh"))]
type NetworkNode = ();

/// The frame source, and the zenoh node when the runtime joins the network:
/// with `--source zenoh`, or with `[zenoh]` and a live camera (or `--publish`).
#[cfg(feature = "zenoh")]
fn open_source(
    config: &Config,
    spec: &str,
    publish: bool,
) -> nines_onboard::Result<(Box<dyn source::Source>, NetworkNode)> {
    use nines_onboard::zenoh_io::Node;
    if spec == "zenoh" {
        let net = config.zenoh.clone().unwrap_or_default();
        let node = Node::open(&net, &config.base_dir)?;
        let source =
            source::zenoh::ZenohSource::new(Arc::clone(&node), &config.camera.topic, &net.odometry_topic);
        return Ok((Box::new(source), Some(node)));
    }
    let source = source::open(spec, &config.camera.topic, config.camera.fps)?;
    let node = match &config.zenoh {
        Some(net) if publish || source.live() => Some(Node::open(net, &config.base_dir)?),
        _ => None,
    };
    Ok((source, node))
}

#[cfg(not(feature = "zenoh"))]
fn open_source(
    config: &Config,
    spec: &str,
    _publish: bool,
) -> nines_onboard::Result<(Box<dyn source::Source>, NetworkNode)> {
    Ok((source::open(spec, &config.camera.topic, config.camera.fps)?, ()))
}

fn run(args: &Args) -> nines_onboard::Result<()> {
    let config = Config::load(&args.config)?;
    let usage = |detail: &str| nines_onboard::OnboardError::Config {
        path: args.config.clone(),
        detail: detail.into(),
    };
    let source_spec = args
        .source
        .clone()
        .or_else(|| config.camera.source.clone())
        .ok_or_else(|| usage("no source: set camera.source or pass --source"))?;
    let model = args
        .model
        .clone()
        .or_else(|| config.model.path.as_ref().map(|p| config.resolve(p)))
        .ok_or_else(|| usage("no model: set model.path or pass --model"))?;
    let zenoh_source = source_spec == "zenoh";
    if args.lockstep && !zenoh_source {
        return Err(usage("--lockstep is for --source zenoh; recorded sources run in lockstep by default"));
    }
    if args.realtime && zenoh_source {
        return Err(usage(
            "--realtime is for recorded sources; a zenoh source runs on the wall clock unless --lockstep",
        ));
    }
    let (source, node) = open_source(&config, &source_spec, args.publish)?;
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
    #[cfg(not(feature = "zenoh"))]
    let () = node;
    let lockstep = if zenoh_source { args.lockstep } else { !args.realtime };
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
