//! The ego vehicle: a kinematic bicycle about the rear axle (base_link),
//! with steering and acceleration limits and first-order actuator lag.

use nines_datasets::msg::AckermannDrive;

/// Geometry and actuator limits.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct VehicleParams {
    /// Rear to front axle, m.
    pub wheelbase_m: f64,
    /// Body length, m.
    pub length_m: f64,
    /// Body width, m.
    pub width_m: f64,
    /// Body height, m.
    pub height_m: f64,
    /// Body behind the rear axle, m.
    pub rear_overhang_m: f64,
    /// Largest front-wheel angle, rad.
    pub max_steer_rad: f64,
    /// Fastest steering, rad/s.
    pub max_steer_rate_radps: f64,
    /// Strongest acceleration, m/s^2.
    pub max_accel_mps2: f64,
    /// Strongest braking (positive), m/s^2.
    pub max_decel_mps2: f64,
    /// Time constant of the steering and acceleration actuators, s.
    pub actuator_lag_secs: f64,
}

impl Default for VehicleParams {
    fn default() -> Self {
        Self {
            wheelbase_m: 2.7,
            length_m: 4.6,
            width_m: 1.9,
            height_m: 1.5,
            rear_overhang_m: 1.0,
            max_steer_rad: 0.55,
            max_steer_rate_radps: 0.8,
            max_accel_mps2: 3.0,
            max_decel_mps2: 8.0,
            actuator_lag_secs: 0.15,
        }
    }
}

impl VehicleParams {
    /// Distance from base_link (rear axle) forward to the body centre, m.
    #[must_use]
    pub fn centre_offset_m(&self) -> f64 {
        self.length_m / 2.0 - self.rear_overhang_m
    }
}

/// State of the ego.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct VehicleState {
    /// Rear axle x in the map, m.
    pub x: f64,
    /// Rear axle y in the map, m.
    pub y: f64,
    /// Heading, rad.
    pub yaw: f64,
    /// Forward speed, m/s (never negative: no reversing).
    pub speed_mps: f64,
    /// Actual front-wheel angle, rad.
    pub steer_rad: f64,
    /// Actual longitudinal acceleration, m/s^2.
    pub accel_mps2: f64,
    /// Yaw rate, rad/s.
    pub yaw_rate_radps: f64,
}

/// Advances `state` by `dt` seconds under `command`. The command's
/// `steering_angle` and `acceleration` are the targets the actuators chase
/// (its `speed` is informative only); both are clamped to the limits.
pub fn step(params: &VehicleParams, state: &mut VehicleState, command: &AckermannDrive, dt: f64) {
    let steer_target = f64::from(command.steering_angle).clamp(-params.max_steer_rad, params.max_steer_rad);
    let accel_target = f64::from(command.acceleration).clamp(-params.max_decel_mps2, params.max_accel_mps2);
    let blend = (dt / params.actuator_lag_secs).min(1.0);
    let max_steer_step = params.max_steer_rate_radps * dt;
    state.steer_rad += ((steer_target - state.steer_rad) * blend).clamp(-max_steer_step, max_steer_step);
    state.accel_mps2 += (accel_target - state.accel_mps2) * blend;
    let speed = (state.speed_mps + state.accel_mps2 * dt).max(0.0);
    let mean_speed = 0.5 * (speed + state.speed_mps);
    state.yaw_rate_radps = mean_speed * state.steer_rad.tan() / params.wheelbase_m;
    let mid_yaw = state.yaw + 0.5 * state.yaw_rate_radps * dt;
    state.x += mean_speed * mid_yaw.cos() * dt;
    state.y += mean_speed * mid_yaw.sin() * dt;
    state.yaw += state.yaw_rate_radps * dt;
    state.speed_mps = speed;
    if speed == 0.0 {
        // Brakes hold a stopped car; they do not push it backwards.
        state.accel_mps2 = state.accel_mps2.max(0.0);
    }
}

#[cfg(test)]
#[allow(clippy::float_cmp, reason = "hand-computed values are exact")]
mod tests {
    use super::*;

    #[test]
    fn steady_turn_has_the_bicycle_radius() {
        let params = VehicleParams {
            actuator_lag_secs: 0.01,
            max_steer_rate_radps: 100.0,
            ..VehicleParams::default()
        };
        let mut s = VehicleState { speed_mps: 5.0, ..VehicleState::default() };
        let cmd = AckermannDrive { steering_angle: 0.2, ..AckermannDrive::default() };
        for _ in 0..2000 {
            step(&params, &mut s, &cmd, 0.01);
        }
        // Yaw rate v tan(delta) / L.
        let expected = 5.0 * f64::from(0.2f32).tan() / 2.7;
        assert!((s.yaw_rate_radps - expected).abs() < 1e-9);
        assert_eq!(s.speed_mps, 5.0);
    }

    #[test]
    fn limits_and_lag_hold() {
        let params = VehicleParams::default();
        let mut s = VehicleState { speed_mps: 10.0, ..VehicleState::default() };
        let cmd = AckermannDrive { steering_angle: 2.0, acceleration: -20.0, ..AckermannDrive::default() };
        step(&params, &mut s, &cmd, 0.01);
        assert!(s.steer_rad <= 0.8 * 0.01 + 1e-12, "rate limit");
        assert!(s.accel_mps2 > -8.0 && s.accel_mps2 < 0.0, "lagged, {}", s.accel_mps2);
        for _ in 0..1000 {
            step(&params, &mut s, &cmd, 0.01);
        }
        assert!(s.steer_rad <= 0.55 + 1e-12);
        assert_eq!(s.speed_mps, 0.0, "stops and does not reverse");
    }
}
