//! The frame synchroniser: for each camera frame, the nearest lidar sweep,
//! the ego pose interpolated at the camera stamp, the vehicle speed and the
//! command being driven. Problems (gaps, out-of-order stamps, missing data)
//! are reported, never silently skipped.
//!
//! Streams are loaded once ([`DriveStreams::load`], header stamps only for
//! images and clouds) and matched by a pure function ([`synchronise`]), so the
//! matching is testable on hand-made stamps.

use serde::Serialize;

use crate::drive::{DriveReader, MessageView, ReadFilter};
use crate::error::Result;
use crate::geometry::{Iso3, PoseTrack, isometry_from_pose, isometry_from_transform};
use crate::msg::{AckermannDrive, AckermannDriveStamped, HeaderPrefix, Odometry, TfMessage};
use crate::topics::{self, frames};

/// Matching tolerances.
#[derive(Debug, Clone, Serialize)]
pub struct SyncOptions {
    /// A lidar sweep further than this from the camera stamp is no match, ns.
    pub lidar_tolerance_nanos: u64,
    /// Pose samples further apart than this are not interpolated across, ns.
    pub pose_max_gap_nanos: u64,
    /// A command older than this is not "being driven", ns.
    pub command_max_age_nanos: u64,
    /// A stream interval longer than this multiple of its median is a gap.
    pub gap_factor: f64,
}

impl Default for SyncOptions {
    fn default() -> Self {
        Self {
            lidar_tolerance_nanos: 50_000_000,
            pose_max_gap_nanos: 200_000_000,
            command_max_age_nanos: 500_000_000,
            gap_factor: 2.5,
        }
    }
}

/// Stamps and values of the streams of one drive, in file (log-time) order.
#[derive(Debug, Clone, Default)]
pub struct DriveStreams {
    /// Camera header stamps, ns.
    pub camera: Vec<u64>,
    /// Lidar header stamps, ns.
    pub lidar: Vec<u64>,
    /// `map_from_base_link` samples, ns.
    pub poses: Vec<(u64, Iso3)>,
    /// Forward speed samples, m/s.
    pub speeds: Vec<(u64, f64)>,
    /// Commands.
    pub commands: Vec<(u64, AckermannDrive)>,
}

impl DriveStreams {
    /// Reads the streams of a drive. Poses come from `/tf` (map -> base_link)
    /// or, if the drive has none, from `/vehicle/odometry`.
    pub fn load(reader: &DriveReader) -> Result<Self> {
        let mut collector = StreamCollector::new(reader);
        let mut messages = reader.messages(&ReadFilter::topics(collector.topics()))?;
        while let Some(view) = messages.next_message() {
            collector.observe(&view?)?;
        }
        Ok(collector.finish())
    }
}

/// Builds [`DriveStreams`] from messages fed one at a time, so a caller that
/// already reads the whole drive (`nines inspect`) need not read it again.
#[derive(Debug)]
pub struct StreamCollector {
    camera_topic: String,
    streams: DriveStreams,
    odometry_poses: Vec<(u64, Iso3)>,
}

impl StreamCollector {
    /// A collector for `reader`'s drive (its camera topic is the compressed
    /// one, or the raw one if that is all there is).
    #[must_use]
    pub fn new(reader: &DriveReader) -> Self {
        let camera_topic = reader
            .topics()
            .iter()
            .map(|t| t.topic.clone())
            .find(|t| t == topics::CAMERA_COMPRESSED || t == topics::CAMERA_RAW)
            .unwrap_or_else(|| topics::CAMERA_COMPRESSED.to_owned());
        Self { camera_topic, streams: DriveStreams::default(), odometry_poses: Vec::new() }
    }

    /// The topics the collector uses.
    #[must_use]
    pub fn topics(&self) -> [&str; 5] {
        [&self.camera_topic, topics::LIDAR, topics::TF, topics::ODOMETRY, topics::COMMAND]
    }

    /// Takes one message (others than [`Self::topics`] are ignored).
    pub fn observe(&mut self, view: &MessageView<'_>) -> Result<()> {
        let streams = &mut self.streams;
        match view.topic {
            t if t == self.camera_topic => {
                streams.camera.push(view.decode_prefix::<HeaderPrefix>()?.header.stamp.as_nanos());
            }
            topics::LIDAR => {
                streams.lidar.push(view.decode_prefix::<HeaderPrefix>()?.header.stamp.as_nanos());
            }
            topics::TF => {
                for t in view.decode::<TfMessage>()?.transforms {
                    let is_ego = t.header.frame_id == frames::MAP && t.child_frame_id == frames::BASE_LINK;
                    let (v, q) = (&t.transform.translation, &t.transform.rotation);
                    if is_ego && ![v.x, v.y, v.z, q.x, q.y, q.z, q.w].iter().all(|x| x.is_finite()) {
                        return Err(non_finite(
                            view,
                            "map -> base_link transform",
                            t.header.stamp.as_nanos(),
                        ));
                    }
                    if let (true, Some(iso)) = (is_ego, isometry_from_transform(&t.transform)) {
                        streams.poses.push((t.header.stamp.as_nanos(), iso));
                    }
                }
            }
            topics::ODOMETRY => {
                let odom = view.decode::<Odometry>()?;
                let stamp = odom.header.stamp.as_nanos();
                let (p, q, v) =
                    (&odom.pose.pose.position, &odom.pose.pose.orientation, &odom.twist.twist.linear);
                if ![p.x, p.y, p.z, q.x, q.y, q.z, q.w, v.x].iter().all(|x| x.is_finite()) {
                    return Err(non_finite(view, "pose or speed", stamp));
                }
                streams.speeds.push((stamp, odom.twist.twist.linear.x));
                if let Some(iso) = isometry_from_pose(&odom.pose.pose) {
                    self.odometry_poses.push((stamp, iso));
                }
            }
            topics::COMMAND => {
                let cmd = view.decode::<AckermannDriveStamped>()?;
                streams.commands.push((cmd.header.stamp.as_nanos(), cmd.drive));
            }
            _ => {}
        }
        Ok(())
    }

    /// The streams; poses fall back to odometry when the drive has no /tf.
    #[must_use]
    pub fn finish(mut self) -> DriveStreams {
        if self.streams.poses.is_empty() {
            self.streams.poses = self.odometry_poses;
        }
        self.streams
    }
}

/// One camera frame with what was true at its stamp.
#[derive(Debug, Clone)]
pub struct SyncedFrame {
    /// Index of the frame among the camera messages.
    pub camera_index: usize,
    /// Camera stamp, ns.
    pub stamp_nanos: u64,
    /// Index and stamp of the nearest lidar sweep within tolerance.
    pub lidar: Option<(usize, u64)>,
    /// Ego pose interpolated at the camera stamp.
    pub map_from_base_link: Option<Iso3>,
    /// Forward speed interpolated at the camera stamp, m/s.
    pub speed_mps: Option<f64>,
    /// Latest command at or before the stamp, if recent enough.
    pub command: Option<AckermannDrive>,
}

/// A stream interval much longer than usual.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Gap {
    /// Stream name.
    pub stream: &'static str,
    /// Stamp before the gap, ns.
    pub from_nanos: u64,
    /// Stamp after the gap, ns.
    pub to_nanos: u64,
}

/// A stamp earlier than the one before it on the same stream.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OutOfOrder {
    /// Stream name.
    pub stream: &'static str,
    /// Position in the stream.
    pub index: usize,
    /// The late stamp, ns.
    pub stamp_nanos: u64,
    /// The stamp before it, ns.
    pub previous_nanos: u64,
}

/// What the synchroniser could not match, and why.
#[derive(Debug, Clone, Default, Serialize)]
pub struct SyncReport {
    /// Camera frames.
    pub frames: usize,
    /// Frames with no lidar sweep within tolerance.
    pub frames_without_lidar: usize,
    /// Frames outside the pose track or across a pose gap.
    pub frames_without_pose: usize,
    /// Frames with no speed sample around them.
    pub frames_without_speed: usize,
    /// Frames with no recent command.
    pub frames_without_command: usize,
    /// Long intervals on any stream.
    pub gaps: Vec<Gap>,
    /// Stamps going backwards on any stream.
    pub out_of_order: Vec<OutOfOrder>,
}

impl SyncReport {
    /// True if every frame matched everything and no stream had problems.
    #[must_use]
    pub fn is_clean(&self) -> bool {
        self.frames_without_lidar
            + self.frames_without_pose
            + self.frames_without_speed
            + self.frames_without_command
            == 0
            && self.gaps.is_empty()
            && self.out_of_order.is_empty()
    }
}

fn check_stream(stream: &'static str, stamps: &[u64], gap_factor: f64, report: &mut SyncReport) {
    for (i, pair) in stamps.windows(2).enumerate() {
        if pair[1] < pair[0] {
            report.out_of_order.push(OutOfOrder {
                stream,
                index: i + 1,
                stamp_nanos: pair[1],
                previous_nanos: pair[0],
            });
        }
    }
    let mut sorted = stamps.to_vec();
    sorted.sort_unstable();
    let mut intervals: Vec<u64> = sorted.windows(2).map(|p| p[1] - p[0]).collect();
    if intervals.len() < 2 {
        return;
    }
    let limit = {
        let mut v = intervals.clone();
        v.sort_unstable();
        v[v.len() / 2] as f64 * gap_factor
    };
    for (pair, dt) in sorted.windows(2).zip(intervals.drain(..)) {
        if dt as f64 > limit {
            report.gaps.push(Gap { stream, from_nanos: pair[0], to_nanos: pair[1] });
        }
    }
}

/// Value at `t` by linear interpolation between bracketing samples (sorted by time).
fn interpolate_scalar(samples: &[(u64, f64)], t: u64, max_gap: u64) -> Option<f64> {
    let i = samples.partition_point(|(s, _)| *s < t);
    match (i.checked_sub(1).map(|j| samples[j]), samples.get(i)) {
        (_, Some((s, v))) if *s == t => Some(*v),
        (Some((t0, v0)), Some((t1, v1))) if t1 - t0 <= max_gap => {
            Some(v0 + (v1 - v0) * (t - t0) as f64 / (t1 - t0) as f64)
        }
        _ => None,
    }
}

/// Matches every camera frame to the other streams.
#[must_use]
pub fn synchronise(streams: &DriveStreams, options: &SyncOptions) -> (Vec<SyncedFrame>, SyncReport) {
    let mut report = SyncReport { frames: streams.camera.len(), ..SyncReport::default() };
    check_stream("camera", &streams.camera, options.gap_factor, &mut report);
    check_stream("lidar", &streams.lidar, options.gap_factor, &mut report);
    let pose_stamps: Vec<u64> = streams.poses.iter().map(|(t, _)| *t).collect();
    check_stream("pose", &pose_stamps, options.gap_factor, &mut report);

    let mut lidar: Vec<(u64, usize)> = streams.lidar.iter().enumerate().map(|(i, t)| (*t, i)).collect();
    lidar.sort_unstable();
    let poses = PoseTrack::new(streams.poses.clone());
    let mut speeds = streams.speeds.clone();
    speeds.sort_by_key(|(t, _)| *t);
    let mut commands = streams.commands.clone();
    commands.sort_by_key(|(t, _)| *t);

    let frames: Vec<SyncedFrame> = streams
        .camera
        .iter()
        .enumerate()
        .map(|(camera_index, &t)| {
            let i = lidar.partition_point(|(s, _)| *s < t);
            let nearest = [i.checked_sub(1), Some(i)]
                .into_iter()
                .flatten()
                .filter_map(|j| lidar.get(j))
                .min_by_key(|(s, _)| s.abs_diff(t))
                .filter(|(s, _)| s.abs_diff(t) <= options.lidar_tolerance_nanos)
                .map(|(s, index)| (*index, *s));
            let c = commands.partition_point(|(s, _)| *s <= t);
            let command = c
                .checked_sub(1)
                .map(|j| commands[j])
                .filter(|(s, _)| t - s <= options.command_max_age_nanos)
                .map(|(_, drive)| drive);
            SyncedFrame {
                camera_index,
                stamp_nanos: t,
                lidar: nearest,
                map_from_base_link: poses.interpolate(t, options.pose_max_gap_nanos),
                speed_mps: interpolate_scalar(&speeds, t, options.pose_max_gap_nanos),
                command,
            }
        })
        .collect();
    for f in &frames {
        report.frames_without_lidar += usize::from(f.lidar.is_none());
        report.frames_without_pose += usize::from(f.map_from_base_link.is_none());
        report.frames_without_speed += usize::from(f.speed_mps.is_none());
        report.frames_without_command += usize::from(f.command.is_none());
    }
    (frames, report)
}

/// The error for a message holding NaN or infinity: the drive, the topic, the field and the stamp.
fn non_finite(view: &MessageView<'_>, what: &str, stamp_nanos: u64) -> crate::DatasetError {
    crate::DatasetError::invalid(
        view.source,
        view.topic,
        format!(
            "the {what} at stamp {}.{:09} s is not finite (NaN or infinity); the recording is damaged at that message",
            stamp_nanos / 1_000_000_000,
            stamp_nanos % 1_000_000_000
        ),
    )
}

#[cfg(test)]
#[allow(clippy::float_cmp, reason = "hand-computed values are exact")]
mod tests {
    use super::*;
    use nalgebra::Translation3;

    const MS: u64 = 1_000_000;

    fn streams() -> DriveStreams {
        DriveStreams {
            camera: vec![100 * MS, 150 * MS, 200 * MS, 250 * MS],
            lidar: vec![98 * MS, 199 * MS, 260 * MS],
            poses: (0..=30)
                .map(|i| {
                    (
                        i * 10 * MS,
                        Iso3::from_parts(
                            Translation3::new(i as f64, 0.0, 0.0),
                            nalgebra::UnitQuaternion::identity(),
                        ),
                    )
                })
                .collect(),
            speeds: vec![(100 * MS, 1.0), (300 * MS, 3.0)],
            commands: vec![(90 * MS, AckermannDrive { speed: 1.0, ..Default::default() })],
        }
    }

    #[test]
    fn matches_nearest_sweep_and_interpolates_pose_and_speed() {
        let (frames, report) = synchronise(
            &streams(),
            &SyncOptions {
                lidar_tolerance_nanos: 20 * MS,
                command_max_age_nanos: 100 * MS,
                ..Default::default()
            },
        );
        assert_eq!(frames[0].lidar, Some((0, 98 * MS)));
        assert_eq!(frames[1].lidar, None, "nearest sweep is 49 ms away");
        assert_eq!(frames[2].lidar, Some((1, 199 * MS)));
        assert_eq!(frames[3].lidar, Some((2, 260 * MS)));
        let x = frames[1].map_from_base_link.unwrap().translation.x;
        assert!((x - 15.0).abs() < 1e-12, "{x}");
        assert!((frames[3].speed_mps.unwrap() - 2.5).abs() < 1e-12);
        assert_eq!(frames[0].command.unwrap().speed, 1.0);
        assert!(frames[3].command.is_none(), "the only command is 160 ms old at 250 ms");
        assert_eq!(report.frames_without_lidar, 1);
    }

    #[test]
    fn reports_gaps_and_out_of_order_stamps() {
        let mut s = streams();
        s.camera = vec![0, 50 * MS, 100 * MS, 90 * MS, 150 * MS, 500 * MS];
        let (_, report) = synchronise(&s, &SyncOptions::default());
        assert_eq!(
            report.out_of_order,
            vec![OutOfOrder { stream: "camera", index: 3, stamp_nanos: 90 * MS, previous_nanos: 100 * MS }]
        );
        assert_eq!(report.gaps, vec![Gap { stream: "camera", from_nanos: 150 * MS, to_nanos: 500 * MS }]);
        assert_eq!(report.frames_without_pose, 1, "500 ms is past the pose track");
        assert!(!report.is_clean());
    }
}
