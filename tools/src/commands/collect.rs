//! `nines collect`: a model drives collection seeds with a safety driver
//! (HG-DAgger); the drives it records are distilled like any other.

use std::path::PathBuf;

use anyhow::Context;
use clap::Args;

use nines_harness::collect::{CollectOptions, collect};
use nines_harness::eval::eval_config;
use nines_harness::safety_driver::Takeover;
use nines_harness::suite::{FramePath, SuiteCamera, parse_seeds};
use nines_onboard::config::Config;

use super::BarProgress;

/// `nines collect --help`.
pub(crate) const LONG_ABOUT: &str = "Collect recovery data with a model in the driver's seat and a \
safety driver watching (HG-DAgger). The model drives each family x seed through the onboard \
pipeline in lockstep; the safety driver (the simulator's expert, with privileged state) takes over \
before a failure (off the lane centre, turned off the lane's heading, a close lead, or a controlled \
stop of the runtime), drives back to a stable state and hands back. Every run is recorded with \
camera, lidar and poses as <out>/<family>-<seed>.mcap, with who drove on /nines/control_source and \
each takeover and hand-back on /nines/events, so `nines distill` imitates the safety driver's \
recovery and never the model. Prints kilometres per intervention. Seeds are collection seeds \
(1000000 and up; the suites evaluate below). Running it again keeps the drives already recorded. \
Release evaluation (`nines eval`) has no safety driver.";

/// Arguments of `nines collect`.
#[derive(Debug, Args)]
pub struct CollectArgs {
    /// The exported model that drives (ONNX).
    #[arg(long)]
    pub model: PathBuf,
    /// Comma-separated families, or `all`.
    #[arg(long, default_value = "all")]
    pub families: String,
    /// Collection seeds, a half-open range A..B (at least 1000000).
    #[arg(long, default_value = "1000000..1000004")]
    pub seeds: String,
    /// Run length, s [default: the family's].
    #[arg(long)]
    pub duration: Option<f64>,
    /// Camera columns (the training drives' camera).
    #[arg(long, default_value_t = 256)]
    pub width: u32,
    /// Camera rows.
    #[arg(long, default_value_t = 128)]
    pub height: u32,
    /// Takeover thresholds (TOML: lateral_m, heading_deg, ttc_s,
    /// stable_lateral_m, stable_heading_deg, stable_s) [default: 0.9 m, 6
    /// degrees, 1.5 s; stable within 0.3 m and 2 degrees for 1 s].
    #[arg(long)]
    pub takeover: Option<PathBuf>,
    /// Vehicle config of the runtime [default: the simulator's car].
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Folder for the drives.
    #[arg(long)]
    pub out: PathBuf,
    /// Runs at once [default: the number of cores].
    #[arg(long)]
    pub jobs: Option<usize>,
}

/// Reads a takeover TOML (every key defaulted, unknown keys refused).
pub(crate) fn read_takeover(path: &std::path::Path) -> anyhow::Result<Takeover> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    toml::from_str(&text).with_context(|| format!("{}: not a takeover TOML", path.display()))
}

/// Runs `nines collect`.
pub fn run(args: &CollectArgs) -> anyhow::Result<()> {
    let seeds = parse_seeds(&args.seeds).context("--seeds")?;
    let families = super::sim::family_names(&args.families);
    let runs: Vec<(String, u64)> =
        families.iter().flat_map(|f| seeds.clone().map(move |s| (f.clone(), s))).collect();
    let takeover = args.takeover.as_deref().map(read_takeover).transpose()?.unwrap_or_default();
    let options = CollectOptions {
        model: args.model.clone(),
        config: eval_config(Config::load_for_runtime(args.config.as_deref())?),
        camera: SuiteCamera {
            width: args.width,
            height: args.height,
            frames: FramePath::Jpeg,
            ..SuiteCamera::default()
        },
        takeover,
        duration_s: args.duration,
        jobs: args.jobs.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, usize::from)),
    };
    println!(
        "collecting {} runs with {} and a safety driver -> {}",
        runs.len(),
        args.model.display(),
        args.out.display()
    );
    let summary = collect(&options, &runs, &args.out, &BarProgress::new("collect"))?;
    for run in summary.runs.iter().filter(|r| r.interventions > 0 || !r.failures.is_empty()) {
        println!(
            "  {}-{}: {} interventions in {:.2} km{}",
            run.family,
            run.seed,
            run.interventions,
            run.km,
            if run.failures.is_empty() {
                String::new()
            } else {
                format!("; failed: {}", run.failures.join("; "))
            }
        );
    }
    println!("{}", summary.line());
    if summary.already > 0 {
        println!("({} drives were already recorded and kept)", summary.already);
    }
    println!("distil them: nines distill {}/*.mcap --out LABELS", args.out.display());
    Ok(())
}
