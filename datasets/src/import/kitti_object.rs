//! `nines import kitti-object DIR`: one KITTI 3D-object frame (image_02.png,
//! velodyne.bin, calib.txt, label_2.txt) into a one-frame drive.

use std::collections::BTreeMap;
use std::path::Path;

use super::kitti::{
    KITTI_CALIB_METADATA, LIDAR_HEIGHT_M, calib_values, camera_from_projection, check_image_size,
    check_intrinsics, check_rotation, hdl64_points, label_to_object, parse_calib, parse_labels, read_text,
    read_velodyne, rectified_camera_info, rigid, write_mounting,
};
use crate::drive::DriveWriter;
use crate::error::{DatasetError, Result};
use crate::geometry::{Iso3, transform_stamped};
use crate::msg::{CompressedImage, Header, ObjectArray, TfMessage};
use crate::pointcloud::to_point_cloud2;
use crate::topics::{self, frames};

/// What an object-frame import wrote.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ObjectImport {
    /// Lidar points.
    pub points: usize,
    /// Labelled objects written (DontCare regions are left out).
    pub objects: usize,
    /// Image columns x rows.
    pub image_size: (u32, u32),
}

/// Imports the frame in `dir` into `out`, stamped `stamp_nanos` (KITTI object
/// frames carry no time).
pub fn import_kitti_object(dir: &Path, out: &Path, stamp_nanos: u64) -> Result<ObjectImport> {
    let image_path = dir.join("image_02.png");
    let calib_path = dir.join("calib.txt");
    let label_path = dir.join("label_2.txt");
    let image_bytes = std::fs::read(&image_path).map_err(|e| DatasetError::io(&image_path, e))?;
    // Decoded whole, so a truncated file is refused here, not at distillation.
    let (width, height) = image::load_from_memory_with_format(&image_bytes, image::ImageFormat::Png)
        .map(|img| (img.width(), img.height()))
        .map_err(|e| DatasetError::invalid(&image_path, "image", format!("not a readable PNG: {e}")))?;
    let calib_text = read_text(&calib_path)?;
    let calib = parse_calib(&calib_path, &calib_text);
    let p2 = calib_values(&calib, &calib_path, "P2", 12)?;
    let r0 = calib_values(&calib, &calib_path, "R0_rect", 9)?;
    let tr = calib_values(&calib, &calib_path, "Tr_velo_to_cam", 12)?;
    let labels =
        if label_path.exists() { parse_labels(&label_path, &read_text(&label_path)?)? } else { Vec::new() };
    let raw_points = read_velodyne(&dir.join("velodyne.bin"))?;
    check_rotation(&calib_path, "R0_rect", r0)?;
    check_rotation(
        &calib_path,
        "Tr_velo_to_cam",
        &[tr[0], tr[1], tr[2], tr[4], tr[5], tr[6], tr[8], tr[9], tr[10]],
    )?;

    let (k, cam_from_rect0) = camera_from_projection(p2);
    check_intrinsics(&calib_path, "P2", k[(0, 0)], k[(1, 1)], k[(0, 2)], k[(1, 2)])?;
    check_image_size(&image_path, width, height, &calib_path, "P2", &k)?;
    let rect0_from_cam0 = rigid(r0, &[0.0; 3]);
    let cam0_from_velo =
        rigid(&[tr[0], tr[1], tr[2], tr[4], tr[5], tr[6], tr[8], tr[9], tr[10]], &[tr[3], tr[7], tr[11]]);
    let rect0_from_velo = rect0_from_cam0 * cam0_from_velo;
    let base_from_lidar = Iso3::translation(0.0, 0.0, LIDAR_HEIGHT_M);
    let base_from_rect0 = base_from_lidar * rect0_from_velo.inverse();
    let base_from_camera = base_from_rect0 * cam_from_rect0.inverse();

    let mut writer = DriveWriter::create(out)?;
    writer.write_metadata(
        KITTI_CALIB_METADATA,
        BTreeMap::from([("calib.txt".to_owned(), calib_text.clone())]),
    )?;
    writer.write_metadata(
        "nines.import",
        BTreeMap::from([
            ("source".to_owned(), "kitti-object".to_owned()),
            ("directory".to_owned(), dir.display().to_string()),
        ]),
    )?;
    write_mounting(&mut writer, stamp_nanos, &base_from_lidar, &base_from_camera)?;
    let tf = TfMessage {
        transforms: vec![transform_stamped(stamp_nanos, frames::MAP, frames::BASE_LINK, &Iso3::identity())],
    };
    writer.write(topics::TF, stamp_nanos, &tf)?;
    writer.write(topics::CAMERA_INFO, stamp_nanos, &rectified_camera_info(stamp_nanos, width, height, &k))?;
    let image = CompressedImage {
        header: Header::new(stamp_nanos, frames::CAMERA_FRONT),
        format: "png".into(),
        data: image_bytes,
    };
    writer.write(topics::CAMERA_COMPRESSED, stamp_nanos, &image)?;
    let points = hdl64_points(&raw_points, 0.0);
    writer.write(
        topics::LIDAR,
        stamp_nanos,
        &to_point_cloud2(Header::new(stamp_nanos, frames::LIDAR_TOP), &points),
    )?;
    let objects: Vec<_> = labels
        .iter()
        .filter(|l| l.kind != "DontCare")
        .map(|l| label_to_object(l, &base_from_rect0))
        .collect();
    let count = objects.len();
    writer.write(
        topics::ANNOTATIONS,
        stamp_nanos,
        &ObjectArray { header: Header::new(stamp_nanos, frames::BASE_LINK), objects },
    )?;
    writer.finish()?;
    Ok(ObjectImport { points: points.len(), objects: count, image_size: (width, height) })
}
