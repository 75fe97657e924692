//! Camera models from `sensor_msgs/CameraInfo`: pinhole intrinsics with
//! `plumb_bob` (Brown-Conrady) or `equidistant` (fisheye) distortion.
//! Points are in the camera optical frame (x right, y down, z forward).

use nalgebra::{Point2, Vector3};

use crate::error::{DatasetError, Result};
use crate::msg::CameraInfo;

/// Lens distortion.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Distortion {
    /// Rectified or ideal pinhole.
    None,
    /// Brown-Conrady: radial k1 k2 k3, tangential p1 p2.
    PlumbBob {
        /// Radial r^2.
        k1: f64,
        /// Radial r^4.
        k2: f64,
        /// Tangential.
        p1: f64,
        /// Tangential.
        p2: f64,
        /// Radial r^6.
        k3: f64,
    },
    /// Kannala-Brandt fisheye on the angle from the axis.
    Equidistant {
        /// theta^3 term.
        k1: f64,
        /// theta^5 term.
        k2: f64,
        /// theta^7 term.
        k3: f64,
        /// theta^9 term.
        k4: f64,
    },
}

/// A calibrated camera.
#[derive(Debug, Clone, PartialEq)]
pub struct CameraModel {
    /// Image columns.
    pub width: u32,
    /// Image rows.
    pub height: u32,
    /// Focal length x, pixels.
    pub fx: f64,
    /// Focal length y, pixels.
    pub fy: f64,
    /// Principal point x, pixels.
    pub cx: f64,
    /// Principal point y, pixels.
    pub cy: f64,
    /// Distortion.
    pub distortion: Distortion,
    /// Optical frame name.
    pub frame_id: String,
}

/// The largest image side a camera model accepts, pixels (a 16K sensor).
pub const MAX_IMAGE_SIDE: u32 = 16_384;

impl CameraModel {
    /// Model of a `CameraInfo`. `source` names the file or topic for errors.
    /// Refuses non-positive focal lengths, unknown distortion models and
    /// coefficient counts that do not fit the model.
    pub fn from_camera_info(info: &CameraInfo, source: &str) -> Result<Self> {
        let k = &info.k;
        let (fx, fy, cx, cy) = (k[0], k[4], k[2], k[5]);
        if !(fx > 0.0 && fy > 0.0 && fx.is_finite() && fy.is_finite()) {
            return Err(DatasetError::invalid(
                source,
                "camera_info.k",
                format!(
                    "focal lengths must be positive, found fx={fx} fy={fy}; k is row-major [fx 0 cx; 0 fy cy; 0 0 1]"
                ),
            ));
        }
        let (w, h) = (info.width, info.height);
        if !(1..=MAX_IMAGE_SIDE).contains(&w) || !(1..=MAX_IMAGE_SIDE).contains(&h) {
            return Err(DatasetError::invalid(
                source,
                "camera_info.width/height",
                format!("{w}x{h}: each side must lie in 1..={MAX_IMAGE_SIDE} pixels"),
            ));
        }
        if !(cx.is_finite() && cy.is_finite() && info.d.iter().all(|c| c.is_finite())) {
            return Err(DatasetError::invalid(
                source,
                "camera_info.k/d",
                format!("the principal point ({cx}, {cy}) and distortion {:?} must be finite", info.d),
            ));
        }
        let d = |i: usize| info.d.get(i).copied().unwrap_or(0.0);
        let distortion = match info.distortion_model.as_str() {
            _ if info.d.iter().all(|c| *c == 0.0) => Distortion::None,
            "plumb_bob" | "rational_polynomial" if info.d.len() >= 4 => {
                if info.d.len() > 5 && info.d[5..].iter().any(|c| *c != 0.0) {
                    return Err(DatasetError::invalid(
                        source,
                        "camera_info.d",
                        "rational_polynomial terms k4..k6 are not supported; recalibrate with plumb_bob (5 coefficients)",
                    ));
                }
                Distortion::PlumbBob { k1: d(0), k2: d(1), p1: d(2), p2: d(3), k3: d(4) }
            }
            "equidistant" if info.d.len() == 4 => {
                Distortion::Equidistant { k1: d(0), k2: d(1), k3: d(2), k4: d(3) }
            }
            model => {
                return Err(DatasetError::invalid(
                    source,
                    "camera_info.distortion_model",
                    format!(
                        "`{model}` with {} coefficients is not supported; use plumb_bob (k1 k2 p1 p2 k3) or equidistant (k1 k2 k3 k4)",
                        info.d.len()
                    ),
                ));
            }
        };
        Ok(Self {
            width: info.width,
            height: info.height,
            fx,
            fy,
            cx,
            cy,
            distortion,
            frame_id: info.header.frame_id.clone(),
        })
    }

    /// Distorted normalised coordinates of the ideal ones `(x, y)` = (X/Z, Y/Z).
    #[must_use]
    pub fn distort(&self, x: f64, y: f64) -> (f64, f64) {
        match self.distortion {
            Distortion::None => (x, y),
            Distortion::PlumbBob { k1, k2, p1, p2, k3 } => {
                let r2 = x * x + y * y;
                let radial = 1.0 + r2 * (k1 + r2 * (k2 + r2 * k3));
                (
                    x * radial + 2.0 * p1 * x * y + p2 * (r2 + 2.0 * x * x),
                    y * radial + p1 * (r2 + 2.0 * y * y) + 2.0 * p2 * x * y,
                )
            }
            Distortion::Equidistant { k1, k2, k3, k4 } => {
                let r = x.hypot(y);
                if r < 1e-12 {
                    return (x, y);
                }
                let theta = r.atan();
                let t2 = theta * theta;
                let theta_d = theta * (1.0 + t2 * (k1 + t2 * (k2 + t2 * (k3 + t2 * k4))));
                (x * theta_d / r, y * theta_d / r)
            }
        }
    }

    /// Ideal normalised coordinates of distorted ones (inverse of [`Self::distort`]).
    #[must_use]
    pub fn undistort(&self, xd: f64, yd: f64) -> (f64, f64) {
        match self.distortion {
            Distortion::None => (xd, yd),
            Distortion::PlumbBob { .. } => {
                // Fixed-point iteration, converges for realistic lenses inside the image.
                let (mut x, mut y) = (xd, yd);
                for _ in 0..50 {
                    let (dx, dy) = self.distort(x, y);
                    x += xd - dx;
                    y += yd - dy;
                }
                (x, y)
            }
            Distortion::Equidistant { k1, k2, k3, k4 } => {
                let theta_d = xd.hypot(yd);
                if theta_d < 1e-12 {
                    return (xd, yd);
                }
                // Newton on theta(1 + k1 t^2 + ...) = theta_d.
                let mut theta = theta_d;
                for _ in 0..20 {
                    let t2 = theta * theta;
                    let f = theta * (1.0 + t2 * (k1 + t2 * (k2 + t2 * (k3 + t2 * k4)))) - theta_d;
                    let df = 1.0 + t2 * (3.0 * k1 + t2 * (5.0 * k2 + t2 * (7.0 * k3 + t2 * 9.0 * k4)));
                    theta -= f / df;
                }
                let scale = theta.tan() / theta_d;
                (xd * scale, yd * scale)
            }
        }
    }

    /// Pixel of a point in the optical frame; `None` behind the camera
    /// (z <= 1 mm). Pixels outside the image are returned too.
    #[must_use]
    pub fn project(&self, p: &Vector3<f64>) -> Option<Point2<f64>> {
        if p.z <= 1e-3 {
            return None;
        }
        let (xd, yd) = self.distort(p.x / p.z, p.y / p.z);
        Some(Point2::new(self.fx * xd + self.cx, self.fy * yd + self.cy))
    }

    /// Ray through a pixel, scaled to z = 1.
    #[must_use]
    pub fn unproject(&self, pixel: &Point2<f64>) -> Vector3<f64> {
        let (x, y) = self.undistort((pixel.x - self.cx) / self.fx, (pixel.y - self.cy) / self.fy);
        Vector3::new(x, y, 1.0)
    }

    /// True if the pixel lies inside the image.
    #[must_use]
    pub fn contains(&self, pixel: &Point2<f64>) -> bool {
        pixel.x >= 0.0
            && pixel.y >= 0.0
            && pixel.x < f64::from(self.width)
            && pixel.y < f64::from(self.height)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(model: &str, d: Vec<f64>) -> CameraInfo {
        CameraInfo {
            width: 640,
            height: 480,
            distortion_model: model.into(),
            d,
            k: [500.0, 0.0, 320.0, 0.0, 400.0, 240.0, 0.0, 0.0, 1.0],
            ..CameraInfo::default()
        }
    }

    fn assert_close(p: Point2<f64>, u: f64, v: f64) {
        assert!((p.x - u).abs() < 1e-9 && (p.y - v).abs() < 1e-9, "{p} vs ({u}, {v})");
    }

    #[test]
    fn pinhole_projection_matches_hand_computation() {
        let cam = CameraModel::from_camera_info(&info("plumb_bob", vec![0.0; 5]), "test").unwrap();
        // x = 0.1, y = 0.2: u = 500 * 0.1 + 320, v = 400 * 0.2 + 240.
        assert_close(cam.project(&Vector3::new(1.0, 2.0, 10.0)).unwrap(), 370.0, 320.0);
        assert!(cam.project(&Vector3::new(1.0, 2.0, -10.0)).is_none());
    }

    #[test]
    fn plumb_bob_matches_hand_computation_and_inverts() {
        let cam =
            CameraModel::from_camera_info(&info("plumb_bob", vec![0.1, -0.05, 0.01, 0.002, 0.001]), "test")
                .unwrap();
        // r2 = 0.05, radial = 1 + 0.1 r2 - 0.05 r2^2 + 0.001 r2^3, plus tangential terms.
        let px = cam.project(&Vector3::new(1.0, 2.0, 10.0)).unwrap();
        assert_close(px, 370.513_756_25, 320.942_01);
        let ray = cam.unproject(&px);
        assert!((ray - Vector3::new(0.1, 0.2, 1.0)).norm() < 1e-10, "{ray}");
    }

    #[test]
    fn equidistant_matches_hand_computation_and_inverts() {
        let cam =
            CameraModel::from_camera_info(&info("equidistant", vec![0.1, 0.0, 0.0, 0.0]), "test").unwrap();
        // theta = atan(sqrt(0.05)), theta_d = theta (1 + 0.1 theta^2), scale = theta_d / r.
        let px = cam.project(&Vector3::new(1.0, 2.0, 10.0)).unwrap();
        assert_close(px, 369.428_864_654_630_56, 319.086_183_447_408_87);
        let ray = cam.unproject(&px);
        assert!((ray - Vector3::new(0.1, 0.2, 1.0)).norm() < 1e-10, "{ray}");
    }

    #[test]
    fn bad_calibrations_name_the_field() {
        let mut bad = info("plumb_bob", vec![0.0; 5]);
        bad.k[0] = 0.0;
        let err = CameraModel::from_camera_info(&bad, "drive.mcap").unwrap_err().to_string();
        assert!(err.contains("drive.mcap") && err.contains("camera_info.k"), "{err}");
        let err = CameraModel::from_camera_info(&info("fov", vec![0.3]), "x").unwrap_err().to_string();
        assert!(err.contains("distortion_model") && err.contains("plumb_bob"), "{err}");
        // A 2^30 x 2^30 camera would be distilled into gigabytes of labels: refused.
        let mut huge = info("plumb_bob", vec![0.0; 5]);
        (huge.width, huge.height) = (1 << 30, 1 << 30);
        let err = CameraModel::from_camera_info(&huge, "drive.mcap").unwrap_err().to_string();
        assert!(err.contains("camera_info.width/height") && err.contains("16384"), "{err}");
        let mut nan = info("plumb_bob", vec![0.0; 5]);
        nan.k[2] = f64::NAN;
        assert!(CameraModel::from_camera_info(&nan, "x").is_err());
    }
}
