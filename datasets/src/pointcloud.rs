//! Lidar sweeps as nines uses them, and their `sensor_msgs/PointCloud2`
//! layout: x, y, z, intensity (f32), ring (u16), time (f32, seconds since the
//! header stamp), 24 bytes a point, little-endian.

use crate::error::{DatasetError, Result};
use crate::msg::{Header, PointCloud2, PointField};

/// One lidar return.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct LidarPoint {
    /// x in the sensor frame, m.
    pub x: f32,
    /// y in the sensor frame, m.
    pub y: f32,
    /// z in the sensor frame, m.
    pub z: f32,
    /// Return strength, sensor units (0..1 for nines and KITTI).
    pub intensity: f32,
    /// Laser (beam) index.
    pub ring: u16,
    /// Capture time relative to the sweep stamp, s.
    pub time: f32,
}

const POINT_STEP: u32 = 24;

fn field(name: &str, offset: u32, datatype: u8) -> PointField {
    PointField { name: name.into(), offset, datatype, count: 1 }
}

/// Encodes points as a nines `PointCloud2` (unorganised, height 1).
#[must_use]
pub fn to_point_cloud2(header: Header, points: &[LidarPoint]) -> PointCloud2 {
    let mut data = Vec::with_capacity(points.len() * POINT_STEP as usize);
    for p in points {
        data.extend_from_slice(&p.x.to_le_bytes());
        data.extend_from_slice(&p.y.to_le_bytes());
        data.extend_from_slice(&p.z.to_le_bytes());
        data.extend_from_slice(&p.intensity.to_le_bytes());
        data.extend_from_slice(&p.ring.to_le_bytes());
        data.extend_from_slice(&[0, 0]);
        data.extend_from_slice(&p.time.to_le_bytes());
    }
    let width = points.len() as u32;
    PointCloud2 {
        header,
        height: 1,
        width,
        fields: vec![
            field("x", 0, PointField::FLOAT32),
            field("y", 4, PointField::FLOAT32),
            field("z", 8, PointField::FLOAT32),
            field("intensity", 12, PointField::FLOAT32),
            field("ring", 16, PointField::UINT16),
            field("time", 20, PointField::FLOAT32),
        ],
        is_bigendian: false,
        point_step: POINT_STEP,
        row_step: POINT_STEP * width,
        data,
        is_dense: points.iter().all(|p| p.x.is_finite() && p.y.is_finite() && p.z.is_finite()),
    }
}

/// Decodes any little-endian `PointCloud2` that has float32 x, y, z; intensity
/// (f32), ring (u16) and time (f32 or f64) are read when present, else 0.
/// `source` names the topic or file for errors.
pub fn from_point_cloud2(cloud: &PointCloud2, source: &str) -> Result<Vec<LidarPoint>> {
    let bad =
        |field: &str, problem: String| DatasetError::invalid(source, format!("PointCloud2.{field}"), problem);
    if cloud.is_bigendian {
        return Err(bad("is_bigendian", "big-endian clouds are not supported; publish little-endian".into()));
    }
    let step = cloud.point_step as usize;
    let count = cloud.width as usize * cloud.height as usize;
    let needed = count.checked_mul(step).ok_or_else(|| bad("width", "point count overflows".into()))?;
    if cloud.data.len() < needed {
        return Err(bad(
            "data",
            format!(
                "{} bytes for {count} points of {step} bytes; width/height/point_step disagree with data",
                cloud.data.len()
            ),
        ));
    }
    let find = |name: &str, datatype: u8| -> Result<Option<usize>> {
        match cloud.fields.iter().find(|f| f.name == name) {
            None => Ok(None),
            Some(f) if f.datatype == datatype && (f.offset as usize) + size_of_type(datatype) <= step => {
                Ok(Some(f.offset as usize))
            }
            Some(f) => Err(bad(
                "fields",
                format!(
                    "field `{name}` has datatype {} at offset {}, expected datatype {datatype} inside the {step}-byte point",
                    f.datatype, f.offset
                ),
            )),
        }
    };
    let require = |name: &str| -> Result<usize> {
        find(name, PointField::FLOAT32)?
            .ok_or_else(|| bad("fields", format!("no float32 field `{name}`; nines needs x, y, z")))
    };
    let (ox, oy, oz) = (require("x")?, require("y")?, require("z")?);
    let oi = find("intensity", PointField::FLOAT32)?;
    let or = find("ring", PointField::UINT16)?;
    let time = match cloud.fields.iter().find(|f| f.name == "time" || f.name == "t") {
        Some(f) if f.datatype == PointField::FLOAT64 => {
            find(&f.name, PointField::FLOAT64)?.map(|o| (o, true))
        }
        Some(f) => find(&f.name, PointField::FLOAT32)?.map(|o| (o, false)),
        None => None,
    };
    let f32_at = |p: &[u8], o: usize| f32::from_le_bytes([p[o], p[o + 1], p[o + 2], p[o + 3]]);
    Ok(cloud.data[..needed]
        .chunks_exact(step)
        .map(|p| LidarPoint {
            x: f32_at(p, ox),
            y: f32_at(p, oy),
            z: f32_at(p, oz),
            intensity: oi.map_or(0.0, |o| f32_at(p, o)),
            ring: or.map_or(0, |o| u16::from_le_bytes([p[o], p[o + 1]])),
            time: match time {
                Some((o, true)) => {
                    let mut b = [0u8; 8];
                    b.copy_from_slice(&p[o..o + 8]);
                    f64::from_le_bytes(b) as f32
                }
                Some((o, false)) => f32_at(p, o),
                None => 0.0,
            },
        })
        .collect())
}

fn size_of_type(datatype: u8) -> usize {
    match datatype {
        1 | 2 => 1,
        3 | 4 => 2,
        8 => 8,
        _ => 4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_refuses_short_data() {
        let points = vec![
            LidarPoint { x: 1.5, y: -2.0, z: 0.25, intensity: 0.5, ring: 31, time: 0.099 },
            LidarPoint { x: f32::MAX, y: 0.0, z: -7.0, intensity: 0.0, ring: 0, time: 0.0 },
        ];
        let cloud = to_point_cloud2(Header::new(5, "lidar_top"), &points);
        assert_eq!(cloud.row_step, 48);
        assert_eq!(from_point_cloud2(&cloud, "t").unwrap(), points);
        let mut short = cloud.clone();
        short.data.truncate(40);
        let err = from_point_cloud2(&short, "drive.mcap /lidar").unwrap_err().to_string();
        assert!(err.contains("PointCloud2.data"), "{err}");
        let mut no_z = cloud;
        no_z.fields.retain(|f| f.name != "z");
        assert!(from_point_cloud2(&no_z, "t").unwrap_err().to_string().contains("`z`"));
    }
}
