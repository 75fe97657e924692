//! A bounding volume hierarchy over oriented boxes (yaw-only, standing on
//! the ground): median split on the longest axis, nearest-hit and any-hit
//! traversal with an explicit stack.

use nalgebra::Vector3;

/// A box standing on the ground, rotated about z.
#[derive(Debug, Clone, Copy)]
pub(crate) struct OrientedBox {
    pub centre: Vector3<f64>,
    pub yaw: f64,
    pub half: Vector3<f64>,
    pub object: u32,
}

impl OrientedBox {
    fn bounds(&self) -> (Vector3<f64>, Vector3<f64>) {
        let (s, c) = self.yaw.sin_cos();
        let ex = self.half.x * c.abs() + self.half.y * s.abs();
        let ey = self.half.x * s.abs() + self.half.y * c.abs();
        let e = Vector3::new(ex, ey, self.half.z);
        (self.centre - e, self.centre + e)
    }

    /// Ray parameter and local-frame normal of the first hit within (0, max_t).
    pub fn intersect(
        &self,
        origin: &Vector3<f64>,
        dir: &Vector3<f64>,
        max_t: f64,
    ) -> Option<(f64, Vector3<f64>)> {
        let (s, c) = self.yaw.sin_cos();
        let o = origin - self.centre;
        let lo = Vector3::new(o.x * c + o.y * s, -o.x * s + o.y * c, o.z);
        let ld = Vector3::new(dir.x * c + dir.y * s, -dir.x * s + dir.y * c, dir.z);
        let (mut t0, mut t1, mut axis) = (1e-6, max_t, 0usize);
        for i in 0..3 {
            let inv = 1.0 / ld[i];
            let (mut a, mut b) = ((-self.half[i] - lo[i]) * inv, (self.half[i] - lo[i]) * inv);
            if a > b {
                std::mem::swap(&mut a, &mut b);
            }
            if a > t0 {
                t0 = a;
                axis = i;
            }
            t1 = t1.min(b);
            if t0 > t1 {
                return None;
            }
        }
        let mut n = Vector3::zeros();
        n[axis] = -ld[axis].signum();
        let world_n = Vector3::new(n.x * c - n.y * s, n.x * s + n.y * c, n.z);
        Some((t0, world_n))
    }
}

#[derive(Debug, Clone, Copy)]
struct Node {
    min: Vector3<f64>,
    max: Vector3<f64>,
    // Leaf: first box and count; inner: left child index (right = left + 1), count 0.
    start: u32,
    count: u32,
}

/// The hierarchy; boxes are reordered into leaf order.
pub(crate) struct Bvh {
    nodes: Vec<Node>,
    pub boxes: Vec<OrientedBox>,
}

fn slab(
    min: &Vector3<f64>,
    max: &Vector3<f64>,
    origin: &Vector3<f64>,
    inv: &Vector3<f64>,
    max_t: f64,
) -> Option<f64> {
    let (mut t0, mut t1) = (0.0f64, max_t);
    for i in 0..3 {
        let (mut a, mut b) = ((min[i] - origin[i]) * inv[i], (max[i] - origin[i]) * inv[i]);
        if a > b {
            std::mem::swap(&mut a, &mut b);
        }
        t0 = t0.max(a);
        t1 = t1.min(b);
    }
    (t0 <= t1).then_some(t0)
}

impl Bvh {
    pub fn new(mut boxes: Vec<OrientedBox>) -> Self {
        let mut nodes = Vec::with_capacity(boxes.len() * 2);
        if !boxes.is_empty() {
            nodes.push(Node { min: Vector3::zeros(), max: Vector3::zeros(), start: 0, count: 0 });
            let n = boxes.len();
            build(&mut nodes, &mut boxes, 0, 0, n);
        }
        Self { nodes, boxes }
    }

    /// Nearest hit: (t, world normal, box index).
    pub fn nearest(
        &self,
        origin: &Vector3<f64>,
        dir: &Vector3<f64>,
        max_t: f64,
    ) -> Option<(f64, Vector3<f64>, usize)> {
        self.walk(origin, dir, max_t, false)
    }

    /// True if anything is hit before `max_t`.
    pub fn any(&self, origin: &Vector3<f64>, dir: &Vector3<f64>, max_t: f64) -> bool {
        self.walk(origin, dir, max_t, true).is_some()
    }

    fn walk(
        &self,
        origin: &Vector3<f64>,
        dir: &Vector3<f64>,
        max_t: f64,
        any: bool,
    ) -> Option<(f64, Vector3<f64>, usize)> {
        if self.nodes.is_empty() {
            return None;
        }
        let inv = dir.map(|d| 1.0 / d);
        let mut best: Option<(f64, Vector3<f64>, usize)> = None;
        let mut limit = max_t;
        let mut stack = [0u32; 64];
        let mut top = 1;
        while top > 0 {
            top -= 1;
            let node = self.nodes[stack[top] as usize];
            if slab(&node.min, &node.max, origin, &inv, limit).is_none() {
                continue;
            }
            if node.count > 0 {
                for i in node.start..node.start + node.count {
                    if let Some((t, n)) = self.boxes[i as usize].intersect(origin, dir, limit) {
                        limit = t;
                        best = Some((t, n, i as usize));
                        if any {
                            return best;
                        }
                    }
                }
            } else if top + 2 <= stack.len() {
                stack[top] = node.start;
                stack[top + 1] = node.start + 1;
                top += 2;
            }
        }
        best
    }
}

fn build(nodes: &mut Vec<Node>, boxes: &mut [OrientedBox], index: usize, start: usize, end: usize) {
    let (mut min, mut max) = (Vector3::repeat(f64::INFINITY), Vector3::repeat(f64::NEG_INFINITY));
    for b in &boxes[start..end] {
        let (lo, hi) = b.bounds();
        min = min.inf(&lo);
        max = max.sup(&hi);
    }
    let count = end - start;
    if count <= 4 {
        nodes[index] = Node { min, max, start: start as u32, count: count as u32 };
        return;
    }
    let extent = max - min;
    let axis = if extent.x >= extent.y && extent.x >= extent.z {
        0
    } else if extent.y >= extent.z {
        1
    } else {
        2
    };
    let mid = start + count / 2;
    boxes[start..end].select_nth_unstable_by(count / 2, |a, b| a.centre[axis].total_cmp(&b.centre[axis]));
    let left = nodes.len();
    let empty = Node { min: Vector3::zeros(), max: Vector3::zeros(), start: 0, count: 0 };
    nodes.push(empty);
    nodes.push(empty);
    nodes[index] = Node { min, max, start: left as u32, count: 0 };
    build(nodes, boxes, left, start, mid);
    build(nodes, boxes, left + 1, mid, end);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unit_box(x: f64, y: f64, object: u32) -> OrientedBox {
        OrientedBox { centre: Vector3::new(x, y, 1.0), yaw: 0.3, half: Vector3::new(1.0, 0.5, 1.0), object }
    }

    #[test]
    fn bvh_agrees_with_brute_force() {
        let boxes: Vec<OrientedBox> =
            (0..200).map(|i| unit_box(f64::from(i % 20) * 4.0, f64::from(i / 20) * 4.0, i)).collect();
        let bvh = Bvh::new(boxes.clone());
        let origin = Vector3::new(-5.0, -3.0, 1.2);
        for k in 0..500 {
            let angle = f64::from(k) * 0.003;
            let dir = Vector3::new(angle.cos(), angle.sin(), -0.01).normalize();
            let brute = boxes
                .iter()
                .filter_map(|b| b.intersect(&origin, &dir, 1e9).map(|(t, _)| (t, b.object)))
                .min_by(|a, b| a.0.total_cmp(&b.0));
            let fast = bvh.nearest(&origin, &dir, 1e9).map(|(t, _, i)| (t, bvh.boxes[i].object));
            assert_eq!(brute, fast, "ray {k}");
        }
    }
}
