//! An RGB image warped into the model's virtual camera, resized and
//! normalised to planar (NCHW) f32. CPU reference (rayon).
//!
//! Both cameras share one optical centre, so the mapping from a virtual
//! pixel to a real ray is the homography R K_v^-1; the real lens's
//! distortion is applied after it, per pixel. When the output is smaller
//! than the source, each output pixel averages a grid of samples (up to
//! 4x4) so a downscale does not alias.

use nalgebra::Matrix3;
use nines_datasets::calib::CameraModel;
use nines_datasets::contract::ModelContract;
use nines_datasets::geometry::Iso3;
use rayon::prelude::*;

use crate::lens::{LENS_PARAMS, Lens};

/// An 8-bit RGB image, row-major, 3 bytes a pixel.
#[derive(Debug, Clone, Copy)]
pub struct RgbView<'a> {
    /// Columns.
    pub width: u32,
    /// Rows.
    pub height: u32,
    /// `width * height * 3` bytes.
    pub data: &'a [u8],
}

/// How output values are made from 0..255 samples: `sample * scale + offset`,
/// and `fill` where the virtual camera sees outside the real image.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Normalisation {
    /// Per channel multiplier.
    pub scale: [f32; 3],
    /// Per channel offset.
    pub offset: [f32; 3],
    /// Per channel value outside the real image.
    pub fill: [f32; 3],
}

impl Normalisation {
    /// The contract's `(pixel / 255 - mean) / std`; outside the image, 0 (the mean).
    #[must_use]
    pub fn of_contract(contract: &ModelContract) -> Self {
        let (scale, offset) = contract.input.pixel_affine();
        Self { scale, offset, fill: [0.0; 3] }
    }

    /// Pixel values as they are (0..255), black outside the image: for u8 label images.
    #[must_use]
    pub fn raw() -> Self {
        Self { scale: [1.0; 3], offset: [0.0; 3], fill: [0.0; 3] }
    }
}

/// Everything the warp needs.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct WarpSpec {
    /// Virtual pixel (u, v, 1) to a ray in the real optical frame, row-major 3x3.
    pub ray_from_pixel: [f32; 9],
    /// The real camera at its own resolution.
    pub real: Lens,
    /// Output columns.
    pub out_width: u32,
    /// Output rows.
    pub out_height: u32,
    /// Samples per axis averaged into one output pixel (1..=4).
    pub samples_per_axis: u32,
    /// Value mapping.
    pub normalisation: Normalisation,
}

/// Number of floats in the parameter block.
#[cfg_attr(not(feature = "cuda"), allow(dead_code, reason = "parameter blocks for the CUDA kernels"))]
pub(crate) const WARP_PARAMS: usize = 9 + LENS_PARAMS + 4 + 9;

impl WarpSpec {
    /// Real camera `real`, mounted at `base_link_from_real`, into the
    /// contract's virtual camera at the input resolution.
    #[must_use]
    pub fn to_virtual(
        contract: &ModelContract,
        real: &CameraModel,
        base_link_from_real: &Iso3,
        normalisation: Normalisation,
    ) -> Self {
        let real_from_virtual =
            base_link_from_real.rotation.inverse() * contract.camera.base_link_from_optical_rotation();
        let k_inv = contract.camera.k().try_inverse().unwrap_or_else(Matrix3::identity);
        let m = real_from_virtual.to_rotation_matrix().matrix() * k_inv;
        let mut ray_from_pixel = [0.0f32; 9];
        for r in 0..3 {
            for c in 0..3 {
                ray_from_pixel[r * 3 + c] = m[(r, c)] as f32;
            }
        }
        // Real pixels per virtual pixel, so a downscale averages enough samples.
        let ratio = (real.fx / contract.camera.fx).max(real.fy / contract.camera.fy);
        Self {
            ray_from_pixel,
            real: Lens::from_model(real),
            out_width: contract.input.width,
            out_height: contract.input.height,
            samples_per_axis: ratio.ceil().clamp(1.0, 4.0) as u32,
            normalisation,
        }
    }

    /// The parameter block the CUDA kernel reads.
    #[cfg_attr(not(feature = "cuda"), allow(dead_code, reason = "parameter blocks for the CUDA kernels"))]
    pub(crate) fn params(&self) -> [f32; WARP_PARAMS] {
        let mut out = [0.0f32; WARP_PARAMS];
        out[..9].copy_from_slice(&self.ray_from_pixel);
        self.real.write_params(&mut out[9..9 + LENS_PARAMS]);
        let rest = 9 + LENS_PARAMS;
        out[rest] = self.out_width as f32;
        out[rest + 1] = self.out_height as f32;
        out[rest + 2] = self.samples_per_axis as f32;
        out[rest + 3] = 0.0;
        let n = &self.normalisation;
        out[rest + 4..rest + 7].copy_from_slice(&n.scale);
        out[rest + 7..rest + 10].copy_from_slice(&n.offset);
        out[rest + 10..rest + 13].copy_from_slice(&n.fill);
        out
    }

    /// Output length: 3 planes of `out_width * out_height`.
    #[must_use]
    pub fn output_len(&self) -> usize {
        3 * self.out_width as usize * self.out_height as usize
    }
}

/// Bilinear sample of channel values at real pixel (u, v); `None` outside.
#[inline]
fn bilinear(src: &RgbView<'_>, u: f32, v: f32) -> Option<[f32; 3]> {
    let (w, h) = (src.width as f32, src.height as f32);
    if !(u >= -0.5 && v >= -0.5 && u <= w - 0.5 && v <= h - 0.5) {
        return None;
    }
    let (x0, y0) = (u.floor(), v.floor());
    let (ax, ay) = (u - x0, v - y0);
    let clamp = |x: f32, n: u32| x.clamp(0.0, (n - 1) as f32) as usize;
    let (xa, xb) = (clamp(x0, src.width), clamp(x0 + 1.0, src.width));
    let (ya, yb) = (clamp(y0, src.height), clamp(y0 + 1.0, src.height));
    let stride = src.width as usize * 3;
    let px = |x: usize, y: usize, c: usize| f32::from(src.data[y * stride + x * 3 + c]);
    Some([0, 1, 2].map(|c| {
        let top = px(xa, ya, c) + ax * (px(xb, ya, c) - px(xa, ya, c));
        let bottom = px(xa, yb, c) + ax * (px(xb, yb, c) - px(xa, yb, c));
        top + ay * (bottom - top)
    }))
}

/// One output pixel's channel values (the arithmetic of the CUDA `warp` kernel).
#[inline]
fn warp_pixel(src: &RgbView<'_>, spec: &WarpSpec, col: u32, row: u32) -> [f32; 3] {
    let m = &spec.ray_from_pixel;
    let n = spec.samples_per_axis;
    let step = 1.0 / n as f32;
    let mut sum = [0.0f32; 3];
    let mut count = 0u32;
    for j in 0..n {
        let v = row as f32 + (j as f32 + 0.5) * step - 0.5;
        for i in 0..n {
            let u = col as f32 + (i as f32 + 0.5) * step - 0.5;
            let ray = [m[0] * u + m[1] * v + m[2], m[3] * u + m[4] * v + m[5], m[6] * u + m[7] * v + m[8]];
            let Some((us, vs)) = spec.real.project(ray, 1e-6) else { continue };
            if let Some(rgb) = bilinear(src, us, vs) {
                for c in 0..3 {
                    sum[c] += rgb[c];
                }
                count += 1;
            }
        }
    }
    let norm = &spec.normalisation;
    if count == 0 {
        return norm.fill;
    }
    let inv = 1.0 / count as f32;
    [0, 1, 2].map(|c| sum[c] * inv * norm.scale[c] + norm.offset[c])
}

/// CPU reference: fills `out` (3 planes, [`WarpSpec::output_len`]).
///
/// # Panics
/// If `out` or `src.data` have the wrong length (a programming error: the
/// public [`crate::Kernels::warp_image`] checks both first).
pub fn warp_image_cpu(src: &RgbView<'_>, spec: &WarpSpec, out: &mut [f32]) {
    let plane = spec.out_width as usize * spec.out_height as usize;
    assert_eq!(out.len(), 3 * plane, "output length");
    assert_eq!(src.data.len(), src.width as usize * src.height as usize * 3, "source length");
    let (r, rest) = out.split_at_mut(plane);
    let (g, b) = rest.split_at_mut(plane);
    let width = spec.out_width as usize;
    r.par_chunks_mut(width)
        .zip(g.par_chunks_mut(width))
        .zip(b.par_chunks_mut(width))
        .enumerate()
        .for_each(|(row, ((r, g), b))| warp_row(src, spec, row, r, g, b));
}

/// A warp precomputed for one camera: for every output pixel, the source
/// bytes and weights its supersampled bilinear samples read (taps at the same
/// source pixel merged). The projection through the real lens is done once,
/// at start-up; a frame is then a weighted gather. The same arithmetic as
/// [`warp_image_cpu`] up to float summation order. Like OpenCV's
/// `initUndistortRectifyMap` + `remap`, written here because the map must
/// carry our supersampling and normalisation, and the onboard hot loop must
/// not allocate.
#[derive(Debug, Clone)]
pub struct WarpMap {
    spec: WarpSpec,
    src_size: (u32, u32),
    /// Per output pixel, its taps are `taps[starts[i]..starts[i + 1]]`.
    starts: Vec<u32>,
    /// (byte offset of the source pixel's red, weight); weights sum to 1.
    taps: Vec<(u32, f32)>,
}

impl WarpMap {
    /// The map of `spec` for a `width` x `height` source.
    #[must_use]
    pub fn new(spec: &WarpSpec, width: u32, height: u32) -> Self {
        let m = &spec.ray_from_pixel;
        let n = spec.samples_per_axis;
        let step = 1.0 / n as f32;
        let (w, h) = (width as f32, height as f32);
        let mut starts = Vec::with_capacity(spec.out_width as usize * spec.out_height as usize + 1);
        let mut taps: Vec<(u32, f32)> = Vec::new();
        let mut pixel: Vec<(u32, f32)> = Vec::new();
        starts.push(0);
        for row in 0..spec.out_height {
            for col in 0..spec.out_width {
                pixel.clear();
                let mut count = 0u32;
                for j in 0..n {
                    let v = row as f32 + (j as f32 + 0.5) * step - 0.5;
                    for i in 0..n {
                        let u = col as f32 + (i as f32 + 0.5) * step - 0.5;
                        let ray = [
                            m[0] * u + m[1] * v + m[2],
                            m[3] * u + m[4] * v + m[5],
                            m[6] * u + m[7] * v + m[8],
                        ];
                        let Some((us, vs)) = spec.real.project(ray, 1e-6) else { continue };
                        if !(us >= -0.5 && vs >= -0.5 && us <= w - 0.5 && vs <= h - 0.5) {
                            continue;
                        }
                        count += 1;
                        let (x0, y0) = (us.floor(), vs.floor());
                        let (ax, ay) = (us - x0, vs - y0);
                        let clamp = |x: f32, n: u32| x.clamp(0.0, (n - 1) as f32) as u32;
                        let (xa, xb) = (clamp(x0, width), clamp(x0 + 1.0, width));
                        let (ya, yb) = (clamp(y0, height), clamp(y0 + 1.0, height));
                        for (x, y, wt) in [
                            (xa, ya, (1.0 - ax) * (1.0 - ay)),
                            (xb, ya, ax * (1.0 - ay)),
                            (xa, yb, (1.0 - ax) * ay),
                            (xb, yb, ax * ay),
                        ] {
                            pixel.push(((y * width + x) * 3, wt));
                        }
                    }
                }
                if count > 0 {
                    pixel.sort_by_key(|t| t.0);
                    let inv = 1.0 / count as f32;
                    let mut merged: Option<(u32, f32)> = None;
                    for &(offset, wt) in &pixel {
                        match &mut merged {
                            Some((o, acc)) if *o == offset => *acc += wt,
                            _ => {
                                if let Some((o, acc)) = merged.take().filter(|(_, a)| *a > 0.0) {
                                    taps.push((o, acc * inv));
                                }
                                merged = Some((offset, wt));
                            }
                        }
                    }
                    if let Some((o, acc)) = merged.filter(|(_, a)| *a > 0.0) {
                        taps.push((o, acc * inv));
                    }
                }
                starts.push(taps.len() as u32);
            }
        }
        Self { spec: *spec, src_size: (width, height), starts, taps }
    }

    /// The source size the map was made for.
    #[must_use]
    pub fn source_size(&self) -> (u32, u32) {
        self.src_size
    }

    /// Warps `src` (packed RGB8 of the map's source size) into `out` (3
    /// planes of the spec's output size). Allocates nothing.
    pub fn apply(&self, src: &[u8], out: &mut [f32]) -> Result<(), crate::KernelError> {
        let view = RgbView { width: self.src_size.0, height: self.src_size.1, data: src };
        crate::check_warp_lengths(&view, &self.spec, out)?;
        let plane = self.starts.len() - 1;
        let (r, rest) = out.split_at_mut(plane);
        let (g, b) = rest.split_at_mut(plane);
        let norm = &self.spec.normalisation;
        for (i, bounds) in self.starts.windows(2).enumerate() {
            let taps = &self.taps[bounds[0] as usize..bounds[1] as usize];
            if taps.is_empty() {
                [r[i], g[i], b[i]] = norm.fill;
                continue;
            }
            let mut sum = [0.0f32; 3];
            for &(offset, wt) in taps {
                let o = offset as usize;
                sum[0] += wt * f32::from(src[o]);
                sum[1] += wt * f32::from(src[o + 1]);
                sum[2] += wt * f32::from(src[o + 2]);
            }
            r[i] = sum[0] * norm.scale[0] + norm.offset[0];
            g[i] = sum[1] * norm.scale[1] + norm.offset[1];
            b[i] = sum[2] * norm.scale[2] + norm.offset[2];
        }
        Ok(())
    }
}

/// One output row into the three planes' rows.
fn warp_row(src: &RgbView<'_>, spec: &WarpSpec, row: usize, r: &mut [f32], g: &mut [f32], b: &mut [f32]) {
    for col in 0..r.len() {
        let [vr, vg, vb] = warp_pixel(src, spec, col as u32, row as u32);
        r[col] = vr;
        g[col] = vg;
        b[col] = vb;
    }
}

#[cfg(test)]
#[expect(clippy::float_cmp, reason = "the values are exact by construction")]
mod tests {
    use super::*;

    #[test]
    fn the_precomputed_map_matches_the_reference_warp() {
        // A distorted 64x40 camera, looked at by a smaller, tilted virtual one, with supersampling.
        let mut real = Lens::pinhole(40.0, 40.0, 31.5, 19.5, 64, 40);
        real.kind = 1;
        real.coeffs = [-0.2, 0.05, 0.001, -0.001, 0.0];
        real.max_r2 = 4.0;
        let spec = WarpSpec {
            ray_from_pixel: [0.05, 0.0, -0.4, 0.002, 0.05, -0.25, 0.0, 0.01, 1.0],
            real,
            out_width: 16,
            out_height: 10,
            samples_per_axis: 3,
            normalisation: Normalisation {
                scale: [0.01, 0.02, 0.03],
                offset: [-1.0, 0.5, 0.0],
                fill: [7.0; 3],
            },
        };
        let data: Vec<u8> = (0..64 * 40 * 3).map(|i| ((i * 37) % 251) as u8).collect();
        let mut reference = vec![0.0; spec.output_len()];
        warp_image_cpu(&RgbView { width: 64, height: 40, data: &data }, &spec, &mut reference);
        let mut mapped = vec![0.0; spec.output_len()];
        WarpMap::new(&spec, 64, 40).apply(&data, &mut mapped).expect("apply");
        for (a, b) in mapped.iter().zip(&reference) {
            assert!((a - b).abs() < 1e-4, "{a} vs {b}");
        }
    }

    #[test]
    fn identity_warp_copies_and_normalises() {
        // 4x2 source, virtual camera = real camera: output equals input.
        let data: Vec<u8> = (0..24).map(|i| (i * 10) as u8).collect();
        let src = RgbView { width: 4, height: 2, data: &data };
        let lens = Lens::pinhole(2.0, 2.0, 1.5, 0.5, 4, 2);
        let k_inv = [0.5, 0.0, -0.75, 0.0, 0.5, -0.25, 0.0, 0.0, 1.0];
        let spec = WarpSpec {
            ray_from_pixel: k_inv,
            real: lens,
            out_width: 4,
            out_height: 2,
            samples_per_axis: 1,
            normalisation: Normalisation { scale: [0.5; 3], offset: [-1.0; 3], fill: [9.0; 3] },
        };
        let mut out = vec![0.0; spec.output_len()];
        warp_image_cpu(&src, &spec, &mut out);
        // Pixel (col 1, row 1), green: source byte (1 * 4 + 1) * 3 + 1 = 16 -> 160 * 0.5 - 1.
        assert!((out[8 + 4 + 1] - 79.0).abs() < 1e-4, "{out:?}");
        // Red of pixel (0, 0): 0 * 0.5 - 1.
        assert!((out[0] + 1.0).abs() < 1e-4);
        // A virtual camera turned far away sees nothing: fill.
        let away = WarpSpec { ray_from_pixel: [0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0, 0.0, -1.0], ..spec };
        warp_image_cpu(&src, &away, &mut out);
        assert!(out.iter().all(|v| *v == 9.0));
    }
}
