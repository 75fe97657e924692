//! Plan -> AckermannDrive. Steering by pure pursuit on the model's plan
//! (curvature to front-wheel angle through the wheelbase), speed by PID on
//! the plan's speed a moment ahead, and lead following that can only ever
//! lower the acceleration. Steering rate and jerk are limited last, so every
//! command is one the actuators can follow.

use nines_datasets::msg::AckermannDrive;

use crate::config::{ControllerConfig, VehicleConfig};

/// Longest plan the runtime handles (the contract's plan grid is shorter).
pub const MAX_PLAN: usize = 32;

/// One network output, as the controller and the recorder use it. `Copy`
/// and fixed-size, so it crosses threads without allocating.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Prediction {
    /// Capture stamp of the newest input frame, ns.
    pub stamp_ns: u64,
    /// Points in use.
    pub len: usize,
    /// Plan times, s.
    pub time_s: [f32; MAX_PLAN],
    /// Plan x, y (base_link at capture, m) and speed (m/s).
    pub plan: [[f32; 3]; MAX_PLAN],
    /// Lead presence probability, distance m, relative speed m/s.
    pub lead: [f32; 3],
    /// The nearest obstacle the depth output shows in the plan's corridor:
    /// distance m and relative speed m/s ([`crate::obstacle`]).
    pub obstacle: Option<[f32; 2]>,
}

impl Prediction {
    /// An empty prediction for a plan grid.
    #[must_use]
    pub fn new(times: &[f64]) -> Self {
        let mut time_s = [0.0; MAX_PLAN];
        for (t, &v) in time_s.iter_mut().zip(times) {
            *t = v as f32;
        }
        Self {
            stamp_ns: 0,
            len: times.len().min(MAX_PLAN),
            time_s,
            plan: [[0.0; 3]; MAX_PLAN],
            lead: [0.0; 3],
            obstacle: None,
        }
    }

    /// Plan points in use.
    #[must_use]
    pub fn points(&self) -> &[[f32; 3]] {
        &self.plan[..self.len]
    }

    /// Plan speed at `t` s after capture (linear, held at both ends; the
    /// first segment runs from the speed at t = 0, `v0`).
    #[must_use]
    pub fn speed_at(&self, t: f64, v0: f64) -> f64 {
        let mut prev = (0.0, v0);
        for (time, p) in self.time_s[..self.len].iter().zip(self.points()) {
            let (tt, v) = (f64::from(*time), f64::from(p[2]));
            if t <= tt {
                let a = if tt > prev.0 { (t - prev.0) / (tt - prev.0) } else { 1.0 };
                return prev.1 + a.clamp(0.0, 1.0) * (v - prev.1);
            }
            prev = (tt, v);
        }
        prev.1
    }

    /// Point and heading at arc length `s` along the polyline from the
    /// origin through the plan (extended straight past its end).
    #[must_use]
    pub fn along(&self, s: f64) -> ([f64; 2], f64) {
        let mut from = [0.0f64, 0.0];
        let mut walked = 0.0;
        let mut heading = 0.0;
        for p in self.points() {
            let to = [f64::from(p[0]), f64::from(p[1])];
            let len = (to[0] - from[0]).hypot(to[1] - from[1]);
            if len > 1e-6 {
                heading = (to[1] - from[1]).atan2(to[0] - from[0]);
                if walked + len >= s {
                    let a = (s - walked) / len;
                    return ([from[0] + a * (to[0] - from[0]), from[1] + a * (to[1] - from[1])], heading);
                }
                walked += len;
            }
            from = to;
        }
        let rest = s - walked;
        ([from[0] + rest * heading.cos(), from[1] + rest * heading.sin()], heading)
    }
}

/// The controller's state between commands.
#[derive(Debug, Clone)]
pub struct Controller {
    config: ControllerConfig,
    vehicle: VehicleConfig,
    steering: f64,
    acceleration: f64,
    integral: f64,
    previous_error: Option<f64>,
}

impl Controller {
    /// A controller at rest.
    #[must_use]
    pub fn new(config: ControllerConfig, vehicle: VehicleConfig) -> Self {
        Self { config, vehicle, steering: 0.0, acceleration: 0.0, integral: 0.0, previous_error: None }
    }

    /// Tracks `plan`, `age_s` after its capture, at the ego's `speed` m/s;
    /// `dt` s since the last command.
    pub fn track(&mut self, plan: &Prediction, age_s: f64, speed: f64, dt: f64) -> AckermannDrive {
        let c = &self.config;
        // Pure pursuit from where the car is now in the plan's frame (the
        // car at capture): dead reckoning over the frame's age on the arc
        // of the steering it has been holding. The plan cannot say where the
        // car went: a plan that heads back to the lane starts sideways, and
        // the car has not followed it yet.
        let travelled = (speed * age_s).max(0.0);
        let lookahead = c.lookahead_min_m.max(c.lookahead_time_s * speed);
        let curvature_now = self.steering.tan() / self.vehicle.wheelbase_m.max(1e-3);
        let heading = curvature_now * travelled;
        let here = if curvature_now.abs() < 1e-9 {
            [travelled, 0.0]
        } else {
            [heading.sin() / curvature_now, (1.0 - heading.cos()) / curvature_now]
        };
        // The target is the plan point nearest the lookahead distance ahead:
        // plan points lie on the path (a point between two of them lies
        // inside a curve and overstates its curvature).
        let (sin, cos) = heading.sin_cos();
        let local = |p: &[f32; 3]| {
            let (dx, dy) = (f64::from(p[0]) - here[0], f64::from(p[1]) - here[1]);
            (cos * dx + sin * dy, -sin * dx + cos * dy)
        };
        let (x, y) = plan
            .points()
            .iter()
            .map(local)
            .filter(|(x, _)| *x > 0.5)
            .min_by(|a, b| (a.0.hypot(a.1) - lookahead).abs().total_cmp(&(b.0.hypot(b.1) - lookahead).abs()))
            .unwrap_or_else(|| {
                let (t, _) = plan.along(travelled + lookahead);
                local(&[t[0] as f32, t[1] as f32, 0.0])
            });
        let d2 = (x * x + y * y).max(1e-6);
        let curvature = 2.0 * y / d2;
        let steer_target = (curvature * self.vehicle.wheelbase_m).atan();

        // Speed: PID on the plan's speed a moment ahead.
        let v_target = plan.speed_at(age_s + c.speed_preview_s, speed).clamp(0.0, self.vehicle.max_speed_mps);
        let error = v_target - speed;
        self.integral = (self.integral + error * dt).clamp(-5.0, 5.0);
        let derivative = self.previous_error.map_or(0.0, |p| (error - p) / dt.max(1e-3));
        self.previous_error = Some(error);
        let mut accel = (c.speed_kp * error + c.speed_ki * self.integral + c.speed_kd * derivative)
            .max(-c.comfort_decel_mps2);

        // Lead following, the network's lead and the depth obstacle alike: only ever slower.
        let gap = c.lead_gap_m + c.lead_headway_s * speed;
        let mut follow = |distance: f64, relative: f64| {
            let distance = distance + relative * age_s;
            accel = accel.min(0.3 * (distance - gap) + 0.8 * relative);
            // Closing: at least the steady braking that matches the lead's
            // speed by the standstill gap (v^2 / 2s). The gap term alone
            // waits for the headway and then brakes hard; this starts as
            // soon as a closing lead is seen, gently when it is far.
            if relative < 0.0 {
                accel = accel.min(-relative * relative / (2.0 * (distance - c.lead_gap_m).max(0.5)));
            }
        };
        if self.sees_lead(plan) {
            follow(f64::from(plan.lead[1]), f64::from(plan.lead[2]));
        }
        if let Some([distance, relative]) = plan.obstacle {
            follow(f64::from(distance), f64::from(relative));
        }
        let accel = accel.max(-c.follow_decel_mps2);
        self.limit(steer_target, accel, v_target, dt)
    }

    /// Whether `plan`'s lead is present enough to be followed
    /// (`lead_probability`).
    #[must_use]
    pub fn sees_lead(&self, plan: &Prediction) -> bool {
        f64::from(plan.lead[0]) >= self.config.lead_probability
    }

    /// The controlled stop: brake at `decel` m/s^2 and hold the wheel.
    pub fn stop(&mut self, decel: f64, speed: f64) -> AckermannDrive {
        self.integral = 0.0;
        self.previous_error = None;
        // The stop is not jerk-limited: it must start within this control period.
        let accel = if speed > 0.0 { -decel } else { -decel.min(1.0) };
        self.acceleration = accel;
        AckermannDrive {
            steering_angle: self.steering as f32,
            steering_angle_velocity: 0.0,
            speed: 0.0,
            acceleration: accel as f32,
            jerk: 0.0,
        }
    }

    fn limit(&mut self, steer_target: f64, accel: f64, speed: f64, dt: f64) -> AckermannDrive {
        let v = &self.vehicle;
        let max_step = v.max_steer_rate_radps * dt;
        let steer = steer_target.clamp(-v.max_steer_rad, v.max_steer_rad);
        let steer = self.steering + (steer - self.steering).clamp(-max_step, max_step);
        let accel = accel.clamp(-v.max_decel_mps2, v.max_accel_mps2);
        let max_jerk_step = v.max_jerk_mps3 * dt;
        let accel = self.acceleration + (accel - self.acceleration).clamp(-max_jerk_step, max_jerk_step);
        let command = AckermannDrive {
            steering_angle: steer as f32,
            steering_angle_velocity: ((steer - self.steering) / dt.max(1e-3)).abs() as f32,
            speed: speed as f32,
            acceleration: accel as f32,
            jerk: ((accel - self.acceleration) / dt.max(1e-3)) as f32,
        };
        self.steering = steer;
        self.acceleration = accel;
        command
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vehicle() -> VehicleConfig {
        VehicleConfig {
            name: "test".into(),
            wheelbase_m: 2.7,
            max_steer_rad: 0.55,
            max_steer_rate_radps: 0.8,
            max_accel_mps2: 3.0,
            max_decel_mps2: 8.0,
            max_jerk_mps3: 10.0,
            max_speed_mps: 20.0,
            system_libraries: None,
        }
    }

    /// A plan along a circle of radius `r` (left positive) at speed `v`.
    fn arc(r: f64, v: f64) -> Prediction {
        let times = [0.5, 1.0, 1.5, 2.0, 2.5, 3.0];
        let mut p = Prediction::new(&times);
        for (i, t) in times.iter().enumerate() {
            let s = v * t;
            let (x, y) =
                if r.is_infinite() { (s, 0.0) } else { (r * (s / r).sin(), r * (1.0 - (s / r).cos())) };
            p.plan[i] = [x as f32, y as f32, v as f32];
        }
        p
    }

    #[test]
    fn pure_pursuit_steers_to_the_arc_curvature() {
        let mut c = Controller::new(ControllerConfig::default(), vehicle());
        let plan = arc(30.0, 8.0);
        let mut cmd = AckermannDrive::default();
        for _ in 0..100 {
            cmd = c.track(&plan, 0.0, 8.0, 0.05);
        }
        // A chord to a point on the circle has curvature exactly 1/r.
        let want = (2.7f64 / 30.0).atan();
        assert!((f64::from(cmd.steering_angle) - want).abs() < 2e-3, "{} vs {want}", cmd.steering_angle);
        let right = arc(-30.0, 8.0);
        let mut c = Controller::new(ControllerConfig::default(), vehicle());
        let mut cmd = AckermannDrive::default();
        for _ in 0..100 {
            cmd = c.track(&right, 0.0, 8.0, 0.05);
        }
        assert!(cmd.steering_angle < -0.08, "{}", cmd.steering_angle);
    }

    #[test]
    fn a_plan_back_to_the_lane_steers_towards_it_whatever_the_frame_age() {
        // The car 1 m right of its lane: the plan goes left and then along
        // the lane (x = 12 t, y = 1 - w(t), w critically damped, 0.6 s).
        let times = [0.5, 1.0, 1.5, 2.0, 2.5, 3.0];
        let mut back = Prediction::new(&times);
        for (i, &t) in times.iter().enumerate() {
            let w = (1.0 + t / 0.6) * (-t / 0.6f64).exp();
            back.plan[i] = [(12.0 * t) as f32, (1.0 - w) as f32, 12.0];
        }
        for age in [0.0, 0.1, 0.2, 0.3] {
            let mut c = Controller::new(ControllerConfig::default(), vehicle());
            let mut cmd = AckermannDrive::default();
            for _ in 0..5 {
                cmd = c.track(&back, age, 12.0, 0.05);
            }
            assert!(cmd.steering_angle > 0.005, "age {age} s: {}", cmd.steering_angle);
        }
    }

    #[test]
    fn steering_rate_and_jerk_are_limited() {
        let mut c = Controller::new(ControllerConfig::default(), vehicle());
        let cmd = c.track(&arc(5.0, 10.0), 0.0, 0.0, 0.05);
        assert!((f64::from(cmd.steering_angle) - 0.8 * 0.05).abs() < 1e-6, "{}", cmd.steering_angle);
        assert!((f64::from(cmd.acceleration) - 10.0 * 0.05).abs() < 1e-6, "{}", cmd.acceleration);
    }

    /// The acceleration a fresh controller settles on after 2 s of `plan`
    /// at a steady `speed` (past the jerk limit's ramp).
    fn settled(plan: &Prediction, speed: f64) -> f32 {
        let mut c = Controller::new(ControllerConfig::default(), vehicle());
        (0..40).map(|_| c.track(plan, 0.0, speed, 0.05).acceleration).last().unwrap_or_default()
    }

    #[test]
    fn speed_pid_accelerates_towards_the_plan_and_a_lead_only_slows() {
        let plan = arc(f64::INFINITY, 10.0);
        let mut with_lead = plan;
        with_lead.lead = [0.9, 10.0, -3.0];
        let mut far_lead = plan;
        far_lead.lead = [0.9, 200.0, 5.0];
        let (a, b, f) = (settled(&plan, 5.0), settled(&with_lead, 5.0), settled(&far_lead, 5.0));
        assert!(a > 2.0, "free {a}");
        // 0.3 (10 - (4 + 1.5 * 5)) + 0.8 * -3 = -2.85 m/s^2.
        assert!((b + 2.85).abs() < 1e-3, "closing on a near lead brakes: {b}");
        assert!((f - a).abs() < 1e-6, "a far, faster lead changes nothing: {f} vs {a}");
    }

    #[test]
    fn a_slower_plan_is_reached_at_a_comfortable_rate_and_a_lead_may_brake_harder() {
        // The car at 15 m/s, the plan at 10: the PID alone would ask 0.8 * -5 = -4 m/s^2 and more.
        let plan = arc(f64::INFINITY, 10.0);
        let mut with_lead = plan;
        with_lead.lead = [0.9, 15.0, -5.0];
        let (a, b) = (settled(&plan, 15.0), settled(&with_lead, 15.0));
        let config = ControllerConfig::default();
        assert!((f64::from(a) + config.comfort_decel_mps2).abs() < 1e-6, "{a}");
        // A near lead closing fast asks for more than 6 m/s^2; following brakes at most follow_decel_mps2.
        assert!((f64::from(b) + config.follow_decel_mps2).abs() < 1e-6, "{b}");
        assert!(config.follow_decel_mps2 > config.comfort_decel_mps2 && config.follow_decel_mps2 < 4.05);
    }

    #[test]
    fn a_far_stopped_lead_is_braked_for_gently_from_the_moment_it_is_seen() {
        let mut plan = arc(f64::INFINITY, 10.0);
        // 60 m ahead, closing at the car's 10 m/s: the gap term (0.3 * (60 -
        // 19) - 8) would still accelerate; v^2 / 2s asks about 0.9 m/s^2.
        plan.lead = [0.9, 60.0, -10.0];
        let a = settled(&plan, 10.0);
        let wanted = 100.0 / (2.0 * (60.0 - ControllerConfig::default().lead_gap_m));
        assert!((f64::from(a) + wanted).abs() < 0.05, "{a} against -{wanted}");
    }

    #[test]
    fn a_depth_obstacle_is_followed_like_a_lead_even_when_the_lead_head_misses_it() {
        let hard = ControllerConfig { follow_decel_mps2: 8.0, ..ControllerConfig::default() };
        let mut plain = Controller::new(ControllerConfig::default(), vehicle());
        let mut blocked = Controller::new(hard, vehicle());
        let mut capped = Controller::new(ControllerConfig::default(), vehicle());
        let plan = arc(f64::INFINITY, 10.0);
        let mut with_obstacle = plan;
        // The lead head says nothing; the depth shows something 12 m ahead, closing at 4 m/s.
        with_obstacle.lead = [0.1, 40.0, 0.0];
        with_obstacle.obstacle = Some([12.0, -4.0]);
        let (mut a, mut b, mut c) = (0.0, 0.0, 0.0);
        for _ in 0..40 {
            a = plain.track(&plan, 0.0, 10.0, 0.05).acceleration;
            b = blocked.track(&with_obstacle, 0.0, 10.0, 0.05).acceleration;
            c = capped.track(&with_obstacle, 0.0, 10.0, 0.05).acceleration;
        }
        assert!(a >= 0.0, "nothing ahead: {a}");
        // 0.3 (12 - (4 + 1.5 * 10)) + 0.8 * -4 = -5.3, within follow_decel_mps2 = 8.
        assert!((b + 5.3).abs() < 1e-3, "{b}");
        assert!((c + 4.0).abs() < 1e-6, "the default follows at most 4 m/s^2: {c}");
    }

    #[test]
    fn stop_brakes_at_once_and_holds_the_wheel() {
        let mut c = Controller::new(ControllerConfig::default(), vehicle());
        for _ in 0..20 {
            c.track(&arc(30.0, 8.0), 0.0, 8.0, 0.05);
        }
        let steer = c.steering;
        let cmd = c.stop(4.0, 8.0);
        assert!((cmd.acceleration + 4.0).abs() < 1e-6 && cmd.speed == 0.0);
        assert!((f64::from(cmd.steering_angle) - steer).abs() < 1e-6);
    }

    #[test]
    fn plan_geometry_interpolates_and_extends() {
        let p = arc(f64::INFINITY, 4.0);
        let (pt, h) = p.along(20.0);
        assert!((pt[0] - 20.0).abs() < 1e-4 && pt[1].abs() < 1e-6 && h.abs() < 1e-9);
        assert!((p.speed_at(0.25, 2.0) - 3.0).abs() < 1e-9);
        assert!((p.speed_at(10.0, 2.0) - 4.0).abs() < 1e-9);
    }
}
