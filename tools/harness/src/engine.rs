//! The data engine: rounds that turn failures into training data. Each
//! round collects drives (round 0: the expert under disturbances; later
//! rounds: the previous round's model with a safety driver, plus more
//! disturbed expert drives), distils them, trains on every round's labels
//! (warm-started from the previous round, recovery states sampled more
//! often), exports, evaluates on a suite into one ledger (release
//! `NAME-rK`) and gates the round against the one before.
//!
//! Every step is resumable and finds for itself what is left: collection
//! keeps the drives already recorded, distillation the drives already in
//! the index, training resumes from its checkpoint, export writes
//! atomically, eval resumes the release. The same command after a kill
//! continues at the first unfinished step.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use nines_kernels::Kernels;
use nines_offboard::distill::DistillOptions;
use nines_offboard::export::{ExportOptions, export};
use nines_offboard::labels::{Added, LabelFolder};
use nines_offboard::training::{Progress as TrainProgress, Start, TrainConfig, TrainDevice, train};
use nines_onboard::config::Config;
use nines_sim::disturb::DisturbProfile;

use crate::closed_loop::Seat;
use crate::collect::{CollectOptions, CollectSummary, collect, collect_expert};
use crate::eval::{EvalOptions, eval, eval_config};
use crate::ledger::Ledger;
use crate::report::{self, ALPHA, ReleaseReport, Verdict};
use crate::safety_driver::Takeover;
use crate::suite::{COLLECTION_SEEDS, Suite};
use crate::{Context, HarnessError, Progress, Result};

/// (family, seed) of collection runs.
pub type Runs = Vec<(String, u64)>;

/// Seeds a round owns: round `k` collects from `COLLECTION_SEEDS + k * ROUND_SEEDS`.
pub const ROUND_SEEDS: u64 = 10_000;

/// An engine's config (TOML). Every key has a default; unknown keys are refused.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EngineConfig {
    /// Release names in the ledger: `NAME-r0`, `NAME-r1`, ...
    pub name: String,
    /// Rounds to run.
    pub rounds: usize,
    /// Model preset (`tiny` or `default`).
    pub preset: String,
    /// Scenario families collected (`all`: every family but those measured apart).
    pub families: Vec<String>,
    /// Collection seeds per family and round for the expert's disturbed
    /// drives of round 0, and for the model's drives of later rounds.
    pub seeds_per_round: u64,
    /// Disturbed expert drives per model drive in rounds after the first.
    pub expert_ratio: f64,
    /// Length of a collected drive, s.
    pub duration_s: f64,
    /// Disturbance profile of the expert's drives (`dart`, `none`, or a TOML file).
    pub disturb: String,
    /// When the safety driver takes over the model.
    pub takeover: Takeover,
    /// Training epochs per round.
    pub epochs: usize,
    /// Samples per training step.
    pub batch_size: usize,
    /// Sampling weight of frames showing a recovery state.
    pub recovery_weight: f64,
    /// Weight of the plan's lateral error against its longitudinal one.
    pub plan_lateral: f32,
    /// The suite each round's model is evaluated on (relative to the config file).
    pub suite: PathBuf,
    /// Runs at once (0: every core).
    pub jobs: usize,
    /// Where training runs (`cpu`, or `gpu` in a build with the `gpu` feature).
    pub device: String,
}

impl Default for EngineConfig {
    fn default() -> Self {
        Self {
            name: "engine".into(),
            rounds: 3,
            preset: "tiny".into(),
            families: vec!["all".into()],
            seeds_per_round: 2,
            expert_ratio: 1.0,
            duration_s: 30.0,
            disturb: "dart".into(),
            takeover: Takeover::default(),
            epochs: 6,
            batch_size: 16,
            recovery_weight: 2.0,
            plan_lateral: 1.0,
            suite: PathBuf::from("suites/small.toml"),
            jobs: 0,
            device: "cpu".into(),
        }
    }
}

impl EngineConfig {
    /// Reads a TOML config; the suite's path is taken relative to the file.
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let mut config: Self = toml::from_str(&text)
            .map_err(|e| HarnessError::invalid(format!("{}: {}", path.display(), e.message())))?;
        if config.suite.is_relative() {
            let base = path.parent().unwrap_or(Path::new("."));
            let beside = base.join(&config.suite);
            // A path that only makes sense from the working directory keeps that meaning.
            if beside.exists() || !config.suite.exists() {
                config.suite = beside;
            }
        }
        config.check().map_err(|e| HarnessError::invalid(format!("{}: {e}", path.display())))?;
        Ok(config)
    }

    /// Refuses values that cannot work, naming the key.
    pub fn check(&self) -> std::result::Result<(), String> {
        if self.rounds == 0 || self.epochs == 0 || self.seeds_per_round == 0 {
            return Err("rounds, epochs and seeds_per_round must each be at least 1".into());
        }
        if self.seeds_per_round >= ROUND_SEEDS / 2 {
            return Err(format!("seeds_per_round must be below {}", ROUND_SEEDS / 2));
        }
        if !(self.expert_ratio.is_finite() && self.expert_ratio >= 0.0) {
            return Err(format!("expert_ratio = {}: must be 0 or more", self.expert_ratio));
        }
        if !(self.duration_s.is_finite() && self.duration_s > 0.0) {
            return Err(format!("duration_s = {}: must be positive", self.duration_s));
        }
        if !matches!(self.device.as_str(), "cpu" | "gpu") {
            return Err(format!("device = {:?}: \"cpu\" or \"gpu\"", self.device));
        }
        self.takeover.check()?;
        DisturbProfile::named(&self.disturb).map_err(|e| format!("disturb: {e}"))?;
        for family in self.family_names() {
            nines_sim::family(&family).map_err(|e| format!("families: {e}"))?;
        }
        Ok(())
    }

    /// The families, `all` expanded.
    #[must_use]
    pub fn family_names(&self) -> Vec<String> {
        let mut names = Vec::new();
        for family in &self.families {
            if family == "all" {
                names.extend(nines_sim::all_families().into_iter().map(str::to_owned));
            } else if !names.contains(family) {
                names.push(family.clone());
            }
        }
        names
    }

    /// The training config of every round.
    fn train_config(&self) -> TrainConfig {
        TrainConfig {
            preset: self.preset.clone(),
            epochs: self.epochs,
            batch_size: self.batch_size,
            recovery_weight: self.recovery_weight,
            loss: nines_offboard::training::LossWeights {
                plan_lateral: self.plan_lateral,
                ..nines_offboard::training::LossWeights::default()
            },
            ..TrainConfig::default()
        }
    }

    /// The release name of round `k`.
    #[must_use]
    pub fn release(&self, k: usize) -> String {
        format!("{}-r{k}", self.name)
    }

    /// Round `k`'s collection runs: (family, seed) the expert drives
    /// disturbed, and those the previous model drives with a safety driver.
    #[must_use]
    pub fn seeds(&self, k: usize) -> (Runs, Runs) {
        let base = COLLECTION_SEEDS + k as u64 * ROUND_SEEDS;
        let expert_count = if k == 0 {
            self.seeds_per_round
        } else {
            (self.seeds_per_round as f64 * self.expert_ratio).ceil() as u64
        };
        let model_count = if k == 0 { 0 } else { self.seeds_per_round };
        let runs = |from: u64, count: u64| -> Runs {
            self.family_names()
                .into_iter()
                .flat_map(|f| (from..from + count).map(move |s| (f.clone(), s)))
                .collect()
        };
        (runs(base, expert_count), runs(base + ROUND_SEEDS / 2, model_count))
    }
}

/// What one round produced.
#[derive(Debug, Clone)]
pub struct RoundSummary {
    /// Round number.
    pub round: usize,
    /// Its folder.
    pub dir: PathBuf,
    /// The model.
    pub model: PathBuf,
    /// Its release's report.
    pub report: ReleaseReport,
    /// The model's collection with the safety driver (rounds after the first).
    pub collection: Option<CollectSummary>,
    /// The gate against the previous round (none for the first).
    pub gate: Option<Verdict>,
}

/// The engine's folder layout.
#[derive(Debug, Clone)]
pub struct EngineDir {
    /// The folder (`--out`).
    pub dir: PathBuf,
}

impl EngineDir {
    /// Round `k`'s folder.
    #[must_use]
    pub fn round(&self, k: usize) -> PathBuf {
        self.dir.join(format!("round-{k}"))
    }

    /// The ledger every round's release goes into.
    #[must_use]
    pub fn ledger(&self) -> PathBuf {
        self.dir.join("nines.db")
    }

    /// Round `k`'s drives, labels, training run and model.
    #[must_use]
    pub fn drives(&self, k: usize) -> PathBuf {
        self.round(k).join("drives")
    }
    /// Round `k`'s label folder.
    #[must_use]
    pub fn labels(&self, k: usize) -> PathBuf {
        self.round(k).join("labels")
    }
    /// Round `k`'s training run.
    #[must_use]
    pub fn run(&self, k: usize) -> PathBuf {
        self.round(k).join("run")
    }
    /// Round `k`'s exported model.
    #[must_use]
    pub fn model(&self, k: usize) -> PathBuf {
        self.round(k).join("model.onnx")
    }
}

/// Runs (or continues) every round of `config` in `dir`.
pub fn run_engine(config: &EngineConfig, dir: &Path, progress: &dyn Progress) -> Result<Vec<RoundSummary>> {
    config.check().map_err(HarnessError::invalid)?;
    let suite = Suite::load(&config.suite)?;
    let layout = EngineDir { dir: dir.to_path_buf() };
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    // The config the engine ran with, for whoever looks at the folder later.
    let written =
        toml::to_string(config).map_err(|e| HarnessError::invalid(format!("the engine config: {e}")))?;
    std::fs::write(dir.join("engine.toml"), written).with_context(|| format!("writing {}", dir.display()))?;
    let jobs = if config.jobs > 0 {
        config.jobs
    } else {
        std::thread::available_parallelism().map_or(1, usize::from)
    };
    let runtime = eval_config(Config::load_for_runtime(None)?);
    let mut rounds = Vec::new();
    for k in 0..config.rounds {
        let round = run_round(config, &suite, &layout, k, jobs, &runtime, progress)?;
        progress.note(&round_line(&round));
        rounds.push(round);
    }
    Ok(rounds)
}

/// One line per round for people.
#[must_use]
pub fn round_line(round: &RoundSummary) -> String {
    let f = &round.report.figures;
    let mut line = format!(
        "round {}: {} runs, {} failures, {:.2} nines on {}",
        round.round, f.runs, f.failures, f.nines, round.report.suite
    );
    if let Some(seen) = &round.report.seen_in_training {
        let _ = write!(line, " ({} runs seen in training, counted apart)", seen.runs);
    }
    if let Some(c) = &round.collection {
        let _ = write!(line, "; collection: {}", c.line());
    }
    if let Some(gate) = &round.gate {
        line.push_str(if gate.reasons.is_empty() { "; gate passed" } else { "; gate FAILED" });
    }
    line
}

/// What every round shares.
struct Rounds<'a> {
    config: &'a EngineConfig,
    suite: &'a Suite,
    layout: &'a EngineDir,
    jobs: usize,
    runtime: &'a Config,
    progress: &'a dyn Progress,
}

fn run_round(
    config: &EngineConfig,
    suite: &Suite,
    layout: &EngineDir,
    k: usize,
    jobs: usize,
    runtime: &Config,
    progress: &dyn Progress,
) -> Result<RoundSummary> {
    let rounds = Rounds { config, suite, layout, jobs, runtime, progress };
    let (drives, collection) = rounds.collect(k)?;
    rounds.distil(k, &drives)?;
    rounds.train(k)?;
    let model = layout.model(k);
    if !model.exists() {
        rounds.step(k, &format!("exporting -> {}", model.display()));
        export(&layout.run(k), &model, &ExportOptions { samples: 8, ..ExportOptions::default() })?;
    }
    let (report, gate) = rounds.evaluate(k, &model)?;
    Ok(RoundSummary { round: k, dir: layout.round(k), model, report, collection, gate })
}

impl Rounds<'_> {
    fn step(&self, k: usize, what: &str) {
        self.progress.note(&format!("round {k}: {what}"));
    }

    /// Step 1: the round's drives (those already recorded are kept).
    fn collect(&self, k: usize) -> Result<(Vec<PathBuf>, Option<CollectSummary>)> {
        let (expert_runs, model_runs) = self.config.seeds(k);
        let dir = self.layout.drives(k);
        self.step(
            k,
            &format!("collecting {} disturbed expert drives -> {}", expert_runs.len(), dir.display()),
        );
        let disturb = DisturbProfile::named(&self.config.disturb)?;
        let duration = Some(self.config.duration_s);
        let camera = self.suite.camera;
        let mut drives =
            collect_expert(camera, &disturb, duration, &expert_runs, &dir, self.jobs, self.progress)?;
        if k == 0 || model_runs.is_empty() {
            return Ok((drives, None));
        }
        let model = self.layout.model(k - 1);
        self.step(
            k,
            &format!("collecting {} drives of {} with a safety driver", model_runs.len(), model.display()),
        );
        let options = CollectOptions {
            model,
            config: self.runtime.clone(),
            camera,
            takeover: self.config.takeover,
            duration_s: duration,
            jobs: self.jobs,
        };
        let summary = collect(&options, &model_runs, &dir, self.progress)?;
        drives.extend(summary.runs.iter().map(|r| r.drive.clone()));
        Ok((drives, Some(summary)))
    }

    /// Step 2: distil the drives (those already in the index are skipped).
    fn distil(&self, k: usize, drives: &[PathBuf]) -> Result<()> {
        let labels = self.layout.labels(k);
        self.step(k, &format!("distilling {} drives -> {}", drives.len(), labels.display()));
        let folder = LabelFolder::open(&labels, DistillOptions::default())?;
        let kernels = Kernels::cpu();
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(self.jobs.max(1))
            .thread_name(|i| format!("nines-distil-{i}"))
            .build()?;
        self.progress.start(drives.len() as u64, "drives");
        let result = pool.install(|| {
            drives.par_iter().try_for_each(|drive| {
                let added = folder.add_drive(drive, &kernels, false, &|| {});
                self.progress.advance(1);
                match added {
                    Added::Failed(error) => Err(HarnessError::invalid(format!(
                        "{}: could not be labelled: {error}",
                        drive.display()
                    ))),
                    _ => Ok(()),
                }
            })
        });
        self.progress.finish();
        result
    }

    /// Step 3: train on every round's labels, warm-started from the
    /// previous round (resumed if interrupted, skipped if done).
    fn train(&self, k: usize) -> Result<()> {
        let (config, progress) = (self.config, self.progress);
        let run = self.layout.run(k);
        let done = nines_offboard::training::RunFolder::read(&run)
            .ok()
            .map(|r| r.state().map(|s| s.epochs_done >= config.epochs))
            .transpose()?
            .unwrap_or(false);
        if done {
            self.step(k, &format!("trained already: {}", run.display()));
            return Ok(());
        }
        let all_labels: Vec<PathBuf> = (0..=k).map(|r| self.layout.labels(r)).collect();
        let previous = k.checked_sub(1).map(|p| self.layout.run(p));
        let start = if run.join("config.toml").exists() {
            Start::Resume
        } else {
            previous.as_deref().map_or(Start::Fresh, Start::From)
        };
        self.step(
            k,
            &format!(
                "training {} epochs on {} label folders -> {}",
                config.epochs,
                all_labels.len(),
                run.display()
            ),
        );
        let device = if config.device == "gpu" { TrainDevice::Gpu } else { TrainDevice::Cpu };
        let mut on_progress = |p: &TrainProgress| match p {
            TrainProgress::EpochStart { steps, .. } => progress.start(*steps as u64, "steps"),
            TrainProgress::Step { .. } => progress.advance(1),
            TrainProgress::EpochEnd(record) => {
                progress.finish();
                let moved = record
                    .moved_plan
                    .as_ref()
                    .map_or(String::new(), |m| format!(", moved {:.2} m", m.ade[1]));
                progress.note(&format!(
                    "round {k}: epoch {} validation loss {:.4}, plan ADE@2s {:.2} m{moved}",
                    record.epoch, record.validation_loss.total, record.validation.plan.ade[1]
                ));
            }
            TrainProgress::Model { device, .. } => progress.note(&format!("round {k}: training on {device}")),
        };
        train(&all_labels, Some(&config.train_config()), &run, device, start, &mut on_progress)?;
        Ok(())
    }

    /// Steps 5 and 6: evaluate into the engine's ledger (an eval resumes by
    /// itself), report, and gate against the previous round.
    fn evaluate(&self, k: usize, model: &Path) -> Result<(ReleaseReport, Option<Verdict>)> {
        let release = self.config.release(k);
        self.step(k, &format!("evaluating {release} on {}", self.suite.name));
        let options = EvalOptions {
            suite: self.suite.clone(),
            seat: Seat::Model { path: model.to_path_buf(), config: Box::new(self.runtime.clone()) },
            release: release.clone(),
            ledger: self.layout.ledger(),
            jobs: self.jobs,
            shard: None,
            cache: self.layout.dir.join("suite-drives"),
        };
        eval(&options, self.progress)?;
        let reports = report::build(&Ledger::open_existing(&self.layout.ledger())?)?;
        let find = |name: &str| reports.iter().find(|r| r.release == name).cloned();
        let report = find(&release)
            .ok_or_else(|| HarnessError::invalid(format!("release {release} is not in the ledger")))?;
        let Some(before) = k.checked_sub(1).and_then(|p| find(&self.config.release(p))) else {
            return Ok((report, None));
        };
        let verdict = report::gate(&before, &report, ALPHA);
        let mut text = format!(
            "{release} against {}: {}/{} failures against {}/{}, p = {:.4}\n",
            before.release,
            verdict.candidate.0,
            verdict.candidate.1,
            verdict.baseline.0,
            verdict.baseline.1,
            verdict.p_value
        );
        for reason in &verdict.reasons {
            let _ = writeln!(text, "FAIL: {reason}");
        }
        if verdict.reasons.is_empty() {
            text.push_str("passed\n");
        }
        let path = self.layout.round(k).join("gate.txt");
        std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
        Ok((report, Some(verdict)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn configs_default_every_key_and_refuse_unknown_ones() {
        let config: EngineConfig = toml::from_str("rounds = 2\n[takeover]\nlateral_m = 1.0\n").unwrap();
        assert_eq!((config.rounds, config.takeover.lateral_m, config.epochs), (2, 1.0, 6));
        assert!(toml::from_str::<EngineConfig>("round = 2").is_err(), "unknown keys are refused");
        assert!(config.check().is_ok());
        let bad = EngineConfig { device: "tpu".into(), ..EngineConfig::default() };
        assert!(bad.check().unwrap_err().contains("device"));
        let unknown = EngineConfig { families: vec!["moon".into()], ..EngineConfig::default() };
        assert!(unknown.check().unwrap_err().contains("families"));
    }

    #[test]
    fn the_shipped_cpu_config_loads_with_its_suite() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../configs/engine-cpu.toml");
        let config = EngineConfig::load(&path).unwrap();
        assert_eq!((config.rounds, config.preset.as_str(), config.family_names().len()), (3, "tiny", 9));
        assert!(config.suite.exists(), "{}", config.suite.display());
    }

    #[test]
    fn rounds_collect_on_their_own_collection_seeds() {
        let config = EngineConfig {
            families: vec!["straight".into(), "curves".into()],
            seeds_per_round: 3,
            expert_ratio: 0.5,
            ..EngineConfig::default()
        };
        let (expert0, model0) = config.seeds(0);
        assert_eq!(expert0.len(), 6);
        assert!(model0.is_empty(), "round 0: the expert alone");
        let (expert1, model1) = config.seeds(1);
        assert_eq!((expert1.len(), model1.len()), (4, 6), "half as many expert drives as model drives");
        let mut all: Vec<&(String, u64)> = expert0.iter().chain(&expert1).chain(&model1).collect();
        assert!(all.iter().all(|(_, s)| *s >= COLLECTION_SEEDS), "never a suite's seed");
        let n = all.len();
        all.sort();
        all.dedup();
        assert_eq!(all.len(), n, "no two runs share a scenario");
        assert_eq!(config.release(2), "engine-r2");
    }
}
