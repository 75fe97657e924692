//! A label folder being filled: open it under a contract (refusing one made
//! under another), add drives to it (digest, resume, distil, shard, index),
//! and read its index. `nines distill` and `nines demo` (and the planned
//! data engine) label drives through this one type, so a folder is always
//! laid out, named and resumed the same way.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use nines_datasets::drive::{DriveReader, DriveScenario};
use nines_kernels::Kernels;

use super::index::{LabelIndex, LabelStats, ShardEntry, file_digest};
use super::shard::write_shard;
use crate::distill::{DistillOptions, distill_drive};
use crate::error::{OffboardError, Result};

/// What adding one drive did.
#[derive(Debug, Clone)]
pub enum Added {
    /// Distilled now; its shard is written and in the index.
    Labelled(Box<ShardEntry>),
    /// The index already held this drive (same content digest) with its shard.
    Skipped(Box<ShardEntry>),
    /// It could not be labelled; the reason (naming what is missing) is in the index too.
    Failed(String),
}

/// A label folder open for adding drives. Drives may be added from several
/// threads at once: the index is locked only to read or record an entry.
#[derive(Debug)]
pub struct LabelFolder {
    dir: PathBuf,
    options: DistillOptions,
    index: Mutex<LabelIndex>,
}

impl LabelFolder {
    /// Opens `dir` (created if missing) for labels made with `options`,
    /// refusing a folder that holds labels of another contract or camera mode.
    pub fn open(dir: &Path, options: DistillOptions) -> Result<Self> {
        std::fs::create_dir_all(dir).map_err(OffboardError::io(dir, "creating the label folder"))?;
        let index = LabelIndex::open_for(dir, &options.contract, options.mode)?;
        Ok(Self { dir: dir.to_path_buf(), options, index: Mutex::new(index) })
    }

    /// The folder.
    #[must_use]
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// How its labels are made.
    #[must_use]
    pub fn options(&self) -> &DistillOptions {
        &self.options
    }

    /// The index as it stands.
    #[must_use]
    pub fn index(&self) -> LabelIndex {
        self.lock().clone()
    }

    /// The shard file name of a drive: its stem and its content digest, so
    /// two drives with one name never share a shard.
    #[must_use]
    pub fn shard_name(drive: &Path, drive_digest: &str) -> String {
        let stem = drive.file_stem().map_or_else(|| "drive".into(), |s| s.to_string_lossy().into_owned());
        format!("{stem}-{drive_digest}.safetensors")
    }

    /// Labels `drive` into the folder, unless the index already holds it
    /// (and `force` is off). `on_frame` is called after each labelled frame.
    /// A failure is recorded in the index (and returned); the folder stays usable.
    pub fn add_drive(
        &self,
        drive: &Path,
        kernels: &Kernels,
        force: bool,
        on_frame: &(dyn Fn() + Sync),
    ) -> Added {
        let failed = |error: String| {
            let mut index = self.lock();
            index.record_failure(drive, error.clone());
            // The failure is returned either way; an unsaved note of it is not worth a second error.
            let _ = index.save(&self.dir);
            Added::Failed(error)
        };
        let digest = match file_digest(drive) {
            Ok(d) => d,
            Err(e) => return failed(e.to_string()),
        };
        if !force && let Some(entry) = self.lock().finished(&self.dir, &digest).cloned() {
            return Added::Skipped(Box::new(entry));
        }
        let scenario = match DriveReader::open(drive).and_then(|reader| DriveScenario::read(&reader)) {
            Ok(scenario) => scenario,
            Err(e) => return failed(e.to_string()),
        };
        let labels = match distill_drive(drive, kernels, &self.options, on_frame) {
            Ok(labels) => labels,
            Err(e) => return failed(e.to_string()),
        };
        let stats = LabelStats::of(&labels);
        if labels.frames > 0 && stats.depth_coverage <= 0.0 {
            // No lidar point landed in the camera: the calibration or the
            // mounting is wrong, and a shard of empty depth would train nothing.
            return failed(format!(
                "{}: 0% depth coverage over {} frames: no lidar point falls in the camera; check the drive's \
                 calibration (camera_info) and the lidar and camera mounting (/tf_static)",
                drive.display(),
                labels.frames
            ));
        }
        let shard = Self::shard_name(drive, &digest);
        if let Err(e) = write_shard(&self.dir.join(&shard), &labels, &self.options.contract.digest(), &digest)
        {
            return failed(e.to_string());
        }
        let entry = ShardEntry {
            drive: drive.to_path_buf(),
            drive_digest: digest,
            shard,
            frames: labels.frames,
            skipped_frames: labels.skipped_frames,
            stats,
            quality: labels.quality.quality(),
            quality_sums: labels.quality,
            scenario,
            recovering_frames: labels.recovering_frames,
        };
        let mut index = self.lock();
        index.record(entry.clone());
        match index.save(&self.dir) {
            Ok(()) => Added::Labelled(Box::new(entry)),
            Err(e) => Added::Failed(e.to_string()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, LabelIndex> {
        // A worker that panicked mid-update leaves the index as it was before
        // that update (entries are replaced whole), so it is still good.
        self.index.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}
