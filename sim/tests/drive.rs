//! Simulated drives: byte-identical for the same seed, and the lidar and the
//! camera see the same world (DESIGN.md section 5).

#![allow(clippy::unwrap_used, reason = "a test fails loudly on any error")]
#![allow(clippy::float_cmp, reason = "round trips must be bit-exact")]

mod common;

use common::payloads;

use nalgebra::{Point2, Point3};
use nines_datasets::calib::CameraModel;
use nines_datasets::drive::DriveReader;
use nines_datasets::geometry::{PoseTrack, StaticTransforms, isometry_from_pose, isometry_from_transform};
use nines_datasets::msg::{
    AckermannDriveStamped, CameraInfo, ControlSource, Controller, Image, ObjectArray, PointCloud2, TfMessage,
};
use nines_datasets::pointcloud::from_point_cloud2;
use nines_datasets::topics::{self, frames};
use nines_sim::record::{GT_DEPTH, GT_OBJECTS, RecordOptions, record_expert};
use nines_sim::render::camera::CameraConfig;
use nines_sim::{FAMILIES, family};

fn small() -> RecordOptions {
    RecordOptions {
        camera: CameraConfig { width: 256, height: 128, ..CameraConfig::default() },
        duration_secs: Some(1.0),
        ..RecordOptions::default()
    }
}

#[test]
fn same_family_and_seed_give_identical_drives() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b, c) = (dir.path().join("a.mcap"), dir.path().join("b.mcap"), dir.path().join("c.mcap"));
    for path in [&a, &b] {
        record_expert(family("cut_in").unwrap().draw("cut_in", 7), path, &small()).unwrap();
    }
    record_expert(family("cut_in").unwrap().draw("cut_in", 8), &c, &small()).unwrap();
    let (pa, pb, pc) = (payloads(&a), payloads(&b), payloads(&c));
    assert!(pa.len() > 100);
    assert_eq!(pa, pb);
    assert_ne!(pa, pc);

    // Who drove is recorded at the control rate: the expert, as a human would, nothing injected.
    let reader = DriveReader::open(&a).unwrap();
    let control = reader.read_topic::<ControlSource>(topics::CONTROL_SOURCE).unwrap();
    let commands = reader.read_topic::<AckermannDriveStamped>(topics::COMMAND).unwrap();
    assert_eq!(control.len(), commands.len(), "one control period per command");
    assert_eq!(control.len(), 20, "1 s at 20 Hz");
    assert!(control.iter().all(|(_, c)| c.source == Controller::Human as u8 && c.imitable()));
    let summary = nines_datasets::inspect::DriveSummary::of(&reader).unwrap().control.unwrap();
    assert!((summary.seconds["human"] - 1.0).abs() < 1e-9, "{summary:?}");
    assert_eq!((summary.disturbances, summary.takeovers), (0, 0));
}

fn inverse_depth_at(depth: &[f32], width: usize, height: usize, px: &Point2<f64>) -> Option<(f64, f64)> {
    // Inverse depth is linear in the image for a plane: interpolate it bilinearly.
    let (x, y) = (px.x - 0.5, px.y - 0.5);
    let (x0, y0) = (x.floor(), y.floor());
    if x0 < 1.0 || y0 < 1.0 || x0 as usize + 2 >= width || y0 as usize + 2 >= height {
        return None;
    }
    let (u, v) = (x0 as usize, y0 as usize);
    let at = |du: usize, dv: usize| f64::from(depth[(v + dv) * width + u + du]);
    // Depth edges (and sky) nearby: skip.
    let around: Vec<f64> = (0..4)
        .flat_map(|dv| (0..4).map(move |du| (du, dv)))
        .map(|(du, dv)| f64::from(depth[(v + dv - 1) * width + u + du - 1]))
        .collect();
    let (lo, hi) = around.iter().fold((f64::INFINITY, 0.0f64), |(lo, hi), d| (lo.min(*d), hi.max(*d)));
    if lo <= 0.0 || hi / lo > 1.05 {
        return None;
    }
    let (fx, fy) = (x - x0, y - y0);
    let inv =
        (1.0 - fy) * ((1.0 - fx) / at(0, 0) + fx / at(1, 0)) + fy * ((1.0 - fx) / at(0, 1) + fx / at(1, 1));
    Some((1.0 / inv, hi))
}

/// Lidar points, de-skewed to the camera time and projected with the
/// logged calibration, land where the ground-truth depth equals their
/// camera z.
fn check_geometry(name: &str, options: &RecordOptions) -> (f64, f64, usize) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("drive.mcap");
    record_expert(family(name).unwrap().draw(name, 1), &path, options).unwrap();
    let reader = DriveReader::open(&path).unwrap();
    let tf_static = reader.read_topic::<TfMessage>(topics::TF_STATIC).unwrap();
    let tree = StaticTransforms::from_messages(tf_static.iter().map(|(_, m)| m));
    let base_from_camera = tree.lookup(frames::BASE_LINK, frames::CAMERA_FRONT).unwrap();
    let base_from_lidar = tree.lookup(frames::BASE_LINK, frames::LIDAR_TOP).unwrap();
    let poses = PoseTrack::new(
        reader
            .read_topic::<TfMessage>(topics::TF)
            .unwrap()
            .into_iter()
            .flat_map(|(_, m)| m.transforms)
            .map(|t| (t.header.stamp.as_nanos(), isometry_from_transform(&t.transform).unwrap()))
            .collect(),
    );
    let info: CameraInfo = reader.read_topic(topics::CAMERA_INFO).unwrap().remove(0).1;
    let camera = CameraModel::from_camera_info(&info, "sim").unwrap();
    let depths = reader.read_topic::<Image>(GT_DEPTH).unwrap();
    let sweeps = reader.read_topic::<PointCloud2>(topics::LIDAR).unwrap();
    let objects = reader.read_topic::<ObjectArray>(GT_OBJECTS).unwrap();
    let mut errors = Vec::new();
    for (((t_cam, depth), (t_sweep, cloud)), (_, boxes)) in depths.iter().zip(&sweeps).zip(&objects) {
        let camera_from_map = (poses.interpolate(*t_cam, u64::MAX).unwrap() * base_from_camera).inverse();
        let moving: Vec<_> = boxes
            .objects
            .iter()
            .filter(|o| o.velocity.linear.x.hypot(o.velocity.linear.y) > 0.01)
            .map(|o| (isometry_from_pose(&o.pose).unwrap(), o.size))
            .collect();
        let depth_m: Vec<f32> =
            depth.data.chunks_exact(4).map(|b| f32::from_le_bytes(b.try_into().unwrap())).collect();
        for p in from_point_cloud2(cloud, "lidar").unwrap() {
            let t = t_sweep + (f64::from(p.time) * 1e9).round() as u64;
            let map_point = poses.interpolate(t, u64::MAX).unwrap()
                * base_from_lidar
                * Point3::new(f64::from(p.x), f64::from(p.y), f64::from(p.z));
            let on_mover = moving.iter().any(|(pose, size)| {
                let local = pose.inverse() * map_point;
                local.x.abs() < size.x / 2.0 + 0.5
                    && local.y.abs() < size.y / 2.0 + 0.5
                    && local.z.abs() < size.z
            });
            if on_mover {
                continue;
            }
            let c = camera_from_map * map_point;
            let Some(px) = camera.project(&c.coords) else { continue };
            if !camera.contains(&px) {
                continue;
            }
            if let Some((truth, _)) =
                inverse_depth_at(&depth_m, depth.width as usize, depth.height as usize, &px)
            {
                errors.push((c.z - truth).abs() / truth);
            }
        }
    }
    errors.sort_by(f64::total_cmp);
    let median = errors[errors.len() / 2];
    let within = errors.iter().filter(|e| **e <= 0.01).count() as f64 / errors.len() as f64;
    (median, within, errors.len())
}

#[test]
fn lidar_and_camera_agree_on_every_family() {
    let mut report = Vec::new();
    for (name, _) in FAMILIES {
        let (median, within, n) = check_geometry(name, &small());
        report.push(format!("{name}: median {median:.4}, within 1% {within:.3} over {n} points"));
        assert!(n > 1000 && median <= 0.01 && within >= 0.95, "{}", report.join("\n"));
    }
    eprintln!("{}", report.join("\n"));
}

#[test]
fn lidar_and_a_distorted_camera_agree() {
    let mut options = small();
    options.camera.distortion = [-0.25, 0.06, 0.001, -0.0015, 0.0];
    let (median, within, n) = check_geometry("parked_street", &options);
    assert!(n > 1000 && median <= 0.01 && within >= 0.95, "median {median}, within {within}, {n} points");
}
