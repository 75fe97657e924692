//! The install root's layout (keys, releases, the `current` link, the
//! journal) and the file operations every release step shares: atomic
//! writes, directory syncs, listing releases, and the error that names the
//! path. Install, health and status all build on it; it builds on nothing
//! of theirs.
//!
//! ```text
//! keys/fleet.pub          the fleet key this target trusts (provisioned once)
//! releases/<id>/          one folder per release, complete before it is named
//! current -> releases/<id>
//! install.log             one JSON line per install step that matters
//! ```

use std::io::Write;
use std::path::{Path, PathBuf};

use crate::{OnboardError, Result};

/// The root's subfolders and links.
#[derive(Debug, Clone)]
pub struct Layout {
    /// The install root, e.g. /opt/nines.
    pub root: PathBuf,
}

impl Layout {
    /// The layout under `root`.
    #[must_use]
    pub fn new(root: &Path) -> Self {
        Self { root: root.to_path_buf() }
    }
    /// The fleet key the target trusts.
    #[must_use]
    pub fn key(&self) -> PathBuf {
        self.root.join("keys/fleet.pub")
    }
    /// The releases.
    #[must_use]
    pub fn releases(&self) -> PathBuf {
        self.root.join("releases")
    }
    /// One release.
    #[must_use]
    pub fn release(&self, id: &str) -> PathBuf {
        self.releases().join(id)
    }
    /// The `current` symlink.
    #[must_use]
    pub fn current(&self) -> PathBuf {
        self.root.join("current")
    }
    /// The install journal.
    #[must_use]
    pub fn journal(&self) -> PathBuf {
        self.root.join("install.log")
    }
    /// The release `current` names, if any.
    #[must_use]
    pub fn current_id(&self) -> Option<String> {
        let target = std::fs::read_link(self.current()).ok()?;
        target.file_name().map(|n| n.to_string_lossy().into_owned())
    }
}

/// The installed release ids, oldest first.
pub(crate) fn release_ids(layout: &Layout) -> Result<Vec<String>> {
    let releases = layout.releases();
    let mut ids: Vec<String> = match std::fs::read_dir(&releases) {
        Ok(entries) => entries
            .flatten()
            .filter(|e| e.path().is_dir())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| !n.starts_with('.'))
            .collect(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(OnboardError::io(&releases, "listing")(e)),
    };
    ids.sort();
    Ok(ids)
}

/// Writes `path` through a temporary file and a rename.
pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = path.with_extension("next");
    let write = || -> std::io::Result<()> {
        let mut file = std::fs::File::create(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        std::fs::rename(&tmp, path)
    };
    write().map_err(OnboardError::io(path, "writing"))?;
    path.parent().map_or(Ok(()), sync_dir)
}

/// Syncs a folder, so a rename or a new file in it survives a power cut.
pub(crate) fn sync_dir(dir: &Path) -> Result<()> {
    std::fs::File::open(dir).and_then(|d| d.sync_all()).map_err(OnboardError::io(dir, "syncing"))
}
