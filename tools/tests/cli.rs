//! The `nines` binary as a user runs it.

#![allow(clippy::unwrap_used, reason = "a test fails loudly on any error")]
#![allow(clippy::float_cmp, reason = "round trips must be bit-exact")]
#![allow(clippy::too_many_lines, clippy::cast_lossless, reason = "test scenarios read top to bottom")]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn nines(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_nines")).args(args).output().expect("running nines")
}

fn text(out: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

fn kitti_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/data/kitti-000008")
}

fn import_kitti(dir: &Path) -> PathBuf {
    let drive = dir.join("kitti.mcap");
    let out =
        nines(&["import", "kitti-object", kitti_dir().to_str().unwrap(), "--out", drive.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("17238 lidar points, 6 labelled objects"), "{}", text(&out));
    drive
}

#[test]
fn inspect_reports_topics_calibration_and_json() {
    let dir = tempfile::tempdir().unwrap();
    let drive = import_kitti(dir.path());
    let out = nines(&["inspect", drive.to_str().unwrap()]);
    let shown = text(&out);
    assert!(out.status.success(), "{shown}");
    for needle in ["/lidar/top/points", "sensor_msgs/msg/PointCloud2", "1242x375", "fx 721.5", "kitti.calib"]
    {
        assert!(shown.contains(needle), "missing {needle} in\n{shown}");
    }
    let out = nines(&["inspect", "--json", drive.to_str().unwrap()]);
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["messages"], 6);
    assert_eq!(json["cameras"][0]["resolution"], serde_json::json!([1242, 375]));
    assert_eq!(json["sync"]["frames_without_lidar"], 0);
}

#[test]
fn inspect_says_clearly_what_is_wrong_with_a_file() {
    let dir = tempfile::tempdir().unwrap();
    let not_mcap = dir.path().join("photo.png");
    std::fs::copy(kitti_dir().join("image_02.png"), &not_mcap).unwrap();
    let out = nines(&["inspect", not_mcap.to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(
        text(&out).contains("photo.png") && text(&out).contains("not an MCAP drive log"),
        "{}",
        text(&out)
    );

    let drive = import_kitti(dir.path());
    let bytes = std::fs::read(&drive).unwrap();
    let cut = dir.path().join("cut.mcap");
    std::fs::write(&cut, &bytes[..bytes.len() * 2 / 3]).unwrap();
    let out = nines(&["inspect", cut.to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(text(&out).contains("cut.mcap") && text(&out).contains("nines recover"), "{}", text(&out));

    let missing = nines(&["inspect", "/nonexistent/drive.mcap"]);
    assert!(text(&missing).contains("/nonexistent/drive.mcap"), "{}", text(&missing));
}

#[test]
fn recover_repairs_a_cut_drive() {
    let dir = tempfile::tempdir().unwrap();
    let drive = import_kitti(dir.path());
    let bytes = std::fs::read(&drive).unwrap();
    // Cut inside the summary: every message survives.
    let cut = dir.path().join("cut.mcap");
    std::fs::write(&cut, &bytes[..bytes.len() - 100]).unwrap();
    let fixed = dir.path().join("fixed.mcap");
    let out = nines(&["recover", "--json", cut.to_str().unwrap(), fixed.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["messages"], 6);
    assert_eq!(report["metadata"], 2);
    let out = nines(&["inspect", "--json", fixed.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out));
    let out = nines(&["recover", cut.to_str().unwrap(), cut.to_str().unwrap()]);
    assert!(!out.status.success() && text(&out).contains("refusing to overwrite"), "{}", text(&out));
    // A damaged chunk: the exit status says data was lost (3) or nothing was readable (4).
    let chunk = nines_datasets::drive::DriveReader::open(&drive).unwrap().chunk_extents()[0];
    let mut damaged = bytes.clone();
    damaged[(chunk.offset + chunk.length / 2) as usize] ^= 0x5a;
    let bad = dir.path().join("bad.mcap");
    std::fs::write(&bad, &damaged).unwrap();
    let out = nines(&["recover", bad.to_str().unwrap(), dir.path().join("bad-fixed.mcap").to_str().unwrap()]);
    assert!(matches!(out.status.code(), Some(3 | 4)), "{:?}: {}", out.status, text(&out));
    assert!(!text(&out).contains("panicked"), "{}", text(&out));
}

#[test]
fn replay_says_what_is_wrong() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nowhere.mcap");
    let out = nines(&["replay", missing.to_str().unwrap(), "--save", "x.rrd"]);
    assert!(
        !out.status.success() && text(&out).contains("nowhere.mcap: no such drive file"),
        "{}",
        text(&out)
    );

    let notes = dir.path().join("notes.mcap");
    std::fs::write(&notes, "hello").unwrap();
    let rrd = dir.path().join("notes.rrd");
    let out = nines(&["replay", notes.to_str().unwrap(), "--save", rrd.to_str().unwrap()]);
    assert!(!out.status.success() && text(&out).contains("not an MCAP drive log"), "{}", text(&out));

    let out = nines(&["replay", notes.to_str().unwrap(), "--save", notes.to_str().unwrap()]);
    assert!(!out.status.success() && text(&out).contains("refusing to overwrite"), "{}", text(&out));
    assert_eq!(std::fs::read(&notes).unwrap(), b"hello", "the input is untouched");

    // No display (as over ssh): no viewer is started; the error says what to do instead.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_nines"))
        .args(["replay", notes.to_str().unwrap()])
        .env_remove("DISPLAY")
        .env_remove("WAYLAND_DISPLAY")
        .current_dir(dir.path())
        .output()
        .unwrap();
    let said = text(&out);
    assert!(!out.status.success() && said.contains("no display here"), "{said}");
    assert!(said.contains("--save notes.rrd") && said.contains("--serve-web"), "{said}");
    assert!(!said.contains("gRPC") && !said.contains("panicked"), "{said}");
}

#[test]
fn a_closed_pipe_ends_a_command_quietly() {
    // `nines sim list | head -c 10`: the reader is gone before the first write.
    for args in [&["sim", "list"][..], &["--help"][..]] {
        let mut child = Command::new(env!("CARGO_BIN_EXE_nines"))
            .args(args)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        drop(child.stdout.take());
        let out = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{args:?}: {:?} {stderr}", out.status);
        assert!(stderr.is_empty(), "{args:?}: {stderr}");
    }
}

#[test]
fn sim_lists_runs_and_batches() {
    let out = nines(&["sim", "list"]);
    assert!(out.status.success());
    let listed = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(listed.lines().count(), 10, "{listed}");
    assert!(listed.lines().any(|l| l.starts_with("recovery") && l.contains("not in \"all\"")), "{listed}");

    let dir = tempfile::tempdir().unwrap();
    let drive = dir.path().join("run.mcap");
    let d = drive.to_str().unwrap();
    let out = nines(&[
        "sim",
        "run",
        "--family",
        "lead_brake",
        "--seed",
        "3",
        "--duration",
        "1",
        "--width",
        "64",
        "--height",
        "32",
        "--out",
        d,
    ]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("lead_brake-3") && text(&out).contains("pass"), "{}", text(&out));
    let out = nines(&["inspect", "--json", d]);
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["sync"]["frames"], 10);

    let batch = dir.path().join("batch");
    let args = [
        "sim",
        "batch",
        "--families",
        "straight,fog",
        "--seeds",
        "0..2",
        "--duration",
        "0.5",
        "--width",
        "64",
        "--height",
        "32",
        "--jobs",
        "2",
        "--out",
    ];
    let out = nines(&[&args[..], &[batch.to_str().unwrap()]].concat());
    assert!(out.status.success(), "{}", text(&out));
    for name in ["straight-0", "straight-1", "fog-0", "fog-1"] {
        assert!(batch.join(format!("{name}.mcap")).exists(), "{name}");
    }
    let out = nines(&["sim", "run", "--family", "nope", "--out", d]);
    assert!(!out.status.success() && text(&out).contains("known families: straight"), "{}", text(&out));
    let out = nines(&["sim", "batch", "--seeds", "5..5", "--out", batch.to_str().unwrap()]);
    assert!(!out.status.success() && text(&out).contains("empty"), "{}", text(&out));
}

#[test]
fn replay_serves_the_web_viewer() {
    use std::io::{Read, Write};
    let dir = tempfile::tempdir().unwrap();
    let drive = import_kitti(dir.path());
    let free = || std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let (web, grpc) = (free(), free());
    let mut child = Command::new(env!("CARGO_BIN_EXE_nines"))
        .args(["replay", drive.to_str().unwrap(), "--serve-web", "--no-browser", "--serve-secs", "60"])
        .args(["--web-port", &web.to_string(), "--grpc-port", &grpc.to_string()])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut page = String::new();
    for _ in 0..300 {
        if let Ok(mut stream) = std::net::TcpStream::connect(("127.0.0.1", web)) {
            write!(stream, "GET / HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").unwrap();
            stream.read_to_string(&mut page).unwrap();
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let grpc_up = std::net::TcpStream::connect(("127.0.0.1", grpc)).is_ok();
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(page.starts_with("HTTP/1.") && page.contains(" 200 "), "{page:.200}");
    assert!(page.to_lowercase().contains("rerun"), "{page:.400}");
    assert!(grpc_up, "the data server listens on {grpc}");
}

#[test]
fn bench_project_matches_numpy_pixel_for_pixel_counts() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let out = Command::new(env!("CARGO_BIN_EXE_nines"))
        .args(["bench", "project", "--points", "200000", "--repeats", "1", "--json"])
        .current_dir(&root)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let rows: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let pixels = |prefix: &str| {
        rows.as_array().unwrap().iter().find(|r| r["what"].as_str().unwrap().starts_with(prefix)).unwrap()
            ["pixels_with_depth"]
            .as_u64()
            .unwrap()
    };
    let (cpu, numpy) = (pixels("cpu kernel, 1 core"), pixels("numpy"));
    assert!(cpu > 10_000, "{cpu} pixels");
    // The same projection: only points on a pixel edge may round differently.
    assert!(cpu.abs_diff(numpy) * 1000 <= cpu, "cpu {cpu} vs numpy {numpy}");
}

#[test]
fn long_help_explains_each_job() {
    for (command, needle) in [
        ("train", "--resume continues"),
        ("distill", "resumes"),
        ("export", "parity"),
        ("eval", "committed as it finishes"),
        ("demo", "small suite"),
    ] {
        let out = nines(&[command, "--help"]);
        assert!(
            out.status.success() && text(&out).contains(needle),
            "nines {command} --help:\n{}",
            text(&out)
        );
    }
}

/// Linked under the name `nines-onboard` (as scripts/demo.sh installs it),
/// the `nines` binary is the runtime's command, with its subcommands and
/// its own errors; under its own name it stays `nines`.
#[test]
fn the_nines_binary_is_the_runtime_when_named_nines_onboard() {
    let dir = tempfile::tempdir().unwrap();
    let onboard = dir.path().join("nines-onboard");
    std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_nines"), &onboard).unwrap();
    let out = Command::new(&onboard).arg("--help").output().unwrap();
    let help = text(&out);
    assert!(out.status.success(), "{help}");
    assert!(help.contains("Usage: nines-onboard"), "{help}");
    for subcommand in ["install", "verify", "status", "self-test"] {
        assert!(help.contains(subcommand), "missing {subcommand} in\n{help}");
    }
    let out = Command::new(&onboard)
        .args(["verify", "/nonexistent.nines", "--pubkey", "/nonexistent.pub"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(text(&out).contains("/nonexistent.pub: cannot read the fleet public key"), "{}", text(&out));
    let own = nines(&["--help"]);
    assert!(
        text(&own).contains("Usage: nines ") && !text(&own).contains("nines-onboard install"),
        "{}",
        text(&own)
    );
}
