//! Turns drive messages into rerun archetypes, one topic at a time.

use std::collections::{BTreeSet, HashMap, VecDeque};

use nalgebra::{Point3, Vector3};
use nines_datasets::calib::CameraModel;
use nines_datasets::drive::MessageView;
use nines_datasets::geometry::{Iso3, isometry_from_pose, isometry_from_transform};
use nines_datasets::msg::{
    AckermannDriveStamped, CameraInfo, CompressedImage, Event, Image, ModelOutput, ObjectArray, Odometry,
    PointCloud2, TfMessage,
};
use nines_datasets::pointcloud::from_point_cloud2;
use nines_datasets::topics::{self, frames};
use rerun::RecordingStream;

mod plots;

use super::colour;
use super::entity;
use super::{DriveContext, LidarColour, ReplayOptions};

/// Why a message was not logged.
#[derive(Debug, thiserror::Error)]
pub(crate) enum LogError {
    /// The message did not decode: skipped and counted.
    #[error(transparent)]
    Decode(#[from] nines_datasets::DatasetError),
    /// The recording stream failed: the replay stops.
    #[error(transparent)]
    Rerun(#[from] rerun::RecordingStreamError),
}

type Logged = Result<bool, LogError>;

/// Poses further apart than this are not interpolated across.
const POSE_MAX_GAP_NANOS: u64 = 500_000_000;
/// A pose this close to a stamp stands in for it at the ends of the track.
const POSE_NEAREST_NANOS: u64 = 200_000_000;
/// The path ahead is redrawn at most this often.
const PATH_AHEAD_PERIOD_NANOS: u64 = 100_000_000;
/// Window over which measured acceleration is differentiated from speed.
const ACCEL_WINDOW_NANOS: u64 = 100_000_000;
/// A camera frame without overlay takes a sweep stamped this close to it.
const BARE_FRAME_NANOS: u64 = 100_000_000;
/// Nearest depth a projected lidar point may have, m.
const MIN_DEPTH_M: f64 = 0.5;
/// Ego body box when the drive does not say: length, width, height (m),
/// and how far its centre is ahead of base_link.
const EGO_BOX: ([f32; 3], f32) = ([4.6, 1.9, 1.5], 1.35);

/// The newest lidar sweep, de-skewed into the map frame.
struct Sweep {
    points_map: Vec<Point3<f64>>,
}

/// The camera as last described by its CameraInfo.
struct Camera {
    model: CameraModel,
    base_from_camera: Iso3,
}

/// Logs one drive into one recording stream.
pub(crate) struct SceneLogger<'a> {
    rec: &'a RecordingStream,
    options: &'a ReplayOptions,
    context: DriveContext,
    mounts: HashMap<String, Option<Iso3>>,
    camera: Option<Camera>,
    sweep: Option<Sweep>,
    last_path_ahead: Option<u64>,
    speeds: VecDeque<(u64, f64)>,
    event_markers: Vec<([f32; 3], String)>,
    /// The last control period's (source, disturbed), to log a line on each change.
    last_control: Option<(u8, bool)>,
    entities: BTreeSet<&'static str>,
    ego_from_odometry: bool,
    overlay: (u64, u64),
    // Stamp of the newest camera frame that has no lidar overlay yet.
    bare_frame: Option<u64>,
}

fn xyz(p: &Point3<f64>) -> [f32; 3] {
    [p.x as f32, p.y as f32, p.z as f32]
}

fn quaternion(iso: &Iso3) -> rerun::Quaternion {
    let q = iso.rotation.quaternion();
    rerun::Quaternion::from_xyzw([q.i as f32, q.j as f32, q.k as f32, q.w as f32])
}

fn transform(iso: &Iso3) -> rerun::Transform3D {
    let t = iso.translation.vector;
    rerun::Transform3D::from_translation_rotation([t.x as f32, t.y as f32, t.z as f32], quaternion(iso))
}

impl<'a> SceneLogger<'a> {
    pub(crate) fn new(rec: &'a RecordingStream, options: &'a ReplayOptions, context: DriveContext) -> Self {
        // The ego pose comes from /tf when the drive has it there, else from odometry.
        let ego_from_odometry = !context.poses_from_tf;
        Self {
            rec,
            options,
            context,
            mounts: HashMap::new(),
            camera: None,
            sweep: None,
            last_path_ahead: None,
            speeds: VecDeque::new(),
            event_markers: Vec::new(),
            last_control: None,
            entities: BTreeSet::new(),
            ego_from_odometry,
            overlay: (0, 0),
            bare_frame: None,
        }
    }

    /// Camera frames drawn with a lidar overlay, and lidar points drawn on them.
    pub(crate) fn overlay(&self) -> (u64, u64) {
        self.overlay
    }

    /// Entity paths logged so far, sorted.
    pub(crate) fn entities(&self) -> Vec<String> {
        self.entities.iter().map(|e| (*e).to_owned()).collect()
    }

    fn log(&mut self, path: &'static str, archetype: &impl rerun::AsComponents) -> Result<(), LogError> {
        self.entities.insert(path);
        self.rec.log(path, archetype)?;
        Ok(())
    }

    fn log_static(
        &mut self,
        path: &'static str,
        archetype: &impl rerun::AsComponents,
    ) -> Result<(), LogError> {
        self.entities.insert(path);
        self.rec.log_static(path, archetype)?;
        Ok(())
    }

    /// What does not change over the drive: axes, the ego's body, the
    /// driven path, plot styles.
    pub(crate) fn log_statics(&mut self, drive_topics: &[String]) -> Result<(), LogError> {
        self.log_static(entity::WORLD, &rerun::ViewCoordinates::RIGHT_HAND_Z_UP())?;
        let ([l, w, h], ahead) = EGO_BOX;
        self.log_static(
            entity::EGO_BODY,
            &rerun::Boxes3D::from_centers_and_sizes([[ahead, 0.0, h / 2.0]], [[l, w, h]])
                .with_colors([[230, 230, 230]])
                .with_labels(["ego"]),
        )?;
        let mut path: Vec<[f32; 3]> = Vec::new();
        for (_, pose) in self.context.track.samples() {
            let p = xyz(&Point3::from(pose.translation.vector));
            let far_enough = path.last().is_none_or(|q| {
                let d = [p[0] - q[0], p[1] - q[1], p[2] - q[2]];
                d[0] * d[0] + d[1] * d[1] + d[2] * d[2] > 0.04
            });
            if far_enough {
                path.push(p);
            }
        }
        if path.len() > 1 {
            self.log_static(
                entity::DRIVEN_PATH,
                &rerun::LineStrips3D::new([path]).with_colors([[120, 120, 120]]).with_radii([0.05]),
            )?;
        }
        let series =
            |name: &str, rgb: [u8; 3]| rerun::SeriesLines::new().with_names([name]).with_colors([rgb]);
        // (topic that feeds the plot, plot entity, series name, colour)
        let styles: [(&str, &str, &str, [u8; 3]); 18] = [
            (super::model::RUNTIME_COMMAND, "plots/steering/model", "model (replayed)", [231, 76, 60]),
            (super::model::RUNTIME_COMMAND, "plots/speed/model", "model (replayed)", [231, 76, 60]),
            (super::model::RUNTIME_COMMAND, "plots/acceleration/model", "model (replayed)", [231, 76, 60]),
            (topics::COMMAND, "plots/steering/command", "command", [66, 135, 245]),
            (topics::GT_EXPERT_COMMAND, "plots/steering/expert", "expert", [170, 170, 170]),
            (topics::COMMAND, "plots/speed/command", "command", [66, 135, 245]),
            (topics::ODOMETRY, "plots/speed/measured", "measured", [245, 130, 32]),
            (topics::GT_EXPERT_COMMAND, "plots/speed/expert", "expert", [170, 170, 170]),
            (topics::COMMAND, "plots/acceleration/command", "command", [66, 135, 245]),
            (topics::ODOMETRY, "plots/acceleration/measured", "measured", [245, 130, 32]),
            (topics::ODOMETRY, "plots/yaw_rate/measured", "measured", [245, 130, 32]),
            (topics::MODEL_OUTPUT, "plots/lead/probability", "probability", [231, 76, 60]),
            (topics::MODEL_OUTPUT, "plots/lead/distance_m", "distance (m)", [46, 204, 113]),
            (topics::MODEL_OUTPUT, "plots/latency_ms/model", "model latency (ms)", [155, 89, 182]),
            (
                topics::CONTROL_SOURCE,
                "plots/control/source",
                "0 human, 1 model, 2 safety driver",
                [52, 73, 94],
            ),
            (
                topics::CONTROL_SOURCE,
                "plots/control/steering_offset_rad",
                "injected steering (rad)",
                [230, 126, 34],
            ),
            (topics::GT_LANE, "plots/lane/lateral_offset_m", "left of the lane centre (m)", [39, 174, 96]),
            (topics::GT_LANE, "plots/lane/heading_error_deg", "heading error (deg)", [142, 68, 173]),
        ];
        for (topic, path, name, rgb) in styles {
            // Styles are not data: they do not count as logged entities.
            if drive_topics.iter().any(|t| t == topic) {
                self.rec.log_static(path, &series(name, rgb))?;
            }
        }
        Ok(())
    }

    /// Pose of base_link in the map at `stamp`: interpolated, or the nearest
    /// sample at the ends of the track; identity for a drive with no poses.
    fn ego_at(&self, stamp: u64) -> Option<Iso3> {
        let track = &self.context.track;
        if track.is_empty() {
            return Some(Iso3::identity());
        }
        track.interpolate(stamp, POSE_MAX_GAP_NANOS).or_else(|| {
            let (first, last) = track.span_nanos()?;
            if stamp < first && first - stamp <= POSE_NEAREST_NANOS {
                track.interpolate(first, 0)
            } else if stamp > last && stamp - last <= POSE_NEAREST_NANOS {
                track.interpolate(last, 0)
            } else {
                None
            }
        })
    }

    /// Mounting `base_from_frame` of a sensor frame, looked up once.
    fn mount(&mut self, frame: &str) -> Option<Iso3> {
        if frame == frames::BASE_LINK {
            return Some(Iso3::identity());
        }
        if let Some(known) = self.mounts.get(frame) {
            return *known;
        }
        let found = self.context.statics.lookup(frames::BASE_LINK, frame);
        if found.is_none() {
            tracing::warn!("no static transform from base_link to {frame}; drawing it at base_link");
        }
        self.mounts.insert(frame.to_owned(), found);
        found
    }

    /// `map_from_frame` at `stamp` for any frame of the drive.
    fn map_from(&mut self, frame: &str, stamp: u64) -> Option<Iso3> {
        if frame == frames::MAP || frame.is_empty() {
            return Some(Iso3::identity());
        }
        let base_from_frame = self.mount(frame).unwrap_or_else(Iso3::identity);
        Some(self.ego_at(stamp)? * base_from_frame)
    }

    /// Logs one message; `Ok(false)` for topics the replay does not show.
    pub(crate) fn log_message(&mut self, view: &MessageView<'_>) -> Logged {
        match view.topic {
            topics::TF => self.tf(&view.decode()?),
            topics::ODOMETRY => self.odometry(&view.decode()?),
            topics::COMMAND => self.command(&view.decode()?, false),
            topics::GT_EXPERT_COMMAND => self.command(&view.decode()?, true),
            topics::CAMERA_INFO => self.camera_info(&view.decode()?, view.source),
            topics::CAMERA_COMPRESSED => self.compressed_image(&view.decode()?),
            topics::CAMERA_RAW => self.raw_image(&view.decode()?, view.source),
            topics::LIDAR => self.lidar(&view.decode()?, view.source),
            topics::EVENTS => self.event(&view.decode()?),
            topics::CONTROL_SOURCE => self.control_source(&view.decode()?),
            topics::GT_LANE => self.lane(&view.decode()?),
            topics::DIAGNOSTICS => self.diagnostics(&view.decode()?),
            topics::GT_OBJECTS => self.boxes(&view.decode()?, entity::GROUND_TRUTH, false),
            topics::ANNOTATIONS => self.boxes(&view.decode()?, entity::ANNOTATIONS, true),
            topics::MODEL_OUTPUT => self.model_output(&view.decode()?),
            topics::MODEL_DEPTH => self.model_depth(&view.decode()?, view.source),
            // The mounting is drawn from the static tree read up front.
            topics::TF_STATIC => Ok(!view.decode::<TfMessage>()?.transforms.is_empty()),
            _ => Ok(false),
        }
    }

    fn tf(&mut self, tf: &TfMessage) -> Logged {
        let mut shown = false;
        for t in &tf.transforms {
            let is_ego = t.header.frame_id == frames::MAP && t.child_frame_id == frames::BASE_LINK;
            if is_ego
                && !self.ego_from_odometry
                && let Some(iso) = isometry_from_transform(&t.transform)
            {
                self.ego_pose(&iso, t.header.stamp.as_nanos())?;
                shown = true;
            }
        }
        Ok(shown)
    }

    fn ego_pose(&mut self, map_from_base: &Iso3, stamp: u64) -> Result<(), LogError> {
        self.log(entity::EGO, &transform(map_from_base))?;
        if self.last_path_ahead.is_none_or(|last| stamp >= last + PATH_AHEAD_PERIOD_NANOS) {
            self.last_path_ahead = Some(stamp);
            self.path_ahead(stamp)?;
        }
        Ok(())
    }

    fn path_ahead(&mut self, stamp: u64) -> Result<(), LogError> {
        let steps = (self.options.path_ahead_secs / 0.25).round().max(0.0) as u64;
        let offsets: Vec<u64> = (0..=steps).map(|i| i * 250_000_000).collect();
        let ahead = self.context.track.ahead_in_own_frame(stamp, &offsets, POSE_MAX_GAP_NANOS);
        let strip: Vec<[f32; 3]> = ahead
            .iter()
            .map_while(|p| p.map(|p| [p.translation.x as f32, p.translation.y as f32, 0.05]))
            .collect();
        if strip.len() > 1 {
            self.log(
                entity::PATH_AHEAD,
                &rerun::LineStrips3D::new([strip]).with_colors([[46, 204, 113]]).with_radii([0.12]),
            )?;
        } else {
            self.log(entity::PATH_AHEAD, &rerun::Clear::flat())?;
        }
        Ok(())
    }

    fn odometry(&mut self, odom: &Odometry) -> Logged {
        let stamp = odom.header.stamp.as_nanos();
        let speed = odom.twist.twist.linear.x;
        self.log("plots/speed/measured", &rerun::Scalars::single(speed))?;
        self.log("plots/yaw_rate/measured", &rerun::Scalars::single(odom.twist.twist.angular.z))?;
        while self.speeds.len() > 1 && self.speeds[1].0 + ACCEL_WINDOW_NANOS <= stamp {
            self.speeds.pop_front();
        }
        if let Some(&(t0, v0)) = self.speeds.front()
            && stamp > t0
            && stamp - t0 >= ACCEL_WINDOW_NANOS / 2
        {
            let accel = (speed - v0) / ((stamp - t0) as f64 * 1e-9);
            self.log("plots/acceleration/measured", &rerun::Scalars::single(accel))?;
        }
        self.speeds.push_back((stamp, speed));
        if self.ego_from_odometry
            && let Some(iso) = isometry_from_pose(&odom.pose.pose)
        {
            self.ego_pose(&iso, stamp)?;
        }
        Ok(true)
    }

    /// A command of the runtime replayed with `--model`, next to the driven one.
    pub(crate) fn model_command(&mut self, cmd: &AckermannDriveStamped) -> Logged {
        let d = &cmd.drive;
        self.log("plots/steering/model", &rerun::Scalars::single(f64::from(d.steering_angle)))?;
        self.log("plots/speed/model", &rerun::Scalars::single(f64::from(d.speed)))?;
        self.log("plots/acceleration/model", &rerun::Scalars::single(f64::from(d.acceleration)))?;
        Ok(true)
    }

    /// An output of the network replayed with `--model`.
    pub(crate) fn replayed_output(&mut self, out: &ModelOutput) -> Logged {
        self.model_output(out)
    }

    /// An event of the runtime replayed with `--model`.
    pub(crate) fn replayed_event(&mut self, event: &Event) -> Logged {
        self.event(event)
    }

    fn camera_info(&mut self, info: &CameraInfo, source: &std::path::Path) -> Logged {
        let model = CameraModel::from_camera_info(info, &source.display().to_string())?;
        let frame = if model.frame_id.is_empty() { frames::CAMERA_FRONT } else { model.frame_id.as_str() };
        let base_from_camera = self.mount(frame).unwrap_or_else(Iso3::identity);
        let pinhole = |m: &CameraModel| (m.width, m.height, m.fx, m.fy, m.cx, m.cy, m.frame_id.clone());
        // The pinhole is logged when it changes; the model is always the newest
        // (distortion may differ in ways the pinhole does not show).
        if self.camera.as_ref().is_none_or(|c| pinhole(&c.model) != pinhole(&model)) {
            self.log(entity::CAMERA, &transform(&base_from_camera))?;
            self.log(
                entity::CAMERA,
                &rerun::Pinhole::from_focal_length_and_resolution(
                    [model.fx as f32, model.fy as f32],
                    [model.width as f32, model.height as f32],
                )
                .with_principal_point([model.cx as f32, model.cy as f32])
                .with_image_plane_distance(1.5),
            )?;
        }
        self.camera = Some(Camera { model, base_from_camera });
        Ok(true)
    }

    fn compressed_image(&mut self, image: &CompressedImage) -> Logged {
        let format = image.format.to_ascii_lowercase();
        let media_type = if format.contains("png") { rerun::MediaType::PNG } else { rerun::MediaType::JPEG };
        self.log(
            entity::CAMERA_IMAGE,
            &rerun::EncodedImage::from_file_contents(image.data.clone()).with_media_type(media_type),
        )?;
        self.camera_overlays(image.header.stamp.as_nanos())?;
        Ok(true)
    }

    fn raw_image(&mut self, image: &Image, source: &std::path::Path) -> Logged {
        let rgb = nines_datasets::image::decode_raw(image, &source.display().to_string())?;
        let (w, h) = rgb.dimensions();
        self.log(entity::CAMERA_IMAGE, &rerun::Image::from_rgb24(rgb.into_raw(), [w, h]))?;
        self.camera_overlays(image.header.stamp.as_nanos())?;
        Ok(true)
    }

    /// The newest lidar sweep projected into the camera frame taken at
    /// `stamp` (each point moved by the ego's motion since it was measured).
    fn camera_overlays(&mut self, stamp: u64) -> Result<(), LogError> {
        self.bare_frame = Some(stamp);
        let (Some(camera), Some(sweep)) = (&self.camera, &self.sweep) else { return Ok(()) };
        let Some(map_from_base) = self.ego_at(stamp) else { return Ok(()) };
        let camera_from_map = (map_from_base * camera.base_from_camera).inverse();
        let far = f64::from(self.options.far_m);
        let mut pixels = Vec::with_capacity(sweep.points_map.len() / 4);
        let mut colours = Vec::with_capacity(sweep.points_map.len() / 4);
        for p in &sweep.points_map {
            let c = camera_from_map * p;
            if c.z < MIN_DEPTH_M {
                continue;
            }
            if let Some(px) = camera.model.project(&c.coords).filter(|px| camera.model.contains(px)) {
                pixels.push([px.x as f32, px.y as f32]);
                colours.push(colour::by_distance(c.z as f32, far as f32));
            }
        }
        self.bare_frame = None;
        self.overlay.0 += 1;
        self.overlay.1 += pixels.len() as u64;
        self.log(
            entity::CAMERA_LIDAR,
            &rerun::Points2D::new(pixels)
                .with_colors(colours)
                .with_radii([rerun::Radius::new_ui_points(1.5)]),
        )
    }

    fn lidar(&mut self, cloud: &PointCloud2, source: &std::path::Path) -> Logged {
        let points = from_point_cloud2(cloud, &source.display().to_string())?;
        let stamp = cloud.header.stamp.as_nanos();
        let base_from_lidar = self.mount(&cloud.header.frame_id).unwrap_or_else(Iso3::identity);
        let Some(map_from_base) = self.ego_at(stamp) else {
            // A sweep with no pose near it cannot be placed in the map.
            return Ok(false);
        };
        let max_intensity = points.iter().map(|p| p.intensity).fold(f32::MIN_POSITIVE, f32::max);
        let mut points_map = Vec::with_capacity(points.len());
        let (mut positions, mut colours) = (Vec::new(), Vec::new());
        // Points of one firing share a time: de-skew with one pose per distinct time.
        let mut cached: Option<(f32, Iso3)> = None;
        for (i, p) in points.iter().enumerate() {
            if !(p.x.is_finite() && p.y.is_finite() && p.z.is_finite()) {
                continue;
            }
            let map_from_lidar = match cached {
                Some((time, iso)) if time.to_bits() == p.time.to_bits() => iso,
                _ => {
                    let at = stamp.saturating_add_signed((f64::from(p.time) * 1e9) as i64);
                    let iso = self.ego_at(at).unwrap_or(map_from_base) * base_from_lidar;
                    cached = Some((p.time, iso));
                    iso
                }
            };
            let local = Vector3::new(f64::from(p.x), f64::from(p.y), f64::from(p.z));
            let world = map_from_lidar * Point3::from(local);
            points_map.push(world);
            if i % self.options.lidar_stride.max(1) == 0 {
                positions.push(xyz(&world));
                colours.push(match self.options.lidar_colour {
                    LidarColour::Range => colour::by_distance(local.norm() as f32, self.options.far_m),
                    LidarColour::Intensity => colour::rainbow(p.intensity / max_intensity),
                });
            }
        }
        self.log(entity::LIDAR, &rerun::Points3D::new(positions).with_colors(colours).with_radii([0.04]))?;
        self.sweep = Some(Sweep { points_map });
        // A frame logged just before its sweep (same stamp, file order) gets
        // its overlay now.
        if let Some(frame) = self.bare_frame.filter(|f| f.abs_diff(stamp) <= BARE_FRAME_NANOS) {
            self.camera_overlays(frame)?;
        }
        Ok(true)
    }

    fn event(&mut self, event: &Event) -> Logged {
        let stamp = event.header.stamp.as_nanos();
        let (level, kind) = match event.kind {
            0 => (rerun::TextLogLevel::ERROR, "failure"),
            1 => (rerun::TextLogLevel::WARN, "intervention"),
            2 => (rerun::TextLogLevel::WARN, "safe stop"),
            4 => (rerun::TextLogLevel::INFO, "disturbance"),
            _ => (rerun::TextLogLevel::INFO, "note"),
        };
        let value = if event.value == 0.0 { String::new() } else { format!(" ({:.3})", event.value) };
        let text = format!("{kind}: {} {}{value}", event.category, event.detail);
        self.log(entity::EVENTS, &rerun::TextLog::new(text.trim_end().to_owned()).with_level(level))?;
        if let Some(at) = self.map_from(&event.header.frame_id, stamp) {
            let p = at.translation.vector;
            self.event_markers.push(([p.x as f32, p.y as f32, p.z as f32 + 2.0], event.category.clone()));
            let (positions, labels): (Vec<_>, Vec<_>) = self.event_markers.iter().cloned().unzip();
            self.log(
                entity::EVENT_MARKERS,
                &rerun::Points3D::new(positions)
                    .with_labels(labels)
                    .with_colors([[231, 76, 60]])
                    .with_radii([0.5]),
            )?;
        }
        Ok(true)
    }

    fn boxes(&mut self, objects: &ObjectArray, path: &'static str, with_2d: bool) -> Logged {
        let stamp = objects.header.stamp.as_nanos();
        let Some(map_from_frame) = self.map_from(&objects.header.frame_id, stamp) else { return Ok(false) };
        let (mut centres, mut sizes, mut rotations, mut labels, mut colours) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
        let mut boxes_2d = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for object in &objects.objects {
            let Some(pose) = isometry_from_pose(&object.pose) else { continue };
            let in_map = map_from_frame * pose;
            centres.push(xyz(&Point3::from(in_map.translation.vector)));
            let s = &object.size;
            sizes.push([s.x as f32, s.y as f32, s.z as f32]);
            rotations.push(quaternion(&in_map));
            labels.push(box_label(&object.label, object.id));
            colours.push(colour::by_label(&object.label));
            let [x1, y1, x2, y2] = object.box_2d;
            if with_2d && x2 > x1 && y2 > y1 {
                boxes_2d.0.push([x1, y1]);
                boxes_2d.1.push([x2 - x1, y2 - y1]);
                boxes_2d.2.push(object.label.clone());
                boxes_2d.3.push(colour::by_label(&object.label));
            }
        }
        self.log(
            path,
            &rerun::Boxes3D::from_centers_and_sizes(centres, sizes)
                .with_quaternions(rotations)
                .with_labels(labels)
                .with_colors(colours),
        )?;
        if with_2d {
            let (mins, sizes, labels, colours) = boxes_2d;
            self.log(
                entity::CAMERA_ANNOTATIONS,
                &rerun::Boxes2D::from_mins_and_sizes(mins, sizes).with_labels(labels).with_colors(colours),
            )?;
        }
        Ok(true)
    }

    fn model_output(&mut self, out: &ModelOutput) -> Logged {
        let plan: Vec<[f32; 3]> =
            out.plan_x_m.iter().zip(&out.plan_y_m).map(|(x, y)| [*x, *y, 0.1]).collect();
        if plan.len() > 1 {
            self.log(
                entity::MODEL_PLAN,
                &rerun::LineStrips3D::new([plan.clone()]).with_colors([[231, 76, 60]]).with_radii([0.1]),
            )?;
        }
        self.log("plots/lead/probability", &rerun::Scalars::single(f64::from(out.lead_probability)))?;
        if out.lead_probability >= 0.5 {
            self.log("plots/lead/distance_m", &rerun::Scalars::single(f64::from(out.lead_distance_m)))?;
            let at = along(&plan, out.lead_distance_m);
            let label = format!(
                "lead {:.0}% {:.1} m {:+.1} m/s",
                out.lead_probability * 100.0,
                out.lead_distance_m,
                out.lead_relative_speed_mps
            );
            self.log(
                entity::MODEL_LEAD,
                &rerun::Points3D::new([[at[0], at[1], 1.0]])
                    .with_labels([label])
                    .with_colors([[231, 76, 60]])
                    .with_radii([0.4]),
            )?;
        } else {
            self.log(entity::MODEL_LEAD, &rerun::Clear::flat())?;
        }
        self.log("plots/latency_ms/model", &rerun::Scalars::single(f64::from(out.latency_s) * 1e3))?;
        Ok(true)
    }

    fn model_depth(&mut self, image: &Image, source: &std::path::Path) -> Logged {
        let (w, h) = (image.width as usize, image.height as usize);
        let expected = w.checked_mul(h).and_then(|n| n.checked_mul(4));
        if image.encoding != "32FC1" || expected != Some(image.data.len()) {
            return Err(LogError::Decode(nines_datasets::DatasetError::Invalid {
                path: source.to_path_buf(),
                field: format!("{}.encoding/data", topics::MODEL_DEPTH),
                problem: format!(
                    "expected 32FC1 with {w}x{h}x4 bytes, got {} with {} bytes",
                    image.encoding,
                    image.data.len()
                ),
            }));
        }
        self.log(
            entity::MODEL_DEPTH,
            &rerun::DepthImage::from_data_type_and_bytes(
                image.data.clone(),
                [image.width, image.height],
                rerun::ChannelDatatype::F32,
            )
            .with_meter(1.0),
        )?;
        Ok(true)
    }
}

/// The point `distance` metres along a polyline starting at its first point
/// (straight ahead of base_link when there is no polyline).
fn along(polyline: &[[f32; 3]], distance: f32) -> [f32; 2] {
    let mut left = distance.max(0.0);
    for pair in polyline.windows(2) {
        let (a, b) = (pair[0], pair[1]);
        let seg = ((b[0] - a[0]).powi(2) + (b[1] - a[1]).powi(2)).sqrt();
        if seg > 0.0 && left <= seg {
            let s = left / seg;
            return [a[0] + (b[0] - a[0]) * s, a[1] + (b[1] - a[1]) * s];
        }
        left -= seg;
    }
    match polyline.last() {
        Some(end) if polyline.len() > 1 => {
            // Past the end: carry on along the last segment's direction.
            let a = polyline[polyline.len() - 2];
            let seg = ((end[0] - a[0]).powi(2) + (end[1] - a[1]).powi(2)).sqrt().max(1e-6);
            [end[0] + (end[0] - a[0]) / seg * left, end[1] + (end[1] - a[1]) / seg * left]
        }
        _ => [distance, 0.0],
    }
}

/// A box's label: its class as datasets name it ("Car", "Pedestrian",
/// "Person_sitting": the messages carry it lower case), and its track id
/// where it has one (KITTI object frames have none: id 0).
fn box_label(class: &str, id: u32) -> String {
    let mut chars = class.chars();
    let class: String = chars.next().map(|c| c.to_uppercase().chain(chars).collect()).unwrap_or_default();
    if id == 0 { class } else { format!("{class} #{id}") }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::float_cmp, reason = "exact arithmetic on small values")]
    use super::{along, box_label};

    #[test]
    fn boxes_are_labelled_with_their_class_and_track() {
        assert_eq!(box_label("car", 0), "Car");
        assert_eq!(box_label("person_sitting", 0), "Person_sitting");
        assert_eq!(box_label("pedestrian", 7), "Pedestrian #7");
        assert_eq!(box_label("", 0), "");
    }

    #[test]
    fn along_walks_the_polyline_and_beyond() {
        let l = [[0.0, 0.0, 0.0], [3.0, 0.0, 0.0], [3.0, 4.0, 0.0]];
        assert_eq!(along(&l, 1.0), [1.0, 0.0]);
        assert_eq!(along(&l, 5.0), [3.0, 2.0]);
        assert_eq!(along(&l, 9.0), [3.0, 6.0]);
        assert_eq!(along(&[], 7.0), [7.0, 0.0]);
    }
}
