//! `nines inspect`: a drive at a glance.

use std::fmt::Write as _;
use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use nines_datasets::drive::DriveReader;
use nines_datasets::inspect::DriveSummary;
use nines_datasets::sync::{StreamCollector, SyncOptions, SyncReport, synchronise};

/// Arguments of `nines inspect`.
#[derive(Debug, Args)]
pub struct InspectArgs {
    /// Drive log (MCAP).
    pub drive: PathBuf,
    /// Print JSON (for scripts) instead of a table.
    #[arg(long)]
    pub json: bool,
}

#[derive(serde::Serialize)]
struct Inspection {
    #[serde(flatten)]
    summary: DriveSummary,
    sync: Option<SyncReport>,
}

/// Reads the drive once, summarising it and synchronising its camera frames
/// (when it has any) in the same pass.
pub fn inspect(path: &std::path::Path) -> anyhow::Result<(DriveSummary, Option<SyncReport>)> {
    let reader = DriveReader::open(path)?;
    let mut collector = StreamCollector::new(&reader);
    let summary = DriveSummary::of_with(&reader, |view| collector.observe(view))
        .with_context(|| format!("reading {}", path.display()))?;
    let streams = collector.finish();
    let sync = (!streams.camera.is_empty()).then(|| synchronise(&streams, &SyncOptions::default()).1);
    Ok((summary, sync))
}

/// Human-readable report.
pub fn render(summary: &DriveSummary, sync: Option<&SyncReport>) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{}: {:.1} MB, {} messages over {:.2} s",
        summary.path,
        summary.file_bytes as f64 / 1e6,
        summary.messages,
        summary.duration_secs
    );
    let _ =
        writeln!(out, "\n{:<34} {:<42} {:>7} {:>9} {:>9}", "topic", "type", "count", "rate Hz", "max gap s");
    for t in &summary.topics {
        let _ = writeln!(
            out,
            "{:<34} {:<42} {:>7} {:>9.2} {:>9.3}",
            t.topic, t.type_name, t.count, t.rate_hz, t.max_interval_secs
        );
        for (at, len) in &t.gaps {
            let _ = writeln!(out, "    gap of {len:.3} s at +{at:.3} s");
        }
    }
    for c in &summary.cameras {
        let _ = writeln!(
            out,
            "\ncamera {} ({}): {}x{}, fx {:.1} fy {:.1} cx {:.1} cy {:.1}, distortion {}",
            c.topic,
            c.frame_id,
            c.resolution.0,
            c.resolution.1,
            c.intrinsics[0],
            c.intrinsics[1],
            c.intrinsics[2],
            c.intrinsics[3],
            c.distortion
        );
        match c.base_link_from_camera_m {
            Some([x, y, z]) => _ = writeln!(out, "  mounted at ({x:.3}, {y:.3}, {z:.3}) m in base_link"),
            None => _ = writeln!(out, "  no /tf_static path from base_link to {}", c.frame_id),
        }
    }
    if !summary.static_frames.is_empty() {
        let _ = writeln!(out, "\nstatic frames: {}", summary.static_frames.join(", "));
    }
    if !summary.metadata.is_empty() {
        let _ = writeln!(out, "metadata: {}", summary.metadata.join(", "));
    }
    if let Some(c) = &summary.control {
        let drove: Vec<String> = c.seconds.iter().map(|(who, s)| format!("{who} {s:.1} s")).collect();
        let _ = writeln!(
            out,
            "\ncontrol: {}; {} disturbance(s) over {:.1} s; {} takeover(s){}",
            drove.join(", "),
            c.disturbances,
            c.disturbed_seconds,
            c.takeovers,
            if c.unknown > 0 {
                format!("; {} periods of an unknown source", c.unknown)
            } else {
                String::new()
            }
        );
    }
    if let Some(s) = sync {
        let _ = writeln!(
            out,
            "\nsync: {} camera frames; without lidar {}, pose {}, speed {}, command {}; {} gaps, {} out-of-order stamps",
            s.frames,
            s.frames_without_lidar,
            s.frames_without_pose,
            s.frames_without_speed,
            s.frames_without_command,
            s.gaps.len(),
            s.out_of_order.len()
        );
    }
    out
}

/// Runs `nines inspect`.
pub fn run(args: &InspectArgs) -> anyhow::Result<()> {
    let (summary, sync) = inspect(&args.drive)?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&Inspection { summary, sync })?);
    } else {
        print!("{}", render(&summary, sync.as_ref()));
    }
    Ok(())
}
