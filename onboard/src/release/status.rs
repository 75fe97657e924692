//! What is installed under a root: the current release, whether its files
//! are still what its manifest says, the releases kept and the last
//! journal event (`nines-onboard status`).

use std::path::{Path, PathBuf};

use serde::Serialize;

use super::bundle::{self, MANIFEST, Manifest};
use super::keys;
use super::layout::{Layout, release_ids};
use crate::{OnboardError, Result};

/// What is wrong with an installed release, compared with its manifest: empty when intact.
#[must_use]
pub fn intact(dir: &Path, manifest: &Manifest) -> Vec<String> {
    use std::os::unix::fs::PermissionsExt;
    let mut problems = Vec::new();
    for entry in &manifest.files {
        // An edited manifest must not send the check outside the release.
        if bundle::safe_relative(&entry.path).is_err() {
            problems.push(format!("{}: outside the release (an unsafe path in the manifest)", entry.path));
            continue;
        }
        let path = dir.join(&entry.path);
        match std::fs::read(&path) {
            Ok(bytes) if bundle::sha256_hex(&bytes) != entry.sha256 => {
                problems.push(format!("{}: changed since install (SHA-256 differs)", entry.path));
            }
            Ok(_) => {
                let mode = std::fs::metadata(&path).map_or(0, |m| m.permissions().mode() & 0o777);
                if mode != entry.mode {
                    problems.push(format!(
                        "{}: mode {mode:o} where the manifest has {:o}",
                        entry.path, entry.mode
                    ));
                }
            }
            Err(e) => problems.push(format!("{}: {e}", entry.path)),
        }
    }
    problems
}

/// Reads an installed release's manifest.
pub fn read_manifest(dir: &Path) -> Result<Manifest> {
    let path = dir.join(MANIFEST);
    let text = std::fs::read(&path).map_err(OnboardError::io(&path, "reading"))?;
    serde_json::from_slice(&text)
        .map_err(|e| OnboardError::release(&path, format!("not a nines manifest: {e}")))
}

/// What is installed under a root.
#[derive(Debug, Clone, Serialize)]
pub struct Status {
    /// The root.
    pub root: PathBuf,
    /// Fingerprint of the trusted fleet key, if provisioned.
    pub fleet_key: Option<String>,
    /// The current release.
    pub current: Option<ReleaseStatus>,
    /// Every installed release, oldest first.
    pub releases: Vec<String>,
    /// The last line of the install journal.
    pub last_event: Option<serde_json::Value>,
}

/// The current release.
#[derive(Debug, Clone, Serialize)]
pub struct ReleaseStatus {
    /// Its id.
    pub id: String,
    /// When it was bundled.
    pub created: String,
    /// Its target triple.
    pub target: String,
    /// The nines version that built it.
    pub nines_version: String,
    /// The model's digest.
    pub model_digest: String,
    /// ONNX Runtime: the bundled version or the target's library.
    pub onnxruntime: String,
    /// Files that differ from the manifest (empty when intact).
    pub problems: Vec<String>,
}

/// Reads what is installed under `root`.
pub fn status(root: &Path) -> Result<Status> {
    let layout = Layout::new(root);
    if !root.is_dir() {
        return Err(OnboardError::release(root, "no such folder: nothing is installed here (give --root)"));
    }
    let fleet_key = keys::read_verifying_key(&layout.key()).ok().map(|k| keys::fingerprint(&k));
    let current = match layout.current_id() {
        Some(id) => {
            let dir = layout.release(&id);
            let manifest = read_manifest(&dir)?;
            Some(ReleaseStatus {
                problems: intact(&dir, &manifest),
                id,
                created: manifest.created,
                target: manifest.target,
                nines_version: manifest.nines_version,
                model_digest: manifest.model.digest,
                onnxruntime: match (&manifest.onnxruntime.version, &manifest.onnxruntime.provided_by_target) {
                    (Some(v), _) => format!("{v} (bundled)"),
                    (None, Some(path)) => format!("{} (the target's)", path.display()),
                    (None, None) => "unknown".into(),
                },
            })
        }
        None => None,
    };
    let last_event = std::fs::read_to_string(layout.journal())
        .ok()
        .and_then(|t| t.lines().last().and_then(|l| serde_json::from_str(l).ok()));
    Ok(Status { root: root.to_path_buf(), fleet_key, current, releases: release_ids(&layout)?, last_event })
}
