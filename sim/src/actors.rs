//! Other road users and obstacles, moving in road coordinates: vehicles
//! that follow their lane with IDM (and may brake or change lane on cue),
//! pedestrians that cross when the ego approaches, parked cars, cones.

use crate::road::Road;

/// What an actor is; decides its size, how it moves and how it looks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ActorKind {
    /// A moving car.
    Vehicle,
    /// A parked car (never moves).
    Parked,
    /// A pedestrian.
    Pedestrian,
    /// A traffic cone.
    Cone,
}

impl ActorKind {
    /// Length, width, height, m.
    #[must_use]
    pub fn size(self) -> (f64, f64, f64) {
        match self {
            Self::Vehicle | Self::Parked => (4.5, 1.85, 1.5),
            Self::Pedestrian => (0.5, 0.6, 1.75),
            Self::Cone => (0.4, 0.4, 0.7),
        }
    }

    /// Label on ground-truth boxes.
    #[must_use]
    pub fn label(self) -> &'static str {
        match self {
            Self::Vehicle | Self::Parked => "car",
            Self::Pedestrian => "pedestrian",
            Self::Cone => "cone",
        }
    }
}

/// A scripted braking manoeuvre of a vehicle.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BrakeCue {
    /// When, s.
    pub at_secs: f64,
    /// How hard (positive), m/s^2.
    pub decel_mps2: f64,
    /// For how long, s.
    pub for_secs: f64,
}

/// A scripted lane change of a vehicle.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LaneChangeCue {
    /// When, s.
    pub at_secs: f64,
    /// Lateral offset to reach, m.
    pub to_d: f64,
    /// How long the change takes, s.
    pub duration_secs: f64,
}

/// A pedestrian's crossing.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CrossingCue {
    /// Timing of the start: 0 makes a constant-speed ego and the pedestrian
    /// meet at the ego's lane; positive starts earlier by that many seconds.
    pub meet_offset_secs: f64,
    /// Walking speed, m/s.
    pub speed_mps: f64,
    /// Lateral offset where the walk ends, m.
    pub to_d: f64,
}

/// One actor.
#[derive(Debug, Clone, PartialEq)]
pub struct Actor {
    /// Id on ground-truth boxes.
    pub id: u32,
    /// Kind.
    pub kind: ActorKind,
    /// Along the road, m.
    pub s: f64,
    /// Across the road, m.
    pub d: f64,
    /// Speed along the road, m/s (negative for oncoming traffic).
    pub speed_mps: f64,
    /// Lateral speed, m/s.
    pub lateral_mps: f64,
    /// IDM desired speed (magnitude), m/s.
    pub desired_mps: f64,
    /// Scripted braking.
    pub brake: Option<BrakeCue>,
    /// Scripted lane change.
    pub lane_change: Option<LaneChangeCue>,
    /// Scripted crossing.
    pub crossing: Option<CrossingCue>,
    lane_change_from_d: Option<f64>,
    crossing_started: bool,
}

impl Actor {
    /// An actor at rest or cruising; cues are added by the caller.
    #[must_use]
    pub fn new(id: u32, kind: ActorKind, s: f64, d: f64, speed_mps: f64) -> Self {
        Self {
            id,
            kind,
            s,
            d,
            speed_mps,
            lateral_mps: 0.0,
            desired_mps: speed_mps.abs(),
            brake: None,
            lane_change: None,
            crossing: None,
            lane_change_from_d: None,
            crossing_started: false,
        }
    }

    /// Map pose: (x, y, yaw) of the box centre.
    #[must_use]
    pub fn pose(&self, road: &Road) -> (f64, f64, f64) {
        let (x, y) = road.point(self.s, self.d);
        let heading = road.centre(self.s).heading;
        let yaw = match self.kind {
            ActorKind::Pedestrian if self.crossing_started => {
                heading + std::f64::consts::FRAC_PI_2 * self.lateral_mps.signum()
            }
            _ if self.speed_mps < 0.0 => heading + std::f64::consts::PI,
            _ => heading + self.lateral_mps.atan2(self.speed_mps.abs().max(1.0)),
        };
        (x, y, yaw)
    }
}

/// Intelligent Driver Model acceleration for speed `v` towards `desired`,
/// with a leader `gap` m ahead closing at `closing` m/s (`None`: free road).
#[must_use]
pub fn idm_accel(v: f64, desired: f64, leader: Option<(f64, f64)>) -> f64 {
    const MAX_ACCEL: f64 = 1.5;
    const COMFORT_DECEL: f64 = 2.0;
    const MIN_GAP: f64 = 2.5;
    const TIME_GAP: f64 = 1.6;
    let free = 1.0 - (v / desired.max(0.1)).powi(4);
    let interaction = leader.map_or(0.0, |(gap, closing)| {
        let wanted = MIN_GAP + v * TIME_GAP + v * closing / (2.0 * (MAX_ACCEL * COMFORT_DECEL).sqrt());
        (wanted.max(0.0) / gap.max(0.1)).powi(2)
    });
    MAX_ACCEL * (free - interaction)
}

/// Advances every actor by `dt` at sim time `time_secs`; `ego` is the ego's
/// (s, d, speed) so traffic follows it and pedestrians react to it.
pub fn step_actors(actors: &mut [Actor], ego: (f64, f64, f64), time_secs: f64, dt: f64) {
    let snapshot: Vec<(f64, f64, f64, ActorKind)> =
        actors.iter().map(|a| (a.s, a.d, a.speed_mps, a.kind)).collect();
    for actor in actors.iter_mut() {
        match actor.kind {
            ActorKind::Vehicle => step_vehicle(actor, &snapshot, ego, time_secs, dt),
            ActorKind::Pedestrian => step_pedestrian(actor, ego, dt),
            ActorKind::Parked | ActorKind::Cone => {}
        }
    }
}

fn step_vehicle(
    actor: &mut Actor,
    others: &[(f64, f64, f64, ActorKind)],
    ego: (f64, f64, f64),
    t: f64,
    dt: f64,
) {
    let direction = if actor.speed_mps < 0.0 || actor.d > 0.0 { -1.0 } else { 1.0 };
    let v = actor.speed_mps.abs();
    // Nearest thing ahead in the same lane (the ego included).
    let leader = others
        .iter()
        .map(|(s, d, speed, _)| (*s, *d, *speed))
        .chain(std::iter::once(ego))
        .filter(|(s, d, _)| (d - actor.d).abs() < 1.8 && (s - actor.s) * direction > 0.5)
        .map(|(s, _, speed)| ((s - actor.s) * direction - 4.5, v - speed * direction))
        .min_by(|a, b| a.0.total_cmp(&b.0));
    let mut accel = idm_accel(v, actor.desired_mps, leader);
    if let Some(cue) = actor.brake
        && (cue.at_secs..cue.at_secs + cue.for_secs).contains(&t)
    {
        accel = accel.min(-cue.decel_mps2);
    }
    let v = (v + accel * dt).max(0.0);
    actor.speed_mps = v * direction;
    actor.s += actor.speed_mps * dt;
    if let Some(cue) = actor.lane_change
        && t >= cue.at_secs
    {
        let from = *actor.lane_change_from_d.get_or_insert(actor.d);
        let progress = ((t - cue.at_secs) / cue.duration_secs).clamp(0.0, 1.0);
        // Smooth (cosine) lateral profile.
        let d = from + (cue.to_d - from) * 0.5 * (1.0 - (std::f64::consts::PI * progress).cos());
        actor.lateral_mps = (d - actor.d) / dt;
        actor.d = d;
    }
}

/// Seconds a pedestrian needs from where it stands to lateral offset `d`.
#[must_use]
pub fn crossing_walk_secs(actor: &Actor, cue: &CrossingCue, d: f64) -> f64 {
    (d - actor.d).abs() / cue.speed_mps.max(0.1)
}

fn step_pedestrian(actor: &mut Actor, ego: (f64, f64, f64), dt: f64) {
    let Some(cue) = actor.crossing else { return };
    if !actor.crossing_started {
        let ttr = (actor.s - ego.0) / ego.2.max(0.1);
        actor.crossing_started =
            ego.0 < actor.s && ttr <= crossing_walk_secs(actor, &cue, ego.1) + cue.meet_offset_secs;
    }
    if actor.crossing_started && (actor.d - cue.to_d).abs() > 1e-3 {
        let step = (cue.to_d - actor.d).clamp(-cue.speed_mps * dt, cue.speed_mps * dt);
        actor.lateral_mps = step / dt;
        actor.d += step;
    } else {
        actor.lateral_mps = 0.0;
    }
}

#[cfg(test)]
#[allow(clippy::float_cmp, reason = "hand-computed values are exact")]
mod tests {
    use super::*;

    #[test]
    fn idm_cruises_free_and_stops_behind_a_stopped_leader() {
        assert!((idm_accel(10.0, 10.0, None)).abs() < 1e-12);
        assert!(idm_accel(5.0, 10.0, None) > 1.0);
        // Stopped leader 10 m ahead at 10 m/s: brake hard.
        assert!(idm_accel(10.0, 10.0, Some((10.0, 10.0))) < -4.0);
    }

    #[test]
    fn pedestrian_crosses_only_when_the_ego_approaches() {
        let mut p = Actor::new(1, ActorKind::Pedestrian, 100.0, -9.0, 0.0);
        p.crossing = Some(CrossingCue { meet_offset_secs: 0.0, speed_mps: 1.5, to_d: 9.0 });
        let mut actors = [p];
        step_actors(&mut actors, (0.0, -1.75, 10.0), 0.0, 0.1);
        assert_eq!(actors[0].d, -9.0, "ego 10 s away");
        // 7.25 m to the ego's lane takes 4.83 s: it starts when the ego is that far away.
        step_actors(&mut actors, (50.0, -1.75, 10.0), 0.0, 0.1);
        assert_eq!(actors[0].d, -9.0, "ego 5 s away");
        step_actors(&mut actors, (52.0, -1.75, 10.0), 0.0, 0.1);
        assert!((actors[0].d - (-8.85)).abs() < 1e-9, "walks 0.15 m in 0.1 s: {}", actors[0].d);
    }
}
