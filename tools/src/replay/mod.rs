//! Drive logs into the rerun visualizer: every topic a person wants to see,
//! on the drive's log-time timeline, with a default layout.
//!
//! [`replay`] reads a drive twice: a first pass over the small topics
//! (transforms, odometry) builds the ego pose track, so that lidar sweeps can
//! be de-skewed into the map frame, projected into camera frames taken at
//! other times, and the path ahead of the ego drawn; the second pass logs
//! every message in time order. A drive without a summary is recovered into a
//! temporary file first; damaged chunks are skipped. Both are reported.

mod colour;
pub mod entity;
mod layout;
pub mod model;
mod scene;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::Context;
use nines_datasets::DatasetError;
use nines_datasets::drive::{DamagedChunk, DriveReader, ReadFilter, RecoveryReport, TopicInfo};
use nines_datasets::geometry::{PoseTrack, StaticTransforms};
use nines_datasets::msg::TfMessage;
use nines_datasets::sync::StreamCollector;
use nines_datasets::topics;
use nines_onboard::config::Config;
use nines_onboard::replay::ModelRun;
use serde::Serialize;

pub use layout::blueprint;
use scene::SceneLogger;

/// Name of the timeline every message is logged on: the drive's log time.
pub const TIMELINE: &str = "log_time";

/// Application id of nines recordings in the viewer.
pub const APPLICATION_ID: &str = "nines";

/// How lidar points are coloured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum, Serialize)]
pub enum LidarColour {
    /// By distance from the sensor (near warm, far cool).
    #[default]
    Range,
    /// By return intensity, scaled to each sweep's strongest return.
    Intensity,
}

/// What the replay shows.
#[derive(Debug, Clone, Serialize)]
pub struct ReplayOptions {
    /// Colouring of lidar points in 3D.
    pub lidar_colour: LidarColour,
    /// Seconds of future path drawn ahead of the ego (the plan label horizon).
    pub path_ahead_secs: f64,
    /// Distance at which the depth colours reach the far end, m.
    pub far_m: f32,
    /// Lidar points kept per sweep in 3D (every n-th point); 1 keeps all.
    pub lidar_stride: usize,
    /// Only this window of the drive, seconds from its first message (inclusive).
    pub window_secs: Option<(f64, f64)>,
    /// Run this ONNX model through the onboard pipeline over the drive and
    /// show its predictions and commands next to what was driven.
    pub model: Option<PathBuf>,
    /// Vehicle config for `model` (default: the built-in simulator car).
    pub vehicle_config: Option<PathBuf>,
}

impl Default for ReplayOptions {
    fn default() -> Self {
        Self {
            lidar_colour: LidarColour::Range,
            path_ahead_secs: 4.0,
            far_m: 60.0,
            lidar_stride: 1,
            window_secs: None,
            model: None,
            vehicle_config: None,
        }
    }
}

/// What a replay showed and what it could not.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ReplayReport {
    /// The drive replayed.
    pub drive: PathBuf,
    /// Messages read.
    pub messages: u64,
    /// Messages shown, by topic.
    pub shown: BTreeMap<String, u64>,
    /// Messages on topics the replay does not show, by topic.
    pub not_shown: BTreeMap<String, u64>,
    /// Messages that did not decode, by topic, with the first error.
    pub undecodable: BTreeMap<String, (u64, String)>,
    /// Chunks that could not be read and were skipped.
    pub damaged_chunks: Vec<DamagedChunk>,
    /// Set when the drive had no usable summary and was recovered first.
    pub recovered: Option<RecoveryReport>,
    /// First and last log time replayed, ns.
    pub time_range_nanos: Option<(u64, u64)>,
    /// Entity paths logged.
    pub entities: Vec<String>,
    /// Camera frames drawn with the lidar projected onto them.
    pub overlaid_frames: u64,
    /// Lidar points drawn on those frames, in all.
    pub overlaid_points: u64,
    /// With `--model`: what the runtime did over the drive.
    pub model: Option<ModelReplay>,
}

/// The runtime's run over the drive, next to what was driven.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct ModelReplay {
    /// Camera frames the network ran on.
    pub frames: usize,
    /// Commands the runtime issued.
    pub commands: usize,
    /// Controlled stops (besides the one at the drive's end), with their reasons.
    pub stops: Vec<String>,
    /// Execution provider.
    pub provider: String,
    /// Mean |model - driven| steering, rad, and speed, m/s.
    pub against_driven: Option<(f64, f64)>,
}

impl ReplayReport {
    /// Seconds of drive replayed.
    #[must_use]
    pub fn span_secs(&self) -> f64 {
        self.time_range_nanos.map_or(0.0, |(a, b)| (b - a) as f64 * 1e-9)
    }

    /// True when nothing was skipped: no damaged chunk, no recovery, no undecodable message.
    #[must_use]
    pub fn is_whole(&self) -> bool {
        self.damaged_chunks.is_empty() && self.recovered.is_none() && self.undecodable.is_empty()
    }

    /// Lines saying what was skipped, for people (empty for a whole drive).
    #[must_use]
    pub fn skipped_lines(&self) -> Vec<String> {
        let mut lines = Vec::new();
        if let Some(rec) = &self.recovered {
            let at = rec.stopped_at_offset.map_or_else(String::new, |o| format!(" at byte offset {o}"));
            let why = rec.stop_reason.as_deref().unwrap_or("no summary section");
            lines.push(format!(
                "{}: not a whole drive (stopped being readable{at}: {why}); replayed the {} complete messages \
                 before that (`nines recover` rewrites it whole)",
                self.drive.display(),
                rec.messages
            ));
        }
        for chunk in &self.damaged_chunks {
            lines.push(format!(
                "{}: skipped the damaged chunk at byte offset {} (messages from log time {:.3} s on): {}",
                self.drive.display(),
                chunk.offset,
                self.time_range_nanos
                    .map_or(0.0, |(t0, _)| chunk.start_nanos.saturating_sub(t0) as f64 * 1e-9),
                chunk.detail
            ));
        }
        for (topic, (count, first)) in &self.undecodable {
            lines.push(format!(
                "{}: {count} message(s) on {topic} did not decode and were skipped; first: {first}",
                self.drive.display()
            ));
        }
        lines
    }
}

/// A drive opened for replay: the reader, and what it took to open it.
struct OpenedDrive {
    reader: DriveReader,
    recovered: Option<RecoveryReport>,
    // Holds the recovered copy, if any, until the replay is done.
    _scratch: Option<tempfile::TempDir>,
}

/// Opens `path`; a drive cut mid-write or with a damaged summary is
/// recovered into a temporary file (the input is never touched).
fn open_drive(path: &Path) -> anyhow::Result<OpenedDrive> {
    match DriveReader::open(path) {
        Ok(reader) => Ok(OpenedDrive { reader, recovered: None, _scratch: None }),
        Err(e @ (DatasetError::Unfinished { .. } | DatasetError::Corrupt { .. })) => {
            tracing::warn!("{e}; replaying what is readable");
            let scratch =
                tempfile::tempdir().context("creating a scratch directory for the recovered drive")?;
            let copy = scratch.path().join("recovered.mcap");
            let report = nines_datasets::drive::recover(path, &copy)
                .with_context(|| format!("{}: recovering the readable part", path.display()))?;
            let reader = DriveReader::open(&copy)
                .with_context(|| format!("{}: reading the recovered copy", path.display()))?;
            Ok(OpenedDrive { reader, recovered: Some(report), _scratch: Some(scratch) })
        }
        Err(e) => Err(e.into()),
    }
}

/// What the first pass learns: sensor mounting and the ego's pose track.
pub(crate) struct DriveContext {
    pub statics: StaticTransforms,
    pub track: PoseTrack,
    /// The track is from /tf (map -> base_link); else from odometry.
    pub poses_from_tf: bool,
}

fn read_context(reader: &DriveReader) -> DriveContext {
    let mut collector = StreamCollector::new(reader);
    let mut statics = Vec::new();
    let mut poses_from_tf = false;
    let wanted = [topics::TF_STATIC, topics::TF, topics::ODOMETRY];
    // A drive whose first pass cannot start still replays, only without poses.
    if let Ok(messages) = reader.messages(&ReadFilter::topics(wanted)) {
        let mut messages = messages.skip_damaged();
        while let Some(Ok(view)) = messages.next_message() {
            if view.topic == topics::TF_STATIC {
                if let Ok(tf) = view.decode::<TfMessage>() {
                    statics.push(tf);
                }
            } else {
                poses_from_tf |= view.topic == topics::TF
                    && view.decode::<TfMessage>().is_ok_and(|tf| {
                        tf.transforms.iter().any(|t| {
                            t.header.frame_id == topics::frames::MAP
                                && t.child_frame_id == topics::frames::BASE_LINK
                        })
                    });
                // Undecodable messages are counted by the main pass.
                let _ = collector.observe(&view);
            }
        }
    }
    DriveContext {
        statics: StaticTransforms::from_messages(&statics),
        track: PoseTrack::new(collector.finish().poses),
        poses_from_tf,
    }
}

/// Topics of the drive, as the layout needs them.
fn topic_names(topics: &[TopicInfo]) -> Vec<String> {
    topics.iter().map(|t| t.topic.clone()).collect()
}

/// Logs the drive at `path` into `rec`, sending the default layout first.
/// `progress` is told how many messages there are and each one read.
pub fn replay(
    path: &Path,
    rec: &rerun::RecordingStream,
    options: &ReplayOptions,
    progress: &indicatif::ProgressBar,
) -> anyhow::Result<ReplayReport> {
    let opened = open_drive(path)?;
    // The SDK's own wall-clock `log_time` and `log_tick` would shadow the
    // drive's log time: every message is placed on the drive's clock only.
    rec.set_log_time_enabled(false);
    rec.set_log_tick_enabled(false);
    let reader = &opened.reader;
    let mut names = topic_names(&reader.topics());
    let model_run = match &options.model {
        Some(model) => {
            progress.set_message(format!("running {} over the drive", model.display()));
            let config = Config::load_for_runtime(options.vehicle_config.as_deref())?;
            let run = nines_onboard::replay::run_model(reader.path(), model, &config)?;
            names.extend([topics::MODEL_OUTPUT.to_owned(), model::RUNTIME_COMMAND.to_owned()]);
            names.sort();
            names.dedup();
            Some(run)
        }
        None => None,
    };
    layout::blueprint(&names).send(rec, rerun::blueprint::BlueprintActivation::default())?;
    progress.set_length(reader.message_count());

    let context = read_context(reader);
    let mut scene = SceneLogger::new(rec, options, context);
    scene.log_statics(&names)?;

    let mut report =
        ReplayReport { drive: path.to_path_buf(), recovered: opened.recovered.clone(), ..Default::default() };
    let mut filter = ReadFilter::all();
    if let (Some((from, to)), Some((first, _))) = (options.window_secs, reader.time_range_nanos()) {
        let at = |secs: f64| first.saturating_add((secs.max(0.0) * 1e9) as u64);
        (filter.start_nanos, filter.end_nanos) = (Some(at(from)), Some(at(to)));
    }
    let mut messages = reader.messages(&filter)?.skip_damaged();
    while let Some(view) = messages.next_message() {
        let view = view?;
        progress.inc(1);
        report.messages += 1;
        if model_run.is_some() && view.topic == topics::MODEL_OUTPUT {
            // The replayed model's outputs take the place of any recorded ones.
            *report.not_shown.entry(view.topic.to_owned()).or_default() += 1;
            continue;
        }
        let t = view.log_time_nanos;
        report.time_range_nanos = Some(report.time_range_nanos.map_or((t, t), |(a, _)| (a.min(t), t)));
        rec.set_timestamp_nanos_since_epoch(TIMELINE, t as i64);
        match scene.log_message(&view) {
            Ok(true) => *report.shown.entry(view.topic.to_owned()).or_default() += 1,
            Ok(false) => *report.not_shown.entry(view.topic.to_owned()).or_default() += 1,
            Err(scene::LogError::Decode(e)) => {
                report.undecodable.entry(view.topic.to_owned()).or_insert_with(|| (0, e.to_string())).0 += 1;
            }
            Err(scene::LogError::Rerun(e)) => return Err(e.into()),
        }
    }
    report.damaged_chunks = messages.damaged().to_vec();
    if let Some(run) = &model_run {
        report.model = Some(log_model_run(&mut scene, rec, run, reader)?);
    }
    report.entities = scene.entities();
    (report.overlaid_frames, report.overlaid_points) = scene.overlay();
    Ok(report)
}

/// Logs the runtime's outputs, commands and events on the drive's clock.
fn log_model_run(
    scene: &mut SceneLogger<'_>,
    rec: &rerun::RecordingStream,
    run: &ModelRun,
    reader: &nines_datasets::drive::DriveReader,
) -> anyhow::Result<ModelReplay> {
    let failed = |e: scene::LogError| anyhow::anyhow!("logging the replayed model: {e}");
    for o in &run.outputs {
        rec.set_timestamp_nanos_since_epoch(TIMELINE, o.header.stamp.as_nanos() as i64);
        scene.replayed_output(o).map_err(failed)?;
    }
    for c in &run.commands {
        rec.set_timestamp_nanos_since_epoch(TIMELINE, c.header.stamp.as_nanos() as i64);
        scene.model_command(c).map_err(failed)?;
    }
    for e in &run.events {
        rec.set_timestamp_nanos_since_epoch(TIMELINE, e.header.stamp.as_nanos() as i64);
        scene.replayed_event(e).map_err(failed)?;
    }
    let driven =
        reader.read_topic::<nines_datasets::msg::AckermannDriveStamped>(topics::COMMAND).unwrap_or_default();
    Ok(ModelReplay {
        frames: run.outputs.len(),
        commands: run.commands.len(),
        stops: run.events.iter().filter(|e| e.category != "source_ended").map(|e| e.detail.clone()).collect(),
        provider: run.provider.clone(),
        against_driven: nines_onboard::replay::against_driven(run, &driven),
    })
}

/// Replays the drive at `drive` into a new .rrd file at `rrd` (no progress
/// bar): for the demo, benchmarks and tests.
pub fn save_rrd(drive: &Path, rrd: &Path, options: &ReplayOptions) -> anyhow::Result<ReplayReport> {
    let name = drive.file_stem().map_or_else(|| "drive".into(), |s| s.to_string_lossy().into_owned());
    let rec = rerun::RecordingStreamBuilder::new(APPLICATION_ID)
        .recording_name(name)
        .save(rrd)
        .with_context(|| format!("{}: creating the recording", rrd.display()))?;
    let report = replay(drive, &rec, options, &indicatif::ProgressBar::hidden())?;
    rec.flush_blocking().map_err(|e| anyhow::anyhow!("{}: writing the recording: {e}", rrd.display()))?;
    Ok(report)
}
