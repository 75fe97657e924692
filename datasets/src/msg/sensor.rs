//! `sensor_msgs`: images, camera calibration, point clouds.

use serde::{Deserialize, Serialize};

use super::Header;

/// `sensor_msgs/CompressedImage`: `format` is `jpeg` or `png`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CompressedImage {
    /// Capture time and camera optical frame.
    pub header: Header,
    /// `jpeg` or `png` (ROS also allows e.g. `rgb8; jpeg compressed bgr8`).
    pub format: String,
    /// The encoded image file.
    #[serde(with = "serde_bytes")]
    pub data: Vec<u8>,
}

/// `sensor_msgs/Image`: raw pixels (nines writes `rgb8`, and `32FC1` depth).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Image {
    /// Capture time and camera optical frame.
    pub header: Header,
    /// Rows.
    pub height: u32,
    /// Columns.
    pub width: u32,
    /// Pixel encoding, e.g. `rgb8`, `bgr8`, `mono8`, `32FC1`.
    pub encoding: String,
    /// 1 if multi-byte pixels are big-endian.
    pub is_bigendian: u8,
    /// Bytes per row.
    pub step: u32,
    /// Pixels, row-major.
    #[serde(with = "serde_bytes")]
    pub data: Vec<u8>,
}

/// `sensor_msgs/RegionOfInterest`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegionOfInterest {
    /// Left column.
    pub x_offset: u32,
    /// Top row.
    pub y_offset: u32,
    /// Rows.
    pub height: u32,
    /// Columns.
    pub width: u32,
    /// Whether the region should be rectified.
    pub do_rectify: bool,
}

/// `sensor_msgs/CameraInfo`: intrinsics (`k`), distortion (`d`, model named by
/// `distortion_model`), rectification (`r`) and projection (`p`), row-major.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CameraInfo {
    /// Time and camera optical frame.
    pub header: Header,
    /// Image rows.
    pub height: u32,
    /// Image columns.
    pub width: u32,
    /// `plumb_bob` (k1 k2 p1 p2 k3) or `equidistant` (k1 k2 k3 k4).
    pub distortion_model: String,
    /// Distortion coefficients.
    pub d: Vec<f64>,
    /// 3x3 intrinsic matrix.
    pub k: [f64; 9],
    /// 3x3 rectification rotation.
    pub r: [f64; 9],
    /// 3x4 projection matrix.
    pub p: [f64; 12],
    /// Horizontal binning.
    pub binning_x: u32,
    /// Vertical binning.
    pub binning_y: u32,
    /// Region of interest.
    pub roi: RegionOfInterest,
}

/// `sensor_msgs/PointField`: one named field of a point cloud.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PointField {
    /// Field name, e.g. `x`, `intensity`, `ring`, `time`.
    pub name: String,
    /// Byte offset within a point.
    pub offset: u32,
    /// One of the `PointField::*` datatype constants.
    pub datatype: u8,
    /// Elements per point (1 for scalars).
    pub count: u32,
}

impl PointField {
    /// `uint16` datatype.
    pub const UINT16: u8 = 4;
    /// `float32` datatype.
    pub const FLOAT32: u8 = 7;
    /// `float64` datatype.
    pub const FLOAT64: u8 = 8;
}

/// `sensor_msgs/PointCloud2`: points as packed records described by `fields`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PointCloud2 {
    /// Sweep time and sensor frame.
    pub header: Header,
    /// Rows (1 for unorganised clouds).
    pub height: u32,
    /// Points per row.
    pub width: u32,
    /// Layout of one point.
    pub fields: Vec<PointField>,
    /// Byte order of the data.
    pub is_bigendian: bool,
    /// Bytes per point.
    pub point_step: u32,
    /// Bytes per row.
    pub row_step: u32,
    /// Packed points.
    #[serde(with = "serde_bytes")]
    pub data: Vec<u8>,
    /// True if there are no invalid (NaN) points.
    pub is_dense: bool,
}
