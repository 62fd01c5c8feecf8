"""GT preparation of the avatar protocols (``humanbench.metrics.avatar_gt``) against independent references,
and end to end on the converted ZJU-MoCap miniature."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from scipy import ndimage

from humanbench.convert import convert
from humanbench.leaderboards import leaderboard, load_results
from humanbench.leaderboards.plots import PlotError, plot
from humanbench.metrics import avatar_gt as gt
from humanbench.protocols import get_protocol
from humanbench.protocols.avatar import GtPreparation
from humanbench.records import read_record
from humanbench.render_evaluation import RenderError, evaluate_renders, prepared_gt_images
from humanbench.schema import decode_image, decode_sample
from humanbench.shards import Manifest, iter_encoded
from humanbench.synthetic.raw.zju_mocap import write_miniature_zju

K = np.array([[180.0, 0.0, 97.3], [0.0, 176.0, 92.6], [0.0, 0.0, 1.0]])
D = np.array([-0.28, 0.09, 1.2e-3, -0.9e-3, -0.015])
SIZE = 192


def t(array: np.ndarray) -> torch.Tensor:
    return torch.as_tensor(array, dtype=torch.float64)


def distort_numpy(x: np.ndarray, y: np.ndarray, d: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """OpenCV's documented model (calib3d): radial k1, k2, k3 and tangential p1, p2."""
    k1, k2, p1, p2, k3 = d
    r2 = x**2 + y**2
    radial = 1 + k1 * r2 + k2 * r2**2 + k3 * r2**3
    return x * radial + 2 * p1 * x * y + p2 * (r2 + 2 * x**2), y * radial + p1 * (r2 + 2 * y**2) + 2 * p2 * x * y


def undistort_numpy(xd: np.ndarray, yd: np.ndarray, d: np.ndarray, iterations: int = 100) -> tuple[np.ndarray, ...]:
    """The analytic inverse of :func:`distort_numpy` by fixed-point iteration (cv2.undistortPoints' scheme)."""
    x, y = xd.copy(), yd.copy()
    for _ in range(iterations):
        k1, k2, p1, p2, k3 = d
        r2 = x**2 + y**2
        radial = 1 + k1 * r2 + k2 * r2**2 + k3 * r2**3
        x = (xd - (2 * p1 * x * y + p2 * (r2 + 2 * x**2))) / radial
        y = (yd - (p1 * (r2 + 2 * y**2) + 2 * p2 * x * y)) / radial
    return x, y


def scene(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """A smooth colour image defined everywhere in undistorted pixel coordinates: (..., 3) levels."""
    return np.stack([128 + 100 * np.sin(u / 9.0) * np.cos(v / 11.0), 128 + 90 * np.cos((u + v) / 13.0),
                     60 + 0.5 * u + 0.3 * v], axis=-1)


def test_forward_model_matches_the_documented_formula() -> None:
    points = np.random.default_rng(0).uniform(-0.7, 0.7, (2, 50, 2))
    dist = np.stack([D, D[::-1] * 0.3])
    ours = gt.distort_normalized(t(points), t(dist)).numpy()
    for i in range(2):
        np.testing.assert_allclose(ours[i], np.stack(distort_numpy(points[i, :, 0], points[i, :, 1], dist[i]), -1),
                                   rtol=0, atol=1e-15)


def test_each_output_pixel_comes_from_the_point_the_analytic_inverse_sends_back() -> None:
    """Source pixel of output pixel (u, v), taken back through the fixed-point inverse, is (u, v) again."""
    sources = gt.undistortion_sources(t(K)[None], t(D)[None], SIZE, SIZE, subpixel=None)[0].numpy()
    xs, ys = (sources[..., 0] - K[0, 2]) / K[0, 0], (sources[..., 1] - K[1, 2]) / K[1, 1]
    x, y = undistort_numpy(xs, ys, D)
    rows, cols = np.mgrid[0:SIZE, 0:SIZE]
    np.testing.assert_allclose(x * K[0, 0] + K[0, 2], cols, atol=1e-9)
    np.testing.assert_allclose(y * K[1, 1] + K[1, 2], rows, atol=1e-9)
    quantised = gt.undistortion_sources(t(K)[None], t(D)[None], SIZE, SIZE)[0].numpy()
    np.testing.assert_array_equal(quantised * 32, np.round(sources * 32))  # OpenCV's 1/32-pixel maps


def test_undistorting_a_distorted_scene_gives_the_scene_back() -> None:
    """Distort the smooth scene with the forward model (each distorted pixel shows the scene at its analytic
    undistorted position), undistort it with torch, and compare with the scene at each output pixel."""
    rows, cols = np.mgrid[0:SIZE, 0:SIZE].astype(np.float64)
    x, y = undistort_numpy((cols - K[0, 2]) / K[0, 0], (rows - K[1, 2]) / K[1, 1], D)
    distorted = scene(x * K[0, 0] + K[0, 2], y * K[1, 1] + K[1, 2])
    images = t(distorted).permute(2, 0, 1)[None]
    expected = scene(cols, rows)
    interior = (slice(24, -24), slice(24, -24))  # where the source point stays inside the distorted image
    for subpixel, tolerance in ((None, 0.6), (32, 1.0)):  # bilinear error on a smooth scene (+ 1/64 px rounding)
        ours = gt.undistort(images, t(K)[None], t(D)[None], subpixel=subpixel)[0].permute(1, 2, 0).numpy()
        assert np.abs(ours - expected)[interior].max() < tolerance
    assert np.abs(distorted - expected)[interior].max() > 20  # the distortion is not negligible here


def test_remap_is_bilinear_with_black_beyond_the_border_and_zero_distortion_is_identity() -> None:
    images = t(np.random.default_rng(1).uniform(0, 255, (2, 3, 7, 9)))
    rows, cols = torch.meshgrid(torch.arange(7.0), torch.arange(9.0), indexing="ij")
    identity = torch.stack([cols, rows], dim=-1).double().expand(2, 7, 9, 2)
    torch.testing.assert_close(gt.remap_bilinear(images, identity), images, rtol=0, atol=1e-9)
    shifted = gt.remap_bilinear(images, identity + torch.tensor([0.25, 0.0]).double())
    expected = 0.75 * images[..., :8] + 0.25 * images[..., 1:]
    torch.testing.assert_close(shifted[..., :8], expected, rtol=0, atol=1e-9)
    torch.testing.assert_close(shifted[..., 8], 0.75 * images[..., 8], rtol=0, atol=1e-9)  # half-outside: mixes black
    K2 = t(K)[None].expand(2, 3, 3)
    assert torch.equal(gt.undistort(images, K2, torch.zeros(2, 5, dtype=torch.float64)), images)


def area_numpy(image: np.ndarray, factor: int) -> np.ndarray:
    """(H, W, C) -> block means, by explicit sums of strided views."""
    return sum(image[i::factor, j::factor] for i in range(factor) for j in range(factor)) / factor**2


def linear_numpy(row: np.ndarray, size_out: int) -> np.ndarray:
    """OpenCV's INTER_LINEAR along one axis as its resize code reads: half-pixel centres, clamped at the edges."""
    scale, out = len(row) / size_out, []
    for dx in range(size_out):
        fx = (dx + 0.5) * scale - 0.5
        sx = int(np.floor(fx))
        fx -= sx
        if sx < 0:
            fx, sx = 0.0, 0
        if sx >= len(row) - 1:
            fx, sx = 0.0, len(row) - 1
        out.append((1 - fx) * row[sx] + fx * row[min(sx + 1, len(row) - 1)])
    return np.array(out)


def lanczos_numpy(row: np.ndarray, size_out: int) -> np.ndarray:
    """INTER_LANCZOS4 along one axis: 8 taps around the half-pixel-centred position, a = 4, normalised weights,
    edge pixels repeated."""
    scale, out = len(row) / size_out, []
    for dx in range(size_out):
        fx = (dx + 0.5) * scale - 0.5
        sx = int(np.floor(fx))
        taps = [sx - 3 + i for i in range(8)]
        d = np.array([fx - tap for tap in taps])
        w = np.array([1.0 if abs(di) < 1e-12 else 4 * np.sin(np.pi * di) * np.sin(np.pi * di / 4) / (np.pi * di) ** 2
                      for di in d])
        out.append(np.dot(w / w.sum(), row[np.clip(taps, 0, len(row) - 1)]))
    return np.array(out)


def separable(image: np.ndarray, height: int, width: int, axis_fn) -> np.ndarray:
    """(H, W) -> (height, width) by a 1D resampler along rows then columns."""
    across = np.stack([axis_fn(r, width) for r in image])
    return np.stack([axis_fn(c, height) for c in across.T]).T


def test_area_resize_is_the_block_mean_and_matches_pil_box() -> None:
    image = np.random.default_rng(2).uniform(0, 255, (48, 60, 3))
    for factor in (2, 3, 4):
        ours = gt.resize_area(t(image).permute(2, 0, 1)[None], factor)[0].permute(1, 2, 0).numpy()
        np.testing.assert_allclose(ours, area_numpy(image, factor), rtol=0, atol=1e-10)
        for c in range(3):
            box = Image.fromarray(image[..., c].astype(np.float32), mode="F").resize(
                (60 // factor, 48 // factor), Image.BOX)
            np.testing.assert_allclose(ours[..., c], np.asarray(box), rtol=0, atol=1e-3)
    with pytest.raises(ValueError, match="divisible"):
        gt.resize_area(t(image[:47]).permute(2, 0, 1)[None], 2)


@pytest.mark.parametrize("shape", [(30, 40, 15, 20), (37, 41, 23, 19), (17, 13, 40, 31)])
def test_linear_and_lanczos_resize_match_opencvs_half_pixel_rules(shape) -> None:
    """Downsampling by 2, by non-integer factors, and upsampling (edges clamped) against numpy loops."""
    h, w, oh, ow = shape
    image = np.random.default_rng(3).uniform(0, 255, (h, w))
    for kernel, reference, tol in (("linear", linear_numpy, 1e-9), ("lanczos4", lanczos_numpy, 1e-9)):
        ours = gt.resize_kernel(t(image)[None, None], oh, ow, kernel)[0, 0].numpy()
        np.testing.assert_allclose(ours, separable(image, oh, ow, reference), rtol=0, atol=tol)


def test_linear_at_half_size_is_the_area_mean() -> None:
    """At exactly x0.5, INTER_LINEAR samples halfway between pixel pairs: the 2x2 block mean (trap 10 vanishes)."""
    image = t(np.random.default_rng(4).uniform(0, 255, (2, 3, 64, 48)))
    torch.testing.assert_close(gt.resize(image, 0.5, "linear"), gt.resize(image, 0.5, "area"), rtol=0, atol=1e-10)


def test_nearest_takes_the_floor_pixel() -> None:
    image = torch.arange(7 * 10).reshape(1, 7, 10)
    out = gt.resize_nearest(image, 3, 4)
    rows, cols = np.floor(np.arange(3) * 7 / 3).astype(int), np.floor(np.arange(4) * 10 / 4).astype(int)
    np.testing.assert_array_equal(out[0].numpy(), image[0].numpy()[np.ix_(rows, cols)])
    np.testing.assert_array_equal(gt.resize_nearest(image[:, :6, :8], 3, 4)[0].numpy(), image[0, :6:2, :8:2].numpy())


def test_neural_body_band_matches_scipy_morphology() -> None:
    """cv2.erode/dilate with a 5x5 kernel: the border does not erode (scipy border_value=1) nor dilate."""
    person = np.zeros((20, 24), bool)
    person[0:9, 3:12] = True  # touches the top border
    person[12:18, 15:22] = True
    structure = np.ones((5, 5), bool)
    band = ndimage.binary_dilation(person, structure) & ~ndimage.binary_erosion(person, structure, border_value=1)
    expected = np.where(band, 100, person.astype(int))
    np.testing.assert_array_equal(gt.band_levels(torch.from_numpy(person)[None], 5, 1)[0].numpy(), expected)


def test_rounding_is_half_up_through_float_noise_and_truncation_keeps_integers() -> None:
    levels = t(np.array([0.5 - 1e-12, 1.5, 2.4999, 254.7, 255.6, -0.3, 7.0 - 1e-9, 7.9]))
    np.testing.assert_array_equal(gt.round_levels(levels).numpy(), [1, 2, 2, 255, 255, 0, 7, 8])
    np.testing.assert_array_equal(gt.truncate_levels(levels[6:]).numpy(), [7, 7])


def test_prepare_gt_steps_in_each_sources_order() -> None:
    """On an undistorted 4x4 image: mask fill after or before the x0.5 area mean, alpha compositing, truncation,
    rounding, K scaling; the mask is the stored bits & mask_bits, resized by nearest neighbour."""
    image = t(np.arange(16 * 3).reshape(1, 4, 4, 3) * 5 + 1).permute(0, 3, 1, 2)  # 8-bit levels
    bits = torch.tensor([[[2, 2, 0, 0], [2, 2, 0, 1], [0, 0, 0, 0], [0, 3, 0, 0]]])
    K4, dist = t(np.diag([10.0, 10.0, 1.0]))[None], torch.zeros(1, 5, dtype=torch.float64)
    mean = area_numpy(image[0].permute(1, 2, 0).numpy(), 2).transpose(2, 0, 1)
    after, mask, K2 = gt.prepare_gt(GtPreparation(mask_bits=2), image, bits, K4, dist, 0.0)
    keep = np.array([[1, 0], [0, 0]], bool)  # nearest takes each block's top-left pixel
    np.testing.assert_allclose(after[0].numpy() * 255, np.where(keep, mean, 0), atol=1e-9)
    np.testing.assert_array_equal(mask[0].numpy(), keep)
    np.testing.assert_allclose(K2[0].numpy(), np.diag([5.0, 5.0, 1.0]))
    before, _, _ = gt.prepare_gt(GtPreparation(mask_bits=1, fill_at="full", truncate=True), image, bits, K4, dist, 0.0)
    masked = image[0].numpy() * (bits[0].numpy() & 1 != 0)
    np.testing.assert_allclose(before[0].numpy() * 255, np.floor(area_numpy(masked.transpose(1, 2, 0), 2)
                                                                 ).transpose(2, 0, 1), atol=1e-9)
    alpha, _, _ = gt.prepare_gt(GtPreparation(mask_bits=3, mask_level=255, fill="alpha", fill_at="full",
                                              uint8_steps=("undistort", "resize")), image, bits, K4, dist, 1.0)
    composite = np.where(bits[0].numpy() != 0, image[0].numpy(), 255.0)
    np.testing.assert_allclose(alpha[0].numpy() * 255, np.floor(area_numpy(composite.transpose(1, 2, 0), 2)
                                                                + 0.5).transpose(2, 0, 1), atol=1e-9)


def test_equals_opencv_where_it_is_installed() -> None:
    """OpenCV is no dependency; where it is installed, cv2.undistort (8-bit and float32 images, 0/1 masks) and
    cv2.resize (INTER_AREA, INTER_LINEAR at x0.5, INTER_NEAREST) give exactly our images, INTER_LANCZOS4 within
    1e-4 level."""
    cv2 = pytest.importorskip("cv2")
    rng = np.random.default_rng(5)
    image = cv2.GaussianBlur(rng.integers(0, 256, (SIZE, SIZE, 3)).astype(np.uint8), (0, 0), 1.5)
    mask = np.zeros((SIZE, SIZE), np.uint8)
    mask[40:150, 70:130] = 1
    chw = lambda a: t(a).permute(2, 0, 1)[None]  # noqa: E731
    hwc = lambda a: a[0].permute(1, 2, 0).numpy()  # noqa: E731
    ours = gt.undistort(chw(image), t(K)[None], t(D)[None])
    np.testing.assert_array_equal(hwc(gt.round_levels(ours)), cv2.undistort(image, K, D))
    np.testing.assert_allclose(hwc(ours) / 255, cv2.undistort(image.astype(np.float32) / 255, K, D), atol=1e-6)
    ours_mask = gt.round_levels(gt.undistort(t(mask)[None, None], t(K)[None], t(D)[None]))[0, 0].numpy()
    np.testing.assert_array_equal(ours_mask, cv2.undistort(mask, K, D))
    half = (SIZE // 2, SIZE // 2)
    for method, flag in (("area", cv2.INTER_AREA), ("linear", cv2.INTER_LINEAR)):
        np.testing.assert_array_equal(hwc(gt.round_levels(gt.resize(chw(image), 0.5, method))),
                                      cv2.resize(image, half, interpolation=flag))
    np.testing.assert_allclose(hwc(gt.resize(chw(image), 0.5, "lanczos4")),
                               cv2.resize(image.astype(np.float64), half, interpolation=cv2.INTER_LANCZOS4), atol=1e-4)
    np.testing.assert_array_equal(gt.resize_nearest(torch.from_numpy(mask)[None], *half)[0].numpy(),
                                  cv2.resize(mask, half, interpolation=cv2.INTER_NEAREST))


# --- end to end on the converted ZJU-MoCap miniature -----------------------------------------------------------

@pytest.fixture(scope="module")
def zju_manifests(tmp_path_factory) -> dict[str, Manifest]:
    """One subject, one frame, its 23 cameras, 96x96, converted to three protocols' test splits (skip_bad: the
    splits' other subjects are missing)."""
    root = tmp_path_factory.mktemp("zju") / "raw"
    write_miniature_zju(root, ("CoreView_377",), frames=1)
    return {split: convert("zju-mocap", root, root.parent / split, split=split, skip_bad=True, progress=False)
            for split in ("3dgs-avatar-test-novel-view", "gauhuman-test-novel-view", "neuralbody-test-novel-view")}


def write_renders(folder: Path, images: dict[str, np.ndarray]) -> Path:
    folder.mkdir(parents=True)
    for key, image in images.items():
        Image.fromarray(image).save(folder / f"{key}.png")
    return folder


@pytest.mark.slow  # builds lpips' VGG16
@pytest.mark.parametrize(("protocol_id", "cameras"), [("zju-mocap/3dgs-avatar", set(range(2, 24))),  # all but camera 1
                                                     ("zju-mocap/gauhuman", set(range(1, 24)) - {5})])
def test_prepared_gt_as_render_scores_inf_one_zero_and_the_leaderboard_reads_it(
        protocol_id, cameras, zju_manifests, torch_home, tmp_path, monkeypatch) -> None:
    """The miniature's distorted 96x96 images become 48x48 8-bit GT (rounded by 3DGS-Avatar's uint8 steps,
    truncated by GauHuman): renders equal to it score PSNR inf (null), SSIM 1, LPIPS 0; full-size renders are
    refused; the record's breakdowns round-trip and a record without them still loads; the leaderboard prints
    the record's null PSNR (with its count of infinite images) as inf; the per-joint plot says avatar records
    have none."""
    monkeypatch.setenv("TORCH_HOME", str(torch_home))
    shards = zju_manifests[get_protocol(protocol_id).split].root
    prepared = prepared_gt_images(protocol_id, shards)
    stored = {e["__key__"]: decode_image(decode_sample(e).image) for e in iter_encoded(shards)}
    n = len(cameras)
    assert len(prepared) == n and all(image.shape == (48, 48, 3) for image in prepared.values())
    files = {key: np.round(image * 255).astype(np.uint8) for key, image in prepared.items()}
    assert all(np.array_equal(files[key] / 255.0, image) for key, image in prepared.items())  # 8-bit GT
    with pytest.raises(RenderError, match="renders of another size than the GT the protocol scores: 22, first: "
                                          ".*render 96x96, GT 48x48"):
        evaluate_renders(protocol_id, shards, write_renders(tmp_path / "full", stored), progress=False)
    record = evaluate_renders(protocol_id, shards, write_renders(tmp_path / "r", files), out=tmp_path / "out",
                              method="prepared-gt", progress=False, device="cpu")
    assert record.metrics == {"psnr": None, "ssim": 1.0, "lpips": 0.0} and record.counts["psnr_infinite"] == n
    assert set(record.breakdowns["camera"]) == {f"Camera_B{k}" for k in cameras}
    assert record.breakdowns["sequence"]["CoreView_377"] == {"psnr": None, "psnr_infinite": n, "ssim": 1.0,
                                                             "lpips": 0.0, "images": n}
    body = json.loads(record.path.read_text())
    assert body["per_joint"] == {} and body["breakdowns"] == record.breakdowns
    del body["breakdowns"]
    legacy = record.path.with_name("legacy.json")
    legacy.write_text(json.dumps(body))
    assert read_record(legacy).breakdowns == {}
    legacy.unlink()
    frame = load_results(tmp_path / "out")
    assert frame.loc[0, "ssim"] == 1.0 and frame.loc[0, "psnr"] == np.inf  # null in the record, inf in the frame
    assert not any("=" in column for column in frame.columns) and frame.loc[0, "count_cameras"] == n
    assert "| prepared-gt [synthetic] | reproduced | inf | 1.0000 | 0.00 |" in leaderboard([tmp_path / "out"], fmt="md")
    assert 'data-value="Infinity">inf</td>' in leaderboard([tmp_path / "out"], fmt="html")
    with pytest.raises(PlotError, match="no per-joint errors"):
        plot("per-joint", [record.path], out=tmp_path / "plots")


def test_demo_stage_scores_noisy_and_blurred_reference_renders(zju_manifests, tmp_path) -> None:
    """``humanbench demo``'s render stage on the converted miniature: renders named by key at the scored size,
    records under zju-mocap/neuralbody, noise closer to the GT than blur, breakdowns instead of per-joint."""
    from humanbench.demo import _score_reference_renders

    name = "zju-mocap-neuralbody-test-novel-view"
    manifest = zju_manifests["neuralbody-test-novel-view"]
    records = _score_reference_renders(tmp_path, {name: manifest}, None, False)
    assert [(r.method, r.protocol_id) for r in records] == [("gt+noise", "zju-mocap/neuralbody"),
                                                           ("gt-blur", "zju-mocap/neuralbody")]
    renders = sorted((tmp_path / "renders" / "gt+noise-zju-mocap-neuralbody").glob("*.png"))
    keys = sorted(decode_sample(e).key for e in iter_encoded(manifest.root))
    assert [p.stem for p in renders] == keys and Image.open(renders[0]).size == (48, 48)
    noisy, blurred = records
    assert 20 < blurred.metrics["psnr"] < noisy.metrics["psnr"] < 45 and blurred.metrics["ssim"] < noisy.metrics["ssim"]
    assert noisy.breakdowns["camera"].keys() == {f"Camera_B{k}" for k in range(1, 24) if k - 1 not in (0, 6, 12, 18)}
    assert noisy.per_joint == {}
    assert all(r.path.parent == tmp_path / "results" for r in records)
