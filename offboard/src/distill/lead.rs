//! Lead labels: ground removed, the sweep clustered on a grid, and the
//! nearest cluster inside the corridor of the ego's own future path.

use std::collections::HashMap;

use nalgebra::{Point2, Vector2};

/// Tunables of the lead label.
#[derive(Debug, Clone, Copy)]
pub struct LeadOptions {
    /// Half-width of the corridor around the driven path, m.
    pub corridor_half_width_m: f64,
    /// Farthest lead, m along the path.
    pub max_distance_m: f64,
    /// Nearest lead, m along the path (closer returns are the ego itself).
    pub min_distance_m: f64,
    /// Points this far above the local ground are obstacles, m.
    pub ground_clearance_m: f64,
    /// Points higher than this above the local ground are overhead, m.
    pub max_height_m: f64,
    /// Cluster grid cell, m.
    pub cell_m: f64,
    /// Clusters with fewer points are noise.
    pub min_points: usize,
}

impl Default for LeadOptions {
    fn default() -> Self {
        Self {
            corridor_half_width_m: 1.3,
            max_distance_m: 80.0,
            min_distance_m: 1.0,
            ground_clearance_m: 0.3,
            max_height_m: 3.0,
            cell_m: 0.5,
            min_points: 4,
        }
    }
}

/// A polyline in base_link (x forward, y left), with cumulative length.
#[derive(Debug, Clone)]
pub struct Path2 {
    points: Vec<Point2<f64>>,
    along_m: Vec<f64>,
}

impl Path2 {
    /// A path through `points` (starting at the ego), extended straight
    /// along its last direction to `length_m`; straight ahead if it has no length.
    #[must_use]
    pub fn extended(mut points: Vec<Point2<f64>>, length_m: f64) -> Self {
        points.dedup_by(|b, a| (*b - *a).norm() < 1e-3);
        if points.is_empty() {
            points.push(Point2::origin());
        }
        let direction = match points.len() {
            0 | 1 => Vector2::x(),
            n => (points[n - 1] - points[n - 2]).normalize(),
        };
        let mut along_m = vec![0.0];
        for pair in points.windows(2) {
            along_m.push(along_m[along_m.len() - 1] + (pair[1] - pair[0]).norm());
        }
        let total = along_m[along_m.len() - 1];
        if total < length_m {
            let last = points[points.len() - 1];
            points.push(last + direction * (length_m - total));
            along_m.push(length_m);
        }
        Self { points, along_m }
    }

    /// (distance along, signed lateral offset) of the closest point of the path.
    #[must_use]
    pub fn locate(&self, p: &Point2<f64>) -> (f64, f64) {
        let mut best = (f64::INFINITY, 0.0, 0.0);
        for (i, pair) in self.points.windows(2).enumerate() {
            let (a, b) = (pair[0], pair[1]);
            let ab = b - a;
            let len2 = ab.norm_squared().max(1e-12);
            let t = ((p - a).dot(&ab) / len2).clamp(0.0, 1.0);
            let foot = a + ab * t;
            let offset = p - foot;
            let d2 = offset.norm_squared();
            if d2 < best.0 {
                let side = ab.x * offset.y - ab.y * offset.x;
                best = (d2, self.along_m[i] + t * len2.sqrt(), d2.sqrt().copysign(side));
            }
        }
        (best.1, best.2)
    }
}

/// The lead of one sweep.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Lead {
    /// Distance along the path to its nearest in-corridor point, m.
    pub distance_m: f64,
    /// That point in base_link (x, y).
    pub nearest: Point2<f64>,
    /// Points in the cluster.
    pub points: usize,
}

/// Finds the lead among `points` (base_link, x y z) along `path`.
#[must_use]
pub fn find_lead(points: &[[f64; 3]], path: &Path2, options: &LeadOptions) -> Option<Lead> {
    let reach = options.max_distance_m + 10.0;
    let obstacles = above_ground(points, reach, options);
    // Occupancy grid of obstacle points, then 8-connected components.
    let cell = |x: f64| (x / options.cell_m).floor() as i64;
    let mut grid: HashMap<(i64, i64), Vec<usize>> = HashMap::new();
    for (i, p) in obstacles.iter().enumerate() {
        grid.entry((cell(p.x), cell(p.y))).or_default().push(i);
    }
    let mut label: HashMap<(i64, i64), usize> = HashMap::new();
    let mut best: Option<Lead> = None;
    let mut cells: Vec<_> = grid.keys().copied().collect();
    cells.sort_unstable();
    for start in cells {
        if label.contains_key(&start) {
            continue;
        }
        let id = label.len();
        let mut stack = vec![start];
        label.insert(start, id);
        let mut members = Vec::new();
        while let Some(c) = stack.pop() {
            members.extend_from_slice(&grid[&c]);
            for dx in -1..=1 {
                for dy in -1..=1 {
                    let n = (c.0 + dx, c.1 + dy);
                    if grid.contains_key(&n) && !label.contains_key(&n) {
                        label.insert(n, id);
                        stack.push(n);
                    }
                }
            }
        }
        if members.len() < options.min_points {
            continue;
        }
        let nearest_in_corridor = members
            .iter()
            .map(|&i| (path.locate(&obstacles[i]), obstacles[i]))
            .filter(|((s, d), _)| {
                d.abs() <= options.corridor_half_width_m
                    && *s >= options.min_distance_m
                    && *s <= options.max_distance_m
            })
            .min_by(|a, b| a.0.0.total_cmp(&b.0.0));
        if let Some(((s, _), p)) = nearest_in_corridor
            && best.is_none_or(|b| s < b.distance_m)
        {
            best = Some(Lead { distance_m: s, nearest: p, points: members.len() });
        }
    }
    best
}

/// Points above the ground and below overhead height, as (x, y). The ground
/// is the lowest return of a 2 m cell and its neighbours, where that lies
/// near the typical ground height; far away, where rings of ground returns
/// are metres apart, a cell may hold only an obstacle's lowest points, and
/// the typical height (the median of cell minima) stands in.
fn above_ground(points: &[[f64; 3]], reach_m: f64, options: &LeadOptions) -> Vec<Point2<f64>> {
    const GROUND_CELL_M: f64 = 2.0;
    const NEAR_TYPICAL_M: f64 = 0.25;
    let cell = |x: f64| (x / GROUND_CELL_M).floor() as i64;
    let mut lowest: HashMap<(i64, i64), f64> = HashMap::new();
    let near =
        |p: &[f64; 3]| p[0].abs() <= reach_m && p[1].abs() <= reach_m && p.iter().all(|v| v.is_finite());
    for p in points.iter().filter(|p| near(p)) {
        let slot = lowest.entry((cell(p[0]), cell(p[1]))).or_insert(f64::INFINITY);
        *slot = slot.min(p[2]);
    }
    let mut minima: Vec<f64> = lowest.values().copied().collect();
    minima.sort_by(f64::total_cmp);
    let typical = minima.get(minima.len() / 2).copied().unwrap_or(0.0);
    let ground = |x: f64, y: f64| {
        let (cx, cy) = (cell(x), cell(y));
        let mut g = f64::INFINITY;
        for dx in -1..=1 {
            for dy in -1..=1 {
                if let Some(z) = lowest.get(&(cx + dx, cy + dy)) {
                    g = g.min(*z);
                }
            }
        }
        if g < typical + NEAR_TYPICAL_M { g } else { typical }
    };
    points
        .iter()
        .filter(|p| near(p))
        .filter(|p| {
            let height = p[2] - ground(p[0], p[1]);
            height > options.ground_clearance_m && height < options.max_height_m
        })
        .map(|p| Point2::new(p[0], p[1]))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn car_at(x: f64, y: f64) -> Vec<[f64; 3]> {
        let mut pts = Vec::new();
        for i in 0..10 {
            for k in 0..5 {
                pts.push([x, y - 0.9 + 0.2 * f64::from(i), 0.4 + 0.2 * f64::from(k)]);
            }
        }
        pts
    }

    fn ground() -> Vec<[f64; 3]> {
        (0..60).flat_map(|i| (-10..=10).map(move |j| [f64::from(i), f64::from(j) * 0.5, 0.0])).collect()
    }

    #[test]
    fn nearest_in_corridor_cluster_is_the_lead() {
        let mut points = ground();
        points.extend(car_at(30.0, 0.0));
        points.extend(car_at(20.0, 4.0)); // beside the path: not a lead
        points.extend(car_at(45.0, 0.5));
        let path = Path2::extended(vec![Point2::origin()], 80.0);
        let lead = find_lead(&points, &path, &LeadOptions::default()).unwrap();
        assert!((lead.distance_m - 30.0).abs() < 1e-9, "{lead:?}");
        // On a path that turns left the car at (20, 4) is ahead instead.
        let turning: Vec<_> = (0..=20).map(|i| Point2::new(f64::from(i), 0.01 * f64::from(i * i))).collect();
        let lead = find_lead(&points, &Path2::extended(turning, 80.0), &LeadOptions::default()).unwrap();
        assert!((lead.nearest.x - 20.0).abs() < 1e-9, "{lead:?}");
        assert!(find_lead(&ground(), &path, &LeadOptions::default()).is_none());
    }

    #[test]
    fn locate_measures_along_and_across() {
        let path =
            Path2::extended(vec![Point2::origin(), Point2::new(10.0, 0.0), Point2::new(10.0, 10.0)], 40.0);
        let (s, d) = path.locate(&Point2::new(9.0, 5.0));
        assert!((s - 15.0).abs() < 1e-9 && (d - 1.0).abs() < 1e-9, "{s} {d}");
        let (s, _) = path.locate(&Point2::new(10.0, 25.0));
        assert!((s - 35.0).abs() < 1e-9, "extended straight up: {s}");
    }
}
