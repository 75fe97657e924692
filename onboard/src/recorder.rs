//! The runtime's own drive log (MCAP, the nines drive profile): its inputs
//! (camera, calibration, odometry), the model's outputs on
//! /nines/model_output, the commands, diagnostics and events.
//!
//! `all` records everything. `events` keeps a pre-trigger ring buffer of the
//! last `pre_trigger_s` seconds in memory and, at every event, writes a
//! drive of its own holding those seconds, the event, and `post_trigger_s`
//! seconds after it: the logs that feed the next training round. Camera
//! calibration and mounting are kept aside and written into every file, so
//! each one replays on its own.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};

use nines_datasets::drive::DriveWriter;
use nines_datasets::msg::{
    AckermannDriveStamped, CameraInfo, CompressedImage, DiagnosticArray, Event, Header, Image, ModelOutput,
    Odometry, TfMessage,
};
use nines_datasets::topics::{self, frames};

use crate::Result;
use crate::config::RecordMode;

/// One message for the log, at its log time (ns).
#[derive(Debug, Clone)]
#[expect(
    clippy::large_enum_variant,
    reason = "records are built and written on the publisher side, off the hot loop"
)]
pub enum Record {
    /// A compressed camera frame as the source had it.
    Image(u64, CompressedImage),
    /// A raw RGB frame from a live camera (JPEG-encoded when written).
    Rgb {
        /// Stamp, ns.
        stamp_ns: u64,
        /// Columns.
        width: u32,
        /// Rows.
        height: u32,
        /// Packed RGB8.
        rgb: Vec<u8>,
    },
    /// A raw camera frame as the source had it (a zenoh `Image`).
    RawImage(u64, Image),
    /// Calibration.
    CameraInfo(u64, CameraInfo),
    /// Mounting.
    TfStatic(u64, TfMessage),
    /// Odometry.
    Odometry(u64, Odometry),
    /// A command.
    Command(u64, AckermannDriveStamped),
    /// A network output.
    ModelOutput(u64, ModelOutput),
    /// Health.
    Diagnostics(u64, DiagnosticArray),
    /// A safe stop or other event.
    Event(u64, Event),
}

impl Record {
    /// Log time, ns.
    #[must_use]
    pub fn stamp(&self) -> u64 {
        match self {
            Self::Image(t, _)
            | Self::RawImage(t, _)
            | Self::CameraInfo(t, _)
            | Self::TfStatic(t, _)
            | Self::Odometry(t, _)
            | Self::Command(t, _)
            | Self::ModelOutput(t, _)
            | Self::Diagnostics(t, _)
            | Self::Event(t, _) => *t,
            Self::Rgb { stamp_ns, .. } => *stamp_ns,
        }
    }

    fn write(&self, w: &mut DriveWriter) -> Result<()> {
        match self {
            Self::Image(t, m) => w.write(topics::CAMERA_COMPRESSED, *t, m)?,
            Self::RawImage(t, m) => w.write(topics::CAMERA_RAW, *t, m)?,
            Self::Rgb { stamp_ns, width, height, rgb } => {
                let jpeg = image::RgbImage::from_raw(*width, *height, rgb.clone())
                    .map(|img| nines_datasets::image::encode_jpeg(&img, 90))
                    .transpose()?;
                if let Some(data) = jpeg {
                    let msg = CompressedImage {
                        header: Header::new(*stamp_ns, frames::CAMERA_FRONT),
                        format: "jpeg".into(),
                        data,
                    };
                    w.write(topics::CAMERA_COMPRESSED, *stamp_ns, &msg)?;
                } else {
                    let msg = Image {
                        header: Header::new(*stamp_ns, frames::CAMERA_FRONT),
                        height: *height,
                        width: *width,
                        encoding: "rgb8".into(),
                        is_bigendian: 0,
                        step: width * 3,
                        data: rgb.clone(),
                    };
                    w.write(topics::CAMERA_RAW, *stamp_ns, &msg)?;
                }
            }
            Self::CameraInfo(t, m) => w.write(topics::CAMERA_INFO, *t, m)?,
            Self::TfStatic(t, m) => w.write(topics::TF_STATIC, *t, m)?,
            Self::Odometry(t, m) => w.write(topics::ODOMETRY, *t, m)?,
            Self::Command(t, m) => w.write(topics::COMMAND, *t, m)?,
            Self::ModelOutput(t, m) => w.write(topics::MODEL_OUTPUT, *t, m)?,
            Self::Diagnostics(t, m) => w.write(topics::DIAGNOSTICS, *t, m)?,
            Self::Event(t, m) => w.write(topics::EVENTS, *t, m)?,
        }
        Ok(())
    }

    /// Calibration and mounting: kept aside and written into every file.
    fn is_static(&self) -> bool {
        matches!(self, Self::CameraInfo(..) | Self::TfStatic(..))
    }
}

/// Writes the runtime's drive(s).
pub struct Recorder {
    mode: RecordMode,
    path: PathBuf,
    pre_ns: u64,
    post_ns: u64,
    statics: Vec<Record>,
    ring: VecDeque<Record>,
    open: Option<(DriveWriter, u64)>,
    written: Vec<PathBuf>,
}

impl std::fmt::Debug for Recorder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Recorder").field("mode", &self.mode).field("path", &self.path).finish_non_exhaustive()
    }
}

impl Recorder {
    /// A recorder writing to `path` (in `events` mode, files named after it).
    pub fn new(mode: RecordMode, path: &Path, pre_trigger_s: f64, post_trigger_s: f64) -> Result<Self> {
        let mut recorder = Self {
            mode,
            path: path.to_path_buf(),
            pre_ns: (pre_trigger_s * 1e9) as u64,
            post_ns: (post_trigger_s * 1e9) as u64,
            statics: Vec::new(),
            ring: VecDeque::new(),
            open: None,
            written: Vec::new(),
        };
        if mode == RecordMode::All {
            if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
                std::fs::create_dir_all(parent).map_err(|e| nines_datasets::DatasetError::io(parent, e))?;
            }
            recorder.open = Some((DriveWriter::create(path)?, u64::MAX));
            recorder.written.push(path.to_path_buf());
        }
        Ok(recorder)
    }

    /// Takes one message.
    pub fn push(&mut self, record: Record) -> Result<()> {
        if self.mode == RecordMode::Off {
            return Ok(());
        }
        if record.is_static() {
            self.statics.push(record.clone());
        }
        if self.mode == RecordMode::All {
            if let Some((w, _)) = &mut self.open {
                record.write(w)?;
            }
            return Ok(());
        }
        let now = record.stamp();
        // Events mode: an event opens a file (or extends the open one).
        if let Record::Event(t, _) = &record {
            let until = t.saturating_add(self.post_ns);
            if let Some((_, end)) = &mut self.open {
                *end = (*end).max(until);
            } else {
                let path = event_path(&self.path, *t);
                let mut w = DriveWriter::create(&path)?;
                for s in &self.statics {
                    s.write(&mut w)?;
                }
                for r in self.ring.drain(..) {
                    if !r.is_static() {
                        r.write(&mut w)?;
                    }
                }
                self.written.push(path);
                self.open = Some((w, until));
            }
        }
        match &mut self.open {
            Some((w, end)) if now <= *end => {
                if !record.is_static() {
                    record.write(w)?;
                }
            }
            Some(_) => {
                self.close()?;
                self.ring.push_back(record);
            }
            None => self.ring.push_back(record),
        }
        while self.ring.front().is_some_and(|r| r.stamp().saturating_add(self.pre_ns) < now) {
            self.ring.pop_front();
        }
        Ok(())
    }

    fn close(&mut self) -> Result<()> {
        if let Some((w, _)) = self.open.take() {
            w.finish()?;
        }
        Ok(())
    }

    /// Closes the open file; returns every file written.
    pub fn finish(mut self) -> Result<Vec<PathBuf>> {
        self.close()?;
        Ok(self.written)
    }
}

/// `drive.mcap` -> `drive-event-<stamp>.mcap`.
fn event_path(path: &Path, stamp_ns: u64) -> PathBuf {
    let stem = path.file_stem().and_then(|s| s.to_str()).unwrap_or("events");
    path.with_file_name(format!("{stem}-event-{stamp_ns}.mcap"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use nines_datasets::drive::DriveReader;
    use nines_datasets::msg::AckermannDrive;

    fn command(t: u64) -> Record {
        Record::Command(
            t,
            AckermannDriveStamped {
                header: Header::new(t, frames::BASE_LINK),
                drive: AckermannDrive::default(),
            },
        )
    }

    #[test]
    fn events_mode_saves_the_seconds_before_and_after_each_event() -> Result<()> {
        let dir = tempfile::tempdir().map_err(|e| nines_datasets::DatasetError::io(Path::new("tmp"), e))?;
        let path = dir.path().join("run.mcap");
        let mut r = Recorder::new(RecordMode::Events, &path, 1.0, 0.5)?;
        r.push(Record::CameraInfo(0, CameraInfo::default()))?;
        let s = 1_000_000_000u64;
        for k in 0..100u64 {
            let t = k * s / 10; // 10 Hz for 10 s
            r.push(command(t))?;
            if k == 50 {
                r.push(Record::Event(
                    t,
                    Event { header: Header::new(t, frames::BASE_LINK), kind: 2, ..Event::default() },
                ))?;
            }
        }
        let files = r.finish()?;
        assert_eq!(files.len(), 1);
        let reader = DriveReader::open(&files[0])?;
        let commands = reader.read_topic::<AckermannDriveStamped>(topics::COMMAND)?;
        let (first, last) = (commands[0].0, commands[commands.len() - 1].0);
        // 1 s before the event at 5 s, 0.5 s after it.
        assert_eq!((first, last), (4 * s, 5 * s + s / 2), "{first} {last}");
        assert_eq!(reader.read_topic::<Event>(topics::EVENTS)?.len(), 1);
        assert_eq!(
            reader.read_topic::<CameraInfo>(topics::CAMERA_INFO)?.len(),
            1,
            "calibration in every file"
        );
        Ok(())
    }
}
