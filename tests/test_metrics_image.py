"""Image metrics and evaluation-time masks against scikit-image, the lpips package and independent numpy code."""

from __future__ import annotations

import types
from pathlib import Path

import numpy as np
import pytest
import torch
from numpy.lib.stride_tricks import sliding_window_view
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from humanbench.metrics.image import LEGACY_FLOAT_DATA_RANGE, psnr, ssim_gaussian, ssim_skimage
from humanbench.metrics.lpips_offline import LpipsWeightsError, load_lpips, lpips_distance
from humanbench.metrics.masking import (fill_outside, mask_at_box, mask_bbox, padded_bounds, projected_box_mask,
                                        quantize_uint8, ray_box_two_hits)
from humanbench.protocols import get_protocol
from humanbench.render_evaluation import score_images
from tests.conftest import random_features


def image_pair(n: int = 3, h: int = 24, w: int = 30, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """GT-like images and a noisy, clipped copy, float64 in [0, 1]."""
    g = torch.Generator().manual_seed(seed)
    gt = torch.rand(n, 3, h, w, generator=g, dtype=torch.float64)
    return (gt + 0.1 * torch.randn(n, 3, h, w, generator=g, dtype=torch.float64)).clamp(0, 1), gt


def hwc(image: torch.Tensor) -> np.ndarray:
    return image.permute(1, 2, 0).numpy()


# --- PSNR -----------------------------------------------------------------------------------------------------


def test_pooled_psnr_matches_skimage() -> None:
    pred, gt = image_pair()
    ref = [peak_signal_noise_ratio(gt[i].numpy(), pred[i].numpy(), data_range=1.0) for i in range(3)]
    np.testing.assert_allclose(psnr(pred, gt, reduction="pooled").numpy(), ref, rtol=1e-12)


def test_per_channel_psnr_is_the_mean_of_channel_psnrs_and_not_below_pooled() -> None:
    pred, gt = image_pair()
    ref = [np.mean([peak_signal_noise_ratio(gt[i, c].numpy(), pred[i, c].numpy(), data_range=1.0) for c in range(3)])
           for i in range(3)]
    per_channel = psnr(pred, gt, reduction="per_channel")
    np.testing.assert_allclose(per_channel.numpy(), ref, rtol=1e-12)
    assert (per_channel >= psnr(pred, gt, reduction="pooled")).all()


def test_masked_psnr_averages_only_the_masked_pixels() -> None:
    pred, gt = image_pair()
    mask = torch.zeros(3, 24, 30, dtype=torch.bool)
    mask[:, 4:10, 5:20] = True
    ref = [-10 * np.log10(np.mean((hwc(pred[i]) - hwc(gt[i]))[mask[i].numpy()] ** 2)) for i in range(3)]
    np.testing.assert_allclose(psnr(pred, gt, reduction="pooled", mask=mask).numpy(), ref, rtol=1e-12)


def test_identical_images_give_infinite_psnr() -> None:
    _, gt = image_pair()
    assert torch.isinf(psnr(gt, gt, reduction="pooled")).all()
    assert torch.isinf(psnr(gt, gt, reduction="per_channel")).all()


# --- SSIM -----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("data_range", [1.0, 2.0, 255.0])
def test_skimage_ssim_matches_structural_similarity(data_range: float) -> None:
    pred, gt = image_pair()
    ref = [structural_similarity(pred[i].numpy(), gt[i].numpy(), win_size=7, data_range=data_range, channel_axis=0)
           for i in range(3)]
    np.testing.assert_allclose(ssim_skimage(pred, gt, data_range=data_range).numpy(), ref, rtol=0, atol=1e-12)


def test_skimage_ssim_on_boxes_equals_ssim_of_the_crops() -> None:
    pred, gt = image_pair()
    box = torch.tensor([[3, 5, 25, 20], [0, 0, 30, 24], [10, 2, 17, 11]])  # x0, y0, x1, y1
    ref = [structural_similarity(pred[i, :, y0:y1, x0:x1].numpy(), gt[i, :, y0:y1, x0:x1].numpy(), win_size=7,
                                 data_range=2.0, channel_axis=0) for i, (x0, y0, x1, y1) in enumerate(box.tolist())]
    np.testing.assert_allclose(ssim_skimage(pred, gt, data_range=2.0, box=box).numpy(), ref, atol=1e-12)


def legacy_ssim_numpy(x: np.ndarray, y: np.ndarray) -> float:
    """scikit-image <= 0.19 on float (H,W,C) images without data_range, written out with integral images:
    R = 2 (dtype range -1..1), uniform 7x7 means, sample covariance x 49/48, map without its 3-pixel border."""
    def box_mean(a: np.ndarray) -> np.ndarray:
        s = np.pad(a.cumsum(0).cumsum(1), ((1, 0), (1, 0)))
        return (s[7:, 7:] - s[:-7, 7:] - s[7:, :-7] + s[:-7, :-7]) / 49.0

    values = []
    for c in range(x.shape[2]):
        a, b = x[..., c], y[..., c]
        ux, uy = box_mean(a), box_mean(b)
        vx = (box_mean(a * a) - ux * ux) * 49 / 48
        vy = (box_mean(b * b) - uy * uy) * 49 / 48
        vxy = (box_mean(a * b) - ux * uy) * 49 / 48
        c1, c2 = (0.01 * 2) ** 2, (0.03 * 2) ** 2
        values.append(np.mean((2 * ux * uy + c1) * (2 * vxy + c2) / ((ux**2 + uy**2 + c1) * (vx + vy + c2))))
    return float(np.mean(values))


def test_legacy_float_data_range_is_two_and_differs_from_one() -> None:
    pred, gt = image_pair()
    legacy = ssim_skimage(pred, gt, data_range=LEGACY_FLOAT_DATA_RANGE)
    np.testing.assert_allclose(legacy.numpy(), [legacy_ssim_numpy(hwc(pred[i]), hwc(gt[i])) for i in range(3)],
                               atol=1e-10)
    assert (legacy > ssim_skimage(pred, gt, data_range=1.0)).all()  # larger constants: protocols.md §9 item 7


def gaussian_ssim_numpy(x: np.ndarray, y: np.ndarray) -> float:
    """3DGS SSIM written out: 11x11 gaussian (sigma 1.5) correlation over zero-padded (C,H,W) images, float64.

    3DGS builds its window in float32 (weights off by ~1e-8, so the window sums to 1 only up to ~1e-7), which
    moves SSIM by up to ~1e-5 on noisy images: comparisons with this float64 reference allow 5e-5.
    """
    g = np.exp(-((np.arange(11) - 5) ** 2) / (2 * 1.5**2))
    g = g / g.sum()
    window = np.outer(g, g)

    def filt(a: np.ndarray) -> np.ndarray:
        padded = np.pad(a, ((0, 0), (5, 5), (5, 5)))
        return np.einsum("chwij,ij->chw", sliding_window_view(padded, (11, 11), axis=(1, 2)), window)

    mu1, mu2 = filt(x), filt(y)
    s11, s22, s12 = filt(x * x) - mu1**2, filt(y * y) - mu2**2, filt(x * y) - mu1 * mu2
    c1, c2 = 0.01**2, 0.03**2
    return float(np.mean((2 * mu1 * mu2 + c1) * (2 * s12 + c2) / ((mu1**2 + mu2**2 + c1) * (s11 + s22 + c2))))


def test_gaussian_ssim_matches_an_independent_3dgs_implementation() -> None:
    pred, gt = image_pair()
    ref = [gaussian_ssim_numpy(pred[i].numpy(), gt[i].numpy()) for i in range(3)]
    np.testing.assert_allclose(ssim_gaussian(pred, gt).numpy(), ref, atol=5e-5)
    box = torch.tensor([[3, 5, 25, 20], [0, 0, 30, 24], [10, 2, 17, 11]])
    ref = [gaussian_ssim_numpy(pred[i, :, y0:y1, x0:x1].numpy(), gt[i, :, y0:y1, x0:x1].numpy())
           for i, (x0, y0, x1, y1) in enumerate(box.tolist())]
    np.testing.assert_allclose(ssim_gaussian(pred, gt, box=box).numpy(), ref, atol=5e-5)


def test_identical_images_give_ssim_one() -> None:
    _, gt = image_pair()
    assert (ssim_skimage(gt, gt, data_range=2.0) == 1).all() and (ssim_gaussian(gt, gt) == 1).all()


# --- LPIPS with locally generated backbone weights --------------------------------------------------------------


@pytest.fixture()
def offline(torch_home, monkeypatch) -> Path:
    monkeypatch.setenv("TORCH_HOME", str(torch_home))
    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", lambda *a, **k: pytest.fail("download attempted"))
    return torch_home


def reference_lpips(net: str, seed: int, monkeypatch) -> torch.nn.Module:
    """``lpips.LPIPS`` built by the package itself, its torchvision trunk replaced by the same random weights."""
    import lpips

    features = random_features(net, seed)
    monkeypatch.setattr(lpips.pretrained_networks.tv, "alexnet" if net == "alex" else "vgg16",
                        lambda pretrained=False: types.SimpleNamespace(features=features))
    return lpips.LPIPS(net=net, version="0.1", verbose=False).eval()


@pytest.mark.parametrize("net,seed", [("alex", 0), pytest.param("vgg", 1, marks=pytest.mark.slow)])
def test_lpips_matches_the_lpips_package_in_both_input_ranges(net: str, seed: int, offline, monkeypatch) -> None:
    model, info = load_lpips(net)
    assert info.path.parent == offline / "hub" / "checkpoints" and not info.official
    reference = reference_lpips(net, seed, monkeypatch)
    pred, gt = (x.float() for x in image_pair(2, 64, 64))
    with torch.no_grad():
        rescaled = reference(pred * 2 - 1, gt * 2 - 1).flatten()
        raw = reference(pred, gt).flatten()
    torch.testing.assert_close(lpips_distance(model, pred, gt, feed="rescale"), rescaled)
    torch.testing.assert_close(lpips_distance(model, pred, gt, feed="raw"), raw)
    assert not torch.allclose(rescaled, raw)  # protocols.md §9 item 9: the input range changes the number
    assert (lpips_distance(model, gt, gt, feed="raw") == 0).all()


def test_missing_backbone_names_the_file_and_folder(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    with pytest.raises(LpipsWeightsError, match=r"'vgg16-397923af\.pth' in .*hub/checkpoints"):
        load_lpips("vgg")
    with pytest.raises(LpipsWeightsError, match=r"alexnet-owt-7be5be79\.pth"):
        load_lpips("alex")


def test_lpips_feed_is_never_guessed(offline) -> None:
    model, _ = load_lpips("alex")
    with pytest.raises(ValueError, match="feed"):
        lpips_distance(model, torch.rand(1, 3, 32, 32), torch.rand(1, 3, 32, 32), feed="auto")


# --- box masks, crops, fill, quantisation --------------------------------------------------------------------


def camera(n: int = 1) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """f = 64, principal point (16, 16), identity pose: a 33x33 image centred on the optical axis."""
    K = torch.tensor([[64.0, 0, 16], [0, 64.0, 16], [0, 0, 1]], dtype=torch.float64).expand(n, 3, 3)
    return K, torch.eye(3, dtype=torch.float64).expand(n, 3, 3), torch.zeros(n, 3, dtype=torch.float64)


def square(low: int, high: int) -> torch.Tensor:
    mask = torch.zeros(33, 33, dtype=torch.bool)
    mask[low:high + 1, low:high + 1] = True
    return mask


def test_box_masks_on_a_centred_box() -> None:
    """Box |x|, |y| <= 0.495 m, z in [4, 6] m in front of the camera (f = 64 px, centre 16).

    The silhouette is the near face: |u - 16| <= 64 * 0.495 / 4 = 7.92, so Neural Body's slab test keeps
    pixels 9..23. HumanNeRF grows the box by 1 cm: 64 * 0.505 / 3.99 = 8.10, pixels 8..24, except the rays
    on the image diagonals that leave through a vertical edge of the box (|u - 16| = |v - 16| > 64 * 0.505 /
    6.01 = 5.38): they meet three planes at once, and the source keeps rays with exactly two. GauHuman rounds
    the projected near-face corners 16 +- 7.92 to 8 and 24 and fills the closed polygon: pixels 8..24.
    """
    bounds = torch.tensor([[[-0.495, -0.495, 4.0], [0.495, 0.495, 6.0]]], dtype=torch.float64)
    K, R, t = camera()
    assert torch.equal(mask_at_box(bounds, K, R, t, 33, 33)[0], square(9, 23))
    edge_rays = square(8, 24)
    for d in (6, 7, 8):
        for u, v in ((16 - d, 16 - d), (16 - d, 16 + d), (16 + d, 16 - d), (16 + d, 16 + d)):
            edge_rays[v, u] = False
    assert torch.equal(ray_box_two_hits(bounds, K, R, t, 33, 33)[0], edge_rays)
    assert torch.equal(projected_box_mask(bounds, K, R, t, 33, 33)[0], square(8, 24))


def test_box_masks_follow_the_camera_pose() -> None:
    """The same box given in a world frame rotated 90 degrees about y and shifted: world -> camera R, t undoes it."""
    rot = torch.tensor([[0.0, 0, 1], [0, 1, 0], [-1, 0, 0]], dtype=torch.float64)  # camera -> world
    shift = torch.tensor([1.0, 2.0, 3.0], dtype=torch.float64)
    corners = torch.tensor([[-0.495, -0.495, 4.0], [0.495, 0.495, 6.0]], dtype=torch.float64) @ rot.T + shift
    bounds = torch.stack([corners.amin(0), corners.amax(0)])[None]
    K, _, _ = camera()
    R, t = rot.T[None], (-rot.T @ shift)[None]
    assert torch.equal(mask_at_box(bounds, K, R, t, 33, 33)[0], square(9, 23))
    assert torch.equal(projected_box_mask(bounds, K, R, t, 33, 33)[0], square(8, 24))


def test_padded_bounds_pad_each_axis() -> None:
    points = torch.tensor([[[0.0, 1.0, 2.0], [1.0, 3.0, 5.0]]], dtype=torch.float64)
    expected = torch.tensor([[[0.0, 1.0, 1.95], [1.0, 3.0, 5.05]]], dtype=torch.float64)
    torch.testing.assert_close(padded_bounds(points, (0.0, 0.0, 0.05)), expected)


def test_mask_bbox_inclusive_and_hugs_exclusive() -> None:
    """Mask on rows 2..5, columns 3..7: cv2.boundingRect covers x 3..7, y 2..5 -> (3, 2, 8, 6); HUGS slices
    [min:max] and drops the last row and column -> (3, 2, 7, 5)."""
    mask = torch.zeros(1, 10, 12, dtype=torch.bool)
    mask[0, 2:6, 3:8] = True
    mask[0, 3, 3] = False
    assert mask_bbox(mask, include_last=True).tolist() == [[3, 2, 8, 6]]
    assert mask_bbox(mask, include_last=False).tolist() == [[3, 2, 7, 5]]
    with pytest.raises(ValueError, match="empty"):
        mask_bbox(torch.zeros(2, 4, 4, dtype=torch.bool), include_last=True)


def test_fill_and_quantise() -> None:
    images = torch.full((1, 3, 2, 2), 0.5, dtype=torch.float64)
    keep = torch.tensor([[[True, False], [False, True]]])
    filled = fill_outside(images, keep, 1.0)
    assert filled[0, :, 0, 1].tolist() == [1.0, 1.0, 1.0] and filled[0, :, 0, 0].tolist() == [0.5] * 3
    levels = torch.arange(256, dtype=torch.float64) / 255.0
    assert torch.equal(quantize_uint8(levels[None, None, None]), levels[None, None, None])  # 8-bit input unchanged
    assert quantize_uint8(torch.tensor([[[[0.999 / 255, 1.5, -0.2, 127.9 / 255]]]])).mul(255).tolist() == [[[[0, 255, 0, 127]]]]


# --- each protocol's masking and cropping on hand-built images ------------------------------------------------


def centre_box_mask(n: int = 1) -> torch.Tensor:
    """(n, 16, 16) box mask on rows 3..12, columns 4..11 (80 pixels)."""
    mask = torch.zeros(n, 16, 16, dtype=torch.bool)
    mask[:, 3:13, 4:12] = True
    return mask


def test_neuralbody_scores_box_pixels_and_the_box_rectangle() -> None:
    """GT 0.2 everywhere; the render is 0.2 + 0.1 on 16 box pixels and 0.9 outside the box.

    Outside-box pixels are set to 0 in both images, so they never count. PSNR pools the 80 box pixels:
    MSE = 16 * 0.01 / 80 = 0.002 -> 26.99 dB. SSIM is scikit-image's with data_range 2 on the box
    rectangle (x 4..11, y 3..12) of the blanked images.
    """
    protocol = get_protocol("zju-mocap/neuralbody")
    box = centre_box_mask()
    gt = torch.full((1, 3, 16, 16), 0.2, dtype=torch.float64)
    render = torch.where(box[:, None], gt, torch.full_like(gt, 0.9))
    render[0, :, 5:7, 4:12] += 0.1
    values = score_images(protocol, render, gt, box_mask=box)
    assert values["psnr"].item() == pytest.approx(-10 * np.log10(0.002))
    crop = lambda x: x[0, :, 3:13, 4:12].numpy()  # noqa: E731
    assert values["ssim"].item() == pytest.approx(structural_similarity(
        crop(render), crop(gt), win_size=7, data_range=2.0, channel_axis=0), abs=1e-12)
    assert set(values) == {"psnr", "ssim"}  # no LPIPS in Neural Body's evaluator


def test_gauhuman_blanks_only_the_render_outside_the_box() -> None:
    """GT 0.3 everywhere, render equal to it: outside the 80-pixel box the render becomes 0 while the GT keeps
    0.3, so each channel has MSE = (256 - 80) * 0.09 / 256 and per-channel PSNR = -10 log10 of that."""
    protocol = get_protocol("zju-mocap/gauhuman")
    gt = torch.full((1, 3, 16, 16), 0.3, dtype=torch.float64)
    values = score_images(protocol, gt.clone(), gt, box_mask=centre_box_mask(), nets={"vgg": _ZeroNet()})
    assert values["psnr"].item() == pytest.approx(-10 * np.log10(176 * 0.09 / 256))


def test_monohuman_truncates_both_images_to_8_bits() -> None:
    """Render 0.5 + 0.001 vs GT 0.5: 255 * 0.501 = 127.755 and 255 * 0.5 = 127.5 both truncate to 127, so the
    quantised images agree (PSNR inf) although the float images differ."""
    protocol = get_protocol("zju-mocap/humannerf")
    gt = torch.full((1, 3, 16, 16), 0.5, dtype=torch.float64)
    values = score_images(protocol, gt + 0.001, gt, box_mask=torch.ones(1, 16, 16, dtype=torch.bool),
                          nets={"vgg": _ZeroNet()})
    assert torch.isinf(values["psnr"]).all() and values["ssim"].item() == 1.0


def test_hugs_human_crop_drops_the_last_mask_row_and_column() -> None:
    """GT mask on rows 3..12, columns 4..11; HUGS crops rows 3..11, columns 4..10. A render error on mask row 12
    lies outside that crop (human PSNR inf) but inside the full image (PSNR finite)."""
    protocol = get_protocol("neuman/hugs")
    gt = torch.full((1, 3, 16, 16), 0.4, dtype=torch.float64)
    render = gt.clone()
    render[0, :, 12, 4:12] = 0.6
    values = score_images(protocol, render, gt, gt_mask=centre_box_mask(), nets={"alex": _ZeroNet()})
    assert torch.isinf(values["human_psnr"]).all() and np.isfinite(values["psnr"].item())
    assert values["human_ssim"].item() == 1.0 and values["ssim"].item() < 1.0


class _ZeroNet(torch.nn.Module):
    """Stand-in LPIPS network for masking tests: records nothing, returns zeros of lpips' output shape."""

    def forward(self, a: torch.Tensor, b: torch.Tensor, normalize: bool = False) -> torch.Tensor:
        return torch.zeros(len(a), 1, 1, 1)
