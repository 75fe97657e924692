//! Points into a camera with a z-buffer: each pixel keeps the nearest
//! point's camera z (0 where no point falls). CPU reference (rayon).
//!
//! The z-buffer holds `!z.to_bits()` and keeps the maximum: positive floats
//! order like their bit patterns, so the largest complement is the nearest
//! point, and a zero-filled buffer means "empty" with no sentinel pass (the
//! CUDA kernel does the same with `atomicMax`). The result does not depend on
//! the order threads run in.

use std::sync::atomic::{AtomicU32, Ordering};

use rayon::prelude::*;

use crate::lens::{LENS_PARAMS, Lens, apply_rigid};

/// Points handled per rayon task.
const CHUNK: usize = 16 * 1024;

/// Where the points go: the transform into the camera's optical frame and the lens.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Projection {
    /// `camera_from_points`, row-major 3x4.
    pub camera_from_points: [f32; 12],
    /// The camera, at the output resolution.
    pub lens: Lens,
    /// Points nearer than this (camera z, m) are dropped.
    pub min_depth_m: f32,
}

/// Number of floats in the parameter block.
#[cfg_attr(not(feature = "cuda"), allow(dead_code, reason = "parameter blocks for the CUDA kernels"))]
pub(crate) const PROJECTION_PARAMS: usize = 12 + LENS_PARAMS + 1;

impl Projection {
    /// The parameter block the CUDA kernel reads: transform, lens, min depth.
    #[cfg_attr(not(feature = "cuda"), allow(dead_code, reason = "parameter blocks for the CUDA kernels"))]
    pub(crate) fn params(&self) -> [f32; PROJECTION_PARAMS] {
        let mut out = [0.0f32; PROJECTION_PARAMS];
        out[..12].copy_from_slice(&self.camera_from_points);
        self.lens.write_params(&mut out[12..12 + LENS_PARAMS]);
        out[12 + LENS_PARAMS] = self.min_depth_m;
        out
    }

    /// Flat pixel index and camera z of one point, if it lands in the image.
    #[inline]
    #[must_use]
    pub fn pixel(&self, point: [f32; 3]) -> Option<(usize, f32)> {
        let c = apply_rigid(&self.camera_from_points, point);
        let (u, v) = self.lens.project(c, self.min_depth_m)?;
        let (col, row) = ((u + 0.5).floor(), (v + 0.5).floor());
        let (w, h) = (self.lens.width as f32, self.lens.height as f32);
        if !(col >= 0.0 && row >= 0.0 && col < w && row < h) {
            return None;
        }
        Some((row as usize * self.lens.width as usize + col as usize, c[2]))
    }
}

/// A depth image: camera z in metres, 0 where unknown, row-major.
#[derive(Debug, Clone, PartialEq)]
pub struct DepthImage {
    /// Columns.
    pub width: u32,
    /// Rows.
    pub height: u32,
    /// `width * height` depths, m.
    pub depth_m: Vec<f32>,
}

impl DepthImage {
    /// An image with no depth anywhere.
    #[must_use]
    pub fn empty(width: u32, height: u32) -> Self {
        Self { width, height, depth_m: vec![0.0; width as usize * height as usize] }
    }

    /// Depth at (col, row), 0 if unknown or outside.
    #[must_use]
    pub fn at(&self, col: i64, row: i64) -> f32 {
        if col < 0 || row < 0 || col >= i64::from(self.width) || row >= i64::from(self.height) {
            return 0.0;
        }
        self.depth_m[row as usize * self.width as usize + col as usize]
    }

    /// Fraction of pixels with depth.
    #[must_use]
    pub fn coverage(&self) -> f64 {
        let known = self.depth_m.iter().filter(|d| **d > 0.0).count();
        known as f64 / self.depth_m.len().max(1) as f64
    }

    /// Decodes a z-buffer of complemented bit patterns.
    #[must_use]
    pub(crate) fn from_zbuffer(width: u32, height: u32, zbuf: impl Iterator<Item = u32>) -> Self {
        let depth_m = zbuf.map(|v| if v == 0 { 0.0 } else { f32::from_bits(!v) }).collect();
        Self { width, height, depth_m }
    }
}

/// CPU reference: every point projected, nearest wins per pixel.
#[must_use]
pub fn project_points_cpu(points: &[[f32; 3]], projection: &Projection) -> DepthImage {
    let (w, h) = (projection.lens.width, projection.lens.height);
    let zbuf: Vec<AtomicU32> = (0..w as usize * h as usize).map(|_| AtomicU32::new(0)).collect();
    points.par_chunks(CHUNK).for_each(|chunk| {
        for p in chunk {
            if let Some((i, z)) = projection.pixel(*p) {
                // A plain load first: most points lose to what is there, and
                // x86 has no atomic max, only a compare-exchange loop.
                let key = !z.to_bits();
                if key > zbuf[i].load(Ordering::Relaxed) {
                    zbuf[i].fetch_max(key, Ordering::Relaxed);
                }
            }
        }
    });
    DepthImage::from_zbuffer(w, h, zbuf.into_iter().map(AtomicU32::into_inner))
}

#[cfg(test)]
#[expect(clippy::float_cmp, reason = "the values are exact by construction")]
mod tests {
    use super::*;

    fn identity() -> [f32; 12] {
        [1.0, 0.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0, 1.0, 0.0]
    }

    #[test]
    fn nearest_point_wins_and_the_rest_is_empty() {
        let lens = Lens::pinhole(10.0, 10.0, 1.5, 1.5, 4, 4);
        let projection = Projection { camera_from_points: identity(), lens, min_depth_m: 0.1 };
        // Two points on the axis land in pixel (2, 2) (u = 1.5 rounds up); the nearer stays.
        let points = [[0.0, 0.0, 5.0], [0.0, 0.0, 3.0], [0.0, 0.0, -3.0], [1.0, 0.0, 10.0]];
        let depth = project_points_cpu(&points, &projection);
        assert_eq!(depth.at(2, 2), 3.0);
        // x = 0.1 -> u = 1.5 + 1 = 2.5 -> column 3.
        assert_eq!(depth.at(3, 2), 10.0);
        assert_eq!(depth.depth_m.iter().filter(|d| **d > 0.0).count(), 2);
        // A translated camera sees the points 1 m farther.
        let mut moved = projection;
        moved.camera_from_points[11] = 1.0;
        assert_eq!(project_points_cpu(&points, &moved).at(2, 2), 4.0);
    }
}
