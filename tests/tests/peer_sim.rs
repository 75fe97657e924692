//! Simulated drives open in the Python `mcap` + `mcap-ros2-support` readers
//! with the same messages nines reads, and pass `nines inspect`'s checks.

#![allow(clippy::unwrap_used, reason = "a test fails loudly on any error")]

use std::collections::BTreeMap;

use nines_datasets::drive::{DriveReader, ReadFilter};
use nines_datasets::inspect::DriveSummary;
use nines_datasets::sync::{DriveStreams, SyncOptions, synchronise};
use nines_sim::family;
use nines_sim::record::{RecordOptions, record_expert};
use nines_sim::render::camera::CameraConfig;
use nines_tests::run_peer;

#[test]
fn python_reads_a_simulated_drive() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cut_in.mcap");
    let options = RecordOptions {
        camera: CameraConfig { width: 128, height: 64, ..CameraConfig::default() },
        duration_secs: Some(1.0),
        ..RecordOptions::default()
    };
    record_expert(family("cut_in").unwrap().draw("cut_in", 2), &path, &options).unwrap();

    let reader = DriveReader::open(&path).unwrap();
    let mut ours: BTreeMap<String, usize> = BTreeMap::new();
    let mut it = reader.messages(&ReadFilter::all()).unwrap();
    while let Some(m) = it.next_message() {
        *ours.entry(m.unwrap().topic.to_owned()).or_default() += 1;
    }
    let summary = DriveSummary::of(&reader).unwrap();
    assert_eq!(summary.cameras.len(), 1);
    let (frames, sync) = synchronise(&DriveStreams::load(&reader).unwrap(), &SyncOptions::default());
    assert_eq!(frames.len(), 10);
    assert!(sync.is_clean(), "{sync:?}");

    let output = run_peer("ros2_dump.py", &[&path]);
    let mut theirs: BTreeMap<String, usize> = BTreeMap::new();
    for line in output.lines().skip(1) {
        let record: serde_json::Value = serde_json::from_str(line).unwrap();
        let topic = record["topic"].as_str().unwrap().to_owned();
        match topic.as_str() {
            "/camera/front/image/compressed" => assert_eq!(record["msg"]["format"], "jpeg"),
            "/sim/ground_truth/depth" => {
                assert_eq!(record["msg"]["encoding"], "32FC1");
                assert_eq!(record["msg"]["data"].as_array().unwrap().len(), 128 * 64 * 4);
            }
            "/lidar/top/points" => assert_eq!(record["msg"]["fields"].as_array().unwrap().len(), 6),
            _ => {}
        }
        *theirs.entry(topic).or_default() += 1;
    }
    assert_eq!(ours, theirs);
}
