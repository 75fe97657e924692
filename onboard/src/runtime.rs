//! The threaded runtime: `nines-capture` runs the source, `nines-control`
//! runs [`Pipeline::step`] on the newest frame (and at the control rate when
//! no frame comes), `nines-publish` turns decisions into ROS messages, hands
//! them to the caller's sink and the [`Recorder`], and measures
//! capture-to-publish latency. Channels are bounded.
//!
//! Lockstep (recorded sources, the default): every item goes through one
//! bounded channel in order and time is the source's clock, so the same
//! drive gives the same commands, byte for byte. Real time (`--realtime`,
//! live cameras): the capture thread overwrites a newest-frame slot and the
//! control thread takes whatever is newest when it wakes.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use nines_datasets::msg::{
    AckermannDriveStamped, DiagnosticArray, DiagnosticStatus, Event, EventKind, Header, KeyValue,
    ModelOutput, Time,
};
use nines_datasets::topics::frames;

use crate::config::{Config, RecordMode};
use crate::pipeline::{Pipeline, StepInput, StepOutput};
use crate::preprocess::FrameRef;
use crate::recorder::{Record, Recorder};
use crate::safety::{Fault, Mode};
use crate::source::{Frame, Item, Pacing, Source, system_now_ns};
use crate::{OnboardError, Result};

/// A message the runtime publishes.
#[derive(Debug, Clone)]
pub enum Published {
    /// /control/command.
    Command(AckermannDriveStamped),
    /// /nines/model_output.
    ModelOutput(ModelOutput),
    /// /diagnostics.
    Diagnostics(DiagnosticArray),
    /// /nines/events.
    Event(Event),
}

/// Where published messages go (zenoh, a test, the harness).
pub type Sink = Box<dyn FnMut(&Published) + Send>;

/// How to run.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Lockstep or real time (live sources are always real time).
    pub pacing: Pacing,
    /// Record here (overrides the config's recording path).
    pub record: Option<PathBuf>,
}

/// What a run did.
#[derive(Debug, Clone, Default)]
pub struct RunReport {
    /// Commands published.
    pub commands: u64,
    /// Frames processed.
    pub frames: u64,
    /// Events (controlled stops, the source's end).
    pub events: Vec<Event>,
    /// Capture-to-publish latency of every frame's command, s.
    pub latency_s: Vec<f64>,
    /// Preprocess plus inference per frame, s.
    pub busy_s: Vec<f64>,
    /// Execution provider in use.
    pub provider: String,
    /// Files recorded.
    pub recorded: Vec<PathBuf>,
    /// The stamp of the run's first step, ns: event times are shown as
    /// seconds after it (the events keep their absolute stamps).
    pub start_stamp_ns: Option<u64>,
}

impl RunReport {
    /// Seconds from the run's first step to `stamp_ns`.
    #[must_use]
    pub fn seconds_in(&self, stamp_ns: u64) -> f64 {
        stamp_ns.saturating_sub(self.start_stamp_ns.unwrap_or(stamp_ns)) as f64 / 1e9
    }
}

/// The `q` quantile (0..=1) of `values`, sorting them: the value at rank
/// round((n - 1) q); 0 when there is none. Latency reports (the runtime's,
/// its benchmark's, the harness's) all use this one rule.
pub fn percentile(values: &mut [f64], q: f64) -> f64 {
    values.sort_by(f64::total_cmp);
    let rank = ((values.len().max(1) - 1) as f64 * q.clamp(0.0, 1.0)).round() as usize;
    values.get(rank).copied().unwrap_or(0.0)
}

/// Shared controls of a running runtime.
#[derive(Debug, Default)]
pub struct Controls {
    /// Set to ask for (re-)engagement; the control thread clears it.
    pub engage: AtomicBool,
    /// Set to stop the runtime (it commands the controlled stop first).
    pub shutdown: AtomicBool,
}

enum ToPublisher {
    Step(StepOutput, Option<Instant>),
    Record(Record),
}

/// The newest-frame slot of real-time mode.
#[derive(Default)]
struct Slot {
    state: Mutex<SlotState>,
    ready: Condvar,
}

#[derive(Default)]
struct SlotState {
    frame: Option<Frame>,
    speed_mps: f64,
    ended: Option<Fault>,
}

/// Runs `source` through the model at `model` until the source ends.
pub fn run(
    config: &Config,
    mut source: Box<dyn Source>,
    model: &Path,
    options: &RunOptions,
    controls: Arc<Controls>,
    mut sink: Sink,
) -> Result<RunReport> {
    let (camera, mount) = if let Some(c) = source.calibration() {
        c
    } else {
        let cal = config.camera.calibration.as_ref().ok_or_else(|| no_calibration(config, source.name()))?;
        let mount = config.camera.mounting.ok_or_else(|| no_calibration(config, source.name()))?;
        (cal.camera_model(&config.base_dir.join("[camera.calibration]"))?, mount.base_link_from_optical())
    };
    let pacing = if source.live() { Pacing::Realtime } else { options.pacing };
    let mut pipeline = Pipeline::new(config, model, &camera, &mount, pacing)?;
    let provider = pipeline.inference().provider().to_owned();
    let digest = pipeline.inference().digest().to_owned();
    tracing::info!(
        "source {} ({}), provider {provider}",
        source.name(),
        match (source.live(), pacing) {
            (true, _) => "live",
            (false, Pacing::Lockstep) => "lockstep",
            (false, Pacing::Realtime) => "real time",
        }
    );

    let record_path =
        options.record.clone().or_else(|| config.recording.path.as_ref().map(|p| config.resolve(p)));
    let recorder = match (config.recording.mode, record_path) {
        (RecordMode::Off, _) | (_, None) => None,
        (mode, Some(path)) => {
            Some(Recorder::new(mode, &path, config.recording.pre_trigger_s, config.recording.post_trigger_s)?)
        }
    };
    let (pub_tx, pub_rx) = sync_channel::<ToPublisher>(256);
    let diagnostics_period_ns = (1e9 / config.rates.diagnostics_hz) as u64;
    let times = pipeline.inference().card().contract.plan_times_secs.clone();
    let provider_name = provider.clone();
    let live = source.live();
    let publisher = std::thread::Builder::new()
        .name("nines-publish".into())
        .spawn(move || {
            publish(&pub_rx, &mut sink, recorder, &digest, &provider_name, diagnostics_period_ns, &times)
        })
        .map_err(|source| OnboardError::Thread { name: "publisher", source })?;

    let period_ns = (config.control_period_s() * 1e9) as u64;
    let slot = Arc::new(Slot::default());
    let (item_tx, item_rx) = sync_channel::<Item>(4);
    let capture = {
        let slot = Arc::clone(&slot);
        let records = pub_tx.clone();
        let controls = Arc::clone(&controls);
        std::thread::Builder::new()
            .name("nines-capture".into())
            .spawn(move || capture(source.as_mut(), pacing, item_tx, &slot, &records, &controls))
            .map_err(|source| OnboardError::Thread { name: "capture", source })?
    };
    let control = std::thread::Builder::new().name("nines-control".into()).spawn(move || {
        match pacing {
            Pacing::Lockstep => {
                control_lockstep(&mut pipeline, &item_rx, &slot, &pub_tx, &controls, period_ns);
            }
            Pacing::Realtime => control_realtime(&mut pipeline, &slot, &pub_tx, &controls, period_ns, live),
        }
        drop(item_rx);
    });
    let control = control.map_err(|source| OnboardError::Thread { name: "control", source })?;
    let joined = |name: &str| OnboardError::Runtime(format!("the {name} thread panicked"));
    control.join().map_err(|_| joined("control"))?;
    let captured = capture.join().map_err(|_| joined("capture"))?;
    let mut report = publisher.join().map_err(|_| joined("publisher"))??;
    match captured {
        Ok(()) => tracing::info!("the source ended"),
        Err(e @ OnboardError::SourceGone { .. }) => tracing::info!("the source ended: {e}"),
        Err(e) => tracing::error!("source failed: {e}"),
    }
    report.provider = provider;
    Ok(report)
}

fn no_calibration(config: &Config, source: &str) -> OnboardError {
    OnboardError::Config {
        path: config.base_dir.join("vehicle.toml"),
        detail: format!(
            "source {source} carries no calibration; set [camera.calibration] and [camera.mounting] (see configs/vehicle-sim.toml)"
        ),
    }
}

/// The capture thread: pushes the source's items into the channel
/// (lockstep) or the newest-frame slot (real time).
fn capture(
    source: &mut dyn Source,
    pacing: Pacing,
    items: SyncSender<Item>,
    slot: &Slot,
    records: &SyncSender<ToPublisher>,
    controls: &Controls,
) -> Result<()> {
    let mut push = |item: Item| -> bool {
        if controls.shutdown.load(Ordering::Relaxed) {
            return false;
        }
        match pacing {
            Pacing::Lockstep => items.send(item).is_ok(),
            Pacing::Realtime => match item {
                Item::Record(r) => records.send(ToPublisher::Record(r)).is_ok(),
                Item::Speed { speed_mps, .. } => {
                    lock(slot).speed_mps = speed_mps;
                    true
                }
                Item::Frame(f) => {
                    lock(slot).frame = Some(f);
                    slot.ready.notify_one();
                    true
                }
            },
        }
    };
    // A source that panics (a bug, or data nobody foresaw) still ends the
    // run with the controlled stop: the control thread must hear of it.
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| source.run(pacing, &mut push)))
        .unwrap_or_else(|_| {
            Err(OnboardError::Source {
                source_name: source.name().to_owned(),
                detail: "the source panicked (see the log); stopping".into(),
            })
        });
    let fault = if result.is_ok() { Fault::SourceEnded } else { Fault::SourceLost };
    lock(slot).ended = Some(fault);
    slot.ready.notify_one();
    drop(items);
    result
}

fn lock(slot: &Slot) -> std::sync::MutexGuard<'_, SlotState> {
    slot.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn frame_ref(f: &Frame) -> FrameRef<'_> {
    FrameRef {
        stamp_ns: f.stamp_ns,
        rgb: f.ok().then_some(f.rgb.as_slice()),
        width: f.width,
        height: f.height,
    }
}

#[expect(clippy::large_types_passed_by_value, reason = "moved into the channel as is; a box would allocate")]
fn send(tx: &SyncSender<ToPublisher>, out: StepOutput, captured: Option<Instant>) -> bool {
    tx.send(ToPublisher::Step(out, captured)).is_ok()
}

/// Lockstep: time is the source's; ticks between items at the control period.
fn control_lockstep(
    pipeline: &mut Pipeline,
    items: &Receiver<Item>,
    slot: &Slot,
    tx: &SyncSender<ToPublisher>,
    controls: &Controls,
    period_ns: u64,
) {
    let mut speed = 0.0;
    let mut next_tick: Option<u64> = None;
    let tick_until = |pipeline: &mut Pipeline, until: u64, speed: f64, next_tick: &mut Option<u64>| {
        while let Some(t) = *next_tick
            && t < until
        {
            send(tx, pipeline.step(&StepInput { now_ns: t, frame: None, speed_mps: speed }), None);
            *next_tick = Some(t + period_ns);
        }
    };
    while let Ok(item) = items.recv() {
        if controls.engage.swap(false, Ordering::Relaxed) {
            pipeline.request_engage();
        }
        match item {
            Item::Record(r) => {
                let _ = tx.send(ToPublisher::Record(r));
            }
            Item::Speed { stamp_ns, speed_mps } => {
                tick_until(pipeline, stamp_ns, speed, &mut next_tick);
                speed = speed_mps;
            }
            Item::Frame(frame) => {
                tick_until(pipeline, frame.stamp_ns, speed, &mut next_tick);
                let out = pipeline.step(&StepInput {
                    now_ns: frame.stamp_ns,
                    frame: Some(frame_ref(&frame)),
                    speed_mps: speed,
                });
                next_tick = Some(frame.stamp_ns + period_ns);
                send(tx, out, Some(frame.captured));
            }
        }
        if controls.shutdown.load(Ordering::Relaxed) {
            break;
        }
    }
    let end = next_tick.unwrap_or(0);
    // The capture thread says whether the source ended or failed before it closes the channel.
    let fault = lock(slot).ended.unwrap_or(Fault::SourceEnded);
    send(tx, pipeline.finish(end, fault, speed), None);
}

/// Real time: the newest frame when it comes, a tick when none comes within a period.
fn control_realtime(
    pipeline: &mut Pipeline,
    slot: &Slot,
    tx: &SyncSender<ToPublisher>,
    controls: &Controls,
    period_ns: u64,
    live: bool,
) {
    let period = Duration::from_nanos(period_ns);
    // Recorded sources played in real time: their clock, advanced by the wall clock.
    let mut origin: Option<(u64, Instant)> = None;
    let now_ns = |origin: &Option<(u64, Instant)>| match origin {
        Some((t0, i0)) => t0 + i0.elapsed().as_nanos() as u64,
        None => system_now_ns(),
    };
    let mut last = Instant::now();
    loop {
        if controls.engage.swap(false, Ordering::Relaxed) {
            pipeline.request_engage();
        }
        let mut state = lock(slot);
        while state.frame.is_none() && state.ended.is_none() {
            let wait = (last + period).saturating_duration_since(Instant::now());
            if wait.is_zero() {
                break;
            }
            state = slot.ready.wait_timeout(state, wait).map_or_else(|e| e.into_inner().0, |(s, _)| s);
        }
        let (frame, speed, ended) = (state.frame.take(), state.speed_mps, state.ended);
        drop(state);
        if let Some(fault) = ended.filter(|_| frame.is_none()) {
            send(tx, pipeline.finish(now_ns(&origin), fault, speed), None);
            return;
        }
        if controls.shutdown.load(Ordering::Relaxed) {
            send(tx, pipeline.finish(now_ns(&origin), Fault::SourceEnded, speed), None);
            return;
        }
        last = Instant::now();
        match frame {
            Some(frame) => {
                if origin.is_none() && !live {
                    origin = Some((frame.stamp_ns, frame.captured));
                }
                let now = now_ns(&origin).max(frame.stamp_ns);
                let out = pipeline.step(&StepInput {
                    now_ns: now,
                    frame: Some(frame_ref(&frame)),
                    speed_mps: speed,
                });
                send(tx, out, Some(frame.captured));
            }
            // A recorded source's clock starts at its first frame: no tick
            // before it, so every command is stamped on one clock.
            None if origin.is_none() && !live => {}
            None => {
                send(
                    tx,
                    pipeline.step(&StepInput { now_ns: now_ns(&origin), frame: None, speed_mps: speed }),
                    None,
                );
            }
        }
    }
}

/// The publisher thread.
fn publish(
    rx: &Receiver<ToPublisher>,
    sink: &mut Sink,
    mut recorder: Option<Recorder>,
    digest: &str,
    provider: &str,
    diagnostics_period_ns: u64,
    times: &[f64],
) -> Result<RunReport> {
    let mut report = RunReport::default();
    let mut next_diagnostics = 0u64;
    let record = |recorder: &mut Option<Recorder>, r: Record| -> Result<()> {
        if let Some(rec) = recorder.as_mut() {
            rec.push(r)?;
        }
        Ok(())
    };
    let mut last_busy = 0.0;
    let mut last_mode = None;
    while let Ok(message) = rx.recv() {
        let (out, captured) = match message {
            ToPublisher::Record(r) => {
                record(&mut recorder, r)?;
                continue;
            }
            ToPublisher::Step(out, captured) => (out, captured),
        };
        let t = out.stamp_ns;
        let start = *report.start_stamp_ns.get_or_insert(t);
        if out.prediction.is_some() {
            last_busy = out.busy_s;
        }
        // On schedule, on every stop, and at once when the mode changes, and
        // before the step's command: whoever acts on commands (the simulator
        // handing over, a vehicle interface) knows the mode they come in.
        if t >= next_diagnostics || out.stopped || last_mode != Some(out.mode) {
            last_mode = Some(out.mode);
            next_diagnostics = t + diagnostics_period_ns;
            let d = diagnostics(&out, provider, digest, last_busy, report.frames);
            sink(&Published::Diagnostics(d.clone()));
            record(&mut recorder, Record::Diagnostics(t, d))?;
        }
        let command = AckermannDriveStamped { header: Header::new(t, frames::BASE_LINK), drive: out.command };
        sink(&Published::Command(command.clone()));
        if let Some(c) = captured {
            report.latency_s.push(c.elapsed().as_secs_f64());
        }
        report.commands += 1;
        record(&mut recorder, Record::Command(t, command))?;
        if let Some(p) = &out.prediction {
            report.frames += 1;
            report.busy_s.push(out.busy_s);
            let points = p.points();
            let msg = ModelOutput {
                header: Header::new(t, frames::BASE_LINK),
                model_digest: digest.to_owned(),
                input_stamp: Time::from_nanos(p.stamp_ns),
                plan_time_s: times.iter().map(|&x| x as f32).collect(),
                plan_x_m: points.iter().map(|q| q[0]).collect(),
                plan_y_m: points.iter().map(|q| q[1]).collect(),
                plan_speed_mps: points.iter().map(|q| q[2]).collect(),
                lead_probability: p.lead[0],
                lead_distance_m: p.lead[1],
                lead_relative_speed_mps: p.lead[2],
                latency_s: captured.map_or(out.busy_s, |c| c.elapsed().as_secs_f64()) as f32,
            };
            sink(&Published::ModelOutput(msg.clone()));
            record(&mut recorder, Record::ModelOutput(t, msg))?;
        } else if out.busy_s == 0.0 && out.violation.is_some_and(|v| v.fault == Fault::BadFrame) {
            report.frames += 1;
        }
        if out.stopped
            && let Some(v) = out.violation
        {
            let event = Event {
                header: Header::new(t, frames::BASE_LINK),
                kind: EventKind::SafeStop as u8,
                category: v.fault.name().to_owned(),
                detail: format!("controlled stop: {} (value {:.3})", v.fault.name(), v.value),
                value: v.value,
            };
            // A recorded drive ending is the normal end of a replay, not a warning.
            let (into, stamp) = (t.saturating_sub(start) as f64 / 1e9, t as f64 / 1e9);
            if v.fault == Fault::SourceEnded {
                tracing::info!("{} at {into:.3} s into the run (stamp {stamp:.3} s)", event.detail);
            } else {
                tracing::warn!("{} at {into:.3} s into the run (stamp {stamp:.3} s)", event.detail);
            }
            sink(&Published::Event(event.clone()));
            record(&mut recorder, Record::Event(t, event.clone()))?;
            report.events.push(event);
        }
    }
    if let Some(rec) = recorder {
        report.recorded = rec.finish()?;
    }
    Ok(report)
}

fn diagnostics(out: &StepOutput, provider: &str, digest: &str, busy_s: f64, frames: u64) -> DiagnosticArray {
    let kv = |k: &str, v: String| KeyValue { key: k.to_owned(), value: v };
    let (level, message) = match (out.mode, out.violation) {
        (Mode::Engaged, _) => (DiagnosticStatus::OK, "engaged".to_owned()),
        (Mode::Stopped, Some(v)) => (DiagnosticStatus::ERROR, format!("controlled stop: {}", v.fault.name())),
        (Mode::Stopped, None) => {
            (DiagnosticStatus::ERROR, "stopped; waiting for good frames and an engage request".to_owned())
        }
        (Mode::Standby, Some(v)) => (DiagnosticStatus::WARN, format!("standby: {}", v.fault.name())),
        (Mode::Standby, None) => (DiagnosticStatus::WARN, "standby: waiting for good frames".to_owned()),
    };
    DiagnosticArray {
        header: Header::new(out.stamp_ns, frames::BASE_LINK),
        status: vec![
            DiagnosticStatus {
                level,
                name: "nines-onboard: safety".into(),
                message,
                hardware_id: String::new(),
                values: vec![
                    kv("mode", format!("{:?}", out.mode).to_lowercase()),
                    kv(
                        "last_violation",
                        out.violation.map_or_else(String::new, |v| v.fault.name().to_owned()),
                    ),
                    kv("good_frames", out.good_frames.to_string()),
                ],
            },
            DiagnosticStatus {
                level: DiagnosticStatus::OK,
                name: "nines-onboard: inference".into(),
                message: format!("provider {provider}"),
                hardware_id: String::new(),
                values: vec![
                    kv("provider", provider.to_owned()),
                    kv("model_digest", digest.to_owned()),
                    kv("busy_ms", format!("{:.2}", busy_s * 1e3)),
                    kv("frames", frames.to_string()),
                ],
            },
        ],
    }
}

#[cfg(test)]
mod tests {
    use super::percentile;

    #[test]
    fn percentiles_take_the_value_at_the_rounded_rank() {
        let mut v = [5.0, 1.0, 3.0, 2.0];
        // Sorted 1, 2, 3, 5: the median rank is round(1.5) = 2.
        assert!((percentile(&mut v, 0.5) - 3.0).abs() < 1e-12);
        assert!((percentile(&mut v, 0.0) - 1.0).abs() < 1e-12);
        assert!((percentile(&mut v, 1.0) - 5.0).abs() < 1e-12);
        assert!(percentile(&mut [], 0.5).abs() < 1e-12, "nothing measured is 0");
    }
}
