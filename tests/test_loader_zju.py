"""ZJU-MoCap converter on a miniature download: world round trip, distorted reprojection, masks, splits, bad input."""

from __future__ import annotations

import io
import json
import os
import pickle
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from humanbench.bodymodels import load_body_model
from humanbench.cli import main
from humanbench.convert import convert
from humanbench.loaders import CONVERTERS, zju_mocap
from humanbench.loaders.base import ConversionError
from humanbench.loaders.zju_mocap import ZJUMocapConverter, read_pickled_npy, without_pose_blend_shapes
from humanbench.loaders.zju_splits import MONOCULAR_SUBJECTS, SPLITS, SUBJECTS
from humanbench.schema import Sample, decode_sample, encode_sample
from humanbench.synthetic.raw.zju_mocap import GroundTruth, write_miniature_zju

FRAMES = 2


@pytest.fixture(scope="module")
def miniature(tmp_path_factory) -> tuple[Path, GroundTruth]:
    root = tmp_path_factory.mktemp("zju") / "zju_mocap"
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the rasterizer's small ops only slow down when cores are shared
    try:
        return root, write_miniature_zju(root, frames=FRAMES, seed=0)
    finally:
        torch.set_num_threads(threads)


def _convert(root: Path, split: str) -> list[Sample]:
    converter = ZJUMocapConverter(root, split)
    return [s for unit in converter.units() for s in converter.convert_unit(unit).samples]


@pytest.fixture(scope="module")
def converted(miniature) -> dict[str, list[Sample]]:
    return {split: _convert(miniature[0], split) for split in ("all", "all-new-params")}


@pytest.fixture
def raw_copy(miniature, tmp_path) -> Path:
    return Path(shutil.copytree(miniature[0], tmp_path / "raw"))


def convert_cli(root: Path, out: Path, *extra: str, split: str = "all") -> int:
    return main(["convert", "zju-mocap", "--root", str(root), "--out", str(out), "--split", split, "--max-count", "16",
                 *extra])


def _world_vertices(samples: list[Sample], pose_blend_shapes: bool) -> np.ndarray:
    """(N,6890,3) neutral float64 SMPL on the converted world-frame parameters of every sample."""
    model = load_body_model("smpl", "neutral", dtype=torch.float64)
    model = model if pose_blend_shapes else without_pose_blend_shapes(model)
    params = {name: torch.as_tensor(np.concatenate([s.people[name] for s in samples]))
              for name in ("betas", "global_orient", "body_pose", "transl")}
    with torch.no_grad():
        return model(**params).vertices.numpy()


def _distorted_pixels(points: np.ndarray, sample: Sample) -> np.ndarray:
    """World points (V,3) -> (V,2) pixels of the stored, distorted image (OpenCV model with cam_dist)."""
    cam = sample.camera
    local = points @ cam.R.T + cam.t
    x, y = local[:, 0] / local[:, 2], local[:, 1] / local[:, 2]
    k1, k2, p1, p2, k3 = cam.dist
    r2 = x * x + y * y
    radial = 1 + k1 * r2 + k2 * r2 ** 2 + k3 * r2 ** 3
    xd, yd = x * radial + 2 * p1 * x * y + p2 * (r2 + 2 * x * x), y * radial + p1 * (r2 + 2 * y * y) + 2 * p2 * x * y
    return np.stack([cam.K[0, 0] * xd + cam.K[0, 2], cam.K[1, 1] * yd + cam.K[1, 2]], axis=1)


def _mask(sample: Sample) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(sample.mask)))


def _grown(mask: np.ndarray) -> np.ndarray:
    padded = np.pad(mask, 1)
    return np.logical_or.reduce([padded[dy:dy + mask.shape[0], dx:dx + mask.shape[1]]
                                 for dy in range(3) for dx in range(3)])


def test_miniature_has_both_naming_families(miniature) -> None:
    root, truth = miniature
    b, paren = root / "CoreView_377", root / "CoreView_313"
    assert (b / "Camera_B23" / "000001.jpg").is_file() and (b / "params" / "0.npy").is_file()
    assert (b / "mask_cihp" / "Camera_B1" / "000000.png").is_file() and (b / "vertices" / "1.npy").is_file()
    assert sorted(p.name for p in paren.glob("Camera (*")) == sorted(
        f"Camera ({k})" for k in (*range(1, 20), 22, 23))
    first = sorted((paren / "Camera (1)").iterdir())[0].name
    assert first.startswith("CoreView_313_Camera_(1)_0001_2019-08-23_") and first.endswith(".jpg")
    assert (paren / "params" / "1.npy").is_file() and not (paren / "params" / "0.npy").exists()
    assert (paren / "new_params" / f"{FRAMES}.npy").is_file()
    annots = read_pickled_npy(paren / "annots.npy", "annots", "test")
    assert len(annots["cams"]["K"]) == 21 and len(annots["ims"]) == FRAMES
    assert annots["cams"]["D"][0].shape == (5, 1) and annots["cams"]["T"][0].shape == (3, 1)
    assert 2000 < np.linalg.norm(annots["cams"]["T"][0]) < 5000  # millimetres
    with pytest.raises(ValueError, match="allow_pickle"):  # an object array, as np.save writes a dict
        np.load(b / "annots.npy", allow_pickle=False)
    params = read_pickled_npy(b / "new_params" / "0.npy", "params", "test")
    assert {k: v.shape for k, v in params.items()} == {"poses": (1, 72), "shapes": (1, 10), "Rh": (1, 3), "Th": (1, 3)}
    assert set(truth.subjects) == {"CoreView_377", "CoreView_313"}


def test_params_round_trip_without_pose_blend_shapes(miniature, converted) -> None:
    _, truth = miniature
    samples = converted["all"]
    expected = np.stack([truth.subjects[s.sequence].params.vertices[s.frame] for s in samples])
    np.testing.assert_allclose(_world_vertices(samples, pose_blend_shapes=False), expected, rtol=0, atol=1e-5)
    assert np.abs(_world_vertices(samples[:1], pose_blend_shapes=True) - expected[:1]).max() > 1e-3
    np.testing.assert_allclose(np.concatenate([s.people["vertices"] for s in samples]), expected, rtol=0, atol=1e-5)
    assert all(s.extra["params"] == "params" and not s.extra["pose_blend_shapes"] for s in samples)


def test_new_params_round_trip_with_pose_blend_shapes(miniature, converted) -> None:
    _, truth = miniature
    samples = converted["all-new-params"]
    expected = np.stack([truth.subjects[s.sequence].new_params.vertices[s.frame] for s in samples])
    np.testing.assert_allclose(_world_vertices(samples, pose_blend_shapes=True), expected, rtol=0, atol=1e-5)
    assert all("vertices" not in s.people and s.extra["pose_blend_shapes"] for s in samples)


def test_easymocap_parameters_kept_verbatim_in_world_coords(miniature, converted) -> None:
    _, truth = miniature
    for sample in converted["all"]:
        fit = truth.subjects[sample.sequence].params
        assert sample.coords == "world" and sample.body_model == "smpl" and sample.genders == ["neutral"]
        np.testing.assert_array_equal(sample.people["rh"][0], fit.Rh[sample.frame])
        np.testing.assert_array_equal(sample.people["th"][0], fit.Th[sample.frame])
        np.testing.assert_array_equal(sample.people["body_pose"][0], fit.poses[sample.frame, 3:])
        np.testing.assert_array_equal(sample.people["betas"][0], fit.shapes[sample.frame])
        assert not np.allclose(sample.people["global_orient"][0], fit.poses[sample.frame, :3])


def test_camera_in_metres_and_distorted_reprojection_lands_on_the_mask(miniature, converted) -> None:
    _, truth = miniature
    samples = converted["all-new-params"]
    vertices = _world_vertices(samples, pose_blend_shapes=True)
    for sample, points in zip(samples, vertices):
        rig = truth.subjects[sample.sequence].rig
        view = sample.extra["view"]
        np.testing.assert_allclose(sample.camera.t, rig.t[view], rtol=0, atol=1e-9)
        np.testing.assert_allclose(sample.camera.dist, rig.D[view], rtol=0, atol=0)
        np.testing.assert_allclose(sample.camera.K, rig.K[view], rtol=0, atol=0)
        pixels = np.rint(_distorted_pixels(points, sample)).astype(int)
        inside = np.all((pixels >= 0) & (pixels < [sample.width, sample.height]), axis=1)
        assert inside.all(), sample.key
        on_mask = _grown(_mask(sample) != 0)[pixels[:, 1], pixels[:, 0]]
        assert on_mask.mean() >= 0.99, (sample.key, on_mask.mean())


def test_mask_holds_both_raw_masks_as_bits(miniature, converted) -> None:
    _, truth = miniature
    values = set()
    for sample in converted["all"]:
        subject = truth.subjects[sample.sequence]
        view = sample.extra["view"]
        expected = subject.mask[sample.frame, view] * 1 + (subject.cihp[sample.frame, view] != 0) * 2
        np.testing.assert_array_equal(_mask(sample), expected)
        values |= set(np.unique(expected).tolist())
    assert values == {0, 1, 2, 3}
    assert converted["all"][0].extra["mask_bits"] == {"mask": 1, "mask_cihp": 2}


def test_images_keys_and_313_naming(miniature, converted) -> None:
    root, truth = miniature
    samples = converted["all"]
    keys = [s.key for s in samples]
    assert keys == sorted(keys) and len(set(keys)) == len(keys) == FRAMES * (21 + 23)
    assert keys[0] == "coreview_313-b01-000000" and "coreview_313-b22-000001" in keys
    assert "coreview_313-b20-000000" not in keys and keys[-1] == "coreview_377-b23-000001"
    for sample in samples:
        subject = truth.subjects[sample.sequence]
        path = subject.images[sample.frame][sample.extra["view"]]
        assert sample.image == (root / sample.sequence / path).read_bytes() and sample.image_format == "jpg"
        assert sample.key == subject.key(sample.extra["view"], sample.frame)
        assert sample.extra["params_index"] == subject.params_index[sample.frame]
        assert sample.camera_name == path.split("/")[0] and (sample.width, sample.height) == (96, 96)
    assert {s.extra["params_index"] for s in samples if s.sequence == "CoreView_313"} == {1, 2}
    assert {s.extra["params_index"] for s in samples if s.sequence == "CoreView_377"} == {0, 1}
    assert decode_sample(encode_sample(samples[0])).key == samples[0].key


def test_units_are_in_key_order(miniature, monkeypatch) -> None:
    monkeypatch.setattr(zju_mocap, "FRAMES_PER_UNIT", 1)
    converter = ZJUMocapConverter(miniature[0], "neuralbody-test-novel-view")
    units = [u for u in converter.units() if "/" in u.item]
    keys = [s.key for u in units for s in converter.convert_unit(u).samples]
    assert keys == sorted(keys) and len(units) == len(keys) == 17 + 19  # frame 0 only: every 30th of 0..59 / 0..299
    assert units[0] == zju_mocap.Unit("CoreView_313/Camera (2)", 0, 1)


def test_splits_select_the_documented_views_and_frames() -> None:
    nb_train = SPLITS["neuralbody-train"].selection("CoreView_313")
    assert nb_train.views.select(21) == (0, 6, 12, 18) and nb_train.frames.select(1470) == range(0, 60)
    novel_view = SPLITS["neuralbody-test-novel-view"].selection("CoreView_377")
    assert len(novel_view.views.select(23)) == 19 and list(novel_view.frames.select(617)) == list(range(0, 300, 30))
    assert SPLITS["neuralbody-test-novel-pose"].selection("CoreView_390").frames.select(1171) == range(0, 700, 30)
    assert SPLITS["neuralbody-test-novel-pose"].selection("CoreView_377").frames.select(617) == range(300, 617, 30)
    assert SPLITS["neuralbody-train"].selection("CoreView_390").frames.select(1171) == range(700, 1000)
    gau = SPLITS["gauhuman-test-novel-view"].selection("CoreView_377")
    assert 4 not in gau.views.select(23) and len(gau.frames.select(617)) == 17 and max(gau.frames.select(617)) == 480
    assert len(SPLITS["gauhuman-train"].selection("CoreView_394").frames.select(859)) == 100
    assert SPLITS["3dgs-avatar-test-novel-view"].selection("CoreView_377").frames.select(617) == range(0, 570, 30)
    assert SPLITS["monohuman-test-novel-pose"].selection("CoreView_394").frames.select(859) == range(380, 475, 30)
    assert SPLITS["humannerf-train"].selection("CoreView_313") is None
    assert SPLITS["humannerf-test-novel-view"].unconfirmed and SPLITS["gauhuman-train"].unconfirmed
    for name, split in SPLITS.items():
        assert split.subjects is None or set(split.subjects) == set(
            SUBJECTS if split.protocol == "neuralbody" else MONOCULAR_SUBJECTS)
        assert name == split.name and split.source and split.params in ("params", "new_params")
        assert name in ("all", "all-new-params") or name.split("-", 1 + name.startswith("3dgs"))[-1] in (
            "train", "test-novel-view", "test-novel-pose")
    with pytest.raises(ValueError, match="view index 12, but annots.npy lists only 7 cameras"):
        nb_train.views.select(7)


def test_protocol_split_converts_its_views_and_lists_missing_subjects(miniature, tmp_path) -> None:
    assert convert_cli(miniature[0], tmp_path / "out", "--skip-bad", split="neuralbody-train") == 0
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    missing = [d["item"] for d in manifest["dropped"]]
    assert missing == ["CoreView_315", "CoreView_386", "CoreView_387", "CoreView_390", "CoreView_392",
                       "CoreView_393", "CoreView_394"]
    assert "CoreView_315 does not exist" in manifest["dropped"][0]["reason"]
    assert manifest["total_count"] == 2 * 4 * FRAMES


def _rewrite_annots(root: Path, subject: str, change) -> Path:
    path = root / subject / "annots.npy"
    annots = read_pickled_npy(path, "annots", "test")
    change(annots)
    np.save(path, annots)
    return path


def _missing_annots(root: Path) -> list[str]:
    (root / "CoreView_377" / "annots.npy").unlink()
    return [str(root / "CoreView_377" / "annots.npy"), "missing", "subject CoreView_377"]


def _truncated_params(root: Path) -> list[str]:
    path = root / "CoreView_313" / "params" / "2.npy"
    path.write_bytes(path.read_bytes()[:150])
    return [str(path), "subject CoreView_313, frame 1"]


def _missing_image(root: Path) -> list[str]:
    path = root / "CoreView_377" / "Camera_B7" / "000001.jpg"
    path.unlink()
    return [str(path), "image missing for an annotated frame", "camera Camera_B7, frame 1"]


def _camera_lists_disagree(root: Path) -> list[str]:
    path = _rewrite_annots(root, "CoreView_377", lambda a: a["cams"]["D"].pop())
    return [str(path), "cams K, R, T, D list 23, 23, 23, 22 cameras"]


def _no_subject_folder(root: Path) -> list[str]:
    for folder in root.iterdir():
        shutil.rmtree(folder)
    return [f"no CoreView_<id> folder in {root}"]


@pytest.mark.parametrize("damage", [_missing_annots, _truncated_params, _missing_image, _camera_lists_disagree,
                                    _no_subject_folder])
def test_bad_input_is_a_clear_error(raw_copy, tmp_path, capsys, damage) -> None:
    expected = damage(raw_copy)
    assert convert_cli(raw_copy, tmp_path / "out") == 2
    err = capsys.readouterr().err
    assert "humanbench convert: error: zju-mocap" in err and all(part in err for part in expected), err
    assert not (tmp_path / "out" / "manifest.json").exists()


def test_malicious_pickle_in_annots_is_refused_and_not_run(raw_copy, tmp_path, capsys) -> None:
    marker = tmp_path / "pwned"

    class Payload:
        def __reduce__(self):
            return os.system, (f"touch {marker}",)

    path = raw_copy / "CoreView_313" / "annots.npy"
    with path.open("wb") as file:
        np.lib.format.write_array_header_1_0(file, {"descr": "|O", "fortran_order": False, "shape": ()})
        file.write(pickle.dumps(Payload(), protocol=3))
    assert convert_cli(raw_copy, tmp_path / "out") == 2
    err = capsys.readouterr().err
    assert str(path) in err and "refused to load" in err and "system" in err
    assert not marker.exists()


def test_split_needing_a_missing_camera_is_a_clear_error(raw_copy, tmp_path) -> None:
    def keep_five(annots: dict) -> None:
        for key in ("K", "R", "T", "D"):
            del annots["cams"][key][5:]
        for entry in annots["ims"]:
            del entry["ims"][5:]

    path = _rewrite_annots(raw_copy, "CoreView_377", keep_five)
    assert convert_cli(raw_copy, tmp_path / "out", "--skip-bad", split="neuralbody-train") == 0
    dropped = {d["item"]: d["reason"] for d in json.loads((tmp_path / "out" / "manifest.json").read_text())["dropped"]}
    assert dropped["CoreView_377"] == (f"zju-mocap: {path}: split 'neuralbody-train' needs view index 6, but "
                                       "annots.npy lists only 5 cameras (subject CoreView_377)")


def test_unknown_split_lists_the_valid_ones(miniature, tmp_path, capsys) -> None:
    assert convert_cli(miniature[0], tmp_path / "out", split="neuralbody-test") == 2
    err = capsys.readouterr().err
    assert "unknown split 'neuralbody-test'" in err and "'neuralbody-test-novel-view'" in err and "'all'" in err
    with pytest.raises(ConversionError, match="unknown split"):
        CONVERTERS["zju-mocap"](miniature[0], "train")


def test_skip_bad_lists_every_skipped_item(raw_copy, tmp_path) -> None:
    _missing_image(raw_copy)
    annots = raw_copy / "CoreView_313" / "annots.npy"
    annots.unlink()
    assert convert_cli(raw_copy, tmp_path / "out", "--skip-bad") == 0
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert [d["item"] for d in manifest["dropped"]] == ["CoreView_313", "CoreView_377/Camera_B7[0:2]"]
    assert str(annots) in manifest["dropped"][0]["reason"]
    assert "000001.jpg: image missing" in manifest["dropped"][1]["reason"]
    assert manifest["total_count"] == 22 * FRAMES


def test_interrupted_conversion_resumes_to_identical_shards(miniature, tmp_path, monkeypatch) -> None:
    root = miniature[0]
    convert("zju-mocap", root, tmp_path / "clean", split="all", max_count=8, progress=False, command="x")
    original, run = ZJUMocapConverter.convert_unit, {"calls": 0, "crash_at": 20}

    def crashing(self, unit):
        run["calls"] += 1
        if run["calls"] == run["crash_at"]:
            raise RuntimeError("simulated crash")
        return original(self, unit)

    monkeypatch.setattr(ZJUMocapConverter, "convert_unit", crashing)
    with pytest.raises(RuntimeError, match="simulated crash"):
        convert("zju-mocap", root, tmp_path / "resumed", split="all", max_count=8, progress=False, command="x")
    run.update(calls=0, crash_at=0)
    convert("zju-mocap", root, tmp_path / "resumed", split="all", max_count=8, progress=False, command="x")
    assert 0 < run["calls"] <= 44 - 16  # the units of the four finished shards are not converted again
    assert {p.name: p.read_bytes() for p in (tmp_path / "clean").iterdir()} == {
        p.name: p.read_bytes() for p in (tmp_path / "resumed").iterdir()}
