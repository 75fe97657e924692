//! `nines distill`: drives into label shards (DESIGN.md section 3).

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use anyhow::Context;
use clap::{Args, ValueEnum};
use nines_datasets::contract::ModelContract;
use nines_datasets::drive::DriveReader;
use nines_kernels::{Device, Kernels};
use nines_offboard::distill::quality::Quality;
use nines_offboard::distill::{DistillOptions, LabelMode};
use nines_offboard::labels::{Added, LabelFolder};

/// Where the kernels run.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum DeviceArg {
    /// The CPU reference on every core.
    Cpu,
    /// The CUDA kernels on GPU 0.
    Gpu,
}

/// `nines distill --help`.
pub(crate) const LONG_ABOUT: &str = "Distil drives into labels for the camera-only network: depth from \
accumulated lidar, the lead obstacle on the driven path, and the future path itself. Writes one \
safetensors shard per drive and OUT/index.json (contract, drive digests, counts, statistics, \
label quality on simulated drives). Drives already distilled under the same contract are skipped, \
so an interrupted run resumes. A drive that cannot be labelled is reported and the others go on.";

/// Arguments of `nines distill`.
#[derive(Debug, Args)]
pub struct DistillArgs {
    /// Drive logs (MCAP).
    #[arg(required = true)]
    pub drives: Vec<PathBuf>,
    /// Folder for the shards and index.json.
    #[arg(long, default_value = "labels")]
    pub out: PathBuf,
    /// Where the projection and warp kernels run (gpu = CUDA).
    #[arg(long, value_enum, default_value = "cpu")]
    pub device: DeviceArg,
    /// Drives distilled at once.
    #[arg(long, default_value_t = 1)]
    pub jobs: usize,
    /// Model contract (TOML, or JSON) overriding the defaults: input size, stacked frames,
    /// normalisation, virtual camera, label stride, plan times (DESIGN.md section 3).
    #[arg(long)]
    pub contract: Option<PathBuf>,
    /// Depth and image labels in the source camera's own geometry and resolution
    /// (for checking against annotations, or training other networks).
    #[arg(long)]
    pub native: bool,
    /// Sweeps accumulated on each side of a frame's own.
    #[arg(long, default_value_t = 4)]
    pub accumulate: usize,
    /// Print label quality against simulator ground truth (always stored in the index).
    #[arg(long)]
    pub report: bool,
    /// Distil again drives the index already holds.
    #[arg(long)]
    pub force: bool,
}

/// Runs `nines distill`.
pub fn run(args: &DistillArgs) -> anyhow::Result<()> {
    let contract = match &args.contract {
        Some(path) => ModelContract::load(path)?,
        None => ModelContract::default(),
    };
    let mode = if args.native { LabelMode::Native } else { LabelMode::Virtual };
    let device = match args.device {
        DeviceArg::Cpu => Device::Cpu,
        DeviceArg::Gpu => Device::Cuda,
    };
    let kernels = Kernels::new(device).context("--device gpu needs a CUDA GPU; use --device cpu")?;
    let mut options = DistillOptions { contract, mode, ..DistillOptions::default() };
    options.depth.accumulate = args.accumulate;
    let folder = LabelFolder::open(&args.out, options)?;
    let outcomes = label_drives(&folder, &args.drives, &kernels, args.jobs, args.force);
    if args.report {
        print!("{}", report(&outcomes, folder.index().pooled_quality().as_ref()));
    }
    let failed = outcomes.iter().filter(|(_, o)| matches!(o, Added::Failed(_))).count();
    if failed > 0 {
        anyhow::bail!(
            "{failed} of {} drives could not be distilled (listed above and in {}/index.json)",
            outcomes.len(),
            args.out.display()
        );
    }
    Ok(())
}

/// Adds `drives` to `folder` on `jobs` threads with a progress bar over
/// their camera frames; returns what happened to each drive.
pub(crate) fn label_drives(
    folder: &LabelFolder,
    drives: &[PathBuf],
    kernels: &Kernels,
    jobs: usize,
    force: bool,
) -> Vec<(PathBuf, Added)> {
    let total: u64 = drives.iter().map(|d| camera_frames(d)).sum();
    let bar = super::progress_bar(total, "frames");
    say(
        &bar,
        format!(
            "distilling {} drive(s) into {} on {} ({:?} labels, contract {})",
            drives.len(),
            folder.dir().display(),
            kernels.describe(),
            folder.options().mode,
            folder.options().contract.digest()
        ),
    );
    let ticker = super::Ticker::new("distill", "frames");
    let queue = Mutex::new(drives.iter().collect::<std::collections::VecDeque<_>>());
    let outcomes = Mutex::new(Vec::new());
    let work = || {
        // The guard moves into the `and_then` closure and is dropped there: no lock is held while working.
        while let Some(drive) = queue.lock().ok().and_then(|mut q| q.pop_front()) {
            let added = folder.add_drive(drive, kernels, force, &|| {
                bar.inc(1);
                ticker.tick(&bar);
            });
            if matches!(added, Added::Skipped(_)) {
                bar.inc(camera_frames(drive));
                ticker.tick(&bar);
            }
            say(&bar, describe(drive, &added));
            if let Ok(mut all) = outcomes.lock() {
                all.push((drive.clone(), added));
            }
        }
    };
    std::thread::scope(|scope| {
        for worker in 1..jobs.clamp(1, drives.len().max(1)) {
            let named = std::thread::Builder::new().name(format!("nines-distill-{worker}"));
            if let Err(e) = named.spawn_scoped(scope, work) {
                tracing::warn!(
                    "could not start distillation thread {worker} ({e}); the others take its drives"
                );
            }
        }
        // This thread is worker 0, and finishes whatever the others cannot.
        work();
    });
    bar.finish_and_clear();
    outcomes.into_inner().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// A line above the bar, or on stdout when the bar is hidden (not a terminal).
fn say(bar: &indicatif::ProgressBar, line: String) {
    if bar.is_hidden() {
        println!("{line}");
    } else {
        bar.println(line);
    }
}

fn camera_frames(drive: &Path) -> u64 {
    DriveReader::open(drive).map_or(0, |r| {
        r.topics()
            .iter()
            .filter(|t| {
                t.topic == nines_datasets::topics::CAMERA_COMPRESSED
                    || t.topic == nines_datasets::topics::CAMERA_RAW
            })
            .map(|t| t.message_count)
            .max()
            .unwrap_or(0)
    })
}

fn describe(drive: &Path, added: &Added) -> String {
    match added {
        Added::Labelled(e) | Added::Skipped(e) => {
            let verb =
                if matches!(added, Added::Labelled(_)) { "labelled" } else { "already labelled, skipped" };
            format!(
                "{}: {verb}: {} frames, depth coverage {:.1}%, lead in {} (speed known in {}), plan valid {:.0}%{} -> {}",
                drive.display(),
                e.frames,
                100.0 * e.stats.depth_coverage,
                e.stats.lead_present,
                e.stats.lead_speed_known,
                100.0 * e.stats.plan_valid,
                if e.stats.frames_masked > 0 {
                    format!(
                        " ({} points in {} frames masked: the model drove or a disturbance was injected)",
                        e.stats.plan_masked, e.stats.frames_masked
                    )
                } else {
                    String::new()
                },
                e.shard
            )
        }
        Added::Failed(error) => format!("warning: {error}"),
    }
}

fn report(outcomes: &[(PathBuf, Added)], pooled: Option<&Quality>) -> String {
    let mut out = String::from(
        "\nlabel quality against simulator ground truth\n\
         drive                            frames  depth AbsRel single/accum  coverage single/accum  lead err  lead frames (missed/spurious)\n",
    );
    let mut row = |name: &str, q: &Quality| {
        let _ = writeln!(
            out,
            "{name:<32} {:>6}  {:>12.4} / {:<6.4}  {:>14.1}% / {:<5.1}%  {:>7.2}%  {} ({}/{})",
            q.frames,
            q.single_abs_rel,
            q.accumulated_abs_rel,
            100.0 * q.single_coverage,
            100.0 * q.accumulated_coverage,
            100.0 * q.lead_distance_rel_error,
            q.lead_frames,
            q.lead_missed,
            q.lead_spurious
        );
    };
    let mut any = false;
    for (drive, outcome) in outcomes {
        if let Added::Labelled(e) | Added::Skipped(e) = outcome
            && let Some(q) = &e.quality
        {
            any = true;
            row(&drive.file_name().map_or_else(String::new, |n| n.to_string_lossy().into_owned()), q);
        }
    }
    if let Some(q) = pooled {
        row("all shards in the index", q);
    }
    if !any {
        out.push_str("(no drive here has simulator ground truth: real drives are scored against annotations instead)\n");
    }
    out
}
