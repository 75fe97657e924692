//! The timeline's plots and log lines: commands, who drove, the lane
//! state and the runtime's diagnostics.

use nines_datasets::msg::{AckermannDriveStamped, ControlSource, Controller, DiagnosticArray, LaneState};

use super::{Logged, SceneLogger};
use crate::replay::entity;

impl SceneLogger<'_> {
    pub(super) fn command(&mut self, cmd: &AckermannDriveStamped, expert: bool) -> Logged {
        let d = &cmd.drive;
        if expert {
            self.log("plots/steering/expert", &rerun::Scalars::single(f64::from(d.steering_angle)))?;
            self.log("plots/speed/expert", &rerun::Scalars::single(f64::from(d.speed)))?;
        } else {
            self.log("plots/steering/command", &rerun::Scalars::single(f64::from(d.steering_angle)))?;
            self.log("plots/speed/command", &rerun::Scalars::single(f64::from(d.speed)))?;
            self.log("plots/acceleration/command", &rerun::Scalars::single(f64::from(d.acceleration)))?;
        }
        Ok(true)
    }

    /// Where the car is against its lane centre (simulator ground truth).
    pub(super) fn lane(&mut self, lane: &LaneState) -> Logged {
        self.log("plots/lane/lateral_offset_m", &rerun::Scalars::single(f64::from(lane.lateral_offset_m)))?;
        self.log(
            "plots/lane/heading_error_deg",
            &rerun::Scalars::single(f64::from(lane.heading_error_rad).to_degrees()),
        )?;
        Ok(true)
    }

    /// Who drove, as a step plot on the timeline, with the injected steering
    /// offset; a log line whenever the controller or the disturbance changes.
    pub(super) fn control_source(&mut self, control: &ControlSource) -> Logged {
        self.log("plots/control/source", &rerun::Scalars::single(f64::from(control.source)))?;
        self.log(
            "plots/control/steering_offset_rad",
            &rerun::Scalars::single(f64::from(control.steering_offset_rad)),
        )?;
        let now = (control.source, control.disturbed);
        if self.last_control != Some(now) {
            self.last_control = Some(now);
            let who = Controller::from_u8(control.source).map_or("an unknown source", Controller::name);
            let text = if control.disturbed {
                format!(
                    "control: {who}, disturbed (steering {:+.3} rad, speed x{:.2})",
                    control.steering_offset_rad, control.speed_factor
                )
            } else {
                format!("control: {who}")
            };
            self.log(entity::EVENTS, &rerun::TextLog::new(text).with_level(rerun::TextLogLevel::INFO))?;
        }
        Ok(true)
    }

    pub(super) fn diagnostics(&mut self, diagnostics: &DiagnosticArray) -> Logged {
        for status in diagnostics.status.iter().filter(|s| s.level != 0) {
            let level = match status.level {
                1 => rerun::TextLogLevel::WARN,
                _ => rerun::TextLogLevel::ERROR,
            };
            let text = format!("{}: {}", status.name, status.message);
            self.log(entity::DIAGNOSTICS, &rerun::TextLog::new(text).with_level(level))?;
        }
        Ok(true)
    }
}
