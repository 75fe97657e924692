//! `nines replay`: look at a drive in the rerun viewer.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Args;

use crate::replay::{self, APPLICATION_ID, LidarColour, ReplayOptions, ReplayReport};

/// The rerun version nines is built against; the viewer must match it.
pub const RERUN_VERSION: &str = "0.36.3";

/// Arguments of `nines replay`.
#[derive(Debug, Args)]
#[command(after_long_help = "\
Without --save, --connect or --serve-web the drive opens in a new rerun viewer:
the `rerun` executable from $NINES_RERUN, PATH or the checkout's .venv/bin/rerun
(installed by scripts/setup.sh). The viewer must be rerun 0.36.3. With no display
(neither DISPLAY nor WAYLAND_DISPLAY set, as over ssh) no viewer can open: use
--save or --serve-web (the error says how).

Examples:
  nines replay drive.mcap
  nines replay drive.mcap --save drive.rrd && rerun drive.rrd
  rerun --serve-web &  nines replay drive.mcap --connect rerun+http://127.0.0.1:9876/proxy
  nines replay drive.mcap --serve-web --web-port 9090      (then open the printed URL)
  nines replay drive.mcap --model model.onnx --save drive.rrd   (the model's plan and commands next to the driven ones)

A cut or damaged drive replays what is readable; what was skipped is printed.")]
pub struct ReplayArgs {
    /// The drive (MCAP).
    pub drive: PathBuf,
    /// Write the recording to this .rrd file instead of opening a viewer.
    #[arg(long, value_name = "OUT.rrd", conflicts_with_all = ["connect", "serve_web"])]
    pub save: Option<PathBuf>,
    /// Stream to a running viewer, e.g. rerun+http://127.0.0.1:9876/proxy.
    #[arg(long, value_name = "URL", conflicts_with = "serve_web")]
    pub connect: Option<String>,
    /// Serve the web viewer on localhost and keep serving until interrupted (Ctrl-C).
    #[arg(long)]
    pub serve_web: bool,
    /// Port of the web viewer page (with --serve-web).
    #[arg(long, default_value_t = 9090, requires = "serve_web")]
    pub web_port: u16,
    /// Port of the data server the web page connects to (with --serve-web).
    #[arg(long, default_value_t = 9876, requires = "serve_web")]
    pub grpc_port: u16,
    /// Do not open a browser (with --serve-web).
    #[arg(long, requires = "serve_web")]
    pub no_browser: bool,
    /// Stop serving after this many seconds (with --serve-web; default: until interrupted).
    #[arg(long, value_name = "SECS", requires = "serve_web")]
    pub serve_secs: Option<f64>,
    /// Colour lidar points in 3D by range or intensity.
    #[arg(long, value_enum, default_value_t = LidarColour::Range)]
    pub lidar_colour: LidarColour,
    /// Seconds of future path drawn ahead of the ego.
    #[arg(long, default_value_t = 4.0)]
    pub path_ahead: f64,
    /// Keep every n-th lidar point in 3D (the camera overlay uses all).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..))]
    pub lidar_stride: u64,
    /// Start this many seconds into the drive.
    #[arg(long, value_name = "SECS")]
    pub from: Option<f64>,
    /// End this many seconds into the drive.
    #[arg(long, value_name = "SECS")]
    pub to: Option<f64>,
    /// Run this ONNX model (from `nines export`) through the onboard
    /// runtime's pipeline over the drive, lockstep, and show its plan, lead
    /// and commands next to what was driven.
    #[arg(long, value_name = "MODEL.onnx")]
    pub model: Option<PathBuf>,
    /// Vehicle config for --model (default: the built-in configs/vehicle-sim.toml).
    #[arg(long, value_name = "VEHICLE.toml", requires = "model")]
    pub config: Option<PathBuf>,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
}

/// Where to find a rerun viewer to spawn.
fn find_viewer() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("NINES_RERUN") {
        return Some(PathBuf::from(path));
    }
    let on_path = std::env::var_os("PATH")
        .into_iter()
        .flat_map(|paths| std::env::split_paths(&paths).collect::<Vec<_>>())
        .map(|dir| dir.join("rerun"))
        .find(|candidate| candidate.is_file());
    on_path.or_else(|| super::peers::find(".venv/bin/rerun").ok())
}

fn no_viewer_help() -> String {
    format!(
        "no rerun viewer found (looked at $NINES_RERUN, `rerun` on PATH and .venv/bin/rerun in the nines \
         checkout: $NINES_HOME, the working folder and those above it, the checkout nines was built from). \
         Install it with `bash scripts/setup.sh` (puts rerun {RERUN_VERSION} in .venv/bin) or \
         `pip install rerun-sdk=={RERUN_VERSION}`; or write a file with --save out.rrd, \
         or serve the web viewer with --serve-web"
    )
}

/// Whether a native viewer window can open: on Linux and the BSDs, an X11
/// or Wayland display must be named (the viewer dies with winit's error
/// otherwise, and the recording then waits on a viewer that never came).
fn has_display(var: impl Fn(&str) -> Option<std::ffi::OsString>) -> bool {
    if !cfg!(unix) || cfg!(target_os = "macos") {
        return true;
    }
    ["DISPLAY", "WAYLAND_DISPLAY"].iter().any(|name| var(name).is_some_and(|v| !v.is_empty()))
}

fn no_display_help(drive: &std::path::Path) -> String {
    let stem = drive.file_stem().map_or_else(|| "drive".into(), |s| s.to_string_lossy().into_owned());
    format!(
        "no display here (neither DISPLAY nor WAYLAND_DISPLAY is set), so no viewer window can open. Either \
         write a recording and open it where there is a screen: `nines replay {d} --save {stem}.rrd`, then \
         `rerun {stem}.rrd`; or serve the web viewer from here: `nines replay {d} --serve-web --no-browser` \
         and open http://127.0.0.1:9090 (from another machine: ssh -L 9090:127.0.0.1:9090 -L \
         9876:127.0.0.1:9876 this-host)",
        d = drive.display()
    )
}

/// Runs `nines replay`.
pub fn run(args: &ReplayArgs) -> anyhow::Result<()> {
    anyhow::ensure!(
        args.path_ahead.is_finite() && (0.0..=60.0).contains(&args.path_ahead),
        "--path-ahead {}: give seconds between 0 and 60",
        args.path_ahead
    );
    anyhow::ensure!(args.drive.is_file(), "{}: no such drive file", args.drive.display());
    let window_secs = match (args.from, args.to) {
        (None, None) => None,
        (from, to) => {
            let (from, to) = (from.unwrap_or(0.0), to.unwrap_or(f64::MAX));
            anyhow::ensure!(
                from.is_finite() && from >= 0.0 && to > from,
                "--from {from} --to {to}: give 0 <= from < to"
            );
            Some((from, to))
        }
    };
    if let Some(out) = &args.save {
        anyhow::ensure!(
            out.canonicalize().ok() != args.drive.canonicalize().ok(),
            "{}: refusing to overwrite the drive with the recording; give another --save path",
            out.display()
        );
    }
    let options = ReplayOptions {
        lidar_colour: args.lidar_colour,
        path_ahead_secs: args.path_ahead,
        lidar_stride: usize::try_from(args.lidar_stride).unwrap_or(usize::MAX),
        window_secs,
        model: args.model.clone(),
        vehicle_config: args.config.clone(),
        ..ReplayOptions::default()
    };
    let (rec, web_server) = open_sink(args)?;

    let started = Instant::now();
    let progress = crate::commands::progress_bar(0, "messages");
    let report = match replay::replay(&args.drive, &rec, &options, &progress) {
        Ok(report) => report,
        Err(e) => {
            // A recording of nothing is no use: do not leave one behind.
            drop(rec);
            if let Some(out) = &args.save {
                let _ = std::fs::remove_file(out);
            }
            return Err(e);
        }
    };
    progress.finish_and_clear();
    rec.flush_with_timeout(Duration::from_mins(1))
        .map_err(|e| anyhow::anyhow!("sending the recording: {e}"))?;
    print_report(args, &report, started.elapsed())?;
    if let Some(server) = web_server {
        if let Some(secs) = args.serve_secs {
            std::thread::sleep(Duration::from_secs_f64(secs.max(0.0)));
        } else {
            println!("serving; press Ctrl-C to stop");
            loop {
                std::thread::park();
            }
        }
        drop(server);
    }
    drop(rec);
    Ok(())
}

/// Something that must stay alive while the recording is served.
type KeepAlive = Box<dyn std::any::Any>;

/// The recording stream for the chosen output: a file, a running viewer,
/// the web viewer served from here, or a newly spawned viewer.
fn open_sink(args: &ReplayArgs) -> anyhow::Result<(rerun::RecordingStream, Option<KeepAlive>)> {
    let name = args.drive.file_stem().map_or_else(|| "drive".into(), |s| s.to_string_lossy().into_owned());
    let builder = rerun::RecordingStreamBuilder::new(APPLICATION_ID).recording_name(name);
    let rec = if let Some(out) = &args.save {
        builder.save(out).with_context(|| format!("{}: creating the recording", out.display()))?
    } else if let Some(url) = &args.connect {
        builder.connect_grpc_opts(url.clone()).with_context(|| {
            format!("--connect {url}: not a viewer address; it looks like rerun+http://127.0.0.1:9876/proxy")
        })?
    } else if args.serve_web {
        let server_options = rerun::ServerOptions {
            memory_limit: rerun::MemoryLimit::from_fraction_of_total(0.5),
            ..Default::default()
        };
        let rec = builder
            .serve_grpc_opts("127.0.0.1", args.grpc_port, server_options)
            .with_context(|| format!("serving recordings on port {} (--grpc-port)", args.grpc_port))?;
        let config = rerun::web_viewer::WebViewerConfig {
            bind_ip: "127.0.0.1".into(),
            web_port: args.web_port.into(),
            connect_to: vec![format!("rerun+http://127.0.0.1:{}/proxy", args.grpc_port)],
            open_browser: !args.no_browser,
            ..Default::default()
        };
        let server = rerun::serve_web_viewer(config)
            .with_context(|| format!("serving the web viewer on port {} (--web-port)", args.web_port))?;
        println!("web viewer: {}", server.server_url());
        println!(
            "open http://127.0.0.1:{}/?url=rerun%2Bhttp://127.0.0.1:{}/proxy",
            args.web_port, args.grpc_port
        );
        return Ok((rec, Some(Box::new(server))));
    } else {
        if !has_display(|name| std::env::var_os(name)) {
            anyhow::bail!(no_display_help(&args.drive));
        }
        let viewer = find_viewer().ok_or_else(|| anyhow::anyhow!(no_viewer_help()))?;
        let spawn = rerun::SpawnOptions {
            executable_path: Some(viewer.to_string_lossy().into_owned()),
            ..Default::default()
        };
        builder.spawn_opts(&spawn).with_context(|| format!("starting the viewer {}", viewer.display()))?
    };

    Ok((rec, None))
}

fn print_report(args: &ReplayArgs, report: &ReplayReport, took: Duration) -> anyhow::Result<()> {
    for line in report.skipped_lines() {
        eprintln!("warning: {line}");
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(report)?);
        return Ok(());
    }
    let shown: u64 = report.shown.values().sum();
    println!(
        "replayed {} ({:.1} s of drive): {shown} of {} messages shown, {} entities, in {:.2} s",
        report.drive.display(),
        report.span_secs(),
        report.messages,
        report.entities.len(),
        took.as_secs_f64()
    );
    if !report.not_shown.is_empty() {
        let topics: Vec<&str> = report.not_shown.keys().map(String::as_str).collect();
        println!("not shown: {}", topics.join(", "));
    }
    if let Some(m) = &report.model {
        println!(
            "model: {} frames, {} commands on provider {}{}",
            m.frames,
            m.commands,
            m.provider,
            m.against_driven.map_or_else(String::new, |(steer, speed)| format!(
                "; against the driven commands: steering {steer:.3} rad, speed {speed:.2} m/s mean |difference|"
            ))
        );
        for stop in &m.stops {
            println!("model: {stop}");
        }
    }
    if let Some(out) = &args.save {
        println!("wrote {} (open it with `rerun {}`)", out.display(), out.display());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn without_a_display_replay_says_to_save_or_serve() {
        let none = |_: &str| None;
        let x11 = |name: &str| (name == "DISPLAY").then(|| ":0".into());
        let empty = |_: &str| Some(std::ffi::OsString::new());
        if cfg!(target_os = "linux") {
            assert!(!has_display(none));
            assert!(!has_display(empty));
        }
        assert!(has_display(x11));
        let help = no_display_help(std::path::Path::new("runs/cut_in-7.mcap"));
        assert!(help.contains("--save cut_in-7.rrd") && help.contains("--serve-web"), "{help}");
    }
}
