//! Colours for the replay: a perceptual rainbow for ranges and depths, and
//! one colour per object class.

/// Anchor colours from dark blue (0) through cyan, green and yellow to dark
/// red (1), spaced for roughly even perceived steps. A handful of anchors and
/// linear blending is all an overlay needs; a colour-map crate would bring a
/// plotting stack for eight numbers.
const RAINBOW: [(f32, [f32; 3]); 8] = [
    (0.00, [48.0, 18.0, 59.0]),
    (0.15, [70.0, 107.0, 227.0]),
    (0.30, [40.0, 187.0, 236.0]),
    (0.45, [49.0, 242.0, 153.0]),
    (0.60, [162.0, 252.0, 60.0]),
    (0.75, [237.0, 208.0, 58.0]),
    (0.88, [251.0, 128.0, 34.0]),
    (1.00, [122.0, 4.0, 3.0]),
];

/// Colour of `t` in 0..=1 (clamped; NaN is treated as 0).
#[must_use]
pub fn rainbow(t: f32) -> [u8; 3] {
    let t = if t.is_nan() { 0.0 } else { t.clamp(0.0, 1.0) };
    let upper = RAINBOW.iter().position(|(at, _)| *at >= t).unwrap_or(RAINBOW.len() - 1).max(1);
    let ((t0, c0), (t1, c1)) = (RAINBOW[upper - 1], RAINBOW[upper]);
    let s = (t - t0) / (t1 - t0);
    std::array::from_fn(|i| (c0[i] + (c1[i] - c0[i]) * s).round() as u8)
}

/// Colour of a distance: near is warm, far is cool, `far_m` and beyond the coolest.
#[must_use]
pub fn by_distance(distance_m: f32, far_m: f32) -> [u8; 3] {
    rainbow(1.0 - distance_m / far_m)
}

/// Colour of an object class label (`car`, `pedestrian`, ...).
#[must_use]
pub fn by_label(label: &str) -> [u8; 3] {
    match label {
        "car" => [66, 135, 245],
        "van" | "truck" | "bus" | "tram" => [155, 89, 182],
        "pedestrian" | "person_sitting" => [245, 130, 32],
        "cyclist" | "bicycle" => [46, 204, 113],
        "cone" => [241, 196, 15],
        _ => [170, 170, 170],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rainbow_hits_its_anchors_and_clamps() {
        assert_eq!(rainbow(0.0), [48, 18, 59]);
        assert_eq!(rainbow(1.0), [122, 4, 3]);
        assert_eq!(rainbow(-3.0), rainbow(0.0));
        assert_eq!(rainbow(7.0), rainbow(1.0));
        assert_eq!(rainbow(f32::NAN), rainbow(0.0));
        assert_eq!(rainbow(0.45), [49, 242, 153]);
        // Halfway between two anchors is halfway between their colours.
        assert_eq!(rainbow(0.075), [59, 63, 143]);
    }

    #[test]
    fn near_is_warm_and_far_is_cool() {
        let near = by_distance(1.0, 50.0);
        let far = by_distance(49.0, 50.0);
        assert!(near[0] > near[2], "{near:?}");
        assert!(far[2] > far[0], "{far:?}");
    }
}
