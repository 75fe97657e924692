//! Collection with a safety driver (HG-DAgger): a model that cannot take a
//! curve (freshly initialised, its plan is straight ahead) drives a curved
//! road; the safety driver takes over before it leaves the lane, and the
//! drive records the takeover, who drove, and the lidar distillation needs.

#![allow(clippy::unwrap_used, reason = "a test fails loudly on any error")]

use nines_datasets::contract::ModelContract;
use nines_datasets::drive::DriveReader;
use nines_datasets::msg::{ControlSource, Controller, Event, EventKind};
use nines_datasets::topics;
use nines_harness::Silent;
use nines_harness::collect::{CollectOptions, collect};
use nines_harness::eval::eval_config;
use nines_harness::safety_driver::Takeover;
use nines_harness::suite::{FramePath, SuiteCamera};
use nines_onboard::config::Config;

#[test]
fn the_safety_driver_takes_over_a_model_that_drives_straight_on_a_curve() {
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("straight-ahead.onnx");
    nines_offboard::export::export_untrained("tiny", &ModelContract::default(), 3, &model).unwrap();
    let options = CollectOptions {
        model,
        config: eval_config(Config::load_for_runtime(None).unwrap()),
        camera: SuiteCamera { width: 256, height: 128, frames: FramePath::Jpeg, ..SuiteCamera::default() },
        takeover: Takeover::default(),
        duration_s: Some(14.0),
        jobs: 1,
    };
    let out = dir.path().join("round");
    let runs = vec![("curves".to_owned(), 1_000_000)];
    let summary = collect(&options, &runs, &out, &Silent).unwrap();
    let run = &summary.runs[0];
    assert!(run.interventions >= 1, "the safety driver took over: {run:?}");
    assert!(run.failures.is_empty(), "and no failure got through: {run:?}");
    assert!(summary.line().contains("km per intervention"), "{}", summary.line());

    let reader = DriveReader::open(&run.drive).unwrap();
    let events = reader.read_topic::<Event>(topics::EVENTS).unwrap();
    let takeover = events
        .iter()
        .find(|(_, e)| e.kind == EventKind::Intervention as u8 && e.category == "takeover")
        .expect("a takeover event");
    assert!(takeover.1.detail.contains("the safety driver took over"), "{}", takeover.1.detail);
    eprintln!("{}; first: {}", summary.line(), takeover.1.detail);
    let control = reader.read_topic::<ControlSource>(topics::CONTROL_SOURCE).unwrap();
    let by = |c: Controller| control.iter().filter(|(_, m)| m.source == c as u8).count();
    assert!(by(Controller::Model) > 0 && by(Controller::SafetyDriver) > 0, "both drove");
    let safety_from = control.iter().find(|(_, m)| m.source == Controller::SafetyDriver as u8).unwrap().0;
    assert_eq!(safety_from, takeover.0, "the safety driver drives from the takeover's control period");
    let lidar = reader.topics().into_iter().find(|t| t.topic == topics::LIDAR).expect("lidar recorded");
    assert!(lidar.message_count > 50, "{lidar:?}");

    // Again: the drive is kept, and read back the same.
    let again = collect(&options, &runs, &out, &Silent).unwrap();
    assert_eq!(again.already, 1);
    assert_eq!(again.runs[0].interventions, run.interventions);
    assert!((again.runs[0].km - run.km).abs() < 1e-9);

    let eval_seed = vec![("curves".to_owned(), 3)];
    let err = collect(&options, &eval_seed, &out, &Silent).unwrap_err().to_string();
    assert!(err.contains("collection seeds start at 1000000"), "{err}");
}
