//! A run folder: the files written when a run starts, the checkpoint and
//! metrics written after every epoch, and reading it all back for
//! `--resume` and for export.

use std::path::{Path, PathBuf};

use burn::optim::ModuleOptimizer;
use burn::prelude::*;
use burn::store::ModuleRecord;
use nines_datasets::contract::ModelContract;
use nines_datasets::drive::DriveScenario;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::{Baselines, EpochRecord, TrainConfig, moved_check, score};
use crate::data::{Augment, LabelSet, SampleRef, Split};
use crate::metrics::MetricsAccumulator;
use crate::model::{Model, ModelConfig};
use crate::{OffboardError, Result};

const CONFIG_FILE: &str = "config.toml";
const STATE_FILE: &str = "state.json";
const SOURCE_FILE: &str = "source.json";
const METRICS_FILE: &str = "metrics.jsonl";

/// The state file of a run: the newest complete checkpoint.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RunState {
    /// Epochs finished.
    pub epochs_done: usize,
    /// Optimizer steps taken.
    pub steps: usize,
    /// The checkpoint folder of the newest epoch, relative to the run.
    pub checkpoint: Option<String>,
    /// Epoch of the best model so far.
    pub best_epoch: Option<usize>,
    /// Its validation loss.
    pub best_loss: Option<f64>,
}

/// Where a run's labels came from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Source {
    /// The label folders (runs made before several were allowed name one).
    #[serde(deserialize_with = "one_or_many")]
    pub labels: Vec<PathBuf>,
    /// The run whose weights this one started from (`nines train --init`).
    #[serde(default)]
    pub init: Option<PathBuf>,
    /// Digest of the contract and the training drives' digests.
    pub training_data_digest: String,
    /// The simulated scenarios of the training drives (the model card lists them).
    #[serde(default)]
    pub training_scenarios: Vec<DriveScenario>,
}

/// A path, or a list of them.
fn one_or_many<'de, D: serde::Deserializer<'de>>(de: D) -> std::result::Result<Vec<PathBuf>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(PathBuf),
        Many(Vec<PathBuf>),
    }
    Ok(match OneOrMany::deserialize(de)? {
        OneOrMany::One(path) => vec![path],
        OneOrMany::Many(paths) => paths,
    })
}

/// The simulated scenarios of the drives a split trains on, in shard order.
#[must_use]
pub fn training_scenarios(set: &LabelSet, split: &Split) -> Vec<DriveScenario> {
    set.index
        .shards
        .iter()
        .filter(|entry| split.train.contains(&entry.shard))
        .filter_map(|entry| entry.scenario.clone())
        .collect()
}

/// Digest of the labels a split trains on: the contract and the sorted
/// drive digests of the training shards.
#[must_use]
pub fn training_data_digest(set: &LabelSet, split: &Split) -> String {
    use sha2::{Digest, Sha256};
    let mut digests: Vec<&str> = set
        .drives
        .iter()
        .filter(|d| split.train.contains(&d.name))
        .map(|d| d.drive_digest.as_str())
        .collect();
    digests.sort_unstable();
    let mut hash = Sha256::new();
    hash.update(set.index.contract_digest.as_bytes());
    for d in digests {
        hash.update(b"\n");
        hash.update(d.as_bytes());
    }
    nines_datasets::contract::short_hex(&hash.finalize())
}
/// The files a run has from its first moment on: what `nines train` writes
/// when it starts, and what `--resume` and export read back.
#[derive(Debug, Clone)]
pub struct RunFolder {
    /// The folder.
    pub dir: PathBuf,
    /// The training config, defaults filled in.
    pub config: TrainConfig,
    /// The labels' contract.
    pub contract: ModelContract,
    /// The architecture.
    pub model: ModelConfig,
    /// Training and validation drives.
    pub split: Split,
    /// The labels' folder and digest.
    pub source: Source,
}

impl RunFolder {
    /// Reads the run in `dir`.
    pub fn read(dir: &Path) -> Result<Self> {
        let contract_path = dir.join("contract.json");
        let contract: ModelContract = read_json(&contract_path)?;
        contract.validate(&contract_path)?;
        Ok(Self {
            dir: dir.to_path_buf(),
            config: TrainConfig::load(&dir.join(CONFIG_FILE))?,
            contract,
            model: read_json(&dir.join("model.json"))?,
            split: read_json(&dir.join("split.json"))?,
            source: read_json(&dir.join(SOURCE_FILE))?,
        })
    }

    /// Starts the run in `out` on `set` (from the folder `labels`), or with
    /// `resume` reads it back; a resumed run takes only `epochs` from `config`.
    pub(crate) fn prepare(
        out: &Path,
        set: &LabelSet,
        config: Option<&TrainConfig>,
        init: Option<&Path>,
        resume: bool,
    ) -> Result<Self> {
        let config_path = out.join(CONFIG_FILE);
        if config_path.exists() {
            if !resume {
                return Err(OffboardError::run(
                    out,
                    "already holds a training run; add --resume to continue it, or choose another --out",
                ));
            }
            let mut run = Self::read(out)?;
            if let Some(given) = config {
                let comparable = TrainConfig { epochs: run.config.epochs, ..given.clone() };
                if comparable != run.config {
                    return Err(OffboardError::run(
                        &config_path,
                        "--config differs from the run's config in more than `epochs`; resume without --config, or start a new run",
                    ));
                }
                if given.epochs != run.config.epochs {
                    run.config.epochs = given.epochs;
                    write_toml(&config_path, &run.config)?;
                }
            }
            return Ok(run);
        }
        let config = config.cloned().unwrap_or_default();
        let contract = set.contract().clone();
        let model = ModelConfig::preset(&config.preset, &contract)?;
        let split = set.split(config.validation_fraction, config.seed)?;
        let source = Source {
            labels: set.dirs.iter().map(|d| std::path::absolute(d).unwrap_or_else(|_| d.clone())).collect(),
            init: init.map(|r| std::path::absolute(r).unwrap_or_else(|_| r.to_path_buf())),
            training_data_digest: training_data_digest(set, &split),
            training_scenarios: training_scenarios(set, &split),
        };
        std::fs::create_dir_all(out).map_err(OffboardError::io(out, "creating the run folder"))?;
        write_atomic(&out.join("contract.json"), to_json(&contract)?.as_bytes())?;
        write_atomic(&out.join("model.json"), to_json(&model)?.as_bytes())?;
        write_atomic(&out.join("split.json"), to_json(&split)?.as_bytes())?;
        write_atomic(&out.join(SOURCE_FILE), to_json(&source)?.as_bytes())?;
        // The config goes last: its presence is what makes the folder a run.
        write_toml(&config_path, &config)?;
        Ok(Self { dir: out.to_path_buf(), config, contract, model, split, source })
    }

    /// The newest complete checkpoint (none before the first epoch ends).
    pub fn state(&self) -> Result<RunState> {
        let path = self.dir.join(STATE_FILE);
        if path.exists() { read_json(&path) } else { Ok(RunState::default()) }
    }

    /// The epochs recorded up to `done` (a line beyond it belongs to an
    /// epoch whose checkpoint was not completed, which is trained again).
    pub(crate) fn records(&self, done: usize) -> Result<Vec<EpochRecord>> {
        let path = self.dir.join(METRICS_FILE);
        let Ok(text) = std::fs::read_to_string(&path) else { return Ok(Vec::new()) };
        let mut records = Vec::new();
        for (i, line) in text.lines().enumerate() {
            let record: EpochRecord = serde_json::from_str(line)
                .map_err(|e| OffboardError::run(&path, format!("line {}: {e}", i + 1)))?;
            if record.epoch <= done {
                records.push(record);
            }
        }
        Ok(records)
    }

    /// The baselines on the validation samples, computed once per run.
    pub(crate) fn baselines(
        &self,
        set: &LabelSet,
        train: &[usize],
        validation: &[SampleRef],
    ) -> Result<Baselines> {
        let path = self.dir.join("baselines.json");
        if path.exists() {
            return read_json(&path);
        }
        let mean_depth_m = set.mean_depth(train);
        let times = &set.contract().plan_times_secs;
        let constant_velocity = |augment: Option<Augment>| {
            let mut acc = MetricsAccumulator::new(times);
            for chunk in validation.chunks(64) {
                let batch = set.batch(chunk, augment);
                let depth = vec![mean_depth_m; batch.depth.len()];
                let plan: Vec<f32> = batch
                    .speed
                    .iter()
                    .flat_map(|&v| times.iter().flat_map(move |&t| [v * t as f32, 0.0, v]))
                    .collect();
                let lead = vec![0.0; 3 * batch.size];
                score(&mut acc, &batch, &depth, &plan, &lead, set.layout.plan_steps, false);
            }
            acc.finish()
        };
        let moved_plan =
            set.moves_viewpoints().then(|| constant_velocity(Some(moved_check(&self.config))).plan);
        let baselines = Baselines { metrics: constant_velocity(None), mean_depth_m, moved_plan };
        write_atomic(&path, to_json(&baselines)?.as_bytes())?;
        Ok(baselines)
    }

    /// Writes the newest epoch's checkpoint, the metrics of every epoch in
    /// `records` (the newest last), the best model if it is, and last the
    /// state file that makes the checkpoint the newest.
    pub(crate) fn save_epoch(
        &self,
        model: &Model,
        optim: &ModuleOptimizer,
        state: &mut RunState,
        records: &[EpochRecord],
    ) -> Result<()> {
        let Some(record) = records.last() else { return Ok(()) };
        let name = format!("checkpoints/epoch-{:04}", record.epoch);
        let dir = self.dir.join(&name);
        let tmp = self.dir.join(format!("{name}.tmp"));
        let io = |path: &Path, e: &dyn std::fmt::Display| OffboardError::run(path, e.to_string());
        let _ = std::fs::remove_dir_all(&tmp);
        std::fs::create_dir_all(&tmp).map_err(OffboardError::io(&tmp, "creating the checkpoint"))?;
        let weights = model.valid().into_record();
        weights.clone().save(tmp.join("model.bpk")).map_err(|e| io(&tmp, &e))?;
        optim.save(tmp.join("optimizer.bpk")).map_err(|e| io(&tmp, &e))?;
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::rename(&tmp, &dir).map_err(OffboardError::io(&dir, "naming the checkpoint"))?;

        let mut lines = String::new();
        for r in records {
            lines +=
                &serde_json::to_string(r).map_err(|e| OffboardError::Model(format!("serialising: {e}")))?;
            lines.push('\n');
        }
        write_atomic(&self.dir.join(METRICS_FILE), lines.as_bytes())?;

        let loss = record.score();
        if state.best_loss.is_none_or(|best| loss < best) {
            let best = self.dir.join("best");
            std::fs::create_dir_all(&best).map_err(|e| io(&best, &e))?;
            let tmp = best.join("model.bpk.tmp");
            weights.save(&tmp).map_err(|e| io(&tmp, &e))?;
            std::fs::rename(&tmp, best.join("model.bpk")).map_err(|e| io(&best, &e))?;
            write_atomic(&best.join("metrics.json"), to_json(record)?.as_bytes())?;
            state.best_loss = Some(loss);
            state.best_epoch = Some(record.epoch);
        }
        state.checkpoint = Some(name);
        state.epochs_done = record.epoch;
        write_atomic(&self.dir.join(STATE_FILE), to_json(state)?.as_bytes())?;
        // Keep the newest two checkpoints.
        if record.epoch >= 3 {
            let _ =
                std::fs::remove_dir_all(self.dir.join(format!("checkpoints/epoch-{:04}", record.epoch - 2)));
        }
        Ok(())
    }
}

fn write_toml(path: &Path, config: &TrainConfig) -> Result<()> {
    let text = toml::to_string(config).map_err(|e| OffboardError::Config(e.to_string()))?;
    write_atomic(path, text.as_bytes())
}

/// Loads weights saved by training into `model`.
pub fn load_weights(model: Model, path: &Path) -> Result<Model> {
    let record = ModuleRecord::load(path).map_err(|e| {
        OffboardError::run(
            path,
            format!("cannot read the weights ({e}); the run may be incomplete: train it again"),
        )
    })?;
    model
        .try_load_record(record)
        .map_err(|e| OffboardError::run(path, format!("weights do not fit the run's model.json ({e})")))
}

fn to_json<T: Serialize>(value: &T) -> Result<String> {
    serde_json::to_string_pretty(value).map_err(|e| OffboardError::Model(format!("serialising: {e}")))
}

/// Reads a JSON file of a run folder.
fn read_json<T: DeserializeOwned>(path: &Path) -> Result<T> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| OffboardError::run(path, format!("{e}; is this a run folder made by `nines train`?")))?;
    serde_json::from_str(&text)
        .map_err(|e| OffboardError::run(path, format!("{e}; the run is damaged: start a new one")))
}

/// Writes `bytes` to `path` through a temporary file and a rename, so a
/// crash leaves the old file or the new one, never half of one.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, bytes).map_err(OffboardError::io(&tmp, "writing"))?;
    std::fs::rename(&tmp, path).map_err(OffboardError::io(path, "replacing"))
}

/// A trained run, loaded for export.
#[derive(Debug)]
pub struct TrainedRun {
    /// The best (or newest) weights, on the CPU.
    pub model: Model,
    /// The run's files.
    pub run: RunFolder,
    /// The epoch the weights come from, with its validation metrics
    /// (None for weights from a checkpoint rather than `best/`).
    pub record: Option<EpochRecord>,
}

/// The run's best (or newest) weights with its files, for export.
pub fn load_run(dir: &Path) -> Result<TrainedRun> {
    let run = RunFolder::read(dir)?;
    let (weights, record) = run.best_weights()?;
    let model = load_weights(run.model.init(&Device::flex()), &weights)?;
    Ok(TrainedRun { model, run, record })
}

impl RunFolder {
    /// The weights a run stands for: its best epoch's, else its newest
    /// checkpoint's; with the best epoch's record.
    pub fn best_weights(&self) -> Result<(PathBuf, Option<EpochRecord>)> {
        let best = self.dir.join("best/model.bpk");
        if best.is_file() {
            Ok((best, read_json(&self.dir.join("best/metrics.json")).ok()))
        } else if let Some(checkpoint) = self.state()?.checkpoint {
            Ok((self.dir.join(checkpoint).join("model.bpk"), None))
        } else {
            Err(OffboardError::run(
                &self.dir,
                "has no trained weights yet; let `nines train` finish an epoch",
            ))
        }
    }

    /// The weights of `init` for a warm start of this run: refused unless
    /// `init` has the same architecture and contract.
    pub fn warm_start_from(&self, init: &Path) -> Result<PathBuf> {
        let other = Self::read(init)?;
        if other.model != self.model {
            return Err(OffboardError::run(
                init.join("model.json"),
                format!(
                    "a warm start needs the same architecture: {} is preset {:?}, this run is preset {:?} \
                     (model.json differs); start from scratch, or from a run of preset {:?}",
                    init.display(),
                    other.config.preset,
                    self.config.preset,
                    self.config.preset
                ),
            ));
        }
        if other.contract != self.contract {
            return Err(OffboardError::run(
                init.join("contract.json"),
                format!(
                    "a warm start needs the same contract: {} was trained under {}, these labels under {}",
                    init.display(),
                    other.contract.digest(),
                    self.contract.digest()
                ),
            ));
        }
        Ok(other.best_weights()?.0)
    }
}
