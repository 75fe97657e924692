//! `nines train`: the camera-only network from label shards (burn).

use std::fmt::Write as _;
use std::path::PathBuf;

use clap::{Args, ValueEnum};
use nines_offboard::training::{Progress, Start, TrainConfig, TrainDevice, TrainSummary, train};

/// Where training runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum TrainDeviceArg {
    /// Every core.
    Cpu,
    /// The first GPU (a build with `--features torch` or `--features gpu`).
    Gpu,
}

/// Which burn backend drives the device.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum BackendArg {
    /// flex on the CPU; on the GPU, LibTorch if built, else Vulkan.
    Auto,
    /// burn's flex (CPU only).
    Flex,
    /// burn's LibTorch backend, CUDA or CPU (feature `torch`).
    Libtorch,
    /// burn's Vulkan backend through wgpu (feature `gpu`).
    Vulkan,
}

/// The training device `--device` and `--backend` name together.
pub fn train_device(device: TrainDeviceArg, backend: BackendArg) -> anyhow::Result<TrainDevice> {
    Ok(match (device, backend) {
        (TrainDeviceArg::Cpu, BackendArg::Auto | BackendArg::Flex) => TrainDevice::Cpu,
        (TrainDeviceArg::Cpu, BackendArg::Libtorch) => TrainDevice::LibTorchCpu,
        (TrainDeviceArg::Gpu, BackendArg::Auto) => TrainDevice::Gpu,
        (TrainDeviceArg::Gpu, BackendArg::Libtorch) => TrainDevice::LibTorchCuda,
        (TrainDeviceArg::Gpu, BackendArg::Vulkan) => TrainDevice::Vulkan,
        (TrainDeviceArg::Cpu, BackendArg::Vulkan) => {
            anyhow::bail!("--backend vulkan runs on a GPU: add --device gpu")
        }
        (TrainDeviceArg::Gpu, BackendArg::Flex) => {
            anyhow::bail!(
                "--backend flex runs on the CPU: use --device cpu, or --backend libtorch|vulkan on a GPU (this build: {})",
                nines_offboard::training::gpu_backends()
            )
        }
    })
}

/// `nines train --help`.
pub(crate) const LONG_ABOUT: &str = "Train the camera-only network (depth, plan, lead) on labels made by \
`nines distill`. Drives are split into training and validation (by drive, never by frame); \
each epoch is validated and written to OUT/metrics.jsonl, with a checkpoint, the best model \
(lowest validation loss) and the baselines (mean depth, constant velocity) beside it. \
--resume continues an interrupted run exactly where its last checkpoint stopped. Several \
--labels folders train as one set (the same contract); --init RUN starts from RUN's best weights \
(the same architecture and contract, else refused), as a data engine's next round does.

The config (TOML) may be as small as `preset = \"tiny\"` and `epochs = 1`. Keys and defaults: \
preset = \"default\" (or \"tiny\"), epochs = 20, batch_size = 16, learning_rate = 2e-3, \
warmup_steps = 100, weight_decay = 1e-4, grad_clip = 5.0, seed = 0, validation_fraction = 0.2, \
steps_per_epoch = 0 (all), augment = true, workers = 0 (auto), recovery_weight = 1.0 (how often \
a frame showing a recovery state is drawn: off the lane centre, turned, or a safety driver \
driving), and [loss] depth = 1.0, plan = 1.0, lead = 0.5, plan_lateral = 1.0 (the plan's lateral \
error against its longitudinal one). An unknown key is an error.";

/// Arguments of `nines train`.
#[derive(Debug, Args)]
pub struct TrainArgs {
    /// Label folders (made by `nines distill`; several train as one set:
    /// `--labels round-0/labels round-1/labels`).
    #[arg(long, required = true, num_args = 1..)]
    pub labels: Vec<PathBuf>,
    /// Training config (TOML); without it, every default.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Run folder (e.g. runs/NAME).
    #[arg(long)]
    pub out: PathBuf,
    /// Where to train.
    #[arg(long, value_enum, default_value = "cpu")]
    pub device: TrainDeviceArg,
    /// The burn backend (GPU backends are cargo features; `nines --version` lists this build's).
    #[arg(long, value_enum, default_value = "auto")]
    pub backend: BackendArg,
    /// Continue the run in --out from its last checkpoint (a --config may raise `epochs`).
    #[arg(long, conflicts_with = "init")]
    pub resume: bool,
    /// Start from the best weights of this run folder (a warm start: the same
    /// architecture and contract, else refused).
    #[arg(long, value_name = "RUN")]
    pub init: Option<PathBuf>,
}

/// Runs `nines train`.
pub fn run(args: &TrainArgs) -> anyhow::Result<()> {
    let config = args.config.as_deref().map(TrainConfig::load).transpose()?;
    let device = train_device(args.device, args.backend)?;
    let bar = super::progress_bar(0, "steps");
    bar.set_style(
        indicatif::ProgressStyle::with_template("epoch {prefix} {bar:30} {pos}/{len} steps  {msg} ({eta})")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let say = |line: String| {
        if bar.is_hidden() {
            println!("{line}");
        } else {
            bar.println(line);
        }
    };
    let mut ticker = super::Ticker::new("train", "steps");
    let mut on_progress = |p: &Progress| match p {
        Progress::Model { preset, parameters, gflops, device } => {
            say(format!(
                "model: preset {preset}, {parameters} parameters, {gflops:.3} GFLOPs per image; training on {device}"
            ));
        }
        Progress::EpochStart { epoch, epochs, steps } => {
            bar.set_prefix(format!("{epoch}/{epochs}"));
            bar.set_length(*steps as u64);
            bar.set_position(0);
            ticker = ticker.restart(format!("train epoch {epoch}/{epochs}"));
        }
        Progress::Step { loss, images_per_sec } => {
            bar.inc(1);
            bar.set_message(format!("loss {loss:.4}, {images_per_sec:.1} images/s"));
            ticker.tick(&bar);
        }
        Progress::EpochEnd(record) => {
            let v = &record.validation;
            let line = format!(
                "epoch {}: train loss {:.4}, validation loss {:.4}; depth AbsRel {:.3} delta1 {:.3}; plan ADE@2s {:.2} m{}, miss {:.1}%; lead P/R {:.2}/{:.2}, range error {}; {:.1} images/s",
                record.epoch,
                record.train_loss.total,
                record.validation_loss.total,
                v.depth.abs_rel,
                v.depth.delta1,
                v.plan.ade[1],
                record.moved_plan.as_ref().map_or(String::new(), |m| format!(" (moved {:.2} m)", m.ade[1])),
                100.0 * v.plan.miss_rate,
                v.lead.precision,
                v.lead.recall,
                v.lead.range_error_text(2),
                record.images_per_sec
            );
            say(line);
        }
    };
    let start = match (&args.init, args.resume) {
        (Some(run), _) => Start::From(run),
        (None, true) => Start::Resume,
        (None, false) => Start::Fresh,
    };
    let summary = train(&args.labels, config.as_ref(), &args.out, device, start, &mut on_progress)?;
    bar.finish_and_clear();
    print!("{}", report(&summary));
    Ok(())
}

/// The closing summary: the model, the best epoch against the baselines.
pub fn report(summary: &TrainSummary) -> String {
    let mut out = format!(
        "run {}: {} parameters, {:.2} GFLOPs per image\n",
        summary.run.display(),
        summary.parameters,
        summary.gflops
    );
    let best = summary.epochs.iter().min_by(|a, b| a.score().total_cmp(&b.score()));
    let b = &summary.baselines.metrics;
    if let Some(best) = best {
        let v = &best.validation;
        let _ = write!(
            out,
            "best epoch {} (validation drives)   model      baseline\n  depth AbsRel                       {:>8.3}   {:>8.3} (mean depth {:.1} m)\n  depth delta1                       {:>8.3}   {:>8.3}\n  plan ADE@2s, m                     {:>8.3}   {:>8.3} (constant velocity)\n  plan FDE@2s, m                     {:>8.3}   {:>8.3}\n  lead range error                   {:>10}\n{}",
            best.epoch,
            v.depth.abs_rel,
            b.depth.abs_rel,
            summary.baselines.mean_depth_m,
            v.depth.delta1,
            b.depth.delta1,
            v.plan.ade[1],
            b.plan.ade[1],
            v.plan.fde[1],
            b.plan.fde[1],
            v.lead.range_error_text(3),
            match (&best.moved_plan, &summary.baselines.moved_plan) {
                (Some(m), Some(b)) => format!(
                    "  plan ADE@2s moved 0.75 m / 4 deg   {:>8.3}   {:>8.3} (constant velocity: no steering back)\n",
                    m.ade[1], b.ade[1]
                ),
                _ => String::new(),
            }
        );
    }
    let _ = writeln!(out, "export it: nines export {} --out model.onnx", summary.run.display());
    out
}
