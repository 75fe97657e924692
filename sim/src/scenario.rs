//! Scenario families as data: a TOML file (sim/scenarios/<family>.toml)
//! gives parameter ranges; a seed draws one concrete [`Scenario`]. The same
//! family and seed always give the same scenario (ChaCha8, a portable RNG).

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Deserialize;

use crate::actors::{Actor, ActorKind, BrakeCue, CrossingCue, LaneChangeCue};
use crate::error::{Result, SimError};
use crate::road::{LANE_WIDTH_M, Road, Segment};

/// A number, or a `[min, max]` range drawn uniformly.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(untagged)]
pub enum Param {
    /// Fixed.
    Fixed(f64),
    /// Uniform in `[min, max]`.
    Range([f64; 2]),
}

impl Param {
    fn draw(self, rng: &mut ChaCha8Rng) -> f64 {
        match self {
            Self::Fixed(v) => v,
            Self::Range([a, b]) if b > a => rng.random_range(a..=b),
            Self::Range([a, _]) => a,
        }
    }

    fn draw_count(self, rng: &mut ChaCha8Rng) -> u32 {
        self.draw(rng).round().max(0.0) as u32
    }
}

/// A road piece of a family.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum SegmentSpec {
    /// Straight of `length` m.
    Straight {
        /// Length, m.
        length: Param,
    },
    /// Arc of `radius` m turning `angle_deg` (positive left; the sign may be
    /// drawn too, with `either_way`).
    Arc {
        /// Radius, m.
        radius: Param,
        /// Turn, degrees.
        angle_deg: Param,
        /// Turn left or right at random.
        #[serde(default)]
        either_way: bool,
    },
}

/// Which lane an actor starts in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LaneRef {
    /// The ego's lane.
    Ego,
    /// The same-direction lane left of the ego's.
    Left,
    /// The first oncoming lane.
    Oncoming,
    /// The kerb side of the ego's road edge (parking).
    Kerb,
}

/// An actor (or a row of them) of a family.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ActorSpec {
    /// `vehicle`, `parked`, `pedestrian` or `cone`.
    pub kind: String,
    /// Lane of vehicles and parked cars.
    #[serde(default = "default_lane")]
    pub lane: LaneRef,
    /// Distance ahead of the ego's start, m.
    pub ahead_m: Param,
    /// How many in a row.
    #[serde(default = "one")]
    pub count: Param,
    /// Spacing of a row, m.
    #[serde(default = "default_spacing")]
    pub spacing_m: Param,
    /// Speed, m/s.
    #[serde(default = "zero")]
    pub speed_mps: Param,
    /// Vehicles: brake at this time, s.
    pub brake_at_secs: Option<Param>,
    /// Vehicles: braking, m/s^2.
    pub brake_mps2: Option<Param>,
    /// Vehicles: braking duration, s.
    pub brake_for_secs: Option<Param>,
    /// Vehicles: cut into the ego's lane at this time, s.
    pub cut_in_at_secs: Option<Param>,
    /// Vehicles: lane change duration, s.
    pub cut_in_secs: Option<Param>,
    /// Pedestrians: 0 times the crossing to meet a constant-speed ego in its
    /// lane; positive starts that many seconds earlier.
    pub meet_offset_secs: Option<Param>,
}

fn default_lane() -> LaneRef {
    LaneRef::Ego
}
fn one() -> Param {
    Param::Fixed(1.0)
}
fn zero() -> Param {
    Param::Fixed(0.0)
}
fn default_spacing() -> Param {
    Param::Fixed(10.0)
}
fn default_visibility() -> Param {
    Param::Fixed(5000.0)
}
fn default_time_of_day() -> Vec<TimeOfDay> {
    vec![TimeOfDay::Day]
}

/// Lighting.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TimeOfDay {
    /// Sun high.
    Day,
    /// Sun low, long shadows.
    Dusk,
    /// No sun; headlights.
    Night,
}

/// A scenario family, as written in TOML.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FamilySpec {
    /// What the family tests.
    pub description: String,
    /// Default run length, s.
    pub duration_secs: f64,
    /// Lanes each way.
    pub lanes_each_way: Param,
    /// Ego lane index (0 = next to the centre line; clamped to the road).
    #[serde(default = "zero")]
    pub ego_lane: Param,
    /// Speed limit, m/s.
    pub speed_limit_mps: Param,
    /// Lighting, drawn from the list.
    #[serde(default = "default_time_of_day")]
    pub time_of_day: Vec<TimeOfDay>,
    /// Fog visibility, m.
    #[serde(default = "default_visibility")]
    pub fog_visibility_m: Param,
    /// Centre line.
    pub road: Vec<SegmentSpec>,
    /// Actors.
    #[serde(default)]
    pub actors: Vec<ActorSpec>,
    /// Buildings, trees and poles per 100 m of road side.
    #[serde(default = "default_density")]
    pub scenery_per_100m: Param,
    /// The ego starts this far left of its lane centre, m, one drawn from
    /// the list (none: on the centre).
    #[serde(default)]
    pub start_lateral_m: Vec<f64>,
    /// The ego starts turned this far left of the lane's heading, degrees,
    /// one drawn from the list (none: along the lane).
    #[serde(default)]
    pub start_heading_deg: Vec<f64>,
    /// Whether a suite's `families = "all"` includes it (a family that
    /// measures one skill, like recovering from an offset start, is its own
    /// suite entry).
    #[serde(default = "yes")]
    pub in_all: bool,
}

fn yes() -> bool {
    true
}

fn default_density() -> Param {
    Param::Fixed(4.0)
}

/// Environment of a drawn scenario.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Environment {
    /// Lighting.
    pub time_of_day: TimeOfDay,
    /// Fog visibility, m.
    pub fog_visibility_m: f64,
    /// Sun azimuth, rad (map frame).
    pub sun_azimuth_rad: f64,
    /// Sun elevation, rad.
    pub sun_elevation_rad: f64,
}

/// Static scenery beside the road.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Scenery {
    /// Building, tree or pole.
    pub kind: SceneryKind,
    /// Along the road, m.
    pub s: f64,
    /// Across the road (centre), m.
    pub d: f64,
    /// Footprint length along the road, m.
    pub length_m: f64,
    /// Footprint depth, m.
    pub depth_m: f64,
    /// Height, m.
    pub height_m: f64,
}

/// Kinds of scenery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SceneryKind {
    /// A house or block.
    Building,
    /// A tree (trunk and crown).
    Tree,
    /// A street-light pole.
    Pole,
}

/// One concrete scenario.
#[derive(Debug, Clone)]
pub struct Scenario {
    /// Family name.
    pub family: String,
    /// Seed it was drawn with.
    pub seed: u64,
    /// Run length, s.
    pub duration_secs: f64,
    /// The road.
    pub road: Road,
    /// Ego lane centre offset, m.
    pub ego_lane_d: f64,
    /// Ego start along the road, m.
    pub ego_start_s: f64,
    /// Ego start speed, m/s.
    pub ego_start_mps: f64,
    /// Speed limit, m/s.
    pub speed_limit_mps: f64,
    /// Actors at the start.
    pub actors: Vec<Actor>,
    /// Scenery.
    pub scenery: Vec<Scenery>,
    /// Lighting and weather.
    pub environment: Environment,
    /// Ego start left of its lane centre, m.
    pub ego_start_lateral_m: f64,
    /// Ego start heading left of the lane's, rad.
    pub ego_start_heading_rad: f64,
}

impl FamilySpec {
    /// Parses a family from TOML text; `source` names the file for errors.
    pub fn from_toml(source: &str, text: &str) -> Result<Self> {
        toml::from_str(text)
            .map_err(|e| SimError::Scenario { file: source.to_owned(), detail: e.to_string() })
    }

    /// Draws the scenario of `seed`.
    #[must_use]
    pub fn draw(&self, family: &str, seed: u64) -> Scenario {
        // Family name mixed into the seed so families with one seed differ.
        let mixed = family.bytes().fold(seed, |h, b| h.rotate_left(7) ^ u64::from(b));
        let mut rng = ChaCha8Rng::seed_from_u64(mixed);
        let lanes = self.lanes_each_way.draw_count(&mut rng).clamp(1, 3) as u8;
        let segments: Vec<Segment> = self
            .road
            .iter()
            .map(|spec| match spec {
                SegmentSpec::Straight { length } => Segment::Straight { length: length.draw(&mut rng) },
                SegmentSpec::Arc { radius, angle_deg, either_way } => {
                    let mut angle = angle_deg.draw(&mut rng).to_radians();
                    if *either_way && rng.random_bool(0.5) {
                        angle = -angle;
                    }
                    Segment::Arc { radius: radius.draw(&mut rng), angle }
                }
            })
            .collect();
        let road = Road::new(&segments, lanes);
        let ego_lane = self.ego_lane.draw_count(&mut rng).min(u32::from(lanes) - 1) as u8;
        let ego_lane_d = road.lane_centre(ego_lane);
        let speed_limit_mps = self.speed_limit_mps.draw(&mut rng);
        let ego_start_s = 20.0;
        let mut actors = Vec::new();
        for spec in &self.actors {
            draw_actors(spec, &road, ego_lane_d, ego_start_s, &mut rng, &mut actors);
        }
        let time_of_day = self
            .time_of_day
            .get(rng.random_range(0..self.time_of_day.len().max(1)))
            .copied()
            .unwrap_or(TimeOfDay::Day);
        let sun_elevation_deg: f64 = match time_of_day {
            TimeOfDay::Day => rng.random_range(35.0..65.0),
            TimeOfDay::Dusk => rng.random_range(6.0..15.0),
            TimeOfDay::Night => -20.0,
        };
        let environment = Environment {
            time_of_day,
            fog_visibility_m: self.fog_visibility_m.draw(&mut rng),
            sun_azimuth_rad: rng.random_range(0.0..std::f64::consts::TAU),
            sun_elevation_rad: sun_elevation_deg.to_radians(),
        };
        let scenery = draw_scenery(&road, self.scenery_per_100m.draw(&mut rng), &actors, &mut rng);
        // Drawn last and only when listed, so the other families' draws stay as they were.
        let mut pick = |choices: &[f64]| match choices.len() {
            0 => 0.0,
            n => choices[rng.random_range(0..n)],
        };
        let ego_start_lateral_m = pick(&self.start_lateral_m);
        let ego_start_heading_rad = pick(&self.start_heading_deg).to_radians();
        Scenario {
            family: family.to_owned(),
            seed,
            duration_secs: self.duration_secs,
            road,
            ego_lane_d,
            ego_start_s,
            ego_start_mps: speed_limit_mps * 0.8,
            speed_limit_mps,
            actors,
            scenery,
            environment,
            ego_start_lateral_m,
            ego_start_heading_rad,
        }
    }
}

fn draw_actors(
    spec: &ActorSpec,
    road: &Road,
    ego_lane_d: f64,
    ego_start_s: f64,
    rng: &mut ChaCha8Rng,
    out: &mut Vec<Actor>,
) {
    let kind = match spec.kind.as_str() {
        "vehicle" => ActorKind::Vehicle,
        "parked" => ActorKind::Parked,
        "pedestrian" => ActorKind::Pedestrian,
        _ => ActorKind::Cone,
    };
    let d = match spec.lane {
        LaneRef::Ego => ego_lane_d,
        LaneRef::Left => ego_lane_d + LANE_WIDTH_M,
        LaneRef::Oncoming => LANE_WIDTH_M / 2.0,
        LaneRef::Kerb => -road.half_width() - 1.2,
    };
    let count = spec.count.draw_count(rng);
    let mut s = ego_start_s + spec.ahead_m.draw(rng);
    for _ in 0..count {
        let speed = spec.speed_mps.draw(rng);
        let signed = if spec.lane == LaneRef::Oncoming { -speed } else { speed };
        let id = out.len() as u32 + 1;
        let mut actor = match kind {
            ActorKind::Pedestrian => {
                // Waits on the sidewalk and crosses the whole road.
                let start = -road.half_width() - 2.0;
                let mut p = Actor::new(id, kind, s, start, 0.0);
                p.crossing = Some(CrossingCue {
                    meet_offset_secs: spec.meet_offset_secs.map_or(0.0, |t| t.draw(rng)),
                    speed_mps: speed.max(0.5),
                    to_d: road.half_width() + 2.0,
                });
                p
            }
            ActorKind::Cone => Actor::new(id, kind, s, d, 0.0),
            _ => Actor::new(id, kind, s, d, signed),
        };
        if let (Some(at), Some(decel), Some(duration)) =
            (spec.brake_at_secs, spec.brake_mps2, spec.brake_for_secs)
        {
            actor.brake = Some(BrakeCue {
                at_secs: at.draw(rng),
                decel_mps2: decel.draw(rng),
                for_secs: duration.draw(rng),
            });
        }
        if let Some(at) = spec.cut_in_at_secs {
            actor.lane_change = Some(LaneChangeCue {
                at_secs: at.draw(rng),
                to_d: ego_lane_d,
                duration_secs: spec.cut_in_secs.map_or(3.0, |p| p.draw(rng)),
            });
        }
        out.push(actor);
        s += spec.spacing_m.draw(rng);
    }
}

fn draw_scenery(road: &Road, per_100m: f64, actors: &[Actor], rng: &mut ChaCha8Rng) -> Vec<Scenery> {
    let mut scenery = Vec::new();
    let count = (road.length() / 100.0 * per_100m).round() as usize;
    // Crossing pedestrians need a clear sidewalk at their crossing.
    let crossings: Vec<f64> = actors.iter().filter(|a| a.crossing.is_some()).map(|a| a.s).collect();
    for i in 0..count * 2 {
        let side = if i % 2 == 0 { -1.0 } else { 1.0 };
        let s = rng.random_range(0.0..road.length());
        if crossings.iter().any(|c| (c - s).abs() < 15.0) {
            continue;
        }
        let kind = match rng.random_range(0..10) {
            0..=3 => SceneryKind::Building,
            4..=7 => SceneryKind::Tree,
            _ => SceneryKind::Pole,
        };
        let edge = road.half_width() + 3.5;
        let (length_m, depth_m, height_m, offset) = match kind {
            SceneryKind::Building => {
                let depth = rng.random_range(8.0..15.0);
                (rng.random_range(8.0..20.0), depth, rng.random_range(5.0..15.0), edge + 3.0 + depth / 2.0)
            }
            SceneryKind::Tree => (1.2, 1.2, rng.random_range(4.0..8.0), edge + rng.random_range(0.5..2.0)),
            SceneryKind::Pole => (0.25, 0.25, 7.0, edge - 0.5),
        };
        scenery.push(Scenery { kind, s, d: side * offset, length_m, depth_m, height_m });
    }
    scenery
}

/// Scenario families shipped with nines (sim/scenarios/*.toml).
pub const FAMILIES: &[(&str, &str)] = &[
    ("straight", include_str!("../scenarios/straight.toml")),
    ("curves", include_str!("../scenarios/curves.toml")),
    ("lead_brake", include_str!("../scenarios/lead_brake.toml")),
    ("cut_in", include_str!("../scenarios/cut_in.toml")),
    ("stopped_vehicle", include_str!("../scenarios/stopped_vehicle.toml")),
    ("pedestrian_crossing", include_str!("../scenarios/pedestrian_crossing.toml")),
    ("parked_street", include_str!("../scenarios/parked_street.toml")),
    ("night", include_str!("../scenarios/night.toml")),
    ("fog", include_str!("../scenarios/fog.toml")),
    ("recovery", include_str!("../scenarios/recovery.toml")),
];

/// The families a suite's `families = "all"` means: every shipped family
/// whose spec says `in_all` (all but `recovery`).
#[must_use]
pub fn all_families() -> Vec<&'static str> {
    FAMILIES.iter().filter(|(name, _)| family(name).is_ok_and(|f| f.in_all)).map(|(name, _)| *name).collect()
}

/// The shipped family called `name`.
pub fn family(name: &str) -> Result<FamilySpec> {
    let (_, text) = FAMILIES.iter().find(|(n, _)| *n == name).ok_or_else(|| SimError::UnknownFamily {
        name: name.to_owned(),
        known: FAMILIES.iter().map(|(n, _)| *n).collect::<Vec<_>>().join(", "),
    })?;
    FamilySpec::from_toml(&format!("sim/scenarios/{name}.toml"), text)
}
