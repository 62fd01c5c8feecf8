"""Image-quality metrics for avatar rendering: PSNR and SSIM in the variants the published protocols use.

Every function takes batched images ``(N, C, H, W)`` (values in [0, 1]) on any device and returns one
value per image ``(N,)`` in the input dtype. Optional ``region`` arguments restrict a metric to a
per-image pixel mask or rectangle without a per-image loop:

- PSNR ``mask``: (N, H, W) bool, the pixels whose squared errors are averaged (Neural Body's
  ``mask_at_box`` pixels).
- SSIM ``box``: (N, 4) integer ``x0, y0, x1, y1`` (end exclusive): the value is exactly the one the
  reference implementation gives on the cropped images ``img[:, y0:y1, x0:x1]``.

PSNR variants (``protocols.md`` §9 item 8): **pooled** = one MSE over all pixels and channels
(Neural Body, MonoHuman, 3DGS-Avatar); **per-channel** = the mean of the three per-channel PSNRs
(the 3DGS ``psnr`` called on a ``(3, H, W)`` image, as GauHuman and HUGS do), which is ≥ the pooled value.
Identical images give ``+inf`` in both, as the sources' formulas do.

SSIM variants (§9 item 7): **scikit-image** ``structural_similarity`` (uniform 7×7 window, sample
covariance ``49/48``, K1 = 0.01, K2 = 0.03, mean over the map without its 3-pixel border, mean over
channels) with an explicit ``data_range``: scikit-image ≤ 0.19 silently used
:data:`LEGACY_FLOAT_DATA_RANGE` = 2 for float images (Neural Body, MonoHuman, 3DGS-Avatar);
**3DGS** gaussian SSIM (11×11 window, σ = 1.5, zero "same" padding, C1 = 0.01², C2 = 0.03², i.e. data
range 1, mean over the whole map and channels; GauHuman, HUGS).
"""

from __future__ import annotations

import math
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor

LEGACY_FLOAT_DATA_RANGE = 2.0
"""``data_range`` scikit-image ≤ 0.19 inferred for float images (``dtype_range`` −1..1); ≥ 0.20 raises instead."""

SKIMAGE_WIN_SIZE = 7
GAUSSIAN_WIN_SIZE = 11
GAUSSIAN_SIGMA = 1.5
K1, K2 = 0.01, 0.03

PsnrReduction = Literal["pooled", "per_channel"]


def psnr(pred: Tensor, gt: Tensor, *, reduction: PsnrReduction, mask: Tensor | None = None) -> Tensor:
    """Peak signal-to-noise ratio in dB for peak value 1.

    Args:
        pred, gt: (N, C, H, W) images in [0, 1].
        reduction: ``"pooled"``: ``−10·log10`` of the MSE over all (masked) pixels and channels;
            ``"per_channel"``: the mean over channels of each channel's PSNR.
        mask: optional (N, H, W) bool; only these pixels count.

    Returns:
        (N,) PSNR; ``+inf`` where the images agree exactly on the counted pixels.
    """
    squared = (pred - gt) ** 2
    weights = torch.ones_like(squared[:, :1]) if mask is None else mask[:, None].to(squared.dtype)
    per_channel = (squared * weights).sum(dim=(2, 3)) / weights.sum(dim=(2, 3))  # (N, C) MSE
    if reduction == "pooled":
        return -10.0 * torch.log10(per_channel.mean(dim=1))
    if reduction == "per_channel":
        return (-10.0 * torch.log10(per_channel)).mean(dim=1)
    raise ValueError(f"reduction must be 'pooled' or 'per_channel', got {reduction!r}")


def _box_map_mask(box: Tensor, map_h: int, map_w: int, margin: int) -> Tensor:
    """(N, map_h, map_w) bool: SSIM-map entries whose window lies inside each box.

    Map entry ``(i, j)`` is the window centred at pixel ``(i + margin, j + margin)``; a box
    ``x0, y0, x1, y1`` keeps centres ``x0 + margin <= x < x1 - margin`` (and the same for y).
    """
    rows = torch.arange(map_h, device=box.device) + margin
    cols = torch.arange(map_w, device=box.device) + margin
    x0, y0, x1, y1 = (box[:, k, None] for k in range(4))
    keep_rows = (rows >= y0 + margin) & (rows < y1 - margin)
    keep_cols = (cols >= x0 + margin) & (cols < x1 - margin)
    return keep_rows[:, :, None] & keep_cols[:, None, :]


def _masked_mean(ssim_map: Tensor, keep: Tensor | None, what: str) -> Tensor:
    """Mean of an (N, C, h, w) map over channels and the kept (N, h, w) entries."""
    if keep is None:
        return ssim_map.mean(dim=(1, 2, 3))
    count = keep.sum(dim=(1, 2))
    if bool((count == 0).any()):
        bad = torch.nonzero(count == 0).flatten().tolist()
        raise ValueError(f"{what}: the box of image(s) {bad[:5]} is smaller than the SSIM window")
    weights = keep[:, None].to(ssim_map.dtype)
    return (ssim_map * weights).sum(dim=(1, 2, 3)) / (count.to(ssim_map.dtype) * ssim_map.shape[1])


def ssim_skimage(pred: Tensor, gt: Tensor, *, data_range: float, box: Tensor | None = None,
                 win_size: int = SKIMAGE_WIN_SIZE) -> Tensor:
    """scikit-image's ``structural_similarity(pred, gt, win_size=7, data_range=..., channel_axis=...)``.

    Uniform ``win_size``² window, sample covariance (``cov_norm = n / (n − 1)``, n = win_size²),
    C1 = (0.01·R)², C2 = (0.03·R)², mean over the map cropped by ``(win_size − 1) / 2`` pixels,
    then over channels. Pass ``data_range=LEGACY_FLOAT_DATA_RANGE`` for scikit-image ≤ 0.19's float default.

    Args:
        pred, gt: (N, C, H, W).
        data_range: R, the value range (never guessed).
        box: optional (N, 4) ``x0, y0, x1, y1`` crops (end exclusive); each value then equals SSIM of
            the cropped images (the window never reaches outside the crop, so the full-image map is reused).
        win_size: odd window side.

    Returns:
        (N,) mean SSIM.
    """
    n, c, h, w = pred.shape
    if h < win_size or w < win_size:
        raise ValueError(f"ssim_skimage: images of {h}x{w} pixels are smaller than the {win_size}x{win_size} window")
    stacked = torch.cat([pred, gt, pred * pred, gt * gt, pred * gt], dim=1).reshape(n * 5 * c, 1, h, w)
    means = F.avg_pool2d(stacked, win_size, stride=1).reshape(n, 5, c, h - win_size + 1, w - win_size + 1)
    ux, uy, uxx, uyy, uxy = means.unbind(dim=1)
    cov_norm = win_size**2 / (win_size**2 - 1.0)
    vx, vy, vxy = cov_norm * (uxx - ux * ux), cov_norm * (uyy - uy * uy), cov_norm * (uxy - ux * uy)
    c1, c2 = (K1 * data_range) ** 2, (K2 * data_range) ** 2
    ssim_map = ((2 * ux * uy + c1) * (2 * vxy + c2)) / ((ux * ux + uy * uy + c1) * (vx + vy + c2))
    keep = None if box is None else _box_map_mask(box, ssim_map.shape[2], ssim_map.shape[3], (win_size - 1) // 2)
    return _masked_mean(ssim_map, keep, "ssim_skimage")


def gaussian_window(size: int = GAUSSIAN_WIN_SIZE, sigma: float = GAUSSIAN_SIGMA) -> Tensor:
    """(size, size) float32 normalised gaussian window, built in float32 as the 3DGS code builds it."""
    gauss = torch.tensor([math.exp(-((x - size // 2) ** 2) / float(2 * sigma**2)) for x in range(size)],
                         dtype=torch.float32)
    gauss = gauss / gauss.sum()
    return gauss[:, None] @ gauss[None, :]


def box_pixel_mask(box: Tensor, height: int, width: int) -> Tensor:
    """(N, H, W) bool, True inside each ``x0, y0, x1, y1`` box (end exclusive)."""
    rows = torch.arange(height, device=box.device)
    cols = torch.arange(width, device=box.device)
    inside_rows = (rows >= box[:, 1, None]) & (rows < box[:, 3, None])
    inside_cols = (cols >= box[:, 0, None]) & (cols < box[:, 2, None])
    return inside_rows[:, :, None] & inside_cols[:, None, :]


def ssim_gaussian(pred: Tensor, gt: Tensor, *, box: Tensor | None = None) -> Tensor:
    """The 3DGS SSIM (``utils/loss_utils.py: ssim``, as GauHuman and HUGS call it): data range 1.

    Gaussian 11×11 window (σ = 1.5), zero "same" padding, biased (population) variances,
    C1 = 0.01², C2 = 0.03², mean over the whole map and channels.

    Args:
        pred, gt: (N, C, H, W).
        box: optional (N, 4) ``x0, y0, x1, y1`` crops (end exclusive): pixels outside the crop are set
            to zero, which is exactly the zero padding the reference applies to a cropped image, and the
            map is averaged over the crop.

    Returns:
        (N,) mean SSIM.
    """
    n, c, h, w = pred.shape
    keep = None
    if box is not None:
        keep = box_pixel_mask(box, h, w)
        pred, gt = pred * keep[:, None], gt * keep[:, None]
    window = gaussian_window().to(device=pred.device, dtype=pred.dtype)[None, None]
    stacked = torch.cat([pred, gt, pred * pred, gt * gt, pred * gt], dim=1).reshape(n * 5 * c, 1, h, w)
    means = F.conv2d(stacked, window, padding=GAUSSIAN_WIN_SIZE // 2).reshape(n, 5, c, h, w)
    mu1, mu2, e11, e22, e12 = means.unbind(dim=1)
    s11, s22, s12 = e11 - mu1 * mu1, e22 - mu2 * mu2, e12 - mu1 * mu2
    c1, c2 = K1**2, K2**2
    ssim_map = ((2 * mu1 * mu2 + c1) * (2 * s12 + c2)) / ((mu1 * mu1 + mu2 * mu2 + c1) * (s11 + s22 + c2))
    return _masked_mean(ssim_map, keep, "ssim_gaussian")
