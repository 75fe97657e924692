//! Closed-loop stepping: [`Sim::step`] advances the world one control
//! period under any driver's command, in lockstep, while the expert runs in
//! shadow to say what it would have done.

use nines_datasets::msg::AckermannDrive;

use crate::actors::{Actor, step_actors};
use crate::events::{EventMonitor, SimEvent};
use crate::expert::{ExpertInput, expert_command};
use crate::scenario::Scenario;
use crate::vehicle::{self, VehicleParams, VehicleState};

/// Control period, s (commands at 20 Hz).
pub const CONTROL_PERIOD_SECS: f64 = 0.05;
/// Physics steps per control period (100 Hz).
pub const PHYSICS_SUBSTEPS: u32 = 5;

/// What one step produced.
#[derive(Debug, Clone)]
pub struct StepResult {
    /// Sim time at the end of the step, s.
    pub time_secs: f64,
    /// Ego state at the end of the step.
    pub ego: VehicleState,
    /// What the expert would have commanded at the start of the step.
    pub expert: AckermannDrive,
    /// Failures that began during the step.
    pub events: Vec<SimEvent>,
}

/// A running scenario.
pub struct Sim {
    /// The scenario.
    pub scenario: Scenario,
    /// Ego geometry and limits.
    pub params: VehicleParams,
    ego: VehicleState,
    actors: Vec<Actor>,
    time_secs: f64,
    monitor: EventMonitor,
    start_s: f64,
    /// Rear-axle states at every physics step of the last 0.2 s: (time, state),
    /// for sensors that sample the ego between control steps.
    history: Vec<(f64, VehicleState)>,
}

impl Sim {
    /// Starts `scenario` with the ego in its lane at its start speed.
    #[must_use]
    pub fn new(scenario: Scenario) -> Self {
        let ego = VehicleState { speed_mps: scenario.ego_start_mps, ..VehicleState::default() };
        let actors = scenario.actors.clone();
        let start_s = scenario.ego_start_s;
        let mut sim = Self {
            scenario,
            params: VehicleParams::default(),
            ego,
            actors,
            time_secs: 0.0,
            monitor: EventMonitor::default(),
            start_s,
            history: Vec::new(),
        };
        sim.displace_start(0.0, 0.0);
        sim
    }

    /// Sim time, s.
    #[must_use]
    pub fn time_secs(&self) -> f64 {
        self.time_secs
    }

    /// Ego state.
    #[must_use]
    pub fn ego(&self) -> &VehicleState {
        &self.ego
    }

    /// Actors now.
    #[must_use]
    pub fn actors(&self) -> &[Actor] {
        &self.actors
    }

    /// Recent physics history (time, ego state), oldest first.
    #[must_use]
    pub fn history(&self) -> &[(f64, VehicleState)] {
        &self.history
    }

    /// Distance driven along the road since the start, m.
    #[must_use]
    pub fn progress_m(&self) -> f64 {
        self.scenario.road.project(self.ego.x, self.ego.y).0 - self.start_s
    }

    /// True once the scenario's duration has passed or the ego reached the road's end.
    #[must_use]
    pub fn done(&self) -> bool {
        self.time_secs >= self.scenario.duration_secs - 1e-9
            || self.scenario.road.project(self.ego.x, self.ego.y).0 > self.scenario.road.length() - 30.0
    }

    /// What the expert would command now.
    #[must_use]
    pub fn expert_command(&self) -> AckermannDrive {
        self.expert_command_with_speed_factor(1.0)
    }

    /// Time to collision with the nearest actor ahead in the ego's
    /// corridor, s, while closing on it (privileged: a safety driver's
    /// judgement, never a label).
    #[must_use]
    pub fn time_to_collision(&self) -> Option<f64> {
        crate::events::lead_in_corridor(&self.scenario.road, &self.params, &self.ego, &self.actors)
            .filter(|(_, closing)| *closing > 0.1)
            .map(|(gap, closing)| gap.max(0.0) / closing)
    }

    /// What the expert would command now if it wanted `factor` times its
    /// own speed (a speed disturbance while collecting recovery data).
    #[must_use]
    pub fn expert_command_with_speed_factor(&self, factor: f64) -> AckermannDrive {
        expert_command(&ExpertInput {
            road: &self.scenario.road,
            params: &self.params,
            ego: &self.ego,
            lane_d: self.scenario.ego_lane_d,
            speed_limit_mps: self.scenario.speed_limit_mps,
            actors: &self.actors,
            speed_factor: factor,
        })
    }

    /// The ego's lateral offset from its lane centre, m (positive: left),
    /// and its heading error from the lane's heading, rad (positive: turned
    /// left): privileged state for scoring and statistics, never a label.
    #[must_use]
    pub fn lane_error(&self) -> (f64, f64) {
        let (s, d) = self.scenario.road.project(self.ego.x, self.ego.y);
        let heading = self.scenario.road.centre(s).heading;
        let error = (self.ego.yaw - heading + std::f64::consts::PI).rem_euclid(std::f64::consts::TAU)
            - std::f64::consts::PI;
        (d - self.scenario.ego_lane_d, error)
    }

    /// How far the ego's body may still move to its left and to its right
    /// before a corner leaves the road, m (privileged: collection safety, never a label).
    #[must_use]
    pub fn room_on_road(&self) -> (f64, f64) {
        let road = &self.scenario.road;
        let body = crate::events::ego_footprint(&self.params, &self.ego);
        let (low, high) = body
            .corners()
            .iter()
            .map(|(x, y)| road.project(*x, *y).1)
            .fold((f64::INFINITY, f64::NEG_INFINITY), |(l, h), d| (l.min(d), h.max(d)));
        let edge = road.half_width();
        (edge - high, edge + low)
    }

    /// Moves the ego, before the run starts, `lateral_m` further left of
    /// the scenario's start and turns it `heading_rad` further left (a
    /// disturbed start, on top of the family's own offset). Call it before
    /// the first step.
    pub fn displace_start(&mut self, lateral_m: f64, heading_rad: f64) {
        let scenario = &self.scenario;
        let s = scenario.ego_start_s;
        let d = scenario.ego_lane_d + scenario.ego_start_lateral_m + lateral_m;
        let (x, y) = scenario.road.point(s, d);
        self.ego.x = x;
        self.ego.y = y;
        self.ego.yaw = scenario.road.centre(s).heading + scenario.ego_start_heading_rad + heading_rad;
        self.history = vec![(0.0, self.ego)];
    }

    /// Advances one control period under `command`.
    pub fn step(&mut self, command: &AckermannDrive) -> StepResult {
        let expert = self.expert_command();
        let dt = CONTROL_PERIOD_SECS / f64::from(PHYSICS_SUBSTEPS);
        for _ in 0..PHYSICS_SUBSTEPS {
            let (s, d) = self.scenario.road.project(self.ego.x, self.ego.y);
            step_actors(&mut self.actors, (s, d, self.ego.speed_mps), self.time_secs, dt);
            vehicle::step(&self.params, &mut self.ego, command, dt);
            // Integer steps keep the clock exact over long runs.
            let steps = (self.time_secs / dt).round() + 1.0;
            self.time_secs = steps * dt;
            self.history.push((self.time_secs, self.ego));
        }
        let keep_from = self.time_secs - 0.2;
        self.history.retain(|(t, _)| *t >= keep_from - 1e-9);
        let events = self.monitor.check(
            self.time_secs,
            &self.scenario.road,
            &self.params,
            &self.ego,
            self.scenario.ego_lane_d,
            &self.actors,
        );
        StepResult { time_secs: self.time_secs, ego: self.ego, expert, events }
    }
}
