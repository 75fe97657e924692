//! Plain-old-data camera and transform parameters the kernels share, laid
//! out the same way on the CPU and in the CUDA parameter block.

use nines_datasets::calib::{CameraModel, Distortion};
use nines_datasets::geometry::Iso3;

/// Lens model codes, as the CUDA source reads them.
const PINHOLE: u32 = 0;
const PLUMB_BOB: u32 = 1;
const EQUIDISTANT: u32 = 2;

/// A calibrated camera at some resolution, in f32 (OpenCV pixel convention:
/// pixel (0, 0)'s centre is at (0, 0)).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Lens {
    /// Focal length x, pixels.
    pub fx: f32,
    /// Focal length y, pixels.
    pub fy: f32,
    /// Principal point x, pixels.
    pub cx: f32,
    /// Principal point y, pixels.
    pub cy: f32,
    /// Columns.
    pub width: u32,
    /// Rows.
    pub height: u32,
    /// 0 pinhole, 1 plumb_bob (k1 k2 p1 p2 k3), 2 equidistant (k1..k4).
    pub kind: u32,
    /// Distortion coefficients in the order of `kind`.
    pub coeffs: [f32; 5],
    /// Squared radius of ideal normalised coordinates beyond which a point
    /// is refused: distortion polynomials fold far-off points back into the
    /// image, so only the field of view the image can show is accepted.
    pub max_r2: f32,
}

impl Lens {
    /// A distortion-free camera.
    #[must_use]
    pub fn pinhole(fx: f32, fy: f32, cx: f32, cy: f32, width: u32, height: u32) -> Self {
        let mut lens =
            Self { fx, fy, cx, cy, width, height, kind: PINHOLE, coeffs: [0.0; 5], max_r2: f32::MAX };
        lens.max_r2 = lens.field_of_view_r2(|x, y| (x, y));
        lens
    }

    /// The lens of a calibrated camera at its own resolution.
    #[must_use]
    pub fn from_model(model: &CameraModel) -> Self {
        let (kind, coeffs) = match model.distortion {
            Distortion::None => (PINHOLE, [0.0; 5]),
            Distortion::PlumbBob { k1, k2, p1, p2, k3 } => {
                (PLUMB_BOB, [k1, k2, p1, p2, k3].map(|c| c as f32))
            }
            Distortion::Equidistant { k1, k2, k3, k4 } => {
                (EQUIDISTANT, [k1, k2, k3, k4, 0.0].map(|c| c as f32))
            }
        };
        let mut lens = Self {
            fx: model.fx as f32,
            fy: model.fy as f32,
            cx: model.cx as f32,
            cy: model.cy as f32,
            width: model.width,
            height: model.height,
            kind,
            coeffs,
            max_r2: f32::MAX,
        };
        lens.max_r2 = lens.field_of_view_r2(|x, y| {
            let (x, y) = model.undistort(f64::from(x), f64::from(y));
            (x as f32, y as f32)
        });
        lens
    }

    /// The same camera seen at another resolution (intrinsics scaled about
    /// pixel edges, so the field of view is unchanged).
    #[must_use]
    pub fn scaled_to(&self, width: u32, height: u32) -> Self {
        let sx = width as f32 / self.width as f32;
        let sy = height as f32 / self.height as f32;
        Self {
            fx: self.fx * sx,
            fy: self.fy * sy,
            cx: (self.cx + 0.5) * sx - 0.5,
            cy: (self.cy + 0.5) * sy - 0.5,
            width,
            height,
            ..*self
        }
    }

    /// Largest squared ideal radius seen at the image border, with a margin.
    fn field_of_view_r2(&self, undistort: impl Fn(f32, f32) -> (f32, f32)) -> f32 {
        let (w, h) = (self.width as f32, self.height as f32);
        let mut r2 = 0.0f32;
        for (u, v) in [
            (-0.5, -0.5),
            (w - 0.5, -0.5),
            (-0.5, h - 0.5),
            (w - 0.5, h - 0.5),
            (w / 2.0, -0.5),
            (-0.5, h / 2.0),
        ] {
            let (x, y) = undistort((u - self.cx) / self.fx, (v - self.cy) / self.fy);
            r2 = r2.max(x * x + y * y);
        }
        r2 * 1.21
    }

    /// Distorted normalised coordinates of ideal ones (the same arithmetic
    /// as the CUDA `distort`).
    #[must_use]
    #[inline]
    pub fn distort(&self, x: f32, y: f32) -> (f32, f32) {
        let k = &self.coeffs;
        match self.kind {
            PLUMB_BOB => {
                let r2 = x * x + y * y;
                let radial = 1.0 + r2 * (k[0] + r2 * (k[1] + r2 * k[4]));
                (
                    x * radial + 2.0 * k[2] * x * y + k[3] * (r2 + 2.0 * x * x),
                    y * radial + k[2] * (r2 + 2.0 * y * y) + 2.0 * k[3] * x * y,
                )
            }
            EQUIDISTANT => {
                let r = (x * x + y * y).sqrt();
                if r < 1e-9 {
                    return (x, y);
                }
                let theta = r.atan();
                let t2 = theta * theta;
                let theta_d = theta * (1.0 + t2 * (k[0] + t2 * (k[1] + t2 * (k[2] + t2 * k[3]))));
                let s = theta_d / r;
                (x * s, y * s)
            }
            _ => (x, y),
        }
    }

    /// Pixel (u, v) of a point in the optical frame, `None` behind
    /// `min_depth_m` or outside the lens's field of view.
    #[must_use]
    #[inline]
    #[expect(clippy::neg_cmp_op_on_partial_ord, reason = "written so NaN fails each check")]
    pub fn project(&self, p: [f32; 3], min_depth_m: f32) -> Option<(f32, f32)> {
        if !(p[2] > min_depth_m) {
            return None;
        }
        let inv_z = 1.0 / p[2];
        let (x, y) = (p[0] * inv_z, p[1] * inv_z);
        if !(x * x + y * y <= self.max_r2) {
            return None;
        }
        let (xd, yd) = self.distort(x, y);
        Some((self.fx * xd + self.cx, self.fy * yd + self.cy))
    }

    /// The parameter block layout shared with CUDA: fx fy cx cy w h kind k[5] max_r2.
    #[cfg_attr(not(feature = "cuda"), allow(dead_code, reason = "parameter blocks for the CUDA kernels"))]
    pub(crate) fn write_params(&self, out: &mut [f32]) {
        out[..4].copy_from_slice(&[self.fx, self.fy, self.cx, self.cy]);
        out[4] = self.width as f32;
        out[5] = self.height as f32;
        out[6] = self.kind as f32;
        out[7..12].copy_from_slice(&self.coeffs);
        out[12] = self.max_r2;
    }
}

/// Number of floats [`Lens::write_params`] writes.
#[cfg_attr(not(feature = "cuda"), allow(dead_code, reason = "parameter blocks for the CUDA kernels"))]
pub(crate) const LENS_PARAMS: usize = 13;

/// A rigid transform as a row-major 3x4 f32 matrix [R | t].
#[must_use]
pub fn rigid_f32(iso: &Iso3) -> [f32; 12] {
    let m = iso.to_homogeneous();
    let mut out = [0.0f32; 12];
    for r in 0..3 {
        for c in 0..4 {
            out[r * 4 + c] = m[(r, c)] as f32;
        }
    }
    out
}

/// Applies a row-major 3x4 transform.
#[must_use]
#[inline]
pub fn apply_rigid(m: &[f32; 12], p: [f32; 3]) -> [f32; 3] {
    [
        m[0] * p[0] + m[1] * p[1] + m[2] * p[2] + m[3],
        m[4] * p[0] + m[5] * p[1] + m[6] * p[2] + m[7],
        m[8] * p[0] + m[9] * p[1] + m[10] * p[2] + m[11],
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scaling_keeps_the_field_of_view() {
        let lens = Lens::pinhole(500.0, 500.0, 319.5, 239.5, 640, 480);
        let quarter = lens.scaled_to(160, 120);
        assert_eq!((quarter.fx, quarter.cx, quarter.cy), (125.0, 79.5, 59.5));
        // A point on the optical axis lands on the centre of both images.
        let (u, v) = quarter.project([0.0, 0.0, 10.0], 0.1).unwrap();
        assert_eq!((u, v), (79.5, 59.5));
        // Points behind, or far outside the field of view, are refused.
        assert!(lens.project([0.0, 0.0, -1.0], 0.1).is_none());
        assert!(lens.project([100.0, 0.0, 1.0], 0.1).is_none());
    }
}
