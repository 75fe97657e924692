//! `nines eval`, `nines eval merge`, `nines report` and `nines gate`.

use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::{Args, Subcommand};

use nines_harness::closed_loop::Seat;
use nines_harness::eval::{EvalOptions, Shard, eval, eval_config};
use nines_harness::ledger::Ledger;
use nines_harness::report::{self, ALPHA};
use nines_harness::suite::Suite;
use nines_onboard::config::Config;

use super::BarProgress;

/// Default ledger file.
const LEDGER: &str = "nines.db";

/// `nines eval --help`.
pub(crate) const LONG_ABOUT: &str = "Evaluate a model (or the expert) on every run of a suite, in parallel, into a SQLite \
ledger. Closed-loop runs put the onboard pipeline (the library the robot runs, in lockstep) in the \
simulator's driver seat, with the expert in shadow; a run fails on a collision, leaving the road or \
lane, time-to-collision below 0.95 s, braking beyond 4.05 m/s^2, under 20% of the expert's progress, \
or a controlled stop of the runtime. Open-loop runs replay logged drives and compare the plan and \
lead with the drive's lidar labels, one minute at a time. Each run is committed as it finishes (run \
the same command again to resume); failed runs' drives are kept next to the ledger with the command \
that replays them. Then: `nines report`, `nines gate`. Suites and the statistics: docs/NINES.md.";

/// Arguments of `nines eval`.
#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
pub struct EvalArgs {
    /// Merge shard ledgers instead of evaluating.
    #[command(subcommand)]
    pub merge: Option<EvalCommand>,
    /// The exported model to evaluate (ONNX, from `nines export`).
    #[arg(long, required_unless_present = "policy", conflicts_with = "policy")]
    pub model: Option<PathBuf>,
    /// Evaluate a built-in driver instead of a model: `expert`, the
    /// simulator's privileged reference driver (closed-loop runs only; the
    /// open-loop entries are recorded as skipped).
    #[arg(long, value_parser = ["expert"])]
    pub policy: Option<String>,
    /// The suite (TOML, e.g. suites/small.toml).
    #[arg(long, required = true)]
    pub suite: Option<PathBuf>,
    /// Release name in the ledger (an eval under an existing name resumes
    /// it; another model under that name is refused).
    #[arg(long, required = true)]
    pub release: Option<String>,
    /// Runs at once [default: the number of cores].
    #[arg(long)]
    pub jobs: Option<usize>,
    /// The ledger (SQLite).
    #[arg(long, default_value = LEDGER)]
    pub ledger: PathBuf,
    /// Run only this slice of the suite, I/N with I counted from 0 (0/4 .. 3/4;
    /// a cluster job array's task id); merge the shards' ledgers with `nines eval merge`.
    #[arg(long)]
    pub shard: Option<Shard>,
    /// Vehicle config of the runtime [default: the simulator's car].
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Where the suite's generated open-loop drives are cached
    /// [default: $HOME/.cache/nines/suites].
    #[arg(long)]
    pub cache: Option<PathBuf>,
}

/// `nines eval` subcommands.
#[derive(Debug, Subcommand)]
pub enum EvalCommand {
    /// Merge the ledgers of an eval's shards into one.
    Merge {
        /// The ledger to merge into (created if missing).
        #[arg(long, default_value = LEDGER)]
        into: PathBuf,
        /// Shard ledgers.
        #[arg(required = true)]
        shards: Vec<PathBuf>,
    },
}

/// Arguments of `nines report`.
#[derive(Debug, Args)]
pub struct ReportArgs {
    /// The ledger.
    #[arg(long, default_value = LEDGER)]
    pub ledger: PathBuf,
    /// Also write an HTML report (with the chart of nines across releases).
    #[arg(long)]
    pub html: Option<PathBuf>,
    /// Print the figures as JSON instead of text.
    #[arg(long)]
    pub json: bool,
    /// Only these releases (all if none).
    #[arg(long = "release")]
    pub releases: Vec<String>,
    /// Gate every release against this one [default: each against the release before it].
    #[arg(long)]
    pub baseline: Option<String>,
}

/// Arguments of `nines gate`.
#[derive(Debug, Args)]
pub struct GateArgs {
    /// The release that shipped.
    #[arg(long)]
    pub baseline: String,
    /// The release that wants to.
    #[arg(long)]
    pub candidate: String,
    /// The ledger.
    #[arg(long, default_value = LEDGER)]
    pub ledger: PathBuf,
}

fn default_cache() -> PathBuf {
    std::env::var_os("HOME")
        .map_or_else(|| PathBuf::from(".nines-cache"), PathBuf::from)
        .join(".cache/nines/suites")
}

/// Runs `nines eval`.
pub fn run(args: &EvalArgs) -> anyhow::Result<()> {
    if let Some(EvalCommand::Merge { into, shards }) = &args.merge {
        let mut target = Ledger::open(into)?;
        for shard in shards {
            let other = Ledger::open_existing(shard)?;
            let (added, present) = target.merge(&other)?;
            println!("{}: {added} runs added, {present} already in {}", shard.display(), into.display());
        }
        return Ok(());
    }
    let (Some(suite), Some(release)) = (&args.suite, &args.release) else {
        bail!("--suite and --release are required");
    };
    let suite = Suite::load(suite)?;
    let seat = match (&args.model, args.policy.as_deref()) {
        (Some(model), None) => {
            if !model.exists() {
                bail!(
                    "{}: no such model; export one with `nines export RUN --out model.onnx`",
                    model.display()
                );
            }
            Seat::Model {
                path: model.clone(),
                config: Box::new(eval_config(Config::load_for_runtime(args.config.as_deref())?)),
            }
        }
        (None, Some("expert")) => Seat::Expert,
        _ => bail!("give either --model model.onnx or --policy expert"),
    };
    let jobs = args.jobs.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, usize::from));
    let options = EvalOptions {
        suite,
        seat,
        release: release.clone(),
        ledger: args.ledger.clone(),
        jobs,
        shard: args.shard,
        cache: args.cache.clone().unwrap_or_else(default_cache),
    };
    let summary = eval(&options, &BarProgress::new(format!("eval {release}")))?;
    let (closed, wall) = summary.closed;
    println!(
        "release {}: {} runs recorded in {} ({} failed){}",
        release,
        summary.recorded,
        args.ledger.display(),
        summary.failures,
        if summary.already > 0 { format!(", {} were already there", summary.already) } else { String::new() }
    );
    if closed > 0 && wall > 0.0 {
        println!(
            "  {closed} closed-loop runs in {wall:.1} s on {jobs} jobs: {:.0} runs/hour",
            closed as f64 * 3600.0 / wall
        );
    }
    if summary.failures > 0 {
        println!("  failed runs' drives: {}", summary.drives_dir.display());
    }
    println!("  see the nines: nines report --ledger {}", args.ledger.display());
    Ok(())
}

/// Runs `nines report`.
pub fn run_report(args: &ReportArgs) -> anyhow::Result<()> {
    let ledger = Ledger::open_read_only(&args.ledger)?;
    let mut reports =
        report::build(&ledger).with_context(|| format!("reading the ledger {}", args.ledger.display()))?;
    if let Some(baseline) = &args.baseline
        && !report::judge(&mut reports, Some(baseline))
    {
        bail!(
            "no release {baseline:?} in {} to gate against (`nines report` lists them)",
            args.ledger.display()
        );
    }
    if !args.releases.is_empty() {
        for name in &args.releases {
            if !reports.iter().any(|r| &r.release == name) {
                bail!("no release {name:?} in {}", args.ledger.display());
            }
        }
        reports.retain(|r| args.releases.contains(&r.release));
    }
    if reports.is_empty() {
        bail!("{} has no releases yet; run `nines eval` first", args.ledger.display());
    }
    if args.json {
        println!("{}", report::json_text(&reports)?);
    } else {
        print!("{}", report::text(&reports));
    }
    if let Some(path) = &args.html {
        std::fs::write(path, report::html(&reports)?)
            .with_context(|| format!("writing {}", path.display()))?;
        if !args.json {
            println!("HTML report: {}", path.display());
        }
    }
    Ok(())
}

/// Runs `nines gate`: an error (non-zero exit) when the candidate fails.
pub fn run_gate(args: &GateArgs) -> anyhow::Result<()> {
    let ledger = Ledger::open_read_only(&args.ledger)?;
    let find = |name: &str| -> anyhow::Result<report::ReleaseReport> {
        let reading = || format!("reading the ledger {}", args.ledger.display());
        let release = ledger
            .release(name)
            .with_context(reading)?
            .with_context(|| format!("no release {name:?} in {}", args.ledger.display()))?;
        Ok(report::ReleaseReport::of(&release, &ledger.runs(release.id).with_context(reading)?))
    };
    let (baseline, candidate) = (find(&args.baseline)?, find(&args.candidate)?);
    let verdict = report::gate(&baseline, &candidate, ALPHA);
    for warning in &verdict.warnings {
        eprintln!("warning: {warning}");
    }
    println!(
        "baseline {}: {}/{} failed; candidate {}: {}/{} failed; p = {:.4}",
        baseline.release,
        verdict.baseline.0,
        verdict.baseline.1,
        candidate.release,
        verdict.candidate.0,
        verdict.candidate.1,
        verdict.p_value
    );
    if verdict.reasons.is_empty() {
        println!("gate: PASS ({} is not significantly worse than {})", candidate.release, baseline.release);
        Ok(())
    } else {
        bail!("gate: FAIL: {}", verdict.reasons.join("; "))
    }
}

/// `nines ledger`: housekeeping of a ledger file.
#[derive(Debug, clap::Subcommand)]
pub enum LedgerCommand {
    /// Remove a release with all its runs, events and metrics (one
    /// transaction; its kept drives stay on disk). The release name is then
    /// free for a new `nines eval --release NAME`.
    Rm {
        /// The release to remove.
        #[arg(long)]
        release: String,
        /// The ledger.
        #[arg(long, default_value = LEDGER)]
        ledger: PathBuf,
    },
}

/// Runs `nines ledger`.
pub fn run_ledger(command: &LedgerCommand) -> anyhow::Result<()> {
    match command {
        LedgerCommand::Rm { release, ledger } => {
            let mut open = Ledger::open_existing(ledger)?;
            let runs = open.remove_release(release)?;
            println!("removed release {release} ({runs} runs) from {}", ledger.display());
            Ok(())
        }
    }
}
