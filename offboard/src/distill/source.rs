//! What distillation reads from a drive: calibration and poses first (one
//! light pass), then camera frames and de-skewed sweeps in time order.

use std::path::{Path, PathBuf};

use nalgebra::{Point3, Vector3};
use nines_datasets::calib::CameraModel;
use nines_datasets::drive::{DriveReader, MessageView, ReadFilter};
use nines_datasets::geometry::{Iso3, PoseTrack, StaticTransforms};
use nines_datasets::msg::{
    CameraInfo, ControlSource, Controller, Image, LaneState, ObjectArray, PointCloud2, TfMessage,
};
use nines_datasets::pointcloud::from_point_cloud2;
use nines_datasets::sync::StreamCollector;
use nines_datasets::topics::{self, frames};

use crate::error::{OffboardError, Result};
use crate::labels::RecoveryStates;

/// Poses further apart than this are a gap: nothing is interpolated across it.
pub const POSE_MAX_GAP_NANOS: u64 = 500_000_000;

/// Everything about a drive that is fixed before the first frame.
#[derive(Debug)]
pub struct DriveSetup {
    /// The drive file.
    pub path: PathBuf,
    /// The front camera.
    pub camera: CameraModel,
    /// Camera mounting.
    pub base_from_camera: Iso3,
    /// Lidar mounting.
    pub base_from_lidar: Iso3,
    /// map <- base_link over the drive.
    pub poses: PoseTrack,
    /// Measured forward speed, (stamp, m/s), time-ordered (may be empty).
    pub speeds: Vec<(u64, f64)>,
    /// Camera frames in the drive.
    pub camera_frames: usize,
    /// The camera topic (compressed or raw).
    pub camera_topic: String,
    /// When the driving must not be imitated (the model drove, or a
    /// disturbance was injected), from /nines/control_source.
    pub not_imitable: NotImitable,
    /// [start, end) of the control periods a safety driver drove, ns.
    safety_driver: Vec<(u64, u64)>,
    /// (stamp, lateral offset m, heading error rad) from
    /// /sim/ground_truth/lane, time-ordered; empty on fleet logs.
    lane: Vec<(u64, f64, f64)>,
}

/// The spans of a drive whose driving a plan label must not imitate: the
/// model's own driving and injected disturbances (DART), from the control
/// periods on /nines/control_source (each lasts until the next). A drive
/// that does not record who drove (a fleet log of a human driver, an
/// imported dataset) has none.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NotImitable {
    /// [start, end) in ns, time-ordered, merged.
    pub spans: Vec<(u64, u64)>,
}

impl NotImitable {
    /// From the control periods, in time order.
    #[must_use]
    pub fn from_periods(periods: &[(u64, ControlSource)]) -> Self {
        let stamps: Vec<u64> = periods.iter().map(|(t, _)| *t).collect();
        let mut spans: Vec<(u64, u64)> = Vec::new();
        for ((_, control), (start, end)) in periods.iter().zip(ControlSource::periods(&stamps)) {
            if control.imitable() {
                continue;
            }
            match spans.last_mut() {
                Some(last) if last.1 >= start => last.1 = last.1.max(end),
                _ => spans.push((start, end)),
            }
        }
        Self { spans }
    }

    /// Whether [from, to] overlaps a span (ns).
    #[must_use]
    pub fn overlaps(&self, from: u64, to: u64) -> bool {
        let i = self.spans.partition_point(|(_, end)| *end <= from);
        self.spans.get(i).is_some_and(|(start, _)| *start <= to)
    }
}

/// A camera frame waiting for its labels.
#[derive(Debug)]
pub struct Frame {
    /// Capture time, ns.
    pub stamp_nanos: u64,
    /// The picture.
    pub rgb: image::RgbImage,
    /// Simulator ground-truth depth (for scoring only).
    pub gt_depth: Option<Image>,
    /// Simulator ground-truth boxes (for scoring only).
    pub gt_objects: Option<ObjectArray>,
}

/// One lidar sweep, de-skewed: every point moved to where it would have been
/// measured at the sweep's reference time.
#[derive(Debug)]
pub struct Sweep {
    /// Header stamp, ns.
    pub stamp_nanos: u64,
    /// Mid-sweep time, ns (the time the sweep best describes).
    pub centre_nanos: u64,
    /// map <- lidar at `stamp_nanos`.
    pub map_from_lidar: Iso3,
    /// Points in the lidar frame at `stamp_nanos`.
    pub points: Vec<[f32; 3]>,
}

fn first_message<T: nines_datasets::msg::RosMessage>(reader: &DriveReader, topic: &str) -> Result<Option<T>> {
    let mut it = reader.messages(&ReadFilter::topics([topic]))?;
    match it.next_message() {
        Some(view) => Ok(Some(view?.decode::<T>()?)),
        None => Ok(None),
    }
}

impl DriveSetup {
    /// Reads calibration, mounting and poses, and refuses a drive that
    /// cannot be labelled, saying what is missing.
    pub fn read(reader: &DriveReader) -> Result<Self> {
        let path = reader.path().to_path_buf();
        let has = |topic: &str| reader.topics().iter().any(|t| t.topic == topic && t.message_count > 0);
        if !has(topics::LIDAR) {
            return Err(OffboardError::missing(
                &path,
                format!("no lidar ({} has no messages)", topics::LIDAR),
                "labels are made from lidar; this drive can be replayed but not distilled",
            ));
        }
        let Some(info) = first_message::<CameraInfo>(reader, topics::CAMERA_INFO)? else {
            return Err(OffboardError::missing(
                &path,
                format!("no camera calibration ({} is absent)", topics::CAMERA_INFO),
                "record the camera's CameraInfo with the drive, or import it with its calib file",
            ));
        };
        let camera =
            CameraModel::from_camera_info(&info, &format!("{}:{}", path.display(), topics::CAMERA_INFO))?;
        let statics: Vec<TfMessage> =
            reader.read_topic::<TfMessage>(topics::TF_STATIC)?.into_iter().map(|(_, m)| m).collect();
        let tree = StaticTransforms::from_messages(&statics);
        let camera_frame =
            if camera.frame_id.is_empty() { frames::CAMERA_FRONT } else { camera.frame_id.as_str() };
        let mount = |frame: &str| {
            tree.lookup(frames::BASE_LINK, frame).ok_or_else(|| {
                OffboardError::missing(
                    &path,
                    format!(
                        "no mounting of {frame} (no {} transform base_link -> {frame})",
                        topics::TF_STATIC
                    ),
                    "record the sensor extrinsics on /tf_static",
                )
            })
        };
        let base_from_camera = mount(camera_frame)?;
        let lidar_frame = first_message::<PointCloud2>(reader, topics::LIDAR)?
            .map_or_else(|| frames::LIDAR_TOP.to_owned(), |c| c.header.frame_id);
        let base_from_lidar = mount(&lidar_frame)?;

        let mut collector = StreamCollector::new(reader);
        let camera_topic = collector.topics()[0].to_owned();
        let mut it = reader.messages(&ReadFilter::topics(collector.topics()))?;
        while let Some(view) = it.next_message() {
            collector.observe(&view?)?;
        }
        let streams = collector.finish();
        if streams.poses.is_empty() {
            return Err(OffboardError::missing(
                &path,
                "no ego poses (neither /tf map -> base_link nor /vehicle/odometry)",
                "sweeps cannot be de-skewed or accumulated without them; record the ego pose",
            ));
        }
        let poses = PoseTrack::new(streams.poses);
        check_pose_gaps(&path, &poses, &streams.camera)?;
        let mut speeds = streams.speeds;
        speeds.sort_by_key(|(t, _)| *t);
        // A drive without the topic reads none: nothing is masked.
        let periods = reader.read_topic::<ControlSource>(topics::CONTROL_SOURCE)?;
        let stamps: Vec<u64> = periods.iter().map(|(t, _)| *t).collect();
        let safety_driver = periods
            .iter()
            .zip(ControlSource::periods(&stamps))
            .filter(|((_, c), _)| c.source == Controller::SafetyDriver as u8)
            .map(|(_, span)| span)
            .collect();
        let lane = reader
            .read_topic::<LaneState>(topics::GT_LANE)?
            .into_iter()
            .map(|(t, s)| (t, f64::from(s.lateral_offset_m), f64::from(s.heading_error_rad)))
            .collect();
        Ok(Self {
            path,
            camera,
            base_from_camera,
            base_from_lidar,
            poses,
            speeds,
            camera_frames: streams.camera.len(),
            camera_topic,
            not_imitable: NotImitable::from_periods(&periods),
            safety_driver,
            lane,
        })
    }

    /// Whether the frame at `stamp` shows a recovery state: a safety driver
    /// was driving (an intervention), or, where the drive records its lane
    /// state, the car was off its lane centre or turned off its heading
    /// (see [`RecoveryStates`]).
    #[must_use]
    pub fn recovering_at(&self, stamp_nanos: u64) -> bool {
        let intervening = self.safety_driver.iter().any(|(a, b)| (*a..*b).contains(&stamp_nanos));
        intervening
            || self.lane_at(stamp_nanos).is_some_and(|(lateral, heading)| {
                lateral.abs() >= RecoveryStates::OFF_CENTRE_M
                    || heading.abs().to_degrees() >= RecoveryStates::TURNED_DEG
            })
    }

    /// Where the vehicle was against its lane centre at `stamp` (the newest
    /// state at most a control period old), m and rad; `None` if the drive
    /// does not record it.
    #[must_use]
    pub fn lane_at(&self, stamp_nanos: u64) -> Option<(f64, f64)> {
        let i = self.lane.partition_point(|(t, _, _)| *t <= stamp_nanos);
        let (t, lateral, heading) = *self.lane.get(i.checked_sub(1)?)?;
        (stamp_nanos - t <= ControlSource::LONE_PERIOD_NANOS).then_some((lateral, heading))
    }

    /// map <- base_link at `stamp`, if the track covers it.
    #[must_use]
    pub fn ego_at(&self, stamp_nanos: u64) -> Option<Iso3> {
        self.poses.interpolate(stamp_nanos, POSE_MAX_GAP_NANOS)
    }

    /// Forward speed at `stamp`, m/s: odometry if recorded, else from poses.
    #[must_use]
    pub fn speed_at(&self, stamp_nanos: u64) -> Option<f64> {
        let i = self.speeds.partition_point(|(t, _)| *t < stamp_nanos);
        if let (Some(a), Some(b)) = (i.checked_sub(1).and_then(|i| self.speeds.get(i)), self.speeds.get(i))
            && b.0 - a.0 <= POSE_MAX_GAP_NANOS
        {
            let s = if b.0 == a.0 { 0.0 } else { (stamp_nanos - a.0) as f64 / (b.0 - a.0) as f64 };
            return Some(a.1 + s * (b.1 - a.1));
        }
        if self.speeds.get(i).is_some_and(|b| b.0 == stamp_nanos) {
            return Some(self.speeds[i].1);
        }
        // Central difference of poses over +-50 ms.
        let dt = 50_000_000;
        let before = self.ego_at(stamp_nanos.saturating_sub(dt))?;
        let after = self.ego_at(stamp_nanos + dt)?;
        let now = self.ego_at(stamp_nanos)?;
        let forward = now.rotation * Vector3::x();
        Some((after.translation.vector - before.translation.vector).dot(&forward) / (2.0 * dt as f64 * 1e-9))
    }

    /// Decodes and de-skews one sweep; `None` if no pose covers it.
    pub fn sweep(&self, view: &MessageView<'_>) -> Result<Option<Sweep>> {
        let cloud = view.decode::<PointCloud2>()?;
        let stamp = cloud.header.stamp.as_nanos();
        let raw = from_point_cloud2(&cloud, &format!("{}:{}", self.path.display(), view.topic))?;
        let Some(map_from_base) = self.ego_at(stamp) else { return Ok(None) };
        let lidar_from_map = (map_from_base * self.base_from_lidar).inverse();
        let mut points = Vec::with_capacity(raw.len());
        let mut time_sum = 0.0f64;
        // Points of one firing share a time: one pose per distinct time.
        let mut cached: Option<(u32, Iso3)> = None;
        for p in &raw {
            if !(p.x.is_finite() && p.y.is_finite() && p.z.is_finite() && p.time.is_finite()) {
                continue;
            }
            let reference_from_firing = match cached {
                Some((bits, iso)) if bits == p.time.to_bits() => iso,
                _ => {
                    let at = stamp.saturating_add_signed((f64::from(p.time) * 1e9) as i64);
                    let map_from_firing = self.ego_at(at).unwrap_or(map_from_base) * self.base_from_lidar;
                    let iso = lidar_from_map * map_from_firing;
                    cached = Some((p.time.to_bits(), iso));
                    iso
                }
            };
            let q = reference_from_firing * Point3::new(f64::from(p.x), f64::from(p.y), f64::from(p.z));
            points.push([q.x as f32, q.y as f32, q.z as f32]);
            time_sum += f64::from(p.time);
        }
        let mean_time = if points.is_empty() { 0.0 } else { time_sum / points.len() as f64 };
        Ok(Some(Sweep {
            stamp_nanos: stamp,
            centre_nanos: stamp.saturating_add_signed((mean_time * 1e9) as i64),
            map_from_lidar: map_from_base * self.base_from_lidar,
            points,
        }))
    }

    /// The topics the labelling pass reads.
    #[must_use]
    pub fn frame_topics(&self) -> Vec<String> {
        vec![
            self.camera_topic.clone(),
            topics::LIDAR.to_owned(),
            topics::GT_DEPTH.to_owned(),
            topics::GT_OBJECTS.to_owned(),
        ]
    }
}

/// Refuses a drive whose poses stop for long while the camera runs: labels
/// there would be guesses.
fn check_pose_gaps(path: &Path, poses: &PoseTrack, camera: &[u64]) -> Result<()> {
    let stamps: Vec<u64> = poses.samples().map(|(t, _)| t).collect();
    for pair in stamps.windows(2) {
        let (a, b) = (pair[0], pair[1]);
        if b - a > POSE_MAX_GAP_NANOS && camera.iter().any(|t| *t > a && *t < b) {
            let start = stamps[0];
            return Err(OffboardError::missing(
                path,
                format!(
                    "a gap in ego poses from {:.2} s to {:.2} s after the first pose (more than {:.1} s with camera frames inside)",
                    (a - start) as f64 * 1e-9,
                    (b - start) as f64 * 1e-9,
                    POSE_MAX_GAP_NANOS as f64 * 1e-9
                ),
                "split the drive at the gap (`nines recover` keeps what is whole), or re-record the poses",
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use nines_datasets::msg::Controller;

    fn period(t_ms: u64, source: Controller, disturbed: bool) -> (u64, ControlSource) {
        let message = ControlSource { source: source as u8, disturbed, ..ControlSource::default() };
        (t_ms * 1_000_000, message)
    }

    #[test]
    fn the_models_driving_and_disturbances_are_not_imitable() {
        use Controller::{Human, Model, SafetyDriver};
        let periods = [
            period(0, Human, false),
            period(50, Human, true),
            period(100, Human, true),
            period(150, Human, false),
            period(200, Model, false),
            period(250, SafetyDriver, false),
            period(300, Human, true),
        ];
        let spans = NotImitable::from_periods(&periods);
        // 50-150 disturbed (merged), 200-250 the model, 300-350 disturbed (the last lasts a period).
        let ms = 1_000_000;
        assert_eq!(spans.spans, vec![(50 * ms, 150 * ms), (200 * ms, 250 * ms), (300 * ms, 350 * ms)]);
        assert!(!spans.overlaps(0, 49 * ms), "before the first span");
        assert!(spans.overlaps(0, 50 * ms), "a window touching a span's start overlaps it");
        assert!(!spans.overlaps(150 * ms, 199 * ms), "between spans: the expert's own recovery");
        assert!(spans.overlaps(240 * ms, 260 * ms));
        assert!(!spans.overlaps(250 * ms, 299 * ms), "the safety driver is imitated");
        assert!(!spans.overlaps(350 * ms, 10_000 * ms));
        assert!(NotImitable::from_periods(&[]).spans.is_empty(), "a drive without the topic masks nothing");
    }
}
