//! Distillation end to end: real KITTI rigs (the frame as recorded, and the
//! same frame as other cameras, resolutions and lidars would have seen it),
//! simulated drives scored against ground truth, and bad drives in a batch.

#![allow(clippy::unwrap_used, reason = "a test fails loudly on any error")]
#![allow(clippy::format_collect, reason = "rewriting small calibration and label files line by line")]

use std::path::{Path, PathBuf};

use clap::Parser;
use nines_datasets::drive::{DriveReader, DriveWriter};
use nines_datasets::import::import_kitti_object;
use nines_datasets::msg::{CameraInfo, CompressedImage, PointCloud2, RosMessage, TfMessage};
use nines_datasets::topics;
use nines_kernels::Kernels;
use nines_offboard::distill::{DistillOptions, LabelMode, distill_drive};
use nines_offboard::labels::{DriveShard, LabelIndex, ShardLayout};
use nines_sim::family;
use nines_sim::record::{RecordOptions, record_expert};
use nines_tests::workspace_root;

fn kitti_dir() -> PathBuf {
    workspace_root().join("../shared/data/kitti-000008")
}

/// KITTI label lines: (x1, y1, x2, y2) box and the labelled z (camera frame, m).
fn car_boxes(label_text: &str) -> Vec<([f64; 4], f64)> {
    label_text
        .lines()
        .filter(|l| l.starts_with("Car"))
        .map(|l| {
            let f: Vec<f64> = l.split_whitespace().skip(1).map(|v| v.parse().unwrap()).collect();
            ([f[3], f[4], f[5], f[6]], f[12])
        })
        .collect()
}

/// Median labelled depth inside each box must lie within 2.5 m of its z.
fn assert_boxes_agree(dir: &Path, rig: &str) {
    let drive = dir.join("frame.mcap");
    import_kitti_object(dir, &drive, 1_000_000_000).unwrap();
    let options = DistillOptions { mode: LabelMode::Native, ..DistillOptions::default() };
    let labels = distill_drive(&drive, &Kernels::cpu(), &options, &|| {}).unwrap();
    assert_eq!(labels.frames, 1, "{rig}");
    let [h, w] = labels.layout.depth;
    let boxes = car_boxes(&std::fs::read_to_string(dir.join("label_2.txt")).unwrap());
    assert_eq!(boxes.len(), 6, "{rig}");
    for (b, z) in boxes {
        let mut inside: Vec<f32> = Vec::new();
        let (c0, c1) = (b[0].floor().max(0.0) as usize, (b[2].ceil() as usize).min(w - 1));
        let (r0, r1) = (b[1].floor().max(0.0) as usize, (b[3].ceil() as usize).min(h - 1));
        for row in r0..=r1 {
            inside.extend(labels.depth[row * w + c0..=row * w + c1].iter().filter(|d| **d > 0.0));
        }
        assert!(inside.len() >= 5, "{rig}: box {b:?} has {} labelled pixels", inside.len());
        inside.sort_by(f32::total_cmp);
        let median = f64::from(inside[inside.len() / 2]);
        assert!(
            (median - z).abs() <= 2.5,
            "{rig}: box {b:?}: median depth {median:.2} m, labelled z {z:.2} m"
        );
    }
    // A single frame has no future: path and lead speed are marked unknown.
    assert!(labels.plan_valid.iter().all(|v| *v == 0), "{rig}");
    assert!(labels.lead_valid.chunks(2).all(|v| v[1] == 0), "{rig}");
}

#[test]
fn kitti_depth_labels_agree_with_the_annotated_cars() {
    let dir = tempfile::tempdir().unwrap();
    for f in ["image_02.png", "calib.txt", "label_2.txt", "velodyne.bin"] {
        std::fs::copy(kitti_dir().join(f), dir.path().join(f)).unwrap();
    }
    assert_boxes_agree(dir.path(), "as recorded");
}

/// The frame as another rig: the image scaled by `scale` then cropped by
/// (`left`, `top`) pixels (P2 and the boxes follow), and the lidar given a
/// mirror copy of every point behind the sensor.
fn other_rig(dir: &Path, scale: f64, left: u32, top: u32) {
    let src = kitti_dir();
    let image = image::open(src.join("image_02.png")).unwrap().to_rgb8();
    let (w, h) = (
        (f64::from(image.width()) * scale).round() as u32,
        (f64::from(image.height()) * scale).round() as u32,
    );
    let (sx, sy) = (f64::from(w) / f64::from(image.width()), f64::from(h) / f64::from(image.height()));
    let resized = image::imageops::resize(&image, w, h, image::imageops::FilterType::Triangle);
    let cropped = image::imageops::crop_imm(&resized, left, top, w - left, h - top).to_image();
    cropped.save(dir.join("image_02.png")).unwrap();
    // Pixel u' = (u + 0.5) sx - 0.5 - left: row0' = sx row0 + (0.5 sx - 0.5 - left) row2.
    let (ax, ay) = (0.5 * sx - 0.5 - f64::from(left), 0.5 * sy - 0.5 - f64::from(top));
    let calib: String = std::fs::read_to_string(src.join("calib.txt"))
        .unwrap()
        .lines()
        .map(|line| {
            let Some(values) = line.strip_prefix("P2:") else { return format!("{line}\n") };
            let p: Vec<f64> = values.split_whitespace().map(|v| v.parse().unwrap()).collect();
            let q: Vec<String> = (0..12)
                .map(|i| match i / 4 {
                    0 => sx * p[i] + ax * p[8 + i % 4],
                    1 => sy * p[i] + ay * p[8 + i % 4],
                    _ => p[i],
                })
                .map(|v| format!("{v:.12e}"))
                .collect();
            format!("P2: {}\n", q.join(" "))
        })
        .collect();
    std::fs::write(dir.join("calib.txt"), calib).unwrap();
    let labels: String = std::fs::read_to_string(src.join("label_2.txt"))
        .unwrap()
        .lines()
        .map(|line| {
            let mut f: Vec<String> = line.split_whitespace().map(str::to_owned).collect();
            for (i, (s, a)) in [(4, (sx, ax)), (5, (sy, ay)), (6, (sx, ax)), (7, (sy, ay))] {
                let v: f64 = f[i].parse().unwrap();
                f[i] = format!("{:.2}", (s * v + a).max(0.0));
            }
            format!("{}\n", f.join(" "))
        })
        .collect();
    std::fs::write(dir.join("label_2.txt"), labels).unwrap();
    let mut points = std::fs::read(src.join("velodyne.bin")).unwrap();
    let behind: Vec<u8> = points
        .chunks_exact(16)
        .flat_map(|p| {
            let x = f32::from_le_bytes([p[0], p[1], p[2], p[3]]);
            let mut q = p.to_vec();
            q[..4].copy_from_slice(&(-x).to_le_bytes());
            q
        })
        .collect();
    points.extend(behind);
    std::fs::write(dir.join("velodyne.bin"), points).unwrap();
}

#[test]
fn kitti_depth_labels_hold_for_other_cameras_resolutions_and_lidars() {
    for (scale, left, top, rig) in
        [(0.5, 0, 0, "half resolution"), (1.0, 0, 60, "cropped, off-centre"), (0.8, 0, 30, "0.8x, cropped")]
    {
        let dir = tempfile::tempdir().unwrap();
        other_rig(dir.path(), scale, left, top);
        assert_boxes_agree(dir.path(), rig);
    }
}

#[test]
fn a_kitti_frame_distils_in_the_virtual_camera_too() {
    let dir = tempfile::tempdir().unwrap();
    let drive = dir.path().join("frame.mcap");
    import_kitti_object(&kitti_dir(), &drive, 1_000_000_000).unwrap();
    let labels = distill_drive(&drive, &Kernels::cpu(), &DistillOptions::default(), &|| {}).unwrap();
    assert_eq!((labels.frames, labels.layout.image, labels.layout.depth), (1, [3, 128, 256], [32, 64]));
    let known = labels.depth.iter().filter(|d| **d > 0.0).count();
    assert!(known > 150, "{known} of 2048 label pixels have depth");
    assert!(labels.depth.iter().all(|d| *d == 0.0 || (0.5..130.0).contains(d)));
    // The lead is the car just left of ahead (camera x -1.2 m, z 7.9 m, 3.7 m
    // long): its rear is about 6 m ahead of the lidar, where base_link is.
    assert!(labels.lead[0] > 0.5, "a lead is present");
    assert!((5.5..7.0).contains(&labels.lead[1]), "lead at {} m", labels.lead[1]);
    assert_eq!(labels.lead_valid, vec![1, 0]);
}

#[test]
fn simulated_labels_meet_the_quality_bar() {
    let dir = tempfile::tempdir().unwrap();
    let options = RecordOptions { duration_secs: Some(4.0), ..RecordOptions::default() };
    let mut figures = Vec::new();
    for (name, seed) in [("lead_brake", 1), ("lead_brake", 2), ("lead_brake", 3)] {
        let drive = dir.path().join(format!("{name}-{seed}.mcap"));
        record_expert(family(name).unwrap().draw(name, seed), &drive, &options).unwrap();
        let labels = distill_drive(&drive, &Kernels::cpu(), &DistillOptions::default(), &|| {}).unwrap();
        let q = labels.quality.quality().unwrap();
        assert_eq!(q.frames, 40, "{name} {seed}");
        assert!(
            q.accumulated_abs_rel <= 0.02,
            "{name} {seed}: accumulated AbsRel {:.4}",
            q.accumulated_abs_rel
        );
        assert!(q.accumulated_coverage >= q.single_coverage, "{name} {seed}: {q:?}");
        assert!(q.single_coverage > 0.2, "{name} {seed}: single-sweep coverage {:.3}", q.single_coverage);
        assert!(q.lead_frames >= 20, "{name} {seed}: a lead in only {} frames", q.lead_frames);
        assert!(
            q.lead_distance_rel_error <= 0.05,
            "{name} {seed}: lead error {:.4}",
            q.lead_distance_rel_error
        );
        // Path labels: 1 s ahead at the drive's start is known, and ahead of the ego.
        let t1 = 1; // plan index of 1.0 s in the default contract
        assert_eq!(labels.plan_valid[t1], 1);
        assert!(labels.plan[t1 * 3] > 1.0, "{name} {seed}: 1 s ahead at x = {}", labels.plan[t1 * 3]);
        // The last frame is within 3 s of the end: its 3 s plan entry is unknown.
        assert_eq!(labels.plan_valid[labels.plan_valid.len() - 1], 0);
        figures.push(format!("{name} {seed}: {q:?}"));
    }
    println!("{}", figures.join("\n"));
}

/// Copies `topic` of type `M` from one drive to another, keeping what `keep` accepts.
fn copy<M: RosMessage>(from: &DriveReader, to: &mut DriveWriter, topic: &str, keep: impl Fn(u64) -> bool) {
    for (t, m) in from.read_topic::<M>(topic).unwrap() {
        if keep(t) {
            to.write(topic, t, &m).unwrap();
        }
    }
}

/// The KITTI frame, and simulated drive, with a part taken out.
fn damaged_drives(dir: &Path) -> (PathBuf, [PathBuf; 3]) {
    let kitti = dir.join("kitti.mcap");
    import_kitti_object(&kitti_dir(), &kitti, 1_000_000_000).unwrap();
    let reader = DriveReader::open(&kitti).unwrap();
    let without = |name: &str, skip: &str| {
        let path = dir.join(name);
        let mut w = DriveWriter::create(&path).unwrap();
        for topic in [topics::TF_STATIC, topics::TF] {
            copy::<TfMessage>(&reader, &mut w, topic, |_| true);
        }
        if skip != topics::CAMERA_INFO {
            copy::<CameraInfo>(&reader, &mut w, topics::CAMERA_INFO, |_| true);
        }
        copy::<CompressedImage>(&reader, &mut w, topics::CAMERA_COMPRESSED, |_| true);
        if skip != topics::LIDAR {
            copy::<PointCloud2>(&reader, &mut w, topics::LIDAR, |_| true);
        }
        w.finish().unwrap();
        path
    };
    let no_lidar = without("no_lidar.mcap", topics::LIDAR);
    let no_calib = without("no_calibration.mcap", topics::CAMERA_INFO);

    let sim = dir.join("sim.mcap");
    let options = RecordOptions { duration_secs: Some(3.0), ..RecordOptions::default() };
    record_expert(family("straight").unwrap().draw("straight", 1), &sim, &options).unwrap();
    let reader = DriveReader::open(&sim).unwrap();
    let gap = dir.join("pose_gap.mcap");
    let mut w = DriveWriter::create(&gap).unwrap();
    let start = reader.time_range_nanos().unwrap().0;
    copy::<TfMessage>(&reader, &mut w, topics::TF_STATIC, |_| true);
    copy::<TfMessage>(&reader, &mut w, topics::TF, |t| {
        !(t > start + 1_000_000_000 && t < start + 2_000_000_000)
    });
    copy::<CameraInfo>(&reader, &mut w, topics::CAMERA_INFO, |_| true);
    copy::<CompressedImage>(&reader, &mut w, topics::CAMERA_COMPRESSED, |_| true);
    copy::<PointCloud2>(&reader, &mut w, topics::LIDAR, |_| true);
    w.finish().unwrap();
    (kitti, [no_lidar, no_calib, gap])
}

#[test]
fn bad_drives_are_named_and_the_rest_of_the_batch_finishes() {
    let dir = tempfile::tempdir().unwrap();
    let (good, bad) = damaged_drives(dir.path());
    let out = dir.path().join("labels");
    let mut argv: Vec<String> =
        ["nines", "distill", "--out", out.to_str().unwrap(), "--jobs", "2"].map(String::from).to_vec();
    argv.extend(bad.iter().map(|p| p.display().to_string()));
    argv.push(good.display().to_string());
    let err = nines_tools::run(nines_tools::Cli::parse_from(&argv)).unwrap_err().to_string();
    assert!(err.contains("3 of 4 drives"), "{err}");

    let index = LabelIndex::load(&out).unwrap().unwrap();
    assert_eq!(index.shards.len(), 1, "the good drive finished");
    // The reader training uses takes the shard: its contract digest and every tensor's shape match.
    let entry = &index.shards[0];
    let layout = ShardLayout::of_contract(&index.contract);
    let shard = DriveShard::open(&out.join(&entry.shard), entry, &index.contract_digest, layout).unwrap();
    assert_eq!((shard.frames, shard.layout.depth), (1, [32, 64]));
    assert!(DriveShard::open(&out.join(&entry.shard), entry, "0123456789abcdef", layout).is_err());
    let why = |name: &str| index.failed.iter().find(|f| f.drive.ends_with(name)).unwrap().error.clone();
    let e = why("no_lidar.mcap");
    assert!(e.contains("no_lidar.mcap") && e.contains("no lidar"), "{e}");
    let e = why("no_calibration.mcap");
    assert!(e.contains("no_calibration.mcap") && e.contains("camera_info"), "{e}");
    let e = why("pose_gap.mcap");
    assert!(e.contains("pose_gap.mcap") && e.contains("gap in ego poses"), "{e}");

    // Run again: the finished drive is skipped (its shard untouched), a
    // different contract is refused without touching anything.
    let before = std::fs::metadata(out.join(&index.shards[0].shard)).unwrap().modified().unwrap();
    let again = ["nines", "distill", "--out", out.to_str().unwrap(), good.to_str().unwrap()];
    nines_tools::run(nines_tools::Cli::parse_from(again)).unwrap();
    let after = std::fs::metadata(out.join(&index.shards[0].shard)).unwrap().modified().unwrap();
    assert_eq!(before, after, "resumed, not redone");
    let contract = dir.path().join("c.toml");
    std::fs::write(&contract, "label_stride = 8\n").unwrap();
    let other = [
        "nines",
        "distill",
        "--out",
        out.to_str().unwrap(),
        "--contract",
        contract.to_str().unwrap(),
        good.to_str().unwrap(),
    ];
    let err = nines_tools::run(nines_tools::Cli::parse_from(other)).unwrap_err().to_string();
    assert!(err.contains("index.json") && err.contains("label_stride: 4 vs 8"), "{err}");

    // An index edited to point outside its folder, to list a drive twice, or
    // to give a shard another drive's digest is refused, naming what is wrong.
    let text = std::fs::read_to_string(out.join("index.json")).unwrap();
    let shard_name = index.shards[0].shard.clone();
    let edit = |name: &str, edit: &dyn Fn(&mut serde_json::Value)| {
        let folder = dir.path().join(name);
        std::fs::create_dir_all(&folder).unwrap();
        std::fs::copy(out.join(&shard_name), folder.join(&shard_name)).unwrap();
        let mut json: serde_json::Value = serde_json::from_str(&text).unwrap();
        edit(&mut json);
        std::fs::write(folder.join("index.json"), json.to_string()).unwrap();
        folder
    };
    let outside = edit("outside", &|j| j["shards"][0]["shard"] = "/etc/hostname".into());
    let err = LabelIndex::load(&outside).unwrap_err().to_string();
    assert!(err.contains("shards[0].shard") && err.contains("/etc/hostname"), "{err}");
    let twice = edit("twice", &|j| {
        let entry = j["shards"][0].clone();
        j["shards"].as_array_mut().unwrap().push(entry);
    });
    assert!(LabelIndex::load(&twice).unwrap_err().to_string().contains("listed twice"));
    let swapped = edit("swapped", &|j| j["shards"][0]["drive_digest"] = "0000000000000000".into());
    let loaded = LabelIndex::load(&swapped).unwrap().unwrap();
    let err =
        DriveShard::open(&swapped.join(&shard_name), &loaded.shards[0], &loaded.contract_digest, layout)
            .err()
            .unwrap()
            .to_string();
    assert!(err.contains("holds the labels of drive") && err.contains("0000000000000000"), "{err}");
}

#[test]
fn a_disturbed_drive_masks_exactly_the_plan_points_whose_window_overlaps_a_disturbance() {
    use nines_datasets::msg::ControlSource;
    use nines_sim::disturb::DisturbProfile;
    let dir = tempfile::tempdir().unwrap();
    let drive = dir.path().join("dart.mcap");
    let options = RecordOptions {
        camera: nines_sim::render::camera::CameraConfig { width: 256, height: 128, ..Default::default() },
        duration_secs: Some(8.0),
        disturb: DisturbProfile::dart(),
        ..RecordOptions::default()
    };
    record_expert(family("straight").unwrap().draw("straight", 1_000_005), &drive, &options).unwrap();
    let labels = distill_drive(&drive, &Kernels::cpu(), &DistillOptions::default(), &|| {}).unwrap();

    // The expected mask, from the control periods alone.
    let reader = DriveReader::open(&drive).unwrap();
    let periods = reader.read_topic::<ControlSource>(topics::CONTROL_SOURCE).unwrap();
    let disturbed: Vec<(u64, u64)> =
        periods.windows(2).filter(|w| w[0].1.disturbed).map(|w| (w[0].0, w[1].0)).collect();
    assert!(!disturbed.is_empty(), "the dart profile disturbed this drive");
    let times = &DistillOptions::default().contract.plan_times_secs;
    let t = times.len();
    let (mut masked, mut kept_near) = (0, 0);
    for f in 0..labels.frames {
        let now = labels.stamp[f] as u64;
        for (k, tau) in times.iter().enumerate() {
            let end = now + (tau * 1e9) as u64;
            let overlaps = disturbed.iter().any(|(a, b)| *a <= end && *b > now);
            let valid = labels.plan_valid[f * t + k] == 1;
            if overlaps {
                assert!(!valid, "frame {f} point {k}: its window crosses a disturbance but is a label");
                masked += 1;
            } else if valid {
                kept_near += 1;
            }
        }
        // Depth comes from lidar whoever drove: it stays.
        let [dh, dw] = labels.layout.depth;
        assert!(labels.depth[f * dh * dw..(f + 1) * dh * dw].iter().any(|d| *d > 0.0), "frame {f} has depth");
    }
    assert_eq!(masked, labels.plan_masked, "every masked point is counted");
    assert!(masked > 0 && kept_near > 0, "{masked} masked, {kept_near} kept");

    // The index counts recovery states from the recorded lane state.
    let recovery = labels.recovery.as_ref().expect("a simulated drive records its lane state");
    assert_eq!(recovery.lateral_frames.iter().sum::<usize>(), labels.frames);
    assert_eq!(recovery.heading_frames.iter().sum::<usize>(), labels.frames);
    assert!(recovery.frames_recovering > 0, "a dart drive leaves the centre: {recovery:?}");
    assert_eq!(labels.recovering_frames.len(), recovery.frames_recovering, "the frames training weights");
    let calm_drive = dir.path().join("calm.mcap");
    let calm = RecordOptions { disturb: DisturbProfile::default(), ..options };
    record_expert(family("straight").unwrap().draw("straight", 1_000_005), &calm_drive, &calm).unwrap();
    let calm = distill_drive(&calm_drive, &Kernels::cpu(), &DistillOptions::default(), &|| {}).unwrap();
    let calm = calm.recovery.unwrap();
    assert!(calm.frames_recovering < recovery.frames_recovering, "{calm:?} vs {recovery:?}");
    assert_eq!(
        calm.lateral_frames[0],
        calm.lateral_frames.iter().sum::<usize>(),
        "the expert holds the centre"
    );
    assert!(
        DriveReader::open(&calm_drive)
            .unwrap()
            .metadata("nines_scenario")
            .unwrap()
            .is_some_and(|m| m["seed"] == "1000005"),
        "the drive says which scenario it is"
    );
}

#[test]
fn a_drive_whose_lidar_never_lands_in_the_camera_is_refused_not_labelled() {
    let dir = tempfile::tempdir().unwrap();
    let kitti = dir.path().join("kitti.mcap");
    import_kitti_object(&kitti_dir(), &kitti, 1_000_000_000).unwrap();
    let reader = DriveReader::open(&kitti).unwrap();
    // The principal point moved far outside the image: every lidar point projects off it.
    let off = dir.path().join("off.mcap");
    let mut w = DriveWriter::create(&off).unwrap();
    for topic in [topics::TF_STATIC, topics::TF] {
        copy::<TfMessage>(&reader, &mut w, topic, |_| true);
    }
    for (t, mut info) in reader.read_topic::<CameraInfo>(topics::CAMERA_INFO).unwrap() {
        info.k[2] += 50_000.0;
        info.p[2] += 50_000.0;
        w.write(topics::CAMERA_INFO, t, &info).unwrap();
    }
    copy::<CompressedImage>(&reader, &mut w, topics::CAMERA_COMPRESSED, |_| true);
    copy::<PointCloud2>(&reader, &mut w, topics::LIDAR, |_| true);
    w.finish().unwrap();
    let out = dir.path().join("labels");
    let args = ["nines", "distill", "--native", "--out", out.to_str().unwrap(), off.to_str().unwrap()];
    let _ = nines_tools::run(nines_tools::Cli::parse_from(args));
    let index = LabelIndex::load(&out).unwrap().unwrap();
    assert!(index.shards.is_empty(), "no shard of empty depth");
    let why = &index.failed[0].error;
    assert!(why.contains("off.mcap") && why.contains("0% depth coverage"), "{why}");
}
