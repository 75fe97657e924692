//! An MCAP drive as the camera: the image topic (CompressedImage or Image),
//! odometry for the ego speed, and the drive's own calibration.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nines_datasets::calib::CameraModel;
use nines_datasets::drive::{DriveReader, ReadFilter};
use nines_datasets::geometry::{Iso3, StaticTransforms};
use nines_datasets::msg::{CameraInfo, CompressedImage, Image, Odometry, TfMessage};
use nines_datasets::topics::{self, frames};

use super::{Frame, Item, Pacing, Source};
use crate::recorder::Record;
use crate::{OnboardError, Result};

/// A drive log played as a camera.
#[derive(Debug)]
pub struct DriveSource {
    path: PathBuf,
    name: String,
    topic: String,
    calibration: Option<(CameraModel, Iso3)>,
    camera_info: Option<CameraInfo>,
    tf_static: Vec<TfMessage>,
}

impl DriveSource {
    /// Opens `path`, reading its calibration up front.
    pub fn open(path: &Path, topic: &str) -> Result<Self> {
        let reader = DriveReader::open(path)?;
        let topics = reader.topics();
        let image_topic = if topics.iter().any(|t| t.topic == topic) {
            topic.to_owned()
        } else if topic == topics::CAMERA_COMPRESSED && topics.iter().any(|t| t.topic == topics::CAMERA_RAW) {
            topics::CAMERA_RAW.to_owned()
        } else {
            return Err(OnboardError::Source {
                source_name: path.display().to_string(),
                detail: format!(
                    "no topic `{topic}` in the drive (it has: {}); set camera.topic",
                    topics.iter().map(|t| t.topic.as_str()).collect::<Vec<_>>().join(", ")
                ),
            });
        };
        let info = reader
            .read_topic::<CameraInfo>(topics::CAMERA_INFO)
            .unwrap_or_default()
            .into_iter()
            .next()
            .map(|(_, m)| m);
        let tf_static: Vec<TfMessage> = reader
            .read_topic::<TfMessage>(topics::TF_STATIC)
            .unwrap_or_default()
            .into_iter()
            .map(|(_, m)| m)
            .collect();
        let tree = StaticTransforms::from_messages(&tf_static);
        let mount = tree.lookup(frames::BASE_LINK, frames::CAMERA_FRONT);
        let calibration = match (&info, mount) {
            (Some(info), Some(mount)) => Some((
                CameraModel::from_camera_info(info, &format!("{} {}", path.display(), topics::CAMERA_INFO))?,
                mount,
            )),
            _ => None,
        };
        Ok(Self {
            path: path.to_path_buf(),
            name: path.display().to_string(),
            topic: image_topic,
            calibration,
            camera_info: info,
            tf_static,
        })
    }
}

impl Source for DriveSource {
    fn name(&self) -> &str {
        &self.name
    }

    fn calibration(&self) -> Option<(CameraModel, Iso3)> {
        self.calibration.clone()
    }

    fn live(&self) -> bool {
        false
    }

    fn run(&mut self, pacing: Pacing, push: &mut dyn FnMut(Item) -> bool) -> Result<()> {
        let reader = DriveReader::open(&self.path)?;
        if let Some(info) = &self.camera_info {
            let stamp = info.header.stamp.as_nanos();
            if !push(Item::Record(Record::CameraInfo(stamp, info.clone()))) {
                return Ok(());
            }
        }
        for tf in &self.tf_static {
            let stamp = tf.transforms.first().map_or(0, |t| t.header.stamp.as_nanos());
            if !push(Item::Record(Record::TfStatic(stamp, tf.clone()))) {
                return Ok(());
            }
        }
        let filter = ReadFilter::topics([self.topic.clone(), topics::ODOMETRY.to_owned()]);
        let mut messages = reader.messages(&filter)?.skip_damaged();
        let mut clock: Option<(u64, Instant)> = None;
        while let Some(view) = messages.next_message() {
            let view = view?;
            let stamp = view.log_time_nanos;
            if pacing == Pacing::Realtime {
                let (t0, start) = *clock.get_or_insert((stamp, Instant::now()));
                let due = start + Duration::from_nanos(stamp.saturating_sub(t0));
                if let Some(wait) = due.checked_duration_since(Instant::now()) {
                    std::thread::sleep(wait);
                }
            }
            let keep_going = if view.topic == topics::ODOMETRY {
                let odom: Odometry = view.decode()?;
                let speed_mps = odom.twist.twist.linear.x;
                push(Item::Record(Record::Odometry(stamp, odom)))
                    && push(Item::Speed { stamp_ns: stamp, speed_mps })
            } else if view.type_name == "sensor_msgs/msg/CompressedImage" {
                let msg: CompressedImage = view.decode()?;
                let rgb = nines_datasets::image::decode_compressed(&msg, &self.name).ok();
                let frame = frame(stamp, rgb);
                push(Item::Record(Record::Image(stamp, msg))) && push(Item::Frame(frame))
            } else {
                let msg: Image = view.decode()?;
                let rgb = nines_datasets::image::decode_raw(&msg, &self.name).ok();
                push(Item::Frame(frame(stamp, rgb)))
            };
            if !keep_going {
                break;
            }
        }
        if !messages.damaged().is_empty() {
            tracing::warn!("{}: skipped {} damaged chunk(s)", self.name, messages.damaged().len());
        }
        Ok(())
    }
}

/// A decoded (or, with `None`, undecodable) frame captured now.
pub(super) fn frame(stamp_ns: u64, rgb: Option<image::RgbImage>) -> Frame {
    let (width, height) = rgb.as_ref().map_or((0, 0), image::RgbImage::dimensions);
    Frame {
        stamp_ns,
        captured: Instant::now(),
        rgb: rgb.map(image::RgbImage::into_raw).unwrap_or_default(),
        width,
        height,
    }
}
