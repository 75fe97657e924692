//! Steady-state training steps on synthetic batches of the contract's
//! shapes (`nines bench train`): the figure set next to the PyTorch peer
//! (`scripts/peers/torch_model.py`), which builds the same network and
//! runs the same step: the batch uploaded from host memory, the forward
//! pass, the losses of [`super::loss`] read back, backward, gradient-norm
//! clipping and AdamW. Data loading is left out on both sides.

use std::time::Instant;

use burn::optim::GradientsParams;
use burn::prelude::*;
use nines_datasets::contract::ModelContract;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Serialize;

use super::loss::{BatchTensors, losses};
use super::{TrainConfig, TrainDevice, optimizer};
use crate::Result;
use crate::data::Batch;
use crate::labels::ShardLayout;
use crate::model::ModelConfig;

/// What one measurement runs.
#[derive(Debug, Clone)]
pub struct StepBench {
    /// Model preset ("tiny" or "default").
    pub preset: String,
    /// Samples per step.
    pub batch_size: usize,
    /// Untimed steps first (kernel selection, allocator warm-up).
    pub warmup: usize,
    /// Timed steps.
    pub steps: usize,
}

/// One measurement (a row of docs/PERFORMANCE.md's table).
#[derive(Debug, Clone, Serialize)]
pub struct StepTiming {
    /// "nines (burn)".
    pub framework: String,
    /// The backend and device, in words.
    pub device: String,
    /// Model preset.
    pub preset: String,
    /// Samples per step.
    pub batch_size: usize,
    /// Timed steps.
    pub steps: usize,
    /// Untimed steps before them.
    pub warmup: usize,
    /// Network parameters.
    pub parameters: usize,
    /// Images per second over the timed steps.
    pub images_per_sec: f64,
    /// Median step, ms.
    pub step_ms_median: f64,
}

/// Times `spec.steps` training steps after `spec.warmup` on `device`.
pub fn bench_steps(spec: &StepBench, device: TrainDevice) -> Result<StepTiming> {
    let contract = ModelContract::default();
    let config = ModelConfig::preset(&spec.preset, &contract)?;
    let layout = ShardLayout::of_contract(&contract);
    let frames = contract.input.frames.max(1) as usize;
    let (base, described) = device.open()?;
    base.seed(0);
    let autodiff = base.autodiff();
    let mut model = config.init(&autodiff);
    let parameters = model.num_params();
    // Every training default: the optimizer, the learning rate and the loss weights.
    let train = TrainConfig::default();
    let mut optim = optimizer(&train);
    let batch = synthetic_batch(spec.batch_size, &layout, frames, 0);
    let mut step_ms = Vec::with_capacity(spec.steps);
    let mut timed = None;
    for step in 0..spec.warmup + spec.steps {
        if step == spec.warmup {
            timed = Some(Instant::now());
        }
        let started = Instant::now();
        let tensors = BatchTensors::new(&batch, (&layout, frames), train.loss.plan_lateral, &autodiff);
        let raw = model.forward_raw(tensors.image.clone(), tensors.speed.clone());
        let (loss, _) = losses(&raw, &tensors, &train.loss)?;
        let grads = GradientsParams::from_grads(loss.backward(), &model);
        model = optim.step(train.learning_rate, model, grads);
        if step >= spec.warmup {
            step_ms.push(started.elapsed().as_secs_f64() * 1e3);
        }
    }
    let secs = timed.map_or(0.0, |t| t.elapsed().as_secs_f64()).max(1e-9);
    step_ms.sort_by(f64::total_cmp);
    Ok(StepTiming {
        framework: "nines (burn)".to_owned(),
        device: described,
        preset: spec.preset.clone(),
        batch_size: spec.batch_size,
        steps: spec.steps,
        warmup: spec.warmup,
        parameters,
        images_per_sec: (spec.batch_size * spec.steps) as f64 / secs,
        step_ms_median: step_ms.get(step_ms.len() / 2).copied().unwrap_or(f64::NAN),
    })
}

/// A batch with the contract's shapes and plausible values: images of unit
/// variance, depth over the lidar's range with a third of pixels unlabelled,
/// plans along the road, a lead in half the samples.
#[must_use]
pub fn synthetic_batch(size: usize, layout: &ShardLayout, frames: usize, seed: u64) -> Batch {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let [c, h, w] = layout.image;
    let [dh, dw] = layout.depth;
    let t = layout.plan_steps;
    let mut fill =
        |n: usize, f: &mut dyn FnMut(&mut ChaCha8Rng) -> f32| (0..n).map(|_| f(&mut rng)).collect();
    Batch {
        size,
        image: fill(size * c * frames * h * w, &mut |r| r.random_range(-1.7..1.7f32)),
        speed: fill(size, &mut |r| r.random_range(0.0..25.0f32)),
        depth: fill(size * dh * dw, &mut |r| {
            if r.random_bool(0.33) { 0.0 } else { r.random_range(1.0..80.0f32) }
        }),
        plan: fill(size * t * 3, &mut |r| r.random_range(-2.0..40.0f32)),
        plan_valid: vec![1.0; size * t],
        lead: (0..size).flat_map(|b| if b % 2 == 0 { [1.0, 25.0, -1.0] } else { [0.0, 0.0, 0.0] }).collect(),
        lead_valid: vec![1.0; size * 2],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tiny_step_bench_runs_on_the_cpu_and_counts_what_it_timed() -> Result<()> {
        let spec = StepBench { preset: "tiny".into(), batch_size: 2, warmup: 1, steps: 2 };
        let timing = bench_steps(&spec, TrainDevice::Cpu)?;
        assert_eq!((timing.steps, timing.batch_size, timing.warmup), (2, 2, 1));
        assert!(timing.images_per_sec.is_finite() && timing.images_per_sec > 0.0, "{timing:?}");
        assert!(timing.step_ms_median > 0.0);
        assert!(timing.device.contains("flex"), "{}", timing.device);
        let params =
            ModelConfig::preset("tiny", &ModelContract::default())?.init(&Device::flex()).num_params();
        assert_eq!(timing.parameters, params);
        Ok(())
    }
}
