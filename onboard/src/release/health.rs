//! How a new release proves it is healthy: its own self-test (load the
//! model, one inference), or its systemd unit restarted and watched.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::bundle::Manifest;
use super::layout::{Layout, write_atomic};

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

pub(crate) fn check_health(
    layout: &Layout,
    manifest: &Manifest,
    health: &Health,
) -> std::result::Result<(), String> {
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

pub(crate) fn systemctl(args: &[&str]) -> std::result::Result<String, String> {
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
