//! Open-loop runs: the runtime replays a logged drive (lockstep, the same
//! pipeline as on the robot) and its plan and lead are compared with the
//! lidar's labels of the same frames (the distiller's driven path and lead).
//! A run is one window of the drive (a minute by default); it fails on a
//! plan miss (the plan's point at the horizon farther from where the vehicle
//! really was then than the threshold) or a missed lead (a lead labelled
//! within range the model does not predict).

use std::path::Path;

use crate::{Context, Result};
use nines_datasets::contract::ModelContract;
use nines_kernels::Kernels;
use nines_offboard::distill::{DistillOptions, DriveLabels, distill_drive};
use nines_onboard::config::Config;
use nines_onboard::replay::run_model;

use super::ledger::{Outcome, RunEvent, RunRecord};
use super::suite::Thresholds;

/// What a model predicted for one frame.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Predicted {
    /// Plan point at the horizon, base_link at capture, m.
    pub at_horizon: [f32; 2],
    /// Lead probability.
    pub lead_probability: f32,
}

/// One labelled frame of the drive and the model's prediction for it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FrameCheck {
    /// Time since the drive's first labelled frame, s.
    pub time_s: f64,
    /// Ego speed, m/s.
    pub speed_mps: f64,
    /// Where the vehicle really was at the horizon, base_link at capture (None past the drive's end).
    pub driven_at_horizon: Option<[f32; 2]>,
    /// Labelled lead distance if a lead is present, m.
    pub lead_m: Option<f32>,
    /// The model's prediction (None before the runtime's history filled).
    pub predicted: Option<Predicted>,
}

/// Index of the plan time nearest `horizon_s`.
fn horizon_index(times: &[f64], horizon_s: f64) -> usize {
    (0..times.len())
        .min_by(|&a, &b| (times[a] - horizon_s).abs().total_cmp(&(times[b] - horizon_s).abs()))
        .unwrap_or(0)
}

/// A drive checked: every labelled frame against the model, and the
/// model's measured time per frame (performance only), s.
#[derive(Debug, Clone, Default)]
pub struct DriveCheck {
    /// One per labelled frame.
    pub frames: Vec<FrameCheck>,
    /// Preprocess + inference per replayed frame, s.
    pub busy_s: Vec<f64>,
}

/// Distils `drive` with `contract`, replays `model` over it (with the
/// eval's config: one ONNX Runtime thread) and pairs the two per frame.
pub fn check_drive(
    drive: &Path,
    model: &Path,
    config: &Config,
    contract: &ModelContract,
    thresholds: &Thresholds,
) -> Result<DriveCheck> {
    let options = DistillOptions { contract: contract.clone(), ..DistillOptions::default() };
    let labels = distill_drive(drive, &Kernels::cpu(), &options, &|| {})
        .with_context(|| format!("distilling the lidar labels of {}", drive.display()))?;
    let replayed =
        run_model(drive, model, config).with_context(|| format!("replaying {}", drive.display()))?;
    let k = horizon_index(&contract.plan_times_secs, thresholds.plan_horizon_s);
    let predicted: std::collections::BTreeMap<u64, Predicted> = replayed
        .outputs
        .iter()
        .filter_map(|o| {
            // The runtime publishes the contract's plan times, the grid the labels use.
            Some((
                o.input_stamp.as_nanos(),
                Predicted {
                    at_horizon: [*o.plan_x_m.get(k)?, *o.plan_y_m.get(k)?],
                    lead_probability: o.lead_probability,
                },
            ))
        })
        .collect();
    Ok(DriveCheck { frames: frame_checks(&labels, k, &predicted), busy_s: replayed.busy_s })
}

fn frame_checks(
    labels: &DriveLabels,
    k: usize,
    predicted: &std::collections::BTreeMap<u64, Predicted>,
) -> Vec<FrameCheck> {
    let t0 = labels.stamp.first().copied().unwrap_or(0);
    (0..labels.frames)
        .map(|f| {
            let p = (f * labels.layout.plan_steps + k) * 3;
            let driven = (labels.plan_valid.get(f * labels.layout.plan_steps + k) == Some(&1))
                .then(|| [labels.plan[p], labels.plan[p + 1]]);
            let lead = &labels.lead[f * 3..f * 3 + 3];
            let lead_known = labels.lead_valid.get(f * 2) == Some(&1);
            FrameCheck {
                time_s: (labels.stamp[f] - t0) as f64 / 1e9,
                speed_mps: f64::from(labels.speed[f]),
                driven_at_horizon: driven,
                lead_m: (lead[0] > 0.5 && lead_known).then_some(lead[1]),
                predicted: predicted.get(&(labels.stamp[f] as u64)).copied(),
            }
        })
        .collect()
}

/// Splits a drive's frame checks into runs of `thresholds.window_s`.
#[must_use]
pub fn windows(drive: &Path, checks: &[FrameCheck], thresholds: &Thresholds, model: &Path) -> Vec<RunRecord> {
    let stem = drive.file_stem().map_or_else(|| "drive".into(), |s| s.to_string_lossy().into_owned());
    let count = checks.last().map_or(0, |c| (c.time_s / thresholds.window_s) as usize + 1);
    let mut runs = Vec::with_capacity(count);
    for w in 0..count {
        let start = w as f64 * thresholds.window_s;
        let frames: Vec<&FrameCheck> =
            checks.iter().filter(|c| c.time_s >= start && c.time_s < start + thresholds.window_s).collect();
        if frames.is_empty() {
            continue;
        }
        let mut events = Vec::new();
        let (mut plan_missing, mut lead_missing) = (false, false);
        let (mut km, mut compared, mut error_sum) = (0.0, 0u32, 0.0);
        for (i, c) in frames.iter().enumerate() {
            if let Some(next) = frames.get(i + 1) {
                km += c.speed_mps * (next.time_s - c.time_s) / 1000.0;
            }
            let Some(p) = c.predicted else { continue };
            let miss = c
                .driven_at_horizon
                .map(|d| f64::from((d[0] - p.at_horizon[0]).hypot(d[1] - p.at_horizon[1])));
            if let Some(m) = miss {
                compared += 1;
                error_sum += m;
            }
            let plan_miss = miss.is_some_and(|m| m > thresholds.plan_miss_m);
            if plan_miss && !plan_missing {
                events.push(RunEvent {
                    time_s: c.time_s,
                    category: "plan_miss".into(),
                    detail: format!(
                        "the plan's {:.1} s point is {:.2} m from where the vehicle was",
                        thresholds.plan_horizon_s,
                        miss.unwrap_or(0.0)
                    ),
                    value: miss.unwrap_or(0.0),
                });
            }
            plan_missing = plan_miss;
            let lead_miss = c.lead_m.is_some_and(|d| f64::from(d) <= thresholds.lead_range_m)
                && f64::from(p.lead_probability) < thresholds.lead_probability;
            if lead_miss && !lead_missing {
                let d = f64::from(c.lead_m.unwrap_or(0.0));
                events.push(RunEvent {
                    time_s: c.time_s,
                    category: "missed_lead".into(),
                    detail: format!(
                        "a lead {d:.1} m ahead, predicted with probability {:.2}",
                        p.lead_probability
                    ),
                    value: d,
                });
            }
            lead_missing = lead_miss;
        }
        let predicted = frames.iter().filter(|c| c.predicted.is_some()).count();
        if predicted == 0 {
            // A window the model said nothing about is never a pass.
            events.insert(
                0,
                RunEvent {
                    time_s: frames[0].time_s,
                    category: "system_fault".into(),
                    detail: format!("the model produced no output for the window's {} frames", frames.len()),
                    value: 0.0,
                },
            );
        }
        let last = frames.last().map_or(start, |c| c.time_s);
        let hours = (last - frames[0].time_s + 0.1).max(0.0) / 3600.0;
        let failed = !events.is_empty();
        let mut metrics =
            vec![("frames".into(), frames.len() as f64), ("predicted_frames".into(), predicted as f64)];
        if compared > 0 {
            metrics.push(("plan_error_mean_m".into(), error_sum / f64::from(compared)));
        }
        runs.push(RunRecord {
            key: format!("open/{stem}/{w}"),
            kind: "open".into(),
            family: format!("open:{stem}"),
            seed: None,
            drive: Some(drive.display().to_string()),
            must_pass: false,
            outcome: if failed { Outcome::Fail } else { Outcome::Pass },
            category: events.first().map(|e| e.category.clone()),
            km,
            hours,
            kept_drive: failed.then(|| drive.display().to_string()),
            replay: failed.then(|| super::eval::replay_command(drive, Some(model))),
            events,
            metrics,
            seen_in_training: false,
        });
    }
    if runs.is_empty() {
        runs.push(unchecked(drive, &stem, model));
    }
    runs
}

/// The one failed run of a drive none of whose frames could be checked.
fn unchecked(drive: &Path, stem: &str, model: &Path) -> RunRecord {
    RunRecord {
        key: format!("open/{stem}/0"),
        kind: "open".into(),
        family: format!("open:{stem}"),
        seed: None,
        drive: Some(drive.display().to_string()),
        must_pass: false,
        outcome: Outcome::Fail,
        category: Some("system_fault".into()),
        km: 0.0,
        hours: 0.0,
        kept_drive: Some(drive.display().to_string()),
        replay: Some(super::eval::replay_command(drive, Some(model))),
        events: vec![RunEvent {
            time_s: 0.0,
            category: "system_fault".into(),
            detail: "no frame of the drive could be checked (no camera frame with labels and a model output)"
                .into(),
            value: 0.0,
        }],
        metrics: vec![("frames".into(), 0.0)],
        seen_in_training: false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(t: f64, driven: [f32; 2], predicted: [f32; 2], lead: Option<f32>, p_lead: f32) -> FrameCheck {
        FrameCheck {
            time_s: t,
            speed_mps: 10.0,
            driven_at_horizon: Some(driven),
            lead_m: lead,
            predicted: Some(Predicted { at_horizon: predicted, lead_probability: p_lead }),
        }
    }

    #[test]
    fn misses_fail_their_window_once_per_onset() {
        let thresholds = Thresholds { window_s: 10.0, ..Thresholds::default() };
        let mut checks: Vec<FrameCheck> =
            (0..300).map(|i| check(f64::from(i) * 0.1, [20.0, 0.0], [20.5, 0.5], None, 0.0)).collect();
        // Window 1: a plan miss over three frames (one onset), then a lead at 30 m not predicted.
        for c in &mut checks[120..123] {
            c.predicted = Some(Predicted { at_horizon: [20.0, 2.5], lead_probability: 0.0 });
        }
        checks[150].lead_m = Some(30.0);
        // Window 2: a lead beyond range, and one within range that is predicted.
        checks[250].lead_m = Some(45.0);
        checks[260].lead_m = Some(20.0);
        checks[260].predicted = Some(Predicted { at_horizon: [20.0, 0.0], lead_probability: 0.9 });
        let runs = windows(Path::new("d/drive.mcap"), &checks, &thresholds, Path::new("m.onnx"));
        assert_eq!(runs.len(), 3);
        assert_eq!(runs[0].outcome, Outcome::Pass);
        assert_eq!(runs[1].key, "open/drive/1");
        let categories: Vec<&str> = runs[1].events.iter().map(|e| e.category.as_str()).collect();
        assert_eq!(categories, ["plan_miss", "missed_lead"]);
        assert!((runs[1].events[0].value - 2.5).abs() < 1e-6);
        assert_eq!(runs[1].category.as_deref(), Some("plan_miss"));
        let replay = runs[1].replay.as_deref().unwrap();
        let cwd = std::env::current_dir().unwrap();
        let expected =
            format!("nines replay {}/d/drive.mcap --model {}/m.onnx", cwd.display(), cwd.display());
        assert!(replay.starts_with(&expected) || replay.contains('\''), "{replay}");
        assert_eq!(runs[2].outcome, Outcome::Pass);
        assert!((runs[0].km - 0.099).abs() < 1e-3, "{}", runs[0].km);
    }

    #[test]
    fn a_window_or_a_drive_without_model_output_is_never_a_pass() {
        let thresholds = Thresholds { window_s: 10.0, ..Thresholds::default() };
        let mut checks: Vec<FrameCheck> =
            (0..200).map(|i| check(f64::from(i) * 0.1, [20.0, 0.0], [20.0, 0.0], None, 0.0)).collect();
        for c in &mut checks[100..] {
            c.predicted = None;
        }
        let runs = windows(Path::new("d.mcap"), &checks, &thresholds, Path::new("m.onnx"));
        assert_eq!(runs[0].outcome, Outcome::Pass);
        assert_eq!((runs[1].outcome, runs[1].category.as_deref()), (Outcome::Fail, Some("system_fault")));
        assert!(runs[1].metrics.iter().all(|(name, v)| name != "plan_error_mean_m" && v.is_finite()));
        let none = windows(Path::new("d.mcap"), &[], &thresholds, Path::new("m.onnx"));
        assert_eq!((none.len(), none[0].outcome), (1, Outcome::Fail));
    }

    #[test]
    fn the_horizon_is_the_nearest_plan_time() {
        assert_eq!(horizon_index(&[0.5, 1.0, 1.5, 2.0, 2.5, 3.0], 2.0), 3);
        assert_eq!(horizon_index(&[0.4, 0.8, 1.2, 1.6, 2.1], 2.0), 4);
    }
}
