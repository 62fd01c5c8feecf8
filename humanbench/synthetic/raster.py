"""Vectorised CPU z-buffer rasterizer for the synthetic world.

Camera convention (OpenCV pinhole)
----------------------------------
Points are in the camera frame: x right, y down, z forward (into the scene).
``K`` is a 3x3 intrinsic matrix whose last row is ``[0, 0, 1]``; a point ``p``
projects to ``(u, v) = (K @ p)[:2] / p_z``. Pixel centres sit at integer
coordinates: pixel ``(u, v)`` (column ``u``, row ``v``) covers
``[u - 0.5, u + 0.5) x [v - 0.5, v + 0.5)`` and is sampled at its centre, so an
image of ``width x height`` spans ``[-0.5, width - 0.5) x [-0.5, height - 0.5)``.

Algorithm
---------
Every triangle ``(v0, v1, v2)`` is tested against the *viewing ray* of each
pixel, ``d(u, v) = K^-1 [u, v, 1]`` (so ``d_z = 1``), instead of against its
2D projection. For the edge opposite vertex ``k`` the edge normal
``n_k = v_i x v_j`` gives the edge function ``E_k(u, v) = n_k . d(u, v)``,
which is linear in ``(u, v)``. The ray hits the triangle at
``t = det(v0, v1, v2) / sum_k E_k`` with perspective-correct barycentrics
``E_k / sum_k E_k``; the hit's camera depth is ``z = t`` (evaluated as
``det / (N . d)`` with ``N = (v1 - v0) x (v2 - v0)``, the same value with less
cancellation). This is 2D homogeneous
rasterization: triangles that cross the camera plane need no clipping and
cannot wrap around, and only hits with ``z >= near`` are kept.

A pixel centre lying exactly on an edge (``E_k == 0``) belongs to the
triangle whose interior lies to the right of that edge (``+u``) or, for a
horizontal edge, below it (``+v``): the top-left rule of Direct3D. Edge
normals are computed once per *undirected* mesh edge (from the vertex with
the lower index), so two triangles sharing an edge see exactly opposite edge
functions and the rule assigns every pixel on the edge to exactly one of
them. Both windings render unless ``cull_backfaces`` is set. (A pixel centre
that coincides with a shared *vertex* is covered exactly once only when the
arithmetic there is exact, e.g. dyadic coordinates; otherwise rounding may
leave it to zero or two of the faces around the vertex.)

Candidate (triangle, pixel) pairs come from each triangle's pixel bounding
box (of its part with ``z >= near``) and are enumerated in bounded chunks;
the z-buffer keeps the smallest depth (``scatter_reduce`` with ``amin``) and
equal depths go to the lowest face index, so results are deterministic.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

__all__ = ["Fragments", "project_points", "rasterize", "render_mesh", "shade", "vertex_normals"]

_CHUNK = 1 << 19
"""Soft cap on the (triangle, pixel) candidates evaluated at once."""

_BBOX_MARGIN = 1.0 / 64.0
"""Pixels by which bounding boxes grow so rounding never drops an edge pixel."""

_DEFAULT_LIGHT = (-0.3, -0.4, -1.0)
"""Direction towards the light, camera frame: from upper left, behind the camera."""


@dataclass(frozen=True)
class Fragments:
    """Per-pixel result of :func:`rasterize`.

    Attributes:
        face_index: (H, W) int64 index of the visible face, -1 for background.
        depth: (H, W) float camera-frame z of the visible surface, +inf for
            background.
        bary: (H, W, 3) float perspective-correct barycentrics of the visible
            face's vertices (zeros for background).
    """

    face_index: Tensor
    depth: Tensor
    bary: Tensor

    @property
    def mask(self) -> Tensor:
        """(H, W) bool foreground mask."""
        return self.face_index >= 0


@dataclass(frozen=True)
class _Triangles:
    """Per-triangle set-up for the triangles that may cover a pixel (T of them).

    Attributes:
        face: (T,) int64 index into the mesh's faces.
        edges: (T, 3, 3) edge functions in pixel space, ``[:, :, k]`` holding
            ``(a, b, c)`` of ``E_k(u, v) = a u + b v + c``, oriented so that the
            interior is ``E_k > 0``.
        ties: (T, 3) bool, True where a pixel centre with ``E_k == 0`` is inside.
        plane: (T, 3) ``(a, b, c)`` with ``a u + b v + c = |det| / z`` on the
            triangle's plane.
        det: (T,) ``|det(v0, v1, v2)|``.
        box: (T, 3) int64 ``(u0, v0, box width)`` of the pixel bounding box.
        counts: (T,) int64 number of pixels in the bounding box (all > 0).
    """

    face: Tensor
    edges: Tensor
    ties: Tensor
    plane: Tensor
    det: Tensor
    box: Tensor
    counts: Tensor


def _check_intrinsics(K: Tensor) -> None:
    """Raise ValueError unless K is a (3, 3) pinhole matrix with last row [0, 0, 1]."""
    if K.shape != (3, 3):
        raise ValueError(f"K must be (3, 3), got {tuple(K.shape)}")
    if not torch.equal(K[2].double(), torch.tensor([0.0, 0.0, 1.0], dtype=torch.float64)):
        raise ValueError(f"K's last row must be [0, 0, 1], got {K[2].tolist()}")


def project_points(points_cam: Tensor, K: Tensor) -> Tensor:
    """Project camera-frame points to pixel coordinates (OpenCV pinhole).

    Args:
        points_cam: (N, 3) points, x right, y down, z forward; z must be > 0.
        K: (3, 3) intrinsics with last row [0, 0, 1].

    Returns:
        (N, 2) ``(u, v)`` = ``(K @ p)[:2] / p_z``; pixel centres are integers.
    """
    _check_intrinsics(K)
    homogeneous = points_cam @ K.to(points_cam.dtype).T
    return homogeneous[:, :2] / homogeneous[:, 2:3]


def _rows_times(vectors: Tensor, matrix: Tensor) -> Tensor:
    """Row vectors times a matrix with elementwise ops only.

    Unlike a BLAS matmul, the result of a negated input is exactly the
    negated result, which shared-edge ownership relies on.

    Args:
        vectors: (..., 3) row vectors.
        matrix: (3, 3).

    Returns:
        (..., 3) ``vectors @ matrix``.
    """
    return (vectors[..., 0:1] * matrix[0] + vectors[..., 1:2] * matrix[1]) + vectors[..., 2:3] * matrix[2]


def _edge_normals(vertices: Tensor, faces: Tensor) -> Tensor:
    """Camera-space edge normals ``n_k = v_i x v_j`` (k opposite vertex k).

    Each undirected edge is computed from its lower-index vertex, so the two
    faces sharing it get bit-identical or exactly negated normals.

    Args:
        vertices: (V, 3) camera-frame vertices.
        faces: (F, 3) int64 vertex indices.

    Returns:
        (F, 3, 3) normals, ``[:, k]`` for the edge opposite vertex k.
    """
    start, end = faces[:, [1, 2, 0]], faces[:, [2, 0, 1]]
    low, high = torch.minimum(start, end), torch.maximum(start, end)
    p_low = vertices[low]
    normals = torch.linalg.cross(p_low, vertices[high] - p_low, dim=-1)
    return torch.where((start < end).unsqueeze(-1), normals, -normals)


def _visible_part_points(corners: Tensor, near: float) -> tuple[Tensor, Tensor]:
    """Points spanning the part of each triangle with ``z >= near``.

    Args:
        corners: (F, 3, 3) triangle vertices, camera frame.
        near: near-plane depth.

    Returns:
        points: (F, 6, 3) the 3 vertices then the 3 edge/near-plane crossings.
        valid: (F, 6) bool, which of them bound the visible part.
    """
    following = corners.roll(-1, dims=1)
    z0, z1 = corners[..., 2], following[..., 2]
    crossing = (z0 - near) * (z1 - near) < 0
    t = torch.where(crossing, (near - z0) / torch.where(crossing, z1 - z0, 1.0), 0.0)
    on_plane = corners + t.unsqueeze(-1) * (following - corners)
    return torch.cat([corners, on_plane], dim=1), torch.cat([z0 >= near, crossing], dim=1)


def _pixel_boxes(corners: Tensor, K: Tensor, height: int, width: int, near: float) -> Tensor:
    """Inclusive pixel bounding boxes of the visible parts, clipped to the image.

    Args:
        corners: (F, 3, 3) triangle vertices, camera frame.
        K: (3, 3) intrinsics, same dtype as corners.
        height, width: image size in pixels.
        near: near-plane depth.

    Returns:
        (F, 4) int64 ``(u_min, v_min, u_max, v_max)``; empty when max < min.
    """
    points, valid = _visible_part_points(corners, near)
    z = torch.where(valid, points[..., 2], 1.0).unsqueeze(-1)
    uv = _rows_times(points / z, K.T)[..., :2]
    inf = torch.tensor(float("inf"), dtype=uv.dtype)
    low = torch.where(valid.unsqueeze(-1), uv, inf).amin(dim=1) - _BBOX_MARGIN
    high = torch.where(valid.unsqueeze(-1), uv, -inf).amax(dim=1) + _BBOX_MARGIN
    limit = torch.tensor([width, height], dtype=uv.dtype)
    low = torch.minimum(low.clamp(min=0.0), limit).ceil().long()
    high = torch.minimum(high.clamp(min=-1.0), limit - 1).floor().long()
    return torch.cat([low, high], dim=1)


def _setup_triangles(
    vertices: Tensor, faces: Tensor, K: Tensor, height: int, width: int, near: float, cull_backfaces: bool
) -> _Triangles:
    """Edge functions, depth planes and bounding boxes of the potentially visible faces.

    Args:
        vertices: (V, 3) camera-frame vertices.
        faces: (F, 3) int64 vertex indices.
        K: (3, 3) intrinsics, same dtype as vertices.
        height, width: image size.
        near: near-plane depth.
        cull_backfaces: drop faces whose ``(v1 - v0) x (v2 - v0)`` points away
            from the camera.

    Returns:
        The set-up of the T faces with a non-empty box and a non-degenerate plane.
    """
    corners = vertices[faces]
    normal = torch.linalg.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0], dim=-1)
    det = (normal * corners[:, 0]).sum(-1)
    box = _pixel_boxes(corners, K, height, width, near)
    counts = (box[:, 2] - box[:, 0] + 1).clamp(min=0) * (box[:, 3] - box[:, 1] + 1).clamp(min=0)
    keep = (counts > 0) & ((det < 0) if cull_backfaces else (det != 0))
    face = keep.nonzero().squeeze(1)
    K_inv = torch.linalg.inv(K.double()).to(vertices.dtype)
    sign = det[face].sign().view(-1, 1, 1)
    edges = (_rows_times(_edge_normals(vertices, faces[face]), K_inv) * sign).transpose(1, 2).contiguous()
    plane = _rows_times(normal[face], K_inv) * sign[:, 0]
    ties = (edges[:, 0] > 0) | ((edges[:, 0] == 0) & (edges[:, 1] > 0))
    box = box[face]
    box_size = torch.stack([box[:, 0], box[:, 1], box[:, 2] - box[:, 0] + 1], dim=1)
    return _Triangles(face, edges, ties, plane, det[face].abs(), box_size, counts[face])


def _chunk_bounds(counts: Tensor) -> list[tuple[int, int]]:
    """Split consecutive triangles into runs of about ``_CHUNK`` candidates.

    Args:
        counts: (T,) int64 candidates per triangle.

    Returns:
        ``[(first, stop), ...]`` triangle ranges covering ``0..T``.
    """
    chunk_of = (counts.cumsum(0) - counts) // _CHUNK
    sizes = torch.unique_consecutive(chunk_of, return_counts=True)[1].tolist()
    stops = np.cumsum(sizes).tolist()
    return list(zip([0, *stops[:-1]], stops))


def _edge_values(edges: Tensor, u: Tensor, v: Tensor) -> Tensor:
    """Evaluate edge (or plane) functions at pixel centres.

    Args:
        edges: (N, 3, ...) ``(a, b, c)`` coefficients.
        u, v: (N,) pixel coordinates, same dtype as edges.

    Returns:
        (N, ...) ``a u + b v + c``.
    """
    shape = (-1,) + (1,) * (edges.dim() - 2)
    return (edges[:, 0] * u.view(shape) + edges[:, 1] * v.view(shape)) + edges[:, 2]


def _chunk_fragments(tris: _Triangles, first: int, stop: int, width: int, near: float) -> tuple[Tensor, Tensor, Tensor]:
    """Covered (pixel, depth, face) fragments of triangles ``first..stop``.

    Args:
        tris: triangle set-up.
        first, stop: range of triangles (rows of ``tris``) to rasterize.
        width: image width, for flat pixel indices.
        near: near-plane depth.

    Returns:
        pixel: (M,) int64 flat pixel index ``v * width + u``.
        depth: (M,) camera-frame z (>= near).
        face: (M,) int64 mesh face index.
    """
    counts = tris.counts[first:stop]
    rows = torch.arange(first, stop).repeat_interleave(counts)
    box = tris.box.index_select(0, rows)
    offset = torch.arange(rows.numel()) - (counts.cumsum(0) - counts).repeat_interleave(counts)
    row_in_box = torch.div(offset, box[:, 2], rounding_mode="floor")
    u = box[:, 0] + offset - row_in_box * box[:, 2]
    v = box[:, 1] + row_in_box
    dtype = tris.edges.dtype
    values = _edge_values(_gather(tris.edges, rows), u.to(dtype), v.to(dtype))
    hit = (values >= 0).all(dim=1).nonzero().squeeze(1)
    rows, u, v, values = rows[hit], u[hit], v[hit], values[hit]
    rows, u, v = _apply_tie_rule(tris.ties.index_select(0, rows), values, rows, u, v)
    depth = tris.det[rows] / _edge_values(_gather(tris.plane, rows), u.to(dtype), v.to(dtype))
    front = (depth >= near) & torch.isfinite(depth)
    return (v * width + u)[front], depth[front], tris.face[rows[front]]


def _gather(table: Tensor, rows: Tensor) -> Tensor:
    """``table[rows]`` through a flat ``index_select`` (faster on CPU).

    Args:
        table: (T, ...) per-triangle data.
        rows: (N,) int64 row indices.

    Returns:
        (N, ...) gathered rows.
    """
    return table.reshape(table.shape[0], -1).index_select(0, rows).view(-1, *table.shape[1:])


def _apply_tie_rule(ties: Tensor, values: Tensor, *columns: Tensor) -> tuple[Tensor, ...]:
    """Drop candidates lying exactly on an edge that the top-left rule excludes.

    Args:
        ties: (N, 3) bool, whether each edge owns pixel centres on it.
        values: (N, 3) edge functions, all >= 0.
        columns: (N,) tensors to filter alongside.

    Returns:
        The filtered columns.
    """
    keep = ~((values == 0) & ~ties).any(dim=1)
    return tuple(column[keep] for column in columns)


def _barycentrics(tris_edges: Tensor, u: Tensor, v: Tensor) -> Tensor:
    """Perspective-correct barycentrics from oriented edge functions.

    Args:
        tris_edges: (P, 3, 3) oriented edge functions of each pixel's face.
        u, v: (P,) pixel coordinates.

    Returns:
        (P, 3) barycentrics summing to 1.
    """
    values = _edge_values(tris_edges, u, v)
    return values / values.sum(dim=1, keepdim=True)


@torch.no_grad()
def rasterize(
    vertices_cam: Tensor,
    faces: Tensor,
    K: Tensor,
    height: int,
    width: int,
    *,
    near: float = 1e-3,
    cull_backfaces: bool = False,
) -> Fragments:
    """Rasterize a triangle mesh with a z-buffer (see the module doc for conventions).

    Not differentiable: the outputs carry no gradient.

    Args:
        vertices_cam: (V, 3) float32/float64 camera-frame vertices; the
            computation runs in this dtype.
        faces: (F, 3) integer vertex indices; either winding renders.
        K: (3, 3) intrinsics with last row [0, 0, 1].
        height, width: image size in pixels.
        near: surfaces closer than this depth are clipped away.
        cull_backfaces: if True, drop faces whose ``(v1 - v0) x (v2 - v0)``
            normal points away from the camera.

    Returns:
        Fragments with (H, W) face_index, (H, W) depth and (H, W, 3) bary.
    """
    _check_intrinsics(K)
    dtype = vertices_cam.dtype
    faces = faces.long()
    tris = _setup_triangles(vertices_cam, faces, K.to(dtype), height, width, near, cull_backfaces)
    parts = [_chunk_fragments(tris, first, stop, width, near) for first, stop in _chunk_bounds(tris.counts)]
    pixel, depth, face = (torch.cat(column) for column in zip(*parts)) if parts else _no_fragments(dtype)
    n_pixels = height * width
    zbuf = torch.full((n_pixels,), float("inf"), dtype=dtype).scatter_reduce(0, pixel, depth, "amin")
    winner = depth == zbuf[pixel]
    no_face = faces.shape[0]
    fbuf = torch.full((n_pixels,), no_face, dtype=torch.long)
    fbuf = fbuf.scatter_reduce(0, pixel[winner], face[winner], "amin")
    covered = (fbuf < no_face).nonzero().squeeze(1)
    row_of_face = torch.zeros(no_face, dtype=torch.long)
    row_of_face[tris.face] = torch.arange(tris.face.numel())
    u, v = (covered % width).to(dtype), torch.div(covered, width, rounding_mode="floor").to(dtype)
    bary = torch.zeros((n_pixels, 3), dtype=dtype)
    bary[covered] = _barycentrics(tris.edges[row_of_face[fbuf[covered]]], u, v)
    fbuf[fbuf == no_face] = -1
    return Fragments(fbuf.view(height, width), zbuf.view(height, width), bary.view(height, width, 3))


def _no_fragments(dtype: torch.dtype) -> tuple[Tensor, Tensor, Tensor]:
    """Empty (pixel, depth, face) fragment columns."""
    return torch.empty(0, dtype=torch.long), torch.empty(0, dtype=dtype), torch.empty(0, dtype=torch.long)


def vertex_normals(vertices: Tensor, faces: Tensor) -> Tensor:
    """Area-weighted unit vertex normals.

    Args:
        vertices: (V, 3).
        faces: (F, 3) int64.

    Returns:
        (V, 3) unit normals (zero for unused vertices).
    """
    corners = vertices[faces]
    face_normal = torch.linalg.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0], dim=-1)
    summed = torch.zeros_like(vertices).index_add_(0, faces.reshape(-1), face_normal.repeat_interleave(3, dim=0))
    return torch.nn.functional.normalize(summed, dim=-1)


def _as_uint8_image(image: Tensor) -> Tensor:
    """(H, W, 3) uint8 copy of a uint8 or [0, 1] float image."""
    if image.dtype == torch.uint8:
        return image.clone()
    return (image.clamp(0.0, 1.0) * 255.0).round().to(torch.uint8)


def shade(
    fragments: Fragments,
    vertices_cam: Tensor,
    faces: Tensor,
    vertex_colors: Tensor,
    *,
    light_dir: tuple[float, float, float] = _DEFAULT_LIGHT,
    ambient: float = 0.3,
    smooth: bool = True,
    background: Tensor | None = None,
) -> Tensor:
    """Two-sided Lambert shading of rasterized fragments.

    Normals are turned towards the camera before lighting, so inside-out or
    back-facing surfaces are lit like front faces.

    Args:
        fragments: output of :func:`rasterize` for this mesh.
        vertices_cam: (V, 3) camera-frame vertices.
        faces: (F, 3) integer vertex indices.
        vertex_colors: (V, 3) float albedo in [0, 1], interpolated with the
            perspective-correct barycentrics.
        light_dir: camera-frame direction from the surface towards the light.
        ambient: intensity of unlit surfaces; lit ones reach 1.
        smooth: interpolate area-weighted vertex normals (True) or use face
            normals (False).
        background: (H, W, 3) uint8, or float in [0, 1]; black if None.

    Returns:
        (H, W, 3) uint8 image.
    """
    height, width = fragments.face_index.shape
    dtype = vertices_cam.dtype
    faces = faces.long()
    image = torch.zeros((height, width, 3), dtype=torch.uint8) if background is None else _as_uint8_image(background)
    mask = fragments.mask
    face = fragments.face_index[mask]
    bary = fragments.bary[mask].unsqueeze(-1)
    corner_ids = faces[face]
    if smooth:
        normal = (vertex_normals(vertices_cam, faces)[corner_ids] * bary).sum(1)
    else:
        corners = vertices_cam[corner_ids]
        normal = torch.linalg.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0], dim=-1)
    normal = torch.nn.functional.normalize(normal, dim=-1)
    point = (vertices_cam[corner_ids] * bary).sum(1)
    normal = torch.where(((normal * point).sum(-1, keepdim=True) > 0), -normal, normal)
    light = torch.nn.functional.normalize(torch.tensor(light_dir, dtype=dtype), dim=0)
    intensity = ambient + (1.0 - ambient) * (normal @ light).clamp(min=0.0)
    albedo = (vertex_colors.to(dtype)[corner_ids] * bary).sum(1)
    image[mask] = _as_uint8_image(albedo * intensity.unsqueeze(-1))
    return image


def render_mesh(
    vertices_cam: Tensor | np.ndarray,
    faces: Tensor | np.ndarray,
    K: Tensor | np.ndarray,
    height: int,
    width: int,
    vertex_colors: Tensor | np.ndarray,
    background: Tensor | np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Rasterize and shade a mesh in one call.

    Args:
        vertices_cam: (V, 3) camera-frame vertices (float32 unless float64 given).
        faces: (F, 3) integer vertex indices.
        K: (3, 3) intrinsics.
        height, width: image size.
        vertex_colors: (V, 3) float albedo in [0, 1].
        background: (H, W, 3) uint8 or [0, 1] float image; black if None.

    Returns:
        image: (H, W, 3) uint8 numpy array.
        mask: (H, W) bool numpy array, True where the mesh is visible.
    """
    vertices = torch.as_tensor(vertices_cam)
    vertices = vertices if vertices.dtype == torch.float64 else vertices.float()
    faces_t = torch.as_tensor(faces).long()
    fragments = rasterize(vertices, faces_t, torch.as_tensor(K), height, width)
    bg = None if background is None else torch.as_tensor(background)
    image = shade(fragments, vertices, faces_t, torch.as_tensor(vertex_colors), background=bg)
    return image.numpy(), fragments.mask.numpy()
