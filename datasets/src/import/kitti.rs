//! Pieces shared by the KITTI importers: calibration files, velodyne scans,
//! labels, and the camera and lidar mounting they imply.

use std::collections::HashMap;
use std::path::Path;

use nalgebra::{Matrix3, Rotation3, Translation3, UnitQuaternion, Vector3};

use crate::error::{DatasetError, Result};
use crate::geometry::Iso3;
use crate::msg::{CameraInfo, Header};
use crate::pointcloud::LidarPoint;
use crate::topics::frames;

/// Metadata record holding the original calibration file(s), verbatim.
pub const KITTI_CALIB_METADATA: &str = "kitti.calib";

/// Height of the KITTI Velodyne above the road, m: base_link sits on the
/// ground below it.
pub const LIDAR_HEIGHT_M: f64 = 1.73;

pub(crate) fn read_text(path: &Path) -> Result<String> {
    std::fs::read_to_string(path).map_err(|e| DatasetError::io(path, e))
}

/// `KEY: v1 v2 ...` lines; lines whose values are not all numbers (such as
/// `calib_time`) are skipped.
pub(crate) fn parse_calib(path: &Path, text: &str) -> Calib {
    let mut calib = Calib::default();
    for (i, line) in text.lines().enumerate() {
        let Some((key, values)) = line.split_once(':') else { continue };
        let key = key.trim().to_owned();
        let line_no = i + 1;
        let parsed: std::result::Result<Vec<f64>, String> =
            values.split_whitespace().map(|v| v.parse().map_err(|_| v.to_owned())).collect();
        if let Some(&(first, _)) = calib.entries.get(&key) {
            calib.duplicates.entry(key.clone()).or_insert((first, line_no));
            continue;
        }
        tracing::trace!("{}: calib key {key}", path.display());
        calib.entries.insert(key, (line_no, parsed));
    }
    calib
}

/// A KITTI calibration file's `key: numbers` lines, with where each is.
#[derive(Debug, Default)]
pub(crate) struct Calib {
    /// Key -> (line, its numbers, or the first word that is not one).
    entries: HashMap<String, (usize, std::result::Result<Vec<f64>, String>)>,
    /// Keys given twice: (first line, second line).
    duplicates: HashMap<String, (usize, usize)>,
}

/// The `len` numbers of `key`, each finite; errors name the file, the key
/// and the line.
pub(crate) fn calib_values<'a>(calib: &'a Calib, path: &Path, key: &str, len: usize) -> Result<&'a [f64]> {
    if let Some((first, second)) = calib.duplicates.get(key) {
        return Err(DatasetError::invalid(
            path,
            key,
            format!("given twice (lines {first} and {second}); keep one"),
        ));
    }
    match calib.entries.get(key) {
        Some((line, Err(word))) => Err(DatasetError::invalid(
            path,
            key,
            format!("line {line}: `{word}` is not a number; the line needs {len} numbers"),
        )),
        Some((line, Ok(v))) if v.len() != len => Err(DatasetError::invalid(
            path,
            key,
            format!("line {line}: has {} numbers, expected {len}", v.len()),
        )),
        Some((line, Ok(v))) if v.iter().any(|x| !x.is_finite()) => Err(DatasetError::invalid(
            path,
            key,
            format!("line {line}: holds a value that is not finite ({v:?})"),
        )),
        Some((_, Ok(v))) => Ok(v),
        None => Err(DatasetError::invalid(
            path,
            key,
            format!("missing; the file needs a `{key}:` line with {len} numbers"),
        )),
    }
}

/// Refuses a rotation that is not one (all zeros, a scale, a shear): KITTI
/// rounds its rotations to 6 digits, so rows must be unit length and
/// orthogonal within 1e-3.
pub(crate) fn check_rotation(path: &Path, key: &str, rotation: &[f64]) -> Result<()> {
    let m = Matrix3::from_row_slice(rotation);
    let off = (m * m.transpose() - Matrix3::identity()).abs().max();
    if off > 1e-3 || (m.determinant() - 1.0).abs() > 1e-2 {
        return Err(DatasetError::invalid(
            path,
            key,
            format!(
                "its rotation part is not a rotation (R Rt differs from I by {off:.3}); check the calibration file"
            ),
        ));
    }
    Ok(())
}

/// Refuses an image whose size cannot be the calibrated camera's: the
/// principal point must fall inside it (a 1x1 image against KITTI's
/// 1242x375 calibration has cx = 609).
pub(crate) fn check_image_size(
    image: &Path,
    width: u32,
    height: u32,
    calib: &Path,
    key: &str,
    k: &Matrix3<f64>,
) -> Result<()> {
    let (cx, cy) = (k[(0, 2)], k[(1, 2)]);
    if !(cx > 0.0 && cx < f64::from(width) && cy > 0.0 && cy < f64::from(height)) {
        return Err(DatasetError::invalid(
            image,
            "image size",
            format!(
                "{width}x{height}, but {} {key} puts the principal point at ({cx:.1}, {cy:.1}): the image is not \
                 this camera's, or it was cut",
                calib.display()
            ),
        ));
    }
    Ok(())
}

/// Refuses a camera matrix whose focal lengths or principal point no
/// camera has: focal lengths in (1, 1e5) px, the principal point within
/// 1e5 px.
pub(crate) fn check_intrinsics(path: &Path, key: &str, fx: f64, fy: f64, cx: f64, cy: f64) -> Result<()> {
    let focal = |f: f64| f > 1.0 && f < 1e5;
    if !(focal(fx) && focal(fy) && cx.abs() < 1e5 && cy.abs() < 1e5) {
        return Err(DatasetError::invalid(
            path,
            key,
            format!(
                "fx {fx}, fy {fy}, cx {cx}, cy {cy}: focal lengths must lie in (1, 100000) px, the principal point within 100000 px"
            ),
        ));
    }
    Ok(())
}

/// Rigid transform from a 3x3 rotation (row-major) and a translation; the
/// rotation is re-orthonormalised (KITTI's are rounded to 6 digits).
pub(crate) fn rigid(rotation: &[f64], translation: &[f64]) -> Iso3 {
    let m = Matrix3::from_row_slice(rotation);
    let r = Rotation3::from_matrix_eps(&m, 1e-12, 100, Rotation3::identity());
    Iso3::from_parts(
        Translation3::new(translation[0], translation[1], translation[2]),
        UnitQuaternion::from_rotation_matrix(&r),
    )
}

/// Rectified camera `i`'s own optical frame from the rectified frame of
/// camera 0, given its 3x4 projection P = K [I | t]: returns (K, cam_from_rect0).
pub(crate) fn camera_from_projection(p: &[f64]) -> (Matrix3<f64>, Iso3) {
    let k = Matrix3::new(p[0], p[1], p[2], p[4], p[5], p[6], p[8], p[9], p[10]);
    let t = k.try_inverse().unwrap_or_else(Matrix3::identity) * Vector3::new(p[3], p[7], p[11]);
    (k, Iso3::translation(t.x, t.y, t.z))
}

/// CameraInfo of a rectified image with intrinsics `k`.
pub(crate) fn rectified_camera_info(
    stamp_nanos: u64,
    width: u32,
    height: u32,
    k: &Matrix3<f64>,
) -> CameraInfo {
    let (fx, fy, cx, cy) = (k[(0, 0)], k[(1, 1)], k[(0, 2)], k[(1, 2)]);
    CameraInfo {
        header: Header::new(stamp_nanos, frames::CAMERA_FRONT),
        height,
        width,
        distortion_model: "plumb_bob".into(),
        d: vec![0.0; 5],
        k: [fx, k[(0, 1)], cx, 0.0, fy, cy, 0.0, 0.0, 1.0],
        r: [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0],
        p: [fx, k[(0, 1)], cx, 0.0, 0.0, fy, cy, 0.0, 0.0, 0.0, 1.0, 0.0],
        ..CameraInfo::default()
    }
}

/// Writes /tf_static: where the lidar and the front camera sit on base_link.
pub(crate) fn write_mounting(
    writer: &mut crate::drive::DriveWriter,
    stamp_nanos: u64,
    base_from_lidar: &Iso3,
    base_from_camera: &Iso3,
) -> Result<()> {
    let tf_static = crate::msg::TfMessage {
        transforms: vec![
            crate::geometry::transform_stamped(
                stamp_nanos,
                frames::BASE_LINK,
                frames::LIDAR_TOP,
                base_from_lidar,
            ),
            crate::geometry::transform_stamped(
                stamp_nanos,
                frames::BASE_LINK,
                frames::CAMERA_FRONT,
                base_from_camera,
            ),
        ],
    };
    writer.write(crate::topics::TF_STATIC, stamp_nanos, &tf_static)
}

/// Reads a KITTI velodyne scan (float32 x, y, z, reflectance).
pub(crate) fn read_velodyne(path: &Path) -> Result<Vec<[f32; 4]>> {
    let bytes = std::fs::read(path).map_err(|e| DatasetError::io(path, e))?;
    if bytes.len() % 16 != 0 {
        return Err(DatasetError::invalid(
            path,
            "velodyne points",
            format!(
                "{} bytes is not a whole number of 16-byte points (x y z reflectance as float32)",
                bytes.len()
            ),
        ));
    }
    let points: Vec<[f32; 4]> = bytes
        .chunks_exact(16)
        .map(|p| {
            let f = |i: usize| f32::from_le_bytes([p[i], p[i + 1], p[i + 2], p[i + 3]]);
            [f(0), f(4), f(8), f(12)]
        })
        .collect();
    let finite = points.iter().filter(|p| p[..3].iter().all(|v| v.is_finite())).count();
    if finite == 0 {
        return Err(DatasetError::invalid(
            path,
            "velodyne points",
            format!("{} points, none with finite coordinates: the scan is empty or damaged", points.len()),
        ));
    }
    Ok(points)
}

/// Lidar points with the HDL-64E beam estimated from elevation (the scans do
/// not store it; 64 beams from +2.0 to -24.9 degrees) and the capture time
/// from azimuth over a sweep of `sweep_secs` that starts facing backwards and
/// turns clockwise (0 when the sweep timing is unknown).
pub(crate) fn hdl64_points(raw: &[[f32; 4]], sweep_secs: f32) -> Vec<LidarPoint> {
    raw.iter()
        .map(|&[x, y, z, intensity]| {
            let elevation_deg = z.atan2(x.hypot(y)).to_degrees();
            let ring = ((2.0 - elevation_deg) / (26.9 / 63.0)).round().clamp(0.0, 63.0) as u16;
            let travelled = std::f32::consts::PI - y.atan2(x);
            let time = sweep_secs * travelled / std::f32::consts::TAU;
            LidarPoint { x, y, z, intensity, ring, time }
        })
        .collect()
}

/// One line of a KITTI `label_2` file.
#[derive(Debug, Clone, PartialEq)]
pub struct KittiLabel {
    /// Class (`Car`, `Pedestrian`, ..., `DontCare`).
    pub kind: String,
    /// Fraction outside the image.
    pub truncated: f32,
    /// 0..3.
    pub occluded: u8,
    /// Observation angle, rad.
    pub alpha: f64,
    /// x1 y1 x2 y2, pixels.
    pub bbox: [f32; 4],
    /// Height, width, length, m.
    pub dimensions_hwl: [f64; 3],
    /// Bottom centre in rectified camera 0 coordinates, m.
    pub location: [f64; 3],
    /// Heading about the camera y axis, rad.
    pub rotation_y: f64,
}

/// Parses `label_2` text; errors name the file, the line and the column.
pub fn parse_labels(path: &Path, text: &str) -> Result<Vec<KittiLabel>> {
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, line)| {
            let cols: Vec<&str> = line.split_whitespace().collect();
            let field = |c: usize| format!("line {} column {}", i + 1, c + 1);
            if cols.len() < 15 {
                return Err(DatasetError::invalid(
                    path,
                    field(cols.len()),
                    format!("{} columns, a KITTI label has 15", cols.len()),
                ));
            }
            let num = |c: usize| -> Result<f64> {
                cols[c].parse().map_err(|_| {
                    DatasetError::invalid(path, field(c), format!("`{}` is not a number", cols[c]))
                })
            };
            Ok(KittiLabel {
                kind: cols[0].to_owned(),
                truncated: num(1)? as f32,
                occluded: num(2)?.clamp(0.0, 3.0) as u8,
                alpha: num(3)?,
                bbox: [num(4)? as f32, num(5)? as f32, num(6)? as f32, num(7)? as f32],
                dimensions_hwl: [num(8)?, num(9)?, num(10)?],
                location: [num(11)?, num(12)?, num(13)?],
                rotation_y: num(14)?,
            })
        })
        .collect()
}

/// Object box of a label in base_link, given `base_from_rect0`.
pub(crate) fn label_to_object(label: &KittiLabel, base_from_rect0: &Iso3) -> crate::msg::Object {
    let [h, w, l] = label.dimensions_hwl;
    let [x, y, z] = label.location;
    // Location is the bottom centre; the camera y axis points down.
    let centre = base_from_rect0 * nalgebra::Point3::new(x, y - h / 2.0, z);
    let (s, c) = label.rotation_y.sin_cos();
    let heading = base_from_rect0.rotation * Vector3::new(c, 0.0, -s);
    let yaw = heading.y.atan2(heading.x);
    let pose =
        Iso3::from_parts(Translation3::from(centre.coords), UnitQuaternion::from_euler_angles(0.0, 0.0, yaw));
    crate::msg::Object {
        id: 0,
        label: label.kind.to_lowercase(),
        pose: crate::geometry::pose_from_isometry(&pose),
        size: crate::msg::Vector3 { x: l, y: w, z: h },
        velocity: crate::msg::Twist::default(),
        truncation: label.truncated,
        occlusion: label.occluded,
        box_2d: label.bbox,
    }
}
