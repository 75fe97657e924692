//! A uniform grid on the ground plane over oriented boxes, walked along the
//! ray's 2D projection (Amanatides-Woo DDA). The world is 2.5D (boxes stand
//! on the ground and are at most a few storeys tall) and most rays run along
//! an empty carriageway, so stepping through mostly empty cells and stopping
//! at the first hit beats a BVH here (measured: docs/PERFORMANCE.md).

use nalgebra::Vector3;

/// A box standing on the ground, rotated about z.
#[derive(Debug, Clone, Copy)]
pub(crate) struct OrientedBox {
    pub centre: Vector3<f64>,
    /// sin and cos of the yaw, computed once.
    sin_cos: (f64, f64),
    pub half: Vector3<f64>,
    pub object: u32,
    /// Radius of the bounding sphere, for a cheap early miss.
    radius: f64,
}

impl OrientedBox {
    pub fn new(centre: Vector3<f64>, yaw: f64, half: Vector3<f64>, object: u32) -> Self {
        Self { centre, sin_cos: yaw.sin_cos(), half, object, radius: half.norm() }
    }

    /// The eight corners in the map.
    pub fn corners(&self) -> [Vector3<f64>; 8] {
        let (s, c) = self.sin_cos;
        std::array::from_fn(|i| {
            let sign = |bit: usize| if i & bit == 0 { -1.0 } else { 1.0 };
            let (x, y, z) = (sign(1) * self.half.x, sign(2) * self.half.y, sign(4) * self.half.z);
            self.centre + Vector3::new(x * c - y * s, x * s + y * c, z)
        })
    }

    /// Axis-aligned bounds in the map.
    fn bounds(&self) -> (Vector3<f64>, Vector3<f64>) {
        let (s, c) = self.sin_cos;
        let ex = self.half.x * c.abs() + self.half.y * s.abs();
        let ey = self.half.x * s.abs() + self.half.y * c.abs();
        let e = Vector3::new(ex, ey, self.half.z);
        (self.centre - e, self.centre + e)
    }

    /// Ray parameter and world normal of the first hit within (0, max_t).
    pub fn intersect(
        &self,
        origin: &Vector3<f64>,
        dir: &Vector3<f64>,
        max_t: f64,
    ) -> Option<(f64, Vector3<f64>)> {
        let o = origin - self.centre;
        // Bounding sphere first: most candidates are missed, or lie wholly
        // behind the origin or beyond the nearest hit so far, and this costs
        // a few multiplies.
        let along = -o.dot(dir);
        if o.norm_squared() - along * along > self.radius * self.radius
            || along + self.radius < 0.0
            || along - self.radius > max_t
        {
            return None;
        }
        let (s, c) = self.sin_cos;
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
        Some((t0, Vector3::new(n.x * c - n.y * s, n.x * s + n.y * c, n.z)))
    }
}

/// Cell side, m.
const CELL_M: f64 = 8.0;

/// The grid: cell `i` holds `items[offsets[i]..offsets[i + 1]]`.
pub(crate) struct Grid {
    pub boxes: Vec<OrientedBox>,
    min: (f64, f64),
    cells: (usize, usize),
    offsets: Vec<u32>,
    items: Vec<u32>,
    top_z: f64,
}

impl Grid {
    pub fn new(boxes: Vec<OrientedBox>) -> Self {
        let (mut lo, mut hi) = ((f64::INFINITY, f64::INFINITY), (f64::NEG_INFINITY, f64::NEG_INFINITY));
        let mut top_z = 0.0f64;
        let bounds: Vec<_> = boxes.iter().map(OrientedBox::bounds).collect();
        for (min, max) in &bounds {
            lo = (lo.0.min(min.x), lo.1.min(min.y));
            hi = (hi.0.max(max.x), hi.1.max(max.y));
            top_z = top_z.max(max.z);
        }
        if boxes.is_empty() {
            return Self {
                boxes,
                min: (0.0, 0.0),
                cells: (0, 0),
                offsets: vec![0],
                items: Vec::new(),
                top_z,
            };
        }
        let cells =
            (((hi.0 - lo.0) / CELL_M).floor() as usize + 1, ((hi.1 - lo.1) / CELL_M).floor() as usize + 1);
        let cell_range = |a: f64, b: f64, origin: f64, n: usize| {
            let first = ((a - origin) / CELL_M).floor().max(0.0) as usize;
            let last = (((b - origin) / CELL_M).floor().max(0.0) as usize).min(n - 1);
            first..=last
        };
        let mut lists = vec![Vec::new(); cells.0 * cells.1];
        for (i, (min, max)) in bounds.iter().enumerate() {
            for cy in cell_range(min.y, max.y, lo.1, cells.1) {
                for cx in cell_range(min.x, max.x, lo.0, cells.0) {
                    lists[cy * cells.0 + cx].push(i as u32);
                }
            }
        }
        let mut offsets = Vec::with_capacity(lists.len() + 1);
        let mut items = Vec::new();
        offsets.push(0);
        for list in lists {
            items.extend(list);
            offsets.push(items.len() as u32);
        }
        Self { boxes, min: lo, cells, offsets, items, top_z }
    }

    /// Height of the tallest box top, m.
    pub fn top_z(&self) -> f64 {
        self.top_z
    }

    /// Nearest hit within `max_t`: (t, world normal, box index); with `any`,
    /// the first hit found.
    pub fn cast(
        &self,
        origin: &Vector3<f64>,
        dir: &Vector3<f64>,
        max_t: f64,
        any: bool,
    ) -> Option<(f64, Vector3<f64>, usize)> {
        if self.cells.0 == 0 {
            return None;
        }
        let (w, h) = (self.cells.0 as f64 * CELL_M, self.cells.1 as f64 * CELL_M);
        let (px, py) = (origin.x - self.min.0, origin.y - self.min.1);
        // Clip the ray's 2D projection to the grid rectangle.
        let (mut t_enter, mut t_exit) = (0.0f64, max_t);
        for (p, d, size) in [(px, dir.x, w), (py, dir.y, h)] {
            if d.abs() < 1e-12 {
                if p < 0.0 || p >= size {
                    return None;
                }
            } else {
                let (a, b) = ((0.0 - p) / d, (size - p) / d);
                t_enter = t_enter.max(a.min(b));
                t_exit = t_exit.min(a.max(b));
            }
        }
        if t_enter > t_exit {
            return None;
        }
        let start = (px + dir.x * t_enter, py + dir.y * t_enter);
        let clamp = |v: f64, n: usize| ((v / CELL_M).floor().max(0.0) as usize).min(n - 1);
        let (mut cx, mut cy) = (clamp(start.0, self.cells.0), clamp(start.1, self.cells.1));
        let step = |d: f64| if d > 0.0 { 1i64 } else { -1 };
        let (sx, sy) = (step(dir.x), step(dir.y));
        let next_boundary = |c: usize, s: i64, p: f64, d: f64| {
            if d.abs() < 1e-12 {
                return f64::INFINITY;
            }
            let edge = (c as f64 + if s > 0 { 1.0 } else { 0.0 }) * CELL_M;
            (edge - p) / d
        };
        let (mut tx, mut ty) = (next_boundary(cx, sx, px, dir.x), next_boundary(cy, sy, py, dir.y));
        let (dtx, dty) = (CELL_M / dir.x.abs(), CELL_M / dir.y.abs());
        let mut best: Option<(f64, Vector3<f64>, usize)> = None;
        let mut limit = max_t;
        loop {
            let cell = cy * self.cells.0 + cx;
            for &i in &self.items[self.offsets[cell] as usize..self.offsets[cell + 1] as usize] {
                if let Some((t, n)) = self.boxes[i as usize].intersect(origin, dir, limit) {
                    limit = t;
                    best = Some((t, n, i as usize));
                    if any {
                        return best;
                    }
                }
            }
            let leave = tx.min(ty);
            // A hit inside this cell cannot be beaten by a later cell.
            if leave >= limit || leave >= t_exit {
                return best;
            }
            if tx < ty {
                tx += dtx;
                let next = cx as i64 + sx;
                if next < 0 || next >= self.cells.0 as i64 {
                    return best;
                }
                cx = next as usize;
            } else {
                ty += dty;
                let next = cy as i64 + sy;
                if next < 0 || next >= self.cells.1 as i64 {
                    return best;
                }
                cy = next as usize;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grid_agrees_with_brute_force() {
        let boxes: Vec<OrientedBox> = (0..200)
            .map(|i| {
                let (x, y) = (f64::from(i % 20) * 4.3, f64::from(i / 20) * 3.7);
                OrientedBox::new(
                    Vector3::new(x, y, 1.0),
                    f64::from(i) * 0.37,
                    Vector3::new(1.0, 0.5, 1.0 + f64::from(i % 3)),
                    i,
                )
            })
            .collect();
        let grid = Grid::new(boxes.clone());
        for (k, origin) in
            [Vector3::new(-5.0, -3.0, 1.2), Vector3::new(40.0, 17.0, 0.5), Vector3::new(200.0, 5.0, 2.0)]
                .iter()
                .enumerate()
        {
            for j in 0..2000 {
                let angle = f64::from(j) * 0.00314;
                let dir = Vector3::new(angle.cos(), angle.sin(), -0.02 + 0.00002 * f64::from(j)).normalize();
                let brute = boxes
                    .iter()
                    .filter_map(|b| b.intersect(origin, &dir, 1e9).map(|(t, _)| (t, b.object)))
                    .min_by(|a, b| a.0.total_cmp(&b.0));
                let fast = grid.cast(origin, &dir, 1e9, false).map(|(t, _, i)| (t, grid.boxes[i].object));
                assert_eq!(brute, fast, "origin {k}, ray {j}");
                assert_eq!(brute.is_some(), grid.cast(origin, &dir, 1e9, true).is_some());
            }
        }
    }
}
