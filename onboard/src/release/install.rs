//! Installing a release on a robot (or into a folder that becomes one): the
//! bundle is verified with the key the target trusts, unpacked beside the
//! running release, switched to with one atomic rename of the `current`
//! symlink, health-checked, and rolled back when unhealthy.
//!
//! The root's layout (`/opt/nines` on a robot) is in [`super::layout`].
//!
//! Power may fail or the process be killed at any point: a release folder
//! gets its name only once every file is written and synced, and `current`
//! is replaced by `rename(2)`, so it always names a complete release (the
//! previous one or the new one) or, before the first success, nothing.

use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::bundle::{self, MANIFEST, Manifest, Verified};
use super::health::{Health, check_health, systemctl};
use super::keys;
use super::layout::{Layout, release_ids, sync_dir, write_atomic};
use super::status::intact;
use crate::{OnboardError, Result};

/// Install settings.
#[derive(Debug, Clone)]
pub struct InstallOptions {
    /// The key to trust: the root's `keys/fleet.pub` when `None`.
    pub pubkey: Option<PathBuf>,
    /// The health check.
    pub health: Health,
    /// Releases to keep (the current and the previous are always kept).
    pub keep: usize,
}

/// How an install ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// The new release is current and healthy.
    Installed,
    /// The release was already current; nothing changed.
    AlreadyCurrent,
    /// The new release was unhealthy; the previous one is current again.
    RolledBack,
    /// The first release was unhealthy; there is no current release.
    FirstInstallFailed,
}

/// What an install did.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct InstallReport {
    /// The bundle's release id.
    pub id: String,
    /// How it ended.
    pub outcome: Outcome,
    /// The release current before.
    pub previous: Option<String>,
    /// The release current now.
    pub current: Option<String>,
    /// Releases removed to keep the last N.
    pub pruned: Vec<String>,
    /// Why the health check failed, when it did.
    pub health_failure: Option<String>,
    /// Fingerprint of the key that signed the bundle.
    pub signer: String,
    /// Steps that changed the target's disk (see [`ABORT_ENV`]).
    pub steps: u32,
}

impl InstallReport {
    /// The release asked for is current and healthy.
    #[must_use]
    pub fn succeeded(&self) -> bool {
        matches!(self.outcome, Outcome::Installed | Outcome::AlreadyCurrent)
    }

    /// One sentence for people: what happened, and why when it failed.
    #[must_use]
    pub fn summary(&self) -> String {
        let why = self.health_failure.as_deref().unwrap_or("");
        match self.outcome {
            Outcome::Installed => format!(
                "installed {} (signed by {}); previous {}{}",
                self.id,
                self.signer,
                self.previous.as_deref().unwrap_or("none"),
                if self.pruned.is_empty() {
                    String::new()
                } else {
                    format!("; removed {}", self.pruned.join(", "))
                }
            ),
            Outcome::AlreadyCurrent => format!("{} is already the current release; nothing changed", self.id),
            Outcome::RolledBack => format!(
                "{} failed its health check ({why}); rolled back to {}",
                self.id,
                self.current.as_deref().unwrap_or("none")
            ),
            Outcome::FirstInstallFailed => format!(
                "{} failed its health check ({why}); it was the first install, so the target has no current release",
                self.id
            ),
        }
    }
}

/// Test hook: `NINES_INSTALL_ABORT_AT=N` aborts the process at the Nth step
/// that changes the target's disk, the way a kill or a power cut would (no
/// clean-up runs). The crash tests use it to stop an install at every point.
pub const ABORT_ENV: &str = "NINES_INSTALL_ABORT_AT";

struct Steps {
    done: u32,
    abort_at: Option<u32>,
}

impl Steps {
    fn new() -> Self {
        let abort_at = std::env::var(ABORT_ENV).ok().and_then(|v| v.parse().ok());
        Self { done: 0, abort_at }
    }
    fn step(&mut self) {
        self.done += 1;
        if self.abort_at == Some(self.done) {
            std::process::abort();
        }
    }
}

/// Makes `root` trust `pubkey` (copies it to `keys/fleet.pub`), the way a
/// robot is provisioned. Refuses a root that already trusts another key.
pub fn provision_key(root: &Path, pubkey: &Path) -> Result<()> {
    let layout = Layout::new(root);
    let key = keys::read_verifying_key(pubkey)?;
    if layout.key().exists() {
        let installed = keys::read_verifying_key(&layout.key())?;
        if installed != key {
            return Err(OnboardError::release(
                &layout.key(),
                format!(
                    "this target trusts fleet key {}, not {} ({}); replace keys/fleet.pub by hand to re-provision it",
                    keys::fingerprint(&installed),
                    keys::fingerprint(&key),
                    pubkey.display()
                ),
            ));
        }
        return Ok(());
    }
    let dir = layout.root.join("keys");
    std::fs::create_dir_all(&dir).map_err(OnboardError::io(&dir, "creating"))?;
    let bytes = std::fs::read(pubkey).map_err(OnboardError::io(pubkey, "reading"))?;
    write_atomic(&layout.key(), &bytes)
}

/// Verifies `bundle` with the trusted key, installs it under `root`, checks
/// its health and rolls back when it is unhealthy. A bundle that fails
/// verification changes nothing on the target.
pub fn install(bundle_path: &Path, root: &Path, options: &InstallOptions) -> Result<InstallReport> {
    let layout = Layout::new(root);
    let pubkey = options.pubkey.clone().unwrap_or_else(|| layout.key());
    let trusted = keys::read_verifying_key(&pubkey)?;
    let verified = bundle::verify(bundle_path, &trusted)?;
    let manifest = &verified.manifest;
    check_architecture(manifest, &options.health, bundle_path)?;
    if !root.is_dir() {
        return Err(OnboardError::release(
            root,
            "no such folder: create the install root (and provision keys/fleet.pub) first",
        ));
    }
    // One install at a time: an advisory lock on the root, released by the
    // kernel however this process ends.
    let lock = std::fs::File::open(root).map_err(OnboardError::io(root, "opening the root"))?;
    lock.try_lock()
        .map_err(|_| OnboardError::release(root, "another install is running on this root; wait for it"))?;

    let previous = layout.current_id();
    let mut steps = Steps::new();
    let mut report = InstallReport {
        id: manifest.id.clone(),
        outcome: Outcome::Installed,
        previous: previous.clone(),
        current: previous.clone(),
        pruned: Vec::new(),
        health_failure: None,
        signer: verified.signer.clone(),
        steps: 0,
    };
    if previous.as_deref() == Some(manifest.id.as_str())
        && intact(&layout.release(&manifest.id), manifest).is_empty()
    {
        report.outcome = Outcome::AlreadyCurrent;
        return Ok(report);
    }
    stage(&layout, &verified, &mut steps)?;
    point_current(&layout, Some(&manifest.id), &mut steps)?;
    report.current = Some(manifest.id.clone());
    journal(&layout, &manifest.id, "switched", previous.as_deref(), &mut steps)?;

    if let Err(why) = check_health(&layout, manifest, &options.health) {
        report.health_failure = Some(why);
        point_current(&layout, previous.as_deref(), &mut steps)?;
        report.current.clone_from(&previous);
        let event = if previous.is_some() { "rolled_back" } else { "first_install_failed" };
        journal(&layout, &manifest.id, event, previous.as_deref(), &mut steps)?;
        if matches!(options.health, Health::Systemd { .. }) && previous.is_some() {
            // Bring the previous release back up; its health was proven when it was installed.
            let _ = systemctl(&["restart", &manifest.service.unit]);
        }
        remove_release(&layout, &manifest.id, &mut steps)?;
        report.outcome = if previous.is_some() { Outcome::RolledBack } else { Outcome::FirstInstallFailed };
    } else {
        journal(&layout, &manifest.id, "healthy", previous.as_deref(), &mut steps)?;
        report.pruned = prune(&layout, options.keep, previous.as_deref(), &mut steps)?;
    }
    report.steps = steps.done;
    Ok(report)
}

fn check_architecture(manifest: &Manifest, health: &Health, bundle: &Path) -> Result<()> {
    let arch = manifest.target.split('-').next().unwrap_or_default();
    let runner = matches!(health, Health::SelfTest { runner, .. } if !runner.is_empty());
    if arch != std::env::consts::ARCH && !runner {
        return Err(OnboardError::release(
            bundle,
            format!(
                "the release is built for {}, this machine is {}: install it on such a robot, or give the self-test \
                 a runner for that architecture (e.g. --runner 'qemu-{arch} -L /usr/{arch}-linux-gnu')",
                manifest.target,
                std::env::consts::ARCH
            ),
        ));
    }
    Ok(())
}

/// Writes the release into `releases/<id>`, complete, or reuses an intact one.
fn stage(layout: &Layout, verified: &Verified, steps: &mut Steps) -> Result<()> {
    let manifest = &verified.manifest;
    let releases = layout.releases();
    if !releases.is_dir() {
        std::fs::create_dir_all(&releases).map_err(OnboardError::io(&releases, "creating"))?;
        steps.step();
    }
    // Half-written releases from an install that was stopped.
    for entry in std::fs::read_dir(&releases).map_err(OnboardError::io(&releases, "listing"))?.flatten() {
        if entry.file_name().to_string_lossy().starts_with(".staging-") {
            std::fs::remove_dir_all(entry.path())
                .map_err(OnboardError::io(&entry.path(), "removing a stale staging folder"))?;
            steps.step();
        }
    }
    let dest = layout.release(&manifest.id);
    if dest.exists() {
        if intact(&dest, manifest).is_empty() {
            return Ok(());
        }
        remove_release(layout, &manifest.id, steps)?;
    }
    let staging = releases.join(format!(".staging-{}", manifest.id));
    std::fs::create_dir(&staging).map_err(OnboardError::io(&staging, "creating"))?;
    steps.step();
    let files = manifest.files.iter().map(|e| (e.path.as_str(), e.mode)).chain([(MANIFEST, 0o644)]);
    let contents = verified.files.iter().chain([&verified.manifest_json]);
    for ((path, mode), bytes) in files.zip(contents) {
        let target = staging.join(path);
        if let Some(dir) = target.parent() {
            std::fs::create_dir_all(dir).map_err(OnboardError::io(dir, "creating"))?;
        }
        write_file(&target, bytes, mode)?;
        steps.step();
    }
    sync_tree(&staging)?;
    std::fs::rename(&staging, &dest).map_err(OnboardError::io(&dest, "naming the release"))?;
    sync_dir(&releases)?;
    steps.step();
    Ok(())
}

/// Points `current` at `id` (or removes it) with one rename.
fn point_current(layout: &Layout, id: Option<&str>, steps: &mut Steps) -> Result<()> {
    let current = layout.current();
    match id {
        Some(id) => {
            let next = layout.root.join(".current.next");
            let _ = std::fs::remove_file(&next);
            std::os::unix::fs::symlink(Path::new("releases").join(id), &next)
                .map_err(OnboardError::io(&next, "creating the symlink"))?;
            steps.step();
            std::fs::rename(&next, &current).map_err(OnboardError::io(&current, "switching"))?;
        }
        None => {
            if std::fs::symlink_metadata(&current).is_ok() {
                std::fs::remove_file(&current).map_err(OnboardError::io(&current, "removing"))?;
            }
        }
    }
    sync_dir(&layout.root)?;
    steps.step();
    Ok(())
}

fn remove_release(layout: &Layout, id: &str, steps: &mut Steps) -> Result<()> {
    let dir = layout.release(id);
    // Renamed out of the way first, so a stopped removal leaves a staging
    // folder (cleaned by the next install), never a half release by its name.
    let doomed = layout.releases().join(format!(".staging-removed-{id}"));
    std::fs::rename(&dir, &doomed).map_err(OnboardError::io(&dir, "moving aside"))?;
    steps.step();
    std::fs::remove_dir_all(&doomed).map_err(OnboardError::io(&doomed, "removing"))?;
    steps.step();
    Ok(())
}

/// Keeps the `keep` most recently installed releases, and always the
/// current and previous ones.
fn prune(layout: &Layout, keep: usize, previous: Option<&str>, steps: &mut Steps) -> Result<Vec<String>> {
    let current = layout.current_id();
    let installed_at =
        |id: &String| std::fs::metadata(layout.release(id).join(MANIFEST)).and_then(|m| m.modified()).ok();
    let mut ids = release_ids(layout)?;
    ids.sort_by_cached_key(|id| (std::cmp::Reverse(installed_at(id)), std::cmp::Reverse(id.clone())));
    let mut pruned = Vec::new();
    for (i, id) in ids.iter().enumerate() {
        let protected = Some(id.as_str()) == current.as_deref() || Some(id.as_str()) == previous;
        if i >= keep.max(1) && !protected {
            remove_release(layout, id, steps)?;
            pruned.push(id.clone());
        }
    }
    Ok(pruned)
}

fn journal(layout: &Layout, id: &str, event: &str, previous: Option<&str>, steps: &mut Steps) -> Result<()> {
    let secs = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let line = serde_json::json!({ "unix_time": secs, "release": id, "event": event, "previous": previous });
    let path = layout.journal();
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .map_err(OnboardError::io(&path, "opening the journal"))?;
    writeln!(file, "{line}")
        .and_then(|()| file.sync_all())
        .map_err(OnboardError::io(&path, "writing the journal"))?;
    steps.step();
    Ok(())
}

fn write_file(path: &Path, bytes: &[u8], mode: u32) -> Result<()> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .map_err(OnboardError::io(path, "creating"))?;
    file.write_all(bytes).and_then(|()| file.sync_all()).map_err(OnboardError::io(path, "writing"))?;
    // The umask may have narrowed the mode.
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .map_err(OnboardError::io(path, "setting the mode"))
}

fn sync_tree(dir: &Path) -> Result<()> {
    for entry in std::fs::read_dir(dir).map_err(OnboardError::io(dir, "listing"))?.flatten() {
        if entry.path().is_dir() {
            sync_tree(&entry.path())?;
        }
    }
    sync_dir(dir)
}
