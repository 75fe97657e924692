//! Depth labels: sweeps projected into the label camera, accumulated over
//! neighbouring frames with moving objects and hidden points removed.

use nines_datasets::geometry::Iso3;
use nines_kernels::{DepthImage, Kernels, Lens, Projection, rigid_f32};

use super::source::Sweep;
use crate::error::Result;

/// Points nearer the camera than this are dropped (m).
pub const MIN_DEPTH_M: f32 = 0.5;

/// The camera labels are written for: where it is on the vehicle and its lens.
#[derive(Debug, Clone)]
pub struct LabelCamera {
    /// base_link <- label camera optical frame.
    pub base_from_camera: Iso3,
    /// Lens at the label resolution.
    pub lens: Lens,
    /// Neighbourhood radius (pixels) of the agreement and hidden-point tests.
    pub radius: i64,
}

/// Tunables of the depth label.
#[derive(Debug, Clone, Copy)]
pub struct DepthOptions {
    /// Sweeps on each side of the current one that are accumulated.
    pub accumulate: usize,
    /// An accumulated point agrees with the current sweep within
    /// `max(agree_m, agree_rel * z)`.
    pub agree_m: f32,
    /// See `agree_m`.
    pub agree_rel: f32,
    /// A point is hidden when a neighbour is nearer by more than this fraction.
    pub hidden_rel: f32,
}

impl Default for DepthOptions {
    fn default() -> Self {
        Self { accumulate: 4, agree_m: 0.3, agree_rel: 0.05, hidden_rel: 0.1 }
    }
}

/// The depth label of one frame, and the current sweep's alone (for the report).
#[derive(Debug)]
pub struct DepthLabel {
    /// Accumulated, filtered.
    pub accumulated: DepthImage,
    /// The current sweep only, filtered the same way.
    pub single: DepthImage,
}

/// Projects each sweep of `window` into the label camera at `map_from_base`
/// (the ego at capture time); `current` indexes the sweep nearest the frame.
pub fn depth_label(
    kernels: &Kernels,
    camera: &LabelCamera,
    map_from_base: &Iso3,
    window: &[&Sweep],
    current: usize,
    options: &DepthOptions,
) -> Result<DepthLabel> {
    let camera_from_map = (map_from_base * camera.base_from_camera).inverse();
    let project = |sweep: &Sweep| {
        let projection = Projection {
            camera_from_points: rigid_f32(&(camera_from_map * sweep.map_from_lidar)),
            lens: camera.lens,
            min_depth_m: MIN_DEPTH_M,
        };
        kernels.project_points(&sweep.points, &projection)
    };
    let current_depth = project(window[current])?;
    let mut accumulated = current_depth.clone();
    for (i, sweep) in window.iter().enumerate() {
        if i == current {
            continue;
        }
        let other = project(sweep)?;
        merge_agreeing(&mut accumulated, &current_depth, &other, camera.radius, options);
    }
    Ok(DepthLabel {
        accumulated: remove_hidden(&accumulated, camera.radius, options.hidden_rel),
        single: remove_hidden(&current_depth, camera.radius, options.hidden_rel),
    })
}

/// Keeps a pixel of `other` only where the current sweep has no return
/// nearby or one that agrees: what moved between sweeps disagrees.
fn merge_agreeing(
    into: &mut DepthImage,
    current: &DepthImage,
    other: &DepthImage,
    radius: i64,
    o: &DepthOptions,
) {
    let w = i64::from(other.width);
    for (i, &z) in other.depth_m.iter().enumerate() {
        if z <= 0.0 {
            continue;
        }
        let (col, row) = (i as i64 % w, i as i64 / w);
        let tolerance = o.agree_m.max(o.agree_rel * z);
        let (mut seen, mut agrees) = (false, false);
        for dr in -radius..=radius {
            for dc in -radius..=radius {
                let zc = current.at(col + dc, row + dr);
                if zc > 0.0 {
                    seen = true;
                    agrees |= (zc - z).abs() <= tolerance;
                }
            }
        }
        if !seen || agrees {
            let slot = &mut into.depth_m[i];
            *slot = if *slot > 0.0 { slot.min(z) } else { z };
        }
    }
}

/// Drops pixels with a markedly nearer neighbour: the lidar, mounted
/// elsewhere than the camera, sees surfaces the camera cannot, and they
/// show through gaps between the returns of what hides them.
fn remove_hidden(depth: &DepthImage, radius: i64, hidden_rel: f32) -> DepthImage {
    let w = i64::from(depth.width);
    let mut out = depth.clone();
    for (i, &z) in depth.depth_m.iter().enumerate() {
        if z <= 0.0 {
            continue;
        }
        let (col, row) = (i as i64 % w, i as i64 / w);
        let mut nearest = z;
        for dr in -radius..=radius {
            for dc in -radius..=radius {
                let n = depth.at(col + dc, row + dr);
                if n > 0.0 {
                    nearest = nearest.min(n);
                }
            }
        }
        if z > nearest * (1.0 + hidden_rel) {
            out.depth_m[i] = 0.0;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image(values: &[f32], width: u32) -> DepthImage {
        DepthImage { width, height: values.len() as u32 / width, depth_m: values.to_vec() }
    }

    #[test]
    fn moving_points_are_dropped_static_ones_kept() {
        let current = image(&[10.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 20.0], 6);
        // Next to a current 10 m return: 10.2 agrees, 14 moved. Far from any current return: kept.
        let other = image(&[0.0, 10.2, 0.0, 0.0, 0.0, 0.0, 14.0, 0.0, 0.0, 7.0, 0.0, 0.0], 6);
        let mut merged = current.clone();
        merge_agreeing(&mut merged, &current, &other, 1, &DepthOptions::default());
        assert!((merged.depth_m[1] - 10.2).abs() < 1e-6);
        assert!(merged.depth_m[6] == 0.0, "a point that moved is dropped");
        assert!((merged.depth_m[9] - 7.0).abs() < 1e-6, "no current return near: kept");
    }

    #[test]
    fn background_showing_through_is_removed() {
        let depth = image(&[5.0, 30.0, 5.1, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 40.0], 5);
        let out = remove_hidden(&depth, 1, 0.1);
        assert!(out.depth_m[1] == 0.0 && out.depth_m[0] > 0.0 && out.depth_m[2] > 0.0);
        assert!(out.depth_m[9] > 0.0, "no nearer neighbour");
    }
}
