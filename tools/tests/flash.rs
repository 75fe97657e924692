//! Flashing: signed bundles, the atomic install with health check and
//! rollback, crashes at any point, and the ssh path against a real OpenSSH
//! server on loopback (docs/FLASH.md).

#![allow(clippy::unwrap_used, reason = "a test fails loudly on any error")]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

use nines_datasets::contract::ModelContract;
use nines_onboard::release::install::{self, InstallReport, Outcome};
use nines_onboard::release::layout::Layout;
use nines_onboard::release::status;
use sha2::{Digest, Sha256};

mod support;
use support::nines;

/// The runtime binary cargo built for this workspace (the robot's installed runtime here).
fn onboard_binary() -> PathBuf {
    let path = Path::new(env!("CARGO_BIN_EXE_nines")).with_file_name("nines-onboard");
    assert!(
        path.is_file(),
        "{} missing: `cargo test --workspace` builds it (onboard/tests/cli.rs needs it), or `cargo build -p nines-onboard`",
        path.display()
    );
    path
}

struct Fixture {
    dir: PathBuf,
    /// Signed with the fleet key: two releases with different models.
    a: PathBuf,
    b: PathBuf,
    /// A release whose runtime cannot start (its self-test fails).
    broken: PathBuf,
    /// Signed with another key.
    rogue: PathBuf,
    fleet_pub: PathBuf,
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("flash-fixture");
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        nines_onboard::release::keys::generate(&dir.join("fleet")).unwrap();
        nines_onboard::release::keys::generate(&dir.join("rogue")).unwrap();
        let config = Path::new(env!("CARGO_MANIFEST_DIR")).join("../configs/vehicle-sim.toml");
        let make = |name: &str, seed: u64, key: &str, binary: &Path| {
            let model = dir.join(format!("{name}.onnx"));
            nines_offboard::export::export_untrained("tiny", &ModelContract::default(), seed, &model)
                .unwrap();
            let out = dir.join(format!("{name}.nines"));
            let key = dir.join(format!("{key}.key"));
            support::bundle(&model, &config, &key, &out, &["--binary".as_ref(), binary.as_os_str()]).unwrap();
            out
        };
        let onboard = onboard_binary();
        Fixture {
            a: make("a", 1, "fleet", &onboard),
            b: make("b", 2, "fleet", &onboard),
            broken: make("broken", 3, "fleet", Path::new("/bin/false")),
            rogue: make("rogue", 4, "rogue", &onboard),
            fleet_pub: dir.join("fleet.pub"),
            dir,
        }
    })
}

#[test]
fn a_bundle_lists_the_libraries_its_runtime_needs_and_refuses_those_the_robot_lacks() {
    let fx = fixture();
    // The workspace builds nines-onboard with OpenCV (its default features):
    // the manifest says so because the ELF says so.
    let manifest = nines_onboard::release::bundle::peek(&fx.a).unwrap();
    let opencv: Vec<&String> =
        manifest.needed_libraries.iter().filter(|l| l.starts_with("libopencv_")).collect();
    assert!(!opencv.is_empty(), "{:?}", manifest.needed_libraries);
    assert!(
        manifest.needed_libraries.iter().any(|l| l.starts_with("libc.so")),
        "{:?}",
        manifest.needed_libraries
    );
    assert!(manifest.features.iter().any(|f| f == "opencv"), "{:?}", manifest.features);
    // A robot without OpenCV: the bundle is refused, the library named.
    let config = Path::new(env!("CARGO_MANIFEST_DIR")).join("../configs/vehicle-sim.toml");
    let text = std::fs::read_to_string(&config).unwrap();
    let lacking = fx.dir.join("no-opencv.toml");
    let text = text.replacen("[vehicle]\n", "[vehicle]\nsystem_libraries = [\"libz.so.1\"]\n", 1);
    assert!(text.contains("system_libraries"), "configs/vehicle-sim.toml has a [vehicle] table");
    std::fs::write(&lacking, text).unwrap();
    let out = fx.dir.join("no-opencv.nines");
    let binary = onboard_binary();
    let err = support::bundle(
        &fx.dir.join("a.onnx"),
        &lacking,
        &fx.dir.join("fleet.key"),
        &out,
        &["--binary".as_ref(), binary.as_os_str()],
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains(opencv[0].as_str()) && err.contains("system_libraries"), "{err}");
    assert!(!out.exists(), "no bundle is written");
}

fn local(bundle: &Path, root: &Path, keep: usize) -> anyhow::Result<()> {
    let keep = keep.to_string();
    support::flash_local(bundle, root, &fixture().fleet_pub, &["--keep".as_ref(), keep.as_ref()])
}

fn id_of(bundle: &Path) -> String {
    nines_onboard::release::bundle::peek(bundle).unwrap().id
}

/// Every path under `root` with its content digest (or link target).
fn snapshot(root: &Path) -> BTreeMap<PathBuf, String> {
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap().flatten() {
            let path = entry.path();
            let meta = std::fs::symlink_metadata(&path).unwrap();
            let value = if meta.file_type().is_symlink() {
                format!("-> {}", std::fs::read_link(&path).unwrap().display())
            } else if meta.is_dir() {
                stack.push(path.clone());
                "dir".into()
            } else {
                format!("{:x}", Sha256::digest(std::fs::read(&path).unwrap()))
            };
            out.insert(path.strip_prefix(root).unwrap().to_path_buf(), value);
        }
    }
    out
}

/// The current release is complete: every file matches its manifest.
fn assert_current_whole(root: &Path, expected: &[&str]) -> String {
    let layout = Layout::new(root);
    let id = layout.current_id().expect("a current release");
    assert!(expected.contains(&id.as_str()), "current is {id}, expected one of {expected:?}");
    let dir = layout.release(&id);
    let manifest = status::read_manifest(&dir).unwrap();
    assert_eq!(status::intact(&dir, &manifest), Vec::<String>::new(), "release {id} is not whole");
    id
}

#[test]
fn a_tampered_or_foreign_bundle_is_refused_and_the_target_does_not_change() {
    let f = fixture();
    let root = tempfile::tempdir().unwrap();
    let root = root.path().join("robot");
    local(&f.a, &root, 3).unwrap();
    let before = snapshot(&root);
    let bytes = std::fs::read(&f.b).unwrap();
    let tampered = f.dir.join("tampered.nines");
    // A byte at the compressed payload's start, further in, in its middle, and of the signature at the end.
    for offset in [60, 200, bytes.len() / 2, bytes.len() - 1] {
        let mut changed = bytes.clone();
        changed[offset] ^= 0x01;
        std::fs::write(&tampered, &changed).unwrap();
        let err = local(&tampered, &root, 3).unwrap_err().to_string();
        assert!(err.contains("signature does not match"), "byte {offset}: {err}");
        assert_eq!(snapshot(&root), before, "a refused bundle (byte {offset} changed) changed the target");
    }
    let err = local(&f.rogue, &root, 3).unwrap_err().to_string();
    assert!(err.contains("signed by key"), "{err}");
    std::fs::write(&tampered, b"#!/bin/sh\nrm -rf /\n").unwrap();
    let err = local(&tampered, &root, 3).unwrap_err().to_string();
    assert!(err.contains("not a nines bundle"), "{err}");
    assert_eq!(snapshot(&root), before);

    // The robot's own tools say the same.
    let verify = |bundle: &Path| {
        Command::new(onboard_binary())
            .arg("verify")
            .arg(bundle)
            .arg("--pubkey")
            .arg(&f.fleet_pub)
            .output()
            .unwrap()
    };
    let good = verify(&f.b);
    assert!(good.status.success(), "{}", String::from_utf8_lossy(&good.stderr));
    assert!(String::from_utf8_lossy(&good.stdout).contains("signature good"));
    let bad = verify(&f.rogue);
    assert!(!bad.status.success());
    let status = Command::new(onboard_binary()).arg("status").arg("--root").arg(&root).output().unwrap();
    let text = String::from_utf8_lossy(&status.stdout);
    assert!(
        status.status.success() && text.contains(&id_of(&f.a)) && text.contains("files intact"),
        "{text}"
    );
}

#[test]
fn an_unhealthy_release_is_rolled_back_and_a_failed_first_install_leaves_none() {
    let f = fixture();
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("robot");
    let err = local(&f.broken, &root, 3).unwrap_err().to_string();
    assert!(err.contains("first install") && err.contains("no current release"), "{err}");
    assert!(
        std::fs::symlink_metadata(root.join("current")).is_err(),
        "a failed first install left `current`"
    );
    assert!(
        std::fs::read_dir(root.join("releases")).unwrap().next().is_none(),
        "the failed release was kept"
    );

    local(&f.a, &root, 3).unwrap();
    let err = local(&f.broken, &root, 3).unwrap_err().to_string();
    assert!(err.contains("rolled back to") && err.contains("self-test exited"), "{err}");
    assert_eq!(assert_current_whole(&root, &[&id_of(&f.a)]), id_of(&f.a));
    let journal = std::fs::read_to_string(root.join("install.log")).unwrap();
    assert!(journal.contains("\"rolled_back\""), "{journal}");

    // Releases beyond --keep go; the current and the previous stay.
    local(&f.b, &root, 1).unwrap();
    let releases: Vec<_> =
        std::fs::read_dir(root.join("releases")).unwrap().flatten().map(|e| e.file_name()).collect();
    assert_eq!(releases.len(), 2, "current and previous kept: {releases:?}");
    local(&f.a, &root, 1).unwrap();
    assert_eq!(assert_current_whole(&root, &[&id_of(&f.a)]), id_of(&f.a));
}

#[test]
fn killing_the_install_at_ten_random_points_leaves_a_whole_release() {
    use rand::{Rng, SeedableRng};
    let f = fixture();
    let dir = tempfile::tempdir().unwrap();
    let base = dir.path().join("base");
    local(&f.a, &base, 3).unwrap();
    let (a, b) = (id_of(&f.a), id_of(&f.b));
    let install = |root: &Path, abort_at: Option<u32>| {
        let mut c = Command::new(onboard_binary());
        c.arg("install").arg(&f.b).arg("--root").arg(root).args(["--service", "none"]);
        if let Some(at) = abort_at {
            c.env(install::ABORT_ENV, at.to_string());
        }
        c.stderr(Stdio::null()).output().unwrap()
    };
    let copy = |to: &Path| {
        let status = Command::new("cp").arg("-a").arg(&base).arg(to).status().unwrap();
        assert!(status.success());
    };
    // How many steps an install changes the disk in.
    let probe = dir.path().join("probe");
    copy(&probe);
    let out = install(&probe, None);
    assert!(out.status.success());
    let report: InstallReport = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report.outcome, Outcome::Installed);
    let steps = report.steps;
    assert!(steps >= 10, "only {steps} steps");

    let seed =
        std::env::var("NINES_CRASH_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or_else(rand::random);
    eprintln!("crash points drawn with NINES_CRASH_SEED={seed} out of {steps} steps");
    let mut rng = rand::rngs::SmallRng::seed_from_u64(seed);
    let mut points: Vec<u32> = (1..=steps).collect();
    for i in (1..points.len()).rev() {
        points.swap(i, rng.random_range(0..=i));
    }
    for &at in points.iter().take(10) {
        let root = dir.path().join(format!("killed-at-{at}"));
        copy(&root);
        let out = install(&root, Some(at));
        assert!(out.status.code().is_none(), "the install was to be killed at step {at}");
        let now = assert_current_whole(&root, &[&a, &b]);
        eprintln!(
            "killed at step {at:>2}: current is {}",
            if now == a { "the previous release" } else { "the new one" }
        );
        // The next install finishes the job, whatever the kill left.
        let out = install(&root, None);
        assert!(
            out.status.success(),
            "re-install after a kill at {at}: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        assert_eq!(assert_current_whole(&root, &[&b]), b);
        let leftovers: Vec<_> = std::fs::read_dir(root.join("releases"))
            .unwrap()
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().starts_with('.'))
            .collect();
        assert!(leftovers.is_empty(), "staging left after a kill at {at}: {leftovers:?}");
    }
}

/// An OpenSSH server on loopback, run as an unprivileged user: the robot.
/// As root the tests log in as `nines-robot` (scripts/setup.sh creates it);
/// otherwise as the user running them.
struct Robot {
    sshd: std::process::Child,
    port: u16,
    user: String,
    /// The robot user's folder (its install root goes inside).
    home: tempfile::TempDir,
    /// The client's key, known_hosts and ssh config.
    client: tempfile::TempDir,
}

fn run_ok(command: &mut Command) -> String {
    let out = command.output().unwrap_or_else(|e| panic!("{command:?}: {e}"));
    assert!(out.status.success(), "{command:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

impl Robot {
    fn start() -> Self {
        let sshd = Path::new("/usr/sbin/sshd");
        assert!(sshd.is_file(), "no OpenSSH server: run scripts/setup.sh (it installs openssh-server)");
        let root = run_ok(Command::new("id").arg("-u")) == "0";
        let user = if root {
            let robot = "nines-robot";
            assert!(
                Command::new("id").arg(robot).output().is_ok_and(|o| o.status.success()),
                "no user {robot}: run scripts/setup.sh (as root it creates this unprivileged user for the ssh test)"
            );
            robot.to_owned()
        } else {
            run_ok(Command::new("id").arg("-un"))
        };
        // Under /tmp, not the test's TMPDIR: the robot user must reach it.
        let home = tempfile::Builder::new().prefix("nines-robot-").tempdir_in("/tmp").unwrap();
        let client = tempfile::tempdir().unwrap();
        let h = home.path();
        let keygen = |path: &Path| {
            run_ok(Command::new("ssh-keygen").args(["-q", "-t", "ed25519", "-N", "", "-f"]).arg(path));
        };
        keygen(&h.join("host_key"));
        keygen(&client.path().join("key"));
        std::fs::copy(client.path().join("key.pub"), h.join("authorized_keys")).unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        std::fs::write(
            h.join("sshd_config"),
            format!(
                "Port {port}\nListenAddress 127.0.0.1\nHostKey {h}/host_key\nPidFile none\n\
                 AuthorizedKeysFile {h}/authorized_keys\nPubkeyAuthentication yes\nPasswordAuthentication no\n\
                 KbdInteractiveAuthentication no\nUsePAM no\nStrictModes no\nLogLevel ERROR\n",
                h = h.display()
            ),
        )
        .unwrap();
        let host_key = std::fs::read_to_string(h.join("host_key.pub")).unwrap();
        std::fs::write(client.path().join("known_hosts"), format!("[127.0.0.1]:{port} {host_key}")).unwrap();
        std::fs::write(
            client.path().join("ssh_config"),
            format!(
                "Host robot\n  HostName 127.0.0.1\n  IdentityFile {c}/key\n  IdentitiesOnly yes\n  \
                 UserKnownHostsFile {c}/known_hosts\n  StrictHostKeyChecking yes\n  LogLevel ERROR\n",
                c = client.path().display()
            ),
        )
        .unwrap();
        let mut command = if root {
            run_ok(Command::new("chown").arg("-R").arg(format!("{user}:")).arg(h));
            let mut c = Command::new("setpriv");
            c.args(["--reuid", &user, "--regid", &user, "--init-groups"]).arg(sshd);
            c
        } else {
            Command::new(sshd)
        };
        let sshd = command.arg("-D").arg("-e").arg("-f").arg(h.join("sshd_config")).spawn().unwrap();
        let start = std::time::Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(start.elapsed().as_secs() < 20, "sshd did not start listening on {port}");
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        Self { sshd, port, user, home, client }
    }

    fn root(&self) -> PathBuf {
        self.home.path().join("robot")
    }

    fn flash(&self, bundle: &Path, pubkey: bool) -> anyhow::Result<()> {
        let host = format!("{}@robot", self.user);
        let port = self.port.to_string();
        let config = self.client.path().join("ssh_config");
        let root = self.root();
        let mut args: Vec<&std::ffi::OsStr> = vec![
            "flash".as_ref(),
            bundle.as_os_str(),
            "--host".as_ref(),
            host.as_ref(),
            "--port".as_ref(),
            port.as_ref(),
            "--ssh-config".as_ref(),
            config.as_os_str(),
            "--remote-root".as_ref(),
            root.as_os_str(),
            "--service".as_ref(),
            "none".as_ref(),
        ];
        if pubkey {
            args.extend(["--pubkey".as_ref(), fixture().fleet_pub.as_os_str()]);
        }
        nines(&args)
    }

    fn ssh(&self, remote: &str) -> String {
        run_ok(Command::new("ssh").arg("-F").arg(self.client.path().join("ssh_config")).args([
            "-p",
            &self.port.to_string(),
            &format!("{}@robot", self.user),
            "--",
            remote,
        ]))
    }
}

impl Drop for Robot {
    fn drop(&mut self) {
        let _ = self.sshd.kill();
        let _ = self.sshd.wait();
    }
}

#[test]
fn flash_over_ssh_to_a_loopback_openssh_server() {
    let f = fixture();
    let robot = Robot::start();
    assert_ne!(robot.ssh("id -u"), "0", "the robot's ssh server must run unprivileged");
    // A robot that trusts no key refuses to be flashed until it is given one.
    let err = robot.flash(&f.a, false).unwrap_err().to_string();
    assert!(err.contains("trusts no fleet key"), "{err}");
    // First install: the key is provisioned, the bundle's own installer runs.
    robot.flash(&f.a, true).unwrap();
    assert_eq!(assert_current_whole(&robot.root(), &[&id_of(&f.a)]), id_of(&f.a));
    // Then the installed runtime verifies and installs the next one.
    robot.flash(&f.b, false).unwrap();
    assert_eq!(assert_current_whole(&robot.root(), &[&id_of(&f.b)]), id_of(&f.b));
    let before = snapshot(&robot.root());
    let mut bytes = std::fs::read(&f.a).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x80;
    let tampered = robot.client.path().join("tampered.nines");
    std::fs::write(&tampered, &bytes).unwrap();
    let err = robot.flash(&tampered, false).unwrap_err().to_string();
    assert!(err.contains("signature does not match"), "{err}");
    let err = robot.flash(&f.rogue, false).unwrap_err().to_string();
    assert!(err.contains("signed by key"), "{err}");
    assert_eq!(snapshot(&robot.root()), before, "a refused bundle changed the robot");
    // An unhealthy release is rolled back on the robot.
    let err = robot.flash(&f.broken, false).unwrap_err().to_string();
    assert!(err.contains("rolled back to"), "{err}");
    let root = robot.root();
    let status =
        robot.ssh(&format!("{}/current/bin/nines-onboard status --root {}", root.display(), root.display()));
    assert!(
        status.contains(&format!("current {}", id_of(&f.b))) && status.contains("files intact"),
        "{status}"
    );
}

#[test]
fn the_runtime_tells_systemd_it_is_ready_and_pings_the_watchdog() {
    use std::os::unix::net::UnixDatagram;
    let f = fixture();
    let dir = tempfile::tempdir().unwrap();
    let drive = dir.path().join("drive.mcap");
    let options = nines_sim::record::RecordOptions { duration_secs: Some(2.0), ..Default::default() };
    nines_sim::record::record_expert(
        nines_sim::family("straight").unwrap().draw("straight", 1),
        &drive,
        &options,
    )
    .unwrap();
    // The socket systemd would hand a Type=notify service.
    let socket_path = dir.path().join("notify.sock");
    let socket = UnixDatagram::bind(&socket_path).unwrap();
    socket.set_read_timeout(Some(std::time::Duration::from_secs(30))).unwrap();
    let config = Path::new(env!("CARGO_MANIFEST_DIR")).join("../configs/vehicle-sim.toml");
    // Read as systemd does, while the runtime runs: an unread socket fills and blocks the sender.
    let reader = std::thread::Builder::new()
        .name("notify-reader".into())
        .spawn(move || {
            let mut messages = Vec::new();
            let mut buf = [0u8; 512];
            while let Ok(n) = socket.recv(&mut buf) {
                let message = String::from_utf8_lossy(&buf[..n]).into_owned();
                let done = message.contains("STOPPING=1");
                messages.push(message);
                if done {
                    break;
                }
            }
            messages
        })
        .unwrap();
    // systemd names the service's PID in WATCHDOG_PID: `exec` keeps the shell's.
    let out = Command::new("sh")
        .arg("-c")
        .arg("WATCHDOG_PID=$$ exec \"$0\" \"$@\"")
        .arg(onboard_binary())
        .arg("--config")
        .arg(&config)
        .arg("--model")
        .arg(f.dir.join("a.onnx"))
        .arg("--source")
        .arg(&drive)
        .env("NOTIFY_SOCKET", &socket_path)
        .env("WATCHDOG_USEC", "20000")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    // The runtime's last word; the reader also gives up after its timeout.
    let sender = UnixDatagram::unbound().unwrap();
    let _ = sender.send_to(b"STOPPING=1", &socket_path);
    let messages = reader.join().unwrap();
    assert!(messages.first().is_some_and(|m| m.lines().any(|l| l == "READY=1")), "{messages:?}");
    assert!(messages.iter().skip(1).any(|m| m == "WATCHDOG=1\n" || m == "WATCHDOG=1"), "{messages:?}");
}
