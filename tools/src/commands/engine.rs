//! `nines engine`: the data engine's rounds (collect, distil, train,
//! export, eval, gate) over nines-harness's `engine`.

use std::path::PathBuf;

use clap::Args;

use nines_harness::engine::{EngineConfig, EngineDir, run_engine};
use nines_harness::ledger::Ledger;
use nines_harness::report;

use super::BarProgress;

/// `nines engine --help`.
pub(crate) const LONG_ABOUT: &str = "Run the data engine: rounds that turn failures into training data. \
Round 0 collects drives of the expert under disturbances (DART); round k collects drives of round \
k-1's model with a safety driver who takes over before failures (HG-DAgger), plus more disturbed \
expert drives. Each round distils its drives, trains on every round's labels (warm-started from \
the previous round, recovery states sampled more often), exports the model (parity-checked), \
evaluates it on the suite into OUT/nines.db as release NAME-rK, and gates it against the round \
before (OUT/round-K/gate.txt). Collection seeds start at 1000000, so no suite run is a training \
scenario. The same command after an interruption continues at the first unfinished step.

The config (TOML) may be empty. Keys and defaults: name = \"engine\", rounds = 3, preset = \"tiny\", \
families = [\"all\"], seeds_per_round = 2, expert_ratio = 1.0, duration_s = 30.0, disturb = \"dart\", \
epochs = 6, batch_size = 16, recovery_weight = 2.0, plan_lateral = 1.0, suite = \"suites/small.toml\" (relative to the \
config file), jobs = 0 (every core), device = \"cpu\", and [takeover] lateral_m = 0.9, heading_deg = 6.0, \
ttc_s = 1.5, stable_lateral_m = 0.3, stable_heading_deg = 2.0, stable_s = 1.0. An unknown key is an \
error. configs/engine-cpu.toml is the CPU configuration measured in docs/NINES.md.";

/// Arguments of `nines engine`.
#[derive(Debug, Args)]
pub struct EngineArgs {
    /// The engine config (TOML) [default: every default].
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Where the rounds, the ledger and the report go.
    #[arg(long)]
    pub out: PathBuf,
}

/// Runs `nines engine`.
pub fn run(args: &EngineArgs) -> anyhow::Result<()> {
    let config = match &args.config {
        Some(path) => EngineConfig::load(path)?,
        None => EngineConfig::default(),
    };
    println!(
        "data engine {}: {} rounds of {} families x {} seeds, {} epochs each, eval on {} -> {}",
        config.name,
        config.rounds,
        config.family_names().len(),
        config.seeds_per_round,
        config.epochs,
        config.suite.display(),
        args.out.display()
    );
    let rounds = run_engine(&config, &args.out, &BarProgress::new(format!("engine {}", config.name)))?;
    let layout = EngineDir { dir: args.out.clone() };
    let reports = report::build(&Ledger::open_existing(&layout.ledger())?)?;
    let html = args.out.join("report.html");
    std::fs::write(&html, report::html(&reports)?)?;
    println!("engine done:");
    for round in &rounds {
        println!("  {}", nines_harness::engine::round_line(round));
    }
    println!("  the report:  {}", html.display());
    println!("  the ledger:  nines report --ledger {}", layout.ledger().display());
    if let Some(last) = rounds.last() {
        println!("  the model:   {}", last.model.display());
    }
    Ok(())
}
