//! `nines-onboard`: the runtime on the robot.
//!
//! `nines-onboard --config configs/vehicle-sim.toml --source drive.mcap --model model.onnx --record out.mcap`
//!
//! On a robot it is also its own installer: `nines-onboard install`,
//! `verify`, `status` and `self-test` (see docs/FLASH.md).

use std::io::BufRead;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use clap::{Parser, Subcommand};
use nines_onboard::config::Config;
use nines_onboard::release::health::Health;
use nines_onboard::release::install::{self, InstallOptions};
use nines_onboard::release::status;
use nines_onboard::release::{bundle, keys, service};
use nines_onboard::runtime::{self, Controls, Published, RunOptions};
use nines_onboard::source::{self, Pacing};

/// Camera frames in, the camera-only network through ONNX Runtime, control
/// commands out, behind a safety monitor; records its own drive.
///
/// Recorded sources (MCAP drives, video files) run in lockstep: every frame,
/// as fast as possible, on the source's clock, so a replay is reproducible.
/// `--realtime` plays them at the recorded rate; cameras are always live.
/// Type `engage` on stdin, or put a `std_msgs/msg/Empty` on /nines/engage
/// over zenoh, to ask for re-engagement after a controlled stop.
///
/// Under systemd (Type=notify) it reports READY once the first command is
/// out and pings the watchdog while commands keep coming.
#[derive(Debug, Parser)]
#[command(
    name = "nines-onboard",
    version,
    args_conflicts_with_subcommands = true,
    subcommand_negates_reqs = true
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Tool>,
    #[command(flatten)]
    run: Args,
}

/// Release management on the robot.
#[derive(Debug, Subcommand)]
enum Tool {
    /// Checks a bundle's signature and every file against its manifest, and
    /// prints what it holds. Changes nothing.
    Verify {
        /// The bundle (`nines bundle` wrote it).
        bundle: PathBuf,
        /// The fleet public key to trust (`nines keygen` wrote it).
        #[arg(long)]
        pubkey: PathBuf,
        /// Print the manifest as JSON.
        #[arg(long)]
        json: bool,
    },
    /// What is installed: the current release, whether its files are intact,
    /// the other releases, the last install event. Exits 1 when the current
    /// release is missing or changed.
    Status {
        /// The install root.
        #[arg(long, default_value = "/opt/nines")]
        root: PathBuf,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Verifies a bundle with the key this robot trusts, unpacks it into
    /// releases/<id>, switches `current` atomically, checks its health and
    /// rolls back when it is unhealthy. Prints the report as one JSON line.
    /// Exits 2 when the release was rolled back (or, on a first install,
    /// not installed).
    Install {
        /// The bundle.
        bundle: PathBuf,
        /// The install root.
        #[arg(long, default_value = "/opt/nines")]
        root: PathBuf,
        /// The key to trust instead of <root>/keys/fleet.pub.
        #[arg(long)]
        pubkey: Option<PathBuf>,
        /// `systemd`: restart the release's unit and watch it (READY, then
        /// no watchdog restart); `none`: run the release's self-test instead.
        #[arg(long, default_value = "systemd", value_parser = ["systemd", "none"])]
        service: String,
        /// Command that runs the release's binary for the self-test, e.g.
        /// an emulator when preparing another architecture's SD card.
        #[arg(long)]
        runner: Option<String>,
        /// Releases to keep (the current and previous are always kept).
        #[arg(long, default_value_t = 3)]
        keep: usize,
        /// Seconds the release has to prove healthy.
        #[arg(long, default_value_t = 30.0)]
        health_timeout: f64,
    },
    /// Loads the model with the vehicle config and runs one inference: the
    /// health check of a release on a robot without systemd.
    SelfTest {
        /// Vehicle configuration.
        #[arg(long)]
        config: PathBuf,
        /// The ONNX model.
        #[arg(long)]
        model: PathBuf,
    },
}

/// Running the runtime.
#[derive(Debug, clap::Args)]
#[expect(clippy::struct_excessive_bools, reason = "command-line switches")]
struct Args {
    /// Vehicle configuration (TOML), e.g. configs/vehicle-sim.toml.
    #[arg(long, required = true)]
    config: Option<PathBuf>,
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
    let cli = Cli::parse();
    let result = match &cli.command {
        Some(tool) => release_tool(tool),
        None => run(&cli.run).map(|()| ExitCode::SUCCESS),
    };
    match result {
        Ok(code) => code,
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
    let config_path = args.config.clone().expect("clap requires --config");
    let config = load_config(&config_path)?;
    let usage = |detail: &str| nines_onboard::OnboardError::Config {
        path: config_path.clone(),
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
    let mut notifier = service::Notifier::new();
    let sink: runtime::Sink = Box::new(move |m| {
        if let Published::Command(c) = m {
            notifier.command_published();
            if !print {
                return;
            }
            println!(
                "{{\"stamp_ns\":{},\"steering_angle\":{},\"speed\":{},\"acceleration\":{}}}",
                c.header.stamp.as_nanos(),
                c.drive.steering_angle,
                c.drive.speed,
                c.drive.acceleration
            );
        }
    });
    // Re-engagement requests over the network, for a robot whose runtime
    // has no terminal (systemd gives it none).
    #[cfg(feature = "zenoh")]
    let _engage = node.as_ref().map(|n| n.engage_requests(Arc::clone(&controls))).transpose()?;
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

fn release_tool(tool: &Tool) -> nines_onboard::Result<ExitCode> {
    match tool {
        Tool::Verify { bundle: path, pubkey, json } => {
            let verified = bundle::verify(path, &keys::read_verifying_key(pubkey)?)?;
            let m = &verified.manifest;
            if *json {
                println!("{}", serde_json::to_string_pretty(m).expect("a manifest serialises"));
            } else {
                println!(
                    "{}: signature good (key {}), {} files intact",
                    path.display(),
                    verified.signer,
                    m.files.len()
                );
                println!(
                    "  release {} for {} (built {}, nines {})",
                    m.id, m.target, m.created, m.nines_version
                );
                println!("  model {} {}", m.model.file, m.model.digest);
                println!("  glibc needed {}, features {}", m.glibc_needed, m.features.join(","));
            }
            Ok(ExitCode::SUCCESS)
        }
        Tool::Status { root, json } => {
            let status = status::status(root)?;
            if *json {
                println!("{}", serde_json::to_string_pretty(&status).expect("a status serialises"));
            } else {
                print_status(&status);
            }
            let healthy = status.current.as_ref().is_some_and(|c| c.problems.is_empty());
            Ok(if healthy { ExitCode::SUCCESS } else { ExitCode::FAILURE })
        }
        Tool::Install { bundle, root, pubkey, service, runner, keep, health_timeout } => {
            let health = Health::from_flags(service, runner.as_deref(), *health_timeout, false);
            let options = InstallOptions { pubkey: pubkey.clone(), health, keep: *keep };
            let report = install::install(bundle, root, &options)?;
            println!("{}", serde_json::to_string(&report).expect("a report serialises"));
            eprintln!("{}", report.summary());
            Ok(if report.succeeded() { ExitCode::SUCCESS } else { ExitCode::from(2) })
        }
        Tool::SelfTest { config, model } => self_test(config, model),
    }
}

/// The vehicle config, with the ONNX Runtime library it names (if any)
/// registered before any model loads.
fn load_config(path: &std::path::Path) -> nines_onboard::Result<Config> {
    let config = Config::load(path)?;
    if let Some(lib) = &config.model.onnxruntime {
        nines_onboard::ort_env::use_library(&config.resolve(lib));
    }
    Ok(config)
}

/// `nines-onboard self-test`: load the model with the vehicle config, one inference.
fn self_test(config: &std::path::Path, model: &std::path::Path) -> nines_onboard::Result<ExitCode> {
    let config = load_config(config)?;
    let start = std::time::Instant::now();
    let mut net = nines_onboard::inference::Inference::load(model, &config.model, &config.base_dir)?;
    net.image_mut().fill(0.5);
    let finite = net.run(0.0, |o| o.depth.iter().chain(o.plan).chain(o.lead).all(|v| v.is_finite()))?;
    let report = serde_json::json!({
        "model": model.display().to_string(),
        "digest": net.digest(),
        "provider": net.provider(),
        "finite": finite,
        "seconds": start.elapsed().as_secs_f64(),
    });
    println!("{report}");
    if finite {
        Ok(ExitCode::SUCCESS)
    } else {
        eprintln!("error: {}: the model's outputs are not finite", model.display());
        Ok(ExitCode::FAILURE)
    }
}

fn print_status(status: &status::Status) {
    println!("root {}", status.root.display());
    println!("  fleet key {}", status.fleet_key.as_deref().unwrap_or("none: not provisioned"));
    match &status.current {
        Some(c) => {
            println!("  current {} ({}, built {}, nines {})", c.id, c.target, c.created, c.nines_version);
            println!("    model {}, onnxruntime {}", c.model_digest, c.onnxruntime);
            if c.problems.is_empty() {
                println!("    files intact");
            }
            for p in &c.problems {
                println!("    CHANGED {p}");
            }
        }
        None => println!("  current: none installed"),
    }
    println!(
        "  releases: {}",
        if status.releases.is_empty() { "none".into() } else { status.releases.join(", ") }
    );
    if let Some(e) = &status.last_event {
        println!("  last event: {e}");
    }
}
