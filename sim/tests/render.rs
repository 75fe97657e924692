//! The camera's per-tile and the lidar's per-sector candidate lists are
//! optimisations: they must give exactly what casting every ray against the
//! whole scene gives.

#![allow(clippy::unwrap_used, reason = "a test fails loudly on any error")]
#![allow(clippy::float_cmp, reason = "the fast paths must be exact")]

use nalgebra::{Translation3, UnitQuaternion, Vector3};
use nines_datasets::geometry::Iso3;
use nines_sim::render::Scene;
use nines_sim::render::camera::{CameraConfig, render};
use nines_sim::render::lidar::{LidarConfig, sweep};
use nines_sim::{FAMILIES, Sim, family};

fn sim_at(name: &str, secs: f64) -> Sim {
    let mut sim = Sim::new(family(name).unwrap().draw(name, 3));
    while sim.time_secs() < secs {
        let c = sim.expert_command();
        sim.step(&c);
    }
    sim
}

fn pose(sim: &Sim) -> Iso3 {
    let e = sim.ego();
    Iso3::from_parts(Translation3::new(e.x, e.y, 0.0), UnitQuaternion::from_euler_angles(0.0, 0.0, e.yaw))
}

#[test]
fn tiled_camera_matches_full_ray_casting() {
    for (name, _) in FAMILIES {
        let sim = sim_at(name, 3.0);
        let scene = Scene::build(&sim.scenario, sim.actors());
        let config = CameraConfig { width: 128, height: 64, ..CameraConfig::default() };
        let map_from_base = pose(&sim);
        let frame = render(&scene, &sim.scenario.environment, &config, &map_from_base, 0);
        let map_from_camera = map_from_base * config.base_link_from_camera();
        let (f, cx, cy) = (config.focal_px(), 64.0, 32.0);
        for v in 0..config.height {
            for u in 0..config.width {
                let optical = Vector3::new((f64::from(u) + 0.5 - cx) / f, (f64::from(v) + 0.5 - cy) / f, 1.0);
                let dir = map_from_camera.rotation * optical.normalize();
                let full = scene
                    .cast(&map_from_camera.translation.vector, &dir, 500.0)
                    .map_or(0.0, |h| (h.t / optical.norm()) as f32);
                assert_eq!(frame.depth_m[(v * config.width + u) as usize], full, "{name} pixel ({u}, {v})");
            }
        }
    }
}

#[test]
fn lidar_sectors_match_full_ray_casting() {
    let config = LidarConfig { range_noise_m: 0.0, dropout: 0.0, ..LidarConfig::default() };
    for (name, _) in FAMILIES {
        let sim = sim_at(name, 3.0);
        let scene = Scene::build(&sim.scenario, sim.actors());
        let start = pose(&sim);
        // The sensor drives 1.5 m and turns 0.03 rad during the sweep.
        let at = |dt: f64| {
            start
                * Iso3::from_parts(
                    Translation3::new(15.0 * dt, 0.0, 0.0),
                    UnitQuaternion::from_euler_angles(0.0, 0.0, 0.3 * dt),
                )
        };
        let points = sweep(&scene, &config, at, 0);
        let mut expected = 0;
        for column in 0..config.columns {
            let fraction = f64::from(column) / f64::from(config.columns);
            let map_from_lidar = at(fraction * config.sweep_secs()) * config.base_link_from_lidar();
            let azimuth = std::f64::consts::PI - std::f64::consts::TAU * fraction;
            for ring in 0..config.beams {
                let elevation = (-25.0 + 40.0 * f64::from(ring) / 31.0f64).to_radians();
                let local = Vector3::new(
                    elevation.cos() * azimuth.cos(),
                    elevation.cos() * azimuth.sin(),
                    elevation.sin(),
                );
                if let Some(hit) = scene.cast(
                    &map_from_lidar.translation.vector,
                    &(map_from_lidar.rotation * local),
                    config.max_range_m,
                ) {
                    let p = points[expected];
                    let range = f64::from(p.x).hypot(f64::from(p.y)).hypot(f64::from(p.z));
                    assert_eq!(p.ring, ring, "{name} column {column}");
                    assert!(
                        (range - hit.t).abs() < 1e-4,
                        "{name} column {column} ring {ring}: {range} vs {}",
                        hit.t
                    );
                    expected += 1;
                }
            }
        }
        assert_eq!(points.len(), expected, "{name}");
    }
}
