//! The expert driver, with privileged state: pure pursuit on its lane
//! centre, IDM on whatever is (or will be) in its corridor, speed limits and
//! a curve speed profile. It is the reference every other driver is
//! measured against, so it must finish every scenario family cleanly.

use nines_datasets::msg::AckermannDrive;

use crate::actors::{Actor, ActorKind, crossing_walk_secs, idm_accel};
use crate::road::Road;
use crate::vehicle::{VehicleParams, VehicleState};

/// Lateral acceleration the expert allows in curves, m/s^2.
const MAX_LATERAL_MPS2: f64 = 2.0;
/// Deceleration the expert plans with ahead of curves, m/s^2.
const PLANNING_DECEL_MPS2: f64 = 1.5;
/// Extra clearance around the ego's width for what counts as "in the way", m.
const CORRIDOR_MARGIN_M: f64 = 0.4;

/// The expert's view of the world for one decision.
pub struct ExpertInput<'a> {
    /// Road.
    pub road: &'a Road,
    /// Ego geometry.
    pub params: &'a VehicleParams,
    /// Ego state.
    pub ego: &'a VehicleState,
    /// Lane to follow (lateral offset), m.
    pub lane_d: f64,
    /// Speed limit, m/s.
    pub speed_limit_mps: f64,
    /// Everyone else.
    pub actors: &'a [Actor],
    /// Factor on the speed the expert wants (1: its own; a speed disturbance
    /// while collecting recovery data changes it).
    pub speed_factor: f64,
}

/// The command the expert gives now.
#[must_use]
pub fn expert_command(input: &ExpertInput<'_>) -> AckermannDrive {
    let ego = input.ego;
    let (s, _) = input.road.project(ego.x, ego.y);
    let steering = pure_pursuit(input, s);
    let desired =
        curve_speed_limit(input.road, s, ego.speed_mps).min(input.speed_limit_mps) * input.speed_factor;
    let leader = corridor_leader(input, s);
    // Never brake harder than the hard-braking failure (DESIGN.md section 6):
    // the reference driver must not fail its own suites.
    let accel = idm_accel(ego.speed_mps, desired, leader).clamp(-4.0, 2.0);
    AckermannDrive {
        steering_angle: steering as f32,
        steering_angle_velocity: 0.0,
        speed: desired as f32,
        acceleration: accel as f32,
        jerk: 0.0,
    }
}

fn pure_pursuit(input: &ExpertInput<'_>, s: f64) -> f64 {
    let ego = input.ego;
    let lookahead = (4.0 + 0.6 * ego.speed_mps).clamp(6.0, 25.0);
    let (tx, ty) = input.road.point(s + lookahead, input.lane_d);
    let (dx, dy) = (tx - ego.x, ty - ego.y);
    let (sin, cos) = ego.yaw.sin_cos();
    let (forward, left) = (dx * cos + dy * sin, -dx * sin + dy * cos);
    let distance_sq = (forward * forward + left * left).max(1e-6);
    (2.0 * input.params.wheelbase_m * left / distance_sq).atan()
}

/// Highest speed that still lets the ego slow down for every curve within
/// its preview, m/s.
fn curve_speed_limit(road: &Road, s: f64, speed: f64) -> f64 {
    let preview = (speed * speed / (2.0 * PLANNING_DECEL_MPS2)).max(30.0) + 10.0;
    let mut limit = f64::INFINITY;
    let mut x = 0.0;
    while x <= preview {
        let curvature = road.centre(s + x).curvature.abs();
        if curvature > 1e-6 {
            let v_curve = (MAX_LATERAL_MPS2 / curvature).sqrt();
            limit = limit.min((v_curve * v_curve + 2.0 * PLANNING_DECEL_MPS2 * x).sqrt());
        }
        x += 2.0;
    }
    limit
}

/// Nearest obstacle ahead that is in the corridor, or will be when the ego
/// gets there: (gap m, closing speed m/s).
fn corridor_leader(input: &ExpertInput<'_>, s_ego: f64) -> Option<(f64, f64)> {
    let ego = input.ego;
    let front_s = s_ego + input.params.length_m - input.params.rear_overhang_m;
    let half = input.params.width_m / 2.0 + CORRIDOR_MARGIN_M;
    input
        .actors
        .iter()
        .filter(|a| a.s + a.kind.size().0 / 2.0 > front_s - 1.0)
        .filter(|a| {
            let reach = half + a.kind.size().1 / 2.0;
            let in_lane_now = (a.d - input.lane_d).abs() < reach;
            match (a.kind, a.crossing) {
                (ActorKind::Pedestrian, Some(cue)) => {
                    // Privileged: the expert knows where the pedestrian is going.
                    // It yields until the pedestrian is past the corridor.
                    let before = (cue.to_d - input.lane_d).signum() * (a.d - input.lane_d) < reach;
                    let ttr = (a.s - front_s) / ego.speed_mps.max(1.0);
                    let starts_within =
                        crossing_walk_secs(a, &cue, input.lane_d) + cue.meet_offset_secs + 2.0;
                    before && (in_lane_now || a.lateral_mps.abs() > 0.0 || ttr < starts_within)
                }
                _ => in_lane_now || heading_into_lane(a, input.lane_d, reach),
            }
        })
        .map(|a| {
            let gap = a.s - a.kind.size().0 / 2.0 - front_s;
            (gap, ego.speed_mps - a.speed_mps.max(0.0))
        })
        .min_by(|a, b| a.0.total_cmp(&b.0))
}

/// A vehicle changing lanes towards the ego's lane counts as soon as it moves.
fn heading_into_lane(actor: &Actor, lane_d: f64, reach: f64) -> bool {
    actor.kind == ActorKind::Vehicle
        && actor.lateral_mps.abs() > 0.05
        && (lane_d - actor.d).signum() == actor.lateral_mps.signum()
        && (actor.d - lane_d).abs() < reach + 2.0
}
