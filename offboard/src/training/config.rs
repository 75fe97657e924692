//! The training config file and the device training runs on.

use std::path::Path;

use burn::prelude::*;
use serde::{Deserialize, Serialize};

use crate::viewpoint::ViewpointAugment;
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
    /// Augmentation of training batches: photometric, and the viewpoint
    /// moves of `[viewpoint]`.
    pub augment: bool,
    /// Viewpoint augmentation: a share of training frames seen from a car
    /// moved sideways and turned, with the plan back to the recorded path
    /// (only with `augment`; see `nines_offboard::viewpoint`).
    pub viewpoint: ViewpointAugment,
    /// Batch-assembly threads (0: one per core, at most 4).
    pub workers: usize,
    /// How often a training frame showing a recovery state (the label
    /// index's `recovering_frames`: off the lane centre, turned, or a
    /// safety driver driving) is drawn per epoch, relative to the others:
    /// 2.0 draws it twice (a fraction draws it once more with that chance).
    pub recovery_weight: f64,
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
    /// Weight of a plan point's lateral (y) error against its longitudinal
    /// (x) one: steering follows y, and a few decimetres of it are the
    /// difference between holding the lane and leaving it.
    pub plan_lateral: f32,
}

impl Default for LossWeights {
    fn default() -> Self {
        Self { depth: 1.0, plan: 1.0, lead: 0.5, plan_lateral: 1.0 }
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
            viewpoint: ViewpointAugment::default(),
            workers: 0,
            recovery_weight: 1.0,
            loss: LossWeights::default(),
        }
    }
}

impl TrainConfig {
    /// Reads a TOML config, naming the file and the key on error.
    pub fn load(path: &Path) -> Result<Self> {
        let text =
            std::fs::read_to_string(path).map_err(OffboardError::io(path, "reading the training config"))?;
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
        if let Some((key, why)) = self.viewpoint.problem() {
            return bad(key, why);
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
        if !(self.recovery_weight.is_finite() && (1.0..=10.0).contains(&self.recovery_weight)) {
            return bad("recovery_weight", "must be in 1..=10 (1: recovery states drawn like any frame)");
        }
        if !(self.loss.plan_lateral.is_finite() && self.loss.plan_lateral > 0.0) {
            return bad("loss.plan_lateral", "must be positive");
        }
        for (key, weight) in
            [("loss.depth", self.loss.depth), ("loss.plan", self.loss.plan), ("loss.lead", self.loss.lead)]
        {
            if !(weight.is_finite() && (0.0..=100.0).contains(&weight)) {
                return bad(
                    key,
                    &format!("{weight}: must be a number in 0..=100 (0 turns the head's loss off)"),
                );
            }
        }
        if self.loss.depth + self.loss.plan + self.loss.lead <= 0.0 {
            return bad("loss", "every weight is 0: nothing would be learnt");
        }
        if !(self.weight_decay.is_finite() && (0.0..1.0).contains(&self.weight_decay)) {
            return bad("weight_decay", "must be in [0, 1)");
        }
        if !(self.grad_clip.is_finite() && self.grad_clip > 0.0) {
            return bad("grad_clip", "must be a positive number");
        }
        if !matches!(self.preset.as_str(), "tiny" | "default") {
            return bad("preset", "must be \"tiny\" or \"default\"");
        }
        Ok(())
    }

    pub(crate) fn workers(&self) -> usize {
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

/// Where training runs: a device and the burn backend that drives it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TrainDevice {
    /// burn's `flex` CPU backend, every core.
    Cpu,
    /// The first GPU, through the GPU backend this build has: LibTorch's
    /// CUDA (cargo feature `torch`) if built, else Vulkan (feature `gpu`).
    Gpu,
    /// LibTorch on the CPU (feature `torch`): the LibTorch code path on a
    /// machine without a GPU (tests, a resume check).
    LibTorchCpu,
    /// LibTorch's CUDA device 0 (feature `torch`).
    LibTorchCuda,
    /// burn's Vulkan backend (wgpu) on the default adapter (feature `gpu`).
    Vulkan,
}

/// The GPU training backends this build has, for messages ("libtorch, vulkan", or "none").
#[must_use]
pub fn gpu_backends() -> &'static str {
    match (cfg!(feature = "torch"), cfg!(feature = "gpu")) {
        (true, true) => "libtorch (CUDA), vulkan",
        (true, false) => "libtorch (CUDA)",
        (false, true) => "vulkan",
        (false, false) => "none",
    }
}

impl TrainDevice {
    /// The burn device (without autodiff) and what it is, in words
    /// ("LibTorch, CUDA device 0 of 1"); refused with what to do when the
    /// backend was not built or finds no device.
    pub fn open(self) -> Result<(Device, String)> {
        match self {
            Self::Cpu => {
                let threads = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
                Ok((Device::flex(), format!("burn flex, CPU ({threads} threads)")))
            }
            Self::LibTorchCpu => libtorch(false),
            Self::LibTorchCuda => libtorch(true),
            Self::Vulkan => vulkan(),
            Self::Gpu if cfg!(feature = "torch") => libtorch(true),
            Self::Gpu if cfg!(feature = "gpu") => vulkan(),
            Self::Gpu => Err(OffboardError::Config(
                "--device gpu: this nines was built without a GPU training backend; build it with \
                 `--features torch` (LibTorch, CUDA) or `--features gpu` (Vulkan): docs/TRAINING.md, \"GPU training\""
                    .into(),
            )),
        }
    }
}

// burn 0.22.1 marks burn-tch deprecated in favour of its CubeCL backends;
// of those, CUDA cannot build from crates alone (cubecl-llvm downloads
// LLVM), so LibTorch stays the CUDA route until it can.
#[cfg(feature = "torch")]
#[allow(deprecated, reason = "burn-tch is the CUDA route that builds here; see above")]
fn libtorch(cuda: bool) -> Result<(Device, String)> {
    if !cuda {
        return Ok((Device::libtorch(), "burn LibTorch, CPU".to_owned()));
    }
    let count = tch::Cuda::device_count();
    if count <= 0 {
        return Err(OffboardError::Config(
            "--device gpu: LibTorch found no CUDA device. Check that `nvidia-smi` lists a GPU and that \
             LD_LIBRARY_PATH names the torch/lib folder of a CUDA build of PyTorch (the one nines was \
             built against, or the same version); docs/TRAINING.md, \"GPU training\""
                .into(),
        ));
    }
    Ok((Device::libtorch_cuda(0), format!("burn LibTorch, CUDA device 0 of {count}")))
}

#[cfg(not(feature = "torch"))]
fn libtorch(_cuda: bool) -> Result<(Device, String)> {
    Err(OffboardError::Config(
        "--backend libtorch: this nines was built without LibTorch; build it with `--features torch` \
         and LIBTORCH set (docs/TRAINING.md, \"GPU training\")"
            .into(),
    ))
}

#[cfg(feature = "gpu")]
fn vulkan() -> Result<(Device, String)> {
    let device = Device::vulkan(burn::tensor::DeviceKind::DefaultDevice);
    // wgpu panics when it finds no adapter (no Vulkan loader or ICD): one
    // tiny operation first turns that into an error that says what to check.
    let probe = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        Tensor::<1>::zeros([1], &device).into_data()
    }));
    if probe.is_err() {
        return Err(OffboardError::Config(
            "--backend vulkan: burn's Vulkan backend found no GPU adapter. Check that libvulkan.so.1 \
             loads and that an ICD is installed (`vulkaninfo --summary`, VK_ICD_FILENAMES); \
             docs/TRAINING.md, \"GPU training\""
                .into(),
        ));
    }
    Ok((device, "burn Vulkan (wgpu), default adapter".to_owned()))
}

#[cfg(not(feature = "gpu"))]
fn vulkan() -> Result<(Device, String)> {
    Err(OffboardError::Config(
        "--backend vulkan: this nines was built without burn's Vulkan backend; build it with \
         `--features gpu` (docs/TRAINING.md, \"GPU training\")"
            .into(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(text: &str) -> std::result::Result<(), String> {
        let config: TrainConfig = toml::from_str(text).map_err(|e| e.to_string())?;
        config.check(Path::new("train.toml")).map_err(|e| e.to_string())
    }

    #[test]
    fn non_finite_or_out_of_range_numbers_are_refused_with_the_key() {
        assert!(check("preset = \"tiny\"\n").is_ok());
        let err = check("[loss]\ndepth = nan\n").unwrap_err();
        assert!(err.contains("train.toml") && err.contains("loss.depth"), "{err}");
        assert!(check("[loss]\nlead = inf\n").unwrap_err().contains("loss.lead"));
        assert!(
            check("[loss]\ndepth = 0\nplan = 0\nlead = 0\n").unwrap_err().contains("nothing would be learnt")
        );
        assert!(check("grad_clip = nan\n").unwrap_err().contains("grad_clip"));
        assert!(check("weight_decay = -1\n").unwrap_err().contains("weight_decay"));
        assert!(check("learning_rate = nan\n").unwrap_err().contains("learning_rate"));
    }
}
