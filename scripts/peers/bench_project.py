"""NumPy projection of lidar points into a camera with a z-buffer, in the
usual `generate_depth_map` style (matrix product, divide, round, bounds,
nearest point per pixel by writing far-to-near), timed for `nines bench
project`. Usage: bench_project.py POINTS.bin PARAMS.json; prints JSON."""

import json
import sys
import time

import numpy as np


def project(points, r, t, fx, fy, cx, cy, width, height, min_depth):
    cam = points @ r.T + t
    cam = cam[cam[:, 2] > min_depth]
    u = np.floor(fx * cam[:, 0] / cam[:, 2] + cx + 0.5).astype(np.int64)
    v = np.floor(fy * cam[:, 1] / cam[:, 2] + cy + 0.5).astype(np.int64)
    inside = (u >= 0) & (v >= 0) & (u < width) & (v < height)
    u, v, z = u[inside], v[inside], cam[inside, 2]
    depth = np.zeros((height, width), dtype=np.float32)
    order = np.argsort(-z, kind="stable")
    depth[v[order], u[order]] = z[order]
    return depth


def main():
    points = np.fromfile(sys.argv[1], dtype=np.float32).reshape(-1, 3)
    p = json.load(open(sys.argv[2]))
    m = np.asarray(p["camera_from_points"], dtype=np.float32).reshape(3, 4)
    args = (m[:, :3], m[:, 3], p["fx"], p["fy"], p["cx"], p["cy"], p["width"], p["height"], p["min_depth_m"])
    project(points, *args)  # warm-up
    best = float("inf")
    for _ in range(p["repeats"]):
        start = time.perf_counter()
        depth = project(points, *args)
        best = min(best, time.perf_counter() - start)
    print(json.dumps({"seconds": best, "points": len(points), "pixels_with_depth": int((depth > 0).sum())}))


if __name__ == "__main__":
    main()
