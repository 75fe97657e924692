//! The world as geometry: an analytic ground plane whose material comes
//! from road coordinates (asphalt, paint, kerb, sidewalk, grass), and
//! oriented boxes for buildings, trees, poles, vehicles, pedestrians and
//! cones, in a ground grid.

use nalgebra::Vector3;

use super::grid::{Grid, OrientedBox};
use crate::actors::{Actor, ActorKind};
use crate::road::{LANE_WIDTH_M, Road};
use crate::scenario::{Scenario, SceneryKind};

/// What a ray hit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Material {
    /// Road surface.
    Asphalt,
    /// Lane paint.
    Paint,
    /// Kerb stone.
    Kerb,
    /// Pavement.
    Sidewalk,
    /// Verge.
    Grass,
    /// Walls.
    Building,
    /// Tree trunk.
    Trunk,
    /// Tree crown.
    Foliage,
    /// Street pole.
    Pole,
    /// Vehicle body; the index picks its paint.
    Car(u8),
    /// Car windows.
    Glass,
    /// A person.
    Pedestrian,
    /// Traffic cone.
    Cone,
}

impl Material {
    /// Lidar reflectivity, 0..1.
    #[must_use]
    pub fn reflectivity(self) -> f64 {
        match self {
            Self::Asphalt => 0.08,
            Self::Paint => 0.6,
            Self::Kerb | Self::Sidewalk => 0.25,
            Self::Grass | Self::Foliage => 0.35,
            Self::Trunk | Self::Pole => 0.2,
            Self::Car(_) => 0.5,
            Self::Glass => 0.05,
            Self::Building | Self::Pedestrian => 0.3,
            Self::Cone => 0.9,
        }
    }
}

/// A ray hit.
#[derive(Debug, Clone, Copy)]
pub struct Hit {
    /// Distance along the (unit) ray, m.
    pub t: f64,
    /// Hit point in the map, m.
    pub point: Vector3<f64>,
    /// Surface normal.
    pub normal: Vector3<f64>,
    /// Material.
    pub material: Material,
    /// Actor id, if an actor was hit.
    pub actor: Option<u32>,
}

/// Distance along a unit ray to the ground plane (infinite if it never gets there).
fn ground_distance(origin: &Vector3<f64>, dir: &Vector3<f64>) -> f64 {
    if dir.z < -1e-9 { -origin.z / dir.z } else { f64::INFINITY }
}

/// One frozen instant of the world.
pub struct Scene<'a> {
    road: &'a Road,
    grid: Grid,
    objects: Vec<(Material, Option<u32>)>,
}

fn push(
    boxes: &mut Vec<OrientedBox>,
    objects: &mut Vec<(Material, Option<u32>)>,
    centre: Vector3<f64>,
    yaw: f64,
    half: Vector3<f64>,
    material: Material,
    actor: Option<u32>,
) {
    boxes.push(OrientedBox::new(centre, yaw, half, objects.len() as u32));
    objects.push((material, actor));
}

impl<'a> Scene<'a> {
    /// The scene of `scenario` with its actors where they are now.
    #[must_use]
    pub fn build(scenario: &'a Scenario, actors: &[Actor]) -> Self {
        let road = &scenario.road;
        let (mut boxes, mut objects) = (Vec::new(), Vec::new());
        for item in &scenario.scenery {
            let (x, y) = road.point(item.s, item.d);
            let yaw = road.centre(item.s).heading;
            match item.kind {
                SceneryKind::Building => push(
                    &mut boxes,
                    &mut objects,
                    Vector3::new(x, y, item.height_m / 2.0),
                    yaw,
                    Vector3::new(item.length_m / 2.0, item.depth_m / 2.0, item.height_m / 2.0),
                    Material::Building,
                    None,
                ),
                SceneryKind::Tree => {
                    let trunk = item.height_m * 0.4;
                    push(
                        &mut boxes,
                        &mut objects,
                        Vector3::new(x, y, trunk / 2.0),
                        yaw,
                        Vector3::new(0.15, 0.15, trunk / 2.0),
                        Material::Trunk,
                        None,
                    );
                    let crown = item.height_m - trunk;
                    push(
                        &mut boxes,
                        &mut objects,
                        Vector3::new(x, y, trunk + crown / 2.0),
                        yaw + 0.5,
                        Vector3::new(1.4, 1.4, crown / 2.0),
                        Material::Foliage,
                        None,
                    );
                }
                SceneryKind::Pole => push(
                    &mut boxes,
                    &mut objects,
                    Vector3::new(x, y, item.height_m / 2.0),
                    yaw,
                    Vector3::new(0.12, 0.12, item.height_m / 2.0),
                    Material::Pole,
                    None,
                ),
            }
        }
        for actor in actors {
            let (x, y, yaw) = actor.pose(road);
            let (l, w, h) = actor.kind.size();
            let id = Some(actor.id);
            match actor.kind {
                ActorKind::Vehicle | ActorKind::Parked => {
                    let paint = Material::Car((actor.id % 6) as u8);
                    push(
                        &mut boxes,
                        &mut objects,
                        Vector3::new(x, y, 0.62),
                        yaw,
                        Vector3::new(l / 2.0, w / 2.0, 0.42),
                        paint,
                        id,
                    );
                    let (s, c) = yaw.sin_cos();
                    let back = -0.35;
                    push(
                        &mut boxes,
                        &mut objects,
                        Vector3::new(x + back * c, y + back * s, 1.27),
                        yaw,
                        Vector3::new(l * 0.27, w / 2.0 - 0.08, h - 1.27),
                        Material::Glass,
                        id,
                    );
                }
                ActorKind::Pedestrian | ActorKind::Cone => push(
                    &mut boxes,
                    &mut objects,
                    Vector3::new(x, y, h / 2.0),
                    yaw,
                    Vector3::new(l / 2.0, w / 2.0, h / 2.0),
                    if actor.kind == ActorKind::Pedestrian { Material::Pedestrian } else { Material::Cone },
                    id,
                ),
            }
        }
        Self { road, grid: Grid::new(boxes), objects }
    }

    /// Ground material at a map point.
    #[must_use]
    pub fn ground_material(&self, x: f64, y: f64) -> Material {
        let Some((s, d)) = self.road.project_near(x, y) else { return Material::Grass };
        let half = self.road.half_width();
        let a = d.abs();
        if a > half + 3.5 {
            return Material::Grass;
        }
        if a > half + 0.3 {
            return Material::Sidewalk;
        }
        if a > half {
            return Material::Kerb;
        }
        let edge_line = a > half - 0.35 && a < half - 0.2;
        let centre_line = a < 0.08;
        let divider = (1..self.road.lanes_each_way).any(|k| (a - f64::from(k) * LANE_WIDTH_M).abs() < 0.075)
            && s.rem_euclid(9.0) < 3.0;
        if edge_line || centre_line || divider { Material::Paint } else { Material::Asphalt }
    }

    /// First hit of the ray from `origin` along unit `dir` within `max_t`.
    #[must_use]
    pub fn cast(&self, origin: &Vector3<f64>, dir: &Vector3<f64>, max_t: f64) -> Option<Hit> {
        let ground_t = ground_distance(origin, dir);
        let limit = ground_t.min(max_t).min(self.above_everything(origin, dir));
        let best = self.grid.cast(origin, dir, limit, false);
        self.hit(origin, dir, best, ground_t, max_t)
    }

    /// The hit of a box (t, normal, box index) if any, else of the ground
    /// at `ground_t` if within `max_t`.
    fn hit(
        &self,
        origin: &Vector3<f64>,
        dir: &Vector3<f64>,
        best: Option<(f64, Vector3<f64>, usize)>,
        ground_t: f64,
        max_t: f64,
    ) -> Option<Hit> {
        if let Some((t, normal, index)) = best {
            let (material, actor) = self.objects[self.grid.boxes[index].object as usize];
            return Some(Hit { t, point: origin + dir * t, normal, material, actor });
        }
        (ground_t <= max_t).then(|| {
            let point = origin + dir * ground_t;
            let material = self.ground_material(point.x, point.y);
            Hit { t: ground_t, point, normal: Vector3::z(), material, actor: None }
        })
    }

    /// First hit among the given boxes (indices from [`Scene::screen_tiles`])
    /// or the ground: the camera's fast path.
    #[must_use]
    pub fn cast_among(
        &self,
        origin: &Vector3<f64>,
        dir: &Vector3<f64>,
        max_t: f64,
        boxes: &[u32],
    ) -> Option<Hit> {
        let ground_t = ground_distance(origin, dir);
        let mut limit = ground_t.min(max_t);
        let mut best = None;
        for &i in boxes {
            if let Some((t, normal)) = self.grid.boxes[i as usize].intersect(origin, dir, limit) {
                limit = t;
                best = Some((t, normal, i as usize));
            }
        }
        self.hit(origin, dir, best, ground_t, max_t)
    }

    /// For a pinhole camera at `camera_from_map` (optical axes, intrinsics
    /// `(f, cx, cy)`, image `(width, height)`), the boxes that may appear in each
    /// `tile x tile` block of pixels, row-major by tile. A box partly behind
    /// the camera counts for every tile.
    #[must_use]
    pub fn screen_tiles(
        &self,
        camera_from_map: &nines_datasets::geometry::Iso3,
        (f, cx, cy): (f64, f64, f64),
        (width, height): (u32, u32),
        tile: u32,
    ) -> Vec<Vec<u32>> {
        let (tiles_x, tiles_y) = (width.div_ceil(tile) as usize, height.div_ceil(tile) as usize);
        let mut lists = vec![Vec::new(); tiles_x * tiles_y];
        for (i, b) in self.grid.boxes.iter().enumerate() {
            let corners = b.corners().map(|c| camera_from_map * nalgebra::Point3::from(c));
            if corners.iter().all(|c| c.z <= 0.05) {
                continue;
            }
            let (mut u0, mut u1, mut v0, mut v1) = (0.0, f64::from(width), 0.0, f64::from(height));
            if corners.iter().all(|c| c.z > 0.05) {
                let us = corners.iter().map(|c| f * c.x / c.z + cx);
                let vs = corners.iter().map(|c| f * c.y / c.z + cy);
                (u0, u1) = us.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), u| (lo.min(u), hi.max(u)));
                (v0, v1) = vs.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| (lo.min(v), hi.max(v)));
            }
            let to_tile = |p: f64, n: usize| ((p / f64::from(tile)).floor().max(0.0) as usize).min(n);
            let (tx0, tx1) = (to_tile(u0 - 1.0, tiles_x), to_tile(u1 + 1.0, tiles_x - 1));
            let (ty0, ty1) = (to_tile(v0 - 1.0, tiles_y), to_tile(v1 + 1.0, tiles_y - 1));
            if u1 < 0.0 || v1 < 0.0 || tx0 >= tiles_x || ty0 >= tiles_y {
                continue;
            }
            for ty in ty0..=ty1 {
                for tx in tx0..=tx1 {
                    lists[ty * tiles_x + tx].push(i as u32);
                }
            }
        }
        lists
    }

    /// For a spinning sensor at `sensor_from_map` (z up), the boxes that may
    /// be hit in each of `bins` azimuth sectors (bin 0 starts at -pi), widened
    /// by `margin_m` of sensor travel and `margin_rad` of rotation. A box
    /// within reach of the sensor counts for every sector.
    #[must_use]
    pub fn azimuth_bins(
        &self,
        sensor_from_map: &nines_datasets::geometry::Iso3,
        bins: usize,
        margin_m: f64,
        margin_rad: f64,
    ) -> Vec<Vec<u32>> {
        use std::f64::consts::{PI, TAU};
        let mut lists = vec![Vec::new(); bins];
        let bin_of =
            |a: f64| (((a + PI) / TAU * bins as f64).floor() as i64).rem_euclid(bins as i64) as usize;
        for (i, b) in self.grid.boxes.iter().enumerate() {
            let corners = b.corners().map(|c| sensor_from_map * nalgebra::Point3::from(c));
            let centre = sensor_from_map * nalgebra::Point3::from(b.centre);
            let near = corners.iter().map(|c| c.x.hypot(c.y)).fold(f64::INFINITY, f64::min);
            if near <= margin_m + b.half.x.hypot(b.half.y) + 0.5 {
                for list in &mut lists {
                    list.push(i as u32);
                }
                continue;
            }
            let mid = centre.y.atan2(centre.x);
            let wrap = |a: f64| (a - mid + PI).rem_euclid(TAU) - PI;
            let (lo, hi) = corners
                .iter()
                .map(|c| wrap(c.y.atan2(c.x)))
                .fold((f64::INFINITY, f64::NEG_INFINITY), |(l, h), a| (l.min(a), h.max(a)));
            let widen = margin_rad + (margin_m / near).min(1.0).asin();
            let (from, to) = (mid + lo - widen, mid + hi + widen);
            let steps = (((to - from) / TAU * bins as f64).ceil() as usize + 1).min(bins);
            let first = bin_of(from);
            for k in 0..steps {
                lists[(first + k) % bins].push(i as u32);
            }
        }
        lists
    }

    /// True if anything blocks the ray within `max_t` (shadows).
    #[must_use]
    pub fn occluded(&self, origin: &Vector3<f64>, dir: &Vector3<f64>, max_t: f64) -> bool {
        self.grid.cast(origin, dir, max_t.min(self.above_everything(origin, dir)), true).is_some()
    }

    /// Ray parameter where a rising ray passes the tallest object.
    fn above_everything(&self, origin: &Vector3<f64>, dir: &Vector3<f64>) -> f64 {
        if dir.z > 1e-9 { ((self.grid.top_z() - origin.z) / dir.z).max(0.0) } else { f64::INFINITY }
    }
}
