//! The camera-only network: stacked frames and ego speed in; depth, plan
//! and lead out (DESIGN.md section 3).
//!
//! A four-stage residual convolutional backbone (strides 2, 4, 8, 16) feeds
//! three heads:
//! - depth at 1/4 resolution: a small decoder that upsamples the 1/16
//!   features through the 1/8 and 1/4 skips. Its output is bounded log
//!   depth, `depth = min * (max/min)^sigmoid(x)`, so it is always a
//!   positive, finite number of metres;
//! - plan: the 1/16 features squeezed to a few channels keep their layout
//!   (a flattened 8x16 map, so the head sees where the road goes), joined
//!   with the ego speed, through an MLP. The head predicts a correction to
//!   the constant-velocity plan (x = v t, y = 0, v), which it starts from
//!   exactly (zero-initialised output layer);
//! - lead: from the same MLP, presence logit, distance and relative speed.
//!
//! The `tiny` preset is for tests and the demo; `default` is sized for a
//! Jetson-class board at 30 Hz (see [`ModelConfig::flops`]).

use burn::module::Initializer;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::{BatchNorm, BatchNormConfig, Linear, LinearConfig, PaddingConfig2d};
use burn::prelude::*;
use burn::tensor::activation::{relu, sigmoid};
use burn::tensor::module::interpolate;
use burn::tensor::ops::{InterpolateMode, InterpolateOptions};
use nines_datasets::contract::ModelContract;

use crate::{OffboardError, Result};

/// Depth the network can express, m (the metrics cap at 80 m).
const DEPTH_RANGE_M: (f32, f32) = (0.5, 120.0);
/// The ego speed enters the MLP scaled by this (speeds are a few to 30 m/s).
const SPEED_SCALE: f32 = 0.1;
/// Lead distance = offset + scale * output, m.
const LEAD_DISTANCE: (f32, f32) = (20.0, 10.0);
/// Lead relative speed = scale * output, m/s.
const LEAD_SPEED_SCALE: f32 = 5.0;
/// Channels the plan head squeezes the 1/16 features to before flattening.
const PLAN_SQUEEZE: usize = 8;

/// The network's shape. Everything but the widths comes from the contract.
#[derive(Config, Debug, PartialEq)]
pub struct ModelConfig {
    /// Input columns.
    pub width: usize,
    /// Input rows.
    pub height: usize,
    /// Frames stacked along channels.
    pub frames: usize,
    /// Plan times, s.
    pub plan_times: Vec<f32>,
    /// Channels of the four backbone stages (strides 2, 4, 8, 16).
    pub widths: [usize; 4],
    /// Width of the plan/lead MLP.
    #[config(default = 128)]
    pub hidden: usize,
}

impl ModelConfig {
    /// A named preset (`tiny` or `default`) for `contract`.
    pub fn preset(name: &str, contract: &ModelContract) -> Result<Self> {
        let widths = match name {
            "tiny" => [8, 16, 24, 32],
            "default" => [24, 48, 96, 160],
            other => {
                return Err(OffboardError::Config(format!(
                    "preset = \"{other}\" is not a model preset; use \"tiny\" or \"default\""
                )));
            }
        };
        let hidden = if name == "tiny" { 64 } else { 128 };
        let config = Self::new(
            contract.input.width as usize,
            contract.input.height as usize,
            contract.input.frames as usize,
            contract.plan_times_secs.iter().map(|&t| t as f32).collect(),
            widths,
        )
        .with_hidden(hidden);
        config.check(contract)?;
        Ok(config)
    }

    /// Refuses a contract this architecture cannot serve.
    pub fn check(&self, contract: &ModelContract) -> Result<()> {
        if contract.label_stride != 4 {
            return Err(OffboardError::Config(format!(
                "the network predicts depth at 1/4 resolution but the labels' contract has label_stride = {}; distil with label_stride = 4",
                contract.label_stride
            )));
        }
        if !self.width.is_multiple_of(16)
            || !self.height.is_multiple_of(16)
            || self.width == 0
            || self.height == 0
        {
            return Err(OffboardError::Config(format!(
                "input {}x{} must be a non-zero multiple of 16 in both directions (the backbone downsamples 16x); change input.width/height in the contract",
                self.width, self.height
            )));
        }
        Ok(())
    }

    /// Builds the network with freshly initialised weights on `device`.
    #[must_use]
    pub fn init(&self, device: &Device) -> Model {
        let [c1, c2, c3, c4] = self.widths;
        let cin = 3 * self.frames;
        let steps = self.plan_times.len();
        let flat = PLAN_SQUEEZE * (self.height / 16) * (self.width / 16);
        let times: Vec<f32> = self.plan_times.iter().flat_map(|&t| [t, 0.0, 1.0]).collect();
        Model {
            stem: ConvBn::new(cin, c1, 2, device),
            down2: ConvBn::new(c1, c2, 2, device),
            block2: Residual::new(c2, device),
            down3: ConvBn::new(c2, c3, 2, device),
            block3: Residual::new(c3, device),
            down4: ConvBn::new(c3, c4, 2, device),
            block4: Residual::new(c4, device),
            up3: ConvBn::new(c4, c3, 1, device),
            up2: ConvBn::new(c3, c2, 1, device),
            depth_out: conv3x3(c2, 1, 1).init(device),
            squeeze: ConvBn::new_kernel(c4, PLAN_SQUEEZE, 1, 1, device),
            fc1: LinearConfig::new(flat + 1, self.hidden).init(device),
            fc2: LinearConfig::new(self.hidden, self.hidden).init(device),
            plan_out: LinearConfig::new(self.hidden, 3 * steps)
                .with_initializer(Initializer::Zeros)
                .init(device),
            lead_out: LinearConfig::new(self.hidden, 3).init(device),
            plan_basis: times,
            steps,
        }
    }

    /// Multiply-accumulates of one forward pass times two: floating-point
    /// operations per image (batch 1), counting convolutions and linear
    /// layers (normalisation and activations are a few percent more).
    #[must_use]
    pub fn flops(&self) -> f64 {
        let [c1, c2, c3, c4] = self.widths.map(|c| c as f64);
        let px = |stride: f64| (self.width as f64 / stride) * (self.height as f64 / stride);
        let conv = |cin: f64, cout: f64, k: f64, stride: f64| px(stride) * cin * cout * k * k;
        let cin = 3.0 * self.frames as f64;
        let flat = PLAN_SQUEEZE as f64 * px(16.0);
        let h = self.hidden as f64;
        let macs = conv(cin, c1, 3.0, 2.0)
            + conv(c1, c2, 3.0, 4.0)
            + 2.0 * conv(c2, c2, 3.0, 4.0)
            + conv(c2, c3, 3.0, 8.0)
            + 2.0 * conv(c3, c3, 3.0, 8.0)
            + conv(c3, c4, 3.0, 16.0)
            + 2.0 * conv(c4, c4, 3.0, 16.0)
            + conv(c4, c3, 3.0, 8.0)
            + conv(c3, c2, 3.0, 4.0)
            + conv(c2, 1.0, 3.0, 4.0)
            + conv(c4, PLAN_SQUEEZE as f64, 1.0, 16.0)
            + (flat + 1.0) * h
            + h * h
            + h * (3.0 * self.plan_times.len() as f64 + 3.0);
        2.0 * macs
    }
}

fn conv3x3(cin: usize, cout: usize, stride: usize) -> Conv2dConfig {
    Conv2dConfig::new([cin, cout], [3, 3])
        .with_stride([stride, stride])
        .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
}

/// Convolution, batch norm, ReLU.
#[derive(Module, Debug)]
pub struct ConvBn {
    conv: Conv2d,
    norm: BatchNorm,
}

impl ConvBn {
    fn new(cin: usize, cout: usize, stride: usize, device: &Device) -> Self {
        Self::new_kernel(cin, cout, 3, stride, device)
    }

    fn new_kernel(cin: usize, cout: usize, kernel: usize, stride: usize, device: &Device) -> Self {
        let pad = kernel / 2;
        Self {
            conv: Conv2dConfig::new([cin, cout], [kernel, kernel])
                .with_stride([stride, stride])
                .with_padding(PaddingConfig2d::Explicit(pad, pad, pad, pad))
                .with_bias(false)
                .init(device),
            norm: BatchNormConfig::new(cout).init(device),
        }
    }

    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        relu(self.forward_linear(x))
    }

    fn forward_linear(&self, x: Tensor<4>) -> Tensor<4> {
        self.norm.forward(self.conv.forward(x))
    }
}

/// Two 3x3 convolutions with an identity shortcut.
#[derive(Module, Debug)]
pub struct Residual {
    a: ConvBn,
    b: ConvBn,
}

impl Residual {
    fn new(channels: usize, device: &Device) -> Self {
        Self { a: ConvBn::new(channels, channels, 1, device), b: ConvBn::new(channels, channels, 1, device) }
    }

    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        relu(self.b.forward_linear(self.a.forward(x.clone())) + x)
    }
}

/// The network's outputs before the export-time transforms: log depth,
/// the plan, and the lead with its presence as a logit (losses want those).
#[derive(Debug, Clone)]
pub struct RawOutput {
    /// ln(depth / m), [B, 1, H/4, W/4].
    pub log_depth: Tensor<4>,
    /// x, y, v per plan time, [B, T, 3].
    pub plan: Tensor<3>,
    /// Presence logit, distance m, relative speed m/s, [B, 3].
    pub lead: Tensor<2>,
}

/// The network (see the module docs).
#[derive(Module, Debug)]
pub struct Model {
    stem: ConvBn,
    down2: ConvBn,
    block2: Residual,
    down3: ConvBn,
    block3: Residual,
    down4: ConvBn,
    block4: Residual,
    up3: ConvBn,
    up2: ConvBn,
    depth_out: Conv2d,
    squeeze: ConvBn,
    fc1: Linear,
    fc2: Linear,
    plan_out: Linear,
    lead_out: Linear,
    /// (t, 0, 1) per plan time: the constant-velocity plan per m/s of speed.
    #[module(skip)]
    plan_basis: Vec<f32>,
    #[module(skip)]
    steps: usize,
}

impl Model {
    /// The forward pass for training and metrics: `image` [B, 3F, H, W]
    /// normalised as the contract says, `speed` [B, 1] m/s.
    #[must_use]
    pub fn forward_raw(&self, image: Tensor<4>, speed: Tensor<2>) -> RawOutput {
        let device = image.device();
        let [batch, ..] = image.dims();
        let s2 = self.stem.forward(image);
        let s4 = self.block2.forward(self.down2.forward(s2));
        let s8 = self.block3.forward(self.down3.forward(s4.clone()));
        let s16 = self.block4.forward(self.down4.forward(s8.clone()));

        let up8 = self.up3.forward(upsample(s16.clone())) + s8;
        let up4 = self.up2.forward(upsample(up8)) + s4;
        let (lo, hi) = (DEPTH_RANGE_M.0.ln(), DEPTH_RANGE_M.1.ln());
        let log_depth = sigmoid(self.depth_out.forward(up4)).mul_scalar(hi - lo).add_scalar(lo);

        let squeezed = self.squeeze.forward(s16);
        let [_, c, h, w] = squeezed.dims();
        let flat = squeezed.reshape([batch, c * h * w]);
        let joined = Tensor::cat(vec![flat, speed.clone().mul_scalar(SPEED_SCALE)], 1);
        let hidden = relu(self.fc2.forward(relu(self.fc1.forward(joined))));

        let basis = Tensor::<1>::from_floats(self.plan_basis.as_slice(), &device).reshape([1, self.steps, 3]);
        let constant_velocity = speed.reshape([batch, 1, 1]) * basis;
        let plan = self.plan_out.forward(hidden.clone()).reshape([batch, self.steps, 3]) + constant_velocity;

        let lead = self.lead_out.forward(hidden);
        let scale =
            Tensor::<1>::from_floats([1.0, LEAD_DISTANCE.1, LEAD_SPEED_SCALE], &device).reshape([1, 3]);
        let offset = Tensor::<1>::from_floats([0.0, LEAD_DISTANCE.0, 0.0], &device).reshape([1, 3]);
        let lead = lead * scale + offset;
        RawOutput { log_depth, plan, lead }
    }

    /// The exported forward pass: depth in metres [B, 1, H/4, W/4], plan
    /// [B, T, 3], lead [B, 3] with the presence as a probability.
    #[must_use]
    pub fn forward(&self, image: Tensor<4>, speed: Tensor<2>) -> (Tensor<4>, Tensor<3>, Tensor<2>) {
        let raw = self.forward_raw(image, speed);
        let [batch, _] = raw.lead.dims();
        let presence = sigmoid(raw.lead.clone().slice([0..batch, 0..1]));
        let rest = raw.lead.slice([0..batch, 1..3]);
        (raw.log_depth.exp(), raw.plan, Tensor::cat(vec![presence, rest], 1))
    }
}

/// Reads a tensor back as f32s.
pub fn to_vec<const D: usize>(tensor: Tensor<D>) -> Result<Vec<f32>> {
    tensor
        .into_data()
        .try_to_vec::<f32>()
        .map_err(|e| OffboardError::Model(format!("reading a tensor back: {e:?}")))
}

fn upsample(x: Tensor<4>) -> Tensor<4> {
    let [_, _, h, w] = x.dims();
    interpolate(
        x,
        InterpolateOptions::new(InterpolateMode::Bilinear)
            .with_align_corners(false)
            .with_output_size([2 * h, 2 * w]),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn contract() -> ModelContract {
        ModelContract::default()
    }

    #[test]
    fn presets_have_the_contract_shapes_and_start_from_constant_velocity() -> Result<()> {
        let device = Device::flex();
        let config = ModelConfig::preset("tiny", &contract())?;
        let model = config.init(&device);
        let image = Tensor::<4>::zeros([2, 6, 128, 256], &device);
        let speed = Tensor::<2>::from_floats([[4.0], [0.0]], &device);
        let (depth, plan, lead) = model.valid().forward(image, speed);
        assert_eq!(depth.dims(), [2, 1, 32, 64]);
        assert_eq!(plan.dims(), [2, 6, 3]);
        assert_eq!(lead.dims(), [2, 3]);
        let plan = to_vec(plan)?;
        // Zero-initialised plan head: exactly x = v t, y = 0, v.
        assert!((plan[0] - 2.0).abs() < 1e-6 && plan[1].abs() < 1e-6 && (plan[2] - 4.0).abs() < 1e-6);
        assert!((plan[15] - 12.0).abs() < 1e-5, "{plan:?}");
        let depth = to_vec(depth)?;
        assert!(depth.iter().all(|&d| (DEPTH_RANGE_M.0..=DEPTH_RANGE_M.1).contains(&d)));
        let lead = to_vec(lead)?;
        assert!((0.0..=1.0).contains(&lead[0]));
        Ok(())
    }

    #[test]
    fn the_default_model_fits_a_jetson_budget() -> Result<()> {
        let config = ModelConfig::preset("default", &contract())?;
        let gflops = config.flops() / 1e9;
        assert!((0.3..2.5).contains(&gflops), "{gflops} GFLOPs");
        let params = config.init(&Device::flex()).num_params();
        assert!((200_000..3_000_000).contains(&params), "{params} parameters");
        assert!(ModelConfig::preset("huge", &contract()).is_err());
        let mut odd = contract();
        odd.label_stride = 2;
        assert!(ModelConfig::preset("tiny", &odd).is_err());
        Ok(())
    }
}
