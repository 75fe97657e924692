//! `nines sim`: list scenario families, record one run, record a batch.

use std::path::PathBuf;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use nines_sim::disturb::DisturbProfile;
use nines_sim::record::{RecordOptions, RunSummary, record_expert};
use nines_sim::render::camera::CameraConfig;
use nines_sim::{FAMILIES, family};

/// Simulator commands.
#[derive(Debug, Subcommand)]
pub enum SimCommand {
    /// List the scenario families (sim/scenarios/*.toml).
    List,
    /// Record one run of the expert driving a family.
    Run {
        /// Scenario family (see `nines sim list`).
        #[arg(long)]
        family: String,
        /// Seed: the same family and seed give the same drive, bit for bit.
        #[arg(long, default_value_t = 0)]
        seed: u64,
        #[command(flatten)]
        sensors: SensorArgs,
        /// Drive to write.
        #[arg(long)]
        out: PathBuf,
    },
    /// Save what the sensors see at one moment as PNGs: the camera frame and
    /// a top-down view of the lidar sweep (<out>/<family>-<seed>-camera.png,
    /// <out>/<family>-<seed>-lidar.png).
    Snapshot {
        /// Scenario family.
        #[arg(long)]
        family: String,
        /// Seed.
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// Moment to show, s into the run.
        #[arg(long, default_value_t = 5.0)]
        at: f64,
        /// Camera columns.
        #[arg(long, default_value_t = 512)]
        width: u32,
        /// Camera rows.
        #[arg(long, default_value_t = 256)]
        height: u32,
        /// Folder for the PNGs.
        #[arg(long)]
        out: PathBuf,
    },
    /// Serve one run on the network: publish the camera and odometry on zenoh
    /// as ROS 2 (rmw_zenoh) does, drive with the commands heard on
    /// /control/command (`nines-onboard --source zenoh` closes the loop).
    #[cfg(feature = "network")]
    #[command(long_about = super::sim_serve::LONG_ABOUT)]
    Serve(super::sim_serve::ServeArgs),
    /// Record many runs: every family x seed, as <out>/<family>-<seed>.mcap.
    Batch {
        /// Comma-separated families, or `all` (every family but those measured apart: recovery).
        #[arg(long, default_value = "all")]
        families: String,
        /// Seeds as a half-open range A..B.
        #[arg(long, default_value = "0..10")]
        seeds: String,
        #[command(flatten)]
        sensors: SensorArgs,
        /// Folder for the drives.
        #[arg(long)]
        out: PathBuf,
        /// Parallel runs [default: the number of cores].
        #[arg(long)]
        jobs: Option<usize>,
    },
}

/// Length and sensor settings shared by `run` and `batch`.
#[derive(Debug, Clone, Args)]
pub struct SensorArgs {
    /// Run length, s [default: the family's].
    #[arg(long)]
    pub duration: Option<f64>,
    /// Camera columns.
    #[arg(long, default_value_t = 512)]
    pub width: u32,
    /// Camera rows.
    #[arg(long, default_value_t = 256)]
    pub height: u32,
    /// Disturb the expert while it collects, for recovery data (DART): `none`,
    /// `dart` (steering events of 0.5-3 s about every 8 s, speed changes of up
    /// to 20% about every 15 s, a start up to 1 m and 8 degrees off the lane), or a TOML
    /// profile; docs/NINES.md, "Recovery data". Recorded on
    /// /nines/control_source and /nines/events, so distillation never
    /// imitates the drift.
    #[arg(long, default_value = "none")]
    pub disturb: String,
}

impl SensorArgs {
    fn options(&self) -> anyhow::Result<RecordOptions> {
        Ok(RecordOptions {
            camera: CameraConfig { width: self.width, height: self.height, ..CameraConfig::default() },
            duration_secs: self.duration,
            disturb: DisturbProfile::named(&self.disturb).context("--disturb")?,
            ..RecordOptions::default()
        })
    }
}

fn describe(summary: &RunSummary) -> String {
    let verdict = if summary.events.is_empty() {
        "pass".to_owned()
    } else {
        let categories: Vec<&str> = summary.events.iter().map(|e| e.category.as_str()).collect();
        format!("FAIL ({})", categories.join(", "))
    };
    format!(
        "{}-{}: {:.1} s, {:.0} m, {} frames, {verdict}",
        summary.family, summary.seed, summary.duration_secs, summary.progress_m, summary.frames
    )
}

/// `all` (every family but those measured apart) or a comma-separated list.
pub(crate) fn family_names(text: &str) -> Vec<String> {
    if text == "all" {
        nines_sim::all_families().into_iter().map(str::to_owned).collect()
    } else {
        text.split(',').map(|s| s.trim().to_owned()).filter(|s| !s.is_empty()).collect()
    }
}

/// Runs a `nines sim` command.
pub fn run(cmd: SimCommand) -> anyhow::Result<()> {
    match cmd {
        #[cfg(feature = "network")]
        SimCommand::Serve(args) => super::sim_serve::serve(&args)?,
        SimCommand::List => {
            for (name, _) in FAMILIES {
                let spec = family(name)?;
                let all = if spec.in_all { "" } else { " (not in \"all\")" };
                println!("{name:<20} {:>4.0} s  {}{all}", spec.duration_secs, spec.description);
            }
        }
        SimCommand::Run { family: name, seed, sensors, out } => {
            let scenario = family(&name)?.draw(&name, seed);
            let bar = super::spinner(format!("simulating {name} seed {seed}"));
            let summary = record_expert(scenario, &out, &sensors.options()?);
            bar.finish_and_clear();
            let summary = summary.with_context(|| format!("recording {}", out.display()))?;
            println!("{}", describe(&summary));
            println!("wrote {}", out.display());
        }
        SimCommand::Snapshot { family: name, seed, at, width, height, out } => {
            std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
            let drive = out.join(format!(".{name}-{seed}.mcap"));
            let sensors = SensorArgs { duration: Some(at + 0.1), width, height, disturb: "none".into() };
            record_expert(family(&name)?.draw(&name, seed), &drive, &sensors.options()?)?;
            let written = super::snapshot::save_last_frame(&drive, &out, &format!("{name}-{seed}"));
            std::fs::remove_file(&drive).ok();
            for path in written? {
                println!("wrote {}", path.display());
            }
        }
        SimCommand::Batch { families, seeds, sensors, out, jobs } => {
            let names = family_names(&families);
            let specs =
                names.iter().map(|n| family(n).map(|f| (n.clone(), f))).collect::<Result<Vec<_>, _>>()?;
            let seeds = nines_harness::suite::parse_seeds(&seeds).context("--seeds")?;
            std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
            let work: Vec<(usize, u64)> =
                (0..specs.len()).flat_map(|f| seeds.clone().map(move |s| (f, s))).collect();
            let bar = ProgressBar::new(work.len() as u64).with_style(
                ProgressStyle::with_template("{bar:40} {pos}/{len} runs ({eta}) {msg}")
                    .unwrap_or_else(|_| ProgressStyle::default_bar()),
            );
            let jobs = jobs
                .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, std::num::NonZero::get))
                .max(1);
            let ticker = super::Ticker::new("sim batch", "drives");
            let next = AtomicUsize::new(0);
            let results = Mutex::new(Vec::new());
            let options = sensors.options()?;
            let simulate = || {
                while let Some(&(f, seed)) = work.get(next.fetch_add(1, Ordering::Relaxed)) {
                    let (name, spec) = &specs[f];
                    let path = out.join(format!("{name}-{seed}.mcap"));
                    let result = record_expert(spec.draw(name, seed), &path, &options)
                        .with_context(|| format!("recording {}", path.display()));
                    bar.inc(1);
                    ticker.tick(&bar);
                    results.lock().unwrap_or_else(std::sync::PoisonError::into_inner).push(result);
                }
            };
            std::thread::scope(|scope| {
                for worker in 1..jobs.min(work.len()) {
                    let named = std::thread::Builder::new().name(format!("nines-sim-{worker}"));
                    if let Err(e) = named.spawn_scoped(scope, simulate) {
                        tracing::warn!(
                            "could not start simulation thread {worker} ({e}); the others take its drives"
                        );
                    }
                }
                // This thread is worker 0, and finishes whatever the others cannot.
                simulate();
            });
            bar.finish_and_clear();
            let results = results.into_inner().unwrap_or_else(std::sync::PoisonError::into_inner);
            let mut failed = 0;
            for result in &results {
                match result {
                    Ok(summary) if summary.events.is_empty() => {}
                    Ok(summary) => {
                        failed += 1;
                        println!("{}", describe(summary));
                    }
                    Err(e) => bail!("{e:#}"),
                }
            }
            println!("{} runs written to {}, {failed} with failures", results.len(), out.display());
        }
    }
    Ok(())
}
