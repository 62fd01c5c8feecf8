"""GT preparation of the avatar protocols: a stored ZJU-MoCap sample -> the image a protocol scores.

Every ZJU-MoCap source undistorts the original 1024² image with the camera's K, D, resamples it to
512² and blanks the background with its own mask rule before it scores anything (``protocols.md`` §7,
§9 item 10). :func:`prepare_gt` replays those steps in the source's order, as the protocol's
:class:`~humanbench.protocols.avatar.GtPreparation` lists them; the pieces are plain batched functions.

Pixel values are 8-bit levels (0..255, float64) until the end, so the means of 8-bit values and the
rounding of steps a source runs on ``uint8`` images are exact. Pixel centres sit at integer
coordinates, OpenCV's convention.

**Undistortion** (:func:`undistort`) inverts OpenCV's lens model (k1, k2, p1, p2, k3) the way
``cv2.undistort`` does: for every output pixel, the forward model (:func:`distort_normalized`) gives
the point of the distorted image it came from, and the image is sampled there bilinearly
(``torch.nn.functional.grid_sample``), zero outside. Compared with ``cv2.undistort``
(``initUndistortRectifyMap`` + ``remap(INTER_LINEAR, BORDER_CONSTANT)``): the same model and output
camera (K); the same bilinear sampling with black beyond the border (a pixel half outside mixes with
black); the source coordinates rounded to 1/32 pixel as OpenCV's fixed-point maps hold them
(``subpixel``; exact coordinates would differ by up to ~2 levels on sharp edges); K's skew ignored
(zero in ZJU-MoCap) as ``initUndistortRectifyMap``'s projection ignores it; an image with D = 0 returned
unchanged. At 1/32-pixel positions the bilinear value of an 8-bit image is a multiple of 1/1024 level,
so 8-bit rounding with :data:`LEVEL_TOLERANCE` for float noise at .5 ties (:func:`round_levels`) gives
OpenCV's fixed-point result exactly. Cross-checked once against OpenCV 4.14 (not a dependency): no
pixel differs on 8-bit or float32 images, masks included.

**Resampling** (:func:`resize`) follows ``cv2.resize``: ``area`` for integer factors is the exact block
mean (OpenCV's INTER_AREA fast path); ``linear`` (INTER_LINEAR) and ``lanczos4`` (INTER_LANCZOS4) sample at
``(dst + 0.5) · in/out − 0.5`` (half-pixel centres) with 2 and 8 taps, edge pixels replicated, Lanczos
weights ``sinc(d)·sinc(d/4)`` normalised to sum 1 (OpenCV's ``interpolateLanczos4``); ``nearest``
(INTER_NEAREST) takes pixel ``floor(dst · in/out)``, the top-left one of each 2×2 block at ×0.5. At
exactly ×0.5 INTER_LINEAR samples the middle of each pair of pixels, i.e. it IS the 2×2 block mean
(OpenCV even switches it to INTER_AREA there): 3DGS-Avatar's INTER_LINEAR and Neural Body's INTER_AREA
give the same 512² image from a 1024² one. Against OpenCV 4.14: area, linear and nearest identical,
Lanczos within 1e-5 level (OpenCV's float32 coefficients).

End to end on the ZJU-MoCap miniature, :func:`prepare_gt` matched each source's steps run with OpenCV
to 3e-5 level, except GauHuman's final truncation: it truncates float32 values, so where the exact value
is an integer k its float32 value may fall just below and give k − 1, where we keep k (19 of 152k values).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import Tensor

if TYPE_CHECKING:
    from humanbench.protocols.avatar import GtPreparation

OPENCV_SUBPIXEL = 32  # cv2.undistort's remap maps hold coordinates in 1/32 pixel (INTER_TAB_SIZE)
BAND_LEVEL = 100  # Neural Body's get_mask: the erode/dilate border band gets the value 100
LEVEL_TOLERANCE = 1e-6  # float noise allowed below an integer (truncation) or a .5 tie (rounding), in levels
DISTORTION_TERMS = 5  # k1, k2, p1, p2, k3


def distort_normalized(points: Tensor, dist: Tensor) -> Tensor:
    """OpenCV's lens distortion of normalised camera coordinates.

    Args:
        points: (N, ..., 2) undistorted ``(x, y) = (X/Z, Y/Z)``.
        dist: (N, 5) k1, k2, p1, p2, k3.

    Returns:
        (N, ..., 2) ``x·(1 + k1 r² + k2 r⁴ + k3 r⁶) + (2 p1 x y + p2 (r² + 2x²))`` and
        ``y·(…) + (p1 (r² + 2y²) + 2 p2 x y)``.
    """
    k1, k2, p1, p2, k3 = (dist[:, i].reshape(-1, *([1] * (points.dim() - 2))) for i in range(DISTORTION_TERMS))
    x, y = points[..., 0], points[..., 1]
    r2 = x * x + y * y
    radial = 1 + r2 * (k1 + r2 * (k2 + r2 * k3))
    return torch.stack([x * radial + 2 * p1 * x * y + p2 * (r2 + 2 * x * x),
                        y * radial + p1 * (r2 + 2 * y * y) + 2 * p2 * x * y], dim=-1)


def undistortion_sources(K: Tensor, dist: Tensor, height: int, width: int, *, centre: Tensor | None = None,
                         subpixel: int | None = OPENCV_SUBPIXEL) -> Tensor:
    """Where each pixel of the undistorted image comes from in the distorted one (``initUndistortRectifyMap``).

    Args:
        K: (N, 3, 3) intrinsics of both images (OpenCV's default new camera matrix is K itself).
        dist: (N, 5) k1, k2, p1, p2, k3.
        centre: (N, 2) principal point to use instead of K's (3DGS-Avatar's image centre), or None.
        subpixel: coordinates rounded to 1/subpixel pixel (OpenCV's maps: 32), None for exact.

    Returns:
        (N, height, width, 2) source pixel coordinates (column, row).
    """
    focal = torch.stack([K[:, 0, 0], K[:, 1, 1]], dim=-1)[:, None, None]
    centre = (K[:, :2, 2] if centre is None else centre)[:, None, None]
    rows, cols = torch.meshgrid(torch.arange(height, dtype=K.dtype, device=K.device),
                                torch.arange(width, dtype=K.dtype, device=K.device), indexing="ij")
    pixels = torch.stack([cols, rows], dim=-1)
    sources = distort_normalized((pixels - centre) / focal, dist) * focal + centre
    return sources if subpixel is None else torch.round(sources * subpixel) / subpixel


def remap_bilinear(images: Tensor, sources: Tensor) -> Tensor:
    """Sample images bilinearly at pixel coordinates, zero outside (``cv2.remap`` INTER_LINEAR, BORDER_CONSTANT 0).

    Args:
        images: (N, C, H, W).
        sources: (N, h, w, 2) column, row of each output pixel in ``images``.

    Returns:
        (N, C, h, w).
    """
    height, width = images.shape[-2:]
    size = torch.tensor([width, height], dtype=sources.dtype, device=sources.device)
    grid = (2 * sources + 1) / size - 1  # pixel centres -> grid_sample's [-1, 1] with align_corners=False
    return F.grid_sample(images, grid.to(images.dtype), mode="bilinear", padding_mode="zeros", align_corners=False)


def undistort(images: Tensor, K: Tensor, dist: Tensor, *, centre: Tensor | None = None,
              subpixel: int | None = OPENCV_SUBPIXEL) -> Tensor:
    """``cv2.undistort(image, K, D)`` of a batch (see the module docstring for how close it is).

    Args:
        images: (N, C, H, W) float.
        K: (N, 3, 3); dist: (N, 5) k1, k2, p1, p2, k3.
        centre: (N, 2) principal point used instead of K's, or None.
        subpixel: see :func:`undistortion_sources`.

    Returns:
        (N, C, H, W); images whose D is all zero are returned unchanged.
    """
    sources = undistortion_sources(K, dist, images.shape[-2], images.shape[-1], centre=centre, subpixel=subpixel)
    distorted = (dist != 0).any(dim=1)[:, None, None, None]
    return torch.where(distorted, remap_bilinear(images, sources), images)


def resize_area(images: Tensor, factor: int) -> Tensor:
    """INTER_AREA downsampling by an integer factor: the mean of each ``factor × factor`` block.

    Args:
        images: (N, C, H, W) with H and W multiples of ``factor``.

    Returns:
        (N, C, H / factor, W / factor).
    """
    n, c, height, width = images.shape
    if height % factor or width % factor:
        raise ValueError(f"area resampling by {factor} needs sizes divisible by it, got {width}x{height}")
    return images.reshape(n, c, height // factor, factor, width // factor, factor).mean(dim=(3, 5))


def _taps(size_in: int, size_out: int, kernel: str, dtype: torch.dtype, device: torch.device) -> tuple[Tensor, Tensor]:
    """(out, T) source indices (edge-replicated) and weights of INTER_LINEAR / INTER_LANCZOS4 along one axis."""
    position = (torch.arange(size_out, dtype=dtype, device=device) + 0.5) * (size_in / size_out) - 0.5
    start = torch.floor(position)
    fraction = position - start
    if kernel == "linear":
        offsets = torch.arange(2, device=device)
        weights = torch.stack([1 - fraction, fraction], dim=1)
    elif kernel == "lanczos4":
        offsets = torch.arange(-3, 5, device=device)
        distance = fraction[:, None] - offsets.to(dtype)
        weights = torch.sinc(distance) * torch.sinc(distance / 4)
        weights = weights / weights.sum(dim=1, keepdim=True)
    else:
        raise ValueError(f"unknown resampling kernel {kernel!r}")
    index = (start.long()[:, None] + offsets).clamp(0, size_in - 1)
    return index, weights


def _resample_axis(images: Tensor, size_out: int, kernel: str, dim: int) -> Tensor:
    """Resample ``images`` along ``dim`` (-1 columns, -2 rows) to ``size_out`` with :func:`_taps`."""
    index, weights = _taps(images.shape[dim], size_out, kernel, images.dtype, images.device)
    shape = [1] * images.dim()
    shape[dim] = size_out
    return sum(images.index_select(dim, index[:, t]) * weights[:, t].reshape(shape) for t in range(index.shape[1]))


def resize_kernel(images: Tensor, height: int, width: int, kernel: str) -> Tensor:
    """``cv2.resize`` with INTER_LINEAR (``kernel="linear"``) or INTER_LANCZOS4 (``"lanczos4"``), separable.

    Args:
        images: (N, C, H, W) float.

    Returns:
        (N, C, height, width).
    """
    return _resample_axis(_resample_axis(images, width, kernel, -1), height, kernel, -2)


def resize_nearest(images: Tensor, height: int, width: int) -> Tensor:
    """``cv2.resize`` INTER_NEAREST: output pixel (r, c) takes input ``(floor(r·H/h), floor(c·W/w))``.

    Args:
        images: (N, ..., H, W) of any dtype.

    Returns:
        (N, ..., height, width).
    """
    in_h, in_w = images.shape[-2:]
    rows = torch.div(torch.arange(height, device=images.device) * in_h, height, rounding_mode="floor")
    cols = torch.div(torch.arange(width, device=images.device) * in_w, width, rounding_mode="floor")
    return images[..., rows[:, None], cols[None, :]]


def prepared_size(scale: float, height: int, width: int) -> tuple[int, int]:
    """(height, width) of an image resized by ``scale``: ``int(size · scale)`` as Neural Body and GauHuman size it."""
    return int(height * scale), int(width * scale)


def resize(images: Tensor, scale: float, method: str) -> Tensor:
    """Resize float images (N, C, H, W) by ``scale`` with ``area`` (integer factors), ``linear`` or ``lanczos4``."""
    height, width = prepared_size(scale, *images.shape[-2:])
    if method == "area":
        factor = round(1 / scale)
        if abs(factor * scale - 1) > 1e-12:
            raise ValueError(f"area resampling is implemented for integer factors, got scale {scale}")
        return resize_area(images, factor)
    return resize_kernel(images, height, width, method)


def round_levels(levels: Tensor) -> Tensor:
    """8-bit rounding as OpenCV's ``saturate_cast<uchar>``: half up (ties within :data:`LEVEL_TOLERANCE`), clamped
    to 0..255."""
    return torch.floor(levels + 0.5 + LEVEL_TOLERANCE).clamp(0, 255)


def truncate_levels(levels: Tensor) -> Tensor:
    """8-bit truncation (numpy's float -> integer cast); values within :data:`LEVEL_TOLERANCE` below an integer
    keep it."""
    return torch.floor(levels + LEVEL_TOLERANCE)


def band_levels(person: Tensor, kernel: int, level: int) -> Tensor:
    """Neural Body's mask values: ``level`` on the person, :data:`BAND_LEVEL` on the band between the
    ``kernel × kernel`` dilation and erosion (``cv2.dilate``/``cv2.erode``, borders not eroded), 0 elsewhere.

    Args:
        person: (N, H, W) bool.

    Returns:
        (N, H, W) float levels.
    """
    values = person.to(torch.float64)[:, None]
    dilated = F.max_pool2d(values, kernel, stride=1, padding=kernel // 2)
    eroded = -F.max_pool2d(-values, kernel, stride=1, padding=kernel // 2)
    band = (dilated - eroded)[:, 0] == 1
    return torch.where(band, float(BAND_LEVEL), values[:, 0] * level)


def fill_background(images: Tensor, levels: Tensor, fill: str, mask_level: int, background: float) -> Tensor:
    """Background fill: ``mask`` sets pixels whose mask level is 0 to ``background``; ``alpha`` composites the
    image over it with alpha = level / ``mask_level`` (HumanNeRF's ``alpha·image + (1 − alpha)·bgcolor``).

    Args:
        images: (N, C, H, W) levels; levels: (N, H, W) mask levels; background: a level.

    Returns:
        (N, C, H, W).
    """
    if fill == "alpha":
        alpha = (levels / mask_level)[:, None]
        return alpha * images + (1 - alpha) * background
    if fill == "mask":
        return torch.where(levels[:, None] != 0, images, background)
    raise ValueError(f"unknown background fill {fill!r}")


def prepare_gt(prep: GtPreparation, images: Tensor, masks: Tensor, K: Tensor, dist: Tensor,
               background: float) -> tuple[Tensor, Tensor, Tensor]:
    """The GT images a protocol scores, from stored samples, in the order its source code runs.

    1. person mask = stored mask bits & ``prep.mask_bits``; its 8-bit values are ``prep.mask_level`` on the
       person (and Neural Body's border band, ``prep.mask_band``);
    2. image and mask undistorted (the principal point optionally moved to the image centre); the mask,
       an 8-bit image in every source, is rounded, and so is the image when the source undistorts 8-bit images;
    3. background fill at full size when ``fill_at="full"`` (:func:`fill_background`);
    4. image resized by ``prep.scale`` (``area``/``linear``/``lanczos4``), mask by nearest neighbour;
    5. background fill at the new size (``fill_at="resized"``) and the optional 8-bit truncation.

    Args:
        prep: the protocol's :class:`~humanbench.protocols.avatar.GtPreparation`.
        images: (N, 3, H, W) float 8-bit levels of the stored images.
        masks: (N, H, W) integer stored mask bits.
        K: (N, 3, 3) intrinsics of the stored images; dist: (N, 5) k1, k2, p1, p2, k3.
        background: fill value in [0, 1].

    Returns:
        (N, 3, h, w) float images in [0, 1], (N, h, w) bool person masks at that size, (N, 3, 3) K scaled by
        ``prep.scale`` (as every source scales it: ``K[:2] *= scale``).
    """
    height, width = images.shape[-2:]
    bg = background * 255.0
    person = (masks & prep.mask_bits) != 0
    levels = (band_levels(person, prep.mask_band, prep.mask_level) if prep.mask_band
              else person.to(images.dtype) * prep.mask_level)
    centre = None
    if prep.principal_point == "image_centre":
        centre = torch.tensor([width / 2, height / 2], dtype=K.dtype, device=K.device).expand(len(K), 2)
    undistorted = undistort(torch.cat([images, levels[:, None]], dim=1), K, dist, centre=centre)  # one remap
    images, levels = undistorted[:, :-1], round_levels(undistorted[:, -1])
    if "undistort" in prep.uint8_steps:
        images = round_levels(images)
    if prep.fill_at == "full":
        images = fill_background(images, levels, prep.fill, prep.mask_level, bg)
    images = resize(images, prep.scale, prep.resize)
    if "resize" in prep.uint8_steps:
        images = round_levels(images)
    levels = resize_nearest(levels, *images.shape[-2:])
    if prep.fill_at == "resized":
        images = fill_background(images, levels, prep.fill, prep.mask_level, bg)
    if prep.truncate:
        images = truncate_levels(images)
    scaled = K.clone()
    scaled[:, :2] *= prep.scale
    return images / 255.0, levels != 0, scaled
