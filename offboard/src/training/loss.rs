//! The losses: L1 on log depth over pixels with lidar, L1 on the plan
//! (v at half weight), lead presence cross-entropy plus distance and
//! relative-speed Huber where the label knows them.

use burn::prelude::*;
use burn::tensor::activation::relu;
use serde::{Deserialize, Serialize};

use super::LossWeights;
use crate::data::Batch;
use crate::labels::ShardLayout;
use crate::metrics::DEPTH_CAP_M;
use crate::model::{RawOutput, to_vec};
use crate::{OffboardError, Result};

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
    pub(crate) fn add(&mut self, other: &Self) {
        self.total += other.total;
        self.depth += other.depth;
        self.plan += other.plan;
        self.lead += other.lead;
    }

    pub(crate) fn scaled(&self, by: f64) -> Self {
        Self { total: self.total * by, depth: self.depth * by, plan: self.plan * by, lead: self.lead * by }
    }
}

/// A batch as tensors, with the loss masks prepared on the CPU.
pub(crate) struct BatchTensors {
    pub(crate) image: Tensor<4>,
    pub(crate) speed: Tensor<2>,
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
    /// The batch's tensors (in `layout`, `frames` stacked per sample);
    /// `plan_lateral` weighs the plan's lateral (y) error against its
    /// longitudinal (x) one.
    pub(crate) fn new(
        batch: &Batch,
        (layout, frames): (&ShardLayout, usize),
        plan_lateral: f32,
        device: &Device,
    ) -> Self {
        let n = batch.size;
        let [_, h, w] = layout.image;
        let [dh, dw] = layout.depth;
        let f = frames;
        let t = layout.plan_steps;
        let tensor4 =
            |data: Vec<f32>, shape: [usize; 4]| Tensor::<4>::from_data(TensorData::new(data, shape), device);
        let tensor1 = |data: Vec<f32>| Tensor::<1>::from_data(TensorData::new(data, [n]), device);
        let mask: Vec<f32> =
            batch.depth.iter().map(|&d| f32::from(u8::from(d > 0.0 && d <= DEPTH_CAP_M))).collect();
        let log_depth: Vec<f32> = batch.depth.iter().map(|&d| d.max(1e-3).ln()).collect();
        let plan_weight: Vec<f32> =
            batch.plan_valid.iter().flat_map(|&v| [v, plan_lateral * v, 0.5 * v]).collect();
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

/// The weighted loss of a batch (for `backward`) and its parts, read back
/// in one transfer.
pub(crate) fn losses(
    raw: &RawOutput,
    t: &BatchTensors,
    weights: &LossWeights,
) -> Result<(Tensor<1>, LossParts)> {
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
    let read = to_vec(Tensor::cat(vec![total.clone(), depth, plan, lead], 0))?;
    let part = |i: usize| f64::from(read.get(i).copied().unwrap_or(f32::NAN));
    let parts = LossParts { total: part(0), depth: part(1), plan: part(2), lead: part(3) };
    if !parts.total.is_finite() {
        return Err(OffboardError::Model(format!(
            "the training loss is not finite ({parts:?}); lower learning_rate in the config"
        )));
    }
    Ok((total, parts))
}
