//! Validation metrics of the camera-only network, in plain Rust over flat
//! arrays so that training, export and the nines harness compute them the
//! same way. Each metric is an accumulator: add batches, then `finish`.
//!
//! - Depth: AbsRel, SqRel, RMSE, RMSElog, delta < 1.25^k, on pixels with
//!   lidar, ground truth capped at [`DEPTH_CAP_M`], no median scaling.
//! - Plan: ADE and FDE at 1, 2, 3 s and the miss rate (FDE@2s above
//!   [`MISS_DISTANCE_M`]).
//! - Lead: presence precision and recall, range error and relative-speed
//!   error on true positives.

use serde::{Deserialize, Serialize};

/// Ground truth beyond this is left out, and predictions are clipped to it, m.
pub const DEPTH_CAP_M: f32 = 80.0;
/// Predictions are clipped below to this, m (log metrics need it positive).
pub const DEPTH_FLOOR_M: f32 = 1e-3;
/// A plan misses when its 2 s point is further than this from the driven one, m.
pub const MISS_DISTANCE_M: f64 = 2.0;
/// The horizons ADE and FDE are reported at, s.
pub const PLAN_HORIZONS_SECS: [f64; 3] = [1.0, 2.0, 3.0];

/// Depth metrics over every labelled pixel seen.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct DepthMetrics {
    /// Mean |pred - gt| / gt.
    pub abs_rel: f64,
    /// Mean (pred - gt)^2 / gt.
    pub sq_rel: f64,
    /// sqrt(mean (pred - gt)^2), m.
    pub rmse: f64,
    /// sqrt(mean (ln pred - ln gt)^2).
    pub rmse_log: f64,
    /// Share of pixels with max(pred/gt, gt/pred) < 1.25.
    pub delta1: f64,
    /// ... < 1.25^2.
    pub delta2: f64,
    /// ... < 1.25^3.
    pub delta3: f64,
    /// Pixels scored.
    pub pixels: u64,
}

/// Sums behind [`DepthMetrics`].
#[derive(Debug, Clone, Default)]
pub struct DepthAccumulator {
    abs_rel: f64,
    sq_rel: f64,
    sq: f64,
    sq_log: f64,
    delta: [u64; 3],
    pixels: u64,
}

impl DepthAccumulator {
    /// Adds predicted and labelled depth (same layout; a label of 0 means no lidar).
    pub fn add(&mut self, predicted: &[f32], label: &[f32]) {
        for (&p, &g) in predicted.iter().zip(label) {
            if !(g > 0.0 && g <= DEPTH_CAP_M && p.is_finite()) {
                continue;
            }
            let p = f64::from(p.clamp(DEPTH_FLOOR_M, DEPTH_CAP_M));
            let g = f64::from(g);
            let e = p - g;
            self.abs_rel += e.abs() / g;
            self.sq_rel += e * e / g;
            self.sq += e * e;
            self.sq_log += (p.ln() - g.ln()).powi(2);
            let ratio = (p / g).max(g / p);
            for (k, count) in self.delta.iter_mut().enumerate() {
                if ratio < 1.25f64.powi(k as i32 + 1) {
                    *count += 1;
                }
            }
            self.pixels += 1;
        }
    }

    /// The metrics (all zero when no pixel was scored).
    #[must_use]
    pub fn finish(&self) -> DepthMetrics {
        if self.pixels == 0 {
            return DepthMetrics::default();
        }
        let n = self.pixels as f64;
        DepthMetrics {
            abs_rel: self.abs_rel / n,
            sq_rel: self.sq_rel / n,
            rmse: (self.sq / n).sqrt(),
            rmse_log: (self.sq_log / n).sqrt(),
            delta1: self.delta[0] as f64 / n,
            delta2: self.delta[1] as f64 / n,
            delta3: self.delta[2] as f64 / n,
            pixels: self.pixels,
        }
    }
}

/// Plan metrics over every sample whose label covers the horizon.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct PlanMetrics {
    /// Average displacement error up to 1, 2, 3 s, m.
    pub ade: [f64; 3],
    /// Final displacement error at 1, 2, 3 s, m.
    pub fde: [f64; 3],
    /// Samples scored at 1, 2, 3 s.
    pub samples: [u64; 3],
    /// Share of samples scored at 2 s whose FDE@2s exceeds [`MISS_DISTANCE_M`].
    pub miss_rate: f64,
}

/// Sums behind [`PlanMetrics`].
#[derive(Debug, Clone)]
pub struct PlanAccumulator {
    times: Vec<f64>,
    ade: [f64; 3],
    fde: [f64; 3],
    samples: [u64; 3],
    misses: u64,
}

impl PlanAccumulator {
    /// Scores plans on the time grid `times` (s, increasing).
    #[must_use]
    pub fn new(times: &[f64]) -> Self {
        Self { times: times.to_vec(), ade: [0.0; 3], fde: [0.0; 3], samples: [0; 3], misses: 0 }
    }

    /// Adds one sample: `predicted` and `label` are [T, 3] (x, y, v), `valid` [T].
    pub fn add(&mut self, predicted: &[f32], label: &[f32], valid: &[u8]) {
        let error = |i: usize| {
            let dx = f64::from(predicted[3 * i] - label[3 * i]);
            let dy = f64::from(predicted[3 * i + 1] - label[3 * i + 1]);
            dx.hypot(dy)
        };
        for (h, &horizon) in PLAN_HORIZONS_SECS.iter().enumerate() {
            let Some(last) = self.times.iter().position(|&t| (t - horizon).abs() < 1e-6) else {
                continue;
            };
            if valid.len() <= last || valid[..=last].contains(&0) {
                continue;
            }
            let errors: Vec<f64> = (0..=last).map(error).collect();
            self.ade[h] += errors.iter().sum::<f64>() / errors.len() as f64;
            self.fde[h] += errors[last];
            self.samples[h] += 1;
            if h == 1 && errors[last] > MISS_DISTANCE_M {
                self.misses += 1;
            }
        }
    }

    /// The metrics.
    #[must_use]
    pub fn finish(&self) -> PlanMetrics {
        let mean = |sum: f64, n: u64| if n == 0 { 0.0 } else { sum / n as f64 };
        PlanMetrics {
            ade: std::array::from_fn(|h| mean(self.ade[h], self.samples[h])),
            fde: std::array::from_fn(|h| mean(self.fde[h], self.samples[h])),
            samples: self.samples,
            miss_rate: mean(self.misses as f64, self.samples[1]),
        }
    }
}

/// Lead metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct LeadMetrics {
    /// Of the frames predicted to have a lead, the share that do.
    pub precision: f64,
    /// Of the frames with a lead, the share predicted.
    pub recall: f64,
    /// Mean |distance error| on true positives with a known distance, m.
    pub range_error_m: f64,
    /// Mean |relative-speed error| on true positives with a known speed, m/s.
    pub speed_error_mps: f64,
    /// Frames with a labelled lead.
    pub leads: u64,
    /// Frames scored.
    pub frames: u64,
}

impl LeadMetrics {
    /// The range error with `decimals`, or "n/a" when no lead was found
    /// (recall 0: there is no true positive to measure it on).
    #[must_use]
    pub fn range_error_text(&self, decimals: usize) -> String {
        if self.recall > 0.0 { format!("{:.*} m", decimals, self.range_error_m) } else { "n/a".into() }
    }
}

/// Sums behind [`LeadMetrics`].
#[derive(Debug, Clone, Default)]
pub struct LeadAccumulator {
    true_pos: u64,
    false_pos: u64,
    false_neg: u64,
    range: (f64, u64),
    speed: (f64, u64),
    frames: u64,
}

impl LeadAccumulator {
    /// Adds one frame: `predicted` is (presence probability, distance, relative
    /// speed), `label` (present 0/1, distance, relative speed), `valid`
    /// (distance known, speed known).
    pub fn add(&mut self, predicted: &[f32], label: &[f32], valid: &[u8]) {
        let said = predicted[0] >= 0.5;
        let is = label[0] >= 0.5;
        match (said, is) {
            (true, true) => {
                self.true_pos += 1;
                if valid[0] != 0 {
                    self.range.0 += f64::from((predicted[1] - label[1]).abs());
                    self.range.1 += 1;
                }
                if valid[1] != 0 {
                    self.speed.0 += f64::from((predicted[2] - label[2]).abs());
                    self.speed.1 += 1;
                }
            }
            (true, false) => self.false_pos += 1,
            (false, true) => self.false_neg += 1,
            (false, false) => {}
        }
        self.frames += 1;
    }

    /// The metrics (a ratio with nothing to count is 0).
    #[must_use]
    pub fn finish(&self) -> LeadMetrics {
        let ratio = |a: f64, b: u64| if b == 0 { 0.0 } else { a / b as f64 };
        LeadMetrics {
            precision: ratio(self.true_pos as f64, self.true_pos + self.false_pos),
            recall: ratio(self.true_pos as f64, self.true_pos + self.false_neg),
            range_error_m: ratio(self.range.0, self.range.1),
            speed_error_mps: ratio(self.speed.0, self.speed.1),
            leads: self.true_pos + self.false_neg,
            frames: self.frames,
        }
    }
}

/// All three, for one model (or baseline) on one set of frames.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Metrics {
    /// Depth.
    pub depth: DepthMetrics,
    /// Plan.
    pub plan: PlanMetrics,
    /// Lead.
    pub lead: LeadMetrics,
}

/// The three accumulators together.
#[derive(Debug, Clone)]
pub struct MetricsAccumulator {
    /// Depth.
    pub depth: DepthAccumulator,
    /// Plan.
    pub plan: PlanAccumulator,
    /// Lead.
    pub lead: LeadAccumulator,
}

impl MetricsAccumulator {
    /// Empty, for plans on `plan_times` (s).
    #[must_use]
    pub fn new(plan_times: &[f64]) -> Self {
        Self {
            depth: DepthAccumulator::default(),
            plan: PlanAccumulator::new(plan_times),
            lead: LeadAccumulator::default(),
        }
    }

    /// The metrics.
    #[must_use]
    pub fn finish(&self) -> Metrics {
        Metrics { depth: self.depth.finish(), plan: self.plan.finish(), lead: self.lead.finish() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-9
    }

    #[test]
    fn depth_metrics_match_hand_computed_values() {
        // Pixels: (pred 2, gt 1), (pred 4, gt 4), (pred 9, gt 10), a pixel
        // without lidar (gt 0) and one beyond the cap (gt 90): both ignored.
        let mut acc = DepthAccumulator::default();
        acc.add(&[2.0, 4.0, 9.0, 5.0, 50.0], &[1.0, 4.0, 10.0, 0.0, 90.0]);
        let m = acc.finish();
        assert_eq!(m.pixels, 3);
        // AbsRel = (1/1 + 0 + 1/10) / 3
        assert!(close(m.abs_rel, 1.1 / 3.0), "{m:?}");
        // SqRel = (1/1 + 0 + 1/10) / 3
        assert!(close(m.sq_rel, 1.1 / 3.0), "{m:?}");
        // RMSE = sqrt((1 + 0 + 1) / 3)
        assert!(close(m.rmse, (2.0f64 / 3.0).sqrt()), "{m:?}");
        // RMSElog = sqrt((ln 2)^2 + 0 + (ln 0.9)^2) / 3)
        let log = ((2f64.ln().powi(2) + 0.9f64.ln().powi(2)) / 3.0).sqrt();
        assert!(close(m.rmse_log, log), "{m:?}");
        // Ratios 2, 1, 1.111: delta1 = 2/3, delta2 (1.5625) = 2/3, delta3 (1.953) = 2/3.
        assert!(close(m.delta1, 2.0 / 3.0) && close(m.delta2, 2.0 / 3.0) && close(m.delta3, 2.0 / 3.0));
        // A ratio of 1.5 passes delta2 but not delta1.
        let mut acc = DepthAccumulator::default();
        acc.add(&[15.0], &[10.0]);
        let m = acc.finish();
        assert!(close(m.delta1, 0.0) && close(m.delta2, 1.0) && close(m.delta3, 1.0));
    }

    #[test]
    fn depth_predictions_are_clipped_to_the_cap_not_median_scaled() {
        let mut acc = DepthAccumulator::default();
        acc.add(&[200.0, 0.0], &[40.0, 1.0]);
        let m = acc.finish();
        // 200 -> 80: |80-40|/40 = 1; 0 -> 0.001: |0.001-1|/1 = 0.999.
        assert!(close(m.abs_rel, f64::midpoint(1.0, 0.999)), "{m:?}");
        assert_eq!(DepthAccumulator::default().finish(), DepthMetrics::default());
    }

    #[test]
    fn plan_metrics_match_hand_computed_values() {
        let times = [0.5, 1.0, 1.5, 2.0, 2.5, 3.0];
        let mut acc = PlanAccumulator::new(&times);
        // Label: straight ahead at 5 m/s. Prediction: 3-4-5 triangle error at
        // every point from 1.5 s on, none before.
        let label: Vec<f32> = times.iter().flat_map(|&t| [5.0 * t as f32, 0.0, 5.0]).collect();
        let mut predicted = label.clone();
        for i in 2..6 {
            predicted[3 * i] += 3.0;
            predicted[3 * i + 1] += 4.0;
        }
        acc.add(&predicted, &label, &[1; 6]);
        let m = acc.finish();
        assert!(close(m.ade[0], 0.0) && close(m.fde[0], 0.0));
        // ADE@2s over 0.5, 1, 1.5, 2 s: (0 + 0 + 5 + 5) / 4.
        assert!(close(m.ade[1], 2.5) && close(m.fde[1], 5.0), "{m:?}");
        assert!(close(m.ade[2], 20.0 / 6.0) && close(m.fde[2], 5.0), "{m:?}");
        assert!(close(m.miss_rate, 1.0));
        // A second, perfect sample halves the miss rate; one whose 3 s point
        // is unknown counts at 1 s and 2 s only.
        acc.add(&label, &label, &[1; 6]);
        acc.add(&label, &label, &[1, 1, 1, 1, 1, 0]);
        let m = acc.finish();
        assert_eq!(m.samples, [3, 3, 2]);
        assert!(close(m.miss_rate, 1.0 / 3.0));
        assert!(close(m.ade[2], 20.0 / 6.0 / 2.0));
    }

    #[test]
    fn lead_metrics_match_hand_computed_values() {
        let mut acc = LeadAccumulator::default();
        acc.add(&[0.9, 21.0, -1.0], &[1.0, 20.0, -2.0], &[1, 1]); // TP: 1 m, 1 m/s
        acc.add(&[0.6, 30.0, 0.0], &[1.0, 33.0, 0.0], &[1, 0]); // TP: 3 m, speed unknown
        acc.add(&[0.7, 10.0, 0.0], &[0.0, 0.0, 0.0], &[0, 0]); // FP
        acc.add(&[0.2, 10.0, 0.0], &[1.0, 15.0, 0.0], &[1, 1]); // FN
        acc.add(&[0.1, 10.0, 0.0], &[0.0, 0.0, 0.0], &[0, 0]); // TN
        let m = acc.finish();
        assert!(close(m.precision, 2.0 / 3.0) && close(m.recall, 2.0 / 3.0), "{m:?}");
        assert!(close(m.range_error_m, 2.0) && close(m.speed_error_mps, 1.0), "{m:?}");
        assert_eq!((m.leads, m.frames), (3, 5));
    }
}
