//! Failures of a run (DESIGN.md section 6), detected every control period
//! and reported once at their onset.

use std::collections::BTreeSet;

use crate::actors::{Actor, ActorKind};
use crate::geometry::Footprint;
use crate::road::{LANE_WIDTH_M, Road};
use crate::vehicle::{VehicleParams, VehicleState};

/// Time-to-collision below this is a failure, s.
pub const TTC_LIMIT_SECS: f64 = 0.95;
/// Deceleration beyond this is a failure, m/s^2 (negative).
pub const HARD_BRAKING_MPS2: f64 = -4.05;
/// Progress below this fraction of the expert's is a failure.
pub const BLOCKED_FRACTION: f64 = 0.2;

/// Failure categories, with the names used on /nines/events.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Category {
    /// Hit a vehicle.
    CollisionVehicle,
    /// Hit a pedestrian.
    CollisionPedestrian,
    /// Hit a static object.
    CollisionStatic,
    /// Left the paved road.
    OffRoad,
    /// Left its lane.
    LaneDeparture,
    /// Time-to-collision below 0.95 s.
    LowTtc,
    /// Braked harder than 4.05 m/s^2.
    HardBraking,
    /// Made less than 20% of the expert's progress.
    Blocked,
    /// Deadline miss, crash or safe stop of the driving system.
    SystemFault,
}

impl Category {
    /// Name on /nines/events.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::CollisionVehicle => "collision_vehicle",
            Self::CollisionPedestrian => "collision_pedestrian",
            Self::CollisionStatic => "collision_static",
            Self::OffRoad => "off_road",
            Self::LaneDeparture => "lane_departure",
            Self::LowTtc => "low_ttc",
            Self::HardBraking => "hard_braking",
            Self::Blocked => "blocked",
            Self::SystemFault => "system_fault",
        }
    }
}

/// One failure.
#[derive(Debug, Clone, PartialEq)]
pub struct SimEvent {
    /// Sim time, s.
    pub time_secs: f64,
    /// Category.
    pub category: Category,
    /// What happened.
    pub detail: String,
    /// Magnitude (TTC s, deceleration m/s^2, ...), 0 if none.
    pub value: f64,
}

/// Ego body footprint from its rear-axle state.
#[must_use]
pub fn ego_footprint(params: &VehicleParams, s: &VehicleState) -> Footprint {
    let offset = params.centre_offset_m();
    Footprint {
        x: s.x + offset * s.yaw.cos(),
        y: s.y + offset * s.yaw.sin(),
        yaw: s.yaw,
        half_length: params.length_m / 2.0,
        half_width: params.width_m / 2.0,
    }
}

/// Footprint of an actor.
#[must_use]
pub fn actor_footprint(road: &Road, actor: &Actor) -> Footprint {
    let (x, y, yaw) = actor.pose(road);
    let (l, w, _) = actor.kind.size();
    Footprint { x, y, yaw, half_length: l / 2.0, half_width: w / 2.0 }
}

/// Nearest actor ahead in the ego's corridor: (gap m, closing speed m/s).
#[must_use]
pub fn lead_in_corridor(
    road: &Road,
    params: &VehicleParams,
    ego: &VehicleState,
    actors: &[Actor],
) -> Option<(f64, f64)> {
    let front = ego_footprint(params, ego);
    let (s_ego, d_ego) = road.project(front.x, front.y);
    let front_s = s_ego + params.length_m / 2.0;
    actors
        .iter()
        .filter(|a| (a.d - d_ego).abs() < params.width_m / 2.0 + a.kind.size().1 / 2.0 && a.s > s_ego)
        .map(|a| (a.s - a.kind.size().0 / 2.0 - front_s, ego.speed_mps - a.speed_mps))
        .min_by(|a, b| a.0.total_cmp(&b.0))
}

/// Detects failures and reports each at its onset.
#[derive(Debug, Default)]
pub struct EventMonitor {
    active: BTreeSet<Category>,
}

impl EventMonitor {
    /// Checks the state after a control period.
    pub fn check(
        &mut self,
        time_secs: f64,
        road: &Road,
        params: &VehicleParams,
        ego: &VehicleState,
        lane_d: f64,
        actors: &[Actor],
    ) -> Vec<SimEvent> {
        let mut now: Vec<(Category, String, f64)> = Vec::new();
        let body = ego_footprint(params, ego);
        for actor in actors {
            if body.overlaps(&actor_footprint(road, actor)) {
                let category = match actor.kind {
                    ActorKind::Vehicle => Category::CollisionVehicle,
                    ActorKind::Pedestrian => Category::CollisionPedestrian,
                    ActorKind::Parked | ActorKind::Cone => Category::CollisionStatic,
                };
                now.push((
                    category,
                    format!("hit {} {} at {:.1} m/s", actor.kind.label(), actor.id, ego.speed_mps),
                    ego.speed_mps,
                ));
            }
        }
        let edge = road.half_width() + 0.25;
        if let Some(d) = body.corners().iter().map(|(x, y)| road.project(*x, *y).1).find(|d| d.abs() > edge) {
            now.push((
                Category::OffRoad,
                format!("a corner is {:.2} m from the centre line, the road ends at {edge:.2} m", d.abs()),
                d.abs(),
            ));
        }
        let (_, d_centre) = road.project(body.x, body.y);
        let off_lane = (d_centre - lane_d).abs();
        if off_lane > LANE_WIDTH_M / 2.0 {
            now.push((Category::LaneDeparture, format!("{off_lane:.2} m from the lane centre"), off_lane));
        }
        if let Some((gap, closing)) = lead_in_corridor(road, params, ego, actors)
            && closing > 0.1
            && gap / closing < TTC_LIMIT_SECS
        {
            let ttc = gap.max(0.0) / closing;
            now.push((Category::LowTtc, format!("time to collision {ttc:.2} s"), ttc));
        }
        if ego.accel_mps2 < HARD_BRAKING_MPS2 && ego.speed_mps > 0.0 {
            now.push((
                Category::HardBraking,
                format!("braking at {:.2} m/s^2", ego.accel_mps2),
                ego.accel_mps2,
            ));
        }
        let categories: BTreeSet<Category> = now.iter().map(|(c, _, _)| *c).collect();
        let onsets = now
            .into_iter()
            .filter(|(c, _, _)| !self.active.contains(c))
            .map(|(category, detail, value)| SimEvent { time_secs, category, detail, value })
            .collect();
        self.active = categories;
        onsets
    }
}

/// True if a run made less than [`BLOCKED_FRACTION`] of the expert's progress.
#[must_use]
pub fn blocked(progress_m: f64, expert_progress_m: f64) -> bool {
    expert_progress_m > 1.0 && progress_m < BLOCKED_FRACTION * expert_progress_m
}
