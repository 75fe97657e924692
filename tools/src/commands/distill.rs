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
use nines_offboard::distill::{DistillOptions, LabelMode, distill_drive};
use nines_offboard::labels::{LabelIndex, LabelStats, ShardEntry, file_digest, write_shard};

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
    /// Model contract (TOML, or JSON) overriding the defaults; see `nines distill --help`.
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

/// What happened to one drive.
enum Outcome {
    Done(Box<ShardEntry>),
    Skipped(Box<ShardEntry>),
    Failed(String),
}

/// Runs `nines distill`.
pub fn run(args: &DistillArgs) -> anyhow::Result<()> {
    let contract = match &args.contract {
        Some(path) => ModelContract::load(path)?,
        None => ModelContract::default(),
    };
    let mode = if args.native { LabelMode::Native } else { LabelMode::Virtual };
    std::fs::create_dir_all(&args.out).with_context(|| format!("creating {}", args.out.display()))?;
    let index = Mutex::new(LabelIndex::open_for(&args.out, &contract, mode)?);
    let device = match args.device {
        DeviceArg::Cpu => Device::Cpu,
        DeviceArg::Gpu => Device::Cuda,
    };
    let kernels = Kernels::new(device).context("--device gpu needs a CUDA GPU; use --device cpu")?;
    let mut options = DistillOptions { contract, mode, ..DistillOptions::default() };
    options.depth.accumulate = args.accumulate;

    let total: u64 = args.drives.iter().map(|d| camera_frames(d)).sum();
    let bar = super::progress_bar(total, "frames");
    say(
        &bar,
        format!(
            "distilling {} drive(s) into {} on {} ({:?} labels, contract {})",
            args.drives.len(),
            args.out.display(),
            kernels.describe(),
            mode,
            options.contract.digest()
        ),
    );
    let queue = Mutex::new(args.drives.iter().collect::<std::collections::VecDeque<_>>());
    let outcomes = Mutex::new(Vec::new());
    std::thread::scope(|scope| {
        for _ in 0..args.jobs.clamp(1, args.drives.len().max(1)) {
            scope.spawn(|| {
                // The guard moves into the closure and is dropped there: no lock is held while working.
                while let Some(drive) = queue.lock().ok().and_then(|mut q| q.pop_front()) {
                    let outcome = one_drive(drive, args, &kernels, &options, &index, &bar);
                    say(&bar, describe(drive, &outcome));
                    if let Ok(mut all) = outcomes.lock() {
                        all.push((drive.clone(), outcome));
                    }
                }
            });
        }
    });
    bar.finish_and_clear();
    let index = index.into_inner().map_err(|_| anyhow::anyhow!("a distillation worker panicked"))?;
    let outcomes = outcomes.into_inner().map_err(|_| anyhow::anyhow!("a distillation worker panicked"))?;
    if args.report {
        print!("{}", report(&outcomes, index.pooled_quality().as_ref()));
    }
    let failed = outcomes.iter().filter(|(_, o)| matches!(o, Outcome::Failed(_))).count();
    if failed > 0 {
        anyhow::bail!(
            "{failed} of {} drives could not be distilled (listed above and in {}/index.json)",
            outcomes.len(),
            args.out.display()
        );
    }
    Ok(())
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

fn one_drive(
    drive: &Path,
    args: &DistillArgs,
    kernels: &Kernels,
    options: &DistillOptions,
    index: &Mutex<LabelIndex>,
    bar: &indicatif::ProgressBar,
) -> Outcome {
    let record_failure = |error: String| {
        if let Ok(mut index) = index.lock() {
            index.record_failure(drive, error.clone());
            let _ = index.save(&args.out);
        }
        Outcome::Failed(error)
    };
    let digest = match file_digest(drive) {
        Ok(d) => d,
        Err(e) => return record_failure(e.to_string()),
    };
    if !args.force
        && let Some(entry) = index.lock().ok().and_then(|i| i.finished(&args.out, &digest).cloned())
    {
        bar.inc(camera_frames(drive));
        return Outcome::Skipped(Box::new(entry));
    }
    let labels = match distill_drive(drive, kernels, options, &|| bar.inc(1)) {
        Ok(labels) => labels,
        Err(e) => return record_failure(e.to_string()),
    };
    let stem = drive.file_stem().map_or_else(|| "drive".into(), |s| s.to_string_lossy().into_owned());
    let shard = format!("{stem}-{digest}.safetensors");
    let contract_digest = options.contract.digest();
    if let Err(e) = write_shard(&args.out.join(&shard), &labels, &contract_digest, &digest) {
        return record_failure(e.to_string());
    }
    let entry = ShardEntry {
        drive: drive.to_path_buf(),
        drive_digest: digest,
        shard,
        frames: labels.frames,
        skipped_frames: labels.skipped_frames,
        stats: LabelStats::of(&labels),
        quality: labels.quality.quality(),
        quality_sums: labels.quality,
    };
    let saved = index.lock().map_err(|_| "index lock poisoned".to_owned()).and_then(|mut i| {
        i.record(entry.clone());
        i.save(&args.out).map_err(|e| e.to_string())
    });
    match saved {
        Ok(()) => Outcome::Done(Box::new(entry)),
        Err(e) => Outcome::Failed(e),
    }
}

fn describe(drive: &Path, outcome: &Outcome) -> String {
    match outcome {
        Outcome::Done(e) | Outcome::Skipped(e) => {
            let verb =
                if matches!(outcome, Outcome::Done(_)) { "labelled" } else { "already labelled, skipped" };
            format!(
                "{}: {verb}: {} frames, depth coverage {:.1}%, lead in {} (speed known in {}), plan valid {:.0}% -> {}",
                drive.display(),
                e.frames,
                100.0 * e.stats.depth_coverage,
                e.stats.lead_present,
                e.stats.lead_speed_known,
                100.0 * e.stats.plan_valid,
                e.shard
            )
        }
        Outcome::Failed(error) => format!("warning: {error}"),
    }
}

fn report(outcomes: &[(PathBuf, Outcome)], pooled: Option<&Quality>) -> String {
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
        if let Outcome::Done(e) | Outcome::Skipped(e) = outcome
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
