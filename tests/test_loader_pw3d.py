"""3DPW converter on a miniature download: camera-frame round trip, raw bytes, workers, bad input."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from humanbench.bodymodels import load_body_model, load_pickle_restricted
from humanbench.cli import main
from humanbench.loaders import CONVERTERS, pw3d
from humanbench.loaders.base import ConversionError
from humanbench.loaders.pw3d import PW3DConverter
from humanbench.schema import Sample
from humanbench.synthetic.official_files import py2_pickle_bytes
from humanbench.synthetic.raw.pw3d import GroundTruth, write_miniature_3dpw

SPLITS = ("train", "validation", "test")
RAW_KEYS = ("sequence", "genders", "betas", "betas_clothed", "v_template_clothed", "poses", "trans", "poses_60Hz",
            "trans_60Hz", "img_frame_ids", "jointPositions", "poses2d", "cam_poses", "campose_valid",
            "cam_intrinsics", "texture_maps")
FRAMES = 4


@pytest.fixture(scope="module")
def miniature(tmp_path_factory) -> tuple[Path, GroundTruth]:
    root = tmp_path_factory.mktemp("pw3d") / "raw"
    return root, write_miniature_3dpw(root, frames=FRAMES, seed=0, rendered_frames=2)


@pytest.fixture(scope="module")
def converted(miniature) -> dict[str, list[Sample]]:
    root, _ = miniature
    out = {}
    for split in SPLITS:
        converter = PW3DConverter(root, split)
        out[split] = [s for unit in converter.units() for s in converter.convert_unit(unit).samples]
    return out


@pytest.fixture
def raw_copy(miniature, tmp_path) -> Path:
    return Path(shutil.copytree(miniature[0], tmp_path / "raw"))


def convert_cli(root: Path, out: Path, *extra: str, split: str = "test") -> int:
    return main(["convert", "3dpw", "--root", str(root), "--out", str(out), "--split", split, "--max-count", "3",
                 *extra])


def test_miniature_has_the_raw_layout_and_keys(miniature) -> None:
    root, truth = miniature
    for sequence, split in truth.splits.items():
        raw = load_pickle_restricted(root / "sequenceFiles" / split / f"{sequence}.pkl")
        assert set(raw) == set(RAW_KEYS) and raw["sequence"] == sequence
        people = len(raw["genders"])
        assert set(raw["genders"]) <= {"m", "f"} and all(len(raw[k]) == people for k in ("poses", "poses2d"))
        assert raw["poses2d"][0].shape == (FRAMES, 3, 18) and raw["poses_60Hz"][0].shape == (2 * FRAMES, 72)
        np.testing.assert_array_equal(raw["img_frame_ids"], 2 * np.arange(FRAMES))
        assert raw["cam_poses"].shape == (FRAMES, 4, 4) and raw["cam_intrinsics"].shape == (3, 3)
        assert sorted(p.name for p in (root / "imageFiles" / sequence).iterdir()) == [
            f"image_{i:05d}.jpg" for i in range(FRAMES)]
    assert {len(raw_dims) for raw_dims in truth.betas_dims.values()} == {1, 2}
    assert {d for dims in truth.betas_dims.values() for d in dims} == {10, 300}
    assert set(truth.splits.values()) == set(SPLITS)


def _joints(samples: list[Sample]) -> tuple[np.ndarray, np.ndarray, list[tuple[str, int]]]:
    """Gendered float64 SMPL on the converted parameters of every person: joints (M,24,3), K (M,3,3), (key, p)."""
    people = [(s, p) for s in samples for p in range(s.num_people)]
    joints = np.zeros((len(people), 24, 3))
    for gender in ("male", "female"):
        rows = [i for i, (s, p) in enumerate(people) if s.genders[p] == gender]
        model = load_body_model("smpl", gender, dtype=torch.float64)
        params = {name: torch.as_tensor(np.stack([people[i][0].people[name][people[i][1]] for i in rows]))
                  for name in ("betas", "global_orient", "body_pose", "transl")}
        with torch.no_grad():
            joints[rows] = model(**params).joints[:, :24].numpy()
    return joints, np.stack([s.camera.K for s, _ in people]), [(s.key, p) for s, p in people]


def test_round_trip_reproduces_camera_frame_joints(miniature, converted) -> None:
    _, truth = miniature
    samples = [s for split in SPLITS for s in converted[split]]
    assert sorted(s.key for s in samples) == sorted(truth.frames)
    joints, K, index = _joints(samples)
    expected = np.stack([truth.frames[key].joints3d[p] for key, p in index])
    np.testing.assert_allclose(joints, expected, rtol=0, atol=1e-5)
    uv = joints[..., :2] / joints[..., 2:] * np.stack([np.diag(k)[:2] for k in K])[:, None] + K[:, None, :2, 2]
    np.testing.assert_allclose(uv, np.stack([truth.frames[key].joints2d[p] for key, p in index]), rtol=0, atol=1e-3)
    kept = np.concatenate([s.people["joints3d"] for s in samples])  # jointPositions, world -> camera
    np.testing.assert_allclose(kept, expected, rtol=0, atol=1e-5)


def test_people_flags_and_metadata(miniature, converted) -> None:
    _, truth = miniature
    counts = set()
    for split in SPLITS:
        for sample in converted[split]:
            frame = truth.frames[sample.key]
            assert (sample.split, sample.sequence, sample.frame) == (split, frame.sequence, frame.frame)
            assert sample.genders == list(frame.genders) and sample.coords == "camera"
            assert sample.extra["gender_letters"] == [g[0] for g in frame.genders]
            assert sample.people["betas"].shape == (sample.num_people, 10)
            np.testing.assert_allclose(sample.people["betas"], frame.betas)
            np.testing.assert_array_equal(sample.flags["campose_valid"], frame.campose_valid)
            np.testing.assert_array_equal(sample.people["valid"], frame.valid)
            assert sample.joints2d_format == "coco18" and sample.people["joints2d"].shape == (sample.num_people, 18, 3)
            assert sample.extra["img_frame_id"] == 2 * sample.frame
            counts.add(sample.num_people)
    flags = [(c, d) for s in converted["test"] + converted["train"]
             for c, d in zip(s.flags["campose_valid"], s.flags["poses2d_detected"])]
    assert {(True, True), (False, True), (True, False)} <= set(flags)
    assert counts == {1, 2}


def test_boxes_are_spin_boxes_of_the_visible_keypoints(converted) -> None:
    for sample in converted["test"] + converted["train"]:
        K = sample.camera.K
        for p, box in enumerate(sample.people["bbox"]):
            joints2d, joints3d = sample.people["joints2d"][p], sample.people["joints3d"][p]
            if sample.flags["poses2d_detected"][p]:
                points = joints2d[joints2d[:, 2] > 0, :2]
            else:  # no detection: the projected 3D joints
                points = joints3d[:, :2] / joints3d[:, 2:] * np.diag(K)[:2] + K[:2, 2]
            centre, half = (points.max(0) + points.min(0)) / 2, 0.6 * (points.max(0) - points.min(0))
            np.testing.assert_allclose(box, np.concatenate([centre - half, centre + half]))


def test_image_bytes_camera_and_size_come_from_the_raw_files(miniature, converted) -> None:
    _, truth = miniature
    for sample in converted["validation"] + converted["test"]:
        frame = truth.frames[sample.key]
        assert sample.image == frame.image.read_bytes()
        assert (sample.width, sample.height) == (135, 240)
        np.testing.assert_array_equal(sample.camera.K, frame.cam_K)
        np.testing.assert_allclose(sample.camera.R @ sample.camera.R.T, np.eye(3), atol=1e-12)


def test_keys_sorted_with_bounded_units(miniature, monkeypatch) -> None:
    root, truth = miniature
    monkeypatch.setattr(pw3d, "FRAMES_PER_UNIT", 3)
    converter = PW3DConverter(root, "test")
    units = converter.units()
    assert all(0 < u.stop - u.start <= 3 for u in units) and len(units) == 4
    keys = [s.key for u in units for s in converter.convert_unit(u).samples]
    assert keys == truth.keys("test") == sorted(keys)
    assert keys[0].startswith("downtown_walking_00-")  # lowercased order, not walkUphill first
    assert [p.name for p in converter.source_files()] == ["downtown_walking_00.pkl", "downtown_walkUphill_00.pkl"]


def test_doubled_sequence_folder_is_found(raw_copy) -> None:
    inner = raw_copy / "sequenceFiles" / "sequenceFiles"
    inner.mkdir()
    for split in SPLITS:
        (raw_copy / "sequenceFiles" / split).rename(inner / split)
    assert [u.item for u in PW3DConverter(raw_copy, "validation").units()] == ["outdoors_freestyle_01"]


@pytest.mark.slow
def test_cli_workers_give_identical_shards(miniature, tmp_path) -> None:
    root, truth = miniature
    assert convert_cli(root, tmp_path / "one", "--workers", "1") == 0
    assert convert_cli(root, tmp_path / "two", "--workers", "2") == 0
    one, two = (sorted((tmp_path / name).iterdir()) for name in ("one", "two"))
    assert [p.name for p in one] == [p.name for p in two] and len(one) > 2
    assert all(a.read_bytes() == b.read_bytes() for a, b in zip(one, two))
    assert json.loads((tmp_path / "one" / "manifest.json").read_text())["total_count"] == len(truth.keys("test"))


def _rewrite(path: Path, **changes) -> None:
    raw = load_pickle_restricted(path)
    raw.update(changes)
    path.write_bytes(py2_pickle_bytes({k: v for k, v in raw.items() if v is not None}))


TEST_PKL = Path("sequenceFiles/test/downtown_walking_00.pkl")


def _no_sequence_folder(root: Path) -> list[str]:
    shutil.rmtree(root / "sequenceFiles")
    return [str(root / "sequenceFiles"), "does not exist"]


def _truncated_pickle(root: Path) -> list[str]:
    data = (root / TEST_PKL).read_bytes()
    (root / TEST_PKL).write_bytes(data[: len(data) // 2])
    return [str(root / TEST_PKL), "sequence downtown_walking_00", "truncated"]


def _missing_key(root: Path) -> list[str]:
    _rewrite(root / TEST_PKL, cam_poses=None)
    return [str(root / TEST_PKL), "key 'cam_poses' is missing", "sequence downtown_walking_00"]


def _nonzero_long_betas(root: Path) -> list[str]:
    raw = load_pickle_restricted(root / TEST_PKL)
    long = [np.pad(b, (0, 290), constant_values=0.5) if len(b) == 10 else b + 0.5 for b in raw["betas"]]
    _rewrite(root / TEST_PKL, betas=long)
    return [str(root / TEST_PKL), "betas of actor 0", "sequence downtown_walking_00"]


def _missing_image(root: Path) -> list[str]:
    image = root / "imageFiles" / "downtown_walking_00" / "image_00002.jpg"
    image.unlink()
    return [str(image), "frame 2", "sequence downtown_walking_00"]


@pytest.mark.parametrize("damage", [_no_sequence_folder, _truncated_pickle, _missing_key, _nonzero_long_betas,
                                    _missing_image])
def test_bad_input_is_a_clear_error(raw_copy, tmp_path, capsys, damage) -> None:
    expected = damage(raw_copy)
    assert convert_cli(raw_copy, tmp_path / "out") == 2
    err = capsys.readouterr().err
    assert "humanbench convert: error: 3dpw: " in err and all(part in err for part in expected), err
    assert not (tmp_path / "out" / "manifest.json").exists()


def test_unknown_split_is_a_clear_error(miniature, tmp_path, capsys) -> None:
    assert convert_cli(miniature[0], tmp_path / "out", split="val") == 2
    assert "3dpw: unknown split 'val'; this dataset has ['train', 'validation', 'test']" in capsys.readouterr().err
    with pytest.raises(ConversionError, match="unknown split"):
        CONVERTERS["3dpw"](miniature[0], "dev")


def test_skip_bad_lists_every_skipped_item(raw_copy, tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(pw3d, "FRAMES_PER_UNIT", 2)
    _missing_image(raw_copy)
    upslope = raw_copy / "sequenceFiles" / "test" / "downtown_walkUphill_00.pkl"
    upslope.write_bytes(upslope.read_bytes()[:100])
    assert convert_cli(raw_copy, tmp_path / "out", "--skip-bad") == 0
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert [d["item"] for d in manifest["dropped"]] == ["downtown_walking_00[2:4]", "downtown_walkUphill_00"]
    assert "image_00002.jpg: image missing" in manifest["dropped"][0]["reason"]
    assert str(upslope) in manifest["dropped"][1]["reason"]
    assert manifest["total_count"] == 2
