//! Collection rounds with a safety driver (HG-DAgger): a model drives
//! scenarios on collection seeds, the safety driver takes over before each
//! failure and hands back once stable, and every run is recorded with
//! camera, lidar and poses, so its drive is distilled like any other (the
//! model's own driving never imitated, the safety driver's recovery
//! imitated). Reports kilometres per intervention, the disengagement
//! figure fleets publish.

use std::path::{Path, PathBuf};

use rayon::prelude::*;
use serde::Serialize;

use nines_onboard::config::Config;
use nines_sim::record::RecordOptions;

use crate::closed_loop::run_supervised;
use crate::safety_driver::Takeover;
use crate::suite::{COLLECTION_SEEDS, SuiteCamera};
use crate::{Context, HarnessError, Progress, Result};

/// What a collection round runs.
#[derive(Debug, Clone)]
pub struct CollectOptions {
    /// The exported model that drives.
    pub model: PathBuf,
    /// Its vehicle config (the simulator's car by default).
    pub config: Config,
    /// The camera, and the path its frames take to the model.
    pub camera: SuiteCamera,
    /// When the safety driver takes over and hands back.
    pub takeover: Takeover,
    /// Run length, s [default: the family's].
    pub duration_s: Option<f64>,
    /// Runs at once.
    pub jobs: usize,
}

/// One recorded collection run.
#[derive(Debug, Clone, Serialize)]
pub struct CollectedRun {
    /// Family.
    pub family: String,
    /// Seed.
    pub seed: u64,
    /// The drive.
    pub drive: PathBuf,
    /// Distance driven, km (whoever drove).
    pub km: f64,
    /// Takeovers, in time order.
    pub interventions: usize,
    /// Failures the safety driver did not prevent (category: detail).
    pub failures: Vec<String>,
}

/// A round's figures.
#[derive(Debug, Clone, Default, Serialize)]
pub struct CollectSummary {
    /// Every run of the round (already recorded ones included).
    pub runs: Vec<CollectedRun>,
    /// Runs found already recorded (a resumed round).
    pub already: usize,
}

impl CollectSummary {
    /// Kilometres driven.
    #[must_use]
    pub fn km(&self) -> f64 {
        self.runs.iter().map(|r| r.km).sum()
    }

    /// Takeovers.
    #[must_use]
    pub fn interventions(&self) -> usize {
        self.runs.iter().map(|r| r.interventions).sum()
    }

    /// Kilometres per intervention (infinite without one).
    #[must_use]
    pub fn km_per_intervention(&self) -> f64 {
        self.km() / self.interventions() as f64
    }

    /// One line for people.
    #[must_use]
    pub fn line(&self) -> String {
        let failures: usize = self.runs.iter().map(|r| r.failures.len()).sum();
        let per = match self.interventions() {
            0 => format!("no intervention in {:.2} km", self.km()),
            n => format!(
                "{n} interventions in {:.2} km: {:.3} km per intervention",
                self.km(),
                self.km_per_intervention()
            ),
        };
        format!("{} runs, {per}; {failures} failures the safety driver did not prevent", self.runs.len())
    }
}

/// Records a drive to `path` through a file aside and a rename, so an
/// interrupted recording is never taken for a drive (the process id keeps
/// two processes sharing a folder from writing one file).
pub(crate) fn record_aside(path: &Path, record: impl FnOnce(&Path) -> Result<()>) -> Result<()> {
    let partial = path.with_extension(format!("mcap.partial-{}", std::process::id()));
    record(&partial)?;
    std::fs::rename(&partial, path).with_context(|| format!("renaming {}", partial.display()))
}

/// The drive of `family` at `seed` in `out`.
#[must_use]
pub fn drive_path(out: &Path, family: &str, seed: u64) -> PathBuf {
    out.join(format!("{family}-{seed}.mcap"))
}

/// Records every `(family, seed)` into `out` with the model driving and
/// the safety driver watching. Seeds must be collection seeds (at least
/// [`COLLECTION_SEEDS`]). A drive already in `out` is kept and read back
/// (the round resumes); drives are written aside and renamed, so an
/// interrupted run is never taken for a drive.
pub fn collect(
    options: &CollectOptions,
    runs: &[(String, u64)],
    out: &Path,
    progress: &dyn Progress,
) -> Result<CollectSummary> {
    if let Some((family, seed)) = runs.iter().find(|(_, seed)| *seed < COLLECTION_SEEDS) {
        return Err(HarnessError::invalid(format!(
            "{family} seed {seed}: collection seeds start at {COLLECTION_SEEDS} (lower seeds are the suites'): \
             collect from seeds like \"{COLLECTION_SEEDS}..{}\"",
            COLLECTION_SEEDS + 10
        )));
    }
    options.takeover.check().map_err(HarnessError::invalid)?;
    for (family, _) in runs {
        nines_sim::family(family)?;
    }
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(options.jobs.max(1))
        .thread_name(|i| format!("nines-collect-{i}"))
        .build()?;
    let already = runs.iter().filter(|(f, s)| drive_path(out, f, *s).exists()).count();
    progress.start(runs.len() as u64, "runs");
    let collected: Vec<CollectedRun> = pool.install(|| {
        runs.par_iter()
            .map(|(family, seed)| {
                let run = collect_one(options, family, *seed, out);
                progress.advance(1);
                run
            })
            .collect::<Result<_>>()
    })?;
    progress.finish();
    Ok(CollectSummary { runs: collected, already })
}

/// Records every `(family, seed)` into `out` with the expert driving under
/// the disturbance profile `disturb` (DART; `none` for none): the
/// collection of a data engine's first round, and the expert's share of
/// later ones. Seeds, resuming and atomic writes as [`collect`].
pub fn collect_expert(
    camera: SuiteCamera,
    disturb: &nines_sim::disturb::DisturbProfile,
    duration_s: Option<f64>,
    runs: &[(String, u64)],
    out: &Path,
    jobs: usize,
    progress: &dyn Progress,
) -> Result<Vec<PathBuf>> {
    if let Some((family, seed)) = runs.iter().find(|(_, seed)| *seed < COLLECTION_SEEDS) {
        return Err(HarnessError::invalid(format!(
            "{family} seed {seed}: collection seeds start at {COLLECTION_SEEDS} (lower seeds are the suites')"
        )));
    }
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    let options = RecordOptions {
        camera: camera.config(),
        duration_secs: duration_s,
        jpeg_quality: camera.jpeg_quality,
        disturb: disturb.clone(),
        ..RecordOptions::default()
    };
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(jobs.max(1))
        .thread_name(|i| format!("nines-collect-{i}"))
        .build()?;
    progress.start(runs.len() as u64, "drives");
    let drives = pool.install(|| {
        runs.par_iter()
            .map(|(family, seed)| -> Result<PathBuf> {
                let path = drive_path(out, family, *seed);
                if !path.exists() {
                    let scenario = nines_sim::family(family)?.draw(family, *seed);
                    record_aside(&path, |partial| {
                        nines_sim::record::record_expert(scenario, partial, &options)
                            .with_context(|| format!("recording {}", partial.display()))?;
                        Ok(())
                    })?;
                }
                progress.advance(1);
                Ok(path)
            })
            .collect::<Result<Vec<_>>>()
    })?;
    progress.finish();
    Ok(drives)
}

/// The record options of a collection run: everything distillation needs.
fn record_options(options: &CollectOptions) -> RecordOptions {
    RecordOptions {
        camera: options.camera.config(),
        duration_secs: options.duration_s,
        jpeg_quality: options.camera.jpeg_quality,
        end_after_failure_secs: Some(2.0),
        ..RecordOptions::default()
    }
}

fn collect_one(options: &CollectOptions, family: &str, seed: u64, out: &Path) -> Result<CollectedRun> {
    let path = drive_path(out, family, seed);
    if !path.exists() {
        let scenario = nines_sim::family(family)?.draw(family, seed);
        record_aside(&path, |partial| {
            let (model, config, jpeg) = (&options.model, &options.config, options.camera.jpeg());
            run_supervised(
                scenario,
                &record_options(options),
                model,
                config,
                jpeg,
                options.takeover,
                partial,
            )
            .with_context(|| format!("collecting {family} seed {seed}"))?;
            Ok(())
        })?;
    }
    read_back(&path, family, seed)
}

/// A collection run's figures, from its drive (one path for new and
/// resumed runs): the distance from its odometry, its takeovers and
/// failures from /nines/events.
fn read_back(path: &Path, family: &str, seed: u64) -> Result<CollectedRun> {
    use nines_datasets::drive::DriveReader;
    use nines_datasets::msg::{Event, EventKind, Odometry};
    use nines_datasets::topics;
    let reader = DriveReader::open(path)?;
    let events = reader.read_topic::<Event>(topics::EVENTS)?;
    let odometry = reader.read_topic::<Odometry>(topics::ODOMETRY)?;
    let km = odometry
        .windows(2)
        .map(|w| {
            let (a, b) = (&w[0].1.pose.pose.position, &w[1].1.pose.pose.position);
            (b.x - a.x).hypot(b.y - a.y)
        })
        .sum::<f64>()
        / 1000.0;
    Ok(CollectedRun {
        family: family.to_owned(),
        seed,
        drive: path.to_path_buf(),
        km,
        interventions: events
            .iter()
            .filter(|(_, e)| e.kind == EventKind::Intervention as u8 && e.category == "takeover")
            .count(),
        failures: events
            .iter()
            .filter(|(_, e)| e.kind == EventKind::Failure as u8)
            .map(|(_, e)| format!("{}: {}", e.category, e.detail))
            .collect(),
    })
}
