//! The model contract (DESIGN.md section 3): what the camera-only network
//! sees and predicts. Distillation writes it into the label index, training
//! refuses labels made under another contract, export writes it into the
//! ONNX model and the onboard runtime reads it from there. One type, so the
//! four can never drift apart.

use std::path::Path;

use nalgebra::{Matrix3, Rotation3, UnitQuaternion};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::{DatasetError, Result};
use crate::geometry::Iso3;

/// Version of the contract's meaning; bumped when a field changes sense.
pub const CONTRACT_VERSION: u32 = 1;

/// What the network takes and gives. Every field has a default, so a
/// contract file names only what it changes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ModelContract {
    /// [`CONTRACT_VERSION`] when written.
    pub version: u32,
    /// The input tensor.
    pub input: InputSpec,
    /// The virtual camera every real camera is warped into.
    pub camera: VirtualCamera,
    /// Depth output and label: the input size divided by this.
    pub label_stride: u32,
    /// Plan output and label: future times, s, strictly increasing.
    pub plan_times_secs: Vec<f64>,
}

/// The image input: `image` f32 [1, 3 * frames, height, width].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct InputSpec {
    /// Columns, pixels.
    pub width: u32,
    /// Rows, pixels.
    pub height: u32,
    /// Frames stacked along channels, newest first.
    pub frames: u32,
    /// Time between stacked frames, s.
    pub frame_spacing_secs: f64,
    /// Per-channel (R, G, B) mean of pixel / 255, subtracted before dividing by `std`.
    pub mean: [f32; 3],
    /// Per-channel standard deviation of pixel / 255.
    pub std: [f32; 3],
}

/// A pinhole camera (no distortion) at the input resolution. It keeps the
/// real camera's optical centre (a warp by homography cannot move it) and
/// replaces its lens and orientation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct VirtualCamera {
    /// Focal length x, pixels at the input resolution.
    pub fx: f64,
    /// Focal length y, pixels.
    pub fy: f64,
    /// Principal point x, pixels (OpenCV convention: 0 is the first pixel's centre).
    pub cx: f64,
    /// Principal point y, pixels.
    pub cy: f64,
    /// Downward tilt of the optical axis from level, degrees.
    pub pitch_down_deg: f64,
    /// Rotation of the image about the optical axis, degrees (positive: clockwise as seen).
    pub roll_deg: f64,
    /// Turn of the optical axis to the left of base_link x, degrees.
    pub yaw_left_deg: f64,
}

impl Default for ModelContract {
    fn default() -> Self {
        Self {
            version: CONTRACT_VERSION,
            input: InputSpec::default(),
            camera: VirtualCamera::default(),
            label_stride: 4,
            plan_times_secs: vec![0.5, 1.0, 1.5, 2.0, 2.5, 3.0],
        }
    }
}

impl Default for InputSpec {
    fn default() -> Self {
        Self {
            width: 256,
            height: 128,
            frames: 2,
            frame_spacing_secs: 0.1,
            mean: [0.485, 0.456, 0.406],
            std: [0.229, 0.224, 0.225],
        }
    }
}

impl Default for VirtualCamera {
    /// 90 degrees across a 256-pixel-wide input, level, straight ahead.
    fn default() -> Self {
        Self {
            fx: 128.0,
            fy: 128.0,
            cx: 127.5,
            cy: 63.5,
            pitch_down_deg: 0.0,
            roll_deg: 0.0,
            yaw_left_deg: 0.0,
        }
    }
}

/// The model's input tensors, in the order the network takes them: `image`
/// f32 [1, 3F, H, W] and `speed` f32 [1, 1] (DESIGN.md section 3).
pub const INPUTS: [&str; 2] = ["image", "speed"];

/// The model's output tensors, in the order the network returns them:
/// `depth` f32 [1, 1, H/s, W/s], `plan` f32 [1, T, 3], `lead` f32 [1, 3].
pub const OUTPUTS: [&str; 3] = ["depth", "plan", "lead"];

/// The history frames chosen for one "now": which candidates were stacked
/// and how far the worst of them is from where it was wanted.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct History {
    /// Largest distance between a wanted history time and the frame chosen
    /// for it, s (infinite when there was no frame at all).
    pub worst_gap_secs: f64,
    /// Whether every frame is within [`InputSpec::history_tolerance_secs`]:
    /// the stack is the one the network was trained on.
    pub complete: bool,
}

impl InputSpec {
    /// How far a history frame may lie from `now - k * spacing` and still
    /// count as that frame: a quarter of the spacing, and never less than
    /// 20 ms, the jitter of a camera whose frames are not evenly spaced.
    #[must_use]
    pub fn history_tolerance_secs(&self) -> f64 {
        (self.frame_spacing_secs / 4.0).max(0.020)
    }

    /// The frames to stack for the frame at `now_nanos`, newest first.
    ///
    /// For each k in `0..frames` it picks, among `candidates` (stamps in ns,
    /// `None` for an empty slot; pass only frames at or before now), the one
    /// nearest `now - k * spacing`; on a tie the first in iteration order.
    /// Its position in `candidates` goes into `out[k]` (`out` holds at least
    /// `frames` entries). Training (which drops samples whose history is
    /// incomplete) and the runtime (which stacks anyway and lets the safety
    /// monitor judge) both call this, so they stack the same frames. Writes
    /// nothing and allocates nothing beyond `out`.
    pub fn history<I>(&self, now_nanos: i64, candidates: &I, out: &mut [usize]) -> History
    where
        I: Iterator<Item = Option<i64>> + Clone,
    {
        let spacing_ns = self.frame_spacing_secs * 1e9;
        let tolerance_ns = self.history_tolerance_secs() * 1e9;
        let mut worst = 0.0f64;
        for (k, slot) in out.iter_mut().enumerate().take(self.frames.max(1) as usize) {
            let want = now_nanos as f64 - k as f64 * spacing_ns;
            let mut best: Option<(f64, usize)> = None;
            for (i, stamp) in candidates.clone().enumerate() {
                if let Some(s) = stamp {
                    let gap = (s as f64 - want).abs();
                    if best.is_none_or(|(b, _)| gap < b) {
                        best = Some((gap, i));
                    }
                }
            }
            let Some((gap, i)) = best else {
                return History { worst_gap_secs: f64::INFINITY, complete: false };
            };
            worst = worst.max(gap);
            *slot = i;
        }
        History { worst_gap_secs: worst / 1e9, complete: worst <= tolerance_ns }
    }

    /// Whether a camera running at `fps` supplies every history frame within
    /// [`Self::history_tolerance_secs`] (its frames are `1 / fps` apart, so
    /// the nearest to `k * spacing` back is off by at most half a period).
    #[must_use]
    pub fn camera_supplies_history(&self, fps: f64) -> bool {
        let tolerance = self.history_tolerance_secs();
        (1..self.frames.max(1)).all(|k| {
            let frames_back = f64::from(k) * self.frame_spacing_secs * fps;
            (frames_back - frames_back.round()).abs() / fps <= tolerance
        })
    }

    /// One channel's value as the network sees it: `(unit - mean) / std`,
    /// where `unit` is the pixel / 255 (training, after augmentation).
    #[must_use]
    pub fn normalise(&self, channel: usize, unit: f32) -> f32 {
        (unit - self.mean[channel]) / self.std[channel]
    }

    /// The same map as [`Self::normalise`] for a pixel value p in 0..=255,
    /// as `p * scale + offset` per channel (the runtime's warp kernels fuse
    /// it into their output write).
    #[must_use]
    pub fn pixel_affine(&self) -> ([f32; 3], [f32; 3]) {
        let (mean, std) = (self.mean, self.std);
        ([0, 1, 2].map(|c| 1.0 / (255.0 * std[c])), [0, 1, 2].map(|c| -mean[c] / std[c]))
    }
}

impl VirtualCamera {
    /// Intrinsic matrix K.
    #[must_use]
    pub fn k(&self) -> Matrix3<f64> {
        Matrix3::new(self.fx, 0.0, self.cx, 0.0, self.fy, self.cy, 0.0, 0.0, 1.0)
    }

    /// Orientation of the optical frame (x right, y down, z forward) in
    /// base_link (x forward, y left, z up).
    #[must_use]
    pub fn base_link_from_optical_rotation(&self) -> UnitQuaternion<f64> {
        // Optical axes of a level, forward camera expressed in base_link.
        let level = Rotation3::from_matrix_unchecked(Matrix3::new(
            0.0, 0.0, 1.0, //
            -1.0, 0.0, 0.0, //
            0.0, -1.0, 0.0,
        ));
        let yaw = Rotation3::from_euler_angles(0.0, 0.0, self.yaw_left_deg.to_radians());
        let pitch = Rotation3::from_euler_angles(0.0, self.pitch_down_deg.to_radians(), 0.0);
        let roll = Rotation3::from_euler_angles(0.0, 0.0, self.roll_deg.to_radians());
        UnitQuaternion::from_rotation_matrix(&(yaw * pitch * level * roll))
    }

    /// `base_link_from_virtual` for a real camera mounted at
    /// `base_link_from_real`: the real optical centre, this orientation.
    #[must_use]
    pub fn mounted_like(&self, base_link_from_real: &Iso3) -> Iso3 {
        Iso3::from_parts(base_link_from_real.translation, self.base_link_from_optical_rotation())
    }
}

impl ModelContract {
    /// Reads a contract file (TOML, or JSON for `.json`); fields it omits keep
    /// their defaults. Checked with [`Self::validate`].
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| DatasetError::io(path, e))?;
        let contract: Self = if path.extension().is_some_and(|e| e.eq_ignore_ascii_case("json")) {
            serde_json::from_str(&text).map_err(|e| {
                DatasetError::invalid(path, "contract", format!("not a contract in JSON: {e}"))
            })?
        } else {
            toml::from_str(&text).map_err(|e| {
                DatasetError::invalid(path, "contract", format!("not a contract in TOML: {e}"))
            })?
        };
        contract.validate(path)?;
        Ok(contract)
    }

    /// Refuses contracts no network could be built for; `source` names where it came from.
    pub fn validate(&self, source: &Path) -> Result<()> {
        let bad = |field: &str, problem: String| Err(DatasetError::invalid(source, field, problem));
        if self.version != CONTRACT_VERSION {
            return bad(
                "version",
                format!("is {}, this build speaks version {CONTRACT_VERSION}", self.version),
            );
        }
        let (w, h, s) = (self.input.width, self.input.height, self.label_stride);
        if !(16..=4096).contains(&w) || !(16..=4096).contains(&h) {
            return bad("input.width/height", format!("{w}x{h} must each lie in 16..=4096"));
        }
        // The backbone halves the image four times.
        if w % 16 != 0 || h % 16 != 0 {
            return bad("input.width/height", format!("{w}x{h} must each be a multiple of 16"));
        }
        if !matches!(s, 1 | 2 | 4 | 8 | 16) {
            return bad(
                "label_stride",
                format!("{s} must be 1, 2, 4, 8 or 16 (the network's depth head: 4)"),
            );
        }
        if !(1..=8).contains(&self.input.frames) {
            return bad("input.frames", format!("{} must lie in 1..=8", self.input.frames));
        }
        if !(self.input.frame_spacing_secs > 0.0 && self.input.frame_spacing_secs <= 1.0) {
            return bad(
                "input.frame_spacing_secs",
                format!("{} must lie in (0, 1] s", self.input.frame_spacing_secs),
            );
        }
        if self.input.std.iter().any(|s| !(s.is_finite() && *s > 0.0)) {
            return bad("input.std", format!("{:?} must all be finite and positive", self.input.std));
        }
        if self.input.mean.iter().any(|m| !m.is_finite()) {
            return bad("input.mean", format!("{:?} must all be finite", self.input.mean));
        }
        let c = &self.camera;
        if !(c.fx.is_finite()
            && c.fy.is_finite()
            && c.fx > 0.0
            && c.fy > 0.0
            && c.cx.is_finite()
            && c.cy.is_finite())
        {
            return bad(
                "camera.fx/fy/cx/cy",
                "focal lengths must be finite and positive, the principal point finite".into(),
            );
        }
        if [c.pitch_down_deg, c.roll_deg, c.yaw_left_deg].iter().any(|a| !(a.is_finite() && a.abs() <= 90.0))
        {
            return bad(
                "camera.pitch_down_deg/roll_deg/yaw_left_deg",
                "must be finite, within 90 degrees".into(),
            );
        }
        let times = &self.plan_times_secs;
        if times.is_empty()
            || times.len() > 64
            || times.iter().any(|t| !(t.is_finite() && *t > 0.0 && *t <= 60.0))
            || times.windows(2).any(|w| w[1] <= w[0])
        {
            return bad(
                "plan_times_secs",
                format!("{times:?} must be 1 to 64 finite times in (0, 60] s, strictly increasing"),
            );
        }
        Ok(())
    }

    /// Depth label size (columns, rows).
    #[must_use]
    pub fn label_size(&self) -> (u32, u32) {
        (self.input.width / self.label_stride, self.input.height / self.label_stride)
    }

    /// Short content digest (hex, 16 digits): equal contracts, equal digests.
    #[must_use]
    pub fn digest(&self) -> String {
        // serde_json writes fields in declaration order, so this is canonical.
        let json = serde_json::to_vec(self).unwrap_or_default();
        short_hex(&Sha256::digest(&json))
    }

    /// The fields where `other` differs from this contract, as `field: ours vs theirs`.
    #[must_use]
    pub fn differences(&self, other: &Self) -> Vec<String> {
        let (a, b) = (serde_json::to_value(self), serde_json::to_value(other));
        let (Ok(serde_json::Value::Object(a)), Ok(serde_json::Value::Object(b))) = (a, b) else {
            return vec!["contract: not comparable".into()];
        };
        let mut out = Vec::new();
        diff_values("", &serde_json::Value::Object(a), &serde_json::Value::Object(b), &mut out);
        out
    }
}

/// The metadata key of an exported ONNX model that holds its [`ModelCard`] (JSON).
pub const ONNX_METADATA_KEY: &str = "nines.contract";

/// What an exported model carries in `metadata_props["nines.contract"]`:
/// the contract it was trained under, its tensors with units, where its
/// training data came from, and how it scored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelCard {
    /// The contract (input size, stacked frames and spacing, normalisation,
    /// virtual camera, label stride, plan time grid).
    pub contract: ModelContract,
    /// [`ModelContract::digest`] of it.
    pub contract_digest: String,
    /// Input tensors.
    pub inputs: Vec<TensorSpec>,
    /// Output tensors.
    pub outputs: Vec<TensorSpec>,
    /// Digest of the label shards it was trained on (their drive digests and contract).
    pub training_data_digest: String,
    /// Model preset, parameters, GFLOPs per image.
    pub model: serde_json::Value,
    /// Validation metrics of the exported weights (nines-offboard's `Metrics`).
    pub metrics: serde_json::Value,
    /// The simulated scenarios of its training drives: eval marks a suite
    /// run of one of them as seen in training. Empty for a model trained on
    /// fleet logs only, or exported before cards listed them.
    #[serde(default)]
    pub training_scenarios: Vec<crate::drive::DriveScenario>,
}

/// One input or output tensor of an exported model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TensorSpec {
    /// ONNX name.
    pub name: String,
    /// Element type.
    pub dtype: String,
    /// Shape.
    pub shape: Vec<usize>,
    /// What the numbers mean.
    pub units: String,
}

impl ModelCard {
    /// Whether the model trained on a drive of `family` at `seed`.
    #[must_use]
    pub fn trained_on(&self, family: &str, seed: u64) -> bool {
        self.training_scenarios.iter().any(|s| s.is(family, seed))
    }

    /// The inputs and outputs that `contract` fixes (DESIGN.md section 3).
    #[must_use]
    pub fn tensors(contract: &ModelContract) -> (Vec<TensorSpec>, Vec<TensorSpec>) {
        let spec = |name: &str, shape: Vec<usize>, units: &str| TensorSpec {
            name: name.into(),
            dtype: "float32".into(),
            shape,
            units: units.into(),
        };
        let (w, h) = (contract.input.width as usize, contract.input.height as usize);
        let (dw, dh) = contract.label_size();
        let [image, speed] = INPUTS;
        let [depth, plan, lead] = OUTPUTS;
        let inputs = vec![
            spec(
                image,
                vec![1, 3 * contract.input.frames as usize, h, w],
                "RGB frames newest first, (pixel/255 - mean)/std, warped into the virtual camera",
            ),
            spec(speed, vec![1, 1], "ego speed, m/s"),
        ];
        let outputs = vec![
            spec(depth, vec![1, 1, dh as usize, dw as usize], "camera z, m"),
            spec(
                plan,
                vec![1, contract.plan_times_secs.len(), 3],
                "x m, y m, v m/s at plan_times_secs, base_link now",
            ),
            spec(lead, vec![1, 3], "presence probability, distance along the path m, relative speed m/s"),
        ];
        (inputs, outputs)
    }
}

/// The first 8 bytes of a digest as 16 hex digits (contract and drive digests).
#[must_use]
pub fn short_hex(digest: &[u8]) -> String {
    digest.iter().take(8).fold(String::new(), |mut hex, b| {
        use std::fmt::Write as _;
        let _ = write!(hex, "{b:02x}");
        hex
    })
}

fn diff_values(prefix: &str, a: &serde_json::Value, b: &serde_json::Value, out: &mut Vec<String>) {
    match (a, b) {
        (serde_json::Value::Object(a), serde_json::Value::Object(b)) => {
            for (key, value) in a {
                let name = if prefix.is_empty() { key.clone() } else { format!("{prefix}.{key}") };
                match b.get(key) {
                    Some(other) => diff_values(&name, value, other, out),
                    None => out.push(format!("{name}: {value} vs (missing)")),
                }
            }
        }
        _ if a != b => out.push(format!("{prefix}: {a} vs {b}")),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nalgebra::Vector3;

    #[test]
    fn default_camera_looks_forward_level() {
        let c = VirtualCamera::default();
        let r = c.base_link_from_optical_rotation();
        // Optical z (forward) is base_link x; optical x (right) is base_link -y.
        assert!((r * Vector3::z() - Vector3::x()).norm() < 1e-12);
        assert!((r * Vector3::x() + Vector3::y()).norm() < 1e-12);
        let down = VirtualCamera { pitch_down_deg: 10.0, ..c };
        let axis = down.base_link_from_optical_rotation() * Vector3::z();
        assert!(axis.z < -0.17 && axis.z > -0.18, "a pitched-down axis points below level: {axis}");
    }

    #[test]
    fn history_picks_the_frame_nearest_each_spacing_back_within_tolerance() {
        let ms = 1_000_000i64;
        let input = InputSpec { frames: 3, frame_spacing_secs: 0.1, ..InputSpec::default() };
        assert!((input.history_tolerance_secs() - 0.025).abs() < 1e-12);
        // A ring in arbitrary order with an empty slot: 400, (empty), 180, 310, 290 ms.
        let ring = [Some(400 * ms), None, Some(180 * ms), Some(310 * ms), Some(290 * ms)];
        let mut out = [usize::MAX; 3];
        let h = input.history(400 * ms, &ring.iter().copied(), &mut out);
        // 400 itself, 300 -> 310 (first of the two 10 ms away), 200 -> 180 (20 ms, within 25).
        assert_eq!(out, [0, 3, 2]);
        assert!(h.complete && (h.worst_gap_secs - 0.020).abs() < 1e-9, "{h:?}");
        // 30 ms off is beyond a quarter of 100 ms: incomplete, but still the nearest frames.
        let ring = [Some(400 * ms), Some(270 * ms), Some(200 * ms)];
        let h = input.history(400 * ms, &ring.iter().copied(), &mut out);
        assert_eq!(out, [0, 1, 2]);
        assert!(!h.complete && (h.worst_gap_secs - 0.030).abs() < 1e-9, "{h:?}");
        // Nothing at all: incomplete, infinitely far.
        let h = input.history(0, &[None, None].into_iter(), &mut out);
        assert!(!h.complete && h.worst_gap_secs.is_infinite());
        // Closely spaced frames keep the 20 ms floor.
        let fast = InputSpec { frame_spacing_secs: 0.04, ..input };
        assert!((fast.history_tolerance_secs() - 0.020).abs() < 1e-12);
    }

    #[test]
    fn a_camera_supplies_history_when_its_frames_fall_near_the_spacing() {
        let input = InputSpec { frames: 3, frame_spacing_secs: 0.1, ..InputSpec::default() };
        // 20 and 30 Hz land exactly; 25 Hz is 20 ms off at k = 1, inside 25 ms.
        assert!(input.camera_supplies_history(20.0) && input.camera_supplies_history(30.0));
        assert!(input.camera_supplies_history(25.0));
        // 15 Hz: 1.5 frames back is 33 ms off.
        assert!(!input.camera_supplies_history(15.0));
        assert!(InputSpec { frames: 1, ..input }.camera_supplies_history(15.0));
    }

    #[test]
    fn normalisation_is_one_map_in_both_forms() {
        let input = InputSpec::default();
        let (scale, offset) = input.pixel_affine();
        for c in 0..3 {
            for p in [0.0f32, 17.0, 128.0, 255.0] {
                let unit = input.normalise(c, p / 255.0);
                assert!((unit - (p * scale[c] + offset[c])).abs() < 1e-5, "channel {c} pixel {p}");
            }
            assert!(input.normalise(c, input.mean[c]).abs() < 1e-7, "the mean maps to 0");
        }
    }

    #[test]
    fn a_partial_file_overrides_only_its_fields_and_is_checked() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        std::fs::write(&path, "label_stride = 8\n[input]\nwidth = 320\nheight = 160\n").unwrap();
        let c = ModelContract::load(&path).unwrap();
        assert_eq!((c.input.width, c.input.height, c.label_stride), (320, 160, 8));
        assert_eq!(c.plan_times_secs, ModelContract::default().plan_times_secs);
        assert_ne!(c.digest(), ModelContract::default().digest());
        let diffs = ModelContract::default().differences(&c);
        assert!(diffs.iter().any(|d| d.starts_with("input.width: 256 vs 320")), "{diffs:?}");

        std::fs::write(&path, "label_stride = 3\n").unwrap();
        let err = ModelContract::load(&path).unwrap_err().to_string();
        assert!(err.contains("c.toml") && err.contains("label_stride"), "{err}");
        // Every class of value no network or runtime could use, each named.
        for (text, field) in [
            ("[input]\nframes = 0\n", "input.frames"),
            ("[input]\nframes = 9\n", "input.frames"),
            ("label_stride = 0\n", "label_stride"),
            ("[input]\nstd = [0.2, inf, 0.2]\n", "input.std"),
            ("[input]\nwidth = 100\n", "input.width"),
            ("plan_times_secs = [1.0, inf]\n", "plan_times_secs"),
            ("plan_times_secs = [2.0, 1.0]\n", "plan_times_secs"),
            ("version = 99\n", "version"),
        ] {
            std::fs::write(&path, text).unwrap();
            let err = ModelContract::load(&path).unwrap_err().to_string();
            assert!(err.contains(field), "{text}: {err}");
        }
        std::fs::write(&path, "plan_times = [1.0]\n").unwrap();
        let err = ModelContract::load(&path).unwrap_err().to_string();
        assert!(err.contains("plan_times"), "unknown fields are refused: {err}");
        let json = dir.path().join("c.json");
        std::fs::write(&json, r#"{"plan_times_secs": [1.0, 2.0, 3.0]}"#).unwrap();
        assert_eq!(ModelContract::load(&json).unwrap().plan_times_secs, vec![1.0, 2.0, 3.0]);
    }
}
