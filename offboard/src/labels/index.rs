//! The label folder's JSON index (DESIGN.md section 3): which contract and
//! camera the labels were made for, which drive (by content digest) each
//! shard came from, and how good the labels are. It is rewritten after
//! every shard, so an interrupted run keeps what it finished and the next
//! one resumes.

use std::io::Read;
use std::path::{Path, PathBuf};

use nines_datasets::contract::{ModelContract, short_hex};
use nines_datasets::drive::DriveScenario;
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
    /// The simulated scenario the drive was recorded in (none for a fleet log).
    #[serde(default)]
    pub scenario: Option<DriveScenario>,
    /// Frames (shard indices) showing a recovery state: off the lane centre
    /// or turned (where the drive records its lane state), or a safety
    /// driver driving. `recovery_weight` in the training config samples them more.
    #[serde(default)]
    pub recovering_frames: Vec<u32>,
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
    /// Plan entries left out because their window overlaps the model's own
    /// driving or an injected disturbance (never imitated).
    #[serde(default)]
    pub plan_masked: usize,
    /// Frames with at least one such entry (their depth and lead stay valid).
    #[serde(default)]
    pub frames_masked: usize,
    /// How far from its lane centre the vehicle was in each labelled frame,
    /// where the drive records it (simulated drives); `None` otherwise.
    #[serde(default)]
    pub recovery: Option<RecoveryStates>,
}

/// Histograms of where a drive's labelled frames put the vehicle against
/// its lane centre: how many recovery states (off-centre, turned) the
/// labels teach. From /sim/ground_truth/lane; statistics, never a label.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct RecoveryStates {
    /// Upper edges of the |lateral offset| bins, m; the last bin is open.
    pub lateral_edges_m: Vec<f64>,
    /// Frames per lateral bin (one more than the edges).
    pub lateral_frames: Vec<usize>,
    /// Upper edges of the |heading error| bins, degrees; the last bin is open.
    pub heading_edges_deg: Vec<f64>,
    /// Frames per heading bin.
    pub heading_frames: Vec<usize>,
    /// Frames at least [`Self::OFF_CENTRE_M`] off the centre or
    /// [`Self::TURNED_DEG`] off the lane's heading: recovery states.
    pub frames_recovering: usize,
}

impl Default for RecoveryStates {
    fn default() -> Self {
        let lateral_edges_m = vec![0.1, 0.3, 0.6, 0.9, 1.2];
        let heading_edges_deg = vec![1.0, 2.0, 4.0, 8.0];
        Self {
            lateral_frames: vec![0; lateral_edges_m.len() + 1],
            heading_frames: vec![0; heading_edges_deg.len() + 1],
            lateral_edges_m,
            heading_edges_deg,
            frames_recovering: 0,
        }
    }
}

impl RecoveryStates {
    /// Off the centre by this much, m, a frame is a recovery state.
    pub const OFF_CENTRE_M: f64 = 0.3;
    /// Turned by this much, degrees, a frame is a recovery state.
    pub const TURNED_DEG: f64 = 2.0;

    /// Counts one frame.
    pub fn add(&mut self, lateral_m: f64, heading_rad: f64) {
        let (lateral, heading) = (lateral_m.abs(), heading_rad.abs().to_degrees());
        let bin = |edges: &[f64], x: f64| edges.iter().position(|e| x < *e).unwrap_or(edges.len());
        self.lateral_frames[bin(&self.lateral_edges_m, lateral)] += 1;
        self.heading_frames[bin(&self.heading_edges_deg, heading)] += 1;
        self.frames_recovering += usize::from(lateral >= Self::OFF_CENTRE_M || heading >= Self::TURNED_DEG);
    }
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
            plan_masked: labels.plan_masked,
            frames_masked: labels.frames_masked,
            recovery: labels.recovery.clone(),
        }
    }
}

/// SHA-256 of a file (hex, first 16 digits).
pub fn file_digest(path: &Path) -> Result<String> {
    let mut file = std::fs::File::open(path).map_err(OffboardError::io(path, "opening"))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buf).map_err(OffboardError::io(path, "reading"))?;
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
        let text = std::fs::read_to_string(&path).map_err(OffboardError::io(&path, "reading the index"))?;
        let index: Self = serde_json::from_str(&text).map_err(|e| {
            OffboardError::labels(
                &path,
                format!("not a nines label index ({e}); move it away or choose another --out"),
            )
        })?;
        index.contract.validate(&path)?;
        index.check_entries(&path)?;
        Ok(Some(index))
    }

    /// Every shard a plain file name inside the folder (an index never
    /// sends a reader outside it), and no drive or shard listed twice.
    fn check_entries(&self, path: &Path) -> Result<()> {
        let mut digests = std::collections::HashSet::new();
        let mut names = std::collections::HashSet::new();
        for (i, entry) in self.shards.iter().enumerate() {
            let plain = matches!(
                Path::new(&entry.shard).components().collect::<Vec<_>>().as_slice(),
                [std::path::Component::Normal(_)]
            );
            if !plain {
                return Err(OffboardError::labels(
                    path,
                    format!(
                        "shards[{i}].shard = {:?} is not a file name in the label folder; the index is damaged or \
                         was edited: distil the drives again into a new folder",
                        entry.shard
                    ),
                ));
            }
            if !digests.insert(entry.drive_digest.as_str()) || !names.insert(entry.shard.as_str()) {
                return Err(OffboardError::labels(
                    path,
                    format!(
                        "shards[{i}] ({}, drive {}) is listed twice; the index is damaged or was edited",
                        entry.shard, entry.drive_digest
                    ),
                ));
            }
        }
        Ok(())
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
        std::fs::write(&tmp, text).map_err(OffboardError::io(&tmp, "writing the index"))?;
        std::fs::rename(&tmp, &path).map_err(OffboardError::io(&path, "replacing the index"))
    }
}
