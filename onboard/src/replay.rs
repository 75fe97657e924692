//! The runtime over a recorded drive, in lockstep: every frame through the
//! same [`runtime::run`] the robot runs, on the drive's own clock, with a
//! deterministic inference latency, so the same drive gives the same
//! commands on any machine. `nines replay --model` shows the result next to
//! what was driven; the harness's open-loop eval scores it against lidar
//! labels. One replay path for both.

use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};

use nines_datasets::msg::{AckermannDriveStamped, Event, ModelOutput};

use crate::Result;
use crate::config::{Config, RecordMode};
use crate::runtime::{self, Controls, Published, RunOptions};
use crate::source::{self, Pacing};

/// What the runtime decided over a drive.
#[derive(Debug, Clone, Default)]
pub struct ModelRun {
    /// The network's outputs, one per camera frame.
    pub outputs: Vec<ModelOutput>,
    /// The runtime's commands.
    pub commands: Vec<AckermannDriveStamped>,
    /// Controlled stops and the source's end.
    pub events: Vec<Event>,
    /// Execution provider.
    pub provider: String,
    /// Measured preprocess plus inference time per frame, s (performance
    /// only: in lockstep it never decides anything).
    pub busy_s: Vec<f64>,
}

/// Runs `model` over `drive` in lockstep with `config`, recording nothing.
pub fn run_model(drive: &Path, model: &Path, config: &Config) -> Result<ModelRun> {
    let mut config = config.clone();
    config.recording.mode = RecordMode::Off;
    let collected = Arc::new(Mutex::new(ModelRun::default()));
    let into = Arc::clone(&collected);
    let sink: runtime::Sink = Box::new(move |m| {
        let mut run = into.lock().unwrap_or_else(PoisonError::into_inner);
        match m {
            Published::Command(c) => run.commands.push(c.clone()),
            Published::ModelOutput(o) => run.outputs.push(o.clone()),
            Published::Event(e) => run.events.push(e.clone()),
            Published::Diagnostics(_) => {}
        }
    });
    let source = source::open(&drive.display().to_string(), &config.camera.topic, config.camera.fps)?;
    let options = RunOptions { pacing: Pacing::Lockstep, record: None };
    let report = runtime::run(&config, source, model, &options, Arc::new(Controls::default()), sink)?;
    let mut run = std::mem::take(&mut *collected.lock().unwrap_or_else(PoisonError::into_inner));
    run.provider = report.provider;
    run.busy_s = report.busy_s;
    Ok(run)
}

/// Mean absolute difference between the runtime's and the driven commands
/// (steering rad, speed m/s), pairing each driven command with the runtime
/// command nearest in time; `None` without driven commands.
#[must_use]
pub fn against_driven(run: &ModelRun, driven: &[(u64, AckermannDriveStamped)]) -> Option<(f64, f64)> {
    if driven.is_empty() || run.commands.is_empty() {
        return None;
    }
    let stamps: Vec<u64> = run.commands.iter().map(|c| c.header.stamp.as_nanos()).collect();
    let (mut steer, mut speed) = (0.0, 0.0);
    for (t, d) in driven {
        let i = stamps.partition_point(|s| s < t).min(stamps.len() - 1);
        let j = if i > 0 && t.abs_diff(stamps[i - 1]) < t.abs_diff(stamps[i]) { i - 1 } else { i };
        let m = &run.commands[j].drive;
        steer += f64::from((m.steering_angle - d.drive.steering_angle).abs());
        speed += f64::from((m.speed - d.drive.speed).abs());
    }
    let n = driven.len() as f64;
    Some((steer / n, speed / n))
}
