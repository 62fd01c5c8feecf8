"""``humanbench eval --renders``: end to end on synthetic shards dressed as the avatar protocols' splits.

The synthetic shards are undistorted, so each ZJU-MoCap protocol's GT preparation here resizes x0.5 and
blanks the background; renders are written at that size from :func:`prepared_gt_images`."""

from __future__ import annotations

import dataclasses
import io
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from humanbench.cli import main
from humanbench.conversion import write_shards
from humanbench.evaluation import EvaluationError
from humanbench.protocols import get_protocol
from humanbench.records import read_record
from humanbench.render_evaluation import RenderError, evaluate_renders, format_render_record, prepared_gt_images
from humanbench.schema import decode_image, decode_sample
from humanbench.shards import iter_encoded
from humanbench.synthetic.world import SyntheticWorld, WorldConfig
from tests.test_metrics_image import gaussian_ssim_numpy, reference_lpips

SIZE = 128  # the ZJU-MoCap protocols score 64x64 (x0.5): large enough for Neural Body's box-crop SSIM window
HUMAN_RECT = (slice(8, 56), slice(10, 54))  # rows, cols of the hand-made NeuMan person mask


def png(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


def dressed_source(protocol_id: str, dist: np.ndarray | None = None):
    """Synthetic-world frames (one person) dressed as the protocol's split: two cameras, stored SMPL vertices,
    zero EasyMocap rh/th (camera-frame data: the body frame is the camera frame); ZJU-MoCap samples get the
    person as both stored mask bits (``mask/`` and ``mask_cihp/``), NeuMan samples a rectangular person mask
    so the human crop is large enough for AlexNet; ``dist`` replaces the cameras' distortion."""
    protocol = get_protocol(protocol_id)
    world = SyntheticWorld(WorldConfig(sequences=2, frames=2, max_people=1, width=SIZE, height=SIZE,
                                       dataset=protocol.dataset, split=protocol.split, seed=3))

    def source(start: int = 0):
        for sample in world.samples(start):
            params = {n: torch.as_tensor(sample.people[n]) for n in ("betas", "global_orient", "body_pose", "transl")}
            vertices = world.model(sample.genders[0])(**params).vertices.numpy()
            people = {**sample.people, "vertices": vertices, "rh": np.zeros((1, 3)), "th": np.zeros((1, 3))}
            if protocol.dataset == "neuman":
                rect = np.zeros((SIZE, SIZE), np.uint8)
                rect[HUMAN_RECT] = 1
                mask = png(rect)
            else:
                mask = png((decode_image(sample.mask) != 0).astype(np.uint8) * 3)
            camera = sample.camera if dist is None else dataclasses.replace(sample.camera, dist=dist)
            yield dataclasses.replace(sample, people=people, camera_name=f"cam{sample.frame % 2}", mask=mask,
                                      camera=camera)
    return source


@pytest.fixture(scope="module")
def shard_folders(tmp_path_factory) -> dict[str, Path]:
    folders = {}
    for protocol_id in ("zju-mocap/neuralbody", "zju-mocap/humannerf", "zju-mocap/3dgs-avatar", "zju-mocap/gauhuman",
                        "neuman/hugs"):
        protocol = get_protocol(protocol_id)
        out = tmp_path_factory.mktemp(protocol_id.replace("/", "-")) / "shards"
        write_shards(dressed_source(protocol_id), out, total=4, dataset=protocol.dataset, split=protocol.split,
                     source_fingerprint="test", progress=False)
        folders[protocol_id] = out
    return folders


@pytest.fixture(autouse=True)
def offline(torch_home, monkeypatch) -> None:
    monkeypatch.setenv("TORCH_HOME", str(torch_home))
    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", lambda *a, **k: pytest.fail("download attempted"))


def gt_images(shards: Path) -> dict[str, np.ndarray]:
    return {e["__key__"]: decode_image(decode_sample(e).image) for e in iter_encoded(shards)}


def scored_files(protocol_id: str, shards: Path) -> dict[str, np.ndarray]:
    """The 8-bit images closest to the GT the protocol scores: truncated as the protocol quantises, else rounded."""
    truncate = get_protocol(protocol_id).quantize
    return {key: (np.floor(255 * np.clip(image, 0, 1)) if truncate else np.round(255 * image)).astype(np.uint8)
            for key, image in prepared_gt_images(protocol_id, shards).items()}


def write_renders(folder: Path, images: dict[str, np.ndarray]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for key, pixels in images.items():
        Image.fromarray(pixels).save(folder / f"{key}.png")
    return folder


def noisy(images: dict[str, np.ndarray], seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {k: np.clip(v + rng.normal(0, 12, v.shape), 0, 255).astype(np.uint8) for k, v in images.items()}


VGG = pytest.mark.slow  # building lpips' VGG16 takes seconds


@pytest.mark.parametrize("protocol_id", ["neuman/hugs", pytest.param("zju-mocap/humannerf", marks=VGG),
                                         pytest.param("zju-mocap/3dgs-avatar", marks=VGG),
                                         pytest.param("zju-mocap/gauhuman", marks=VGG)])
def test_gt_as_render_gives_infinite_psnr_ssim_one_lpips_zero(protocol_id, shard_folders, tmp_path) -> None:
    """A render equal to the GT the protocol scores (8-bit there: stored, quantised, rounded or truncated by the
    preparation): PSNR is +inf per image (the sources' formulas), which the JSON record holds as null with the
    count of infinite images; SSIM is exactly 1; LPIPS exactly 0."""
    shards = shard_folders[protocol_id]
    renders = write_renders(tmp_path / "renders", scored_files(protocol_id, shards))
    record = evaluate_renders(protocol_id, shards, renders, out=tmp_path / "out", progress=False, device="cpu")
    for name, value in record.metrics.items():
        if "psnr" in name:
            assert value is None and record.counts[f"{name}_infinite"] == 4
        elif "ssim" in name:
            assert value == 1.0
        else:
            assert value == 0.0
    assert "inf (4 image(s) equal to their GT)" in format_render_record(record)
    stored = read_record(record.path)
    assert stored.protocol == json.loads(json.dumps(get_protocol(protocol_id).describe()))
    assert np.isinf(stored.per_person["psnr"]).all() and stored.synthetic


def test_neuralbody_float_gt_rounded_to_a_file_is_within_half_a_level(shard_folders, tmp_path) -> None:
    """Neural Body scores float GT (INTER_AREA means of 8-bit values): its file rounded to 8 bits is off by at
    most half a level, PSNR >= 20 log10(510) = 54.15 dB on the box pixels; through the Python API."""
    from humanbench import api

    shards = shard_folders["zju-mocap/neuralbody"]
    renders = write_renders(tmp_path / "r", scored_files("zju-mocap/neuralbody", shards))
    record = api.evaluate_renders("zju-mocap/neuralbody", shards, renders, out=None, progress=False, device="cpu")
    assert record.path is None and 54.15 < record.metrics["psnr"] < np.inf and record.metrics["ssim"] > 0.999
    assert (record.per_person["psnr"] > 54.15).all()


@VGG
def test_gauhuman_blanks_only_the_render_outside_the_box(shard_folders, tmp_path) -> None:
    """GauHuman sets the render to black outside the projected 3D box, never the GT: white image corners (outside
    the box) in renders otherwise equal to the GT still give PSNR inf."""
    shards = shard_folders["zju-mocap/gauhuman"]
    images = scored_files("zju-mocap/gauhuman", shards)
    for image in images.values():
        image[[0, 0, -1, -1], [0, -1, 0, -1]] = 255
    record = evaluate_renders("zju-mocap/gauhuman", shards, write_renders(tmp_path / "r", images), progress=False,
                              device="cpu")
    assert record.metrics["psnr"] is None and record.metrics["ssim"] == 1.0 and record.metrics["lpips"] == 0.0


def test_noisy_renders_match_independent_metrics_on_image_and_human_crop(shard_folders, tmp_path, monkeypatch) -> None:
    """neuman/hugs on noisy renders, per image, against scikit-image per-channel PSNR, an independent 3DGS SSIM
    and the lpips package (AlexNet, [0,1] fed raw) on the full image and on the GT-mask crop rows 8..54, cols 10..52."""
    shards = shard_folders["neuman/hugs"]
    gt = gt_images(shards)
    renders = noisy(gt)
    record = evaluate_renders("neuman/hugs", shards, write_renders(tmp_path / "r", renders), out=tmp_path / "out",
                              progress=False, device="cpu")
    reference = reference_lpips("alex", 0, monkeypatch)
    rows = record.per_person.set_index("key")
    crop = (slice(HUMAN_RECT[0].start, HUMAN_RECT[0].stop - 1), slice(HUMAN_RECT[1].start, HUMAN_RECT[1].stop - 1))
    for key in gt:
        for prefix, (rs, cs) in (("", (slice(None), slice(None))), ("human_", crop)):
            x, y = renders[key][rs, cs] / 255.0, gt[key][rs, cs] / 255.0
            psnr = np.mean([peak_signal_noise_ratio(y[..., c], x[..., c], data_range=1.0) for c in range(3)])
            assert rows.loc[key, f"{prefix}psnr"] == pytest.approx(psnr, rel=1e-12)
            chw = lambda a: np.ascontiguousarray(a.transpose(2, 0, 1))  # noqa: E731
            assert rows.loc[key, f"{prefix}ssim"] == pytest.approx(gaussian_ssim_numpy(chw(x), chw(y)), abs=5e-5)
            tensor = lambda a: torch.as_tensor(chw(a), dtype=torch.float32)[None]  # noqa: E731
            with torch.no_grad():
                lpips = reference(tensor(x), tensor(y)).item()
            assert rows.loc[key, f"{prefix}lpips"] == pytest.approx(lpips, rel=1e-5, abs=1e-6)
    assert record.metrics["psnr"] == pytest.approx(rows["psnr"].mean())
    assert set(rows.columns) >= {"sequence", "camera", "frame"}
    cam0 = record.breakdowns["camera"]["cam0"]
    assert cam0["psnr"] == pytest.approx(rows[rows.camera == "cam0"]["psnr"].mean()) and cam0["images"] == 2
    assert record.breakdowns["frame"]["0"]["images"] == 2 and set(record.breakdowns["sequence"]) == {"seq000", "seq001"}
    assert record.counts == {"images": 4, "sequences": 2, "cameras": 2, "frames": 2,
                             **{m.name: 4 for m in get_protocol("neuman/hugs").metrics}}
    assert record.per_joint == {} and read_record(record.path).breakdowns == record.breakdowns


@VGG
def test_3dgs_avatar_uses_legacy_skimage_ssim_and_rescaled_vgg(shard_folders, tmp_path, monkeypatch) -> None:
    """zju-mocap/3dgs-avatar on noisy renders: pooled PSNR and SSIM with data_range 2 from scikit-image, LPIPS-VGG
    with [0,1] mapped to [-1,1] from the lpips package."""
    shards = shard_folders["zju-mocap/3dgs-avatar"]
    gt = scored_files("zju-mocap/3dgs-avatar", shards)
    renders = noisy(gt, seed=1)
    record = evaluate_renders("zju-mocap/3dgs-avatar", shards, write_renders(tmp_path / "r", renders), progress=False,
                              device="cpu")
    reference = reference_lpips("vgg", 1, monkeypatch)
    rows = record.per_person.set_index("key")
    for key in gt:
        x, y = renders[key] / 255.0, gt[key] / 255.0
        assert rows.loc[key, "psnr"] == pytest.approx(peak_signal_noise_ratio(y, x, data_range=1.0), rel=1e-12)
        ssim = structural_similarity(x, y, win_size=7, data_range=2.0, channel_axis=2)
        assert rows.loc[key, "ssim"] == pytest.approx(ssim, abs=1e-12)
        tensor = lambda a: torch.as_tensor(a.transpose(2, 0, 1).copy(), dtype=torch.float32)[None] * 2 - 1  # noqa: E731
        with torch.no_grad():
            assert rows.loc[key, "lpips"] == pytest.approx(reference(tensor(x), tensor(y)).item(), rel=1e-5, abs=1e-6)
    assert "LPIPS*" in format_render_record(record)


def test_problems_are_reported_with_counts_and_first_offenders(shard_folders, tmp_path) -> None:
    shards = shard_folders["zju-mocap/neuralbody"]
    images = scored_files("zju-mocap/neuralbody", shards)
    keys = sorted(images)
    folder = write_renders(tmp_path / "r", {k: images[k] for k in keys[1:]})  # first key missing
    Image.fromarray(images[keys[0]][:16]).save(folder / "extra-000001.png")
    Image.fromarray(images[keys[1]][:, :20]).save(folder / f"{keys[1]}.png")  # wrong size
    Image.fromarray(images[keys[2]]).convert("RGBA").save(folder / f"{keys[2]}.png")
    (folder / "notes.txt").write_text("ignored")
    with pytest.raises(RenderError) as err:
        evaluate_renders("zju-mocap/neuralbody", shards, folder, progress=False, device="cpu")
    message = str(err.value)
    assert f"samples without a render: 1, first: {keys[0]}" in message
    assert "renders without a sample in the shards: 1, first: extra-000001.png" in message
    half = SIZE // 2
    assert (f"renders of another size than the GT the protocol scores: 1, first: {keys[1]}: render 20x{half}, "
            f"GT {half}x{half}") in message
    assert f"renders that are not 8-bit RGB: 1, first: {keys[2]}.png (RGBA)" in message
    shutil.copy(folder / f"{keys[3]}.png", folder / f"{keys[3]}.jpg")
    with pytest.raises(RenderError, match=f"1 key\\(s\\) with more than one render file, first: {keys[3]}"):
        evaluate_renders("zju-mocap/neuralbody", shards, folder, progress=False, device="cpu")


def test_wrong_split_and_wrong_kind_of_protocol(shard_folders, tmp_path) -> None:
    renders = write_renders(tmp_path / "r", gt_images(shard_folders["zju-mocap/neuralbody"]))
    with pytest.raises(EvaluationError, match="protocol zju-mocap/gauhuman scores zju-mocap/gauhuman-test-novel-view"):
        evaluate_renders("zju-mocap/gauhuman", shard_folders["zju-mocap/neuralbody"], renders, progress=False)
    with pytest.raises(EvaluationError, match="scores predictions"):
        evaluate_renders("3dpw/spin", shard_folders["zju-mocap/neuralbody"], renders, progress=False)


def test_distorted_gt_is_prepared_or_refused(shard_folders, tmp_path) -> None:
    """Protocols with a GT preparation undistort distorted GT (renders at the prepared size score as usual);
    neuman/hugs scores the stored image, so it refuses distorted GT; distortion terms after k3 are refused."""
    def shards(protocol_id: str, dist: np.ndarray) -> Path:
        protocol = get_protocol(protocol_id)
        out = tmp_path / f"{protocol_id.replace('/', '-')}-{len(dist)}"
        write_shards(dressed_source(protocol_id, dist), out, total=4, dataset=protocol.dataset, split=protocol.split,
                     source_fingerprint="test", progress=False)
        return out

    mild = np.array([-0.2, 0.05, 1e-3, -1e-3, 0.0])
    nb = shards("zju-mocap/neuralbody", mild)
    undistorted = prepared_gt_images("zju-mocap/neuralbody", shard_folders["zju-mocap/neuralbody"])
    assert all(not np.allclose(undistorted[k], v) for k, v in prepared_gt_images("zju-mocap/neuralbody", nb).items())
    record = evaluate_renders("zju-mocap/neuralbody", nb, write_renders(tmp_path / "nb", scored_files(
        "zju-mocap/neuralbody", nb)), progress=False, device="cpu")
    assert record.metrics["psnr"] > 54.15
    hugs = shards("neuman/hugs", mild)
    with pytest.raises(RenderError, match="distorted GT images .*: 4, first"):
        evaluate_renders("neuman/hugs", hugs, write_renders(tmp_path / "hugs", gt_images(hugs)), progress=False)
    rational = shards("zju-mocap/neuralbody", np.array([*mild, 0.1, 0.0, 0.0]))
    with pytest.raises(RenderError, match="distortion beyond k1, k2, p1, p2, k3 .*: 4, first"):
        evaluate_renders("zju-mocap/neuralbody", rational, write_renders(tmp_path / "r8", scored_files(
            "zju-mocap/neuralbody", nb)), progress=False)


def test_mesh_evaluate_points_avatar_protocols_to_the_renders_api(shard_folders) -> None:
    from humanbench.evaluation import evaluate

    with pytest.raises(EvaluationError, match="scores rendered images, not predictions: use "
                                              r"humanbench.api.evaluate_renders\(protocol, shards, renders\)"):
        evaluate("zju-mocap/neuralbody", shard_folders["zju-mocap/neuralbody"], "predictions.npz")


def test_cli_eval_with_renders(shard_folders, tmp_path, capsys) -> None:
    shards = shard_folders["zju-mocap/neuralbody"]
    renders = write_renders(tmp_path / "r", noisy(scored_files("zju-mocap/neuralbody", shards)))
    assert main(["eval", "--protocol", "zju-mocap/neuralbody", "--shards", str(shards), "--renders", str(renders),
                 "--out", str(tmp_path / "out"), "--device", "cpu"]) == 0
    out = capsys.readouterr().out
    assert "under zju-mocap/neuralbody v1 [synthetic]" in out and "ssim:" in out and "(4 images)" in out
    record = read_record(next((tmp_path / "out").glob("*.json")))
    assert record.method == "r" and record.counts["images"] == 4 and record.metrics["psnr"] > 0
    assert main(["eval", "--protocol", "zju-mocap/neuralbody", "--shards", str(shards)]) == 2
    assert "give exactly one of --pred FILE" in capsys.readouterr().err
    assert main(["eval", "--protocol", "zju-mocap/neuralbody", "--shards", str(shards), "--pred", "p.npz"]) == 2
    assert "give --renders DIR, not --pred" in capsys.readouterr().err


DIST_SCRIPT = """
import json, sys
import torch.distributed as dist
from humanbench.render_evaluation import evaluate_renders
dist.init_process_group("gloo")
record = evaluate_renders("zju-mocap/humannerf", sys.argv[1], sys.argv[2], progress=False, device="cpu")
if dist.get_rank() == 0:
    record.per_person.to_json(sys.argv[3])
    json.dump(record.metrics, open(sys.argv[3] + ".metrics", "w"))
dist.destroy_process_group()
"""


@pytest.mark.slow
def test_two_process_torchrun_scores_every_image_once(shard_folders, torch_home, tmp_path) -> None:
    import os

    import pandas as pd

    shards = shard_folders["zju-mocap/humannerf"]
    renders = write_renders(tmp_path / "r", noisy(scored_files("zju-mocap/humannerf", shards)))
    single = evaluate_renders("zju-mocap/humannerf", shards, renders, progress=False, device="cpu")
    (tmp_path / "dist.py").write_text(DIST_SCRIPT)
    subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "--master-port", "29547",
                    str(tmp_path / "dist.py"), str(shards), str(renders), str(tmp_path / "rows.json")],
                   check=True, capture_output=True, timeout=300, env={**os.environ, "TORCH_HOME": str(torch_home)})
    rows = pd.read_json(tmp_path / "rows.json")
    assert sorted(rows["key"]) == sorted(single.per_person["key"]) and not rows["key"].duplicated().any()
    metrics = json.loads((tmp_path / "rows.json.metrics").read_text())
    for name, value in single.metrics.items():
        assert metrics[name] == pytest.approx(value, rel=1e-6)
