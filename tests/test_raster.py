"""Tests for the vectorised z-buffer rasterizer in ``humanbench.synthetic.raster``."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from humanbench.synthetic import raster
from humanbench.synthetic.raster import project_points, rasterize, render_mesh, shade

HEIGHT, WIDTH = 20, 24
K_SMALL = torch.tensor([[20.0, 0.0, 11.5], [0.0, 18.0, 9.5], [0.0, 0.0, 1.0]], dtype=torch.float64)
K_DYADIC = torch.tensor([[8.0, 0.0, 4.0], [0.0, 8.0, 4.0], [0.0, 0.0, 1.0]])
"""Focal length 8 and z = 1: vertices at multiples of 1/8 land exactly on pixel centres."""


# --------------------------------------------------------------------------- reference


def _cross2(ax: float, ay: float, bx: float, by: float) -> float:
    return ax * by - ay * bx


def reference_raster(
    vertices: torch.Tensor, faces: torch.Tensor, K: torch.Tensor, height: int, width: int, tol: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Brute force in float64 with explicit loops over pixels and triangles.

    Screen-space edge functions, depth from linearly interpolated 1/z. Every
    vertex must be in front of the camera. A pixel is *ambiguous* when a
    triangle's edge passes within ``tol`` pixels of its centre, or two faces'
    depths there differ by less than ``tol`` (relative), and that could change
    the winner.

    Returns:
        face: (H, W) int64, -1 for background.
        depth: (H, W) float64, inf for background.
        bary: (H, W, 3) perspective-correct barycentrics.
        ambiguous: (H, W) bool.
    """
    k = K.double().tolist()
    points = vertices.double().tolist()
    uvz = [((k[0][0] * x + k[0][1] * y) / z + k[0][2], k[1][1] * y / z + k[1][2], z) for x, y, z in points]
    face = np.full((height, width), -1, dtype=np.int64)
    depth = np.full((height, width), np.inf)
    bary = np.zeros((height, width, 3))
    ambiguous = np.zeros((height, width), dtype=bool)
    for py in range(height):
        for px in range(width):
            clear, close = [], []
            for index, (i, j, l) in enumerate(faces.tolist()):
                (x0, y0, z0), (x1, y1, z1), (x2, y2, z2) = uvz[i], uvz[j], uvz[l]
                area = _cross2(x1 - x0, y1 - y0, x2 - x0, y2 - y0)
                if area == 0:
                    continue
                w = [
                    _cross2(x2 - x1, y2 - y1, px - x1, py - y1) / area,
                    _cross2(x0 - x2, y0 - y2, px - x2, py - y2) / area,
                    _cross2(x1 - x0, y1 - y0, px - x0, py - y0) / area,
                ]
                lengths = [math.hypot(x2 - x1, y2 - y1), math.hypot(x0 - x2, y0 - y2), math.hypot(x1 - x0, y1 - y0)]
                distance = [wk * abs(area) / length for wk, length in zip(w, lengths)]
                if min(distance) < -tol:
                    continue
                q = [w[0] / z0, w[1] / z1, w[2] / z2]
                entry = (1.0 / sum(q), index, [qk / sum(q) for qk in q])
                (clear if min(distance) > tol else close).append(entry)
            clear.sort(key=lambda e: (e[0], e[1]))
            if clear:
                face[py, px], depth[py, px], bary[py, px] = clear[0][1], clear[0][0], clear[0][2]
            best = clear[0][0] if clear else math.inf
            tied = len(clear) > 1 and clear[1][0] - best <= tol * best
            ambiguous[py, px] = tied or any(entry[0] <= best * (1 + tol) for entry in close)
    return face, depth, bary, ambiguous


def random_scene(seed: int, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
    """Random overlapping triangles over a shared vertex pool: distinct vertex sets, both windings.

    Returns:
        vertices: (16, 3) camera frame, z in [1, 3].
        faces: (22, 3) int64.
    """
    generator = torch.Generator().manual_seed(seed)
    z = 1.0 + 2.0 * torch.rand(16, generator=generator, dtype=torch.float64)
    xy = (torch.rand(16, 2, generator=generator, dtype=torch.float64) * 1.6 - 0.8) * z[:, None]
    triples = torch.combinations(torch.arange(16), 3)[torch.randperm(560, generator=generator)[:22]]
    faces = torch.stack([triple[torch.randperm(3, generator=generator)] for triple in triples])
    return torch.cat([xy, z[:, None]], dim=1).to(dtype), faces


def uv_sphere(n_lat: int = 12, n_lon: int = 16, radius: float = 0.5, depth: float = 2.0) -> tuple[torch.Tensor, torch.Tensor]:
    """Closed UV sphere in front of the camera.

    Returns:
        vertices: ((n_lat - 1) * n_lon + 2, 3) float32.
        faces: (2 * n_lon * (n_lat - 1), 3) int64.
    """
    theta = torch.arange(1, n_lat, dtype=torch.float64) * math.pi / n_lat
    phi = torch.arange(n_lon, dtype=torch.float64) * 2 * math.pi / n_lon
    ring = torch.stack(
        [theta.sin()[:, None] * phi.cos(), theta.cos()[:, None].expand(-1, n_lon), theta.sin()[:, None] * phi.sin()], -1
    ).reshape(-1, 3)
    poles = torch.tensor([[0.0, 1.0, 0.0], [0.0, -1.0, 0.0]], dtype=torch.float64)
    vertices = torch.cat([poles[:1], ring, poles[1:]]) * radius + torch.tensor([0.0, 0.0, depth], dtype=torch.float64)
    j = torch.arange(n_lon)
    nxt = (j + 1) % n_lon
    last = len(vertices) - 1
    band = torch.arange(n_lat - 2)[:, None]
    a, b = 1 + band * n_lon + j, 1 + band * n_lon + nxt
    faces = torch.cat(
        [
            torch.stack([torch.zeros_like(j), 1 + nxt, 1 + j], 1),
            torch.stack([a, b, a + n_lon], -1).reshape(-1, 3),
            torch.stack([b, b + n_lon, a + n_lon], -1).reshape(-1, 3),
            torch.stack([torch.full_like(j, last), last - n_lon + j, last - n_lon + nxt], 1),
        ]
    )
    return vertices.float(), faces


# --------------------------------------------------------------------------- against the reference


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_matches_brute_force_reference(seed: int, dtype: torch.dtype) -> None:
    vertices, faces = random_scene(seed, dtype)
    tol = 1e-9 if dtype == torch.float64 else 1e-4
    ref_face, ref_depth, ref_bary, ambiguous = reference_raster(vertices, faces, K_SMALL, HEIGHT, WIDTH, tol)
    fragments = rasterize(vertices, faces, K_SMALL, HEIGHT, WIDTH)
    sure = ~ambiguous
    assert ambiguous.mean() < 0.1
    assert (ref_face[sure] >= 0).mean() > 0.3
    np.testing.assert_array_equal(fragments.face_index.numpy()[sure], ref_face[sure])
    covered = sure & (ref_face >= 0)
    rtol = 1e-12 if dtype == torch.float64 else 1e-5
    np.testing.assert_allclose(fragments.depth.numpy()[covered], ref_depth[covered], rtol=rtol)
    np.testing.assert_allclose(fragments.bary.numpy()[covered], ref_bary[covered], atol=1e3 * rtol)
    assert torch.isinf(fragments.depth[fragments.face_index < 0]).all()
    assert (fragments.bary[fragments.face_index < 0] == 0).all()


def test_barycentrics_are_perspective_correct() -> None:
    vertices, faces = random_scene(7, torch.float64)
    fragments = rasterize(vertices, faces, K_SMALL, HEIGHT, WIDTH)
    mask = fragments.mask
    corners = vertices[faces[fragments.face_index[mask]]]
    point = (fragments.bary[mask].unsqueeze(-1) * corners).sum(1)
    v, u = mask.nonzero().unbind(1)
    torch.testing.assert_close(project_points(point, K_SMALL), torch.stack([u, v], 1).double())
    torch.testing.assert_close(point[:, 2], fragments.depth[mask])


def test_chunking_and_threads_do_not_change_the_result(monkeypatch: pytest.MonkeyPatch) -> None:
    vertices, faces = uv_sphere()
    K = torch.tensor([[60.0, 0.0, 31.5], [0.0, 60.0, 31.5], [0.0, 0.0, 1.0]])
    whole = rasterize(vertices, faces, K, 64, 64)
    monkeypatch.setattr(raster, "_CHUNK", 97)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        chunked = rasterize(vertices, faces, K, 64, 64)
    finally:
        torch.set_num_threads(threads)
    for name in ("face_index", "depth", "bary"):
        assert torch.equal(getattr(whole, name), getattr(chunked, name)), name


# --------------------------------------------------------------------------- coverage rules


def _projected_area_and_perimeter(vertices: torch.Tensor, K: torch.Tensor) -> tuple[float, float]:
    uv = project_points(vertices.double(), K.double())
    (x0, y0), (x1, y1), (x2, y2) = uv.tolist()
    area = abs(_cross2(x1 - x0, y1 - y0, x2 - x0, y2 - y0)) / 2
    perimeter = sum(float(torch.linalg.norm(uv[i] - uv[(i + 1) % 3])) for i in range(3))
    return area, perimeter


@pytest.mark.parametrize("seed", range(5))
def test_single_triangle_covers_its_area(seed: int) -> None:
    generator = torch.Generator().manual_seed(100 + seed)
    z = 2.0 + torch.rand(3, 1, generator=generator)
    xy = (torch.rand(3, 2, generator=generator) * 1.6 - 0.8) * z
    vertices = torch.cat([xy, z], dim=1)
    faces = torch.tensor([[0, 1, 2]])
    K = torch.tensor([[100.0, 0.0, 99.5], [0.0, 100.0, 99.5], [0.0, 0.0, 1.0]])
    count = int(rasterize(vertices, faces, K, 200, 200).mask.sum())
    area, perimeter = _projected_area_and_perimeter(vertices, K)
    assert area > 500
    assert abs(count - area) <= 0.1 * perimeter + 2


def test_axis_aligned_square_covers_exact_pixels() -> None:
    # Corners on pixel centres (1, 2) and (6, 5): top-left rule keeps u in [1, 6), v in [2, 5).
    corners = torch.tensor([[1, 2], [6, 2], [6, 5], [1, 5]], dtype=torch.float32)
    vertices = torch.cat([(corners - 4.0) / 8.0, torch.ones(4, 1)], dim=1)
    fragments = rasterize(vertices, torch.tensor([[0, 1, 2], [0, 2, 3]]), K_DYADIC, 8, 8)
    expected = torch.zeros(8, 8, dtype=torch.bool)
    expected[2:5, 1:6] = True
    assert torch.equal(fragments.mask, expected)


def _separate_masks(vertices: torch.Tensor, faces: torch.Tensor, K: torch.Tensor, size: int) -> torch.Tensor:
    """(F, size, size) coverage of each face rendered alone."""
    return torch.stack([rasterize(vertices, face[None], K, size, size).mask for face in faces])


@pytest.mark.parametrize("flip_second", [False, True])
@pytest.mark.parametrize("depths", [(1.0, 1.0, 1.0, 1.0), (1.0, 2.0, 1.5, 3.0)])
def test_shared_edge_is_covered_exactly_once(flip_second: bool, depths: tuple[float, ...]) -> None:
    # Quad (0.5, 0.5)..(15.5, 15.5) split along the diagonal; many pixel centres lie on it.
    size = 16
    K = torch.tensor([[8.0, 0.0, 0.0], [0.0, 8.0, 0.0], [0.0, 0.0, 1.0]])
    corners = torch.tensor([[0.5, 0.5], [15.5, 0.5], [15.5, 15.5], [0.5, 15.5]])
    z = torch.tensor(depths).unsqueeze(1)
    vertices = torch.cat([corners / 8.0 * z, z], dim=1)
    second = [0, 3, 2] if flip_second else [0, 2, 3]
    faces = torch.tensor([[0, 1, 2], second])
    per_face = _separate_masks(vertices, faces, K, size)
    assert per_face.sum(0).max() == 1
    assert per_face.any(0)[1:16, 1:16].all() and per_face.sum() == 15 * 15
    assert per_face[0].sum() > 0 and per_face[1].sum() > 0
    together = rasterize(vertices, faces, K, size, size).face_index
    assert torch.equal(together >= 0, per_face.any(0))


@pytest.mark.parametrize("seed", range(3))
def test_shared_edges_of_a_perspective_grid_are_covered_exactly_once(seed: int) -> None:
    # Grid vertices on the rays of pixel centres (1 + 4i, 1 + 4j) at random depths, so
    # many pixel centres lie on edges, but float32 arithmetic is inexact there.
    n, step, size = 6, 4, 26
    generator = torch.Generator().manual_seed(seed)
    ij = torch.stack(torch.meshgrid(torch.arange(n + 1), torch.arange(n + 1), indexing="xy"), -1).reshape(-1, 2)
    K = torch.tensor([[31.3, 0.0, 12.7], [0.0, 29.1, 13.1], [0.0, 0.0, 1.0]], dtype=torch.float64)
    rays = torch.cat([1.0 + step * ij, torch.ones(len(ij), 1)], dim=1).double() @ torch.linalg.inv(K).T
    vertices = (rays * (1.0 + 3.0 * torch.rand(len(ij), 1, generator=generator, dtype=torch.float64))).float()
    a = (torch.arange(n)[:, None] * (n + 1) + torch.arange(n)).reshape(-1)
    b, c, d = a + 1, a + n + 1, a + n + 2
    diagonal = (torch.rand(len(a), generator=generator) < 0.5)[:, None]
    faces = torch.cat(
        [
            torch.where(diagonal, torch.stack([a, b, d], 1), torch.stack([a, b, c], 1)),
            torch.where(diagonal, torch.stack([a, d, c], 1), torch.stack([b, d, c], 1)),
        ]
    )
    flip = (torch.rand(len(faces), generator=generator) < 0.5)[:, None]
    faces = torch.where(flip, faces[:, [0, 2, 1]], faces)
    coverage = _separate_masks(vertices, faces, K.float(), size).sum(0)
    on_vertex = torch.zeros(size, size, dtype=torch.bool)
    on_vertex[1 : 1 + n * step : step, 1 : 1 + n * step : step] = True
    # Pixel centres on the outer border and on vertices may go either way in inexact arithmetic.
    interior = slice(2, n * step + 1)
    assert (coverage[interior, interior] == 1)[~on_vertex[interior, interior]].all()
    assert (coverage[~on_vertex] <= 1).all()


def test_fan_around_a_pixel_centre_is_covered_exactly_once() -> None:
    # 8 triangles around a vertex on pixel centre (8, 8), alternating windings.
    size = 17
    angles = torch.arange(8) * (2 * math.pi / 8)
    rim = torch.stack([8.0 + 6.0 * angles.cos(), 8.0 + 6.0 * angles.sin()], dim=1).round()
    uv = torch.cat([torch.tensor([[8.0, 8.0]]), rim])
    vertices = torch.cat([(uv - 4.0) / 8.0, torch.ones(9, 1)], dim=1)
    faces = torch.tensor([[0, 1 + i, 1 + (i + 1) % 8] if i % 2 else [0, 1 + (i + 1) % 8, 1 + i] for i in range(8)])
    K = torch.tensor([[8.0, 0.0, 4.0], [0.0, 8.0, 4.0], [0.0, 0.0, 1.0]])
    per_face = _separate_masks(vertices, faces, K, size)
    assert per_face.sum(0).max() == 1
    assert per_face[:, 8, 8].sum() == 1
    assert per_face.any(0)[5:12, 5:12].all()


# --------------------------------------------------------------------------- visibility


def test_nearer_triangle_wins_in_either_face_order() -> None:
    near = torch.tensor([[-0.4, -0.4, 2.0], [0.5, -0.4, 2.0], [-0.4, 0.5, 2.0]])
    far = torch.tensor([[-0.9, -0.9, 3.0], [0.9, -0.9, 3.0], [0.0, 0.9, 3.0]])
    vertices = torch.cat([near, far])
    for faces, near_index in ((torch.tensor([[0, 1, 2], [3, 4, 5]]), 0), (torch.tensor([[3, 4, 5], [0, 1, 2]]), 1)):
        fragments = rasterize(vertices, faces, K_SMALL.float(), HEIGHT, WIDTH)
        alone = rasterize(near, torch.tensor([[0, 1, 2]]), K_SMALL.float(), HEIGHT, WIDTH).mask
        assert alone.sum() > 20
        assert (fragments.face_index[alone] == near_index).all()
        assert (fragments.depth[alone] == 2.0).all()
        assert (fragments.face_index[~alone & fragments.mask] == 1 - near_index).all()


def test_equal_depth_goes_to_the_lowest_face_index() -> None:
    vertices = torch.tensor([[-0.5, -0.5, 2.0], [0.6, -0.5, 2.0], [-0.5, 0.6, 2.0]])
    faces = torch.tensor([[0, 2, 1], [0, 1, 2], [1, 2, 0]])
    fragments = rasterize(vertices, faces, K_SMALL.float(), HEIGHT, WIDTH)
    assert fragments.mask.sum() > 20
    assert (fragments.face_index[fragments.mask] == 0).all()


def test_backface_culling_is_optional() -> None:
    # (v1 - v0) x (v2 - v0) of face 0 points to the camera (-z), face 1 away.
    vertices = torch.tensor([[-0.5, -0.5, 2.0], [-0.5, 0.6, 2.0], [0.6, -0.5, 2.0]])
    faces = torch.tensor([[0, 1, 2], [0, 2, 1]])
    for face, culled in ((faces[:1], False), (faces[1:], True)):
        kept = rasterize(vertices, face, K_SMALL.float(), HEIGHT, WIDTH, cull_backfaces=True).mask
        assert kept.any() != culled
        assert rasterize(vertices, face, K_SMALL.float(), HEIGHT, WIDTH).mask.any()


def _clip_to_near(corners: list[list[float]], near: float) -> list[list[float]]:
    """Sutherland-Hodgman clip of a polygon to z >= near."""
    out = []
    for a, b in zip(corners, corners[1:] + corners[:1]):
        if a[2] >= near:
            out.append(a)
        if (a[2] - near) * (b[2] - near) < 0:
            t = (near - a[2]) / (b[2] - a[2])
            out.append([a[i] + t * (b[i] - a[i]) for i in range(3)])
    return out


@pytest.mark.parametrize(
    "corners",
    [
        [[0.6, -0.4, 2.0], [0.6, 0.5, 2.0], [-3.0, 0.0, -1.0]],  # behind vertex would wrap to the right
        [[-0.5, -0.2, -2.0], [0.1, 0.6, 1.5], [0.7, -0.5, -0.5]],  # two vertices behind
        [[0.2, 0.3, 0.0], [-0.6, -0.4, 2.5], [0.4, -0.6, 1.0]],  # one vertex on the camera plane
    ],
)
def test_triangle_partly_behind_the_camera_matches_its_clipped_part(corners: list[list[float]]) -> None:
    near = 0.25
    vertices = torch.tensor(corners, dtype=torch.float64)
    fragments = rasterize(vertices, torch.tensor([[0, 1, 2]]), K_SMALL, HEIGHT, WIDTH, near=near)
    polygon = torch.tensor(_clip_to_near(corners, near), dtype=torch.float64)
    fan = torch.tensor([[0, i, i + 1] for i in range(1, len(polygon) - 1)])
    ref_face, ref_depth, _, ambiguous = reference_raster(polygon, fan, K_SMALL, HEIGHT, WIDTH, 1e-9)
    sure = ~ambiguous
    assert (ref_face[sure] >= 0).sum() > 10
    np.testing.assert_array_equal(fragments.mask.numpy()[sure], ref_face[sure] >= 0)
    covered = sure & (ref_face >= 0)
    np.testing.assert_allclose(fragments.depth.numpy()[covered], ref_depth[covered], rtol=1e-12)
    assert (fragments.depth[fragments.mask] >= near).all()


def test_empty_scenes_are_all_background() -> None:
    behind = torch.tensor([[-0.5, -0.5, -2.0], [0.5, -0.5, -2.0], [0.0, 0.5, -2.0]])
    outside = torch.tensor([[5.0, 5.0, 2.0], [6.0, 5.0, 2.0], [5.0, 6.0, 2.0]])
    one = torch.tensor([[0, 1, 2]])
    for vertices, faces in ((behind, torch.empty(0, 3, dtype=torch.long)), (behind, one), (outside, one)):
        fragments = rasterize(vertices, faces, K_SMALL.float(), HEIGHT, WIDTH)
        assert (fragments.face_index == -1).all()
        assert torch.isinf(fragments.depth).all()
        assert (fragments.bary == 0).all()


# --------------------------------------------------------------------------- projection and shading


def test_projection_matches_pinhole_formula() -> None:
    generator = torch.Generator().manual_seed(3)
    points = torch.rand(50, 3, generator=generator, dtype=torch.float64) + torch.tensor([-0.5, -0.5, 0.5])
    K = torch.tensor([[500.0, 0.7, 320.0], [0.0, 510.0, 240.0], [0.0, 0.0, 1.0]], dtype=torch.float64)
    expected = torch.stack([(K @ p / p[2])[:2] for p in points])
    torch.testing.assert_close(project_points(points, K), expected)
    axis = project_points(torch.tensor([[0.0, 0.0, 3.0]], dtype=torch.float64), K)
    torch.testing.assert_close(axis, K[:2, 2][None])


def test_small_triangle_lands_on_its_pixel() -> None:
    # A triangle around the point that projects to pixel centre (u, v) = (7, 3).
    K = K_SMALL.float()
    centre = torch.tensor([(7 - 11.5) / 20.0 * 2.0, (3 - 9.5) / 18.0 * 2.0, 2.0])
    offsets = torch.tensor([[-0.02, -0.02, 0.0], [0.03, -0.01, 0.0], [0.0, 0.03, 0.0]])
    fragments = rasterize(centre + offsets, torch.tensor([[0, 1, 2]]), K, HEIGHT, WIDTH)
    assert fragments.mask.nonzero().tolist() == [[3, 7]]


def test_intrinsics_are_validated() -> None:
    with pytest.raises(ValueError):
        project_points(torch.ones(2, 3), torch.eye(3)[:2])
    with pytest.raises(ValueError):
        rasterize(torch.ones(3, 3), torch.tensor([[0, 1, 2]]), torch.ones(3, 3), 4, 4)


def test_shade_lambert_values() -> None:
    # Facing the light head-on: full albedo. Tilted 60 degrees: ambient + (1 - ambient) / 2.
    head_on = torch.tensor([[-0.5, -0.5, 2.0], [0.6, -0.5, 2.0], [-0.5, 0.6, 2.0]], dtype=torch.float64)
    tilt = torch.tensor([[1.0, 0.0, 0.0], [0.0, 0.5, -math.sqrt(3) / 2], [0.0, math.sqrt(3) / 2, 0.5]], dtype=torch.float64)
    faces = torch.tensor([[0, 1, 2]])
    colors = torch.full((3, 3), 0.4, dtype=torch.float64)
    for vertices, intensity in ((head_on, 1.0), ((head_on - head_on[0]) @ tilt.T + head_on[0], 0.3 + 0.7 * 0.5)):
        fragments = rasterize(vertices, faces, K_SMALL, HEIGHT, WIDTH)
        for smooth in (True, False):
            image = shade(fragments, vertices, faces, colors, light_dir=(0.0, 0.0, -1.0), ambient=0.3, smooth=smooth)
            assert fragments.mask.sum() > 10
            assert (image[fragments.mask] == round(0.4 * intensity * 255)).all()
            assert (image[~fragments.mask] == 0).all()


def test_render_mesh_mask_and_background() -> None:
    vertices, faces = uv_sphere()
    K = np.array([[60.0, 0.0, 31.5], [0.0, 60.0, 31.5], [0.0, 0.0, 1.0]])
    background = np.zeros((64, 64, 3), dtype=np.uint8)
    background[..., 2] = 200
    colors = torch.rand(len(vertices), 3, generator=torch.Generator().manual_seed(0))
    image, mask = render_mesh(vertices.numpy(), faces.numpy(), K, 64, 64, colors, background)
    fragments = rasterize(vertices, faces, torch.as_tensor(K), 64, 64)
    assert image.dtype == np.uint8 and image.shape == (64, 64, 3)
    assert mask.dtype == np.bool_ and 0.1 < mask.mean() < 0.9
    np.testing.assert_array_equal(mask, fragments.face_index.numpy() >= 0)
    np.testing.assert_array_equal(image[~mask], background[~mask])
    assert (image[mask] != background[mask]).any(axis=-1).mean() > 0.9


def test_renders_are_byte_identical() -> None:
    vertices, faces = uv_sphere(n_lat=20, n_lon=30)
    K = torch.tensor([[110.0, 0.0, 63.5], [0.0, 110.0, 63.5], [0.0, 0.0, 1.0]])
    colors = (vertices - vertices.min(0).values) / (vertices.max(0).values - vertices.min(0).values)
    first = render_mesh(vertices, faces, K, 128, 128, colors)
    second = render_mesh(vertices.clone(), faces.clone(), K.clone(), 128, 128, colors.clone())
    assert first[0].tobytes() == second[0].tobytes()
    assert first[1].tobytes() == second[1].tobytes()
