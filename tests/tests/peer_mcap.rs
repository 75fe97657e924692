//! A drive written by nines is decoded by the Python `mcap` +
//! `mcap-ros2-support` readers with every field equal to what was written,
//! for every message type of DESIGN.md section 2.

#![allow(clippy::unwrap_used, reason = "a test fails loudly on any error")]
#![allow(clippy::float_cmp, reason = "round trips must be bit-exact")]
#![allow(clippy::too_many_lines, clippy::cast_lossless, reason = "test scenarios read top to bottom")]

use std::collections::HashMap;

use nines_datasets::drive::DriveWriter;
use nines_datasets::msg::*;
use nines_datasets::pointcloud::{LidarPoint, to_point_cloud2};
use nines_tests::run_peer;
use serde::Serialize;

const T: u64 = 1_700_000_000_123_456_789;

fn header(frame: &str) -> Header {
    Header::new(T, frame)
}

fn covariance(seed: f64) -> [f64; 36] {
    std::array::from_fn(|i| seed + i as f64 * 0.25)
}

struct Expected {
    by_topic: HashMap<&'static str, Box<dyn Fn(serde_json::Value)>>,
}

impl Expected {
    fn add<M: RosMessage + Serialize + PartialEq + std::fmt::Debug + 'static>(
        &mut self,
        writer: &mut DriveWriter,
        topic: &'static str,
        msg: M,
    ) {
        writer.write(topic, T, &msg).unwrap();
        self.by_topic.insert(
            topic,
            Box::new(move |json| {
                let decoded: M = serde_json::from_value(json.clone()).unwrap_or_else(|e| {
                    panic!("{topic}: python gave {json} which is not a {}: {e}", M::TYPE_NAME)
                });
                assert_eq!(decoded, msg, "{topic}");
            }),
        );
    }
}

#[test]
fn python_mcap_ros2_decodes_every_message_type() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("all_types.mcap");
    let mut writer = DriveWriter::create(&path).unwrap();
    let mut expected = Expected { by_topic: HashMap::new() };

    expected.add(
        &mut writer,
        "/camera/front/image/compressed",
        CompressedImage {
            header: header("camera_front_optical"),
            format: "jpeg".into(),
            data: (0..=255).collect(),
        },
    );
    expected.add(
        &mut writer,
        "/camera/front/image",
        Image {
            header: header("camera_front_optical"),
            height: 2,
            width: 3,
            encoding: "rgb8".into(),
            is_bigendian: 0,
            step: 9,
            data: (0..18).collect(),
        },
    );
    expected.add(
        &mut writer,
        "/camera/front/camera_info",
        CameraInfo {
            header: header("camera_front_optical"),
            height: 375,
            width: 1242,
            distortion_model: "plumb_bob".into(),
            d: vec![-0.1, 0.01, 0.001, -0.002, 0.0003],
            k: [721.5, 0.0, 609.5, 0.0, 721.5, 172.8, 0.0, 0.0, 1.0],
            r: [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0],
            p: [721.5, 0.0, 609.5, 44.8, 0.0, 721.5, 172.8, 0.2, 0.0, 0.0, 1.0, 0.0027],
            binning_x: 1,
            binning_y: 2,
            roi: RegionOfInterest { x_offset: 1, y_offset: 2, height: 3, width: 4, do_rectify: true },
        },
    );
    let points: Vec<LidarPoint> = (0..5)
        .map(|i| LidarPoint {
            x: i as f32 * 1.5,
            y: -0.25,
            z: 0.125,
            intensity: 0.5,
            ring: i,
            time: i as f32 * 0.01,
        })
        .collect();
    expected.add(&mut writer, "/lidar/top/points", to_point_cloud2(header("lidar_top"), &points));
    let transform = |parent: &str, child: &str, x: f64| TransformStamped {
        header: Header::new(T, parent),
        child_frame_id: child.into(),
        transform: Transform {
            translation: Vector3 { x, y: -1.0, z: 2.0 },
            rotation: Quaternion { x: 0.0, y: 0.0, z: 0.6, w: 0.8 },
        },
    };
    expected.add(&mut writer, "/tf", TfMessage { transforms: vec![transform("map", "base_link", 12.5)] });
    expected.add(
        &mut writer,
        "/tf_static",
        TfMessage {
            transforms: vec![
                transform("base_link", "lidar_top", 0.5),
                transform("base_link", "camera_front_optical", 1.5),
            ],
        },
    );
    expected.add(
        &mut writer,
        "/vehicle/odometry",
        Odometry {
            header: header("map"),
            child_frame_id: "base_link".into(),
            pose: PoseWithCovariance {
                pose: Pose {
                    position: Point { x: 1.0, y: 2.0, z: 3.0 },
                    orientation: Quaternion { x: 0.0, y: 0.0, z: 0.6, w: 0.8 },
                },
                covariance: covariance(0.5),
            },
            twist: TwistWithCovariance {
                twist: Twist {
                    linear: Vector3 { x: 7.5, y: 0.1, z: 0.0 },
                    angular: Vector3 { x: 0.0, y: 0.0, z: 0.2 },
                },
                covariance: covariance(-3.0),
            },
        },
    );
    expected.add(
        &mut writer,
        "/control/command",
        AckermannDriveStamped {
            header: header("base_link"),
            drive: AckermannDrive {
                steering_angle: 0.1,
                steering_angle_velocity: 0.5,
                speed: 8.25,
                acceleration: -1.5,
                jerk: 0.3,
            },
        },
    );
    expected.add(
        &mut writer,
        "/diagnostics",
        DiagnosticArray {
            header: header(""),
            status: vec![DiagnosticStatus {
                level: DiagnosticStatus::WARN,
                name: "nines/safety".into(),
                message: "frame age 120 ms".into(),
                hardware_id: "jetson-0".into(),
                values: vec![KeyValue { key: "frame_age_ms".into(), value: "120".into() }],
            }],
        },
    );
    expected.add(
        &mut writer,
        "/nines/events",
        Event {
            header: header("base_link"),
            kind: EventKind::Failure as u8,
            category: "low_ttc".into(),
            detail: "time to collision 0.8 s".into(),
            value: 0.8,
        },
    );
    expected.add(
        &mut writer,
        "/nines/model_output",
        ModelOutput {
            header: header("base_link"),
            model_digest: "sha256:abc".into(),
            input_stamp: Time { sec: 1_700_000_000, nanosec: 5 },
            plan_time_s: vec![1.0, 2.0, 3.0],
            plan_x_m: vec![5.0, 10.5, 16.0],
            plan_y_m: vec![0.0, 0.25, 0.75],
            plan_speed_mps: vec![5.0, 5.5, 6.0],
            lead_probability: 0.75,
            lead_distance_m: 22.5,
            lead_relative_speed_mps: -1.25,
            latency_s: 0.015,
        },
    );
    expected.add(
        &mut writer,
        "/annotations/objects",
        ObjectArray {
            header: header("base_link"),
            objects: vec![Object {
                id: 7,
                label: "car".into(),
                pose: Pose {
                    position: Point { x: 12.0, y: -2.0, z: 0.8 },
                    orientation: Quaternion::default(),
                },
                size: Vector3 { x: 4.5, y: 1.8, z: 1.6 },
                velocity: Twist { linear: Vector3 { x: 3.0, y: 0.0, z: 0.0 }, angular: Vector3::default() },
                truncation: 0.25,
                occlusion: 1,
                box_2d: [100.0, 150.5, 300.0, 250.25],
            }],
        },
    );
    writer.finish().unwrap();

    let output = run_peer("ros2_dump.py", &[&path]);
    let mut lines = output.lines();
    let file_header: serde_json::Value = serde_json::from_str(lines.next().unwrap()).unwrap();
    assert_eq!(file_header["profile"], "ros2");
    let mut seen = Vec::new();
    for line in lines {
        let record: serde_json::Value = serde_json::from_str(line).unwrap();
        let topic = record["topic"].as_str().unwrap().to_owned();
        assert_eq!(record["encoding"], "ros2msg");
        assert_eq!(record["log_time"].as_u64(), Some(T));
        let qos = record["qos"].as_str().unwrap();
        let durability = if topic == "/tf_static" { "durability: 1" } else { "durability: 2" };
        assert!(qos.contains(durability), "{topic}: {qos}");
        (expected.by_topic[topic.as_str()])(record["msg"].clone());
        seen.push(topic);
    }
    seen.sort();
    let mut all: Vec<&str> = expected.by_topic.keys().copied().collect();
    all.sort_unstable();
    assert_eq!(seen, all, "python saw every topic once");
}
