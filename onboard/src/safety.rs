//! The safety monitor: frame age, inference deadline, output sanity (NaN,
//! ranges, jumps), frame decoding and source liveness. A violation while
//! engaged disengages at once: the same control period's command is the
//! controlled stop. Re-engaging needs `reengage_good_frames` good frames in
//! a row *and* an explicit request made after the stop.

use crate::config::SafetyConfig;
use crate::controller::Prediction;

/// What went wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// The newest frame is too old (camera stall).
    FrameAge,
    /// Preprocess and inference took longer than the deadline.
    Deadline,
    /// The network produced NaN or infinity.
    NonFinite,
    /// An output outside its physical range.
    Range,
    /// The plan jumped between frames more than motion explains.
    Jump,
    /// A frame could not be decoded.
    BadFrame,
    /// The history stack is missing a frame the model needs.
    History,
    /// ONNX Runtime failed to run.
    Inference,
    /// The source stopped answering.
    SourceLost,
    /// The source ended.
    SourceEnded,
}

impl Fault {
    /// Event category and diagnostics name.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Self::FrameAge => "frame_age",
            Self::Deadline => "inference_deadline",
            Self::NonFinite => "output_nan",
            Self::Range => "output_range",
            Self::Jump => "output_jump",
            Self::BadFrame => "bad_frame",
            Self::History => "frame_history",
            Self::Inference => "inference_error",
            Self::SourceLost => "source_lost",
            Self::SourceEnded => "source_ended",
        }
    }
}

/// A violation with its time and measured value.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Violation {
    /// What.
    pub fault: Fault,
    /// When, ns (source clock).
    pub stamp_ns: u64,
    /// The measured value (age s, duration s, jump m, ...), 0 if none.
    pub value: f64,
}

/// Engagement state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Not yet engaged (start-up or waiting for a re-engage request).
    Standby,
    /// The model drives.
    Engaged,
    /// Stopped by a violation; needs good frames and a request.
    Stopped,
}

/// The monitor.
#[derive(Debug, Clone)]
pub struct SafetyMonitor {
    config: SafetyConfig,
    mode: Mode,
    requested: bool,
    good_run: u32,
    last_plan_end: Option<[f32; 2]>,
    stops: u32,
    lockstep: bool,
}

impl SafetyMonitor {
    /// A monitor in standby (requested when `engage_on_start`). With
    /// `lockstep`, the deadline is judged on `lockstep_latency_ms`, never on
    /// the measured time (see [`Self::check_frame`]).
    #[must_use]
    pub fn new(config: SafetyConfig, lockstep: bool) -> Self {
        Self {
            requested: config.engage_on_start,
            config,
            mode: Mode::Standby,
            good_run: 0,
            last_plan_end: None,
            stops: 0,
            lockstep,
        }
    }

    /// Whether a frame overran the inference deadline, and the latency that
    /// did, s. In real time the measured `busy_s` decides; in lockstep the
    /// configured `lockstep_latency_ms` (compared in ms, as configured, so
    /// a latency equal to the deadline never trips).
    fn overrun(&self, busy_s: f64) -> Option<f64> {
        let deadline_ms = self.config.inference_deadline_ms;
        match (self.lockstep, self.config.lockstep_latency_ms) {
            (true, None) => None,
            (true, Some(ms)) => (ms > deadline_ms).then_some(ms / 1e3),
            (false, _) => (busy_s * 1e3 > deadline_ms).then_some(busy_s),
        }
    }

    /// Current mode.
    #[must_use]
    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// Whether the model drives.
    #[must_use]
    pub fn engaged(&self) -> bool {
        self.mode == Mode::Engaged
    }

    /// Asks to (re-)engage; honoured after enough good frames.
    pub fn request_engage(&mut self) {
        self.requested = true;
    }

    /// Good frames in a row (the run re-engagement waits for).
    #[must_use]
    pub fn good_frames(&self) -> u32 {
        self.good_run
    }

    /// Controlled stops so far.
    #[must_use]
    pub fn stops(&self) -> u32 {
        self.stops
    }

    /// Checks a new prediction. `busy_s` is preprocess plus inference time
    /// as measured (it decides the deadline only in real time).
    /// Returns the violation, if any (whether or not it stopped the vehicle:
    /// compare [`Self::mode`] before and after).
    pub fn check_frame(
        &mut self,
        prediction: &Prediction,
        busy_s: f64,
        history_complete: bool,
        speed: f64,
    ) -> Option<Violation> {
        let stamp_ns = prediction.stamp_ns;
        let overrun = self.overrun(busy_s);
        let fault = self.output_fault(prediction, speed).or(if let Some(latency_s) = overrun {
            Some((Fault::Deadline, latency_s))
        } else if history_complete {
            None
        } else {
            Some((Fault::History, 0.0))
        });
        if let Some((fault, value)) = fault {
            return self.violate(Violation { fault, stamp_ns, value });
        }
        self.good_run = self.good_run.saturating_add(1);
        if self.mode != Mode::Engaged && self.requested && self.good_run >= self.config.reengage_good_frames {
            self.mode = Mode::Engaged;
            self.requested = false;
        }
        None
    }

    /// A frame that failed before inference (decode, inference error).
    pub fn check_failed_frame(&mut self, fault: Fault, stamp_ns: u64) -> Option<Violation> {
        self.violate(Violation { fault, stamp_ns, value: 0.0 })
    }

    /// Checks the age of the newest frame at `now_ns`.
    pub fn check_tick(&mut self, now_ns: u64, newest_frame_ns: Option<u64>) -> Option<Violation> {
        let age_s = newest_frame_ns.map_or(f64::INFINITY, |t| now_ns.saturating_sub(t) as f64 / 1e9);
        if age_s * 1e3 > self.config.max_frame_age_ms {
            let value = if age_s.is_finite() { age_s } else { 0.0 };
            return self.violate(Violation { fault: Fault::FrameAge, stamp_ns: now_ns, value });
        }
        None
    }

    /// The source ended or was lost.
    pub fn source_gone(&mut self, fault: Fault, now_ns: u64) -> Violation {
        let v = Violation { fault, stamp_ns: now_ns, value: 0.0 };
        self.violate(v);
        v
    }

    fn output_fault(&mut self, p: &Prediction, speed: f64) -> Option<(Fault, f64)> {
        let points = p.points();
        if points.iter().flatten().chain(&p.lead).any(|v| !v.is_finite()) {
            return Some((Fault::NonFinite, 0.0));
        }
        let range = self.config.max_plan_range_m as f32;
        if let Some(bad) = points.iter().flatten().find(|v| v.abs() > range) {
            return Some((Fault::Range, f64::from(*bad)));
        }
        if !(0.0..=1.0).contains(&p.lead[0]) || p.lead[1] < -1.0 || p.lead[1] > range {
            return Some((Fault::Range, f64::from(p.lead[1])));
        }
        let end = points.last().map(|q| [q[0], q[1]]);
        let previous = std::mem::replace(&mut self.last_plan_end, end);
        if let (Some(a), Some(b)) = (previous, end) {
            // Between two frames the ego moves on; allow for a 0.2 s frame gap at this speed.
            let jump = f64::from((a[0] - b[0]).hypot(a[1] - b[1])) - speed * 0.2;
            if jump > self.config.max_plan_jump_m {
                return Some((Fault::Jump, jump));
            }
        }
        None
    }

    #[expect(clippy::unnecessary_wraps, reason = "every check returns the violation it saw, or none")]
    fn violate(&mut self, v: Violation) -> Option<Violation> {
        self.good_run = 0;
        if self.mode == Mode::Engaged {
            self.mode = Mode::Stopped;
            self.requested = false;
            self.stops += 1;
        }
        Some(v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(end: f32) -> Prediction {
        let mut p = Prediction::new(&[1.0, 2.0]);
        p.plan[0] = [end / 2.0, 0.0, 5.0];
        p.plan[1] = [end, 0.0, 5.0];
        p.lead = [0.1, 30.0, 0.0];
        p
    }

    fn engaged() -> SafetyMonitor {
        let mut m =
            SafetyMonitor::new(SafetyConfig { reengage_good_frames: 2, ..SafetyConfig::default() }, false);
        for _ in 0..2 {
            assert_eq!(m.check_frame(&plan(10.0), 0.01, true, 5.0), None);
        }
        assert!(m.engaged());
        m
    }

    #[test]
    fn each_fault_stops_an_engaged_vehicle() {
        let mut nan = plan(10.0);
        nan.plan[1][1] = f32::NAN;
        let cases: [(Prediction, f64, bool, Fault); 5] = [
            (nan, 0.01, true, Fault::NonFinite),
            (plan(500.0), 0.01, true, Fault::Range),
            (plan(40.0), 0.01, true, Fault::Jump),
            (plan(10.0), 1.0, true, Fault::Deadline),
            (plan(10.0), 0.01, false, Fault::History),
        ];
        for (p, busy, complete, fault) in cases {
            let mut m = engaged();
            let v = m.check_frame(&p, busy, complete, 5.0).expect("violation");
            assert_eq!(v.fault, fault);
            assert_eq!(m.mode(), Mode::Stopped);
        }
        let mut m = engaged();
        assert_eq!(m.check_tick(1_200_000_000, Some(1_000_000_000)), None);
        assert_eq!(m.check_tick(1_400_000_000, Some(1_000_000_000)).map(|v| v.fault), Some(Fault::FrameAge));
    }

    #[test]
    fn in_lockstep_the_configured_latency_decides_the_deadline_in_milliseconds() {
        // 63.7 ms: (63.7 / 1e3) * 1e3 is above 63.7 in f64, so a round trip
        // through seconds would trip a latency equal to the deadline.
        let config = |latency: Option<f64>| SafetyConfig {
            inference_deadline_ms: 63.7,
            lockstep_latency_ms: latency,
            reengage_good_frames: 1,
            ..SafetyConfig::default()
        };
        for latency in [None, Some(63.7), Some(1.0)] {
            let mut m = SafetyMonitor::new(config(latency), true);
            // Measured 10 s: the wall clock never decides in lockstep.
            assert_eq!(m.check_frame(&plan(10.0), 10.0, true, 5.0), None, "{latency:?}");
            assert!(m.engaged());
        }
        let mut m = SafetyMonitor::new(config(Some(63.8)), true);
        let v = m.check_frame(&plan(10.0), 0.001, true, 5.0).expect("a configured overrun");
        assert_eq!(v.fault, Fault::Deadline);
        assert!((v.value - 0.0638).abs() < 1e-12, "the configured latency, s: {}", v.value);
        // In real time the measured time decides.
        let mut m = SafetyMonitor::new(config(Some(1.0)), false);
        assert_eq!(m.check_frame(&plan(10.0), 0.1, true, 5.0).map(|v| v.fault), Some(Fault::Deadline));
    }

    #[test]
    fn re_engaging_needs_good_frames_and_a_new_request() {
        let mut m = engaged();
        m.check_failed_frame(Fault::BadFrame, 5).expect("stop");
        for _ in 0..5 {
            m.check_frame(&plan(10.0), 0.01, true, 5.0);
        }
        assert_eq!(m.mode(), Mode::Stopped, "good frames alone do not re-engage");
        m.request_engage();
        m.check_frame(&plan(10.0), 0.01, true, 5.0);
        assert!(m.engaged(), "request plus a run of good frames re-engages");
        m.check_failed_frame(Fault::BadFrame, 6);
        m.request_engage();
        m.check_frame(&plan(10.0), 0.01, true, 5.0);
        assert!(!m.engaged(), "one good frame after a fault is not enough");
        assert_eq!(m.stops(), 2);
    }
}
