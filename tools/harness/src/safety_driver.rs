//! The safety driver of collection runs (HG-DAgger): the model drives, the
//! expert watches with privileged state and takes over before a failure,
//! drives back to a stable state and hands back. Every takeover is an
//! intervention; the drive records who drove at every control period, so
//! distillation imitates the safety driver's recovery and never the model.
//!
//! Release evaluation has no safety driver: there a failure is a failure.

use serde::{Deserialize, Serialize};

use nines_datasets::msg::EventKind;
use nines_sim::record::Mark;

/// When the safety driver takes over, and when it hands back. Every key
/// has a default; unknown keys are refused.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Takeover {
    /// Take over this far off the lane centre, m (a lane departure is 1.75 m).
    pub lateral_m: f64,
    /// Take over this far off the lane's heading, degrees.
    pub heading_deg: f64,
    /// Take over below this time to collision, s (a failure below 0.95 s).
    pub ttc_s: f64,
    /// Stable again within this distance of the centre, m...
    pub stable_lateral_m: f64,
    /// ...and this heading error, degrees...
    pub stable_heading_deg: f64,
    /// ...held this long, s, with no collision closer than `2 * ttc_s`.
    pub stable_s: f64,
}

impl Default for Takeover {
    fn default() -> Self {
        Self {
            lateral_m: 0.9,
            heading_deg: 6.0,
            ttc_s: 1.5,
            stable_lateral_m: 0.3,
            stable_heading_deg: 2.0,
            stable_s: 1.0,
        }
    }
}

impl Takeover {
    /// Refuses thresholds that cannot work, naming the key.
    pub fn check(&self) -> Result<(), String> {
        let keys = [
            ("lateral_m", self.lateral_m),
            ("heading_deg", self.heading_deg),
            ("ttc_s", self.ttc_s),
            ("stable_lateral_m", self.stable_lateral_m),
            ("stable_heading_deg", self.stable_heading_deg),
            ("stable_s", self.stable_s),
        ];
        if let Some((key, value)) = keys.iter().find(|(_, v)| !(v.is_finite() && *v > 0.0)) {
            return Err(format!("takeover.{key} = {value}: must be a positive number"));
        }
        if self.stable_lateral_m >= self.lateral_m || self.stable_heading_deg >= self.heading_deg {
            return Err(format!(
                "takeover: the stable band ({} m, {} degrees) must lie inside the takeover thresholds ({} m, {} degrees)",
                self.stable_lateral_m, self.stable_heading_deg, self.lateral_m, self.heading_deg
            ));
        }
        Ok(())
    }
}

/// What the safety driver sees in one control period (privileged state).
#[derive(Debug, Clone, Copy)]
pub struct Watch {
    /// Sim time, s.
    pub time_s: f64,
    /// Left of the lane centre, m.
    pub lateral_m: f64,
    /// Turned left of the lane's heading, rad.
    pub heading_rad: f64,
    /// Time to collision with the actor ahead, s, if closing on one.
    pub ttc_s: Option<f64>,
    /// The runtime made a controlled stop in this period.
    pub runtime_stopped: bool,
    /// The runtime is engaged (its commands would drive).
    pub runtime_engaged: bool,
}

/// One takeover.
#[derive(Debug, Clone, PartialEq)]
pub struct Intervention {
    /// When the safety driver took over, s.
    pub start_s: f64,
    /// When it handed back, s (`None` while it still drives).
    pub end_s: Option<f64>,
    /// Why.
    pub reason: String,
}

/// The safety driver's state through a run.
#[derive(Debug, Clone)]
pub struct SafetyDriver {
    takeover: Takeover,
    /// Since when the state has been stable, while driving.
    stable_since: Option<f64>,
    /// Every takeover, the open one last.
    pub interventions: Vec<Intervention>,
    marks: Vec<Mark>,
}

impl SafetyDriver {
    /// A safety driver with these thresholds.
    #[must_use]
    pub fn new(takeover: Takeover) -> Self {
        Self { takeover, stable_since: None, interventions: Vec::new(), marks: Vec::new() }
    }

    /// Whether the safety driver is driving.
    #[must_use]
    pub fn driving(&self) -> bool {
        self.interventions.last().is_some_and(|i| i.end_s.is_none())
    }

    /// Looks at one control period; returns true when the safety driver
    /// drives it. Takes over only from an engaged runtime (before the first
    /// engagement the expert already drives, as at any handover); asks the
    /// runtime to re-engage through `engage` once the state is stable, and
    /// hands back when it has.
    pub fn watch(&mut self, w: &Watch, engage: &mut dyn FnMut()) -> bool {
        let t = &self.takeover;
        if !self.driving() {
            let reason = if w.runtime_stopped {
                Some("the runtime made a controlled stop".to_owned())
            } else if !w.runtime_engaged {
                None
            } else if w.lateral_m.abs() > t.lateral_m {
                Some(format!("{:.2} m off the lane centre (limit {} m)", w.lateral_m.abs(), t.lateral_m))
            } else if w.heading_rad.abs().to_degrees() > t.heading_deg {
                Some(format!(
                    "{:.1} degrees off the lane's heading (limit {})",
                    w.heading_rad.abs().to_degrees(),
                    t.heading_deg
                ))
            } else {
                w.ttc_s
                    .filter(|ttc| *ttc < t.ttc_s)
                    .map(|ttc| format!("time to collision {ttc:.2} s (limit {} s)", t.ttc_s))
            };
            let Some(reason) = reason else { return false };
            self.marks.push(Mark {
                time_secs: w.time_s,
                kind: EventKind::Intervention,
                category: "takeover".into(),
                detail: format!("the safety driver took over: {reason}"),
                value: w.lateral_m.abs(),
            });
            self.interventions.push(Intervention { start_s: w.time_s, end_s: None, reason });
            self.stable_since = None;
            return true;
        }
        let stable = w.lateral_m.abs() <= t.stable_lateral_m
            && w.heading_rad.abs().to_degrees() <= t.stable_heading_deg
            && w.ttc_s.is_none_or(|ttc| ttc >= 2.0 * t.ttc_s);
        self.stable_since = if stable { self.stable_since.or(Some(w.time_s)) } else { None };
        let settled = self.stable_since.is_some_and(|since| w.time_s - since >= t.stable_s - 1e-9);
        if !settled {
            return true;
        }
        if !w.runtime_engaged {
            engage();
            return true;
        }
        if let Some(open) = self.interventions.last_mut() {
            open.end_s = Some(w.time_s);
            self.marks.push(Mark {
                time_secs: w.time_s,
                kind: EventKind::Intervention,
                category: "handback".into(),
                detail: format!(
                    "the safety driver handed back after {:.1} s (took over at {:.2} s: {})",
                    w.time_s - open.start_s,
                    open.start_s,
                    open.reason
                ),
                value: w.time_s - open.start_s,
            });
        }
        self.stable_since = None;
        false
    }

    /// The takeover and hand-back events not yet written.
    pub fn take_marks(&mut self) -> Vec<Mark> {
        std::mem::take(&mut self.marks)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(time_s: f64, lateral_m: f64, engaged: bool) -> Watch {
        Watch {
            time_s,
            lateral_m,
            heading_rad: 0.0,
            ttc_s: None,
            runtime_stopped: false,
            runtime_engaged: engaged,
        }
    }

    #[test]
    fn takes_over_past_a_threshold_and_hands_back_once_stable_and_engaged() {
        let mut driver = SafetyDriver::new(Takeover::default());
        let asked = std::cell::Cell::new(0);
        let mut engage = || asked.set(asked.get() + 1);
        assert!(!driver.watch(&at(0.0, 1.5, false), &mut engage), "the runtime never engaged: no takeover");
        assert!(!driver.watch(&at(1.0, 0.5, true), &mut engage));
        assert!(driver.watch(&at(2.0, 0.95, true), &mut engage), "0.95 m > 0.9 m");
        assert!(driver.watch(&at(2.5, 0.2, true), &mut engage), "stable, but not for a second yet");
        assert!(driver.watch(&at(3.0, 0.5, true), &mut engage), "unstable again");
        assert!(driver.watch(&at(3.5, 0.1, false), &mut engage));
        assert!(driver.watch(&at(4.5, 0.1, false), &mut engage), "stable, but the runtime is not engaged");
        assert_eq!(asked.get(), 1, "so it is asked to engage");
        assert!(!driver.watch(&at(4.6, 0.1, true), &mut engage), "handed back");
        assert_eq!(
            driver.interventions,
            vec![Intervention {
                start_s: 2.0,
                end_s: Some(4.6),
                reason: "0.95 m off the lane centre (limit 0.9 m)".into()
            }]
        );
        let marks = driver.take_marks();
        assert_eq!(marks.iter().map(|m| m.category.as_str()).collect::<Vec<_>>(), ["takeover", "handback"]);
        assert!(marks.iter().all(|m| m.kind == EventKind::Intervention));
        assert!((marks[1].value - 2.6).abs() < 1e-9, "{}", marks[1].detail);
        assert!(driver.take_marks().is_empty());
    }

    #[test]
    fn a_runtime_stop_or_a_close_lead_is_a_takeover() {
        let mut driver = SafetyDriver::new(Takeover::default());
        let stop = Watch { runtime_stopped: true, ..at(1.0, 0.0, false) };
        assert!(driver.watch(&stop, &mut || {}));
        assert_eq!(driver.interventions[0].reason, "the runtime made a controlled stop");
        let mut driver = SafetyDriver::new(Takeover::default());
        assert!(driver.watch(&Watch { ttc_s: Some(1.2), ..at(1.0, 0.0, true) }, &mut || {}));
        assert!(driver.interventions[0].reason.contains("time to collision 1.20 s"));
        let turned = Watch { heading_rad: 7f64.to_radians(), ..at(1.0, 0.0, true) };
        assert!(SafetyDriver::new(Takeover::default()).watch(&turned, &mut || {}));
    }

    #[test]
    fn thresholds_that_cannot_work_are_refused() {
        assert!(Takeover::default().check().is_ok());
        let inverted = Takeover { stable_lateral_m: 1.0, ..Takeover::default() };
        assert!(inverted.check().unwrap_err().contains("stable band"));
        let zero = Takeover { ttc_s: 0.0, ..Takeover::default() };
        assert!(zero.check().unwrap_err().contains("takeover.ttc_s"));
        let unknown = toml::from_str::<Takeover>("lateral = 1.0");
        assert!(unknown.is_err(), "unknown keys are refused");
    }
}
