//! Rigid transforms: conversions between ROS messages and nalgebra, the
//! static transform tree (`/tf_static`), and ego pose tracks with SE(3)
//! interpolation.

use std::collections::{HashMap, VecDeque};

use nalgebra::{Isometry3, Quaternion as NaQuaternion, Translation3, UnitQuaternion};

use crate::msg::{Point, Pose, Quaternion, TfMessage, Transform, TransformStamped, Vector3};

/// A rigid transform; `a_from_b` maps b-coordinates into a.
pub type Iso3 = Isometry3<f64>;

fn unit_quaternion(q: &Quaternion) -> Option<UnitQuaternion<f64>> {
    let raw = NaQuaternion::new(q.w, q.x, q.y, q.z);
    let norm = raw.norm();
    (norm.is_finite() && norm > 1e-9).then(|| UnitQuaternion::new_normalize(raw))
}

fn quaternion_msg(q: &UnitQuaternion<f64>) -> Quaternion {
    Quaternion { x: q.i, y: q.j, z: q.k, w: q.w }
}

/// `parent_from_child` of a ROS transform; `None` for a zero or NaN quaternion.
#[must_use]
pub fn isometry_from_transform(t: &Transform) -> Option<Iso3> {
    let v = &t.translation;
    Some(Iso3::from_parts(Translation3::new(v.x, v.y, v.z), unit_quaternion(&t.rotation)?))
}

/// ROS transform of an isometry.
#[must_use]
pub fn transform_from_isometry(iso: &Iso3) -> Transform {
    let v = iso.translation.vector;
    Transform { translation: Vector3 { x: v.x, y: v.y, z: v.z }, rotation: quaternion_msg(&iso.rotation) }
}

/// Isometry of a ROS pose; `None` for a zero or NaN quaternion.
#[must_use]
pub fn isometry_from_pose(p: &Pose) -> Option<Iso3> {
    let v = &p.position;
    Some(Iso3::from_parts(Translation3::new(v.x, v.y, v.z), unit_quaternion(&p.orientation)?))
}

/// ROS pose of an isometry.
#[must_use]
pub fn pose_from_isometry(iso: &Iso3) -> Pose {
    let v = iso.translation.vector;
    Pose { position: Point { x: v.x, y: v.y, z: v.z }, orientation: quaternion_msg(&iso.rotation) }
}

/// `TransformStamped` for `parent_from_child` at `stamp_nanos`.
#[must_use]
pub fn transform_stamped(
    stamp_nanos: u64,
    parent: &str,
    child: &str,
    parent_from_child: &Iso3,
) -> TransformStamped {
    TransformStamped {
        header: crate::msg::Header::new(stamp_nanos, parent),
        child_frame_id: child.to_owned(),
        transform: transform_from_isometry(parent_from_child),
    }
}

/// The static transform tree of a drive (sensor mounting).
#[derive(Debug, Clone, Default)]
pub struct StaticTransforms {
    // child -> (parent, parent_from_child)
    edges: HashMap<String, (String, Iso3)>,
}

impl StaticTransforms {
    /// Tree from `/tf_static` messages; transforms with unusable rotations
    /// are skipped (and so cannot be looked up).
    #[must_use]
    pub fn from_messages<'a>(messages: impl IntoIterator<Item = &'a TfMessage>) -> Self {
        let mut tree = Self::default();
        for t in messages.into_iter().flat_map(|m| &m.transforms) {
            if let Some(iso) = isometry_from_transform(&t.transform) {
                tree.insert(&t.header.frame_id, &t.child_frame_id, iso);
            }
        }
        tree
    }

    /// Adds `parent_from_child`.
    pub fn insert(&mut self, parent: &str, child: &str, parent_from_child: Iso3) {
        self.edges.insert(child.to_owned(), (parent.to_owned(), parent_from_child));
    }

    /// Frames in the tree, sorted.
    #[must_use]
    pub fn frames(&self) -> Vec<String> {
        let mut frames: Vec<String> =
            self.edges.iter().flat_map(|(c, (p, _))| [c.clone(), p.clone()]).collect();
        frames.sort();
        frames.dedup();
        frames
    }

    /// `target_from_source`, walking the tree in either direction; `None` if
    /// the two frames are not connected.
    #[must_use]
    pub fn lookup(&self, target: &str, source: &str) -> Option<Iso3> {
        // Undirected breadth-first search from source, accumulating
        // frame_from_source along the way.
        let mut neighbours: HashMap<&str, Vec<(&str, Iso3)>> = HashMap::new();
        for (child, (parent, parent_from_child)) in &self.edges {
            neighbours.entry(child).or_default().push((parent, *parent_from_child));
            neighbours.entry(parent).or_default().push((child, parent_from_child.inverse()));
        }
        let mut seen: HashMap<&str, Iso3> = HashMap::from([(source, Iso3::identity())]);
        let mut queue = VecDeque::from([source]);
        while let Some(frame) = queue.pop_front() {
            let frame_from_source = seen[frame];
            if frame == target {
                return Some(frame_from_source);
            }
            for (next, next_from_frame) in neighbours.get(frame).into_iter().flatten() {
                if !seen.contains_key(next) {
                    seen.insert(next, next_from_frame * frame_from_source);
                    queue.push_back(next);
                }
            }
        }
        None
    }
}

/// Time-stamped poses (e.g. `map_from_base_link`), sorted by time.
#[derive(Debug, Clone, Default)]
pub struct PoseTrack {
    stamps: Vec<u64>,
    poses: Vec<Iso3>,
}

impl PoseTrack {
    /// Track from `(stamp_nanos, pose)` samples in any order; equal stamps keep the last.
    #[must_use]
    pub fn new(mut samples: Vec<(u64, Iso3)>) -> Self {
        samples.sort_by_key(|(t, _)| *t);
        samples.dedup_by(|later, earlier| {
            let same = later.0 == earlier.0;
            if same {
                earlier.1 = later.1;
            }
            same
        });
        let (stamps, poses) = samples.into_iter().unzip();
        Self { stamps, poses }
    }

    /// Number of samples.
    #[must_use]
    pub fn len(&self) -> usize {
        self.stamps.len()
    }

    /// True if there are no samples.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.stamps.is_empty()
    }

    /// Pose at `stamp_nanos`: translation interpolated linearly, rotation by
    /// slerp between the bracketing samples. `None` outside the track or when
    /// the bracketing samples are more than `max_gap_nanos` apart.
    #[must_use]
    pub fn interpolate(&self, stamp_nanos: u64, max_gap_nanos: u64) -> Option<Iso3> {
        let i = self.stamps.partition_point(|&t| t < stamp_nanos);
        if self.stamps.get(i) == Some(&stamp_nanos) {
            return Some(self.poses[i]);
        }
        if i == 0 || i >= self.stamps.len() {
            return None;
        }
        let (t0, t1) = (self.stamps[i - 1], self.stamps[i]);
        if t1 - t0 > max_gap_nanos {
            return None;
        }
        let s = (stamp_nanos - t0) as f64 / (t1 - t0) as f64;
        Some(self.poses[i - 1].lerp_slerp(&self.poses[i], s))
    }

    /// First and last stamp, ns (None for an empty track).
    #[must_use]
    pub fn span_nanos(&self) -> Option<(u64, u64)> {
        Some((*self.stamps.first()?, *self.stamps.last()?))
    }

    /// The samples in time order.
    #[must_use]
    pub fn samples(&self) -> impl ExactSizeIterator<Item = (u64, &Iso3)> {
        self.stamps.iter().copied().zip(&self.poses)
    }

    /// Where the track is `offset` ns after `stamp_nanos`, for each offset,
    /// in the frame of the pose at `stamp_nanos` (for an ego track: the
    /// future path in the current base_link, what a plan label is). `None`
    /// where either pose is not on the track.
    #[must_use]
    pub fn ahead_in_own_frame(
        &self,
        stamp_nanos: u64,
        offsets_nanos: &[u64],
        max_gap_nanos: u64,
    ) -> Vec<Option<Iso3>> {
        let Some(now_inverse) = self.interpolate(stamp_nanos, max_gap_nanos).map(|p| p.inverse()) else {
            return vec![None; offsets_nanos.len()];
        };
        offsets_nanos
            .iter()
            .map(|dt| {
                let then = self.interpolate(stamp_nanos.checked_add(*dt)?, max_gap_nanos)?;
                Some(now_inverse * then)
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nalgebra::{Point3, Vector3 as V3};
    use std::f64::consts::FRAC_PI_2;

    #[test]
    fn ahead_in_own_frame_turns_with_the_ego() {
        // Ego at (10, 5) facing +y, driving +y at 2 m/s.
        let yaw = UnitQuaternion::from_euler_angles(0.0, 0.0, FRAC_PI_2);
        let at = |t: u64| Iso3::from_parts(Translation3::new(10.0, 5.0 + 2.0 * t as f64, 0.0), yaw);
        let track = PoseTrack::new((0..5).map(|t| (t * 1_000_000_000, at(t))).collect());
        let ahead = track.ahead_in_own_frame(
            1_000_000_000,
            &[0, 500_000_000, 2_000_000_000, 9_000_000_000],
            2e9 as u64,
        );
        let xy = |p: &Option<Iso3>| p.map(|p| (p.translation.x, p.translation.y));
        let near = |a: Option<(f64, f64)>, b: (f64, f64)| {
            a.is_some_and(|a| (a.0 - b.0).abs() < 1e-9 && (a.1 - b.1).abs() < 1e-9)
        };
        assert!(near(xy(&ahead[0]), (0.0, 0.0)));
        assert!(near(xy(&ahead[1]), (1.0, 0.0)), "{:?}", ahead[1]);
        assert!(near(xy(&ahead[2]), (4.0, 0.0)));
        assert!(ahead[3].is_none(), "past the end of the track");
        assert_eq!(track.span_nanos(), Some((0, 4_000_000_000)));
    }

    #[test]
    fn lookup_composes_and_inverts() {
        let mut tree = StaticTransforms::default();
        let base_from_lidar = Iso3::translation(1.0, 0.0, 2.0);
        let base_from_cam = Iso3::from_parts(
            Translation3::new(2.0, 0.0, 1.5),
            UnitQuaternion::from_euler_angles(-FRAC_PI_2, 0.0, -FRAC_PI_2),
        );
        tree.insert("base_link", "lidar_top", base_from_lidar);
        tree.insert("base_link", "cam", base_from_cam);
        let cam_from_lidar = tree.lookup("cam", "lidar_top").unwrap();
        // The lidar origin is 1 m behind and 0.5 m above the camera: in the
        // optical frame (x right, y down, z forward) that is (0, -0.5, -1).
        let p = cam_from_lidar * Point3::origin();
        assert!((p.coords - V3::new(0.0, -0.5, -1.0)).norm() < 1e-12, "{p}");
        assert!(tree.lookup("cam", "nowhere").is_none());
    }

    #[test]
    fn interpolation_is_se3_and_respects_gaps() {
        let a = Iso3::identity();
        let b = Iso3::from_parts(
            Translation3::new(2.0, 0.0, 0.0),
            UnitQuaternion::from_euler_angles(0.0, 0.0, FRAC_PI_2),
        );
        let track = PoseTrack::new(vec![(200, b), (100, a)]);
        let mid = track.interpolate(150, 1_000).unwrap();
        assert!((mid.translation.vector - V3::new(1.0, 0.0, 0.0)).norm() < 1e-12);
        assert!((mid.rotation.euler_angles().2 - FRAC_PI_2 / 2.0).abs() < 1e-12);
        assert_eq!(track.interpolate(100, 0), Some(a));
        assert!(track.interpolate(150, 50).is_none(), "gap of 100 ns > 50 ns");
        assert!(track.interpolate(99, 1_000).is_none());
        assert!(track.interpolate(201, 1_000).is_none());
    }

    #[test]
    fn zero_quaternion_is_refused() {
        let t = Transform { rotation: Quaternion { x: 0.0, y: 0.0, z: 0.0, w: 0.0 }, ..Transform::default() };
        assert!(isometry_from_transform(&t).is_none());
    }
}
