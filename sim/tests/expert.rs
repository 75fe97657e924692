//! The expert completes every scenario family without a failure, and the
//! same seed gives the same run.

#![allow(clippy::unwrap_used, reason = "a test fails loudly on any error")]
#![allow(clippy::float_cmp, reason = "round trips must be bit-exact")]

use nines_sim::{FAMILIES, Sim, family};

fn run_expert(name: &str, seed: u64) -> (Vec<nines_sim::events::SimEvent>, Sim) {
    let scenario = family(name).unwrap().draw(name, seed);
    let mut sim = Sim::new(scenario);
    let mut events = Vec::new();
    while !sim.done() {
        let command = sim.expert_command();
        events.extend(sim.step(&command).events);
    }
    (events, sim)
}

#[test]
fn expert_completes_every_family_cleanly() {
    for (name, _) in FAMILIES {
        for seed in 0..3 {
            let (events, sim) = run_expert(name, seed);
            assert!(events.is_empty(), "{name} seed {seed}: {events:#?}");
            assert!(
                sim.progress_m() > 50.0 || *name == "stopped_vehicle",
                "{name} seed {seed}: only {:.1} m",
                sim.progress_m()
            );
        }
    }
}

#[test]
fn same_seed_same_run() {
    let (_, a) = run_expert("cut_in", 7);
    let (_, b) = run_expert("cut_in", 7);
    assert_eq!(a.ego(), b.ego());
    assert_eq!(a.actors(), b.actors());
    let (_, c) = run_expert("cut_in", 8);
    assert_ne!(a.ego(), c.ego());
}

/// All families at 50 seeds each; record the result in docs/SIMULATION.md.
/// `cargo test -p nines-sim --release --test expert -- --ignored`
#[test]
#[ignore = "slow: 450 closed-loop runs"]
fn expert_completes_fifty_seeds_per_family() {
    let mut failures = Vec::new();
    for (name, _) in FAMILIES {
        for seed in 0..50 {
            let (events, _) = run_expert(name, seed);
            if !events.is_empty() {
                failures.push(format!(
                    "{name} {seed}: {:?}",
                    events.iter().map(|e| e.category.as_str()).collect::<Vec<_>>()
                ));
            }
        }
    }
    assert!(failures.is_empty(), "{} failing runs:\n{}", failures.len(), failures.join("\n"));
}

fn run_with(
    name: &str,
    seed: u64,
    driver: impl Fn(&Sim) -> nines_datasets::msg::AckermannDrive,
) -> Vec<&'static str> {
    let mut sim = Sim::new(family(name).unwrap().draw(name, seed));
    let mut categories = Vec::new();
    while !sim.done() {
        let command = driver(&sim);
        categories.extend(sim.step(&command).events.iter().map(|e| e.category.as_str()));
    }
    categories
}

#[test]
fn the_monitor_catches_bad_driving() {
    use nines_datasets::msg::AckermannDrive;
    // Full throttle, eyes closed: runs into the braking lead vehicle.
    let blind = run_with("lead_brake", 0, |sim| AckermannDrive { acceleration: 2.0, ..sim.expert_command() });
    assert!(blind.contains(&"low_ttc") && blind.contains(&"collision_vehicle"), "{blind:?}");
    // Steering left off the expert's line: leaves the lane, then the road.
    let drifting =
        run_with("straight", 0, |sim| AckermannDrive { steering_angle: 0.05, ..sim.expert_command() });
    assert!(drifting.contains(&"lane_departure") && drifting.contains(&"off_road"), "{drifting:?}");
    // Panic braking from cruise.
    let panicking = run_with("straight", 1, |sim| AckermannDrive {
        acceleration: if sim.time_secs() > 5.0 { -8.0 } else { 0.0 },
        ..sim.expert_command()
    });
    assert_eq!(panicking, vec!["hard_braking"]);
    // Holding speed through the crossing.
    let careless = run_with("pedestrian_crossing", 0, |sim| AckermannDrive {
        acceleration: 0.0,
        ..sim.expert_command()
    });
    assert!(careless.contains(&"collision_pedestrian"), "{careless:?}");
}

#[test]
fn a_camera_driver_sees_frames_in_lockstep() {
    use nines_sim::record::{RecordOptions, record};
    use nines_sim::render::camera::CameraConfig;
    let dir = tempfile::tempdir().unwrap();
    let options = RecordOptions {
        camera: CameraConfig { width: 64, height: 32, ..CameraConfig::default() },
        duration_secs: Some(1.0),
        ..RecordOptions::default()
    };
    let mut seen = Vec::new();
    // A driver that only looks at the camera and its speed: holds speed, steers straight.
    let summary = record(
        family("straight").unwrap().draw("straight", 0),
        &dir.path().join("d.mcap"),
        &options,
        |obs| {
            seen.push(obs.camera.map(|(t, img)| (t, img.dimensions())));
            nines_datasets::msg::AckermannDrive { speed: obs.speed_mps as f32, ..Default::default() }
        },
    )
    .unwrap();
    assert_eq!(seen.len(), 20, "20 Hz for 1 s");
    assert_eq!(seen[0], None, "no frame before the first");
    // The frame taken at 0.05 s reaches the driver at 0.1 s.
    assert_eq!(seen[2], Some((0.05, (64, 32))));
    assert_eq!(summary.frames, 10);
}

#[test]
fn unrecorded_runs_see_the_frames_a_recording_does_and_end_after_a_failure() {
    use nines_sim::record::{RecordOptions, simulate};
    use nines_sim::render::camera::CameraConfig;
    let dir = tempfile::tempdir().unwrap();
    let options = RecordOptions {
        camera: CameraConfig { width: 64, height: 32, ..CameraConfig::default() },
        duration_secs: Some(12.0),
        end_after_failure_secs: Some(1.0),
        record_lidar: false,
        ..RecordOptions::default()
    };
    let run = |out: Option<&std::path::Path>| {
        let mut frames = Vec::new();
        // Steers off the road after 2 s, looking at every frame.
        let mut driver = |obs: &nines_sim::record::Observation<'_>| {
            if let Some((t, img)) = obs.camera {
                frames.push((t, img.as_raw().iter().map(|&b| u64::from(b)).sum::<u64>()));
            }
            let steer = if obs.time_secs > 2.0 { 0.4 } else { 0.0 };
            nines_datasets::msg::AckermannDrive { steering_angle: steer, speed: 10.0, ..Default::default() }
        };
        let summary =
            simulate(family("straight").unwrap().draw("straight", 3), &options, out, &mut driver).unwrap();
        (summary, frames)
    };
    let (unrecorded, seen) = run(None);
    let path = dir.path().join("kept.mcap");
    let (recorded, seen_recording) = run(Some(&path));
    assert_eq!(seen, seen_recording, "the same frames whether recorded or not");
    let first = unrecorded.events.first().expect("the driver leaves its lane").time_secs;
    assert!(
        (unrecorded.duration_secs - (first + 1.0)).abs() < 0.051,
        "{} vs {first}",
        unrecorded.duration_secs
    );
    assert_eq!(recorded.duration_secs, unrecorded.duration_secs);
    let reader = nines_datasets::drive::DriveReader::open(&path).unwrap();
    let topics: Vec<String> = reader.topics().into_iter().map(|t| t.topic).collect();
    assert!(
        topics.iter().any(|t| t.contains("camera")) && !topics.iter().any(|t| t.contains("lidar")),
        "{topics:?}"
    );
}

#[test]
fn recovery_starts_off_the_lane_centre_and_the_others_on_it() {
    let lateral: Vec<f64> = (0..16)
        .map(|seed| {
            let sim = Sim::new(family("recovery").unwrap().draw("recovery", seed));
            let (offset, heading) = sim.lane_error();
            assert!(
                [0.5, 1.0].iter().any(|m| (offset.abs() - m).abs() < 1e-6),
                "seed {seed}: {offset} m off the centre"
            );
            assert!(
                [5.0, 10.0].iter().any(|d| (heading.abs().to_degrees() - d).abs() < 1e-6),
                "seed {seed}: {} degrees off the lane",
                heading.to_degrees()
            );
            offset
        })
        .collect();
    assert!(lateral.iter().any(|d| *d > 0.0) && lateral.iter().any(|d| *d < 0.0), "both sides: {lateral:?}");
    for name in nines_sim::all_families() {
        let (offset, heading) = Sim::new(family(name).unwrap().draw(name, 0)).lane_error();
        assert!(offset.abs() < 1e-6 && heading.abs() < 1e-6, "{name} starts on its lane centre");
    }
    assert!(!nines_sim::all_families().contains(&"recovery"), "\"all\" keeps the nine traffic families");
}
