//! Training: `nines train --labels DIR --config train.toml --out runs/NAME`.
//!
//! A run folder holds everything needed to continue it or export it:
//! - `config.toml`: the whole training config, defaults filled in (seed included);
//! - `model.json`, `contract.json`, `split.json`: the architecture, the
//!   contract of the labels, which drives train and which validate;
//! - `checkpoints/epoch-NNNN/{model,optimizer}.bpk` and `state.json`
//!   (written last, atomically: the newest complete checkpoint);
//! - `best/model.bpk` and `best/metrics.json`: the lowest validation loss;
//! - `metrics.jsonl`: one line per epoch; `baselines.json`: the mean-depth
//!   and constant-velocity baselines on the same validation drives.
//!
//! Every random choice (initial weights, shuffles, augmentation) derives
//! from the seed and the epoch, and the optimizer state is checkpointed,
//! so `--resume` continues exactly where the last checkpoint stopped.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use burn::module::Module;
use burn::optim::{AdamWConfig, GradientsParams, ModuleOptimizer};
use burn::prelude::*;
use burn::store::ModuleRecord;
use burn::tensor::activation::relu;
use nines_datasets::contract::ModelContract;
use serde::{Deserialize, Serialize};

use crate::data::{Batch, Batches, LabelSet, PassSpec, SampleRef, Split};
use crate::metrics::{DEPTH_CAP_M, Metrics, MetricsAccumulator};
use crate::model::{Model, ModelConfig, RawOutput};
use crate::{OffboardError, Result};

/// The training config file. Every key has a default, so `preset = "tiny"`
/// and `epochs = 1` make a whole config; an unknown key is an error.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TrainConfig {
    /// Model preset: "tiny" (tests, demo) or "default" (Jetson-class, 30 Hz).
    pub preset: String,
    /// Passes over the training drives.
    pub epochs: usize,
    /// Samples per step.
    pub batch_size: usize,
    /// Peak learning rate (AdamW), reached after `warmup_steps`, then cosine decay.
    pub learning_rate: f64,
    /// Linear warm-up, steps.
    pub warmup_steps: usize,
    /// AdamW decoupled weight decay.
    pub weight_decay: f64,
    /// Gradient norm clip.
    pub grad_clip: f32,
    /// Seeds the weights, the split, the shuffles and the augmentation.
    pub seed: u64,
    /// Share of drives held out for validation (at least one drive).
    pub validation_fraction: f64,
    /// Stop each epoch after this many steps (0: the whole training set).
    pub steps_per_epoch: usize,
    /// Photometric augmentation of training batches.
    pub augment: bool,
    /// Batch-assembly threads (0: one per core, at most 4).
    pub workers: usize,
    /// Loss weights.
    pub loss: LossWeights,
}

/// How much each head's loss counts.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LossWeights {
    /// L1 on log depth, pixels with lidar.
    pub depth: f32,
    /// L1 on x, y (and v at half weight), valid plan points.
    pub plan: f32,
    /// Presence BCE plus distance and relative-speed Huber where known.
    pub lead: f32,
}

impl Default for LossWeights {
    fn default() -> Self {
        Self { depth: 1.0, plan: 1.0, lead: 0.5 }
    }
}

impl Default for TrainConfig {
    fn default() -> Self {
        Self {
            preset: "default".into(),
            epochs: 20,
            batch_size: 16,
            learning_rate: 2e-3,
            warmup_steps: 100,
            weight_decay: 1e-4,
            grad_clip: 5.0,
            seed: 0,
            validation_fraction: 0.2,
            steps_per_epoch: 0,
            augment: true,
            workers: 0,
            loss: LossWeights::default(),
        }
    }
}

impl TrainConfig {
    /// Reads a TOML config, naming the file and the key on error.
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| OffboardError::run(path, e.to_string()))?;
        let config: Self = toml::from_str(&text).map_err(|e| {
            OffboardError::run(
                path,
                format!("{}; every key is optional (see `nines train --help`)", e.message()),
            )
        })?;
        config.check(path)?;
        Ok(config)
    }

    fn check(&self, path: &Path) -> Result<()> {
        let bad = |key: &str, why: &str| Err(OffboardError::run(path, format!("{key}: {why}")));
        if self.epochs == 0 {
            return bad("epochs", "must be at least 1");
        }
        if self.batch_size < 2 {
            return bad("batch_size", "must be at least 2 (batch norm needs more than one sample)");
        }
        if !(self.learning_rate > 0.0 && self.learning_rate < 1.0) {
            return bad("learning_rate", "must be in (0, 1)");
        }
        if !(self.validation_fraction > 0.0 && self.validation_fraction < 1.0) {
            return bad("validation_fraction", "must be in (0, 1)");
        }
        if !matches!(self.preset.as_str(), "tiny" | "default") {
            return bad("preset", "must be \"tiny\" or \"default\"");
        }
        Ok(())
    }

    fn workers(&self) -> usize {
        if self.workers > 0 {
            self.workers
        } else {
            std::thread::available_parallelism().map_or(1, |n| n.get().min(4))
        }
    }

    /// Learning rate at `step` of `total`: linear warm-up, then cosine to 5% of the peak.
    #[must_use]
    pub fn learning_rate_at(&self, step: usize, total: usize) -> f64 {
        let warm = self.warmup_steps.min(total / 4).max(1);
        if step < warm {
            return self.learning_rate * (step + 1) as f64 / warm as f64;
        }
        let progress = (step - warm) as f64 / (total.saturating_sub(warm)).max(1) as f64;
        let cosine = 0.5 * (1.0 + (std::f64::consts::PI * progress.min(1.0)).cos());
        self.learning_rate * (0.05 + 0.95 * cosine)
    }
}

/// Where training runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TrainDevice {
    /// burn's `flex` CPU backend, every core.
    Cpu,
    /// burn's Vulkan backend on the first GPU (cargo feature `gpu`).
    Gpu,
}

impl TrainDevice {
    /// The burn device (without autodiff).
    pub fn device(self) -> Result<Device> {
        match self {
            Self::Cpu => Ok(Device::flex()),
            #[cfg(feature = "gpu")]
            Self::Gpu => Ok(Device::vulkan(burn::tensor::DeviceKind::DefaultDevice)),
            #[cfg(not(feature = "gpu"))]
            Self::Gpu => Err(OffboardError::Config(
                "this nines was built without a GPU training backend; build it with `--features gpu` (see docs/TRAINING.md)"
                    .into(),
            )),
        }
    }
}

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

/// One line of `metrics.jsonl`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EpochRecord {
    /// 1-based.
    pub epoch: usize,
    /// Optimizer steps so far.
    pub steps: usize,
    /// Mean training loss of the epoch, per head and total.
    pub train_loss: LossParts,
    /// Validation loss.
    pub validation_loss: LossParts,
    /// Validation metrics.
    pub validation: Metrics,
    /// Training images (samples) per second this epoch.
    pub images_per_sec: f64,
    /// Learning rate at the epoch's end.
    pub learning_rate: f64,
}

/// Loss by head.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct LossParts {
    /// Weighted sum.
    pub total: f64,
    /// Depth term.
    pub depth: f64,
    /// Plan term.
    pub plan: f64,
    /// Lead term.
    pub lead: f64,
}

impl LossParts {
    fn add(&mut self, other: &Self) {
        self.total += other.total;
        self.depth += other.depth;
        self.plan += other.plan;
        self.lead += other.lead;
    }

    fn scaled(&self, by: f64) -> Self {
        Self { total: self.total * by, depth: self.depth * by, plan: self.plan * by, lead: self.lead * by }
    }
}

/// The baselines on the validation drives.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Baselines {
    /// Every pixel at the training drives' mean labelled depth; the plan
    /// at constant velocity; never a lead.
    pub metrics: Metrics,
    /// The mean depth used, m.
    pub mean_depth_m: f32,
}

/// What training reports as it goes.
#[derive(Debug, Clone)]
pub enum Progress {
    /// An epoch starts with this many steps.
    EpochStart {
        /// 1-based.
        epoch: usize,
        /// Of how many.
        epochs: usize,
        /// Steps in it.
        steps: usize,
    },
    /// A step finished.
    Step {
        /// Running mean training loss of the epoch.
        loss: f64,
        /// Images per second so far this epoch.
        images_per_sec: f64,
    },
    /// An epoch finished and was validated.
    EpochEnd(Box<EpochRecord>),
}

/// What a finished (or resumed and finished) run reports.
#[derive(Debug, Clone)]
pub struct TrainSummary {
    /// The run folder.
    pub run: PathBuf,
    /// Every epoch so far.
    pub epochs: Vec<EpochRecord>,
    /// Baselines on the same validation drives.
    pub baselines: Baselines,
    /// Parameters of the model.
    pub parameters: usize,
    /// GFLOPs per image.
    pub gflops: f64,
}

const STATE_FILE: &str = "state.json";
const SOURCE_FILE: &str = "source.json";

/// Where a run's labels came from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Source {
    /// The label folder.
    pub labels: PathBuf,
    /// Digest of the contract and the training drives' digests.
    pub training_data_digest: String,
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
const METRICS_FILE: &str = "metrics.jsonl";

/// Trains (or resumes) the run in `out` on the labels in `labels`.
pub fn train(
    labels: &Path,
    config: Option<&TrainConfig>,
    out: &Path,
    device: TrainDevice,
    resume: bool,
    on_progress: &mut dyn FnMut(&Progress),
) -> Result<TrainSummary> {
    let base = device.device()?;
    let run = RunFolder::prepare(out, labels, config, resume)?;
    let config = run.config.clone();
    let set = Arc::new(LabelSet::open(labels, Some(&run.contract))?);
    let train_drives = set.drive_indices(&run.split.train)?;
    let validation_drives = set.drive_indices(&run.split.validation)?;
    let train_samples = set.samples(&train_drives);
    let validation_samples = set.samples(&validation_drives);
    if train_samples.len() < config.batch_size || validation_samples.is_empty() {
        return Err(OffboardError::labels(
            labels.join(crate::labels::INDEX_FILE),
            format!(
                "{} training and {} validation samples (with their stacked history); training needs at least one batch ({}) and one validation sample: distil more or longer drives, or lower batch_size",
                train_samples.len(),
                validation_samples.len(),
                config.batch_size
            ),
        ));
    }

    base.seed(config.seed);
    let autodiff = base.clone().autodiff();
    let fresh = run.model.init(&autodiff);
    let mut optim: ModuleOptimizer = AdamWConfig::new()
        .with_weight_decay(config.weight_decay as f32)
        .with_grad_clipping(Some(burn::grad_clipping::GradientClippingConfig::Norm(config.grad_clip)))
        .init();
    let mut state = run.state()?;
    let mut model = if let Some(checkpoint) = &state.checkpoint {
        let dir = run.dir.join(checkpoint);
        optim = optim.load(dir.join("optimizer.bpk")).map_err(|e| {
            OffboardError::run(dir.join("optimizer.bpk"), format!("{e}; delete the run or its state.json"))
        })?;
        load_weights(fresh, &dir.join("model.bpk"))?
    } else {
        fresh
    };

    let baselines = run.baselines(&set, &train_drives, &validation_samples)?;
    let per_epoch = {
        let full = train_samples.len() / config.batch_size;
        if config.steps_per_epoch > 0 { full.min(config.steps_per_epoch) } else { full }
    };
    let total_steps = per_epoch * config.epochs;
    let workers = config.workers();
    let mut epochs = run.records()?;

    for epoch in state.epochs_done + 1..=config.epochs {
        on_progress(&Progress::EpochStart { epoch, epochs: config.epochs, steps: per_epoch });
        let epoch_seed = config.seed ^ (epoch as u64).wrapping_mul(0x2545_f491_4f6c_dd1d);
        let batches = Batches::start(
            &set,
            &train_samples,
            PassSpec {
                batch_size: config.batch_size,
                shuffle: Some(epoch_seed),
                augment: config.augment.then_some(epoch_seed.rotate_left(17)),
                drop_last: true,
                workers,
            },
        );
        let started = Instant::now();
        let mut sum = LossParts::default();
        let mut images = 0usize;
        let mut lr = 0.0;
        for (i, batch) in batches.take(per_epoch).enumerate() {
            let tensors = BatchTensors::new(&batch, &set, &autodiff);
            let raw = model.forward_raw(tensors.image.clone(), tensors.speed.clone());
            let (loss, parts) = losses(&raw, &tensors, &config.loss)?;
            let grads = GradientsParams::from_grads(loss.backward(), &model);
            lr = config.learning_rate_at(state.steps, total_steps);
            model = optim.step(lr, model, grads);
            state.steps += 1;
            sum.add(&parts);
            images += batch.size;
            let secs = started.elapsed().as_secs_f64().max(1e-9);
            on_progress(&Progress::Step {
                loss: sum.total / (i + 1) as f64,
                images_per_sec: images as f64 / secs,
            });
        }
        let images_per_sec = images as f64 / started.elapsed().as_secs_f64().max(1e-9);
        let train_loss = sum.scaled(1.0 / per_epoch.max(1) as f64);
        let (validation_loss, validation) =
            evaluate(&model.valid(), &set, &validation_samples, &config, &base)?;
        let record = EpochRecord {
            epoch,
            steps: state.steps,
            train_loss,
            validation_loss,
            validation,
            images_per_sec,
            learning_rate: lr,
        };
        run.save_epoch(&model, &optim, &mut state, &record)?;
        on_progress(&Progress::EpochEnd(Box::new(record.clone())));
        epochs.push(record);
    }
    let parameters = run.model.init(&base).num_params();
    Ok(TrainSummary { run: run.dir.clone(), epochs, baselines, parameters, gflops: run.model.flops() / 1e9 })
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

/// Validation loss and metrics of `model` (in validation mode) on `samples`.
pub fn evaluate(
    model: &Model,
    set: &Arc<LabelSet>,
    samples: &[SampleRef],
    config: &TrainConfig,
    device: &Device,
) -> Result<(LossParts, Metrics)> {
    let times = &set.contract().plan_times_secs;
    let mut acc = MetricsAccumulator::new(times);
    let mut sum = LossParts::default();
    let mut weight = 0usize;
    let batches = Batches::start(
        set,
        samples,
        PassSpec {
            batch_size: config.batch_size,
            shuffle: None,
            augment: None,
            drop_last: false,
            workers: config.workers(),
        },
    );
    for batch in batches {
        let tensors = BatchTensors::new(&batch, set, device);
        let raw = model.forward_raw(tensors.image.clone(), tensors.speed.clone());
        let (_, parts) = losses(&raw, &tensors, &config.loss)?;
        sum.add(&parts.scaled(batch.size as f64));
        weight += batch.size;
        let depth = to_vec(raw.log_depth.exp())?;
        let plan = to_vec(raw.plan)?;
        let lead = to_vec(raw.lead)?;
        score(&mut acc, &batch, &depth, &plan, &lead, set.plan_steps, true);
    }
    Ok((sum.scaled(1.0 / weight.max(1) as f64), acc.finish()))
}

/// Adds a batch's predictions to `acc`. `lead_logits`: the presence is a
/// logit (from `forward_raw`) rather than a probability.
fn score(
    acc: &mut MetricsAccumulator,
    batch: &Batch,
    depth: &[f32],
    plan: &[f32],
    lead: &[f32],
    steps: usize,
    lead_logits: bool,
) {
    let pixels = batch.depth.len() / batch.size.max(1);
    for b in 0..batch.size {
        acc.depth.add(&depth[b * pixels..(b + 1) * pixels], &batch.depth[b * pixels..(b + 1) * pixels]);
        let valid: Vec<u8> =
            batch.plan_valid[b * steps..(b + 1) * steps].iter().map(|&v| u8::from(v > 0.5)).collect();
        acc.plan.add(
            &plan[b * steps * 3..(b + 1) * steps * 3],
            &batch.plan[b * steps * 3..(b + 1) * steps * 3],
            &valid,
        );
        let mut predicted = [lead[3 * b], lead[3 * b + 1], lead[3 * b + 2]];
        if lead_logits {
            predicted[0] = 1.0 / (1.0 + (-predicted[0]).exp());
        }
        let lead_valid =
            [u8::from(batch.lead_valid[2 * b] > 0.5), u8::from(batch.lead_valid[2 * b + 1] > 0.5)];
        acc.lead.add(&predicted, &batch.lead[3 * b..3 * b + 3], &lead_valid);
    }
}

/// Reads a tensor back as f32s.
pub fn to_vec<const D: usize>(tensor: Tensor<D>) -> Result<Vec<f32>> {
    tensor
        .into_data()
        .try_to_vec::<f32>()
        .map_err(|e| OffboardError::Model(format!("reading a tensor back: {e:?}")))
}

/// A batch as tensors, with the loss masks prepared on the CPU.
struct BatchTensors {
    image: Tensor<4>,
    speed: Tensor<2>,
    log_depth: Tensor<4>,
    depth_mask: Tensor<4>,
    depth_pixels: f32,
    plan: Tensor<3>,
    plan_weight: Tensor<3>,
    plan_entries: f32,
    present: Tensor<1>,
    lead_distance: Tensor<1>,
    distance_mask: Tensor<1>,
    lead_speed: Tensor<1>,
    speed_mask: Tensor<1>,
    lead_counts: [f32; 2],
}

impl BatchTensors {
    fn new(batch: &Batch, set: &LabelSet, device: &Device) -> Self {
        let n = batch.size;
        let [_, h, w] = set.image_shape;
        let [dh, dw] = set.depth_shape;
        let f = set.frames_per_sample;
        let t = set.plan_steps;
        let tensor4 =
            |data: Vec<f32>, shape: [usize; 4]| Tensor::<4>::from_data(TensorData::new(data, shape), device);
        let tensor1 = |data: Vec<f32>| Tensor::<1>::from_data(TensorData::new(data, [n]), device);
        let mask: Vec<f32> =
            batch.depth.iter().map(|&d| f32::from(u8::from(d > 0.0 && d <= DEPTH_CAP_M))).collect();
        let log_depth: Vec<f32> = batch.depth.iter().map(|&d| d.max(1e-3).ln()).collect();
        let plan_weight: Vec<f32> = batch.plan_valid.iter().flat_map(|&v| [v, v, 0.5 * v]).collect();
        let present: Vec<f32> = (0..n).map(|b| f32::from(u8::from(batch.lead[3 * b] >= 0.5))).collect();
        let distance_mask: Vec<f32> = (0..n).map(|b| present[b] * batch.lead_valid[2 * b]).collect();
        let speed_mask: Vec<f32> = (0..n).map(|b| present[b] * batch.lead_valid[2 * b + 1]).collect();
        Self {
            image: tensor4(batch.image.clone(), [n, 3 * f, h, w]),
            speed: Tensor::<2>::from_data(TensorData::new(batch.speed.clone(), [n, 1]), device),
            depth_pixels: mask.iter().sum(),
            depth_mask: tensor4(mask, [n, 1, dh, dw]),
            log_depth: tensor4(log_depth, [n, 1, dh, dw]),
            plan: Tensor::<3>::from_data(TensorData::new(batch.plan.clone(), [n, t, 3]), device),
            plan_entries: plan_weight.iter().sum(),
            plan_weight: Tensor::<3>::from_data(TensorData::new(plan_weight, [n, t, 3]), device),
            lead_counts: [distance_mask.iter().sum(), speed_mask.iter().sum()],
            present: tensor1(present),
            lead_distance: tensor1((0..n).map(|b| batch.lead[3 * b + 1]).collect()),
            distance_mask: tensor1(distance_mask),
            lead_speed: tensor1((0..n).map(|b| batch.lead[3 * b + 2]).collect()),
            speed_mask: tensor1(speed_mask),
        }
    }
}

/// Huber (delta 1) of `x`, elementwise.
fn huber(x: Tensor<1>) -> Tensor<1> {
    let r = x.abs();
    let c = r.clone().clamp_max(1.0);
    c.clone().powf_scalar(2.0).mul_scalar(0.5) + (r - c)
}

fn losses(raw: &RawOutput, t: &BatchTensors, weights: &LossWeights) -> Result<(Tensor<1>, LossParts)> {
    let depth = ((raw.log_depth.clone() - t.log_depth.clone()).abs() * t.depth_mask.clone())
        .sum()
        .div_scalar(t.depth_pixels.max(1.0));
    let plan = ((raw.plan.clone() - t.plan.clone()).abs() * t.plan_weight.clone())
        .sum()
        .div_scalar(t.plan_entries.max(1.0));
    let [n, _] = raw.lead.dims();
    let logit = raw.lead.clone().slice([0..n, 0..1]).reshape([n]);
    // Binary cross-entropy on the logit, in its overflow-free form.
    let bce = relu(logit.clone()) - logit.clone() * t.present.clone() + logit.abs().neg().exp().log1p();
    let distance = raw.lead.clone().slice([0..n, 1..2]).reshape([n]);
    let speed = raw.lead.clone().slice([0..n, 2..3]).reshape([n]);
    let distance_loss = (huber((distance - t.lead_distance.clone()).div_scalar(10.0))
        * t.distance_mask.clone())
    .sum()
    .div_scalar(t.lead_counts[0].max(1.0));
    let speed_loss = (huber((speed - t.lead_speed.clone()).div_scalar(2.0)) * t.speed_mask.clone())
        .sum()
        .div_scalar(t.lead_counts[1].max(1.0));
    let lead = bce.mean() + distance_loss + speed_loss;
    let total = depth.clone().mul_scalar(weights.depth)
        + plan.clone().mul_scalar(weights.plan)
        + lead.clone().mul_scalar(weights.lead);
    let scalar =
        |x: Tensor<1>| -> Result<f64> { Ok(f64::from(to_vec(x)?.first().copied().unwrap_or(f32::NAN))) };
    let parts = LossParts {
        total: scalar(total.clone())?,
        depth: scalar(depth)?,
        plan: scalar(plan)?,
        lead: scalar(lead)?,
    };
    if !parts.total.is_finite() {
        return Err(OffboardError::Model(format!(
            "the training loss is not finite ({parts:?}); lower learning_rate in the config"
        )));
    }
    Ok((total, parts))
}

/// The files of one run.
struct RunFolder {
    dir: PathBuf,
    config: TrainConfig,
    contract: ModelContract,
    model: ModelConfig,
    split: Split,
}

impl RunFolder {
    fn prepare(out: &Path, labels: &Path, config: Option<&TrainConfig>, resume: bool) -> Result<Self> {
        let config_path = out.join("config.toml");
        let existing = config_path.exists();
        let io = |path: &Path| {
            let path = path.to_path_buf();
            move |e: std::io::Error| OffboardError::run(&path, e.to_string())
        };
        if existing && !resume {
            return Err(OffboardError::run(
                out,
                "already holds a training run; add --resume to continue it, or choose another --out",
            ));
        }
        if existing {
            let saved = TrainConfig::load(&config_path)?;
            if let Some(given) = config {
                let mut comparable = given.clone();
                comparable.epochs = saved.epochs;
                if comparable != saved {
                    return Err(OffboardError::run(
                        &config_path,
                        "--config differs from the run's config in more than `epochs`; resume without --config, or start a new run",
                    ));
                }
            }
            let given = config;
            let mut config = saved;
            if let Some(given) = given
                && given.epochs != config.epochs
            {
                config.epochs = given.epochs;
                let toml = toml::to_string(&config).map_err(|e| OffboardError::Config(e.to_string()))?;
                write_atomic(&config_path, toml.as_bytes())?;
            }
            let read = |name: &str| -> Result<String> {
                let path = out.join(name);
                std::fs::read_to_string(&path).map_err(io(&path))
            };
            let parse = |name: &str, e: serde_json::Error| {
                OffboardError::run(out.join(name), format!("{e}; the run is damaged: start a new one"))
            };
            let contract: ModelContract =
                serde_json::from_str(&read("contract.json")?).map_err(|e| parse("contract.json", e))?;
            let model: ModelConfig =
                serde_json::from_str(&read("model.json")?).map_err(|e| parse("model.json", e))?;
            let split: Split =
                serde_json::from_str(&read("split.json")?).map_err(|e| parse("split.json", e))?;
            return Ok(Self { dir: out.to_path_buf(), config, contract, model, split });
        }
        let config = config.cloned().unwrap_or_default();
        let set = LabelSet::open(labels, None)?;
        let contract = set.contract().clone();
        let model = ModelConfig::preset(&config.preset, &contract)?;
        let split = set.split(config.validation_fraction, config.seed)?;
        std::fs::create_dir_all(out).map_err(io(out))?;
        write_atomic(&out.join("contract.json"), to_json(&contract)?.as_bytes())?;
        write_atomic(&out.join("model.json"), to_json(&model)?.as_bytes())?;
        write_atomic(&out.join("split.json"), to_json(&split)?.as_bytes())?;
        let source = Source {
            labels: std::path::absolute(labels).unwrap_or_else(|_| labels.to_path_buf()),
            training_data_digest: training_data_digest(&set, &split),
        };
        write_atomic(&out.join(SOURCE_FILE), to_json(&source)?.as_bytes())?;
        let toml = toml::to_string(&config).map_err(|e| OffboardError::Config(e.to_string()))?;
        write_atomic(&config_path, toml.as_bytes())?;
        Ok(Self { dir: out.to_path_buf(), config, contract, model, split })
    }

    fn state(&self) -> Result<RunState> {
        let path = self.dir.join(STATE_FILE);
        if !path.exists() {
            return Ok(RunState::default());
        }
        let text = std::fs::read_to_string(&path).map_err(|e| OffboardError::run(&path, e.to_string()))?;
        serde_json::from_str(&text)
            .map_err(|e| OffboardError::run(&path, format!("{e}; the run is damaged: start a new one")))
    }

    /// The epochs recorded so far (only those the state file covers: an
    /// epoch whose checkpoint was not completed is trained again).
    fn records(&self) -> Result<Vec<EpochRecord>> {
        let path = self.dir.join(METRICS_FILE);
        let done = self.state()?.epochs_done;
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

    fn baselines(&self, set: &LabelSet, train: &[usize], validation: &[SampleRef]) -> Result<Baselines> {
        let path = self.dir.join("baselines.json");
        if let Ok(text) = std::fs::read_to_string(&path)
            && let Ok(baselines) = serde_json::from_str(&text)
        {
            return Ok(baselines);
        }
        let mean_depth_m = set.mean_depth(train);
        let times = &set.contract().plan_times_secs;
        let mut acc = MetricsAccumulator::new(times);
        for chunk in validation.chunks(64) {
            let batch = set.batch(chunk, None);
            let depth = vec![mean_depth_m; batch.depth.len()];
            let plan: Vec<f32> = batch
                .speed
                .iter()
                .flat_map(|&v| times.iter().flat_map(move |&t| [v * t as f32, 0.0, v]))
                .collect();
            let lead = vec![0.0; 3 * batch.size];
            score(&mut acc, &batch, &depth, &plan, &lead, set.plan_steps, false);
        }
        let baselines = Baselines { metrics: acc.finish(), mean_depth_m };
        write_atomic(&path, to_json(&baselines)?.as_bytes())?;
        Ok(baselines)
    }

    /// Writes the epoch's checkpoint, then its metrics line, then the best
    /// model if it is, and last the state file that makes it the newest.
    fn save_epoch(
        &self,
        model: &Model,
        optim: &ModuleOptimizer,
        state: &mut RunState,
        record: &EpochRecord,
    ) -> Result<()> {
        let name = format!("checkpoints/epoch-{:04}", record.epoch);
        let dir = self.dir.join(&name);
        let tmp = self.dir.join(format!("{name}.tmp"));
        let io = |path: &Path, e: &dyn std::fmt::Display| OffboardError::run(path, e.to_string());
        let _ = std::fs::remove_dir_all(&tmp);
        std::fs::create_dir_all(&tmp).map_err(|e| io(&tmp, &e))?;
        model.valid().into_record().save(tmp.join("model.bpk")).map_err(|e| io(&tmp, &e))?;
        optim.save(tmp.join("optimizer.bpk")).map_err(|e| io(&tmp, &e))?;
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::rename(&tmp, &dir).map_err(|e| io(&dir, &e))?;

        let metrics = self.dir.join(METRICS_FILE);
        let mut lines: Vec<String> = self.records()?.iter().map(to_line).collect::<Result<_>>()?;
        lines.push(to_line(record)?);
        write_atomic(&metrics, (lines.join("\n") + "\n").as_bytes())?;

        let loss = record.validation_loss.total;
        if state.best_loss.is_none_or(|best| loss < best) {
            let best = self.dir.join("best");
            std::fs::create_dir_all(&best).map_err(|e| io(&best, &e))?;
            let tmp = best.join("model.bpk.tmp");
            model.valid().into_record().save(&tmp).map_err(|e| io(&tmp, &e))?;
            std::fs::rename(&tmp, best.join("model.bpk")).map_err(|e| io(&best, &e))?;
            write_atomic(&best.join("metrics.json"), to_json(record)?.as_bytes())?;
            state.best_loss = Some(loss);
            state.best_epoch = Some(record.epoch);
        }
        let previous = state.checkpoint.replace(name);
        state.epochs_done = record.epoch;
        write_atomic(&self.dir.join(STATE_FILE), to_json(state)?.as_bytes())?;
        // Keep the newest two checkpoints.
        if let Some(previous) = previous
            && record.epoch >= 3
        {
            let older = self.dir.join(format!("checkpoints/epoch-{:04}", record.epoch - 2));
            if older != self.dir.join(previous) {
                let _ = std::fs::remove_dir_all(older);
            }
        }
        Ok(())
    }
}

fn to_json<T: Serialize>(value: &T) -> Result<String> {
    serde_json::to_string_pretty(value).map_err(|e| OffboardError::Model(format!("serialising: {e}")))
}

fn to_line(record: &EpochRecord) -> Result<String> {
    serde_json::to_string(record).map_err(|e| OffboardError::Model(format!("serialising: {e}")))
}

/// Writes `bytes` to `path` through a temporary file and a rename, so a
/// crash leaves the old file or the new one, never half of one.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, bytes).map_err(|e| OffboardError::run(&tmp, e.to_string()))?;
    std::fs::rename(&tmp, path).map_err(|e| OffboardError::run(path, e.to_string()))
}

/// A trained run, loaded for export.
#[derive(Debug)]
pub struct TrainedRun {
    /// The best (or newest) weights, on the CPU.
    pub model: Model,
    /// Its architecture.
    pub config: ModelConfig,
    /// The training config.
    pub train: TrainConfig,
    /// The labels' contract.
    pub contract: ModelContract,
    /// Training and validation drives.
    pub split: Split,
    /// The labels' folder and digest.
    pub source: Source,
    /// The epoch the weights come from, with its validation metrics.
    pub record: Option<EpochRecord>,
}

/// The run's model, contract and best (or newest) weights, for export.
pub fn load_run(run: &Path) -> Result<TrainedRun> {
    let read = |name: &str| -> Result<String> {
        let path = run.join(name);
        std::fs::read_to_string(&path).map_err(|e| {
            OffboardError::run(&path, format!("{e}; is this a run folder made by `nines train`?"))
        })
    };
    let parse = |name: &str, e: serde_json::Error| OffboardError::run(run.join(name), e.to_string());
    let contract: ModelContract =
        serde_json::from_str(&read("contract.json")?).map_err(|e| parse("contract.json", e))?;
    let config: ModelConfig =
        serde_json::from_str(&read("model.json")?).map_err(|e| parse("model.json", e))?;
    let split: Split = serde_json::from_str(&read("split.json")?).map_err(|e| parse("split.json", e))?;
    let best = run.join("best/model.bpk");
    let state: RunState = serde_json::from_str(&read(STATE_FILE)?).map_err(|e| parse(STATE_FILE, e))?;
    let (weights, record) = if best.is_file() {
        let record = read("best/metrics.json").ok().and_then(|t| serde_json::from_str(&t).ok());
        (best, record)
    } else if let Some(checkpoint) = &state.checkpoint {
        (run.join(checkpoint).join("model.bpk"), None)
    } else {
        return Err(OffboardError::run(run, "has no trained weights yet; let `nines train` finish an epoch"));
    };
    let model = load_weights(config.init(&Device::flex()), &weights)?;
    let source: Source = serde_json::from_str(&read(SOURCE_FILE)?).map_err(|e| parse(SOURCE_FILE, e))?;
    let train = TrainConfig::load(&run.join("config.toml"))?;
    Ok(TrainedRun { model, config, train, contract, split, source, record })
}
