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

pub mod bench;
mod config;
mod loss;
mod run;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use burn::module::Module;
use burn::optim::{AdamWConfig, GradientsParams, ModuleOptimizer};
use burn::prelude::*;
use serde::{Deserialize, Serialize};

pub use config::{LossWeights, TrainConfig, TrainDevice, gpu_backends};
pub use loss::LossParts;
pub use run::{
    RunFolder, RunState, Source, TrainedRun, load_run, load_weights, training_data_digest, write_atomic,
};

use crate::data::{Augment, Batch, Batches, LabelSet, PassSpec, SampleRef};
use crate::metrics::{Metrics, MetricsAccumulator, PlanMetrics};
use crate::model::{Model, to_vec};
use crate::{OffboardError, Result};
use loss::{BatchTensors, losses};

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
    /// The plan on the validation frames seen from moved viewpoints
    /// ([`moved_check`]): whether the model steers back to its path
    /// (None: the labels cannot be moved).
    #[serde(default)]
    pub moved_plan: Option<PlanMetrics>,
    /// The weighted plan loss on those moved frames.
    #[serde(default)]
    pub moved_loss: Option<f64>,
    /// Training images (samples) per second this epoch.
    pub images_per_sec: f64,
    /// Learning rate at the epoch's end.
    pub learning_rate: f64,
}

impl EpochRecord {
    /// What picks the best epoch: the validation loss, plus the plan loss
    /// on moved frames where there are some (a model that only holds the
    /// recorded path scores well on the first and badly on the second).
    #[must_use]
    pub fn score(&self) -> f64 {
        self.validation_loss.total + self.moved_loss.unwrap_or(0.0)
    }
}

/// The moves of the validation check: every validation frame seen from a
/// car up to 0.75 m aside and 4 degrees turned (seeded, so every epoch and
/// every run sees the same), no photometric change; the plan label asks
/// for the recovery the training config asks for.
#[must_use]
pub fn moved_check(config: &TrainConfig) -> Augment {
    Augment {
        seed: 0x6d6f_7665_645f_7631,
        photometric: false,
        viewpoint: crate::viewpoint::ViewpointAugment {
            probability: 1.0,
            max_shift_m: 0.75,
            max_yaw_deg: 4.0,
            recovery_time_s: config.viewpoint.recovery_time_s,
        },
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
    /// The constant-velocity plan on the moved validation frames: what a
    /// model that ignores where it stands scores there.
    #[serde(default)]
    pub moved_plan: Option<PlanMetrics>,
}

/// What training reports as it goes.
#[derive(Debug, Clone)]
pub enum Progress {
    /// Training is about to start (or resume) with this model.
    Model {
        /// Preset name.
        preset: String,
        /// Parameters.
        parameters: usize,
        /// GFLOPs per image.
        gflops: f64,
        /// The backend and device, in words ("burn LibTorch, CUDA device 0 of 1").
        device: String,
    },
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

/// How a training run starts.
#[derive(Debug, Clone, Copy)]
pub enum Start<'a> {
    /// From freshly initialised weights.
    Fresh,
    /// From the best weights of this run (same architecture and contract: a
    /// data engine's next round).
    From(&'a Path),
    /// Continuing the run in `out` from its last checkpoint.
    Resume,
}

/// Trains (or resumes) the run in `out` on the labels in the folders `labels`.
pub fn train(
    labels: &[PathBuf],
    config: Option<&TrainConfig>,
    out: &Path,
    device: TrainDevice,
    start: Start<'_>,
    on_progress: &mut dyn FnMut(&Progress),
) -> Result<TrainSummary> {
    let (base, device) = device.open()?;
    let set = LabelSet::open_all(labels, None)?;
    let (init, resume) = match start {
        Start::Fresh => (None, false),
        Start::From(run) => (Some(run), false),
        Start::Resume => (None, true),
    };
    let run = RunFolder::prepare(out, &set, config, init, resume)?;
    // A warm start is checked before any epoch, so a mismatch is refused at once.
    let init_weights = init.map(|dir| run.warm_start_from(dir)).transpose()?;
    set.check_contract(&run.contract)?;
    let set = Arc::new(set);
    let config = run.config.clone();
    let (train_drives, train_samples, validation_samples) = split_samples(&set, &run, labels)?;

    base.seed(config.seed);
    let autodiff = base.clone().autodiff();
    let fresh = run.model.init(&autodiff);
    let mut optim = optimizer(&config);
    let mut state = run.state()?;
    let mut model = if let Some(checkpoint) = &state.checkpoint {
        let dir = run.dir.join(checkpoint);
        optim = optim.load(dir.join("optimizer.bpk")).map_err(|e| {
            OffboardError::run(dir.join("optimizer.bpk"), format!("{e}; delete the run or its state.json"))
        })?;
        load_weights(fresh, &dir.join("model.bpk"))?
    } else if let Some(weights) = &init_weights {
        load_weights(fresh, weights)?
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
    let mut epochs = run.records(state.epochs_done)?;

    let (parameters, gflops) = (model.num_params(), run.model.flops() / 1e9);
    on_progress(&Progress::Model { preset: config.preset.clone(), parameters, gflops, device });
    for epoch in state.epochs_done + 1..=config.epochs {
        on_progress(&Progress::EpochStart { epoch, epochs: config.epochs, steps: per_epoch });
        let epoch_seed = config.seed ^ (epoch as u64).wrapping_mul(0x2545_f491_4f6c_dd1d);
        let batches = Batches::start(
            &set,
            &train_samples,
            PassSpec {
                batch_size: config.batch_size,
                shuffle: Some(epoch_seed),
                augment: config.augment.then_some(Augment {
                    seed: epoch_seed.rotate_left(17),
                    photometric: true,
                    viewpoint: config.viewpoint,
                }),
                drop_last: true,
                workers,
            },
        );
        let started = Instant::now();
        let mut sum = LossParts::default();
        let mut images = 0usize;
        let mut lr = 0.0;
        for (i, batch) in batches.take(per_epoch).enumerate() {
            let tensors = BatchTensors::new(&batch, set.shape(), config.loss.plan_lateral, &autodiff);
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
        let (validation_loss, validation, moved_loss, moved_plan) =
            validate(&model.valid(), &set, &validation_samples, &config, &base)?;
        let record = EpochRecord {
            epoch,
            steps: state.steps,
            train_loss,
            validation_loss,
            validation,
            moved_plan,
            moved_loss,
            images_per_sec,
            learning_rate: lr,
        };
        epochs.push(record.clone());
        run.save_epoch(&model, &optim, &mut state, &epochs)?;
        on_progress(&Progress::EpochEnd(Box::new(record)));
    }
    Ok(TrainSummary { run: run.dir.clone(), epochs, baselines, parameters, gflops })
}

/// AdamW with the config's weight decay and gradient-norm clip (the
/// learning rate is given at each step).
pub(crate) fn optimizer(config: &TrainConfig) -> ModuleOptimizer {
    AdamWConfig::new()
        .with_weight_decay(config.weight_decay as f32)
        .with_grad_clipping(Some(burn::grad_clipping::GradientClippingConfig::Norm(config.grad_clip)))
        .init()
}

/// The run's training drives, its training samples (recovery states drawn
/// `recovery_weight` times, the same draw on a resume) and its validation
/// samples; refused when there is not a batch to train on.
fn split_samples(
    set: &LabelSet,
    run: &RunFolder,
    labels: &[PathBuf],
) -> Result<(Vec<usize>, Vec<SampleRef>, Vec<SampleRef>)> {
    let config = &run.config;
    let train_drives = set.drive_indices(&run.split.train)?;
    let validation_drives = set.drive_indices(&run.split.validation)?;
    let train_samples = set.weighted(&set.samples(&train_drives), config.recovery_weight, config.seed);
    let validation_samples = set.samples(&validation_drives);
    if train_samples.len() < config.batch_size || validation_samples.is_empty() {
        return Err(OffboardError::labels(
            labels[0].join(crate::labels::INDEX_FILE),
            format!(
                "{} training and {} validation samples (with their stacked history); training needs at least one batch ({}) and one validation sample: distil more or longer drives, or lower batch_size",
                train_samples.len(),
                validation_samples.len(),
                config.batch_size
            ),
        ));
    }
    Ok((train_drives, train_samples, validation_samples))
}

/// An epoch's validation: loss and metrics on the recorded frames, then
/// (where the labels can be moved) the weighted plan loss and the plan
/// metrics on the same frames moved by [`moved_check`].
fn validate(
    model: &Model,
    set: &Arc<LabelSet>,
    samples: &[SampleRef],
    config: &TrainConfig,
    device: &Device,
) -> Result<(LossParts, Metrics, Option<f64>, Option<PlanMetrics>)> {
    let (loss, metrics) = evaluate(model, set, samples, config, None, device)?;
    if !set.moves_viewpoints() {
        return Ok((loss, metrics, None, None));
    }
    let (moved_loss, moved) = evaluate(model, set, samples, config, Some(moved_check(config)), device)?;
    Ok((loss, metrics, Some(moved_loss.plan * f64::from(config.loss.plan)), Some(moved.plan)))
}

/// Validation loss and metrics of `model` (in validation mode) on
/// `samples`, as recorded or `moved` (see [`moved_check`]).
pub fn evaluate(
    model: &Model,
    set: &Arc<LabelSet>,
    samples: &[SampleRef],
    config: &TrainConfig,
    moved: Option<Augment>,
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
            augment: moved,
            drop_last: false,
            workers: config.workers(),
        },
    );
    for batch in batches {
        let tensors = BatchTensors::new(&batch, set.shape(), config.loss.plan_lateral, device);
        let raw = model.forward_raw(tensors.image.clone(), tensors.speed.clone());
        let (_, parts) = losses(&raw, &tensors, &config.loss)?;
        sum.add(&parts.scaled(batch.size as f64));
        weight += batch.size;
        let depth = to_vec(raw.log_depth.exp())?;
        let plan = to_vec(raw.plan)?;
        let lead = to_vec(raw.lead)?;
        score(&mut acc, &batch, &depth, &plan, &lead, set.layout.plan_steps, true);
    }
    Ok((sum.scaled(1.0 / weight.max(1) as f64), acc.finish()))
}

/// Adds a batch's predictions to `acc`. `lead_logits`: the presence is a
/// logit (from `forward_raw`) rather than a probability.
pub(crate) fn score(
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
