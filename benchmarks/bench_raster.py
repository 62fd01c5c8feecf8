"""Time :func:`humanbench.synthetic.raster.rasterize` on a body-sized mesh.

Renders a closed ~14k-triangle "body" (a union of overlapping ellipsoids:
torso, head, arms, legs) filling about a third of the image at 256x256 and
512x512 on one CPU thread, with and without shading, and compares the vectorised rasterizer with a
per-triangle Python-loop z-buffer on a smaller case measured in the same run.

Run: ``python benchmarks/bench_raster.py [--repeats N]``. Prints timings only;
nothing is asserted.
"""

from __future__ import annotations

import argparse
import math
import time
from collections.abc import Callable

import torch
from torch import Tensor

from humanbench.synthetic.raster import project_points, rasterize, render_mesh

_BODY_PARTS = (
    # (centre xyz, radii xyz) in metres, camera frame (y down), centred on the origin.
    ((0.00, -0.10, 0.0), (0.30, 0.36, 0.16)),  # torso
    ((0.00, -0.57, 0.0), (0.13, 0.15, 0.13)),  # head
    ((-0.42, -0.28, 0.0), (0.19, 0.08, 0.08)),  # left arm
    ((0.42, -0.28, 0.0), (0.19, 0.08, 0.08)),  # right arm
    ((-0.13, 0.41, 0.0), (0.13, 0.30, 0.13)),  # left leg
    ((0.13, 0.41, 0.0), (0.13, 0.30, 0.13)),  # right leg
)


def ellipsoid(centre: tuple[float, ...], radii: tuple[float, ...], n_lat: int, n_lon: int) -> tuple[Tensor, Tensor]:
    """Closed UV ellipsoid.

    Args:
        centre: (3,) centre.
        radii: (3,) semi-axes.
        n_lat: latitude bands (>= 2).
        n_lon: longitude segments (>= 3).

    Returns:
        vertices: ((n_lat - 1) * n_lon + 2, 3) float32.
        faces: (2 * n_lon * (n_lat - 1), 3) int64, outward-facing.
    """
    theta = torch.arange(1, n_lat, dtype=torch.float64) * math.pi / n_lat
    phi = torch.arange(n_lon, dtype=torch.float64) * 2 * math.pi / n_lon
    ring = torch.stack(
        [theta.sin()[:, None] * phi.cos(), theta.cos()[:, None].expand(-1, n_lon), theta.sin()[:, None] * phi.sin()],
        dim=-1,
    ).reshape(-1, 3)
    unit = torch.cat([torch.tensor([[0.0, 1.0, 0.0]], dtype=torch.float64), ring, torch.tensor([[0.0, -1.0, 0.0]], dtype=torch.float64)])
    vertices = (unit * torch.tensor(radii, dtype=torch.float64) + torch.tensor(centre, dtype=torch.float64)).float()
    j = torch.arange(n_lon)
    j_next = (j + 1) % n_lon
    top = torch.stack([torch.zeros_like(j), 1 + j_next, 1 + j], dim=1)
    last = len(unit) - 1
    bottom = torch.stack([torch.full_like(j, last), last - n_lon + j, last - n_lon + j_next], dim=1)
    band = torch.arange(n_lat - 2)[:, None]
    a, b = 1 + band * n_lon + j, 1 + band * n_lon + j_next
    c, d = a + n_lon, b + n_lon
    quads = torch.cat([torch.stack([a, b, c], -1).reshape(-1, 3), torch.stack([b, d, c], -1).reshape(-1, 3)])
    return vertices, torch.cat([top, quads, bottom])


def body_mesh(n_lat: int = 25, n_lon: int = 48) -> tuple[Tensor, Tensor]:
    """Union of the :data:`_BODY_PARTS` ellipsoids, 1.4 m tall, at 3 m depth.

    Returns:
        vertices: (V, 3) float32 camera-frame vertices.
        faces: (6 * 2 * n_lon * (n_lat - 1), 3) int64 (13824 by default).
    """
    vertices, faces, offset = [], [], 0
    for centre, radii in _BODY_PARTS:
        v, f = ellipsoid(centre, radii, n_lat, n_lon)
        vertices.append(v)
        faces.append(f + offset)
        offset += len(v)
    return torch.cat(vertices) + torch.tensor([0.0, 0.0, 3.0]), torch.cat(faces)


def intrinsics(size: int, fov_degrees: float = 28.0) -> Tensor:
    """(3, 3) pinhole K of a square image with the principal point at its centre."""
    focal = 0.5 * size / math.tan(math.radians(fov_degrees) / 2)
    centre = (size - 1) / 2
    return torch.tensor([[focal, 0.0, centre], [0.0, focal, centre], [0.0, 0.0, 1.0]])


def loop_rasterize(vertices: Tensor, faces: Tensor, K: Tensor, height: int, width: int) -> Tensor:
    """Baseline: z-buffer with a Python loop over triangles (vectorised over each box).

    Args:
        vertices: (V, 3) camera-frame vertices, all with z > 0.
        faces: (F, 3) int64.
        K: (3, 3) intrinsics.
        height, width: image size.

    Returns:
        (H, W) int64 face index, -1 for background.
    """
    uv = project_points(vertices, K)
    inv_z = 1.0 / vertices[:, 2]
    zbuf = torch.full((height, width), float("inf"))
    fbuf = torch.full((height, width), -1, dtype=torch.long)
    for index, (i, j, k) in enumerate(faces.tolist()):
        (x0, y0), (x1, y1), (x2, y2) = uv[i].tolist(), uv[j].tolist(), uv[k].tolist()
        area = (x1 - x0) * (y2 - y0) - (y1 - y0) * (x2 - x0)
        u_lo, u_hi = max(math.ceil(min(x0, x1, x2)), 0), min(math.floor(max(x0, x1, x2)), width - 1)
        v_lo, v_hi = max(math.ceil(min(y0, y1, y2)), 0), min(math.floor(max(y0, y1, y2)), height - 1)
        if area == 0 or u_lo > u_hi or v_lo > v_hi:
            continue
        v, u = torch.meshgrid(torch.arange(v_lo, v_hi + 1.0), torch.arange(u_lo, u_hi + 1.0), indexing="ij")
        w0 = ((x2 - x1) * (v - y1) - (y2 - y1) * (u - x1)) / area
        w1 = ((x0 - x2) * (v - y2) - (y0 - y2) * (u - x2)) / area
        w2 = 1.0 - w0 - w1
        inside = (w0 >= 0) & (w1 >= 0) & (w2 >= 0)
        depth = 1.0 / (w0 * inv_z[i] + w1 * inv_z[j] + w2 * inv_z[k])
        closer = inside & (depth < zbuf[v_lo : v_hi + 1, u_lo : u_hi + 1])
        zbuf[v_lo : v_hi + 1, u_lo : u_hi + 1][closer] = depth[closer]
        fbuf[v_lo : v_hi + 1, u_lo : u_hi + 1][closer] = index
    return fbuf


def best_ms(render: Callable[[], object], repeats: int) -> float:
    """Best wall time of ``repeats`` calls after one warm-up, in milliseconds."""
    render()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        render()
        times.append(time.perf_counter() - start)
    return 1e3 * min(times)


def main() -> None:
    """Print the timings."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    torch.set_num_threads(1)
    vertices, faces = body_mesh()
    print(f"body mesh: {len(vertices)} vertices, {len(faces)} triangles; torch {torch.__version__}, 1 thread")
    colors = (vertices - vertices.min(0).values) / (vertices.max(0).values - vertices.min(0).values)
    for size in (256, 512):
        K = intrinsics(size)
        coverage = rasterize(vertices, faces, K, size, size).mask.float().mean().item()
        raster_ms = best_ms(lambda: rasterize(vertices, faces, K, size, size), args.repeats)
        render_ms = best_ms(lambda: render_mesh(vertices, faces, K, size, size, colors), args.repeats)
        print(
            f"{size}x{size} (coverage {coverage:.0%}): rasterize {raster_ms:6.1f} ms/render, "
            f"render_mesh (+ shading) {render_ms:6.1f} ms/render"
        )
    small_vertices, small_faces = body_mesh(n_lat=8, n_lon=16)
    K = intrinsics(128)
    ours = best_ms(lambda: rasterize(small_vertices, small_faces, K, 128, 128), args.repeats)
    loop = best_ms(lambda: loop_rasterize(small_vertices, small_faces, K, 128, 128), max(1, args.repeats // 2))
    print(
        f"small case {len(small_faces)} triangles at 128x128: vectorised {ours:.1f} ms, "
        f"per-triangle loop {loop:.1f} ms, speed-up x{loop / ours:.0f}"
    )


if __name__ == "__main__":
    main()
