//! `nines replay --model`: the onboard runtime's pipeline (the same library
//! the robot runs, lockstep, CPU provider unless the config says otherwise)
//! over the drive, so its predictions and commands show next to what was
//! driven.

use std::path::Path;
use std::sync::{Arc, Mutex};

use nines_datasets::msg::{AckermannDriveStamped, Event, ModelOutput};
use nines_onboard::config::Config;
use nines_onboard::runtime::{self, Controls, Published, RunOptions};
use nines_onboard::source::{self, Pacing};

/// Names the runtime's replayed commands among the drive's topics (they
/// are not in the drive; the plots' styles key on it).
pub const RUNTIME_COMMAND: &str = "/nines/runtime/command";

/// The vehicle config used when none is given: the simulator's car.
pub const BUILT_IN_CONFIG: &str = include_str!("../../../configs/vehicle-sim.toml");

/// What the runtime decided over the drive.
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
}

/// Loads `config` (or the built-in simulator car).
pub fn load_config(config: Option<&Path>) -> anyhow::Result<Config> {
    Ok(match config {
        Some(path) => Config::load(path)?,
        None => Config::parse(BUILT_IN_CONFIG, Path::new("configs/vehicle-sim.toml (built in)"))?,
    })
}

/// Runs `model` over `drive` in lockstep, recording nothing.
pub fn run_model(drive: &Path, model: &Path, config: &Config) -> anyhow::Result<ModelRun> {
    let mut config = config.clone();
    config.recording.mode = nines_onboard::config::RecordMode::Off;
    let collected = Arc::new(Mutex::new(ModelRun::default()));
    let into = Arc::clone(&collected);
    let sink: runtime::Sink = Box::new(move |m| {
        let mut run = into.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
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
    let mut run = std::mem::take(&mut *collected.lock().unwrap_or_else(std::sync::PoisonError::into_inner));
    run.provider = report.provider;
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
