//! One drive's labels as a safetensors shard (DESIGN.md section 3): the one
//! description of its tensors ([`ShardLayout`]), the writer distillation
//! uses and the memory-mapped reader training uses. Both go through the
//! layout, so a shard the writer makes is exactly what the reader accepts.

use std::collections::HashMap;
use std::path::Path;

use half::f16;
use nines_datasets::contract::ModelContract;
use nines_kernels::mapped::MappedFile;
use safetensors::{Dtype, SafeTensors, tensor::TensorView};

use super::index::ShardEntry;
use crate::distill::DriveLabels;
use crate::error::{OffboardError, Result};

/// Shard metadata key: the digest of the contract the labels were made under.
pub const CONTRACT_DIGEST_KEY: &str = "nines.contract_digest";
/// Shard metadata key: the digest of the drive file the labels came from.
pub const DRIVE_DIGEST_KEY: &str = "nines.drive_digest";

/// The per-frame shapes of a shard's tensors. With the frame count they
/// give every tensor's name, type and shape ([`Self::tensors`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ShardLayout {
    /// `image`: channels, rows, columns (u8, planar RGB).
    pub image: [usize; 3],
    /// `depth`: rows, columns (f16, camera z in m, 0 = no lidar).
    pub depth: [usize; 2],
    /// `plan`: future times (f32 x, y, v each; `plan_valid` u8 each).
    pub plan_steps: usize,
}

/// One tensor of a shard.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShardTensor {
    /// Name in the file.
    pub name: &'static str,
    /// Element type.
    pub dtype: Dtype,
    /// Shape, frames first.
    pub shape: Vec<usize>,
}

impl ShardLayout {
    /// The layout of labels in the contract's virtual camera (what training reads).
    #[must_use]
    pub fn of_contract(contract: &ModelContract) -> Self {
        let (dw, dh) = contract.label_size();
        Self {
            image: [3, contract.input.height as usize, contract.input.width as usize],
            depth: [dh as usize, dw as usize],
            plan_steps: contract.plan_times_secs.len(),
        }
    }

    /// Every tensor of a shard of `frames` frames, in file order.
    #[must_use]
    pub fn tensors(&self, frames: usize) -> [ShardTensor; 8] {
        let n = frames;
        let [c, h, w] = self.image;
        let [dh, dw] = self.depth;
        let t = self.plan_steps;
        let tensor = |name, dtype, shape| ShardTensor { name, dtype, shape };
        [
            tensor("image", Dtype::U8, vec![n, c, h, w]),
            tensor("depth", Dtype::F16, vec![n, 1, dh, dw]),
            tensor("plan", Dtype::F32, vec![n, t, 3]),
            tensor("plan_valid", Dtype::U8, vec![n, t]),
            tensor("lead", Dtype::F32, vec![n, 3]),
            tensor("lead_valid", Dtype::U8, vec![n, 2]),
            tensor("speed", Dtype::F32, vec![n]),
            tensor("stamp", Dtype::I64, vec![n]),
        ]
    }
}

fn bytes_of<T: Copy, const N: usize>(values: &[T], to_le: impl Fn(T) -> [u8; N]) -> Vec<u8> {
    values.iter().flat_map(|v| to_le(*v)).collect()
}

/// Writes a drive's labels as a safetensors shard (through a temporary
/// file, so a crash never leaves half a shard); the metadata names the
/// contract and the drive.
pub fn write_shard(
    path: &Path,
    labels: &DriveLabels,
    contract_digest: &str,
    drive_digest: &str,
) -> Result<()> {
    let depth = bytes_of(&labels.depth, |v| f16::from_f32(v).to_le_bytes());
    let plan = bytes_of(&labels.plan, f32::to_le_bytes);
    let lead = bytes_of(&labels.lead, f32::to_le_bytes);
    let speed = bytes_of(&labels.speed, f32::to_le_bytes);
    let stamp = bytes_of(&labels.stamp, i64::to_le_bytes);
    let data: [(&str, &[u8]); 8] = [
        ("image", &labels.image),
        ("depth", &depth),
        ("plan", &plan),
        ("plan_valid", &labels.plan_valid),
        ("lead", &lead),
        ("lead_valid", &labels.lead_valid),
        ("speed", &speed),
        ("stamp", &stamp),
    ];
    let err =
        |e: safetensors::SafeTensorError| OffboardError::labels(path, format!("writing the shard: {e}"));
    let tensors = labels
        .layout
        .tensors(labels.frames)
        .into_iter()
        .map(|t| {
            let bytes = data.iter().find(|(name, _)| *name == t.name).map_or(&[][..], |(_, b)| *b);
            Ok((t.name, TensorView::new(t.dtype, t.shape, bytes).map_err(err)?))
        })
        .collect::<Result<Vec<_>>>()?;
    let metadata = HashMap::from([
        (CONTRACT_DIGEST_KEY.to_owned(), contract_digest.to_owned()),
        (DRIVE_DIGEST_KEY.to_owned(), drive_digest.to_owned()),
    ]);
    let tmp = path.with_extension("safetensors.tmp");
    safetensors::serialize_to_file(tensors, Some(metadata), &tmp).map_err(err)?;
    std::fs::rename(&tmp, path).map_err(OffboardError::io(path, "naming the shard"))
}

/// Byte range of a tensor inside a mapped shard.
#[derive(Debug, Clone, Copy)]
struct Span {
    start: usize,
    end: usize,
}

/// One drive's shard, opened for training: the large tensors (images and
/// depth) stay in the memory mapping, the small ones are read into memory.
#[derive(Debug)]
pub struct DriveShard {
    /// The shard file name inside the label folder.
    pub name: String,
    /// The drive's digest.
    pub drive_digest: String,
    /// Frames in the shard.
    pub frames: usize,
    /// Its tensors' shapes.
    pub layout: ShardLayout,
    file: MappedFile,
    image: Span,
    depth: Span,
    /// Ego speed per frame, m/s.
    pub speed: Vec<f32>,
    /// Plan labels [frames, T, 3].
    pub plan: Vec<f32>,
    /// Plan validity [frames, T].
    pub plan_valid: Vec<u8>,
    /// Lead labels [frames, 3].
    pub lead: Vec<f32>,
    /// Lead validity [frames, 2].
    pub lead_valid: Vec<u8>,
    /// Capture stamps, ns, strictly increasing.
    pub stamp: Vec<i64>,
}

impl DriveShard {
    /// Opens the shard of `entry` at `path`, checking every tensor against
    /// `layout` and the shard's contract digest against `contract_digest`.
    pub fn open(path: &Path, entry: &ShardEntry, contract_digest: &str, layout: ShardLayout) -> Result<Self> {
        let bad = |detail: String| OffboardError::labels(path, detail);
        let file = MappedFile::open(path).map_err(|e| {
            bad(format!(
                "cannot open the shard ({e}); run `nines distill` again for {}",
                entry.drive.display()
            ))
        })?;
        let bytes = file.bytes();
        let (header, meta) =
            SafeTensors::read_metadata(bytes).map_err(|e| bad(format!("not a safetensors shard: {e}")))?;
        let meta_digest = meta.metadata().as_ref().and_then(|m| m.get(CONTRACT_DIGEST_KEY).cloned());
        if meta_digest.as_deref() != Some(contract_digest) {
            return Err(bad(format!(
                "made under contract {}, but the index says {contract_digest}; distil this drive again",
                meta_digest.as_deref().unwrap_or("(none)")
            )));
        }
        let drive_digest = meta.metadata().as_ref().and_then(|m| m.get(DRIVE_DIGEST_KEY).cloned());
        if drive_digest.as_deref() != Some(entry.drive_digest.as_str()) {
            return Err(bad(format!(
                "holds the labels of drive {}, but the index lists it for {} ({}); distil that drive again",
                drive_digest.as_deref().unwrap_or("(none)"),
                entry.drive.display(),
                entry.drive_digest
            )));
        }
        let data_start = 8 + header;
        let frames = meta.info("stamp").map_or(0, |i| i.shape.first().copied().unwrap_or(0));
        let mut spans = Vec::with_capacity(8);
        for expected in layout.tensors(frames) {
            let name = expected.name;
            let info = meta.info(name).ok_or_else(|| bad(format!("has no tensor `{name}`")))?;
            if info.dtype != expected.dtype || info.shape != expected.shape {
                return Err(bad(format!(
                    "tensor `{name}` is {:?} {:?}, expected {:?} {:?} (the index's contract)",
                    info.dtype, info.shape, expected.dtype, expected.shape
                )));
            }
            let (start, end) = info.data_offsets;
            spans.push(Span { start: data_start + start, end: data_start + end });
        }
        let [image, depth, plan, plan_valid, lead, lead_valid, speed, stamp] = spans[..] else {
            return Err(bad("the shard layout has eight tensors".into()));
        };
        let raw = |s: Span| &bytes[s.start..s.end];
        let f32s = |s: Span| -> Vec<f32> {
            raw(s).chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect()
        };
        let stamp: Vec<i64> = raw(stamp)
            .chunks_exact(8)
            .map(|c| i64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]))
            .collect();
        if stamp.windows(2).any(|w| w[1] <= w[0]) {
            return Err(bad("frame stamps are not increasing; distil this drive again".into()));
        }
        Ok(Self {
            name: entry.shard.clone(),
            drive_digest: entry.drive_digest.clone(),
            frames,
            layout,
            speed: f32s(speed),
            plan: f32s(plan),
            plan_valid: raw(plan_valid).to_vec(),
            lead: f32s(lead),
            lead_valid: raw(lead_valid).to_vec(),
            stamp,
            image,
            depth,
            file,
        })
    }

    /// The images, [frames, 3, H, W] u8, straight from the mapping.
    #[must_use]
    pub fn image_bytes(&self) -> &[u8] {
        &self.file.bytes()[self.image.start..self.image.end]
    }

    /// The depth labels, [frames, 1, h, w] f16 little-endian, straight from the mapping.
    #[must_use]
    pub fn depth_bytes(&self) -> &[u8] {
        &self.file.bytes()[self.depth.start..self.depth.end]
    }

    /// Frame `frame`'s depth labels as f32, m (0 = no lidar).
    pub fn depth_of(&self, frame: usize) -> impl Iterator<Item = f32> + '_ {
        let [dh, dw] = self.layout.depth;
        let start = frame * dh * dw * 2;
        self.depth_bytes()[start..start + dh * dw * 2]
            .chunks_exact(2)
            .map(|c| f16::from_le_bytes([c[0], c[1]]).to_f32())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_layout_of_the_default_contract_is_the_one_design_md_lists() {
        let layout = ShardLayout::of_contract(&ModelContract::default());
        let tensors = layout.tensors(5);
        let described: Vec<(&str, Dtype, Vec<usize>)> =
            tensors.iter().map(|t| (t.name, t.dtype, t.shape.clone())).collect();
        assert_eq!(
            described,
            [
                ("image", Dtype::U8, vec![5, 3, 128, 256]),
                ("depth", Dtype::F16, vec![5, 1, 32, 64]),
                ("plan", Dtype::F32, vec![5, 6, 3]),
                ("plan_valid", Dtype::U8, vec![5, 6]),
                ("lead", Dtype::F32, vec![5, 3]),
                ("lead_valid", Dtype::U8, vec![5, 2]),
                ("speed", Dtype::F32, vec![5]),
                ("stamp", Dtype::I64, vec![5]),
            ]
        );
    }
}
