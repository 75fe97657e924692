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

/// A placed segment: start pose and start s.
#[derive(Debug, Clone, Copy)]
struct Placed {
    segment: Segment,
    s0: f64,
    x0: f64,
    y0: f64,
    heading0: f64,
}

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
}

impl Road {
    /// Road from segments starting at the origin heading along +x.
    #[must_use]
    pub fn new(segments: &[Segment], lanes_each_way: u8) -> Self {
        let (mut s, mut x, mut y, mut heading) = (0.0, 0.0, 0.0, 0.0);
        let mut placed = Vec::with_capacity(segments.len());
        for segment in segments {
            placed.push(Placed { segment: *segment, s0: s, x0: x, y0: y, heading0: heading });
            let end = pose_in(&placed[placed.len() - 1], segment.length());
            (x, y, heading) = (end.x, end.y, end.heading);
            s += segment.length();
        }
        Self { placed, length: s, lanes_each_way: lanes_each_way.clamp(1, 3) }
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
        let mut best = (0.0, f64::INFINITY);
        for (i, p) in self.placed.iter().enumerate() {
            let len = p.segment.length();
            let (mut u, d) = match p.segment {
                Segment::Straight { .. } => {
                    let (dx, dy) = (x - p.x0, y - p.y0);
                    let (c, s) = (p.heading0.cos(), p.heading0.sin());
                    (dx * c + dy * s, -dx * s + dy * c)
                }
                Segment::Arc { radius, angle } => {
                    let side = angle.signum();
                    let (cx, cy) =
                        (p.x0 - side * radius * p.heading0.sin(), p.y0 + side * radius * p.heading0.cos());
                    let (dx, dy) = (x - cx, y - cy);
                    let dist = dx.hypot(dy);
                    // Angle swept from the segment start, around the centre.
                    let start = (p.y0 - cy).atan2(p.x0 - cx);
                    let now = dy.atan2(dx);
                    let swept = wrap(side * (now - start));
                    (swept * radius, side * (radius - dist))
                }
            };
            // Ends of the road extend straight; inner joints clamp to the segment.
            let first = i == 0;
            let last = i + 1 == self.placed.len();
            let outside = (u < 0.0 && !first) || (u > len && !last);
            if outside {
                u = u.clamp(0.0, len);
                let (px, py) = self.point(p.s0 + u, 0.0);
                let dist = (x - px).hypot(y - py);
                if dist < best.1.abs() {
                    let c = self.centre(p.s0 + u);
                    let sign = (-(x - px) * c.heading.sin() + (y - py) * c.heading.cos()).signum();
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
            }
        }
        assert_eq!(r.lane_centre(0), -1.75);
        assert_eq!(r.lane_centre(1), -5.25);
    }
}
