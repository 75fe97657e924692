//! The aarch64 tier (slow, ignored): a bundle cross-built for
//! aarch64-unknown-linux-gnu is installed with its self-test under
//! qemu-aarch64 (user mode), and the installed aarch64 runtime drives a
//! recorded drive like the x86-64 one.
//!
//! `bash scripts/setup.sh --cross && cargo test -p nines-tools --test cross -- --ignored --nocapture`

#![allow(clippy::unwrap_used, reason = "a test fails loudly on any error")]

use std::path::{Path, PathBuf};
use std::process::Command;

use nines_sim::family;
use nines_sim::record::{RecordOptions, record_expert};

/// Largest difference allowed between the two builds' commands, in the
/// commands' own units (rad, m/s, m/s^2): the same network on NEON and AVX
/// kernels sums in different orders.
const TOLERANCE: f64 = 1e-3;

mod support;
use support::nines;

/// Every command the runtime printed: (stamp, steering, speed, acceleration).
fn drive(runner: Option<&Path>, binary: &Path, release: &Path, drive: &Path) -> Vec<(u64, f64, f64, f64)> {
    let mut command = match runner {
        Some(runner) => {
            let mut c = Command::new(runner);
            c.arg(binary);
            c
        }
        None => Command::new(binary),
    };
    let out = command
        .arg("--config")
        .arg(release.join("config/vehicle.toml"))
        .arg("--model")
        .arg(release.join("model/model.onnx"))
        .arg("--source")
        .arg(drive)
        .arg("--print")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let events: Vec<&str> = stderr.lines().filter(|l| l.contains("event at")).collect();
    assert!(events.iter().all(|e| e.contains("source_ended")), "the run had events: {events:?}");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|line| {
            let v: serde_json::Value = serde_json::from_str(line).unwrap();
            let f = |k: &str| v[k].as_f64().unwrap();
            (v["stamp_ns"].as_u64().unwrap(), f("steering_angle"), f("speed"), f("acceleration"))
        })
        .collect()
}

#[test]
#[ignore = "slow: cross-builds the runtime in release (about 8 min on 2 cores); needs `bash scripts/setup.sh --cross`"]
fn the_aarch64_runtime_from_a_bundle_drives_a_recorded_drive_like_the_x86_64_one() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let support = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support");
    let runner = support.join("qemu-aarch64.sh");
    nines_onboard::release::keys::generate(&d.join("fleet")).unwrap();
    // A trained model (the demo's quick variant: a few simulated drives, one
    // epoch), so that its commands follow what the camera sees.
    let demo = d.join("demo");
    nines(&["demo".as_ref(), "--quick".as_ref(), "--out".as_ref(), demo.as_os_str()]).unwrap();
    let model = std::fs::read_dir(&demo)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|e| e == "onnx"))
        .expect("the demo's model");
    // The deadline is a wall-clock check, and emulation is tens of times
    // slower than a robot: with it, the emulated run stops the car and the
    // comparison would be of the safety monitor, not of the two builds.
    let sim_config = Path::new(env!("CARGO_MANIFEST_DIR")).join("../configs/vehicle-sim.toml");
    let text = std::fs::read_to_string(sim_config).unwrap();
    assert!(text.contains("inference_deadline_ms = 80.0"));
    let config = d.join("vehicle.toml");
    std::fs::write(&config, text.replace("inference_deadline_ms = 80.0", "inference_deadline_ms = 60000.0"))
        .unwrap();
    let bundle = d.join("arm.nines");
    let target = ["--target".as_ref(), "aarch64-unknown-linux-gnu".as_ref()];
    support::bundle(&model, &config, &d.join("fleet.key"), &bundle, &target).unwrap();
    let root = d.join("sd-card");
    let runner_arg = runner.to_string_lossy().into_owned();
    support::flash_local(&bundle, &root, &d.join("fleet.pub"), &["--runner".as_ref(), runner_arg.as_ref()])
        .unwrap();
    let release: PathBuf = root.join("current");
    let file = Command::new("file").arg(release.join("bin/nines-onboard")).output().unwrap();
    let file = String::from_utf8_lossy(&file.stdout);
    assert!(file.contains("ARM aarch64"), "{file}");

    let recorded = d.join("drive.mcap");
    let options = RecordOptions { duration_secs: Some(6.0), ..RecordOptions::default() };
    record_expert(family("lead_brake").unwrap().draw("lead_brake", 4), &recorded, &options).unwrap();
    let arm = drive(Some(&runner), &release.join("bin/nines-onboard"), &release, &recorded);
    let host = Path::new(env!("CARGO_BIN_EXE_nines")).with_file_name("nines-onboard");
    let x86 = drive(None, &host, &release, &recorded);
    assert_eq!(arm.len(), x86.len(), "command counts differ");
    assert!(arm.len() > 50, "only {} commands", arm.len());
    // The commands follow the drive, so equal lists say something.
    let mut distinct: Vec<[u64; 3]> =
        x86.iter().map(|c| [c.1.to_bits(), c.2.to_bits(), c.3.to_bits()]).collect();
    distinct.sort_unstable();
    distinct.dedup();
    assert!(distinct.len() > 50, "only {} distinct commands", distinct.len());
    let mut worst = 0.0f64;
    for (a, x) in arm.iter().zip(&x86) {
        assert_eq!(a.0, x.0, "stamps differ");
        worst = worst.max((a.1 - x.1).abs()).max((a.2 - x.2).abs()).max((a.3 - x.3).abs());
    }
    eprintln!(
        "{} commands ({} distinct); largest difference between aarch64 (qemu) and x86-64: {worst:.2e}",
        arm.len(),
        distinct.len()
    );
    assert!(worst <= TOLERANCE, "aarch64 and x86-64 differ by {worst} (tolerance {TOLERANCE})");
}
