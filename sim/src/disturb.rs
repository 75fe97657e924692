//! Disturbances for recovery data (DART): while the expert collects a
//! drive, its executed command is perturbed, so the car reaches the
//! off-centre states a camera-only model drifts into, and the expert's
//! reaction to them is recorded. Distillation never imitates the drift (a
//! plan label whose window overlaps a disturbance is invalid); it imitates
//! the recovery that follows.
//!
//! A profile ([`DisturbProfile`]) says how often, how long and how strong;
//! a plan ([`DisturbancePlan`]) is one run's draw from it, seeded by the
//! family, the seed and the profile, so the same family, seed and profile
//! give the same drive, byte for byte.

use std::path::Path;

use nines_datasets::msg::{AckermannDrive, Controller, EventKind};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::error::{Result, SimError};
use crate::record::{Control, Driver, Mark, Observation};

/// How a collecting run is disturbed. Every key has a default (none of
/// it: a profile file names what it turns on); unknown keys are refused.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DisturbProfile {
    /// Name, recorded in the drive's events and the model card.
    pub name: String,
    /// Mean time between the starts of steering events, s (exponential
    /// gaps, so starts are memoryless); 0 turns them off.
    pub steer_every_s: f64,
    /// Length of one steering event, s, uniform in this range (ramps included).
    pub steer_duration_s: [f64; 2],
    /// Peak steering offset of one event, rad, uniform in this range, either sign.
    pub steer_offset_rad: [f64; 2],
    /// Ramp in and out of an event, s (a quarter of the event at most).
    pub ramp_s: f64,
    /// Mean time between the starts of speed events, s; 0 turns them off.
    pub speed_every_s: f64,
    /// Length of one speed event, s, uniform in this range.
    pub speed_duration_s: [f64; 2],
    /// Largest change of the expert's desired speed, as a fraction (0.2: up to +-20%).
    pub speed_change: f64,
    /// Initial lateral offset from the lane centre, m, uniform in +-this.
    pub initial_lateral_m: f64,
    /// Initial heading offset from the lane, degrees, uniform in +-this.
    pub initial_heading_deg: f64,
    /// The steering offset fades out as the car nears this far off its lane
    /// centre, m, or half a metre from the road's edge: collection stays on
    /// the road while reaching the off-centre states the model reaches.
    pub max_lateral_m: f64,
}

impl Default for DisturbProfile {
    /// `none`: nothing injected.
    fn default() -> Self {
        Self {
            name: "none".into(),
            steer_every_s: 0.0,
            steer_duration_s: [0.5, 3.0],
            steer_offset_rad: [0.0, 0.0],
            ramp_s: 0.3,
            speed_every_s: 0.0,
            speed_duration_s: [1.0, 4.0],
            speed_change: 0.0,
            initial_lateral_m: 0.0,
            initial_heading_deg: 0.0,
            max_lateral_m: 1.2,
        }
    }
}

impl DisturbProfile {
    /// The built-in `dart` profile (sized in docs/NINES.md, "Recovery data").
    ///
    /// A steering event of 0.5-3 s starts on average every 8 s. Its peak
    /// offset, 0.01-0.045 rad, is what the expert's pure pursuit holds
    /// against at a lateral error of about 0.3-1.2 m (its correction is
    /// about 0.036 rad per metre at 13 m/s): the range of lateral offsets
    /// the current model reaches before it fails. Speed events of 1-3 s
    /// every 15 s change the desired speed by up to 20%. Each run starts up
    /// to 1 m off the lane centre and 8 degrees off its heading. Events are
    /// that far apart because a plan point whose 3 s window crosses one is
    /// masked: at every 4 s and 6 s, 66-88% of the demo's plan points were.
    #[must_use]
    pub fn dart() -> Self {
        Self {
            name: "dart".into(),
            steer_every_s: 8.0,
            steer_offset_rad: [0.01, 0.045],
            speed_every_s: 15.0,
            speed_duration_s: [1.0, 3.0],
            speed_change: 0.2,
            initial_lateral_m: 1.0,
            initial_heading_deg: 8.0,
            ..Self::default()
        }
    }

    /// `none`, `dart`, or a TOML file (every key defaulted; the name
    /// defaults to the file's stem).
    pub fn named(spec: &str) -> Result<Self> {
        match spec {
            "none" => Ok(Self::default()),
            "dart" => Ok(Self::dart()),
            file => Self::load(Path::new(file)),
        }
    }

    /// Reads a profile file and checks it.
    pub fn load(path: &Path) -> Result<Self> {
        let bad = |detail: String| SimError::Scenario { file: path.display().to_string(), detail };
        let text = std::fs::read_to_string(path).map_err(|e| {
            bad(format!("cannot read the disturbance profile ({e}); give `none`, `dart` or a TOML file"))
        })?;
        let mut profile: Self =
            toml::from_str(&text).map_err(|e| bad(e.to_string().trim_end().to_owned()))?;
        if !text.lines().any(|l| l.trim_start().starts_with("name")) {
            profile.name =
                path.file_stem().map_or_else(|| "custom".into(), |s| s.to_string_lossy().into_owned());
        }
        profile.check().map_err(bad)?;
        Ok(profile)
    }

    /// Refuses values no run could use, naming the key.
    pub fn check(&self) -> std::result::Result<(), String> {
        let non_negative = [
            ("steer_every_s", self.steer_every_s),
            ("ramp_s", self.ramp_s),
            ("speed_every_s", self.speed_every_s),
            ("initial_lateral_m", self.initial_lateral_m),
            ("initial_heading_deg", self.initial_heading_deg),
            ("max_lateral_m", self.max_lateral_m),
        ];
        for (key, value) in non_negative {
            if !(value.is_finite() && value >= 0.0) {
                return Err(format!("`{key}` = {value}: must be a number >= 0"));
            }
        }
        let ranges = [
            ("steer_duration_s", self.steer_duration_s, f64::MIN_POSITIVE),
            ("steer_offset_rad", self.steer_offset_rad, 0.0),
            ("speed_duration_s", self.speed_duration_s, f64::MIN_POSITIVE),
        ];
        for (key, [a, b], least) in ranges {
            if !(a.is_finite() && b.is_finite() && a >= least && b >= a) {
                return Err(format!("`{key}` = [{a}, {b}]: write [low, high] with {least} <= low <= high"));
            }
        }
        if self.steer_offset_rad[1] > 0.3 {
            return Err(format!(
                "`steer_offset_rad` up to {} rad: more than 0.3 rad is a spin, not a disturbance",
                self.steer_offset_rad[1]
            ));
        }
        if !(0.0..0.9).contains(&self.speed_change) {
            return Err(format!("`speed_change` = {}: must lie in [0, 0.9)", self.speed_change));
        }
        Ok(())
    }

    /// Whether it injects anything at all.
    #[must_use]
    pub fn active(&self) -> bool {
        (self.steer_every_s > 0.0 && self.steer_offset_rad[1] > 0.0)
            || (self.speed_every_s > 0.0 && self.speed_change > 0.0)
            || self.initial_lateral_m > 0.0
            || self.initial_heading_deg > 0.0
    }
}

/// One disturbance event of a run.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Disturbance {
    /// Start, s of sim time.
    pub start_secs: f64,
    /// End, s.
    pub end_secs: f64,
    /// Ramp in and out, s.
    pub ramp_secs: f64,
    /// Peak: a steering offset (rad) or a speed factor minus one.
    pub peak: f64,
}

impl Disturbance {
    /// How much of the peak applies at `t`: 0 outside, ramping linearly in and out.
    #[must_use]
    pub fn weight(&self, t: f64) -> f64 {
        if t < self.start_secs || t >= self.end_secs {
            return 0.0;
        }
        let ramp = self.ramp_secs.min((self.end_secs - self.start_secs) / 4.0).max(1e-9);
        ((t - self.start_secs) / ramp).min((self.end_secs - t) / ramp).min(1.0)
    }

    /// Whether `t` lies inside the event (its ramps included).
    #[must_use]
    pub fn covers(&self, t: f64) -> bool {
        t >= self.start_secs && t < self.end_secs
    }
}

/// One run's disturbances, drawn from a profile before the run starts.
#[derive(Debug, Clone, PartialEq)]
pub struct DisturbancePlan {
    /// The profile's name.
    pub profile: String,
    /// Steering events, in time order.
    pub steering: Vec<Disturbance>,
    /// Speed events, in time order.
    pub speed: Vec<Disturbance>,
    /// Initial lateral offset, m (positive: left of the lane centre).
    pub initial_lateral_m: f64,
    /// Initial heading offset, rad (positive: turned left).
    pub initial_heading_rad: f64,
}

impl DisturbancePlan {
    /// The plan of a run of `family` and `seed` lasting `duration_secs`:
    /// the same arguments, the same plan.
    #[must_use]
    pub fn draw(profile: &DisturbProfile, family: &str, seed: u64, duration_secs: f64) -> Self {
        // The stream is separate from the scenario's own draw (another key), so
        // disturbing a run never changes its road or actors.
        let key = family.bytes().fold(0xD15E_u64, |h, b| h.rotate_left(5) ^ u64::from(b));
        let name = profile.name.bytes().fold(key, |h, b| h.rotate_left(7) ^ u64::from(b));
        let mut rng = ChaCha8Rng::seed_from_u64(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ name);
        let symmetric =
            |rng: &mut ChaCha8Rng, half: f64| if half > 0.0 { rng.random_range(-half..=half) } else { 0.0 };
        let initial_lateral_m = symmetric(&mut rng, profile.initial_lateral_m);
        let initial_heading_rad = symmetric(&mut rng, profile.initial_heading_deg).to_radians();
        let steering = events(
            &mut rng,
            profile.steer_every_s,
            profile.steer_duration_s,
            profile.ramp_s,
            duration_secs,
            |rng| {
                let [a, b] = profile.steer_offset_rad;
                let magnitude = if b > a { rng.random_range(a..=b) } else { a };
                if rng.random_bool(0.5) { magnitude } else { -magnitude }
            },
        );
        let speed = events(
            &mut rng,
            profile.speed_every_s,
            profile.speed_duration_s,
            profile.ramp_s,
            duration_secs,
            |rng| symmetric(rng, profile.speed_change),
        );
        let keep = |d: &Disturbance| d.peak != 0.0;
        Self {
            profile: profile.name.clone(),
            steering: steering.into_iter().filter(keep).collect(),
            speed: speed.into_iter().filter(keep).collect(),
            initial_lateral_m,
            initial_heading_rad,
        }
    }

    /// What is injected at `t`: (steering offset rad, speed factor, whether any event covers `t`).
    #[must_use]
    pub fn at(&self, t: f64) -> (f64, f64, bool) {
        let steer: f64 = self.steering.iter().map(|d| d.peak * d.weight(t)).sum();
        let speed: f64 = self.speed.iter().map(|d| d.peak * d.weight(t)).sum();
        let covered = self.steering.iter().chain(&self.speed).any(|d| d.covers(t));
        (steer, 1.0 + speed, covered)
    }
}

/// Events starting at exponential gaps of mean `every_s` until `duration_s`.
fn events(
    rng: &mut ChaCha8Rng,
    every_s: f64,
    [short, long]: [f64; 2],
    ramp_s: f64,
    duration_s: f64,
    mut peak: impl FnMut(&mut ChaCha8Rng) -> f64,
) -> Vec<Disturbance> {
    let mut out = Vec::new();
    if every_s <= 0.0 {
        return out;
    }
    // The first second is left alone, so the run's start is the expert's own.
    let mut t = 1.0;
    loop {
        let gap = -every_s * (1.0 - rng.random::<f64>()).ln();
        t += gap;
        if t >= duration_s {
            return out;
        }
        let length = if long > short { rng.random_range(short..=long) } else { short };
        out.push(Disturbance { start_secs: t, end_secs: t + length, ramp_secs: ramp_s, peak: peak(rng) });
        // Events of one kind do not overlap: the next starts after this one ends.
        t += length;
    }
}

/// The expert collecting a drive under a disturbance plan: its executed
/// command carries the plan's steering offset, and its desired speed the
/// plan's factor; its shadow command (ground truth) stays undisturbed.
#[derive(Debug, Clone)]
pub struct DisturbedExpert {
    plan: DisturbancePlan,
    max_lateral_m: f64,
    last: Control,
    /// Every disturbance's event, in start order (made once from the plan).
    marks: Vec<Mark>,
    marked: usize,
}

impl DisturbedExpert {
    /// The expert under `plan`, keeping within `max_lateral_m` of its lane
    /// centre (see [`DisturbProfile::max_lateral_m`]).
    #[must_use]
    pub fn new(plan: DisturbancePlan, max_lateral_m: f64) -> Self {
        let steering = plan.steering.iter().map(|d| {
            let what = format!("steering {:+.3} rad", d.peak);
            mark(&plan.profile, "disturbance_steering", &what, d)
        });
        let speed = plan.speed.iter().map(|d| {
            let what = format!("desired speed x{:.2}", 1.0 + d.peak);
            mark(&plan.profile, "disturbance_speed", &what, d)
        });
        let mut marks: Vec<Mark> = steering.chain(speed).collect();
        marks.sort_by(|a, b| a.time_secs.total_cmp(&b.time_secs));
        Self { plan, max_lateral_m, last: Control::by(Controller::Human), marks, marked: 0 }
    }
}

/// The event of one disturbance: when it starts, what it injects until when.
fn mark(profile: &str, category: &str, what: &str, d: &Disturbance) -> Mark {
    Mark {
        time_secs: d.start_secs,
        kind: EventKind::Disturbance,
        category: category.to_owned(),
        detail: format!("{profile} profile: {what} from {:.2} s to {:.2} s", d.start_secs, d.end_secs),
        value: d.end_secs - d.start_secs,
    }
}

impl Driver for DisturbedExpert {
    fn wants_camera(&self) -> bool {
        false
    }

    fn command(&mut self, observation: &Observation<'_>) -> AckermannDrive {
        let (mut steer, factor, covered) = self.plan.at(observation.time_secs);
        // A safety envelope, as a real collection vehicle has: the push fades
        // over the last half metre before the largest offset or the road's edge.
        let sim = observation.sim;
        let (lateral, _) = sim.lane_error();
        let (left, right) = sim.room_on_road();
        let (toward_edge, toward_limit) = if steer > 0.0 {
            (left, self.max_lateral_m - lateral)
        } else {
            (right, self.max_lateral_m + lateral)
        };
        steer *= ((toward_edge - 0.5).min(toward_limit) / 0.5).clamp(0.0, 1.0);
        let mut command = sim.expert_command_with_speed_factor(factor);
        command.steering_angle += steer as f32;
        self.last = Control {
            controller: Controller::Human,
            disturbed: covered,
            steering_offset_rad: steer as f32,
            speed_factor: factor as f32,
        };
        command
    }

    fn control(&self) -> Control {
        self.last
    }

    fn marks(&mut self, now_secs: f64) -> Vec<Mark> {
        // Every disturbance once, when it starts.
        let due = self.marks[self.marked..].iter().take_while(|m| m.time_secs <= now_secs + 1e-9).count();
        self.marked += due;
        self.marks[self.marked - due..self.marked].to_vec()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_plan_is_a_function_of_family_seed_and_profile() {
        let dart = DisturbProfile::dart();
        let a = DisturbancePlan::draw(&dart, "curves", 7, 60.0);
        assert_eq!(a, DisturbancePlan::draw(&dart, "curves", 7, 60.0));
        assert_ne!(a, DisturbancePlan::draw(&dart, "curves", 8, 60.0));
        assert_ne!(a, DisturbancePlan::draw(&dart, "straight", 7, 60.0));
        // About one steering event every 8 s plus its length (about 6 a minute), each within the profile.
        let mean = (0..40)
            .map(|s| DisturbancePlan::draw(&dart, "curves", s, 60.0).steering.len())
            .sum::<usize>() as f64
            / 40.0;
        assert!((4.5..=7.5).contains(&mean), "{mean} steering events a minute");
        for d in &a.steering {
            let length = d.end_secs - d.start_secs;
            assert!((0.5..=3.0).contains(&length) && (0.01..=0.045).contains(&d.peak.abs()), "{d:?}");
        }
        assert!(a.steering.windows(2).all(|w| w[1].start_secs >= w[0].end_secs), "no overlap");
        assert!(a.speed.iter().all(|d| d.peak.abs() <= 0.2));
        assert!(a.initial_lateral_m.abs() <= 1.0 && a.initial_heading_rad.abs() <= 8f64.to_radians());
        let none = DisturbancePlan::draw(&DisturbProfile::default(), "curves", 7, 60.0);
        assert!(none.steering.is_empty() && none.speed.is_empty() && none.initial_lateral_m == 0.0);
    }

    #[test]
    fn events_ramp_in_and_out() {
        let d = Disturbance { start_secs: 10.0, end_secs: 12.0, ramp_secs: 0.4, peak: 0.03 };
        assert!(d.weight(9.99).abs() < 1e-12 && d.weight(12.0).abs() < 1e-12);
        assert!((d.weight(10.2) - 0.5).abs() < 1e-9);
        assert!((d.weight(11.0) - 1.0).abs() < 1e-12);
        assert!((d.weight(11.9) - 0.25).abs() < 1e-9);
        assert!(d.covers(10.0) && !d.covers(12.0));
    }

    #[test]
    fn profiles_load_and_bad_keys_are_named() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("gentle.toml");
        std::fs::write(&path, "steer_every_s = 8.0\nsteer_offset_rad = [0.01, 0.02]\n").expect("write");
        let p = DisturbProfile::named(path.to_str().expect("utf-8")).expect("a profile");
        assert_eq!((p.name.as_str(), p.steer_every_s, p.speed_every_s), ("gentle", 8.0, 0.0));
        assert!(p.active());
        std::fs::write(&path, "steer_offset_rad = [0.05, 0.01]\n").expect("write");
        let e = DisturbProfile::named(path.to_str().expect("utf-8")).expect_err("refused").to_string();
        assert!(e.contains("gentle.toml") && e.contains("steer_offset_rad"), "{e}");
        std::fs::write(&path, "steer_often = 1.0\n").expect("write");
        let e = DisturbProfile::named(path.to_str().expect("utf-8")).expect_err("refused").to_string();
        assert!(e.contains("steer_often"), "{e}");
        assert!(!DisturbProfile::named("none").expect("built in").active());
        assert!(DisturbProfile::named("dart").expect("built in").active());
    }
}
