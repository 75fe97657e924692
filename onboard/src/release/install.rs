//! Installing a release on a robot (or into a folder that becomes one): the
//! bundle is verified with the key the target trusts, unpacked beside the
//! running release, switched to with one atomic rename of the `current`
//! symlink, health-checked, and rolled back when unhealthy.
//!
//! Layout under the root (`/opt/nines` on a robot):
//!
//! ```text
//! keys/fleet.pub          the fleet key this target trusts (provisioned once)
//! releases/<id>/          one folder per release, complete before it is named
//! current -> releases/<id>
//! install.log             one JSON line per install step that matters
//! ```
//!
//! Power may fail or the process be killed at any point: a release folder
//! gets its name only once every file is written and synced, and `current`
//! is replaced by `rename(2)`, so it always names a complete release (the
//! previous one or the new one) or, before the first success, nothing.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::bundle::{self, MANIFEST, Manifest, Verified};
use super::keys;
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

/// How a new release proves it is healthy.
#[derive(Debug, Clone)]
pub enum Health {
    /// Run the release's `nines-onboard self-test` (load the model, one
    /// inference), through `runner` when not empty (e.g. an emulator for
    /// another architecture): robots without systemd, and tests.
    SelfTest {
        /// Command prefix for the release's binary.
        runner: Vec<String>,
        /// Longest the self-test may take.
        timeout: Duration,
    },
    /// Restart the systemd unit (Type=notify: the restart returns once the
    /// runtime said READY) and watch it stay active, without a watchdog
    /// restart, for `timeout`.
    Systemd {
        /// The watch window.
        timeout: Duration,
    },
}

impl Health {
    /// From command-line flags: `service` `none` (or `self_test`) is the
    /// self-test, run through `runner` (words split on whitespace) when
    /// given; otherwise systemd. `timeout_secs` is at least 0.1 s.
    #[must_use]
    pub fn from_flags(service: &str, runner: Option<&str>, timeout_secs: f64, self_test: bool) -> Self {
        let timeout = Duration::from_secs_f64(timeout_secs.max(0.1));
        if service == "none" || self_test {
            let runner =
                runner.map(|r| r.split_whitespace().map(str::to_owned).collect()).unwrap_or_default();
            Self::SelfTest { runner, timeout }
        } else {
            Self::Systemd { timeout }
        }
    }
}

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

fn install_error(path: &Path, detail: impl Into<String>) -> OnboardError {
    OnboardError::Release { path: path.to_path_buf(), detail: detail.into() }
}

fn io_error(path: &Path, what: &str) -> impl FnOnce(std::io::Error) -> OnboardError + use<> {
    let path = path.to_path_buf();
    let what = what.to_owned();
    move |e| install_error(&path, format!("{what}: {e}"))
}

/// Makes `root` trust `pubkey` (copies it to `keys/fleet.pub`), the way a
/// robot is provisioned. Refuses a root that already trusts another key.
pub fn provision_key(root: &Path, pubkey: &Path) -> Result<()> {
    let layout = Layout::new(root);
    let key = keys::read_verifying_key(pubkey)?;
    if layout.key().exists() {
        let installed = keys::read_verifying_key(&layout.key())?;
        if installed != key {
            return Err(install_error(
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
    std::fs::create_dir_all(&dir).map_err(io_error(&dir, "creating"))?;
    let bytes = std::fs::read(pubkey).map_err(io_error(pubkey, "reading"))?;
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
        return Err(install_error(
            root,
            "no such folder: create the install root (and provision keys/fleet.pub) first",
        ));
    }
    // One install at a time: an advisory lock on the root, released by the
    // kernel however this process ends.
    let lock = std::fs::File::open(root).map_err(io_error(root, "opening the root"))?;
    lock.try_lock()
        .map_err(|_| install_error(root, "another install is running on this root; wait for it"))?;

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
        return Err(install_error(
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
        std::fs::create_dir_all(&releases).map_err(io_error(&releases, "creating"))?;
        steps.step();
    }
    // Half-written releases from an install that was stopped.
    for entry in std::fs::read_dir(&releases).map_err(io_error(&releases, "listing"))?.flatten() {
        if entry.file_name().to_string_lossy().starts_with(".staging-") {
            std::fs::remove_dir_all(entry.path())
                .map_err(io_error(&entry.path(), "removing a stale staging folder"))?;
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
    std::fs::create_dir(&staging).map_err(io_error(&staging, "creating"))?;
    steps.step();
    let files = manifest.files.iter().map(|e| (e.path.as_str(), e.mode)).chain([(MANIFEST, 0o644)]);
    let contents = verified.files.iter().chain([&verified.manifest_json]);
    for ((path, mode), bytes) in files.zip(contents) {
        let target = staging.join(path);
        if let Some(dir) = target.parent() {
            std::fs::create_dir_all(dir).map_err(io_error(dir, "creating"))?;
        }
        write_file(&target, bytes, mode)?;
        steps.step();
    }
    sync_tree(&staging)?;
    std::fs::rename(&staging, &dest).map_err(io_error(&dest, "naming the release"))?;
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
                .map_err(io_error(&next, "creating the symlink"))?;
            steps.step();
            std::fs::rename(&next, &current).map_err(io_error(&current, "switching"))?;
        }
        None => {
            if std::fs::symlink_metadata(&current).is_ok() {
                std::fs::remove_file(&current).map_err(io_error(&current, "removing"))?;
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
    std::fs::rename(&dir, &doomed).map_err(io_error(&dir, "moving aside"))?;
    steps.step();
    std::fs::remove_dir_all(&doomed).map_err(io_error(&doomed, "removing"))?;
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

/// The installed release ids, oldest first.
fn release_ids(layout: &Layout) -> Result<Vec<String>> {
    let releases = layout.releases();
    let mut ids: Vec<String> = match std::fs::read_dir(&releases) {
        Ok(entries) => entries
            .flatten()
            .filter(|e| e.path().is_dir())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| !n.starts_with('.'))
            .collect(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(install_error(&releases, format!("listing: {e}"))),
    };
    ids.sort();
    Ok(ids)
}

/// What is wrong with an installed release, compared with its manifest: empty when intact.
#[must_use]
pub fn intact(dir: &Path, manifest: &Manifest) -> Vec<String> {
    use std::os::unix::fs::PermissionsExt;
    let mut problems = Vec::new();
    for entry in &manifest.files {
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
    let text = std::fs::read(&path).map_err(io_error(&path, "reading"))?;
    serde_json::from_slice(&text).map_err(|e| install_error(&path, format!("not a nines manifest: {e}")))
}

fn check_health(layout: &Layout, manifest: &Manifest, health: &Health) -> std::result::Result<(), String> {
    match health {
        Health::SelfTest { runner, timeout } => self_test(layout, manifest, runner, *timeout),
        Health::Systemd { timeout } => systemd_health(layout, manifest, *timeout),
    }
}

/// Runs `current/bin/nines-onboard self-test` for the current release.
fn self_test(
    layout: &Layout,
    manifest: &Manifest,
    runner: &[String],
    timeout: Duration,
) -> std::result::Result<(), String> {
    let release = layout.current();
    let binary = release.join("bin/nines-onboard");
    let mut command = match runner.split_first() {
        Some((program, args)) => {
            let mut c = Command::new(program);
            c.args(args).arg(&binary);
            c
        }
        None => Command::new(&binary),
    };
    command
        .arg("self-test")
        .arg("--config")
        .arg(release.join(&manifest.config))
        .arg("--model")
        .arg(release.join(&manifest.model.file))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    // The release's own library (found beside its binary), or the one the target provides.
    command.env_remove(crate::ort_env::DYLIB_ENV);
    if let Some(lib) = &manifest.onnxruntime.provided_by_target {
        command.env(crate::ort_env::DYLIB_ENV, lib);
    }
    let child = command.spawn().map_err(|e| format!("cannot start {}: {e}", binary.display()))?;
    let output = wait_with_timeout(child, timeout)?;
    if output.status.success() {
        Ok(())
    } else {
        let stderr = String::from_utf8_lossy(&output.stderr);
        let tail: Vec<&str> = stderr.lines().rev().take(5).collect();
        Err(format!(
            "self-test exited with {}: {}",
            output.status,
            tail.into_iter().rev().collect::<Vec<_>>().join(" | ")
        ))
    }
}

fn wait_with_timeout(
    mut child: std::process::Child,
    timeout: Duration,
) -> std::result::Result<std::process::Output, String> {
    let start = Instant::now();
    loop {
        match child.try_wait() {
            Ok(Some(_)) => return child.wait_with_output().map_err(|e| e.to_string()),
            Ok(None) if start.elapsed() > timeout => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("no answer within {:.0} s", timeout.as_secs_f64()));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(20)),
            Err(e) => return Err(e.to_string()),
        }
    }
}

/// Where the unit is installed.
pub const SYSTEMD_DIR: &str = "/etc/systemd/system";

/// Installs the release's unit (with the root filled in), restarts it and
/// watches it: active, same main PID, no watchdog restart, for `timeout`.
fn systemd_health(
    layout: &Layout,
    manifest: &Manifest,
    timeout: Duration,
) -> std::result::Result<(), String> {
    let unit = &manifest.service.unit;
    let template = std::fs::read_to_string(layout.current().join(&manifest.service.template))
        .map_err(|e| format!("reading the unit template: {e}"))?;
    let rendered = template.replace("@ROOT@", &layout.root.to_string_lossy());
    let unit_path = Path::new(SYSTEMD_DIR).join(unit);
    write_atomic(&unit_path, rendered.as_bytes()).map_err(|e| e.to_string())?;
    systemctl(&["daemon-reload"])?;
    systemctl(&["enable", unit])?;
    systemctl(&["restart", unit])?;
    let show = || -> std::result::Result<(String, String, String), String> {
        let out = systemctl(&["show", unit, "--property=ActiveState,MainPID,NRestarts"])?;
        let get = |key: &str| {
            out.lines().find_map(|l| l.strip_prefix(&format!("{key}="))).unwrap_or_default().to_owned()
        };
        Ok((get("ActiveState"), get("MainPID"), get("NRestarts")))
    };
    let first = show()?;
    let start = Instant::now();
    while start.elapsed() < timeout {
        let now = show()?;
        if now.0 != "active" {
            return Err(format!("{unit} is {} (see `journalctl -u {unit}`)", now.0));
        }
        if now != first {
            return Err(format!("{unit} restarted (watchdog or crash; see `journalctl -u {unit}`)"));
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    Ok(())
}

fn systemctl(args: &[&str]) -> std::result::Result<String, String> {
    let output = Command::new("systemctl")
        .args(args)
        .output()
        .map_err(|e| format!("cannot run systemctl ({e}): on a robot without systemd use --service none"))?;
    if output.status.success() {
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    } else {
        Err(format!(
            "systemctl {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&output.stderr).trim()
        ))
    }
}

fn journal(layout: &Layout, id: &str, event: &str, previous: Option<&str>, steps: &mut Steps) -> Result<()> {
    let secs = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let line = serde_json::json!({ "unix_time": secs, "release": id, "event": event, "previous": previous });
    let path = layout.journal();
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .map_err(io_error(&path, "opening the journal"))?;
    writeln!(file, "{line}")
        .and_then(|()| file.sync_all())
        .map_err(io_error(&path, "writing the journal"))?;
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
        .map_err(io_error(path, "creating"))?;
    file.write_all(bytes).and_then(|()| file.sync_all()).map_err(io_error(path, "writing"))?;
    // The umask may have narrowed the mode.
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .map_err(io_error(path, "setting the mode"))
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
    write().map_err(io_error(path, "writing"))?;
    path.parent().map_or(Ok(()), sync_dir)
}

fn sync_dir(dir: &Path) -> Result<()> {
    std::fs::File::open(dir).and_then(|d| d.sync_all()).map_err(io_error(dir, "syncing"))
}

fn sync_tree(dir: &Path) -> Result<()> {
    for entry in std::fs::read_dir(dir).map_err(io_error(dir, "listing"))?.flatten() {
        if entry.path().is_dir() {
            sync_tree(&entry.path())?;
        }
    }
    sync_dir(dir)
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
        return Err(install_error(root, "no such folder: nothing is installed here (give --root)"));
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
