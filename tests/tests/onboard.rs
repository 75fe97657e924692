//! The onboard runtime end to end: a simulated drive through `nines-onboard`'s
//! threaded runtime with an exported (untrained, tiny) model on ONNX Runtime's
//! CPU provider. Determinism, fault injection (camera stall, corrupt JPEG, a
//! model emitting NaN, inference overrun, the source ending), the recorder,
//! and the OpenCV VideoCapture path.

#![allow(clippy::unwrap_used, reason = "a test fails loudly on any error")]

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

use nines_datasets::contract::ModelContract;
use nines_datasets::drive::{DriveReader, DriveWriter};
use nines_datasets::msg::{
    AckermannDriveStamped, CameraInfo, CompressedImage, DiagnosticArray, Event, ModelOutput, Odometry,
    RosMessage, TfMessage,
};
use nines_datasets::topics;
use nines_onboard::config::Config;
use nines_onboard::runtime::{self, Controls, Published, RunOptions, RunReport};
use nines_onboard::source::{self, Pacing};
use nines_sim::family;
use nines_sim::record::{RecordOptions, record_expert};
use nines_tests::shared_fixture_dir;
use protobuf::Message;

const STOP_DECEL: f32 = 4.0;
const PERIOD_NS: u64 = 50_000_000;

struct Fixture {
    dir: PathBuf,
    drive: PathBuf,
    model: PathBuf,
}

/// One simulated drive and one exported tiny model for every test.
fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let dir = shared_fixture_dir(env!("CARGO_TARGET_TMPDIR"), "onboard-fixture");
        let drive = dir.join("drive.mcap");
        let options = RecordOptions { duration_secs: Some(6.0), ..RecordOptions::default() };
        record_expert(family("lead_brake").unwrap().draw("lead_brake", 4), &drive, &options).unwrap();
        let model = dir.join("tiny.onnx");
        nines_offboard::export::export_untrained("tiny", &ModelContract::default(), 7, &model).unwrap();
        Fixture { dir, drive, model }
    })
}

fn config() -> Config {
    Config::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../configs/vehicle-sim.toml")).unwrap()
}

/// What a run published, in order.
#[derive(Default)]
struct Collected {
    commands: Vec<AckermannDriveStamped>,
    outputs: Vec<ModelOutput>,
    diagnostics: Vec<DiagnosticArray>,
    events: Vec<Event>,
}

fn run_with(config: &Config, source: &str, model: &Path, record: Option<PathBuf>) -> (RunReport, Collected) {
    run_paced(config, source, model, record, Pacing::Lockstep)
}

fn run_paced(
    config: &Config,
    source: &str,
    model: &Path,
    record: Option<PathBuf>,
    pacing: Pacing,
) -> (RunReport, Collected) {
    let collected = Arc::new(Mutex::new(Collected::default()));
    let sink_collected = Arc::clone(&collected);
    let sink: runtime::Sink = Box::new(move |m| {
        let mut c = sink_collected.lock().unwrap();
        match m {
            Published::Command(x) => c.commands.push(x.clone()),
            Published::ModelOutput(x) => c.outputs.push(x.clone()),
            Published::Diagnostics(x) => c.diagnostics.push(x.clone()),
            Published::Event(x) => c.events.push(x.clone()),
        }
    });
    let source = source::open(source, &config.camera.topic, config.camera.fps).unwrap();
    let options = RunOptions { pacing, record };
    let report = runtime::run(config, source, model, &options, Arc::new(Controls::default()), sink).unwrap();
    let collected = std::mem::take(&mut *collected.lock().unwrap());
    (report, collected)
}

fn cdr<M: RosMessage>(m: &M) -> Vec<u8> {
    nines_datasets::cdr::encode(m).unwrap()
}

fn is_stop(c: &AckermannDriveStamped) -> bool {
    c.drive.speed == 0.0 && (c.drive.acceleration + STOP_DECEL).abs() < 1e-6
}

/// Copies the fixture drive with `edit` applied to each camera frame
/// (return None to drop it) and the other inputs as they are.
fn edited_drive(name: &str, edit: impl Fn(u64, CompressedImage) -> Option<CompressedImage>) -> PathBuf {
    let f = fixture();
    let reader = DriveReader::open(&f.drive).unwrap();
    let path = f.dir.join(name);
    let mut w = DriveWriter::create(&path).unwrap();
    for (t, m) in reader.read_topic::<TfMessage>(topics::TF_STATIC).unwrap() {
        w.write(topics::TF_STATIC, t, &m).unwrap();
    }
    for (t, m) in reader.read_topic::<CameraInfo>(topics::CAMERA_INFO).unwrap() {
        w.write(topics::CAMERA_INFO, t, &m).unwrap();
    }
    for (t, m) in reader.read_topic::<Odometry>(topics::ODOMETRY).unwrap() {
        w.write(topics::ODOMETRY, t, &m).unwrap();
    }
    for (t, m) in reader.read_topic::<CompressedImage>(topics::CAMERA_COMPRESSED).unwrap() {
        if let Some(m) = edit(t, m) {
            w.write(topics::CAMERA_COMPRESSED, t, &m).unwrap();
        }
    }
    w.finish().unwrap();
    path
}

fn frame_stamps() -> Vec<u64> {
    let reader = DriveReader::open(&fixture().drive).unwrap();
    reader
        .read_topic::<CompressedImage>(topics::CAMERA_COMPRESSED)
        .unwrap()
        .into_iter()
        .map(|(t, _)| t)
        .collect()
}

#[test]
fn the_same_drive_twice_gives_byte_identical_commands_and_a_replayable_recording() {
    let f = fixture();
    let mut config = config();
    // Lockstep on a shared CI machine: the wall-clock deadline is not what this test is about.
    config.safety.inference_deadline_ms = 10_000.0;
    let recording = f.dir.join("runtime-drive.mcap");
    let (a, ca) = run_with(&config, f.drive.to_str().unwrap(), &f.model, Some(recording.clone()));
    let (b, cb) = run_with(&config, f.drive.to_str().unwrap(), &f.model, None);
    let bytes = |c: &Collected| c.commands.iter().flat_map(cdr).collect::<Vec<u8>>();
    assert_eq!(bytes(&ca), bytes(&cb), "command streams differ");
    let frames = frame_stamps().len() as u64;
    assert_eq!(a.frames, frames, "every frame processed in lockstep");
    assert_eq!(b.frames, frames);
    assert_eq!(ca.outputs.len() as u64, frames);
    // Commands between frames at the control rate: 10 Hz camera, 20 Hz control.
    assert!(a.commands >= 2 * frames - 2, "{} commands for {frames} frames", a.commands);
    // Engaged after the start-up frames: the model drove (not every command is a stop).
    let driving = ca.commands.iter().filter(|c| !is_stop(c)).count();
    assert!(driving as u64 > frames, "only {driving} driving commands");
    // The source ending is the one event, and the last command is the stop.
    assert_eq!(ca.events.len(), 1, "{:?}", ca.events);
    assert_eq!(ca.events[0].category, "source_ended");
    assert!(is_stop(ca.commands.last().unwrap()));
    // The recording carries inputs and outputs, and opens with our reader.
    assert_eq!(a.recorded, vec![recording.clone()]);
    let reader = DriveReader::open(&recording).unwrap();
    assert_eq!(reader.read_topic::<CompressedImage>(topics::CAMERA_COMPRESSED).unwrap().len() as u64, frames);
    assert_eq!(reader.read_topic::<ModelOutput>(topics::MODEL_OUTPUT).unwrap().len() as u64, frames);
    assert_eq!(reader.read_topic::<AckermannDriveStamped>(topics::COMMAND).unwrap().len() as u64, a.commands);
    assert_eq!(reader.read_topic::<Event>(topics::EVENTS).unwrap().len(), 1);
    assert!(!reader.read_topic::<DiagnosticArray>(topics::DIAGNOSTICS).unwrap().is_empty());
    assert_eq!(reader.read_topic::<CameraInfo>(topics::CAMERA_INFO).unwrap().len(), 1);
    // Its own recording replays through the runtime to the same commands.
    let (_, cc) = run_with(&config, recording.to_str().unwrap(), &f.model, None);
    assert_eq!(bytes(&cc), bytes(&ca), "the recorded drive replays to the same commands");
    // Diagnostics name the provider.
    let provider =
        ca.diagnostics[0].status.iter().flat_map(|s| &s.values).find(|kv| kv.key == "provider").unwrap();
    assert_eq!(provider.value, "cpu");
}

/// The first stop command at or after `t`, and the command count before it.
fn first_stop_after(c: &Collected, t: u64) -> &AckermannDriveStamped {
    c.commands.iter().find(|x| x.header.stamp.as_nanos() >= t && is_stop(x)).expect("a stop command")
}

#[test]
fn a_camera_stall_stops_within_one_control_period_of_the_frame_age_limit() {
    let f = fixture();
    let stamps = frame_stamps();
    let (stall_from, stall_to) = (stamps[30], stamps[45]);
    let drive = edited_drive("stall.mcap", |t, m| (t < stall_from || t >= stall_to).then_some(m));
    let mut config = config();
    config.safety.inference_deadline_ms = 10_000.0;
    let (_, c) = run_with(&config, drive.to_str().unwrap(), &f.model, None);
    let event = c.events.iter().find(|e| e.category == "frame_age").expect("a frame_age stop");
    let last_frame = stamps[29];
    let limit = last_frame + (config.safety.max_frame_age_ms * 1e6) as u64;
    let stop = first_stop_after(&c, last_frame + 1);
    let at = stop.header.stamp.as_nanos();
    assert!(
        at > limit && at <= limit + PERIOD_NS,
        "stop at {} ms after the last frame",
        (at - last_frame) / 1_000_000
    );
    assert_eq!(event.header.stamp.as_nanos(), at);
    // The stop says why on /diagnostics.
    assert!(
        c.diagnostics
            .iter()
            .any(|d| d.status.iter().any(|s| s.message.contains("frame_age") && s.level == 2))
    );
    // Without a new request it stays stopped after frames return.
    assert!(c.commands.iter().filter(|x| x.header.stamp.as_nanos() > at).all(is_stop));
}

#[test]
fn a_corrupt_jpeg_stops_in_the_same_control_period() {
    let f = fixture();
    let stamps = frame_stamps();
    let bad_at = stamps[25];
    let drive = edited_drive("corrupt.mcap", |t, mut m| {
        if t == bad_at {
            m.data = vec![0xFF, 0xD8, 0xFF, 0x00, 0x13, 0x37, 0xFF, 0xD9];
        }
        Some(m)
    });
    let mut config = config();
    config.safety.inference_deadline_ms = 10_000.0;
    let (report, c) = run_with(&config, drive.to_str().unwrap(), &f.model, None);
    let event = c.events.iter().find(|e| e.category == "bad_frame").expect("a bad_frame stop");
    assert_eq!(event.header.stamp.as_nanos(), bad_at);
    assert!(is_stop(first_stop_after(&c, bad_at)));
    assert_eq!(
        first_stop_after(&c, bad_at).header.stamp.as_nanos(),
        bad_at,
        "the corrupt frame's own command stops"
    );
    assert_eq!(report.frames, stamps.len() as u64, "the corrupt frame is counted, the rest still run");
}

/// The fixture model, parsed, with its `plan` output renamed to `inner`, so
/// that added nodes can compute `plan` from it.
fn fixture_graph(inner: &str) -> onnx_ir::ModelProto {
    let mut model = onnx_ir::ModelProto::parse_from_bytes(&std::fs::read(&fixture().model).unwrap()).unwrap();
    for node in &mut model.graph.as_mut().unwrap().node {
        for out in &mut node.output {
            if out == "plan" {
                inner.clone_into(out);
            }
        }
    }
    model
}

fn onnx_node(op: &str, inputs: &[&str], output: &str) -> onnx_ir::NodeProto {
    let mut n = onnx_ir::NodeProto::new();
    op.clone_into(&mut n.op_type);
    format!("edit_{output}").clone_into(&mut n.name);
    n.input = inputs.iter().map(|s| (*s).to_owned()).collect();
    n.output = vec![output.to_owned()];
    n
}

/// A float [1, 1] initializer.
fn onnx_scalar(name: &str, value: f32) -> onnx_ir::TensorProto {
    let mut t = onnx_ir::TensorProto::new();
    name.clone_into(&mut t.name);
    t.dims = vec![1, 1];
    t.data_type = 1; // FLOAT
    t.float_data = vec![value];
    t
}

fn write_model(model: &onnx_ir::ModelProto, name: &str) -> PathBuf {
    let path = fixture().dir.join(name);
    std::fs::write(&path, model.write_to_bytes().unwrap()).unwrap();
    path
}

/// The fixture model with its plan poisoned: NaN once the ego's speed passes `threshold`.
fn nan_model(threshold: f32, above: bool) -> PathBuf {
    let mut model = fixture_graph("plan_clean");
    let graph = model.graph.as_mut().unwrap();
    graph.initializer.extend([onnx_scalar("gate_threshold", threshold), onnx_scalar("gate_zero", 0.0)]);
    // log(threshold - speed) is NaN past the threshold; times zero it is 0 or NaN.
    let (a, b) = if above { ("gate_threshold", "speed") } else { ("speed", "gate_threshold") };
    graph.node.extend([
        onnx_node("Sub", &[a, b], "gate_margin"),
        onnx_node("Log", &["gate_margin"], "gate_log"),
        onnx_node("Mul", &["gate_log", "gate_zero"], "gate_nan"),
        onnx_node("Add", &["plan_clean", "gate_nan"], "plan"),
    ]);
    write_model(&model, &format!("nan-{threshold}.onnx"))
}

#[test]
fn a_model_emitting_nan_stops_in_the_same_control_period() {
    let f = fixture();
    let (threshold, above, start) = crossing_speed();
    let model = nan_model(threshold as f32, above);
    let mut config = config();
    config.safety.inference_deadline_ms = 10_000.0;
    let (_, c) = run_with(&config, f.drive.to_str().unwrap(), &model, None);
    let event = c.events.iter().find(|e| e.category == "output_nan").expect("an output_nan stop");
    let t = event.header.stamp.as_nanos();
    assert!(t > start + 2_000_000_000, "engaged and driving before the fault");
    let output = c.outputs.iter().find(|o| o.header.stamp.as_nanos() == t).unwrap();
    assert!(output.plan_x_m.iter().any(|v| v.is_nan()), "the model did emit NaN");
    assert_eq!(first_stop_after(&c, t).header.stamp.as_nanos(), t);
    assert!(
        c.commands.iter().all(|x| x.drive.steering_angle.is_finite() && x.drive.acceleration.is_finite())
    );
}

/// The fixture model made slow once the ego's speed passes `threshold`: an
/// ONNX `If` whose taken branch multiplies two `n` x `n` matrices before
/// passing the plan through (ONNX Runtime only runs the branch taken).
fn slow_model(threshold: f32, above: bool, n: i64) -> PathBuf {
    use onnx_ir::{AttributeProto, AttributeType, GraphProto, NodeProto, TensorProto};
    let mut model = fixture_graph("plan_fast");
    let graph = model.graph.as_mut().unwrap();
    let plan_info = graph.output.iter().find(|o| o.name == "plan").unwrap().clone();
    let branch = |name: &str, nodes: Vec<NodeProto>, initializers: Vec<TensorProto>, output: &str| {
        let mut g = GraphProto::new();
        name.clone_into(&mut g.name);
        g.node = nodes;
        g.initializer = initializers;
        let mut out = plan_info.clone();
        output.clone_into(&mut out.name);
        g.output = vec![out];
        g
    };
    let mut shape = TensorProto::new();
    "slow_shape".clone_into(&mut shape.name);
    shape.dims = vec![2];
    shape.data_type = 7; // INT64
    shape.int64_data = vec![n, n];
    let slow = branch(
        "slow",
        vec![
            onnx_node("ConstantOfShape", &["slow_shape"], "slow_c"),
            // Depending on the input, so ONNX Runtime cannot fold the product away at load.
            onnx_node("Add", &["slow_c", "speed"], "slow_m"),
            onnx_node("MatMul", &["slow_m", "slow_m"], "slow_p"),
            onnx_node("ReduceSum", &["slow_p"], "slow_s"),
            onnx_node("Mul", &["slow_s", "slow_zero"], "slow_z"),
            onnx_node("Add", &["plan_fast", "slow_z"], "slow_plan"),
        ],
        vec![shape, onnx_scalar("slow_zero", 0.0)],
        "slow_plan",
    );
    let fast =
        branch("fast", vec![onnx_node("Identity", &["plan_fast"], "fast_plan")], Vec::new(), "fast_plan");
    graph.initializer.push(onnx_scalar("slow_threshold", threshold));
    let (a, b) = if above { ("speed", "slow_threshold") } else { ("slow_threshold", "speed") };
    graph.node.push(onnx_node("Greater", &[a, b], "slow_cond"));
    let mut gate = onnx_node("If", &["slow_cond"], "plan");
    for (name, g) in [("then_branch", slow), ("else_branch", fast)] {
        let mut attr = AttributeProto::new();
        name.clone_into(&mut attr.name);
        attr.type_ = AttributeType::GRAPH.into();
        attr.g = protobuf::MessageField::some(g);
        gate.attribute.push(attr);
    }
    graph.node.push(gate);
    write_model(&model, &format!("slow-{threshold}.onnx"))
}

/// A speed the fixture drive crosses after engagement (halfway from the
/// speed at 2 s to the last speed), whether it crosses upwards, and the
/// drive's start.
fn crossing_speed() -> (f64, bool, u64) {
    let f = fixture();
    let reader = DriveReader::open(&f.drive).unwrap();
    let speeds: Vec<(u64, f64)> = reader
        .read_topic::<Odometry>(topics::ODOMETRY)
        .unwrap()
        .into_iter()
        .map(|(t, o)| (t, o.twist.twist.linear.x))
        .collect();
    let start = speeds[0].0;
    let at_2s = speeds.iter().find(|(t, _)| *t >= start + 2_000_000_000).unwrap().1;
    let end = speeds.last().unwrap().1;
    assert!((end - at_2s).abs() > 0.5, "the drive's speed changes: {at_2s} -> {end}");
    (f64::midpoint(at_2s, end), end > at_2s, start)
}

#[test]
fn an_inference_overrun_stops_in_the_same_control_period() {
    let f = fixture();
    let (threshold, above, start) = crossing_speed();
    let model = slow_model(threshold as f32, above, 2400);
    let mut config = config();
    // Fast frames take a few ms here; the slow branch (a 2400^3 product, 28 GFLOP) about 0.2 s.
    config.safety.inference_deadline_ms = 60.0;
    // In real time (the robot's clock) the measured time decides.
    let (_, c) = run_paced(&config, f.drive.to_str().unwrap(), &model, None, Pacing::Realtime);
    let event =
        c.events.iter().find(|e| e.category == "inference_deadline").expect("an inference_deadline stop");
    let t = event.header.stamp.as_nanos();
    assert!(t > start + 2_000_000_000, "engaged and driving before the overrun");
    assert!(event.value > 0.06, "the measured time is in the event: {}", event.value);
    assert_eq!(first_stop_after(&c, t).header.stamp.as_nanos(), t);
    assert!(c.diagnostics.iter().any(|d| d.status.iter().any(|s| s.message.contains("inference_deadline"))));

    // In lockstep the wall clock never decides: the same slow model runs
    // every frame without a stop, and its slow frames are measured.
    let (report, c) = run_with(&config, f.drive.to_str().unwrap(), &model, None);
    assert!(c.events.iter().all(|e| e.category != "inference_deadline"), "{:?}", c.events);
    assert_eq!(report.frames, frame_stamps().len() as u64, "slow frames still run and are counted");
    assert!(report.busy_s.iter().any(|&s| s > 0.06), "the slow branch's time is still measured");
    assert!(!c.commands.iter().all(is_stop), "the model engaged and drove");
    // A configured latency beyond the deadline trips it on every frame: the runtime never engages.
    config.safety.lockstep_latency_ms = Some(61.0);
    let (_, c) = run_with(&config, f.drive.to_str().unwrap(), &model, None);
    assert!(c.commands.iter().all(is_stop), "engaged although every frame is over the deadline");
}

#[test]
fn a_model_whose_contract_does_not_fit_the_camera_is_refused() {
    let f = fixture();
    let mut contract = ModelContract::default();
    contract.camera.pitch_down_deg = 60.0;
    let model = f.dir.join("steep.onnx");
    nines_offboard::export::export_untrained("tiny", &contract, 7, &model).unwrap();
    let config = config();
    let source = source::open(f.drive.to_str().unwrap(), &config.camera.topic, config.camera.fps).unwrap();
    let options = RunOptions { pacing: Pacing::Lockstep, record: None };
    let err =
        runtime::run(&config, source, &model, &options, Arc::new(Controls::default()), Box::new(|_| {}))
            .expect_err("refused")
            .to_string();
    assert!(err.contains("steep.onnx") && err.contains("virtual camera"), "{err}");
}

#[test]
fn an_execution_provider_that_cannot_register_is_an_error_unless_fallback_is_allowed() {
    let f = fixture();
    let mut config = config();
    config.model.providers.insert(0, nines_onboard::config::Provider::Cuda { device: 0 });
    let source = || source::open(f.drive.to_str().unwrap(), &config.camera.topic, config.camera.fps).unwrap();
    let options = RunOptions { pacing: Pacing::Lockstep, record: None };
    let run = |config: &Config| {
        runtime::run(config, source(), &f.model, &options, Arc::new(Controls::default()), Box::new(|_| {}))
    };
    // The PyPI onnxruntime wheel the setup script installs has no CUDA provider.
    let err = run(&config).expect_err("cuda is not in this ONNX Runtime").to_string();
    assert!(err.contains("cuda") && err.contains("allow_fallback"), "{err}");
    config.model.allow_fallback = true;
    config.recording.mode = nines_onboard::config::RecordMode::Off;
    let report = run(&config).unwrap();
    assert_eq!(report.provider, "cpu");
}

#[test]
fn a_video_file_streams_through_opencv_into_commands() {
    use opencv::core::{Mat, Size, Vec3b};
    use opencv::prelude::*;
    use opencv::videoio::VideoWriter;
    let f = fixture();
    let reader = DriveReader::open(&f.drive).unwrap();
    let frames = reader.read_topic::<CompressedImage>(topics::CAMERA_COMPRESSED).unwrap();
    let video = f.dir.join("drive.avi");
    let fourcc = VideoWriter::fourcc('M', 'J', 'P', 'G').unwrap();
    let mut writer =
        VideoWriter::new(video.to_str().unwrap(), fourcc, 10.0, Size::new(512, 256), true).unwrap();
    assert!(writer.is_opened().unwrap(), "OpenCV can write MJPG AVI");
    for (_, msg) in &frames {
        let rgb = nines_datasets::image::decode_compressed(msg, "test").unwrap();
        let mut bgr = Mat::new_rows_cols_with_default(256, 512, opencv::core::CV_8UC3, 0.into()).unwrap();
        for (x, y, p) in rgb.enumerate_pixels() {
            *bgr.at_2d_mut::<Vec3b>(y as i32, x as i32).unwrap() = Vec3b::from([p[2], p[1], p[0]]);
        }
        writer.write(&bgr).unwrap();
    }
    writer.release().unwrap();
    let mut config = config();
    config.safety.inference_deadline_ms = 10_000.0;
    let (report, c) =
        run_with(&config, video.to_str().unwrap(), &f.model, Some(f.dir.join("video-run.mcap")));
    assert_eq!(report.frames, frames.len() as u64, "every video frame processed");
    assert!(c.commands.iter().filter(|x| !is_stop(x)).count() > frames.len() / 2, "the model drove");
    // Frame times come from the file: 100 ms apart.
    let t: Vec<u64> = c.outputs.iter().map(|o| o.input_stamp.as_nanos()).collect();
    assert!(t.windows(2).all(|w| (w[1] - w[0]).abs_diff(100_000_000) < 2_000_000), "{:?}", &t[..4]);
    // Its recording holds the frames, re-encoded as JPEG.
    let rec = DriveReader::open(f.dir.join("video-run.mcap")).unwrap();
    assert_eq!(rec.read_topic::<CompressedImage>(topics::CAMERA_COMPRESSED).unwrap().len(), frames.len());
}

#[test]
fn replay_with_a_model_shows_its_predictions_next_to_what_was_driven() {
    let f = fixture();
    let rrd = f.dir.join("replay-model.rrd");
    let options = nines_tools::replay::ReplayOptions {
        model: Some(f.model.clone()),
        lidar_stride: 8,
        ..nines_tools::replay::ReplayOptions::default()
    };
    let report = nines_tools::replay::save_rrd(&f.drive, &rrd, &options).unwrap();
    let model = report.model.expect("the model ran");
    assert_eq!(model.frames, frame_stamps().len());
    assert!(model.commands > model.frames);
    let (steer, speed) = model.against_driven.expect("the drive has driven commands");
    assert!(steer.is_finite() && speed.is_finite() && speed > 0.0, "{steer} {speed}");
    for entity in ["plots/steering/model", "plots/speed/model", "plots/steering/command"] {
        assert!(report.entities.iter().any(|e| e.contains(entity)), "{entity} in {:?}", report.entities);
    }
    assert!(std::fs::metadata(&rrd).unwrap().len() > 10_000);
}
