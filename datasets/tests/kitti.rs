//! KITTI importers: the real frame in ../shared/data round-trips, and a raw
//! sequence written here in KITTI's layout imports with poses and timing.

#![allow(clippy::unwrap_used, reason = "a test fails loudly on any error")]
#![allow(clippy::float_cmp, reason = "round trips must be bit-exact")]
#![allow(clippy::too_many_lines, clippy::cast_lossless, reason = "test scenarios read top to bottom")]

use std::path::{Path, PathBuf};

use nalgebra::{Matrix3, Matrix3x4, Point2, Point3, Vector3, Vector4};
use nines_datasets::calib::CameraModel;
use nines_datasets::drive::{DriveReader, ReadFilter};
use nines_datasets::geometry::{StaticTransforms, isometry_from_pose};
use nines_datasets::image::decode_camera;
use nines_datasets::import::{KITTI_CALIB_METADATA, import_kitti_object, import_kitti_raw, parse_labels};
use nines_datasets::msg::{CameraInfo, CompressedImage, ObjectArray, Odometry, PointCloud2, TfMessage};
use nines_datasets::pointcloud::from_point_cloud2;
use nines_datasets::sync::{DriveStreams, SyncOptions, synchronise};
use nines_datasets::topics::{self, frames};

fn kitti_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/data/kitti-000008")
}

fn calib(text: &str, key: &str) -> Vec<f64> {
    let line = text.lines().find(|l| l.starts_with(&format!("{key}:"))).unwrap();
    line.split_whitespace().skip(1).map(|v| v.parse().unwrap()).collect()
}

fn only<M: nines_datasets::msg::RosMessage>(reader: &DriveReader, topic: &str) -> M {
    let mut all = reader.read_topic::<M>(topic).unwrap();
    assert_eq!(all.len(), 1, "{topic}");
    all.remove(0).1
}

#[test]
fn kitti_object_frame_round_trips() {
    let dir = tempfile::tempdir().unwrap();
    let drive = dir.path().join("kitti.mcap");
    let report = import_kitti_object(&kitti_dir(), &drive, 1_000_000_000).unwrap();
    assert_eq!(report.points, 17_238);
    assert_eq!(report.image_size, (1242, 375));
    let reader = DriveReader::open(&drive).unwrap();

    // Image bytes are the PNG file, untouched.
    let image: CompressedImage = only(&reader, topics::CAMERA_COMPRESSED);
    assert_eq!(image.format, "png");
    assert_eq!(image.data, std::fs::read(kitti_dir().join("image_02.png")).unwrap());

    let mut camera_messages = reader.messages(&ReadFilter::topics([topics::CAMERA_COMPRESSED])).unwrap();
    let decoded = decode_camera(&camera_messages.next_message().unwrap().unwrap()).unwrap();
    let png = image::open(kitti_dir().join("image_02.png")).unwrap().to_rgb8();
    assert_eq!(decoded, png, "lossless PNG decodes to the same pixels");

    // Points are the velodyne scan, bit for bit.
    let cloud: PointCloud2 = only(&reader, topics::LIDAR);
    let points = from_point_cloud2(&cloud, "lidar").unwrap();
    let raw = std::fs::read(kitti_dir().join("velodyne.bin")).unwrap();
    assert_eq!(points.len() * 16, raw.len());
    for (p, bytes) in points.iter().zip(raw.chunks_exact(16)) {
        let f = |i: usize| f32::from_le_bytes(bytes[i..i + 4].try_into().unwrap());
        assert_eq!([p.x, p.y, p.z, p.intensity], [f(0), f(4), f(8), f(12)]);
        assert!(p.ring < 64);
    }

    // Calibration: the original file verbatim, K = P2's left block, and the
    // mounting reproduces KITTI's projection P2 * R0_rect * Tr_velo_to_cam.
    let calib_text = std::fs::read_to_string(kitti_dir().join("calib.txt")).unwrap();
    let metadata = reader.metadata(KITTI_CALIB_METADATA).unwrap().unwrap();
    assert_eq!(metadata["calib.txt"], calib_text);
    let (p2, r0, tr) =
        (calib(&calib_text, "P2"), calib(&calib_text, "R0_rect"), calib(&calib_text, "Tr_velo_to_cam"));
    let info: CameraInfo = only(&reader, topics::CAMERA_INFO);
    assert_eq!(info.k, [p2[0], p2[1], p2[2], p2[4], p2[5], p2[6], p2[8], p2[9], p2[10]]);
    let camera = CameraModel::from_camera_info(&info, "kitti").unwrap();
    let tf_static: TfMessage = only(&reader, topics::TF_STATIC);
    let tree = StaticTransforms::from_messages([&tf_static]);
    let camera_from_lidar = tree.lookup(frames::CAMERA_FRONT, frames::LIDAR_TOP).unwrap();
    let mut r0_4 = nalgebra::Matrix4::identity();
    r0_4.fixed_view_mut::<3, 3>(0, 0).copy_from(&Matrix3::from_row_slice(&r0));
    let mut tr_4 = nalgebra::Matrix4::identity();
    tr_4.fixed_view_mut::<3, 4>(0, 0).copy_from(&Matrix3x4::from_row_slice(&tr));
    let kitti_projection = Matrix3x4::from_row_slice(&p2) * r0_4 * tr_4;
    let mut worst_px = 0.0f64;
    for p in points.iter().filter(|p| p.x > 2.0) {
        let ours = camera
            .project(
                &(camera_from_lidar * Point3::new(f64::from(p.x), f64::from(p.y), f64::from(p.z))).coords,
            )
            .unwrap();
        let h = kitti_projection * Vector4::new(f64::from(p.x), f64::from(p.y), f64::from(p.z), 1.0);
        worst_px = worst_px.max((ours - Point2::new(h.x / h.z, h.y / h.z)).norm());
    }
    assert!(worst_px < 0.05, "our calibration projects {worst_px} px away from KITTI's");

    // Labels: every non-DontCare box, in base_link, maps back to KITTI's camera
    // coordinates; and the lidar agrees with them (the data set's sanity figure).
    let labels = parse_labels(
        Path::new("label_2.txt"),
        &std::fs::read_to_string(kitti_dir().join("label_2.txt")).unwrap(),
    )
    .unwrap();
    let labels: Vec<_> = labels.into_iter().filter(|l| l.kind != "DontCare").collect();
    let objects: ObjectArray = only(&reader, topics::ANNOTATIONS);
    assert_eq!(objects.header.frame_id, frames::BASE_LINK);
    assert_eq!(objects.objects.len(), labels.len());
    let camera_from_base = tree.lookup(frames::CAMERA_FRONT, frames::BASE_LINK).unwrap();
    let mut cars = 0;
    for (label, object) in labels.iter().zip(&objects.objects) {
        assert_eq!(object.label, label.kind.to_lowercase());
        assert_eq!(object.box_2d, label.bbox);
        let [h, w, l] = label.dimensions_hwl;
        assert_eq!([object.size.x, object.size.y, object.size.z], [l, w, h]);
        let centre_base = isometry_from_pose(&object.pose).unwrap().translation.vector;
        let centre_lidar = centre_base - Vector3::new(0.0, 0.0, 1.73);
        let rect0 = tr_4 * centre_lidar.push(1.0);
        let rect0 = Matrix3::from_row_slice(&r0) * rect0.xyz();
        let expected = Vector3::new(label.location[0], label.location[1] - h / 2.0, label.location[2]);
        assert!((rect0 - expected).norm() < 0.01, "{} at {rect0} vs {expected}", label.kind);
        if label.kind == "Car" {
            cars += 1;
            let label_z = (camera_from_base * Point3::from(centre_base)).z;
            let [x1, y1, x2, y2] = object.box_2d.map(f64::from);
            let mut depths: Vec<f64> = points
                .iter()
                .map(|p| {
                    (camera_from_lidar * Point3::new(f64::from(p.x), f64::from(p.y), f64::from(p.z))).coords
                })
                .filter_map(|c| camera.project(&c).map(|px| (px, c.z)))
                .filter(|(px, _)| px.x >= x1 && px.x <= x2 && px.y >= y1 && px.y <= y2)
                .map(|(_, z)| z)
                .collect();
            depths.sort_by(f64::total_cmp);
            let median = depths[depths.len() / 2];
            assert!(
                (median - label_z).abs() < 2.5,
                "car at z {label_z:.2}: lidar median {median:.2} over {} points",
                depths.len()
            );
        }
    }
    assert_eq!(cars, 6);
}

const CAM_TO_CAM: &str = "calib_time: 09-Jan-2012 13:57:47
S_rect_02: 1.242000e+03 3.750000e+02
R_rect_00: 9.999239e-01 9.837760e-03 -7.445048e-03 -9.869795e-03 9.999421e-01 -4.278459e-03 7.402527e-03 4.351614e-03 9.999631e-01
P_rect_02: 7.215377e+02 0.000000e+00 6.095593e+02 4.485728e+01 0.000000e+00 7.215377e+02 1.728540e+02 2.163791e-01 0.000000e+00 0.000000e+00 1.000000e+00 2.745884e-03
";
const VELO_TO_CAM: &str = "calib_time: 15-Mar-2012 11:37:16
R: 7.533745e-03 -9.999714e-01 -6.166020e-04 1.480249e-02 7.280733e-04 -9.998902e-01 9.998621e-01 7.523790e-03 1.480755e-02
T: -4.069766e-03 -7.631618e-02 -2.717806e-01
";
const IMU_TO_VELO: &str = "calib_time: 25-May-2012 16:47:16
R: 9.999976e-01 7.553071e-04 -2.035826e-03 -7.854027e-04 9.998898e-01 -1.482298e-02 2.024406e-03 1.482454e-02 9.998881e-01
T: -8.086759e-01 3.195559e-01 -7.997231e-01
";

fn stamp(frame: usize, offset_ms: usize) -> String {
    let ms = 100 * frame + offset_ms;
    format!("2011-09-26 13:02:{:02}.{:03}000000", 25 + ms / 1000, ms % 1000)
}

/// A 3-frame sequence driving east at 10 m/s, calibration in the date folder.
fn write_raw_sequence(root: &Path) -> PathBuf {
    let date = root.join("2011_09_26");
    let seq = date.join("2011_09_26_drive_0001_sync");
    for (name, text) in [
        ("calib_cam_to_cam.txt", CAM_TO_CAM),
        ("calib_velo_to_cam.txt", VELO_TO_CAM),
        ("calib_imu_to_velo.txt", IMU_TO_VELO),
    ] {
        std::fs::create_dir_all(&date).unwrap();
        std::fs::write(date.join(name), text).unwrap();
    }
    for sensor in ["image_02", "velodyne_points", "oxts"] {
        std::fs::create_dir_all(seq.join(sensor).join("data")).unwrap();
    }
    let lines = |offset_ms: usize| (0..3).map(|i| stamp(i, offset_ms) + "\n").collect::<String>();
    std::fs::write(seq.join("image_02/timestamps.txt"), lines(50)).unwrap();
    std::fs::write(seq.join("velodyne_points/timestamps.txt"), lines(48)).unwrap();
    std::fs::write(seq.join("velodyne_points/timestamps_start.txt"), lines(0)).unwrap();
    std::fs::write(seq.join("velodyne_points/timestamps_end.txt"), lines(100)).unwrap();
    std::fs::write(seq.join("oxts/timestamps.txt"), lines(45)).unwrap();
    let lat: f64 = 49.0;
    let metres_per_degree_lon = lat.to_radians().cos() * 6_378_137.0 * std::f64::consts::PI / 180.0;
    for i in 0..3 {
        let image = image::RgbImage::from_fn(8, 4, |x, y| image::Rgb([x as u8 * 30, y as u8 * 60, i as u8]));
        image.save(seq.join(format!("image_02/data/{i:010}.png"))).unwrap();
        let points: Vec<u8> = [[10.0f32, 0.0, -1.0, 0.5], [0.0, 5.0, 0.0, 0.25], [-3.0, 0.0, 0.5, 1.0]]
            .iter()
            .flat_map(|p| p.iter().flat_map(|v| v.to_le_bytes()))
            .collect();
        std::fs::write(seq.join(format!("velodyne_points/data/{i:010}.bin")), points).unwrap();
        let lon = 8.4 + i as f64 / metres_per_degree_lon;
        let mut oxts = vec![lat, lon, 110.0, 0.0, 0.0, 0.0, 0.0, 10.0, 10.0, 0.0, 0.0];
        oxts.extend([0.0; 19]);
        let text: Vec<String> = oxts.iter().map(|v| format!("{v:.12}")).collect();
        std::fs::write(seq.join(format!("oxts/data/{i:010}.txt")), text.join(" ")).unwrap();
    }
    seq
}

#[test]
fn kitti_raw_sequence_imports_with_poses_and_sweep_timing() {
    let root = tempfile::tempdir().unwrap();
    let seq = write_raw_sequence(root.path());
    let drive = root.path().join("raw.mcap");
    let report = import_kitti_raw(&seq, &drive).unwrap();
    assert_eq!((report.images, report.sweeps, report.poses), (3, 3, 3));
    let reader = DriveReader::open(&drive).unwrap();

    let images = reader.read_topic::<CompressedImage>(topics::CAMERA_COMPRESSED).unwrap();
    assert_eq!(images.len(), 3);
    assert_eq!(images[1].1.data, std::fs::read(seq.join("image_02/data/0000000001.png")).unwrap());
    assert_eq!(images[0].0, 1_317_042_145_050_000_000, "2011-09-26 13:02:25.050 UTC");

    let odometry = reader.read_topic::<Odometry>(topics::ODOMETRY).unwrap();
    for (i, (_, odom)) in odometry.iter().enumerate() {
        let p = odom.pose.pose.position;
        assert!((p.x - i as f64).abs() < 1e-3 && p.y.abs() < 1e-3, "frame {i}: {p:?}");
        assert_eq!(odom.twist.twist.linear.x, 10.0);
    }

    let clouds = reader.read_topic::<PointCloud2>(topics::LIDAR).unwrap();
    let points = from_point_cloud2(&clouds[0].1, "lidar").unwrap();
    assert_eq!((points[0].x, points[0].y, points[0].z, points[0].intensity), (10.0, 0.0, -1.0, 0.5));
    // The sweep starts facing backwards and turns clockwise over 100 ms:
    // forward is half-way, left a quarter of the way.
    assert!((points[0].time - 0.05).abs() < 1e-6, "{}", points[0].time);
    assert!((points[1].time - 0.025).abs() < 1e-6, "{}", points[1].time);

    let tf_static = reader.read_topic::<TfMessage>(topics::TF_STATIC).unwrap();
    let tree = StaticTransforms::from_messages(tf_static.iter().map(|(_, m)| m));
    let lidar_in_base = tree.lookup(frames::BASE_LINK, frames::LIDAR_TOP).unwrap().translation.vector;
    assert!((lidar_in_base - Vector3::new(0.81, -0.32, 0.80)).norm() < 0.02, "{lidar_in_base}");

    let streams = DriveStreams::load(&reader).unwrap();
    let (frames, sync) = synchronise(&streams, &SyncOptions::default());
    assert_eq!(frames.len(), 3);
    assert_eq!(sync.frames_without_lidar, 0, "{sync:?}");
    // The last image (250 ms) comes after the last OXTS sample (245 ms): it is
    // reported, not extrapolated.
    assert_eq!((sync.frames_without_pose, sync.frames_without_speed), (1, 1), "{sync:?}");
    assert!(frames[2].map_from_base_link.is_none());
    let x = frames[1].map_from_base_link.unwrap().translation.x;
    assert!((x - 1.05).abs() < 1e-3, "interpolated 5 ms past the pose at 1 m and 10 m/s: {x}");
}

#[test]
fn missing_calibration_names_file_and_field() {
    let root = tempfile::tempdir().unwrap();
    let seq = write_raw_sequence(root.path());
    std::fs::write(root.path().join("2011_09_26/calib_cam_to_cam.txt"), "S_rect_02: 1242 375\n").unwrap();
    let err = import_kitti_raw(&seq, &root.path().join("x.mcap")).unwrap_err().to_string();
    assert!(err.contains("calib_cam_to_cam.txt") && err.contains("P_rect_02"), "{err}");
}

#[test]
fn a_missing_raw_folder_is_named_as_a_folder() {
    let root = tempfile::tempdir().unwrap();
    let missing = root.path().join("2011_09_26_drive_0001_sync");
    let err = import_kitti_raw(&missing, &root.path().join("x.mcap")).unwrap_err().to_string();
    assert!(err.contains("2011_09_26_drive_0001_sync") && err.contains("no such folder"), "{err}");
    assert!(!err.contains("calib_cam_to_cam.txt"), "{err}");
}

/// How a test damages a copy of the KITTI frame.
type Edit = Box<dyn Fn(&Path)>;

/// A copy of the real KITTI frame in `root/name`, with `edit` applied.
fn mutated(root: &Path, name: &str, edit: impl Fn(&Path)) -> PathBuf {
    let dir = root.join(name);
    std::fs::create_dir_all(&dir).unwrap();
    for file in ["calib.txt", "image_02.png", "label_2.txt", "velodyne.bin"] {
        std::fs::copy(kitti_dir().join(file), dir.join(file)).unwrap();
    }
    edit(&dir);
    dir
}

fn replace_calib_line(dir: &Path, key: &str, line: &str) {
    let text = std::fs::read_to_string(dir.join("calib.txt")).unwrap();
    let text: Vec<String> = text
        .lines()
        .map(|l| if l.starts_with(&format!("{key}:")) { line.to_owned() } else { l.to_owned() })
        .collect();
    std::fs::write(dir.join("calib.txt"), text.join("\n")).unwrap();
}

#[test]
fn sensor_data_that_cannot_be_right_is_refused_at_import_naming_file_line_and_field() {
    let root = tempfile::tempdir().unwrap();
    let import =
        |dir: &Path| import_kitti_object(dir, &dir.join("out.mcap"), 1).map(|_| ()).unwrap_err().to_string();
    let zero12 = "0 0 0 0 0 0 0 0 0 0 0 0";
    let cases: Vec<(&str, Edit, Vec<&str>)> = vec![
        (
            "tr-zero",
            Box::new(move |d: &Path| {
                replace_calib_line(d, "Tr_velo_to_cam", &format!("Tr_velo_to_cam: {zero12}"));
            }),
            vec!["calib.txt", "Tr_velo_to_cam", "not a rotation"],
        ),
        (
            "tr-inf",
            Box::new(|d: &Path| {
                replace_calib_line(d, "Tr_velo_to_cam", "Tr_velo_to_cam: inf 0 0 0 0 1 0 0 0 0 1 0");
            }),
            vec!["Tr_velo_to_cam", "not finite"],
        ),
        (
            "fx-huge",
            Box::new(|d: &Path| replace_calib_line(d, "P2", "P2: 1e308 0 609 44 0 721 172 0.2 0 0 1 0.003")),
            vec!["P2", "focal lengths"],
        ),
        (
            "p2-word",
            Box::new(|d: &Path| replace_calib_line(d, "P2", "P2: 721 zero 609 44 0 721 172 0.2 0 0 1 0.003")),
            vec!["P2", "`zero` is not a number", "line 3"],
        ),
        (
            "p2-twice",
            Box::new(|d: &Path| {
                let text = std::fs::read_to_string(d.join("calib.txt")).unwrap();
                std::fs::write(d.join("calib.txt"), format!("{text}\nP2: 1 0 0 0 0 1 0 0 0 0 1 0\n"))
                    .unwrap();
            }),
            vec!["P2", "given twice"],
        ),
        (
            "nan-cloud",
            Box::new(|d: &Path| {
                let nan: Vec<u8> = (0..1000).flat_map(|_| f32::NAN.to_le_bytes()).collect();
                std::fs::write(d.join("velodyne.bin"), nan).unwrap();
            }),
            vec!["velodyne.bin", "none with finite coordinates"],
        ),
        (
            "empty-cloud",
            Box::new(|d: &Path| std::fs::write(d.join("velodyne.bin"), b"").unwrap()),
            vec!["velodyne.bin", "0 points"],
        ),
        (
            "tiny-image",
            Box::new(|d: &Path| {
                image::RgbImage::new(1, 1).save(d.join("image_02.png")).unwrap();
            }),
            vec!["image_02.png", "1x1", "principal point"],
        ),
        (
            "cut-png",
            Box::new(|d: &Path| {
                let bytes = std::fs::read(d.join("image_02.png")).unwrap();
                std::fs::write(d.join("image_02.png"), &bytes[..bytes.len() / 2]).unwrap();
            }),
            vec!["image_02.png", "not a readable PNG"],
        ),
    ];
    for (name, edit, needles) in cases {
        let dir = mutated(root.path(), name, edit);
        let err = import(&dir);
        for needle in needles {
            assert!(err.contains(needle), "{name}: `{needle}` not in: {err}");
        }
        assert!(!dir.join("out.mcap").exists(), "{name}: no drive is written");
    }
    // The untouched copy still imports.
    let good = mutated(root.path(), "good", |_| {});
    import_kitti_object(&good, &good.join("out.mcap"), 1).unwrap();
}

#[test]
fn non_finite_poses_are_refused_with_the_drive_topic_and_stamp() {
    use nines_datasets::drive::DriveWriter;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nan.mcap");
    let mut writer = DriveWriter::create(&path).unwrap();
    for i in 0..3u64 {
        let stamp = 1_000_000_000 + i * 100_000_000;
        let mut odom = Odometry::default();
        odom.header.stamp = nines_datasets::msg::Time::from_nanos(stamp);
        odom.pose.pose.orientation.w = 1.0;
        if i == 2 {
            odom.pose.pose.position.x = f64::NAN;
        }
        writer.write(topics::ODOMETRY, stamp, &odom).unwrap();
    }
    writer.finish().unwrap();
    let reader = DriveReader::open(&path).unwrap();
    let err = DriveStreams::load(&reader).err().unwrap().to_string();
    assert!(
        err.contains("nan.mcap") && err.contains(topics::ODOMETRY) && err.contains("1.200000000 s"),
        "{err}"
    );
}
