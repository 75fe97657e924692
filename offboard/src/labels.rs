//! Label shards (one safetensors file per drive) and their JSON index
//! (DESIGN.md section 3). The index says which contract and camera the
//! labels were made for, which drive (by content digest) each shard came
//! from, and how good the labels are; it is rewritten after every shard, so
//! an interrupted run keeps what it finished and the next one resumes.

use std::collections::HashMap;
use std::io::Read;
use std::path::{Path, PathBuf};

use half::f16;
use nines_datasets::contract::{ModelContract, short_hex};
use safetensors::{Dtype, SafeTensors, tensor::TensorView};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::distill::{DriveLabels, LabelMode, quality::Quality, quality::QualitySums};
use crate::error::{OffboardError, Result};

/// File name of the index inside a label folder.
pub const INDEX_FILE: &str = "index.json";

/// The label folder's table of contents.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LabelIndex {
    /// Contract the labels were made under.
    pub contract: ModelContract,
    /// Its digest.
    pub contract_digest: String,
    /// Camera of the depth and image labels.
    pub mode: LabelMode,
    /// One entry per distilled drive.
    pub shards: Vec<ShardEntry>,
    /// Drives that could not be distilled, and why.
    #[serde(default)]
    pub failed: Vec<Failure>,
}

/// One drive's shard.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ShardEntry {
    /// The drive, as given.
    pub drive: PathBuf,
    /// SHA-256 of the drive file (hex, 16 digits).
    pub drive_digest: String,
    /// Shard file name, in the label folder.
    pub shard: String,
    /// Frames labelled.
    pub frames: usize,
    /// Camera frames skipped (no ego pose).
    pub skipped_frames: usize,
    /// What the labels hold.
    pub stats: LabelStats,
    /// Scores against simulator ground truth, where the drive has it.
    pub quality: Option<Quality>,
    /// Raw sums behind `quality`, so folders can be pooled.
    pub quality_sums: QualitySums,
}

/// A drive that failed.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Failure {
    /// The drive, as given.
    pub drive: PathBuf,
    /// The error, naming what is missing.
    pub error: String,
}

/// Summary statistics of one shard.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct LabelStats {
    /// Mean fraction of depth pixels with a value.
    pub depth_coverage: f64,
    /// Mean labelled depth, m.
    pub depth_mean_m: f64,
    /// Frames with a lead.
    pub lead_present: usize,
    /// Frames whose lead speed is known.
    pub lead_speed_known: usize,
    /// Fraction of plan entries known.
    pub plan_valid: f64,
    /// Mean ego speed, m/s.
    pub speed_mean_mps: f64,
}

impl LabelStats {
    /// Statistics of a drive's labels.
    #[must_use]
    pub fn of(labels: &DriveLabels) -> Self {
        let n = labels.frames.max(1) as f64;
        let known: Vec<f32> = labels.depth.iter().copied().filter(|d| *d > 0.0).collect();
        Self {
            depth_coverage: known.len() as f64 / labels.depth.len().max(1) as f64,
            depth_mean_m: known.iter().map(|d| f64::from(*d)).sum::<f64>() / known.len().max(1) as f64,
            lead_present: labels.lead.chunks(3).filter(|l| l[0] > 0.5).count(),
            lead_speed_known: labels.lead_valid.chunks(2).filter(|v| v[1] == 1).count(),
            plan_valid: labels.plan_valid.iter().map(|v| f64::from(*v)).sum::<f64>()
                / labels.plan_valid.len().max(1) as f64,
            speed_mean_mps: labels.speed.iter().map(|v| f64::from(*v)).sum::<f64>() / n,
        }
    }
}

/// SHA-256 of a file (hex, first 16 digits).
pub fn file_digest(path: &Path) -> Result<String> {
    let mut file = std::fs::File::open(path).map_err(|e| OffboardError::labels(path, e.to_string()))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buf).map_err(|e| OffboardError::labels(path, e.to_string()))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(short_hex(&hasher.finalize()))
}

impl LabelIndex {
    /// An empty index for `contract` and `mode`.
    #[must_use]
    pub fn new(contract: &ModelContract, mode: LabelMode) -> Self {
        Self {
            contract: contract.clone(),
            contract_digest: contract.digest(),
            mode,
            shards: Vec::new(),
            failed: Vec::new(),
        }
    }

    /// Reads `dir/index.json` if there is one.
    pub fn load(dir: &Path) -> Result<Option<Self>> {
        let path = dir.join(INDEX_FILE);
        if !path.exists() {
            return Ok(None);
        }
        let text = std::fs::read_to_string(&path).map_err(|e| OffboardError::labels(&path, e.to_string()))?;
        serde_json::from_str(&text).map(Some).map_err(|e| {
            OffboardError::labels(
                &path,
                format!("not a nines label index ({e}); move it away or choose another --out"),
            )
        })
    }

    /// Opens the index in `dir` for adding labels made under `contract` in
    /// `mode`, refusing a folder that holds labels of another contract.
    pub fn open_for(dir: &Path, contract: &ModelContract, mode: LabelMode) -> Result<Self> {
        let Some(index) = Self::load(dir)? else { return Ok(Self::new(contract, mode)) };
        let differences = index.contract.differences(contract);
        if !differences.is_empty() || index.mode != mode {
            let mut detail = format!(
                "holds {:?} labels made under contract {}; this run makes {:?} labels under {}",
                index.mode,
                index.contract_digest,
                mode,
                contract.digest()
            );
            for d in differences.iter().take(5) {
                detail.push_str("\n  ");
                detail.push_str(d);
            }
            detail.push_str("\nwrite these labels to another --out folder (nothing was changed)");
            return Err(OffboardError::labels(dir.join(INDEX_FILE), detail));
        }
        Ok(index)
    }

    /// The entry for a drive with this digest whose shard file is present.
    #[must_use]
    pub fn finished(&self, dir: &Path, drive_digest: &str) -> Option<&ShardEntry> {
        self.shards.iter().find(|s| s.drive_digest == drive_digest && dir.join(&s.shard).is_file())
    }

    /// Adds (or replaces) a drive's entry.
    pub fn record(&mut self, entry: ShardEntry) {
        self.failed.retain(|f| f.drive != entry.drive);
        self.shards.retain(|s| s.drive_digest != entry.drive_digest);
        self.shards.push(entry);
    }

    /// Notes a failed drive (replacing an earlier failure of it).
    pub fn record_failure(&mut self, drive: &Path, error: String) {
        self.failed.retain(|f| f.drive != drive);
        self.failed.push(Failure { drive: drive.to_path_buf(), error });
    }

    /// Quality pooled over every shard that has some.
    #[must_use]
    pub fn pooled_quality(&self) -> Option<Quality> {
        let mut sums = QualitySums::default();
        for s in &self.shards {
            sums.add(&s.quality_sums);
        }
        sums.quality()
    }

    /// Writes `dir/index.json` (through a temporary file, so a crash leaves the old one).
    pub fn save(&self, dir: &Path) -> Result<()> {
        let path = dir.join(INDEX_FILE);
        let tmp = dir.join(format!("{INDEX_FILE}.tmp"));
        let text =
            serde_json::to_string_pretty(self).map_err(|e| OffboardError::labels(&path, e.to_string()))?;
        std::fs::write(&tmp, text).map_err(|e| OffboardError::labels(&tmp, e.to_string()))?;
        std::fs::rename(&tmp, &path).map_err(|e| OffboardError::labels(&path, e.to_string()))
    }
}

fn bytes_of<T: Copy>(values: &[T], to_le: impl Fn(T) -> Vec<u8>) -> Vec<u8> {
    values.iter().flat_map(|v| to_le(*v)).collect()
}

/// Writes a drive's labels as a safetensors shard (tensors as DESIGN.md
/// section 3 lists them; metadata names the contract and the drive).
pub fn write_shard(
    path: &Path,
    labels: &DriveLabels,
    contract_digest: &str,
    drive_digest: &str,
) -> Result<()> {
    let n = labels.frames;
    let [c, h, w] = labels.image_shape;
    let [dh, dw] = labels.depth_shape;
    let t = labels.plan_steps;
    let depth = bytes_of(&labels.depth, |v| f16::from_f32(v).to_le_bytes().to_vec());
    let plan = bytes_of(&labels.plan, |v| v.to_le_bytes().to_vec());
    let lead = bytes_of(&labels.lead, |v| v.to_le_bytes().to_vec());
    let speed = bytes_of(&labels.speed, |v| v.to_le_bytes().to_vec());
    let stamp = bytes_of(&labels.stamp, |v| v.to_le_bytes().to_vec());
    let err =
        |e: safetensors::SafeTensorError| OffboardError::labels(path, format!("writing the shard: {e}"));
    let tensors = vec![
        ("image", TensorView::new(Dtype::U8, vec![n, c, h, w], &labels.image).map_err(err)?),
        ("depth", TensorView::new(Dtype::F16, vec![n, 1, dh, dw], &depth).map_err(err)?),
        ("plan", TensorView::new(Dtype::F32, vec![n, t, 3], &plan).map_err(err)?),
        ("plan_valid", TensorView::new(Dtype::U8, vec![n, t], &labels.plan_valid).map_err(err)?),
        ("lead", TensorView::new(Dtype::F32, vec![n, 3], &lead).map_err(err)?),
        ("lead_valid", TensorView::new(Dtype::U8, vec![n, 2], &labels.lead_valid).map_err(err)?),
        ("speed", TensorView::new(Dtype::F32, vec![n], &speed).map_err(err)?),
        ("stamp", TensorView::new(Dtype::I64, vec![n], &stamp).map_err(err)?),
    ];
    let metadata = HashMap::from([
        ("nines.contract_digest".to_owned(), contract_digest.to_owned()),
        ("nines.drive_digest".to_owned(), drive_digest.to_owned()),
    ]);
    let tmp = path.with_extension("safetensors.tmp");
    safetensors::serialize_to_file(tensors, Some(metadata), &tmp).map_err(err)?;
    std::fs::rename(&tmp, path).map_err(|e| OffboardError::labels(path, e.to_string()))
}

/// A shard read back: shapes and the tensors tests and training use.
#[derive(Debug, Clone)]
pub struct Shard {
    /// Frames.
    pub frames: usize,
    /// Depth (rows, columns).
    pub depth_shape: [usize; 2],
    /// Depth, m, as f32.
    pub depth: Vec<f32>,
    /// Image (channels, rows, columns).
    pub image_shape: [usize; 3],
    /// Images, planar u8.
    pub image: Vec<u8>,
    /// present, distance, relative speed.
    pub lead: Vec<f32>,
    /// distance known, speed known.
    pub lead_valid: Vec<u8>,
    /// x, y, v per plan time.
    pub plan: Vec<f32>,
    /// Plan entries known.
    pub plan_valid: Vec<u8>,
    /// Metadata.
    pub metadata: HashMap<String, String>,
}

/// Reads a shard written by [`write_shard`].
pub fn read_shard(path: &Path) -> Result<Shard> {
    let bytes = std::fs::read(path).map_err(|e| OffboardError::labels(path, e.to_string()))?;
    let bad = |detail: String| OffboardError::labels(path, detail);
    let (_, meta) = SafeTensors::read_metadata(&bytes).map_err(|e| bad(format!("not safetensors: {e}")))?;
    let tensors = SafeTensors::deserialize(&bytes).map_err(|e| bad(format!("not safetensors: {e}")))?;
    let get = |name: &str, dtype: Dtype| {
        let t = tensors.tensor(name).map_err(|e| bad(format!("tensor {name}: {e}")))?;
        if t.dtype() != dtype {
            return Err(bad(format!("tensor {name} is {:?}, expected {dtype:?}", t.dtype())));
        }
        Ok((t.shape().to_vec(), t.data().to_vec()))
    };
    let f32s = |b: &[u8]| {
        b.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect::<Vec<_>>()
    };
    let (depth_shape, depth) = get("depth", Dtype::F16)?;
    let (image_shape, image) = get("image", Dtype::U8)?;
    let (_, lead) = get("lead", Dtype::F32)?;
    let (_, plan) = get("plan", Dtype::F32)?;
    let (_, lead_valid) = get("lead_valid", Dtype::U8)?;
    let (_, plan_valid) = get("plan_valid", Dtype::U8)?;
    if depth_shape.len() != 4 || image_shape.len() != 4 {
        return Err(bad("depth and image must be 4-D [N, C, H, W]".into()));
    }
    Ok(Shard {
        frames: depth_shape[0],
        depth_shape: [depth_shape[2], depth_shape[3]],
        depth: depth.chunks_exact(2).map(|c| f16::from_le_bytes([c[0], c[1]]).to_f32()).collect(),
        image_shape: [image_shape[1], image_shape[2], image_shape[3]],
        image,
        lead: f32s(&lead),
        lead_valid,
        plan: f32s(&plan),
        plan_valid,
        metadata: meta.metadata().clone().unwrap_or_default(),
    })
}
