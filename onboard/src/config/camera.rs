//! `[camera]`: the source, its topic and rate, and the calibration and
//! mounting used when the source carries none.

use std::path::Path;

use nalgebra::{Rotation3, Translation3, UnitQuaternion, Vector3};
use nines_datasets::calib::CameraModel;
use nines_datasets::geometry::Iso3;
use nines_datasets::msg::CameraInfo;
use serde::Deserialize;

use crate::{OnboardError, Result};

/// `[camera]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CameraConfig {
    /// Where frames come from: an MCAP drive (`*.mcap`), a video file, a
    /// V4L2 device (`/dev/video0` or `v4l2:0`) or a GStreamer pipeline
    /// (`gst:... ! appsink`). `--source` overrides it.
    #[serde(default)]
    pub source: Option<String>,
    /// Image topic of an MCAP source (CompressedImage or Image).
    #[serde(default = "default_camera_topic")]
    pub topic: String,
    /// Capture rate of a live camera, Hz (also the expected frame rate).
    #[serde(default = "default_fps")]
    pub fps: f64,
    /// Intrinsics; for an MCAP source, the drive's CameraInfo wins when present.
    #[serde(default)]
    pub calibration: Option<Calibration>,
    /// Pose of the optical frame on base_link; for an MCAP source, the
    /// drive's /tf_static wins when present.
    #[serde(default)]
    pub mounting: Option<Mounting>,
}

/// `[camera.calibration]`: a CameraInfo in TOML.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Calibration {
    /// Columns.
    pub width: u32,
    /// Rows.
    pub height: u32,
    /// Focal length x, px.
    pub fx: f64,
    /// Focal length y, px.
    pub fy: f64,
    /// Principal point x, px.
    pub cx: f64,
    /// Principal point y, px.
    pub cy: f64,
    /// `plumb_bob` or `equidistant`.
    #[serde(default = "default_distortion_model")]
    pub distortion_model: String,
    /// Distortion coefficients (k1 k2 p1 p2 k3, or k1..k4).
    #[serde(default)]
    pub d: Vec<f64>,
}

/// `[camera.mounting]`: base_link -> camera optical frame.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Mounting {
    /// Forward of the rear axle, m.
    pub x_m: f64,
    /// Left, m.
    #[serde(default)]
    pub y_m: f64,
    /// Up, m.
    pub z_m: f64,
    /// Downward pitch, degrees.
    #[serde(default)]
    pub pitch_down_deg: f64,
    /// Roll, degrees.
    #[serde(default)]
    pub roll_deg: f64,
    /// Yaw to the left, degrees.
    #[serde(default)]
    pub yaw_left_deg: f64,
}

impl Calibration {
    /// The camera model.
    pub fn camera_model(&self, path: &Path) -> Result<CameraModel> {
        let info = CameraInfo {
            width: self.width,
            height: self.height,
            distortion_model: self.distortion_model.clone(),
            d: self.d.clone(),
            k: [self.fx, 0.0, self.cx, 0.0, self.fy, self.cy, 0.0, 0.0, 1.0],
            ..CameraInfo::default()
        };
        CameraModel::from_camera_info(&info, &format!("{} [camera.calibration]", path.display()))
            .map_err(|e| OnboardError::Config { path: path.to_path_buf(), detail: e.to_string() })
    }
}

impl Mounting {
    /// base_link <- camera optical frame.
    #[must_use]
    pub fn base_link_from_optical(&self) -> Iso3 {
        // Optical axes in base_link: z forward, x right, y down, then the mounting angles.
        let optical = UnitQuaternion::from_rotation_matrix(&Rotation3::from_matrix_unchecked(
            nalgebra::Matrix3::new(0.0, 0.0, 1.0, -1.0, 0.0, 0.0, 0.0, -1.0, 0.0),
        ));
        let turn = UnitQuaternion::from_axis_angle(&Vector3::z_axis(), self.yaw_left_deg.to_radians())
            * UnitQuaternion::from_axis_angle(&Vector3::y_axis(), self.pitch_down_deg.to_radians())
            * UnitQuaternion::from_axis_angle(&Vector3::x_axis(), self.roll_deg.to_radians());
        Iso3::from_parts(Translation3::new(self.x_m, self.y_m, self.z_m), turn * optical)
    }
}

fn default_camera_topic() -> String {
    nines_datasets::topics::CAMERA_COMPRESSED.into()
}
fn default_fps() -> f64 {
    10.0
}
fn default_distortion_model() -> String {
    "plumb_bob".into()
}
