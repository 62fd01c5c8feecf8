"""Evaluation-time masks, crops, background fill and quantisation of the avatar rendering protocols.

All functions are batched over N images and run on any device. Cameras follow the schema: OpenCV
pinhole ``K`` (N, 3, 3), ``X_cam = R @ X + t`` with ``R`` (N, 3, 3), ``t`` (N, 3) mapping the frame the
3D box is given in to the camera; pixel centres sit at integer coordinates (``protocols.md`` §7).

Three box masks, one per family of source code:

- :func:`mask_at_box` (Neural Body, ``if_nerf_data_utils.get_near_far`` at test time): a pixel is in
  when the ray through its centre passes the slab test of the axis-aligned box (``near < far``).
- :func:`ray_box_two_hits` (HumanNeRF/MonoHuman ``camera_util.rays_intersect_3d_bbox``): the box is
  grown by 1 cm, and a pixel is in when its ray meets exactly two of the six face planes inside the box.
- :func:`projected_box_mask` (GauHuman ``get_bound_2d_mask``): the 8 corners are projected, rounded to
  whole pixels, and the six projected faces are filled as closed polygons.
"""

from __future__ import annotations

import torch
from torch import Tensor

# Corner k of a box has x from bit 2, y from bit 1 and z from bit 0 of k (min = 0, max = 1),
# Neural Body's ``get_bound_corners`` order; the six faces as corner cycles (``get_bound_2d_mask``).
BOX_FACES = ((0, 1, 3, 2), (4, 5, 7, 6), (0, 1, 5, 4), (2, 3, 7, 6), (0, 2, 6, 4), (1, 3, 7, 5))
HUMANNERF_BOX_GROWTH = 0.01  # metres added on every side inside rays_intersect_3d_bbox
HUMANNERF_HIT_EPS = 1e-6


def padded_bounds(points: Tensor, padding: tuple[float, float, float]) -> Tensor:
    """Axis-aligned bounds of each point set, grown by ``padding`` per axis on both sides.

    Args:
        points: (N, V, 3).
        padding: metres subtracted from the minimum and added to the maximum, per axis.

    Returns:
        (N, 2, 3): ``[:, 0]`` minimum corner, ``[:, 1]`` maximum corner.
    """
    pad = torch.as_tensor(padding, dtype=points.dtype, device=points.device)
    return torch.stack([points.amin(dim=1) - pad, points.amax(dim=1) + pad], dim=1)


def box_corners(bounds: Tensor) -> Tensor:
    """(N, 2, 3) bounds -> (N, 8, 3) corners in Neural Body's order (see :data:`BOX_FACES`)."""
    bits = torch.tensor([[(k >> 2) & 1, (k >> 1) & 1, k & 1] for k in range(8)], device=bounds.device)
    return torch.gather(bounds, 1, bits[None].expand(len(bounds), 8, 3))


def pixel_rays(K: Tensor, R: Tensor, t: Tensor, height: int, width: int) -> tuple[Tensor, Tensor]:
    """Camera centre and (unnormalised) ray direction through every pixel centre, in the box frame.

    Args:
        K, R: (N, 3, 3); t: (N, 3).

    Returns:
        origins (N, 3) ``−Rᵀt`` and directions (N, H, W, 3) ``Rᵀ K⁻¹ [x, y, 1]``.
    """
    ys, xs = torch.meshgrid(torch.arange(height, dtype=K.dtype, device=K.device),
                            torch.arange(width, dtype=K.dtype, device=K.device), indexing="ij")
    pixels = torch.stack([xs, ys, torch.ones_like(xs)], dim=-1)  # (H, W, 3)
    camera_dirs = torch.einsum("nij,hwj->nhwi", torch.linalg.inv(K), pixels)
    directions = torch.einsum("nji,nhwj->nhwi", R, camera_dirs)
    origins = -torch.einsum("nji,nj->ni", R, t)
    return origins, directions


def mask_at_box(bounds: Tensor, K: Tensor, R: Tensor, t: Tensor, height: int, width: int) -> Tensor:
    """Neural Body's ``mask_at_box``: pixels whose ray passes the slab test of the box.

    Directions are normalised and components in (−1e-10, 1e-5) are set to 1e-5, then those in
    (−1e-5, 1e-10) to −1e-5, as ``get_near_far`` does; ``near < far`` is the test (no ``far > 0``).

    Args:
        bounds: (N, 2, 3) box in the frame ``R, t`` maps to the camera.
        K, R: (N, 3, 3); t: (N, 3).

    Returns:
        (N, H, W) bool.
    """
    origins, directions = pixel_rays(K, R, t, height, width)
    view = directions / torch.linalg.vector_norm(directions, dim=-1, keepdim=True)
    view = torch.where((view < 1e-5) & (view > -1e-10), torch.full_like(view, 1e-5), view)
    view = torch.where((view > -1e-5) & (view < 1e-10), torch.full_like(view, -1e-5), view)
    to_min = (bounds[:, None, None, 0] - origins[:, None, None]) / view
    to_max = (bounds[:, None, None, 1] - origins[:, None, None]) / view
    near = torch.minimum(to_min, to_max).amax(dim=-1)
    far = torch.maximum(to_min, to_max).amin(dim=-1)
    return near < far


def ray_box_two_hits(bounds: Tensor, K: Tensor, R: Tensor, t: Tensor, height: int, width: int) -> Tensor:
    """HumanNeRF/MonoHuman's ray mask: rays meeting exactly two face planes inside the box grown by 1 cm.

    Direction components with ``|d| < 1e-5`` are set to +1e-5 (unnormalised directions, as the source);
    an intersection point counts when it lies within the grown box up to 1e-6 on every axis.

    Args:
        bounds: (N, 2, 3) box in the frame ``R, t`` maps to the camera.
        K, R: (N, 3, 3); t: (N, 3).

    Returns:
        (N, H, W) bool.
    """
    origins, directions = pixel_rays(K, R, t, height, width)
    grown = bounds + torch.tensor([-HUMANNERF_BOX_GROWTH, HUMANNERF_BOX_GROWTH], dtype=bounds.dtype,
                                  device=bounds.device)[None, :, None]
    directions = torch.where(directions.abs() < 1e-5, torch.full_like(directions, 1e-5), directions)
    low = grown[:, None, None, 0] - HUMANNERF_HIT_EPS
    high = grown[:, None, None, 1] + HUMANNERF_HIT_EPS
    hits = torch.zeros(directions.shape[:3], dtype=torch.int64, device=directions.device)
    for side in range(2):
        for axis in range(3):
            step = (grown[:, side, axis] - origins[:, axis])[:, None, None] / directions[..., axis]
            point = step[..., None] * directions + origins[:, None, None]
            hits += ((point >= low) & (point <= high)).all(dim=-1)
    return hits == 2


def projected_box_mask(bounds: Tensor, K: Tensor, R: Tensor, t: Tensor, height: int, width: int) -> Tensor:
    """GauHuman's ``bound_mask``: the six projected faces of the box, corners rounded, filled closed.

    Corners are rounded half-to-even (``np.round``); a pixel is in when it lies inside or on the
    border of a projected face quadrilateral, the closed filling ``cv2.fillPoly`` does.

    Args:
        bounds: (N, 2, 3) box in the frame ``R, t`` maps to the camera.
        K, R: (N, 3, 3); t: (N, 3).

    Returns:
        (N, H, W) bool.
    """
    camera = torch.einsum("nij,nkj->nki", R, box_corners(bounds)) + t[:, None]
    image = torch.einsum("nij,nkj->nki", K, camera)
    corners = torch.round(image[..., :2] / image[..., 2:]).to(torch.float64)  # (N, 8, 2) whole pixels
    ys, xs = torch.meshgrid(torch.arange(height, dtype=torch.float64, device=bounds.device),
                            torch.arange(width, dtype=torch.float64, device=bounds.device), indexing="ij")
    mask = torch.zeros((len(bounds), height, width), dtype=torch.bool, device=bounds.device)
    for face in BOX_FACES:
        quad = corners[:, list(face)]  # (N, 4, 2)
        low, high = quad.amin(dim=1), quad.amax(dim=1)
        inside = ((xs >= low[:, None, None, 0]) & (xs <= high[:, None, None, 0])
                  & (ys >= low[:, None, None, 1]) & (ys <= high[:, None, None, 1]))
        nonneg, nonpos = inside.clone(), inside.clone()
        for k in range(4):
            (ax, ay), (bx, by) = quad[:, k].T, quad[:, (k + 1) % 4].T
            cross = ((bx - ax)[:, None, None] * (ys - ay[:, None, None])
                     - (by - ay)[:, None, None] * (xs - ax[:, None, None]))
            nonneg &= cross >= 0
            nonpos &= cross <= 0
        mask |= nonneg | nonpos
    return mask


def mask_bbox(mask: Tensor, *, include_last: bool) -> Tensor:
    """Bounding rectangle of each mask as ``x0, y0, x1, y1`` with ``x1, y1`` exclusive.

    Args:
        mask: (N, H, W) bool, each with at least one True pixel.
        include_last: True: the rectangle covers the last row/column of the mask (``cv2.boundingRect``,
            Neural Body); False: it stops before them (HUGS slices ``[min:max]`` with the max index).

    Returns:
        (N, 4) int64.
    """
    rows, cols = mask.any(dim=2), mask.any(dim=1)  # (N, H), (N, W)
    empty = ~rows.any(dim=1)
    if bool(empty.any()):
        raise ValueError(f"mask_bbox: mask(s) {torch.nonzero(empty).flatten().tolist()[:5]} are empty")
    first = lambda hit: hit.to(torch.uint8).argmax(dim=1)  # noqa: E731
    last = lambda hit: hit.shape[1] - 1 - hit.flip(1).to(torch.uint8).argmax(dim=1)  # noqa: E731
    end = int(include_last)
    return torch.stack([first(cols), first(rows), last(cols) + end, last(rows) + end], dim=1)


def fill_outside(images: Tensor, keep: Tensor, value: float) -> Tensor:
    """Set every pixel outside ``keep`` to ``value`` (background fill: 0 black, 1 white).

    Args:
        images: (N, C, H, W).
        keep: (N, H, W) bool.

    Returns:
        (N, C, H, W).
    """
    return torch.where(keep[:, None], images, torch.full_like(images, value))


def quantize_uint8(images: Tensor) -> Tensor:
    """Quantise [0, 1] images to 8 bits by truncation and back (values ``k / 255``).

    ``floor(255·clip(x, 0, 1)) / 255``, as ``numpy.astype(uint8)`` truncates in MonoHuman's
    ``to_8b_image``. Images decoded from 8-bit files are unchanged (``255·(k/255)`` is exactly k).

    Args:
        images: (N, C, H, W) float.

    Returns:
        (N, C, H, W), same dtype.
    """
    return torch.floor(images.clamp(0.0, 1.0) * 255.0) / 255.0
