//! Oriented boxes on the ground plane and their overlap test.

/// A box footprint: centre, heading and half extents, m.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Footprint {
    /// Centre x, m.
    pub x: f64,
    /// Centre y, m.
    pub y: f64,
    /// Heading, rad.
    pub yaw: f64,
    /// Half length, m.
    pub half_length: f64,
    /// Half width, m.
    pub half_width: f64,
}

impl Footprint {
    /// The four corners.
    #[must_use]
    pub fn corners(&self) -> [(f64, f64); 4] {
        let (s, c) = self.yaw.sin_cos();
        let (l, w) = (self.half_length, self.half_width);
        [(l, w), (l, -w), (-l, -w), (-l, w)].map(|(u, v)| (self.x + u * c - v * s, self.y + u * s + v * c))
    }

    /// True if the two rectangles overlap (separating axis test).
    #[must_use]
    pub fn overlaps(&self, other: &Self) -> bool {
        let (a, b) = (self.corners(), other.corners());
        [self.yaw, self.yaw + std::f64::consts::FRAC_PI_2, other.yaw, other.yaw + std::f64::consts::FRAC_PI_2]
            .iter()
            .all(|angle| {
                let (s, c) = angle.sin_cos();
                let project = |pts: &[(f64, f64); 4]| {
                    pts.iter()
                        .map(|(x, y)| x * c + y * s)
                        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), p| (lo.min(p), hi.max(p)))
                };
                let ((a0, a1), (b0, b1)) = (project(&a), project(&b));
                a1 >= b0 && b1 >= a0
            })
    }
}

#[cfg(test)]
#[allow(clippy::float_cmp, reason = "hand-computed values are exact")]
mod tests {
    use super::*;

    #[test]
    fn overlap_respects_rotation() {
        let a = Footprint { x: 0.0, y: 0.0, yaw: 0.0, half_length: 2.0, half_width: 1.0 };
        let touching = Footprint { x: 3.9, ..a };
        let apart = Footprint { x: 4.1, ..a };
        assert!(a.overlaps(&touching));
        assert!(!a.overlaps(&apart));
        // Diagonal neighbour whose bounding boxes overlap but the boxes do not.
        let rotated =
            Footprint { x: 3.0, y: 2.2, yaw: std::f64::consts::FRAC_PI_4, half_length: 1.0, half_width: 0.2 };
        assert!(!a.overlaps(&rotated));
    }
}
