//! Camera frame -> the model's input: the real camera warped into the
//! contract's virtual camera and normalised (the kernels crate's warp, the
//! same arithmetic distillation used to make the training images), kept in a
//! ring of recent frames, and stacked newest first at the contract's spacing,
//! exactly as training stacked them.
//!
//! The warp is precomputed for the camera at start-up ([`WarpMap`]: the lens
//! projection once, a weighted gather per frame) and runs on the calling
//! thread: the control thread must not hand work to a thread pool whose
//! queues allocate.

use nines_datasets::calib::CameraModel;
use nines_datasets::contract::{History, InputSpec, ModelContract};
use nines_datasets::geometry::Iso3;
use nines_kernels::{Normalisation, WarpMap, WarpSpec};

/// A frame as the camera delivered it.
#[derive(Debug, Clone, Copy)]
pub struct FrameRef<'a> {
    /// Capture stamp, ns since the epoch (the source's clock).
    pub stamp_ns: u64,
    /// Packed RGB8, `width * height * 3` bytes; `None` when the frame could
    /// not be decoded (a corrupt JPEG), which the safety monitor counts.
    pub rgb: Option<&'a [u8]>,
    /// Columns.
    pub width: u32,
    /// Rows.
    pub height: u32,
}

/// Warps frames into a ring and stacks them into the input tensor.
#[derive(Debug)]
pub struct Preprocessor {
    map: WarpMap,
    input: InputSpec,
    ring: Vec<f32>,
    stamps: Vec<Option<u64>>,
    /// The ring slots of the last stack, newest first (allocated once).
    picked: Vec<usize>,
    next: usize,
    plane: usize,
}

impl Preprocessor {
    /// For a camera `real` mounted at `base_link_from_camera`, expected at
    /// about `fps`.
    #[must_use]
    pub fn new(contract: &ModelContract, real: &CameraModel, base_link_from_camera: &Iso3, fps: f64) -> Self {
        let spec =
            WarpSpec::to_virtual(contract, real, base_link_from_camera, Normalisation::of_contract(contract));
        let frames = contract.input.frames.max(1) as usize;
        let spacing_s = contract.input.frame_spacing_secs;
        // Enough slots to reach the oldest history frame at the camera's rate, plus slack for jitter.
        let slots = ((frames - 1) as f64 * spacing_s * fps.max(1.0)).ceil() as usize + 3;
        let plane = spec.output_len();
        Self {
            map: WarpMap::new(&spec, real.width, real.height),
            input: contract.input.clone(),
            ring: vec![0.0; slots * plane],
            stamps: vec![None; slots],
            picked: vec![0; frames],
            next: 0,
            plane,
        }
    }

    /// Warps `rgb` (taken at `stamp_ns`) into the ring.
    pub fn push(&mut self, stamp_ns: u64, rgb: &[u8], width: u32, height: u32) -> crate::Result<()> {
        let expected = self.map.source_size();
        if (width, height) != expected {
            return Err(crate::OnboardError::Source {
                source_name: "camera".into(),
                detail: format!(
                    "frame of {width}x{height} but the calibration is for {}x{}; fix [camera.calibration] or the source",
                    expected.0, expected.1
                ),
            });
        }
        let slot = self.next;
        let out = &mut self.ring[slot * self.plane..(slot + 1) * self.plane];
        self.map.apply(rgb, out)?;
        self.stamps[slot] = Some(stamp_ns);
        self.next = (slot + 1) % self.stamps.len();
        Ok(())
    }

    /// Writes the stack for the newest frame into `input` ([3F, H, W]), the
    /// frames chosen by the contract's history rule ([`InputSpec::history`]),
    /// the same rule training stacked with.
    pub fn stack(&mut self, input: &mut [f32]) -> History {
        let newest = (self.next + self.stamps.len() - 1) % self.stamps.len();
        let Some(now) = self.stamps[newest] else {
            return History { worst_gap_secs: f64::INFINITY, complete: false };
        };
        let candidates = self.stamps.iter().map(|s| s.map(|ns| ns as i64));
        let history = self.input.history(now as i64, &candidates, &mut self.picked);
        if history.worst_gap_secs.is_finite() {
            for (k, &slot) in self.picked.iter().enumerate() {
                input[k * self.plane..(k + 1) * self.plane]
                    .copy_from_slice(&self.ring[slot * self.plane..(slot + 1) * self.plane]);
            }
        }
        history
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nines_datasets::msg::CameraInfo;

    fn camera() -> (CameraModel, Iso3) {
        let info = CameraInfo {
            width: 64,
            height: 32,
            distortion_model: "plumb_bob".into(),
            d: vec![0.0; 5],
            k: [32.0, 0.0, 32.0, 0.0, 32.0, 16.0, 0.0, 0.0, 1.0],
            ..CameraInfo::default()
        };
        let mount = crate::config::Mounting {
            x_m: 1.0,
            y_m: 0.0,
            z_m: 1.0,
            pitch_down_deg: 0.0,
            roll_deg: 0.0,
            yaw_left_deg: 0.0,
        };
        (CameraModel::from_camera_info(&info, "test").expect("camera"), mount.base_link_from_optical())
    }

    #[test]
    fn stacks_newest_first_at_the_contract_spacing() {
        let mut contract = ModelContract::default();
        contract.input.width = 16;
        contract.input.height = 8;
        contract.camera.fx = 8.0;
        contract.camera.fy = 8.0;
        contract.camera.cx = 7.5;
        contract.camera.cy = 3.5;
        contract.input.frames = 2;
        let (cam, mount) = camera();
        let mut p = Preprocessor::new(&contract, &cam, &mount, 20.0);
        let plane = 3 * 16 * 8;
        let mut input = vec![0.0; 2 * plane];
        // Frames at 20 Hz whose brightness encodes their index.
        for i in 0..6u64 {
            let rgb = vec![(i * 40) as u8; 64 * 32 * 3];
            p.push(i * 50_000_000, &rgb, 64, 32).expect("push");
        }
        let q = p.stack(&mut input);
        assert!(q.complete && q.worst_gap_secs < 1e-9, "{q:?}");
        // Newest (index 5) first, then the frame 100 ms earlier (index 3).
        let level = |i: u64| (i * 40) as f32 / 255.0;
        let (mean, std) = (contract.input.mean[0], contract.input.std[0]);
        assert!((input[0] - (level(5) - mean) / std).abs() < 1e-4, "{}", input[0]);
        assert!((input[plane] - (level(3) - mean) / std).abs() < 1e-4, "{}", input[plane]);
        // A frame of the wrong size is refused with the fix.
        let err = p.push(0, &[0; 12], 2, 2).expect_err("size").to_string();
        assert!(err.contains("camera.calibration"), "{err}");
    }

    #[test]
    fn a_missing_history_frame_makes_the_stack_incomplete() {
        let (cam, mount) = camera();
        let mut p = Preprocessor::new(&ModelContract::default(), &cam, &mount, 10.0);
        let mut input = vec![0.0; 2 * 3 * 256 * 128];
        p.push(1_000_000_000, &vec![0; 64 * 32 * 3], 64, 32).expect("push");
        let q = p.stack(&mut input);
        assert!(!q.complete);
    }
}
