//! `nines demo`: the main job, end to end, on CPU: simulate drives, distil
//! their lidar into labels, train the tiny camera-only network, export it to
//! ONNX, evaluate it and the expert on the small suite, and report the
//! nines with where to replay a failure.

use std::path::PathBuf;

use anyhow::Context;
use clap::Args;

use nines_kernels::Kernels;
use nines_offboard::distill::DistillOptions;
use nines_offboard::labels::{Added, LabelFolder};

use super::export::ExportArgs;
use super::sim::{SensorArgs, SimCommand};
use super::train::{BackendArg, TrainArgs, TrainDeviceArg};
use nines_harness::closed_loop::Seat;
use nines_harness::eval::{EvalOptions, eval, eval_config};
use nines_harness::ledger::Ledger;
use nines_harness::report;
use nines_harness::suite::Suite;

use super::BarProgress;

/// The small suite, built in so the demo runs from anywhere.
const SMALL_SUITE: &str = include_str!("../../../suites/small.toml");

/// The quick variant's suite: two families, short runs, a short drive open loop.
const QUICK_SUITE: &str = r#"name = "quick"
description = "The demo's quick variant (tests): two families, one seed of 8 s; open loop, a simulated 20 s and one of the demo's own drives (a logged drive's path)."
[camera]
width = 256
height = 128
[[closed_loop]]
families = ["straight", "lead_brake"]
seeds = "0"
duration_s = 8.0
[[open_loop]]
simulate = { families = ["straight"], seeds = "0", duration_s = 20.0 }
[[open_loop]]
drives = ["drives/lead_brake-1000000.mcap"]
"#;

/// `nines demo --help`.
pub(crate) const LONG_ABOUT: &str = "The main job end to end, on CPU, in about 6 minutes on two cores \
(release build): simulate 12 drives with the expert under dart disturbances (camera, lidar, \
poses; seeds from 1,000,000, which no suite uses), distil their lidar into labels (never \
imitating a disturbance), train the tiny network, export it to ONNX (parity-checked in ONNX Runtime), \
evaluate the expert and the model on the small suite into a ledger, print the nines and write \
an HTML report. Everything goes under --out; running it again adds a release to the same ledger.";

/// Arguments of `nines demo`.
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Where everything goes.
    #[arg(long, default_value = "target/nines-demo")]
    pub out: PathBuf,
    /// A much shorter variant (a minute or two): fewer and shorter drives, one epoch, a smaller suite.
    #[arg(long)]
    pub quick: bool,
    /// Training epochs [default: 8, or 1 with --quick].
    #[arg(long)]
    pub epochs: Option<u32>,
    /// Parallel jobs [default: the number of cores].
    #[arg(long)]
    pub jobs: Option<usize>,
}

/// Steps 1 to 4: drives, labels, training, export; returns the drives and the model.
fn make_model(args: &DemoArgs, jobs: usize, stamp: &str) -> anyhow::Result<(Vec<PathBuf>, PathBuf)> {
    let out = &args.out;
    // Collection seeds, which no suite uses: the suites' runs stay unseen.
    let first = nines_harness::suite::COLLECTION_SEEDS;
    let (families, count, duration, epochs) = if args.quick {
        ("straight,lead_brake", 1, 8.0, args.epochs.unwrap_or(1))
    } else {
        (
            // Every family the small suite drives (fog, night and parked
            // cars included): a family it never saw is where a model fails first.
            "all",
            2,
            30.0,
            args.epochs.unwrap_or(8),
        )
    };
    let seeds = format!("{first}..{}", first + count);
    let drives = out.join("drives");
    println!(
        "[1/7] simulating the expert with dart disturbances on {families} (seeds {seeds}, {duration} s) -> {}",
        drives.display()
    );
    super::sim::run(SimCommand::Batch {
        families: families.into(),
        seeds: seeds.clone(),
        sensors: SensorArgs { duration: Some(duration), width: 256, height: 128, disturb: "dart".into() },
        out: drives.clone(),
        jobs: Some(jobs),
    })?;
    let mut drive_files: Vec<PathBuf> = std::fs::read_dir(&drives)
        .with_context(|| format!("listing {}", drives.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "mcap"))
        .collect();
    drive_files.sort();
    let labels = out.join("labels");
    println!("[2/7] distilling their lidar into labels -> {}", labels.display());
    let folder = LabelFolder::open(&labels, DistillOptions::default())?;
    let outcomes = super::distill::label_drives(&folder, &drive_files, &Kernels::cpu(), jobs, false);
    if let Some((drive, Added::Failed(error))) = outcomes.iter().find(|(_, a)| matches!(a, Added::Failed(_)))
    {
        anyhow::bail!("{}: the demo's drive could not be labelled: {error}", drive.display());
    }
    let run_dir = out.join("runs").join(stamp);
    let train_config = out.join("tiny.toml");
    let text = format!("preset = \"tiny\"\nepochs = {epochs}\n");
    std::fs::write(&train_config, text).with_context(|| format!("writing {}", train_config.display()))?;
    println!("[3/7] training the tiny network for {epochs} epochs -> {}", run_dir.display());
    super::train::run(&TrainArgs {
        labels: vec![labels.clone()],
        config: Some(train_config),
        out: run_dir.clone(),
        device: TrainDeviceArg::Cpu,
        backend: BackendArg::Auto,
        resume: false,
        init: None,
    })?;
    let model = out.join(format!("model-{stamp}.onnx"));
    println!("[4/7] exporting to ONNX -> {}", model.display());
    super::export::run(&ExportArgs {
        run: run_dir,
        out: model.clone(),
        labels: None,
        samples: 8,
        tolerance: nines_offboard::export::PARITY_TOLERANCE,
    })?;
    Ok((drive_files, model))
}

/// Runs the demo.
pub fn run(args: &DemoArgs) -> anyhow::Result<()> {
    let out = &args.out;
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    let jobs = args.jobs.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, usize::from));
    let stamp = chrono::Utc::now().format("%Y%m%d-%H%M%S").to_string();
    let (drive_files, model) = make_model(args, jobs, &stamp)?;
    let suite_text = if args.quick { QUICK_SUITE } else { SMALL_SUITE };
    let suite_path = out.join(if args.quick { "quick.toml" } else { "small.toml" });
    std::fs::write(&suite_path, suite_text).with_context(|| format!("writing {}", suite_path.display()))?;
    let suite = Suite::load(&suite_path)?;
    let ledger = out.join("nines.db");
    let options = |seat: Seat, release: &str| EvalOptions {
        suite: suite.clone(),
        seat,
        release: release.into(),
        ledger: ledger.clone(),
        jobs,
        shard: None,
        cache: out.join("suite-drives"),
    };
    println!("[5/7] evaluating the expert on the {} suite -> {}", suite.name, ledger.display());
    eval(&options(Seat::Expert, "expert"), &BarProgress::new("eval expert"))?;
    let release = format!("tiny-{stamp}");
    println!("[6/7] evaluating the model on the {} suite as release {release}", suite.name);
    let config = eval_config(nines_onboard::config::Config::load_for_runtime(None)?);
    let seat = Seat::Model { path: model.clone(), config: Box::new(config) };
    let evaluated = eval(&options(seat, &release), &BarProgress::new(format!("eval {release}")))?;
    let (closed, wall) = evaluated.closed;
    println!(
        "      {closed} closed-loop runs in {wall:.0} s ({:.0} runs/hour)",
        closed as f64 * 3600.0 / wall.max(1e-9)
    );
    let html = out.join("report.html");
    println!("[7/7] the nines -> {}", html.display());
    let reports = report::build(&Ledger::open_existing(&ledger)?)?;
    print!("{}", report::text(&reports));
    std::fs::write(&html, report::html(&reports)?).with_context(|| format!("writing {}", html.display()))?;
    println!("demo done:");
    let failure = reports
        .iter()
        .rev()
        .flat_map(|r| &r.failed_runs)
        .find_map(|f| f.replay.clone().map(|c| (f.run.clone(), c)));
    match failure {
        Some((run, command)) => println!("  replay a failure ({run}):  {command}"),
        None => println!(
            "  replay a drive with the model:  nines replay {} --model {}",
            drive_files.first().map_or_else(|| out.display().to_string(), |d| d.display().to_string()),
            model.display()
        ),
    }
    println!("  the report:       {}", html.display());
    println!("  the ledger:       nines report --ledger {}", ledger.display());
    println!(
        "  gate the next model against this one:  nines gate --ledger {} --baseline {release} --candidate NEXT",
        ledger.display()
    );
    println!(
        "  drive with it:    nines-onboard --config configs/vehicle-sim.toml --source DRIVE.mcap --model {}",
        model.display()
    );
    Ok(())
}
