//! Disturbed collection (DART): the same family, seed and profile give the
//! same drive byte for byte; the drive says when and what was injected; and
//! the expert is pushed into the off-centre states a drifting model reaches,
//! and recovers from them.

#![allow(clippy::unwrap_used, reason = "a test fails loudly on any error")]

mod common;

use common::payloads;
use nines_datasets::drive::DriveReader;
use nines_datasets::msg::{AckermannDrive, ControlSource, Event, EventKind};
use nines_datasets::topics;
use nines_sim::disturb::{DisturbProfile, DisturbancePlan, DisturbedExpert};
use nines_sim::family;
use nines_sim::record::{Control, Driver, Mark, Observation, RecordOptions, record_expert, simulate};
use nines_sim::render::camera::CameraConfig;

fn options(disturb: DisturbProfile, duration: f64) -> RecordOptions {
    RecordOptions {
        camera: CameraConfig { width: 128, height: 64, ..CameraConfig::default() },
        duration_secs: Some(duration),
        record_lidar: false,
        disturb,
        ..RecordOptions::default()
    }
}

#[test]
fn a_disturbed_drive_is_deterministic_and_says_what_was_injected() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b, none) = (dir.path().join("a.mcap"), dir.path().join("b.mcap"), dir.path().join("n.mcap"));
    let scenario = || family("straight").unwrap().draw("straight", 1_000_003);
    for path in [&a, &b] {
        record_expert(scenario(), path, &options(DisturbProfile::dart(), 12.0)).unwrap();
    }
    record_expert(scenario(), &none, &options(DisturbProfile::default(), 12.0)).unwrap();
    assert_eq!(payloads(&a), payloads(&b), "the same family, seed and profile give the same drive");
    assert_ne!(payloads(&a), payloads(&none));

    let reader = DriveReader::open(&a).unwrap();
    let control = reader.read_topic::<ControlSource>(topics::CONTROL_SOURCE).unwrap();
    let disturbed = control.iter().filter(|(_, c)| c.disturbed).count();
    assert!(disturbed > 0 && disturbed < control.len(), "{disturbed} of {} periods disturbed", control.len());
    assert!(
        control.iter().all(|(_, c)| c.imitable() != c.disturbed),
        "only disturbed periods are not imitable"
    );
    let marks: Vec<Event> = reader
        .read_topic::<Event>(topics::EVENTS)
        .unwrap()
        .into_iter()
        .map(|(_, e)| e)
        .filter(|e| e.kind == EventKind::Disturbance as u8)
        .collect();
    let plan = DisturbancePlan::draw(&DisturbProfile::dart(), "straight", 1_000_003, 12.0);
    assert_eq!(marks.len(), plan.steering.len() + plan.speed.len(), "one event per disturbance");
    assert!(marks.iter().all(|e| e.detail.contains("dart profile") && e.value > 0.0), "{marks:?}");
    // The undisturbed drive has no disturbed period and no such event.
    let reader = DriveReader::open(&none).unwrap();
    let control = reader.read_topic::<ControlSource>(topics::CONTROL_SOURCE).unwrap();
    assert!(control.iter().all(|(_, c)| c.imitable()));
}

/// The disturbed expert, watched: how far from its lane it gets.
struct Watched {
    inner: DisturbedExpert,
    lateral_m: Vec<f64>,
    heading_deg: Vec<f64>,
}

impl Driver for Watched {
    fn wants_camera(&self) -> bool {
        false
    }
    fn command(&mut self, o: &Observation<'_>) -> AckermannDrive {
        let (lateral, heading) = o.sim.lane_error();
        self.lateral_m.push(lateral.abs());
        self.heading_deg.push(heading.abs().to_degrees());
        self.inner.command(o)
    }
    fn control(&self) -> Control {
        self.inner.control()
    }
    fn marks(&mut self, now_secs: f64) -> Vec<Mark> {
        self.inner.marks(now_secs)
    }
}

#[test]
fn dart_reaches_the_states_a_drifting_model_reaches_and_the_expert_recovers() {
    let mut reached = (0.0f64, 0.0f64);
    // Every family once, on collection seeds (>= 1,000,000: never a suite's).
    for (i, (name, _)) in nines_sim::FAMILIES.iter().enumerate() {
        let (name, seed) = (*name, 1_000_000 + i as u64);
        let scenario = family(name).unwrap().draw(name, seed);
        let plan = DisturbancePlan::draw(&DisturbProfile::dart(), name, seed, 30.0);
        let inner = DisturbedExpert::new(plan, DisturbProfile::dart().max_lateral_m);
        let mut driver = Watched { inner, lateral_m: Vec::new(), heading_deg: Vec::new() };
        let summary = simulate(scenario, &options(DisturbProfile::dart(), 30.0), None, &mut driver).unwrap();
        assert!(
            summary.events.is_empty(),
            "{name}-{seed}: the disturbed expert recovers: {:?}",
            summary.events
        );
        let max = |v: &[f64]| v.iter().copied().fold(0.0, f64::max);
        reached = (reached.0.max(max(&driver.lateral_m)), reached.1.max(max(&driver.heading_deg)));
    }
    // Sized from the model's failure onset (docs/NINES.md): 0.3-1.2 m off-centre, 2-8 degrees.
    assert!(reached.0 > 0.3, "the largest lateral offset reached is {:.2} m", reached.0);
    assert!(reached.1 > 2.0, "the largest heading error reached is {:.1} degrees", reached.1);
    eprintln!("dart reached {:.2} m and {:.1} degrees at most", reached.0, reached.1);
}
