//! `nines import kitti-raw DIR`: a KITTI raw (synced) sequence, with
//! image_02, velodyne_points and oxts, into a drive. The calibration files
//! (calib_cam_to_cam.txt, calib_velo_to_cam.txt, calib_imu_to_velo.txt) are
//! looked up in DIR, then in its parent (KITTI's date folder).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use nalgebra::{Translation3, UnitQuaternion};

use super::kitti::{
    KITTI_CALIB_METADATA, calib_values, camera_from_projection, check_image_size, check_intrinsics,
    check_rotation, hdl64_points, parse_calib, read_text, read_velodyne, rectified_camera_info, rigid,
    write_mounting,
};
use crate::drive::DriveWriter;
use crate::error::{DatasetError, Result};
use crate::geometry::Iso3;
use crate::msg::{CompressedImage, Header, Twist, Vector3};
use crate::pointcloud::to_point_cloud2;
use crate::topics::{self, frames};

const EARTH_RADIUS_M: f64 = 6_378_137.0;

/// What a raw-sequence import wrote.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RawImport {
    /// Camera frames.
    pub images: usize,
    /// Lidar sweeps.
    pub sweeps: usize,
    /// OXTS poses.
    pub poses: usize,
    /// Duration, s.
    pub duration_secs: f64,
}

fn parse_stamp(path: &Path, line_no: usize, line: &str) -> Result<u64> {
    chrono::NaiveDateTime::parse_from_str(line.trim(), "%Y-%m-%d %H:%M:%S%.f")
        .ok()
        .and_then(|t| t.and_utc().timestamp_nanos_opt())
        .and_then(|n| u64::try_from(n).ok())
        .ok_or_else(|| {
            DatasetError::invalid(
                path,
                format!("line {line_no}"),
                format!("`{}` is not a time like 2011-09-26 13:02:25.964389445", line.trim()),
            )
        })
}

fn read_stamps(path: &Path) -> Result<Vec<u64>> {
    read_text(path)?
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| parse_stamp(path, i + 1, l))
        .collect()
}

fn find_calib(dir: &Path, name: &str) -> Result<PathBuf> {
    [dir.join(name), dir.join("..").join(name)]
        .into_iter()
        .find(|p| p.exists())
        .ok_or_else(|| DatasetError::invalid(dir, name, "not found in the sequence folder or its parent; copy KITTI's calibration files next to the sequence"))
}

fn frame_file(dir: &Path, sensor: &str, index: usize, ext: &str) -> PathBuf {
    dir.join(sensor).join("data").join(format!("{index:010}.{ext}"))
}

/// One OXTS record: (map_from_imu, twist in the IMU frame) with the Mercator
/// scale of the first record, as in the KITTI devkit.
fn oxts_pose(path: &Path, text: &str, scale: Option<f64>) -> Result<(Iso3, Twist, f64)> {
    let values: Vec<f64> = text
        .split_whitespace()
        .map(|v| v.parse().map_err(|_| DatasetError::invalid(path, "oxts", format!("`{v}` is not a number"))))
        .collect::<Result<_>>()?;
    if values.len() < 23 {
        return Err(DatasetError::invalid(
            path,
            "oxts",
            format!("{} values, an OXTS record has 30", values.len()),
        ));
    }
    let (lat, lon, alt, roll, pitch, yaw) =
        (values[0], values[1], values[2], values[3], values[4], values[5]);
    let scale = scale.unwrap_or_else(|| lat.to_radians().cos());
    let x = scale * lon.to_radians() * EARTH_RADIUS_M;
    let y = scale * EARTH_RADIUS_M * ((90.0 + lat).to_radians() / 2.0).tan().ln();
    let pose =
        Iso3::from_parts(Translation3::new(x, y, alt), UnitQuaternion::from_euler_angles(roll, pitch, yaw));
    let twist = Twist {
        linear: Vector3 { x: values[8], y: values[9], z: values[10] },
        angular: Vector3 { x: values[20], y: values[21], z: values[22] },
    };
    Ok((pose, twist, scale))
}

/// Poses relative to the first OXTS record (the map origin), with that
/// record's Mercator scale.
#[derive(Default)]
struct OxtsState {
    scale: Option<f64>,
    origin: Option<Translation3<f64>>,
}

impl OxtsState {
    /// Writes /tf (map -> base_link) and /vehicle/odometry for OXTS record `index`.
    fn write(&mut self, writer: &mut DriveWriter, dir: &Path, index: usize, stamp: u64) -> Result<()> {
        let path = frame_file(dir, "oxts", index, "txt");
        let (pose, twist, scale) = oxts_pose(&path, &read_text(&path)?, self.scale)?;
        self.scale = Some(scale);
        let origin = *self.origin.get_or_insert(pose.translation);
        let map_from_base =
            Iso3::from_parts(Translation3::from(pose.translation.vector - origin.vector), pose.rotation);
        writer.write_ego_state(stamp, &map_from_base, twist)
    }
}

/// Refuses a sequence path that is not a folder, naming it as such.
fn check_sequence_folder(dir: &Path) -> Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    let what = if dir.exists() { "not a folder" } else { "no such folder" };
    Err(DatasetError::invalid(
        dir,
        "sequence folder",
        format!(
            "{what}; give a KITTI raw sequence folder (2011_09_26_drive_0001_sync, with image_02/, velodyne_points/, oxts/)"
        ),
    ))
}

/// Imports the sequence in `dir` into `out`.
pub fn import_kitti_raw(dir: &Path, out: &Path) -> Result<RawImport> {
    check_sequence_folder(dir)?;
    let cam_path = find_calib(dir, "calib_cam_to_cam.txt")?;
    let velo_path = find_calib(dir, "calib_velo_to_cam.txt")?;
    let imu_path = find_calib(dir, "calib_imu_to_velo.txt")?;
    let (cam_text, velo_text, imu_text) =
        (read_text(&cam_path)?, read_text(&velo_path)?, read_text(&imu_path)?);
    let cam = parse_calib(&cam_path, &cam_text);
    let velo = parse_calib(&velo_path, &velo_text);
    let imu = parse_calib(&imu_path, &imu_text);
    let size = calib_values(&cam, &cam_path, "S_rect_02", 2)?;
    let (k, cam_from_rect0) = camera_from_projection(calib_values(&cam, &cam_path, "P_rect_02", 12)?);
    check_intrinsics(&cam_path, "P_rect_02", k[(0, 0)], k[(1, 1)], k[(0, 2)], k[(1, 2)])?;
    if !(size[0] >= 16.0 && size[1] >= 16.0 && size[0] <= 16384.0 && size[1] <= 16384.0) {
        return Err(DatasetError::invalid(
            &cam_path,
            "S_rect_02",
            format!("{size:?}: an image size within 16..=16384"),
        ));
    }
    check_image_size(&cam_path, size[0] as u32, size[1] as u32, &cam_path, "P_rect_02", &k)?;
    let rotation = |calib, path, key| -> Result<&[f64]> {
        let r = calib_values(calib, path, key, 9)?;
        check_rotation(path, key, r)?;
        Ok(r)
    };
    let rect0_from_cam0 = rigid(rotation(&cam, &cam_path, "R_rect_00")?, &[0.0; 3]);
    let cam0_from_velo = rigid(rotation(&velo, &velo_path, "R")?, calib_values(&velo, &velo_path, "T", 3)?);
    let velo_from_imu = rigid(rotation(&imu, &imu_path, "R")?, calib_values(&imu, &imu_path, "T", 3)?);
    // base_link is the IMU frame (x forward, y left, z up, as REP 103 wants).
    let base_from_lidar = velo_from_imu.inverse();
    let base_from_camera = base_from_lidar * (cam_from_rect0 * rect0_from_cam0 * cam0_from_velo).inverse();

    let image_stamps = read_stamps(&dir.join("image_02/timestamps.txt"))?;
    let velo_stamps = read_stamps(&dir.join("velodyne_points/timestamps.txt"))?;
    let velo_starts = read_stamps(&dir.join("velodyne_points/timestamps_start.txt")).ok();
    let velo_ends = read_stamps(&dir.join("velodyne_points/timestamps_end.txt")).ok();
    let oxts_stamps = read_stamps(&dir.join("oxts/timestamps.txt"))?;
    let first = [&image_stamps, &velo_stamps, &oxts_stamps]
        .iter()
        .filter_map(|s| s.first().copied())
        .min()
        .unwrap_or(0);

    let mut writer = DriveWriter::create(out)?;
    writer.write_metadata(
        KITTI_CALIB_METADATA,
        BTreeMap::from([
            ("calib_cam_to_cam.txt".to_owned(), cam_text),
            ("calib_velo_to_cam.txt".to_owned(), velo_text),
            ("calib_imu_to_velo.txt".to_owned(), imu_text),
        ]),
    )?;
    write_mounting(&mut writer, first, &base_from_lidar, &base_from_camera)?;
    writer.write(
        topics::CAMERA_INFO,
        first,
        &rectified_camera_info(first, size[0] as u32, size[1] as u32, &k),
    )?;

    // Messages are written in time order: gather (stamp, kind, index) and sort.
    let mut events: Vec<(u64, u8, usize)> = Vec::new();
    events.extend(oxts_stamps.iter().enumerate().map(|(i, t)| (*t, 0, i)));
    events.extend(velo_stamps.iter().enumerate().map(|(i, t)| (*t, 1, i)));
    events.extend(image_stamps.iter().enumerate().map(|(i, t)| (*t, 2, i)));
    events.sort_unstable();
    let mut oxts = OxtsState::default();
    for (stamp, kind, index) in events {
        match kind {
            0 => oxts.write(&mut writer, dir, index, stamp)?,
            1 => {
                let sweep_secs = match (&velo_starts, &velo_ends) {
                    (Some(s), Some(e)) if index < s.len() && index < e.len() => {
                        e[index].saturating_sub(s[index]) as f32 * 1e-9
                    }
                    _ => 0.0,
                };
                let path = frame_file(dir, "velodyne_points", index, "bin");
                let points = hdl64_points(&read_velodyne(&path)?, sweep_secs);
                let cloud = to_point_cloud2(Header::new(stamp, frames::LIDAR_TOP), &points);
                writer.write(topics::LIDAR, stamp, &cloud)?;
            }
            _ => {
                let path = frame_file(dir, "image_02", index, "png");
                let data = std::fs::read(&path).map_err(|e| DatasetError::io(&path, e))?;
                let header = Header::new(stamp, frames::CAMERA_FRONT);
                writer.write(
                    topics::CAMERA_COMPRESSED,
                    stamp,
                    &CompressedImage { header, format: "png".into(), data },
                )?;
            }
        }
    }
    writer.finish()?;
    let last = [&image_stamps, &velo_stamps, &oxts_stamps]
        .iter()
        .filter_map(|s| s.last().copied())
        .max()
        .unwrap_or(first);
    Ok(RawImport {
        images: image_stamps.len(),
        sweeps: velo_stamps.len(),
        poses: oxts_stamps.len(),
        duration_secs: last.saturating_sub(first) as f64 * 1e-9,
    })
}
