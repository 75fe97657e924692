//! Pictures of a drive for people: the last camera frame as PNG, and the
//! last lidar sweep seen from above, coloured by height.

use std::path::{Path, PathBuf};

use anyhow::Context;
use image::{Rgb, RgbImage};
use nines_datasets::drive::{DriveReader, ReadFilter};
use nines_datasets::image::decode_camera;
use nines_datasets::msg::PointCloud2;
use nines_datasets::pointcloud::from_point_cloud2;
use nines_datasets::topics;

/// Metres per pixel of the top-down view.
const TOP_DOWN_M_PER_PX: f64 = 0.15;
/// Side of the top-down view, pixels.
const TOP_DOWN_PX: u32 = 600;

/// Height colour ramp: blue (ground) to yellow (3 m and up).
fn height_colour(z: f64) -> Rgb<u8> {
    let t = ((z + 1.9) / 4.0).clamp(0.0, 1.0);
    Rgb([(40.0 + 215.0 * t) as u8, (80.0 + 170.0 * t) as u8, (220.0 * (1.0 - t) + 30.0) as u8])
}

/// Top-down view of lidar points (sensor frame, x forward drawn upwards).
#[must_use]
pub fn top_down(points: &[nines_datasets::pointcloud::LidarPoint]) -> RgbImage {
    let mut img = RgbImage::from_pixel(TOP_DOWN_PX, TOP_DOWN_PX, Rgb([12, 12, 16]));
    let centre = f64::from(TOP_DOWN_PX) / 2.0;
    // Sensor a third of the way up from the bottom: more view ahead.
    let origin_row = f64::from(TOP_DOWN_PX) * 0.7;
    for p in points {
        let col = centre - f64::from(p.y) / TOP_DOWN_M_PER_PX;
        let row = origin_row - f64::from(p.x) / TOP_DOWN_M_PER_PX;
        if (0.0..f64::from(TOP_DOWN_PX)).contains(&col) && (0.0..f64::from(TOP_DOWN_PX)).contains(&row) {
            img.put_pixel(col as u32, row as u32, height_colour(f64::from(p.z)));
        }
    }
    // The ego's footprint, for scale (4.6 x 1.9 m, lidar 1.2 m ahead of the rear axle).
    let (half_w, front, back) = (0.95 / TOP_DOWN_M_PER_PX, 2.3 / TOP_DOWN_M_PER_PX, 2.3 / TOP_DOWN_M_PER_PX);
    for r in (origin_row - front) as u32..(origin_row + back) as u32 {
        for c in (centre - half_w) as u32..(centre + half_w) as u32 {
            img.put_pixel(c, r, Rgb([230, 60, 60]));
        }
    }
    img
}

/// Writes `<stem>-camera.png` and `<stem>-lidar.png` from the last camera
/// frame and lidar sweep of `drive`.
pub fn save_last_frame(drive: &Path, out: &Path, stem: &str) -> anyhow::Result<Vec<PathBuf>> {
    let reader = DriveReader::open(drive)?;
    let mut camera = None;
    let mut cloud = None;
    let mut messages = reader.messages(&ReadFilter::topics([topics::CAMERA_COMPRESSED, topics::LIDAR]))?;
    while let Some(view) = messages.next_message() {
        let view = view?;
        if view.topic == topics::LIDAR {
            cloud = Some(view.decode::<PointCloud2>()?);
        } else {
            camera = Some(decode_camera(&view)?);
        }
    }
    let camera = camera.context("the drive has no camera frame")?;
    let cloud = cloud.context("the drive has no lidar sweep")?;
    let camera_path = out.join(format!("{stem}-camera.png"));
    camera.save(&camera_path).with_context(|| format!("writing {}", camera_path.display()))?;
    let lidar_path = out.join(format!("{stem}-lidar.png"));
    top_down(&from_point_cloud2(&cloud, "lidar")?)
        .save(&lidar_path)
        .with_context(|| format!("writing {}", lidar_path.display()))?;
    Ok(vec![camera_path, lidar_path])
}
