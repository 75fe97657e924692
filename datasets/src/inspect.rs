//! A drive at a glance: topics, types, counts, rates, duration, gaps and the
//! calibration it carries (what `nines inspect` prints).

use std::collections::BTreeMap;

use serde::Serialize;

use crate::calib::{CameraModel, Distortion};
use crate::drive::{DriveReader, MessageView, ReadFilter};
use crate::error::Result;
use crate::geometry::StaticTransforms;
use crate::msg::{CameraInfo, ControlSource, Controller, TfMessage};
use crate::topics;

/// One topic's statistics.
#[derive(Debug, Clone, Serialize)]
pub struct TopicSummary {
    /// Topic.
    pub topic: String,
    /// Schema name.
    pub type_name: String,
    /// Messages.
    pub count: u64,
    /// Mean rate over the topic's own span, Hz (0 for fewer than 2 messages).
    pub rate_hz: f64,
    /// Longest interval between messages, s.
    pub max_interval_secs: f64,
    /// Intervals longer than 2.5x the median: (start s from drive start, length s).
    pub gaps: Vec<(f64, f64)>,
}

/// A camera's calibration.
#[derive(Debug, Clone, Serialize)]
pub struct CameraSummary {
    /// CameraInfo topic.
    pub topic: String,
    /// Optical frame.
    pub frame_id: String,
    /// Columns x rows.
    pub resolution: (u32, u32),
    /// fx, fy, cx, cy in pixels.
    pub intrinsics: [f64; 4],
    /// Distortion model and coefficients, or an error if unusable.
    pub distortion: String,
    /// Mounting: translation (m) in base_link, if /tf_static connects it.
    pub base_link_from_camera_m: Option<[f64; 3]>,
}

/// Everything `nines inspect` reports.
#[derive(Debug, Clone, Serialize)]
pub struct DriveSummary {
    /// File path.
    pub path: String,
    /// File size, bytes.
    pub file_bytes: u64,
    /// Messages.
    pub messages: u64,
    /// First log time, ns since the epoch.
    pub start_nanos: Option<u64>,
    /// Last minus first log time, s.
    pub duration_secs: f64,
    /// Per topic.
    pub topics: Vec<TopicSummary>,
    /// Per camera.
    pub cameras: Vec<CameraSummary>,
    /// Frames in /tf_static.
    pub static_frames: Vec<String>,
    /// Metadata records.
    pub metadata: Vec<String>,
    /// Who drove, from /nines/control_source (none when the drive does not record it).
    pub control: Option<ControlSummary>,
}

/// Who was in control over a drive, and what was injected (/nines/control_source).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ControlSummary {
    /// Seconds each controller drove (`human`, `model`, `safety_driver`), in control periods.
    pub seconds: BTreeMap<String, f64>,
    /// Seconds with a disturbance injected.
    pub disturbed_seconds: f64,
    /// Disturbance segments (a run of disturbed periods).
    pub disturbances: usize,
    /// Takeovers: the model, then a safety driver.
    pub takeovers: usize,
    /// Periods whose `source` this build does not know.
    pub unknown: usize,
}

impl ControlSummary {
    /// Adds one period of `period_secs` (the time to the next message).
    fn add(&mut self, message: &ControlSource, previous: Option<&ControlSource>, period_secs: f64) {
        match Controller::from_u8(message.source) {
            Some(c) => *self.seconds.entry(c.name().to_owned()).or_insert(0.0) += period_secs,
            None => self.unknown += 1,
        }
        if message.disturbed {
            self.disturbed_seconds += period_secs;
            self.disturbances += usize::from(!previous.is_some_and(|p| p.disturbed));
        }
        let was_model = previous.is_some_and(|p| p.source == Controller::Model as u8);
        self.takeovers += usize::from(was_model && message.source == Controller::SafetyDriver as u8);
    }
}

impl DriveSummary {
    /// Reads the whole drive once and summarises it.
    pub fn of(reader: &DriveReader) -> Result<Self> {
        Self::of_with(reader, |_| Ok(()))
    }

    /// Like [`Self::of`], also handing every message to `visit` in the same
    /// pass (so other summaries need not read the drive again).
    pub fn of_with(
        reader: &DriveReader,
        mut visit: impl FnMut(&MessageView<'_>) -> Result<()>,
    ) -> Result<Self> {
        let start = reader.time_range_nanos().map(|(s, _)| s);
        let mut stamps: BTreeMap<String, Vec<u64>> = BTreeMap::new();
        let mut camera_infos: BTreeMap<String, CameraInfo> = BTreeMap::new();
        let mut tf_static = Vec::new();
        let mut control: Vec<ControlSource> = Vec::new();
        let mut messages = reader.messages(&ReadFilter::all())?;
        while let Some(view) = messages.next_message() {
            let view = view?;
            visit(&view)?;
            if view.topic == topics::CONTROL_SOURCE {
                control.push(view.decode()?);
            }
            stamps.entry(view.topic.to_owned()).or_default().push(view.log_time_nanos);
            if view.type_name == "sensor_msgs/msg/CameraInfo" && !camera_infos.contains_key(view.topic) {
                camera_infos.insert(view.topic.to_owned(), view.decode()?);
            }
            if view.topic == topics::TF_STATIC {
                tf_static.push(view.decode::<TfMessage>()?);
            }
        }
        let tree = StaticTransforms::from_messages(&tf_static);
        let topics = reader
            .topics()
            .into_iter()
            .map(|info| {
                summarise_topic(
                    info.topic.clone(),
                    info.type_name,
                    stamps.get(&info.topic).map_or(&[][..], Vec::as_slice),
                    start.unwrap_or(0),
                )
            })
            .collect();
        let cameras = camera_infos
            .into_iter()
            .map(|(topic, info)| summarise_camera(topic, &info, &tree, reader))
            .collect();
        Ok(Self {
            path: reader.path().display().to_string(),
            file_bytes: reader.file_len(),
            messages: reader.message_count(),
            start_nanos: start,
            duration_secs: reader.time_range_nanos().map_or(0.0, |(s, e)| (e - s) as f64 * 1e-9),
            topics,
            cameras,
            static_frames: tree.frames(),
            metadata: reader.metadata_names(),
            control: summarise_control(&control),
        })
    }
}

/// Each period lasts until the next message; the last one as long as the one before it.
fn summarise_control(messages: &[ControlSource]) -> Option<ControlSummary> {
    let mut summary = ControlSummary::default();
    let stamps: Vec<u64> = messages.iter().map(|m| m.header.stamp.as_nanos()).collect();
    for (i, (message, (start, end))) in messages.iter().zip(ControlSource::periods(&stamps)).enumerate() {
        summary.add(message, i.checked_sub(1).map(|j| &messages[j]), (end - start) as f64 * 1e-9);
    }
    (!messages.is_empty()).then_some(summary)
}

fn summarise_topic(topic: String, type_name: String, stamps: &[u64], start: u64) -> TopicSummary {
    let intervals: Vec<u64> = stamps.windows(2).map(|w| w[1].saturating_sub(w[0])).collect();
    let span = match (stamps.first(), stamps.last()) {
        (Some(a), Some(b)) if b > a => (b - a) as f64 * 1e-9,
        _ => 0.0,
    };
    let mut sorted = intervals.clone();
    sorted.sort_unstable();
    let median = sorted.get(sorted.len() / 2).copied().unwrap_or(0) as f64;
    let gaps = if intervals.len() >= 2 {
        stamps
            .windows(2)
            .filter(|w| (w[1].saturating_sub(w[0])) as f64 > 2.5 * median)
            .map(|w| (w[0].saturating_sub(start) as f64 * 1e-9, (w[1] - w[0]) as f64 * 1e-9))
            .collect()
    } else {
        Vec::new()
    };
    TopicSummary {
        topic,
        type_name,
        count: stamps.len() as u64,
        rate_hz: if span > 0.0 { (stamps.len() - 1) as f64 / span } else { 0.0 },
        max_interval_secs: sorted.last().copied().unwrap_or(0) as f64 * 1e-9,
        gaps,
    }
}

fn summarise_camera(
    topic: String,
    info: &CameraInfo,
    tree: &StaticTransforms,
    reader: &DriveReader,
) -> CameraSummary {
    let source = format!("{} {topic}", reader.path().display());
    let distortion = match CameraModel::from_camera_info(info, &source) {
        Ok(model) => match model.distortion {
            Distortion::None => "none (rectified)".to_owned(),
            Distortion::PlumbBob { .. } => format!("plumb_bob {:?}", info.d),
            Distortion::Equidistant { .. } => format!("equidistant {:?}", info.d),
        },
        Err(e) => format!("unusable: {e}"),
    };
    let mount = tree
        .lookup(topics::frames::BASE_LINK, &info.header.frame_id)
        .map(|iso| iso.translation.vector.into());
    CameraSummary {
        topic,
        frame_id: info.header.frame_id.clone(),
        resolution: (info.width, info.height),
        intrinsics: [info.k[0], info.k[4], info.k[2], info.k[5]],
        distortion,
        base_link_from_camera_m: mount,
    }
}
