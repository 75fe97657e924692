//! `nines eval`: every run of a suite (or of one shard of it) for one
//! release, in parallel over cores, each committed to the ledger as it
//! finishes. Failed closed-loop runs are simulated once more with
//! everything recorded, so their drive can be replayed.

use std::path::{Path, PathBuf};
use std::sync::mpsc::sync_channel;
use std::time::Instant;

use crate::{Context, HarnessError, Progress, Result};
use nines_onboard::config::{Config, RecordMode};
use nines_onboard::inference::Inference;
use nines_sim::record::{RecordOptions, record_expert};
use rayon::prelude::*;

use nines_datasets::contract::ModelContract;
use nines_datasets::drive::DriveScenario;

use super::closed_loop::{Seat, inference_metrics, run_closed};
use super::ledger::{Ledger, Outcome, Policy, Release, RunEvent, RunRecord};
use super::open_loop::{check_drive, windows};
use super::suite::{ClosedRun, PendingDrive, Suite};

/// One slice of a suite for one job of many: runs whose index modulo
/// `count` is `index`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    /// 0-based.
    pub index: usize,
    /// How many shards.
    pub count: usize,
}

impl std::str::FromStr for Shard {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let bad = || format!("--shard {text:?}: write I/N with 0 <= I < N, e.g. 3/16");
        let (i, n) = text.split_once('/').ok_or_else(bad)?;
        let (index, count) = (i.trim().parse().map_err(|_| bad())?, n.trim().parse().map_err(|_| bad())?);
        if count == 0 || index >= count {
            return Err(bad());
        }
        Ok(Self { index, count })
    }
}

/// What to evaluate, and where the results go.
#[derive(Debug, Clone)]
pub struct EvalOptions {
    /// The suite.
    pub suite: Suite,
    /// Who drives.
    pub seat: Seat,
    /// Release name in the ledger.
    pub release: String,
    /// The ledger file.
    pub ledger: PathBuf,
    /// Runs at once.
    pub jobs: usize,
    /// This job's slice of the suite.
    pub shard: Option<Shard>,
    /// Where generated open-loop drives are kept.
    pub cache: PathBuf,
}

/// How an eval went.
#[derive(Debug, Clone)]
pub struct EvalSummary {
    /// The release row.
    pub release: Release,
    /// Runs recorded now (skipped ones included).
    pub recorded: usize,
    /// Runs found already recorded (an eval resuming).
    pub already: usize,
    /// Of those recorded now: failures.
    pub failures: usize,
    /// Closed-loop runs recorded now, and the wall time they took, s (they
    /// run after the open-loop drives, on their own).
    pub closed: (usize, f64),
    /// Where failed runs' drives are kept.
    pub drives_dir: PathBuf,
}

enum Job {
    Closed(ClosedRun),
    Open(PathBuf),
}

/// The directory next to the ledger where failed runs' drives are kept.
#[must_use]
pub fn drives_dir(ledger: &Path, release: &str) -> PathBuf {
    let stem = ledger.file_stem().map_or_else(|| "nines".into(), |s| s.to_string_lossy().into_owned());
    ledger.with_file_name(format!("{stem}-drives")).join(sanitise(release))
}

/// The command that replays a kept drive (with the model, if any), with
/// absolute paths so it works from any folder, each quoted for the shell
/// where it needs to be.
#[must_use]
pub fn replay_command(drive: &Path, model: Option<&Path>) -> String {
    let word = |path: &Path| {
        let text = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf()).display().to_string();
        if text.chars().all(|c| c.is_ascii_alphanumeric() || "/._-+:=@,".contains(c)) {
            text
        } else {
            format!("'{}'", text.replace('\'', "'\\''"))
        }
    };
    match model {
        Some(model) => format!("nines replay {} --model {}", word(drive), word(model)),
        None => format!("nines replay {}", word(drive)),
    }
}

fn sanitise(name: &str) -> String {
    name.chars().map(|c| if c.is_ascii_alphanumeric() || "-_.".contains(c) { c } else { '_' }).collect()
}

/// The release row for this eval (model digest and contract read from the
/// ONNX file), and the scenarios the model's card says it trained on.
fn release_row(options: &EvalOptions) -> Result<(Release, Vec<DriveScenario>)> {
    let (policy, model_path, model_digest, contract, trained) = match &options.seat {
        Seat::Expert => (Policy::Expert, None, None, None, Vec::new()),
        Seat::Model { path, config } => {
            let inference = Inference::load(path, &config.model, &config.base_dir)?;
            (
                Policy::Model,
                Some(path.display().to_string()),
                Some(inference.digest().to_string()),
                Some(serde_json::to_string(&inference.card().contract)?),
                inference.card().training_scenarios.clone(),
            )
        }
    };
    let release = Release {
        id: 0,
        name: options.release.clone(),
        created_at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        suite: options.suite.name.clone(),
        suite_digest: options.suite.digest.clone(),
        policy: policy.as_str().into(),
        model_path,
        model_digest,
        contract,
        tool_version: env!("CARGO_PKG_VERSION").into(),
    };
    Ok((release, trained))
}

/// The vehicle config an eval runs the pipeline with: nothing recorded,
/// one ONNX Runtime thread per run (runs are the parallelism).
#[must_use]
pub fn eval_config(mut config: Config) -> Config {
    config.recording.mode = RecordMode::Off;
    config.model.threads = 1;
    config
}

/// This job's runs of the suite not yet in the ledger, and how many of
/// its runs were already there.
fn pending_jobs(
    options: &EvalOptions,
    done: &std::collections::BTreeSet<String>,
    drives: Vec<PathBuf>,
) -> (Vec<Job>, usize) {
    let mut jobs: Vec<Job> = drives.into_iter().map(Job::Open).collect();
    jobs.extend(options.suite.closed_runs().into_iter().map(Job::Closed));
    let mine: Vec<Job> = jobs
        .into_iter()
        .enumerate()
        .filter(|(i, _)| options.shard.is_none_or(|s| i % s.count == s.index))
        .map(|(_, job)| job)
        .collect();
    let total = mine.len();
    let pending: Vec<Job> = mine
        .into_iter()
        .filter(|job| match job {
            Job::Closed(run) => !done.contains(&run.key()),
            Job::Open(drive) => !done.iter().any(|k| k.starts_with(&format!("{}/", open_prefix(drive)))),
        })
        .collect();
    let already = total - pending.len();
    (pending, already)
}

/// Runs the eval, reporting progress to `progress` (generating the suite's
/// drives, then the open-loop and the closed-loop runs, one stage each).
pub fn eval(options: &EvalOptions, progress: &dyn Progress) -> Result<EvalSummary> {
    let suite = &options.suite;
    let mut ledger = Ledger::open(&options.ledger)?;
    let (row, trained) = release_row(options)?;
    let release = ledger.add_release(&row)?;
    // The model's contract, read once (open-loop runs distil with it).
    let contract: Option<ModelContract> =
        release
            .contract
            .as_deref()
            .map(serde_json::from_str)
            .transpose()
            .with_context(|| format!("the contract stored with release {}", release.name))?;
    if let Seat::Model { path, .. } = &options.seat {
        // Refuse a model that does not fit the suite's camera before any run.
        let probe =
            ClosedRun { family: "straight".into(), seed: 0, duration_s: Some(0.05), must_pass: false };
        run_closed(suite, &probe, &options.seat, None).with_context(|| {
            format!("{} on the suite's {}x{} camera", path.display(), suite.camera.width, suite.camera.height)
        })?;
    }
    let (drives, missing) = suite.open_drives(&options.cache);
    let (jobs, already) = pending_jobs(options, &ledger.run_keys(release.id)?, drives);
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(options.jobs.max(1))
        .thread_name(|i| format!("nines-eval-{i}"))
        .build()?;
    let model = matches!(options.seat, Seat::Model { .. });
    let to_generate: Vec<PendingDrive> = missing
        .into_iter()
        .filter(|p| model && jobs.iter().any(|j| matches!(j, Job::Open(d) if *d == p.path)))
        .collect();
    if !to_generate.is_empty() {
        generate_drives(&pool, suite, &to_generate, progress)?;
    }
    let mut summary = EvalSummary {
        release: release.clone(),
        recorded: 0,
        already,
        failures: 0,
        closed: (0, 0.0),
        drives_dir: drives_dir(&options.ledger, &options.release),
    };
    // Open-loop drives first, then the closed-loop runs on their own, so
    // the closed-loop throughput is measured cleanly.
    let (closed, open): (Vec<Job>, Vec<Job>) = jobs.into_iter().partition(|j| matches!(j, Job::Closed(_)));
    let model = ModelFacts { contract, trained };
    let mut errors = run_jobs(&pool, &open, options, &model, &mut ledger, &mut summary, progress)?;
    let started = Instant::now();
    errors.extend(run_jobs(&pool, &closed, options, &model, &mut ledger, &mut summary, progress)?);
    summary.closed.1 = started.elapsed().as_secs_f64();
    let jobs = open.len() + closed.len();
    if !errors.is_empty() {
        return Err(HarnessError::RunsFailed { failed: errors, total: jobs, ledger: options.ledger.clone() });
    }
    Ok(summary)
}

/// What an eval knows of the model under test.
struct ModelFacts {
    /// Its contract (open-loop runs distil with it); none for the expert.
    contract: Option<ModelContract>,
    /// The scenarios its card says it trained on.
    trained: Vec<DriveScenario>,
}

impl ModelFacts {
    /// Whether the model trained on the scenario of `run` (a closed-loop run's family and seed).
    fn saw(&self, run: &RunRecord) -> bool {
        run.seed.is_some_and(|seed| self.trained.iter().any(|s| s.is(&run.family, seed)))
    }
}

/// Runs `jobs` on `pool`, recording each result in the ledger as it
/// arrives (marking runs the model trained on); returns the jobs that could
/// not run.
fn run_jobs(
    pool: &rayon::ThreadPool,
    jobs: &[Job],
    options: &EvalOptions,
    model: &ModelFacts,
    ledger: &mut Ledger,
    summary: &mut EvalSummary,
    progress: &dyn Progress,
) -> Result<Vec<String>> {
    progress.start(jobs.len() as u64, "runs");
    // Bounded: a worker waits rather than pile up results while the ledger commits.
    let (tx, rx) = sync_channel::<(String, Result<Vec<RunRecord>>)>(options.jobs.max(1) * 2);
    let mut errors = Vec::new();
    let drives_dir = summary.drives_dir.clone();
    std::thread::scope(|scope| -> Result<()> {
        std::thread::Builder::new()
            .name("nines-eval-jobs".into())
            .spawn_scoped(scope, move || {
                pool.install(|| {
                    jobs.par_iter().for_each_with(tx, |tx, job| {
                        // The receiver only goes away when recording failed; that error is reported.
                        let _ = tx.send(run_job(job, options, model.contract.as_ref(), &drives_dir));
                    });
                });
            })
            .context("starting the eval's job thread")?;
        for (name, result) in rx {
            progress.advance(1);
            match result {
                Ok(runs) => {
                    for mut run in runs {
                        run.seen_in_training = model.saw(&run);
                        // A run that cannot be recorded is reported; the release goes on,
                        // and the same command later runs it again.
                        if let Err(err) = ledger.record_run(summary.release.id, &run) {
                            progress.note(&format!("error: recording {}: {err}", run.key));
                            errors.push(format!("{}: not recorded: {err}", run.key));
                            continue;
                        }
                        summary.closed.0 += usize::from(run.kind == "closed");
                        summary.failures += usize::from(run.outcome == Outcome::Fail);
                        summary.recorded += 1;
                    }
                    progress.status(&format!("{} failures", summary.failures));
                }
                Err(err) => {
                    progress.note(&format!("error: {name}: {err}"));
                    errors.push(format!("{name}: {err}"));
                }
            }
        }
        Ok(())
    })?;
    progress.finish();
    Ok(errors)
}

fn open_prefix(drive: &Path) -> String {
    format!("open/{}", drive.file_stem().map_or_else(|| "drive".into(), |s| s.to_string_lossy().into_owned()))
}

fn run_job(
    job: &Job,
    options: &EvalOptions,
    contract: Option<&ModelContract>,
    drives_dir: &Path,
) -> (String, Result<Vec<RunRecord>>) {
    match job {
        Job::Closed(run) => (run.key(), closed_record(run, options, drives_dir).map(|r| vec![r])),
        Job::Open(drive) => (drive.display().to_string(), open_records(drive, options, contract)),
    }
}

fn open_records(
    drive: &Path,
    options: &EvalOptions,
    contract: Option<&ModelContract>,
) -> Result<Vec<RunRecord>> {
    let Seat::Model { path, config } = &options.seat else {
        let prefix = open_prefix(drive);
        return Ok(vec![RunRecord {
            key: format!("{prefix}/skipped"),
            kind: "open".into(),
            family: prefix.replacen("open/", "open:", 1),
            seed: None,
            drive: Some(drive.display().to_string()),
            must_pass: false,
            outcome: Outcome::Skipped,
            category: None,
            km: 0.0,
            hours: 0.0,
            kept_drive: None,
            replay: None,
            events: Vec::new(),
            metrics: Vec::new(),
            seen_in_training: false,
        }]);
    };
    if !drive.exists() {
        return Err(HarnessError::invalid(format!(
            "{}: no such drive (named in the suite {})",
            drive.display(),
            options.suite.path.display()
        )));
    }
    let contract = contract.ok_or_else(|| {
        HarnessError::invalid(format!("release {}: a model release without its contract", options.release))
    })?;
    let checked = check_drive(drive, path, config, contract, &options.suite.thresholds)?;
    let mut runs = windows(drive, &checked.frames, &options.suite.thresholds, path);
    // The drive's timing goes with its first window only, so a long drive
    // counts once in the report's inference figures (performance only).
    if let Some(first) = runs.first_mut() {
        first.metrics.extend(inference_metrics(&checked.busy_s, config.safety.inference_deadline_ms));
    }
    Ok(runs)
}

fn closed_record(run: &ClosedRun, options: &EvalOptions, drives_dir: &Path) -> Result<RunRecord> {
    let suite = &options.suite;
    let result = run_closed(suite, run, &options.seat, None)?;
    let mut metrics = result.metrics.clone();
    let (mut kept_drive, mut replay) = (None, None);
    if !result.passed() {
        std::fs::create_dir_all(drives_dir).with_context(|| format!("creating {}", drives_dir.display()))?;
        let path = drives_dir.join(format!("{}-{}.mcap", run.family, run.seed));
        let again = run_closed(suite, run, &options.seat, Some(&path))?;
        let first = |r: &super::closed_loop::ClosedResult| r.summary.events.first().map(|e| e.category);
        if first(&again) != first(&result) {
            tracing::warn!(
                "{}: the recorded re-run ended differently ({:?} against {:?})",
                run.key(),
                first(&again),
                first(&result)
            );
            metrics.push(("kept_drive_diverged".into(), 1.0));
        }
        replay = Some(match &options.seat {
            Seat::Model { path: model, .. } => replay_command(&path, Some(model)),
            Seat::Expert => replay_command(&path, None),
        });
        kept_drive = Some(path.display().to_string());
    }
    let summary = &result.summary;
    Ok(RunRecord {
        key: run.key(),
        kind: "closed".into(),
        family: run.family.clone(),
        seed: Some(run.seed),
        drive: None,
        must_pass: run.must_pass,
        outcome: if result.passed() { Outcome::Pass } else { Outcome::Fail },
        category: summary.events.first().map(|e| e.category.as_str().to_string()),
        km: summary.progress_m.max(0.0) / 1000.0,
        hours: summary.duration_secs / 3600.0,
        kept_drive,
        replay,
        events: summary
            .events
            .iter()
            .map(|e| RunEvent {
                time_s: e.time_secs,
                category: e.category.as_str().into(),
                detail: e.detail.clone(),
                value: e.value,
            })
            .collect(),
        metrics,
        seen_in_training: false,
    })
}

/// Records the suite's simulated open-loop drives that are not cached yet.
fn generate_drives(
    pool: &rayon::ThreadPool,
    suite: &Suite,
    missing: &[PendingDrive],
    progress: &dyn Progress,
) -> Result<()> {
    progress.note(&format!(
        "generating {} open-loop drives for the suite {} (once; they are cached)",
        missing.len(),
        suite.name
    ));
    progress.start(missing.len() as u64, "drives");
    pool.install(|| {
        missing.par_iter().try_for_each(|PendingDrive { family, seed, duration_s, path }| -> Result<()> {
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
            }
            let options = RecordOptions {
                camera: suite.camera.config(),
                duration_secs: Some(*duration_s),
                jpeg_quality: suite.camera.jpeg_quality,
                ..RecordOptions::default()
            };
            crate::collect::record_aside(path, |partial| {
                record_expert(nines_sim::family(family)?.draw(family, *seed), partial, &options)
                    .with_context(|| format!("recording {}", partial.display()))?;
                Ok(())
            })?;
            progress.advance(1);
            Ok(())
        })
    })?;
    progress.finish();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_run_of_a_trained_scenario_is_marked_seen() {
        let scenario = |family: &str, seed: u64, disturb: &str| DriveScenario {
            family: family.into(),
            seed,
            duration_s: 30.0,
            disturb: disturb.into(),
        };
        let model = ModelFacts {
            contract: None,
            trained: vec![scenario("straight", 1, "dart"), scenario("curves", 1_000_000, "none")],
        };
        let run = |family: &str, seed: Option<u64>| RunRecord {
            key: format!("closed/{family}/{seed:?}"),
            kind: "closed".into(),
            family: family.into(),
            seed,
            drive: None,
            must_pass: false,
            outcome: Outcome::Pass,
            category: None,
            km: 0.1,
            hours: 0.01,
            kept_drive: None,
            replay: None,
            events: Vec::new(),
            metrics: Vec::new(),
            seen_in_training: false,
        };
        // The same road, actors and weather however it was driven: a disturbed drive leaks too.
        assert!(model.saw(&run("straight", Some(1))));
        assert!(!model.saw(&run("straight", Some(0))), "another seed");
        assert!(!model.saw(&run("curves", Some(1))), "another family");
        assert!(!model.saw(&run("open:straight-1", None)), "an open-loop window has no seed");
    }

    #[test]
    fn shards_parse() {
        assert_eq!("3/16".parse::<Shard>().unwrap(), Shard { index: 3, count: 16 });
        assert!("16/16".parse::<Shard>().is_err());
        assert!("1".parse::<Shard>().unwrap_err().contains("I/N"));
    }

    #[test]
    fn failed_drives_live_next_to_the_ledger() {
        assert_eq!(drives_dir(Path::new("out/nines.db"), "v1 rc/2"), Path::new("out/nines-drives/v1_rc_2"));
    }
}
