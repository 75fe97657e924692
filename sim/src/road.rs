//! Roads: a centre line made of straights and arcs, with 1-3 lanes of 3.5 m
//! each way (right-hand traffic: the ego's direction uses d < 0).
//!
//! Road coordinates: `s` is the distance along the centre line, `d` the
//! signed lateral offset (left positive). Projection is analytic per segment,
//! so it is cheap enough to call for every rendered ground pixel.

use serde::Deserialize;

/// Lane width, m.
pub const LANE_WIDTH_M: f64 = 3.5;

/// One piece of centre line.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Segment {
    /// Straight, `length` m.
    Straight {
        /// Length, m.
        length: f64,
    },
    /// Circular arc of `radius` m turning by `angle` rad (positive left).
    Arc {
        /// Radius, m.
        radius: f64,
        /// Turn, rad (positive left).
        angle: f64,
    },
}

impl Segment {
    fn length(&self) -> f64 {
        match *self {
            Self::Straight { length } => length,
            Self::Arc { radius, angle } => radius * angle.abs(),
        }
    }
}

/// A placed segment: start pose and start s, with the trigonometry that
/// projection needs computed once.
#[derive(Debug, Clone, Copy)]
struct Placed {
    segment: Segment,
    s0: f64,
    x0: f64,
    y0: f64,
    heading0: f64,
    cos0: f64,
    sin0: f64,
    /// Arcs: centre of the circle and the angle of the start point around it.
    centre: (f64, f64),
    start_angle: f64,
    /// End point and heading (sin, cos).
    end: (f64, f64, f64, f64),
}

impl Placed {
    fn new(segment: Segment, s0: f64, x0: f64, y0: f64, heading0: f64) -> Self {
        let (sin0, cos0) = heading0.sin_cos();
        let (centre, start_angle) = match segment {
            Segment::Straight { .. } => ((0.0, 0.0), 0.0),
            Segment::Arc { radius, angle } => {
                let side = angle.signum();
                let (cx, cy) = (x0 - side * radius * sin0, y0 + side * radius * cos0);
                ((cx, cy), (y0 - cy).atan2(x0 - cx))
            }
        };
        let mut placed = Self {
            segment,
            s0,
            x0,
            y0,
            heading0,
            cos0,
            sin0,
            centre,
            start_angle,
            end: (x0, y0, sin0, cos0),
        };
        let end = pose_in(&placed, segment.length());
        let (sin1, cos1) = end.heading.sin_cos();
        placed.end = (end.x, end.y, sin1, cos1);
        placed
    }
}

/// Side of the cells of the segment index, m.
const INDEX_CELL_M: f64 = 10.0;
/// How far beside the centre line the index reaches, m (beyond: plain verge).
pub const INDEX_REACH_M: f64 = 20.0;

/// A point on the centre line.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CentrePose {
    /// x in the map, m.
    pub x: f64,
    /// y in the map, m.
    pub y: f64,
    /// Heading, rad.
    pub heading: f64,
    /// Curvature, 1/m (positive left).
    pub curvature: f64,
}

/// A road.
#[derive(Debug, Clone)]
pub struct Road {
    placed: Vec<Placed>,
    length: f64,
    /// Lanes in each direction.
    pub lanes_each_way: u8,
    /// Segments passing within [`INDEX_REACH_M`] of each cell: origin, size, lists.
    index_origin: (f64, f64),
    index_size: (usize, usize),
    index: Vec<Vec<u16>>,
}

impl Road {
    /// Road from segments starting at the origin heading along +x.
    #[must_use]
    pub fn new(segments: &[Segment], lanes_each_way: u8) -> Self {
        let (mut s, mut x, mut y, mut heading) = (0.0, 0.0, 0.0, 0.0);
        let mut placed = Vec::with_capacity(segments.len());
        for segment in segments {
            placed.push(Placed::new(*segment, s, x, y, heading));
            let end = pose_in(&placed[placed.len() - 1], segment.length());
            (x, y, heading) = (end.x, end.y, end.heading);
            s += segment.length();
        }
        let mut road = Self {
            placed,
            length: s,
            lanes_each_way: lanes_each_way.clamp(1, 3),
            index_origin: (0.0, 0.0),
            index_size: (0, 0),
            index: Vec::new(),
        };
        road.build_index();
        road
    }

    /// Fills the segment index by sampling each segment every metre.
    fn build_index(&mut self) {
        let reach = INDEX_REACH_M + INDEX_CELL_M;
        let samples: Vec<(usize, f64, f64)> = self
            .placed
            .iter()
            .enumerate()
            .flat_map(|(i, p)| {
                let len = p.segment.length();
                let n = len.ceil().max(1.0) as usize;
                (0..=n).map(move |k| (i, p, len * k as f64 / n as f64))
            })
            .map(|(i, p, u)| {
                let c = pose_in(p, u);
                (i, c.x, c.y)
            })
            .collect();
        let (mut lo, mut hi) = ((f64::INFINITY, f64::INFINITY), (f64::NEG_INFINITY, f64::NEG_INFINITY));
        for (_, x, y) in &samples {
            lo = (lo.0.min(*x - reach), lo.1.min(*y - reach));
            hi = (hi.0.max(*x + reach), hi.1.max(*y + reach));
        }
        let size = (
            ((hi.0 - lo.0) / INDEX_CELL_M).ceil() as usize + 1,
            ((hi.1 - lo.1) / INDEX_CELL_M).ceil() as usize + 1,
        );
        let mut index = vec![Vec::new(); size.0 * size.1];
        let cells = (reach / INDEX_CELL_M).ceil() as i64;
        for (i, x, y) in samples {
            let (cx, cy) = (((x - lo.0) / INDEX_CELL_M) as i64, ((y - lo.1) / INDEX_CELL_M) as i64);
            for gy in (cy - cells).max(0)..=(cy + cells).min(size.1 as i64 - 1) {
                for gx in (cx - cells).max(0)..=(cx + cells).min(size.0 as i64 - 1) {
                    let list: &mut Vec<u16> = &mut index[gy as usize * size.0 + gx as usize];
                    if list.last() != Some(&(i as u16)) && !list.contains(&(i as u16)) {
                        list.push(i as u16);
                    }
                }
            }
        }
        self.index_origin = lo;
        self.index_size = size;
        self.index = index;
    }

    /// Road coordinates of a point within [`INDEX_REACH_M`] of the centre
    /// line (checking only nearby segments); `None` for points further away.
    /// The renderer's fast path: most of the world is not road.
    #[must_use]
    pub fn project_near(&self, x: f64, y: f64) -> Option<(f64, f64)> {
        let (gx, gy) = ((x - self.index_origin.0) / INDEX_CELL_M, (y - self.index_origin.1) / INDEX_CELL_M);
        if gx < 0.0 || gy < 0.0 || gx >= self.index_size.0 as f64 || gy >= self.index_size.1 as f64 {
            return None;
        }
        let list = &self.index[gy as usize * self.index_size.0 + gx as usize];
        if list.is_empty() {
            return None;
        }
        let best = self.project_among(x, y, list.iter().map(|i| usize::from(*i)));
        (best.1.abs() <= INDEX_REACH_M).then_some(best)
    }

    /// Total length, m.
    #[must_use]
    pub fn length(&self) -> f64 {
        self.length
    }

    /// Half the paved width, m.
    #[must_use]
    pub fn half_width(&self) -> f64 {
        f64::from(self.lanes_each_way) * LANE_WIDTH_M
    }

    /// Lateral offset of the centre of forward lane `lane` (0 next to the centre line).
    #[must_use]
    pub fn lane_centre(&self, lane: u8) -> f64 {
        -(f64::from(lane.min(self.lanes_each_way - 1)) + 0.5) * LANE_WIDTH_M
    }

    fn segment_at(&self, s: f64) -> &Placed {
        let i = self.placed.partition_point(|p| p.s0 <= s).saturating_sub(1);
        &self.placed[i]
    }

    /// Centre-line pose at `s` (extrapolated straight past either end).
    #[must_use]
    pub fn centre(&self, s: f64) -> CentrePose {
        let placed = self.segment_at(s);
        pose_in(placed, s - placed.s0)
    }

    /// Map position of road coordinates (s, d).
    #[must_use]
    pub fn point(&self, s: f64, d: f64) -> (f64, f64) {
        let c = self.centre(s);
        (c.x - d * c.heading.sin(), c.y + d * c.heading.cos())
    }

    /// Road coordinates (s, d) of a map point: the nearest centre-line point.
    #[must_use]
    pub fn project(&self, x: f64, y: f64) -> (f64, f64) {
        self.project_among(x, y, 0..self.placed.len())
    }

    fn project_among(&self, x: f64, y: f64, segments: impl Iterator<Item = usize>) -> (f64, f64) {
        let mut best = (0.0, f64::INFINITY);
        for i in segments {
            let p = &self.placed[i];
            let len = p.segment.length();
            let (mut u, d) = match p.segment {
                Segment::Straight { .. } => {
                    let (dx, dy) = (x - p.x0, y - p.y0);
                    let (c, s) = (p.cos0, p.sin0);
                    (dx * c + dy * s, -dx * s + dy * c)
                }
                Segment::Arc { radius, angle } => {
                    let side = angle.signum();
                    let (dx, dy) = (x - p.centre.0, y - p.centre.1);
                    let dist = (dx * dx + dy * dy).sqrt();
                    // Angle swept from the segment start, around the centre.
                    let swept = wrap(side * (dy.atan2(dx) - p.start_angle));
                    (swept * radius, side * (radius - dist))
                }
            };
            // Ends of the road extend straight; inner joints clamp to the segment.
            let first = i == 0;
            let last = i + 1 == self.placed.len();
            let outside = (u < 0.0 && !first) || (u > len && !last);
            if outside {
                // Nearest is the segment's start or end point.
                let (px, py, sin, cos) = if u < 0.0 { (p.x0, p.y0, p.sin0, p.cos0) } else { p.end };
                u = u.clamp(0.0, len);
                let dist = ((x - px) * (x - px) + (y - py) * (y - py)).sqrt();
                if dist < best.1.abs() {
                    let sign = (-(x - px) * sin + (y - py) * cos).signum();
                    best = (p.s0 + u, sign * dist);
                }
            } else if d.abs() < best.1.abs() {
                best = (p.s0 + u, d);
            }
        }
        best
    }
}

fn wrap(a: f64) -> f64 {
    (a + std::f64::consts::PI).rem_euclid(std::f64::consts::TAU) - std::f64::consts::PI
}

/// Pose `u` metres into a placed segment.
fn pose_in(p: &Placed, u: f64) -> CentrePose {
    match p.segment {
        Segment::Straight { .. } => CentrePose {
            x: p.x0 + u * p.heading0.cos(),
            y: p.y0 + u * p.heading0.sin(),
            heading: p.heading0,
            curvature: 0.0,
        },
        Segment::Arc { radius, angle } => {
            let k = angle.signum() / radius;
            let heading = p.heading0 + k * u;
            CentrePose {
                x: p.x0 + (heading.sin() - p.heading0.sin()) / k,
                y: p.y0 - (heading.cos() - p.heading0.cos()) / k,
                heading,
                curvature: k,
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::float_cmp, reason = "hand-computed values are exact")]
mod tests {
    use super::*;
    use std::f64::consts::FRAC_PI_2;

    fn road() -> Road {
        Road::new(
            &[
                Segment::Straight { length: 50.0 },
                Segment::Arc { radius: 40.0, angle: FRAC_PI_2 },
                Segment::Straight { length: 30.0 },
            ],
            2,
        )
    }

    #[test]
    fn arcs_turn_where_hand_computation_says() {
        let r = road();
        assert!((r.length() - (80.0 + 40.0 * FRAC_PI_2)).abs() < 1e-9);
        // After a 90-degree left arc of radius 40 from (50, 0): at (90, 40), heading north.
        let end = r.centre(50.0 + 40.0 * FRAC_PI_2);
        assert!((end.x - 90.0).abs() < 1e-9 && (end.y - 40.0).abs() < 1e-9, "{end:?}");
        assert!((end.heading - FRAC_PI_2).abs() < 1e-12);
    }

    #[test]
    fn project_inverts_point_everywhere() {
        let r = road();
        for i in 0..=60 {
            let s = f64::from(i) * r.length() / 60.0;
            for d in [-6.0, -1.75, 0.0, 3.0] {
                let (x, y) = r.point(s, d);
                let (s2, d2) = r.project(x, y);
                assert!((s2 - s).abs() < 1e-6 && (d2 - d).abs() < 1e-6, "({s}, {d}) -> ({s2}, {d2})");
                assert_eq!(r.project_near(x, y), Some((s2, d2)), "the index agrees");
            }
        }
        let (x, y) = r.point(60.0, 35.0);
        assert_eq!(r.project_near(x, y), None, "35 m from the centre line is beyond the index");
        assert_eq!(r.lane_centre(0), -1.75);
        assert_eq!(r.lane_centre(1), -5.25);
    }
}
