//! `nines flash`: installs a signed bundle on a robot over OpenSSH, or into
//! a local folder (an SD-card image, a test root).
//!
//! Over ssh the robot does the work that matters: it verifies the bundle
//! with the fleet key installed on it, unpacks it beside the running
//! release, switches `current` atomically, restarts the service and waits
//! for its health, and rolls back when it is unhealthy
//! (`nines-onboard install`, run by the installed runtime). A robot with no
//! release yet runs the bundle's own installer, after this machine has
//! checked the bundle against the key the robot trusts.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context, bail};
use clap::Args;
use nines_onboard::release::bundle;
use nines_onboard::release::health::Health;
use nines_onboard::release::install::{self, InstallOptions, InstallReport};
use nines_onboard::release::keys;

/// `nines flash` arguments.
#[derive(Debug, Clone, Args)]
pub struct FlashArgs {
    /// The bundle (`nines bundle` wrote it).
    pub bundle: PathBuf,
    /// The robot, `user@host` (or a Host of your ssh config).
    #[arg(long, conflicts_with = "root", required_unless_present = "root")]
    pub host: Option<String>,
    /// ssh port.
    #[arg(long)]
    pub port: Option<u16>,
    /// ssh identity file.
    #[arg(long)]
    pub identity: Option<PathBuf>,
    /// ssh config file (`ssh -F`).
    #[arg(long)]
    pub ssh_config: Option<PathBuf>,
    /// Install root on the robot.
    #[arg(long, default_value = "/opt/nines")]
    pub remote_root: String,
    /// Install into this local folder instead of a robot (needs --pubkey).
    #[arg(long)]
    pub root: Option<PathBuf>,
    /// The fleet public key. With --root: the key the folder trusts (installed
    /// as keys/fleet.pub when it has none). With --host: installed on a
    /// robot that trusts no key yet (refused if it trusts another).
    #[arg(long, required_unless_present = "host")]
    pub pubkey: Option<PathBuf>,
    /// `systemd`: restart the unit and wait for READY and watchdog pings;
    /// `none`: run the release's self-test (load the model, one inference),
    /// for robots without systemd. A --root install always self-tests.
    #[arg(long, default_value = "systemd", value_parser = ["systemd", "none"])]
    pub service: String,
    /// Releases to keep on the target (the current and previous are always kept).
    #[arg(long, default_value_t = 3)]
    pub keep: usize,
    /// Seconds the new release has to prove healthy before it is rolled back.
    #[arg(long, default_value_t = 30.0)]
    pub health_timeout: f64,
    /// With --root: command that runs the release's binary for the self-test
    /// (e.g. `qemu-aarch64 -L /usr/aarch64-linux-gnu` for an aarch64 SD card).
    #[arg(long, requires = "root")]
    pub runner: Option<String>,
}

/// `nines flash`.
pub fn flash(args: &FlashArgs) -> anyhow::Result<()> {
    let report = match (&args.root, &args.host) {
        (Some(root), _) => flash_local(args, root)?,
        (None, Some(host)) => {
            // What the bundle claims to be; the robot checks the claim.
            let manifest = bundle::peek(&args.bundle)?;
            eprintln!("bundle {}: release {} for {}", args.bundle.display(), manifest.id, manifest.target);
            flash_ssh(args, host, &manifest)?
        }
        (None, None) => bail!("give --host user@robot, or --root DIR --pubkey KEY"),
    };
    print_outcome(&report)
}

fn print_outcome(report: &InstallReport) -> anyhow::Result<()> {
    if !report.succeeded() {
        bail!("{}", report.summary());
    }
    println!("{}", report.summary());
    Ok(())
}

fn health(args: &FlashArgs, local: bool) -> Health {
    Health::from_flags(&args.service, args.runner.as_deref(), args.health_timeout, local)
}

fn flash_local(args: &FlashArgs, root: &Path) -> anyhow::Result<InstallReport> {
    let pubkey = args.pubkey.as_ref().context("--root needs --pubkey, the fleet key the folder trusts")?;
    // Refused bundles change nothing: verify before the key is provisioned.
    let verified = bundle::verify(&args.bundle, &keys::read_verifying_key(pubkey)?)?;
    let m = &verified.manifest;
    eprintln!(
        "bundle {}: release {} for {}, signed by {}",
        args.bundle.display(),
        m.id,
        m.target,
        verified.signer
    );
    std::fs::create_dir_all(root).with_context(|| format!("creating {}", root.display()))?;
    install::provision_key(root, pubkey)?;
    let options = InstallOptions { pubkey: None, health: health(args, true), keep: args.keep };
    Ok(install::install(&args.bundle, root, &options)?)
}

/// One ssh connection's settings.
struct Ssh<'a> {
    args: &'a FlashArgs,
    host: &'a str,
}

impl Ssh<'_> {
    fn command(&self, remote: &str) -> Command {
        let mut c = Command::new("ssh");
        c.args(["-o", "BatchMode=yes", "-o", "ConnectTimeout=15"]);
        if let Some(config) = &self.args.ssh_config {
            c.arg("-F").arg(config);
        }
        if let Some(port) = self.args.port {
            c.arg("-p").arg(port.to_string());
        }
        if let Some(identity) = &self.args.identity {
            c.arg("-i").arg(identity);
        }
        c.arg(self.host).arg("--").arg(remote);
        c
    }

    /// Runs `remote` with `sh`, returns its stdout; fails with its stderr.
    fn run(&self, remote: &str) -> anyhow::Result<String> {
        let output = self
            .command(remote)
            .stdin(Stdio::null())
            .output()
            .context("running ssh (install OpenSSH's client)")?;
        if !output.status.success() {
            bail!(
                "on {}: `{remote}` failed ({}): {}",
                self.host,
                output.status,
                String::from_utf8_lossy(&output.stderr).trim()
            );
        }
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    }

    /// Copies `bytes` to `remote` (written as `remote.part`, then renamed).
    fn put(&self, bytes: &[u8], remote: &str) -> anyhow::Result<()> {
        let part = format!("{remote}.part");
        let mut child = self
            .command(&format!("cat > {} && mv {} {}", quote(&part), quote(&part), quote(remote)))
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .context("running ssh")?;
        child.stdin.take().expect("piped").write_all(bytes).context("sending over ssh")?;
        let output = child.wait_with_output()?;
        if !output.status.success() {
            bail!("copying to {}:{remote}: {}", self.host, String::from_utf8_lossy(&output.stderr).trim());
        }
        Ok(())
    }
}

/// `text` as one word for a POSIX shell.
fn quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', r"'\''"))
}

fn flash_ssh(args: &FlashArgs, host: &str, manifest: &bundle::Manifest) -> anyhow::Result<InstallReport> {
    let ssh = Ssh { args, host };
    let root = args.remote_root.trim_end_matches('/');
    let q = |p: &str| quote(&format!("{root}/{p}"));
    eprintln!("connecting to {host} ...");
    let probe = ssh.run(&format!(
        "uname -m; test -f {key} && echo key; test -x {runtime} && echo runtime; true",
        key = q("keys/fleet.pub"),
        runtime = q("current/bin/nines-onboard")
    ))?;
    let mut lines = probe.lines();
    let machine = lines.next().unwrap_or_default().trim().to_owned();
    let has_key = probe.lines().any(|l| l == "key");
    let has_runtime = probe.lines().any(|l| l == "runtime");
    let arch = manifest.target.split('-').next().unwrap_or_default();
    if machine != arch {
        bail!(
            "{host} is {machine}, the bundle is for {}: build one with `nines bundle --target {machine}-unknown-linux-gnu`",
            manifest.target
        );
    }
    match (has_key, &args.pubkey) {
        (true, Some(pubkey)) => {
            let installed = ssh.run(&format!("cat {}", q("keys/fleet.pub")))?;
            if installed.trim() != std::fs::read_to_string(pubkey)?.trim() {
                bail!(
                    "{host} trusts another fleet key ({root}/keys/fleet.pub); refusing to replace it from here"
                );
            }
        }
        (true, None) => {}
        (false, Some(pubkey)) => {
            eprintln!(
                "{host} trusts no fleet key yet: installing {} as {root}/keys/fleet.pub",
                pubkey.display()
            );
            ssh.run(&format!("mkdir -p {}", q("keys")))?;
            ssh.put(&std::fs::read(pubkey)?, &format!("{root}/keys/fleet.pub"))?;
        }
        (false, None) => bail!(
            "{host} trusts no fleet key ({root}/keys/fleet.pub is missing): provision it with --pubkey fleet.pub"
        ),
    }
    ssh.run(&format!("mkdir -p {}", q("incoming")))?;
    let remote_bundle = format!("{root}/incoming/{}.nines", manifest.id);
    let bytes = std::fs::read(&args.bundle)?;
    eprintln!("copying {:.1} MB to {host}:{remote_bundle} ...", bytes.len() as f64 / 1e6);
    ssh.put(&bytes, &remote_bundle)?;

    // The installer: the robot's installed runtime, or on a first install the
    // bundle's own, once this machine has checked it with the robot's key.
    let installer = if has_runtime {
        format!("{root}/current/bin/nines-onboard")
    } else {
        let key_pem = ssh.run(&format!("cat {}", q("keys/fleet.pub")))?;
        let tmp = tempfile::NamedTempFile::new()?;
        std::fs::write(tmp.path(), key_pem)?;
        let verified = bundle::verify(&args.bundle, &keys::read_verifying_key(tmp.path())?)?;
        let index = verified.manifest.files.iter().position(|f| f.path == "bin/nines-onboard");
        let binary = index.map(|i| &verified.files[i]).context("the bundle has no bin/nines-onboard")?;
        let path = format!("{root}/incoming/nines-onboard-{}", manifest.id);
        ssh.put(binary, &path)?;
        ssh.run(&format!("chmod 755 {}", quote(&path)))?;
        eprintln!("{host} has no release yet: installing with the bundle's own installer");
        path
    };
    eprintln!(
        "installing on {host} (health: {}) ...",
        if args.service == "none" { "self-test" } else { "systemd" }
    );
    let command = format!(
        "{installer} install {bundle} --root {root} --service {service} --keep {keep} --health-timeout {timeout}; \
         code=$?; rm -f {bundle} {bootstrap}; exit $code",
        installer = quote(&installer),
        bundle = quote(&remote_bundle),
        root = quote(root),
        service = quote(&args.service),
        keep = args.keep,
        timeout = args.health_timeout,
        bootstrap = if has_runtime { String::new() } else { quote(&installer) },
    );
    let output = ssh.command(&command).stdin(Stdio::null()).output().context("running ssh")?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    let report = stdout.lines().rev().find_map(|l| serde_json::from_str::<InstallReport>(l).ok());
    match report {
        Some(report) => Ok(report),
        None => bail!(
            "the install on {host} failed ({}): {}",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        ),
    }
}
