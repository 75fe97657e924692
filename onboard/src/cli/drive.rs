//! `nines-onboard --config ... --source ...`: the runtime from the command
//! line, with operator input on stdin, sd_notify under systemd and, with
//! `[zenoh]`, the robot's network.

use std::io::BufRead;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use super::Args;
use crate::config::Config;
use crate::release::service;
use crate::runtime::{self, Controls, Published, RunOptions};
use crate::source::{self, Pacing};

#[cfg(feature = "zenoh")]
type NetworkNode = Option<Arc<crate::zenoh_io::Node>>;
#[cfg(not(feature = "zenoh"))]
type NetworkNode = ();

/// The frame source, and the zenoh node when the runtime joins the network:
/// with `--source zenoh`, or with `[zenoh]` and a live camera (or `--publish`).
#[cfg(feature = "zenoh")]
fn open_source(
    config: &Config,
    spec: &str,
    publish: bool,
) -> crate::Result<(Box<dyn source::Source>, NetworkNode)> {
    use crate::zenoh_io::Node;
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
) -> crate::Result<(Box<dyn source::Source>, NetworkNode)> {
    Ok((source::open(spec, &config.camera.topic, config.camera.fps)?, ()))
}

/// Runs the runtime until its source ends.
pub(super) fn run(args: &Args) -> crate::Result<()> {
    let config_path = args.config.clone().ok_or_else(|| crate::OnboardError::Config {
        path: "nines-onboard".into(),
        detail: "no --config: give the vehicle configuration, e.g. --config configs/vehicle-sim.toml".into(),
    })?;
    let config = Config::load_for_runtime(Some(&config_path))?;
    let usage =
        |detail: &str| crate::OnboardError::Config { path: config_path.clone(), detail: detail.into() };
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
        Some(node) => crate::zenoh_io::RuntimePublishers::declare(node)?.into_sink(sink),
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
    let (p50, p99) = (runtime::percentile(&mut latency, 0.5), runtime::percentile(&mut latency, 0.99));
    eprintln!(
        "{} frames, {} commands, {} event(s), provider {}, capture-to-publish p50 {:.2} ms p99 {:.2} ms",
        report.frames,
        report.commands,
        report.events.len(),
        report.provider,
        p50 * 1e3,
        p99 * 1e3
    );
    for e in &report.events {
        let stamp = e.header.stamp.as_nanos();
        eprintln!(
            "  event at {:.3} s into the run (stamp {:.3} s): {}",
            report.seconds_in(stamp),
            stamp as f64 / 1e9,
            e.detail
        );
    }
    for f in &report.recorded {
        eprintln!("  recorded {}", f.display());
    }
    Ok(())
}
