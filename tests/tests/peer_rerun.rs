//! `nines replay` recordings open in the `rerun` CLI of the same version, with
//! the entities the replay promises: for a simulated drive, the imported
//! KITTI frame, a drive with model outputs, and cut or damaged drives.

#![allow(clippy::unwrap_used, reason = "a test fails loudly on any error")]

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use clap::Parser;
use nines_datasets::drive::{DriveReader, DriveWriter};
use nines_datasets::msg::{AckermannDrive, Event, Header, Image, ModelOutput, Time};
use nines_datasets::topics;
use nines_sim::family;
use nines_sim::record::{RecordOptions, record};
use nines_sim::render::camera::CameraConfig;
use nines_sim::render::lidar::LidarConfig;
use nines_tests::{peer_python, workspace_root};
use nines_tools::replay::{self, ReplayOptions, ReplayReport};

/// The `rerun` CLI next to the peer Python, with its config kept out of $HOME.
fn rerun_cli(scratch: &Path) -> Command {
    let rerun = peer_python().with_file_name("rerun");
    assert!(rerun.exists(), "{}: run scripts/setup.sh to install the rerun CLI", rerun.display());
    let mut command = Command::new(rerun);
    command
        .env("XDG_CONFIG_HOME", scratch.join("config"))
        .env("XDG_DATA_HOME", scratch.join("data"))
        .env("RERUN_ANALYTICS", "0")
        .stdin(Stdio::null());
    command
}

/// Entity paths in `rrd`, as `rerun rrd print` lists them, after `rrd verify` passed.
fn verified_entities(rrd: &Path) -> BTreeSet<String> {
    let scratch = rrd.parent().unwrap();
    let verify = rerun_cli(scratch).args(["rrd", "verify"]).arg(rrd).output().unwrap();
    assert!(verify.status.success(), "rerun rrd verify failed:\n{}", String::from_utf8_lossy(&verify.stderr));
    let print = rerun_cli(scratch).args(["rrd", "print"]).arg(rrd).output().unwrap();
    assert!(print.status.success(), "rerun rrd print failed:\n{}", String::from_utf8_lossy(&print.stderr));
    String::from_utf8(print.stdout)
        .unwrap()
        .lines()
        .filter(|line| line.starts_with("Chunk("))
        .filter_map(|line| line.split(" - ").nth(1))
        .map(str::to_owned)
        .collect()
}

fn assert_has(entities: &BTreeSet<String>, expected: &[&str]) {
    for entity in expected {
        assert!(entities.contains(&format!("/{entity}")), "{entity} missing from {entities:#?}");
    }
}

/// Replays through the command line, as a person would.
fn cli_replay(drive: &Path, rrd: &Path) {
    let cli = nines_tools::Cli::try_parse_from([
        "nines",
        "replay",
        drive.to_str().unwrap(),
        "--save",
        rrd.to_str().unwrap(),
    ])
    .unwrap();
    nines_tools::run(cli).unwrap();
}

/// Replays through the library, for the report.
fn lib_replay(drive: &Path, rrd: &Path) -> ReplayReport {
    replay::save_rrd(drive, rrd, &ReplayOptions::default()).unwrap()
}

/// A short closed-loop drive whose driver steers off the road: it has
/// ground truth, an event and a path that turns.
fn sim_drive(dir: &Path) -> PathBuf {
    let path = dir.join("off_road.mcap");
    let options = RecordOptions {
        camera: CameraConfig { width: 160, height: 80, ..CameraConfig::default() },
        lidar: LidarConfig { columns: 256, ..LidarConfig::default() },
        duration_secs: Some(6.0),
        ..RecordOptions::default()
    };
    let scenario = family("cut_in").unwrap().draw("cut_in", 4);
    let summary = record(scenario, &path, &options, |_| AckermannDrive {
        steering_angle: 0.35,
        speed: 12.0,
        acceleration: 2.0,
        ..AckermannDrive::default()
    })
    .unwrap();
    assert!(!summary.events.is_empty(), "the test drive should leave the road");
    path
}

#[test]
fn a_simulated_drive_replays_with_every_view() {
    let dir = tempfile::tempdir().unwrap();
    let drive = sim_drive(dir.path());
    let rrd = dir.path().join("off_road.rrd");
    cli_replay(&drive, &rrd);
    let entities = verified_entities(&rrd);
    assert_has(
        &entities,
        &[
            "world",
            "world/ego",
            "world/ego/body",
            "world/ego/camera",
            "world/ego/camera/image",
            "world/ego/camera/lidar_depth",
            "world/lidar",
            "world/driven_path",
            "world/ego/path_ahead",
            "world/events",
            "world/ground_truth",
            "events",
            "plots/steering/command",
            "plots/speed/command",
            "plots/speed/measured",
            "plots/acceleration/command",
            "plots/acceleration/measured",
            "plots/steering/expert",
            "plots/lane/lateral_offset_m",
            "plots/lane/heading_error_deg",
            // The default layout travels with the recording.
            "viewport",
        ],
    );

    let report = lib_replay(&drive, &dir.path().join("again.rrd"));
    assert!(report.is_whole(), "{:?}", report.skipped_lines());
    let frames = DriveReader::open(&drive)
        .unwrap()
        .topics()
        .iter()
        .find(|t| t.topic == topics::CAMERA_COMPRESSED)
        .unwrap()
        .message_count;
    assert_eq!(report.shown[topics::CAMERA_COMPRESSED], frames);
    // Every frame after the first sweep carries the lidar, and most of the
    // sweep in front of the camera lands in the image.
    assert!(report.overlaid_frames + 1 >= frames, "{} of {frames}", report.overlaid_frames);
    assert!(report.overlaid_points / report.overlaid_frames > 500, "{report:?}");
    assert_eq!(report.not_shown.keys().collect::<Vec<_>>(), [topics::GT_DEPTH]);
}

#[test]
fn the_kitti_frame_replays_with_its_annotations_and_lidar_on_the_image() {
    let dir = tempfile::tempdir().unwrap();
    let drive = dir.path().join("kitti.mcap");
    let source = workspace_root().join("../shared/data/kitti-000008");
    nines_datasets::import::import_kitti_object(&source, &drive, 1_700_000_000_000_000_000).unwrap();
    let rrd = dir.path().join("kitti.rrd");
    let report = lib_replay(&drive, &rrd);
    assert!(report.is_whole(), "{:?}", report.skipped_lines());
    // A real HDL-64 sweep puts well over ten thousand points into the front image.
    assert_eq!(report.overlaid_frames, 1);
    assert!(report.overlaid_points > 10_000, "{report:?}");
    let entities = verified_entities(&rrd);
    assert_has(
        &entities,
        &[
            "world/ego/camera",
            "world/ego/camera/image",
            "world/ego/camera/lidar_depth",
            "world/ego/camera/annotations",
            "world/annotations",
            "world/lidar",
        ],
    );
}

#[test]
fn model_outputs_and_events_are_shown() {
    let dir = tempfile::tempdir().unwrap();
    let drive = dir.path().join("model.mcap");
    let mut writer = DriveWriter::create(&drive).unwrap();
    let t0 = 1_700_000_000_000_000_000u64;
    for i in 0..20u64 {
        let t = t0 + i * 50_000_000;
        let plan_time_s: Vec<f32> = (1..=8).map(|k| k as f32 * 0.5).collect();
        let output = ModelOutput {
            header: Header::new(t, "base_link"),
            model_digest: "sha256:test".into(),
            input_stamp: Time::from_nanos(t),
            plan_x_m: plan_time_s.iter().map(|s| s * 8.0).collect(),
            plan_y_m: plan_time_s.iter().map(|s| s * s * 0.2).collect(),
            plan_speed_mps: vec![8.0; 8],
            plan_time_s,
            lead_probability: if i < 10 { 0.9 } else { 0.1 },
            lead_distance_m: 15.0,
            lead_relative_speed_mps: -1.0,
            latency_s: 0.012,
        };
        writer.write(topics::MODEL_OUTPUT, t, &output).unwrap();
        let depth = Image {
            header: Header::new(t, "camera_front_optical"),
            height: 16,
            width: 32,
            encoding: "32FC1".into(),
            is_bigendian: 0,
            step: 32 * 4,
            data: (0..16 * 32).flat_map(|k| (5.0f32 + k as f32 * 0.1).to_le_bytes()).collect(),
        };
        writer.write(topics::MODEL_DEPTH, t, &depth).unwrap();
    }
    let event = Event {
        header: Header::new(t0 + 500_000_000, "base_link"),
        kind: 2,
        category: "system_fault".into(),
        detail: "inference deadline missed".into(),
        value: 0.12,
    };
    writer.write(topics::EVENTS, t0 + 500_000_000, &event).unwrap();
    writer.finish().unwrap();

    let rrd = dir.path().join("model.rrd");
    let report = lib_replay(&drive, &rrd);
    assert_eq!(report.shown[topics::MODEL_OUTPUT], 20);
    assert_eq!(report.shown[topics::MODEL_DEPTH], 20);
    assert_eq!(report.shown[topics::EVENTS], 1);
    let entities = verified_entities(&rrd);
    assert_has(
        &entities,
        &[
            "world/ego/model/plan",
            "world/ego/model/lead",
            "model/depth",
            "plots/lead/probability",
            "events",
            "world/events",
        ],
    );
}

#[test]
fn a_cut_or_damaged_drive_replays_what_is_readable() {
    let dir = tempfile::tempdir().unwrap();
    let drive = sim_drive(dir.path());
    let reader = DriveReader::open(&drive).unwrap();
    let total = reader.message_count();
    let chunks = reader.chunk_extents();
    let bytes = std::fs::read(&drive).unwrap();

    // Cut mid-write: no summary, the tail chunk half there.
    let cut = dir.path().join("cut.mcap");
    std::fs::write(&cut, &bytes[..bytes.len() * 3 / 5]).unwrap();
    let report = lib_replay(&cut, &dir.path().join("cut.rrd"));
    let recovered = report.recovered.as_ref().expect("the cut drive is recovered first");
    assert!(recovered.stopped_at_offset.is_some());
    assert!(report.messages > total / 3 && report.messages < total, "{} of {total}", report.messages);
    assert!(report.skipped_lines()[0].contains("cut.mcap"), "{:?}", report.skipped_lines());
    verified_entities(&dir.path().join("cut.rrd"));

    // One damaged chunk in the middle of a whole file.
    let damaged = dir.path().join("damaged.mcap");
    let victim = chunks[chunks.len() / 2];
    let mut flipped = bytes.clone();
    flipped[(victim.offset + victim.length / 2) as usize] ^= 0xff;
    std::fs::write(&damaged, &flipped).unwrap();
    let report = lib_replay(&damaged, &dir.path().join("damaged.rrd"));
    assert_eq!(report.damaged_chunks.len(), 1, "{:?}", report.skipped_lines());
    assert_eq!(report.damaged_chunks[0].offset, victim.offset);
    assert!(report.messages < total && report.messages > total / 2);
    assert!(report.skipped_lines()[0].contains(&format!("byte offset {}", victim.offset)));
    verified_entities(&dir.path().join("damaged.rrd"));

    // Not a drive at all: a clear error naming the file, and no recording.
    let text = dir.path().join("notes.mcap");
    std::fs::write(&text, "not a drive").unwrap();
    let rec = rerun::RecordingStreamBuilder::new(replay::APPLICATION_ID).buffered().unwrap();
    let error = replay::replay(&text, &rec, &ReplayOptions::default(), &indicatif::ProgressBar::hidden())
        .unwrap_err();
    assert!(format!("{error:#}").contains("notes.mcap"), "{error:#}");
}

#[test]
fn connect_streams_to_a_running_viewer() {
    let dir = tempfile::tempdir().unwrap();
    let drive = sim_drive(dir.path());
    let port = free_port();
    // The rerun CLI ingests the stream and exits 0 once the client is done;
    // RERUN_PANIC_ON_WARN turns any warning about our data into a failure.
    let viewer = rerun_cli(dir.path())
        .args(["--test-receive", "--port", &port.to_string()])
        .env("RERUN_PANIC_ON_WARN", "1")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_for_port(port);
    let url = format!("rerun+http://127.0.0.1:{port}/proxy");
    let cli =
        nines_tools::Cli::try_parse_from(["nines", "replay", drive.to_str().unwrap(), "--connect", &url])
            .unwrap();
    nines_tools::run(cli).unwrap();
    let output = viewer.wait_with_output().unwrap();
    let log = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "the viewer failed:\n{log}");
    assert!(log.contains("Received first message"), "{log}");
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn wait_for_port(port: u16) {
    for _ in 0..300 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    panic!("the rerun CLI did not listen on port {port} within 30 s");
}
