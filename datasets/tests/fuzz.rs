//! Property-based fuzz targets for the parsers of user data in
//! nines-datasets: every input is either parsed or refused with an error,
//! never a panic, an abort or a hang. Seeded with real files (the KITTI
//! frame in ../shared/data, a drive written here) and mutated.
//!
//! The test command runs a bounded number of cases per target;
//! `NINES_FUZZ_CASES=20000 cargo test -p nines-datasets --test fuzz --release`
//! runs each for longer (README, "Testing").

#![allow(clippy::unwrap_used, reason = "a test fails loudly on any error")]

use std::path::{Path, PathBuf};

use nines_datasets::calib::CameraModel;
use nines_datasets::cdr;
use nines_datasets::contract::{ModelCard, ModelContract};
use nines_datasets::drive::{DriveReader, DriveWriter, ReadFilter, recover};
use nines_datasets::import::{import_kitti_object, parse_labels};
use nines_datasets::msg::{AckermannDriveStamped, CameraInfo, Header, Odometry, PointCloud2, TfMessage};
use nines_datasets::pointcloud::from_point_cloud2;
use proptest::prelude::*;

/// Cases per target: `NINES_FUZZ_CASES`, or a bounded default for the test command.
fn config() -> ProptestConfig {
    let cases = std::env::var("NINES_FUZZ_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(96);
    ProptestConfig { cases, failure_persistence: None, ..ProptestConfig::default() }
}

fn kitti_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/data/kitti-000008")
}

/// A real drive: the KITTI frame imported (camera, lidar, calibration, boxes).
fn seed_drive() -> &'static [u8] {
    static BYTES: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();
    BYTES.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("kitti.mcap");
        import_kitti_object(&kitti_dir(), &out, 1_000_000_000).unwrap();
        std::fs::read(out).unwrap()
    })
}

/// `bytes` with `flips` applied: (position as a fraction of the length, xor).
fn mutate(bytes: &[u8], flips: &[(f64, u8)], cut: Option<f64>) -> Vec<u8> {
    let mut out = bytes.to_vec();
    for &(at, x) in flips {
        if !out.is_empty() {
            let i = ((out.len() - 1) as f64 * at) as usize;
            out[i] ^= x;
        }
    }
    if let Some(c) = cut {
        out.truncate((out.len() as f64 * c) as usize);
    }
    out
}

fn flips() -> impl Strategy<Value = Vec<(f64, u8)>> {
    proptest::collection::vec((0.0f64..1.0, 1u8..=255), 0..6)
}

proptest! {
    #![proptest_config(config())]

    /// MCAP reading (every message decoded where its type is known) and recovery.
    #[test]
    fn mcap_drives_read_and_recover_without_panics(flips in flips(), cut in proptest::option::of(0.0f64..1.0)) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("d.mcap");
        std::fs::write(&path, mutate(seed_drive(), &flips, cut)).unwrap();
        if let Ok(reader) = DriveReader::open(&path) {
            let _ = reader.topics();
            if let Ok(it) = reader.messages(&ReadFilter::all()) {
                let mut it = it.skip_damaged();
                while let Some(next) = it.next_message() {
                    let Ok(view) = next else { break };
                    let _ = view.decode::<PointCloud2>().map(|c| from_point_cloud2(&c, "fuzz"));
                    let _ = view.decode::<CameraInfo>().map(|i| CameraModel::from_camera_info(&i, "fuzz"));
                    let _ = view.decode::<TfMessage>();
                }
            }
        }
        let _ = recover(&path, &dir.path().join("r.mcap"));
    }

    /// CDR payloads of every shape: each message type refuses what is not it.
    #[test]
    fn cdr_payloads_decode_or_refuse(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = cdr::decode::<PointCloud2>(&bytes).map(|c| from_point_cloud2(&c, "fuzz"));
        let _ = cdr::decode::<CameraInfo>(&bytes).map(|i| CameraModel::from_camera_info(&i, "fuzz"));
        let _ = cdr::decode::<Odometry>(&bytes);
        let _ = cdr::decode::<TfMessage>(&bytes);
        let _ = cdr::decode::<AckermannDriveStamped>(&bytes);
    }

    /// The PointCloud2 layout: any fields, steps and sizes.
    #[test]
    fn point_cloud_layouts_are_checked(
        width in 0u32..4096, height in 0u32..4, point_step in 0u32..64, row_step in 0u32..(1 << 20),
        offsets in proptest::collection::vec((0u32..80, 0u8..10, 0u32..4), 0..7),
        data_len in 0usize..4096, bigendian in any::<bool>(),
    ) {
        let names = ["x", "y", "z", "intensity", "ring", "time", "other"];
        let fields = offsets.iter().zip(names).map(|(&(offset, datatype, count), name)| {
            nines_datasets::msg::PointField { name: name.into(), offset, datatype, count }
        }).collect();
        let cloud = PointCloud2 {
            header: Header::new(1, "lidar"), height, width, fields, is_bigendian: bigendian,
            point_step, row_step, data: vec![0x3f; data_len], is_dense: false,
        };
        let _ = from_point_cloud2(&cloud, "fuzz");
    }

    /// KITTI calibration, labels and scans, mutated from the real frame.
    #[test]
    fn kitti_frames_import_or_are_refused(
        calib_flips in flips(), label_flips in flips(), scan_cut in proptest::option::of(0.0f64..1.0),
    ) {
        let dir = tempfile::tempdir().unwrap();
        for file in ["image_02.png", "velodyne.bin"] {
            std::fs::copy(kitti_dir().join(file), dir.path().join(file)).unwrap();
        }
        let calib = std::fs::read(kitti_dir().join("calib.txt")).unwrap();
        std::fs::write(dir.path().join("calib.txt"), mutate(&calib, &calib_flips, None)).unwrap();
        let labels = mutate(&std::fs::read(kitti_dir().join("label_2.txt")).unwrap(), &label_flips, None);
        std::fs::write(dir.path().join("label_2.txt"), &labels).unwrap();
        if let Some(c) = scan_cut {
            let scan = std::fs::read(kitti_dir().join("velodyne.bin")).unwrap();
            std::fs::write(dir.path().join("velodyne.bin"), mutate(&scan, &[], Some(c))).unwrap();
        }
        let _ = parse_labels(Path::new("label_2.txt"), &String::from_utf8_lossy(&labels));
        let _ = import_kitti_object(dir.path(), &dir.path().join("out.mcap"), 1);
    }

    /// Contracts as TOML and JSON, and model cards, from mutated real ones.
    #[test]
    fn contracts_and_cards_validate_or_refuse(flips in flips(), json in any::<bool>()) {
        let contract = ModelContract::default();
        let text = if json {
            serde_json::to_string(&contract).unwrap()
        } else {
            "version = 1\nlabel_stride = 4\nplan_times_secs = [0.5, 1.0, 1.5, 2.0]\n[input]\nwidth = 256\nheight = 128\nframes = 2\nframe_spacing_secs = 0.1\n".to_owned()
        };
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(if json { "c.json" } else { "c.toml" });
        std::fs::write(&path, mutate(text.as_bytes(), &flips, None)).unwrap();
        if let Ok(c) = ModelContract::load(&path) {
            // A contract that loads is one every consumer can use.
            let _ = (c.label_size(), c.digest(), ModelCard::tensors(&c));
        }
        let card = serde_json::json!({"contract": contract}).to_string();
        let _ = serde_json::from_slice::<ModelCard>(&mutate(card.as_bytes(), &flips, None))
            .map(|c| c.contract.validate(&path));
    }
}

#[test]
fn the_seed_drive_is_whole() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("d.mcap");
    std::fs::write(&path, seed_drive()).unwrap();
    assert!(DriveReader::open(&path).unwrap().message_count() > 0);
    let _unused = DriveWriter::create(dir.path().join("w.mcap")).unwrap();
}
