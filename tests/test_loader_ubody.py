"""UBody converter: round trip through a miniature download, splits, frame numbering, validity, bad input."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from humanbench.bodymodels import ENV_VAR, load_body_model
from humanbench.cli import main
from humanbench.convert import convert
from humanbench.loaders.base import ConversionError
from humanbench.loaders.ubody import UBodyConverter, decode_video_frames, video_key
from humanbench.schema import Sample, decode_image, decode_sample
from humanbench.shards import iter_encoded
from humanbench.synthetic.official_files import write_model_folder
from humanbench.synthetic.raw.ubody import (COCO_WHOLEBODY_FROM_SMPLX, QUIRKS, STAMP_SIZE, TEST_VIDEOS,
                                            UBodyMiniature, project, stamp_value, write_miniature_ubody,
                                            write_video)

pytestmark = pytest.mark.slow  # the module fixture renders 15 frames of SMPL-X people


@pytest.fixture(scope="module")
def body_models(tmp_path_factory) -> Path:
    return write_model_folder(tmp_path_factory.mktemp("bm"), kinds=("smplx",), genders=("neutral",),
                              kid_templates={}, index_sets={})


@pytest.fixture(scope="module")
def miniature(tmp_path_factory, body_models) -> UBodyMiniature:
    return write_miniature_ubody(tmp_path_factory.mktemp("ubody") / "raw", body_models=body_models, frames=3)


def converted(root: Path, out: Path, split: str, body_models: Path) -> list[Sample]:
    convert("ubody", root, out, split=split, body_models=body_models, progress=False)
    return [decode_sample(e) for e in iter_encoded(out)]


@pytest.fixture(scope="module")
def intra(tmp_path_factory, miniature, body_models) -> dict[str, list[Sample]]:
    out = tmp_path_factory.mktemp("out")
    return {split: converted(miniature.root, out / split, split, body_models)
            for split in ("intra-train", "intra-test")}


@pytest.fixture
def raw(tmp_path, miniature) -> Path:
    """A private copy of the miniature to break."""
    return Path(shutil.copytree(miniature.root, tmp_path / "raw"))


def people_of(samples: list[Sample]):
    """(sample, person index, scene, annotation id) of every person."""
    return [(s, p, s.extra["scene"], a) for s in samples for p, a in enumerate(s.extra["annotation_ids"])]


def test_round_trip_params_joints_and_keypoints(intra, miniature, body_models) -> None:
    truth = {(g.scene, g.annotation_id): g for g in miniature.people}
    found = people_of(intra["intra-train"] + intra["intra-test"])
    assert sorted((scene, a) for _, _, scene, a in found) == sorted(truth)
    fitted = [(s, p, truth[scene, a]) for s, p, scene, a in found if s.flags["has_smplx"][p]]
    params = {name: torch.as_tensor(np.stack([s.people[name][p] for s, p, _ in fitted]))
              for name in ("betas", "global_orient", "body_pose", "transl", "left_hand_pose", "right_hand_pose",
                           "jaw_pose", "leye_pose", "reye_pose", "expression")}
    model = load_body_model("smplx", "neutral", root=body_models, dtype=torch.float64)
    with torch.no_grad():
        joints = model(**params).joints.numpy()
    expected = np.stack([gt.joints for _, _, gt in fitted])
    np.testing.assert_allclose(joints, expected, atol=1e-5)
    mapped = COCO_WHOLEBODY_FROM_SMPLX >= 0
    for (sample, p, gt), person_joints in zip(fitted, joints):
        K = sample.people["person_K"][p]
        np.testing.assert_allclose(K, gt.K)
        pixels = project(person_joints[COCO_WHOLEBODY_FROM_SMPLX[mapped]], K)
        np.testing.assert_allclose(pixels, gt.keypoints[mapped, :2], atol=1e-3)
        np.testing.assert_allclose(sample.people["joints2d"][p], gt.keypoints, atol=1e-9)
        np.testing.assert_allclose(sample.people["left_hand_pose"][p], gt.params["left_hand_pose"], atol=1e-12)


def test_validity_flags_and_multi_person_frames(intra, miniature) -> None:
    truth = {(g.scene, g.annotation_id): g for g in miniature.people}
    samples = intra["intra-train"] + intra["intra-test"]
    for sample, p, scene, a in people_of(samples):
        gt = truth[scene, a]
        assert sample.people["valid"][p] == gt.valid, gt.quirk
        assert sample.flags["iscrowd"][p] == (gt.quirk == "iscrowd")
        assert (sample.flags["num_keypoints"][p] == 0) == (gt.quirk == "no_keypoints")
        assert (sample.flags["valid_label"][p] == 0) == (gt.quirk == "valid_label_0")
        assert sample.flags["has_smplx"][p] == (gt.quirk != "no_smplx")
        assert sample.flags["rhand_valid"][p] == (gt.quirk not in ("right_hand_invalid", "no_smplx"))
        if gt.quirk == "no_smplx":
            assert not sample.people["transl"][p].any()
    assert {g.quirk for g in miniature.people} - {""} == set(QUIRKS.values())
    multi = [s for s in samples if s.num_people == 2]
    assert multi and all(s.genders == ["neutral", "neutral"] for s in multi)
    first = multi[0]
    np.testing.assert_allclose(first.camera.K, first.people["person_K"][0])


def test_splits_use_video_keys_with_trim_cut(tmp_path, intra, miniature, body_models) -> None:
    train, test = intra["intra-train"], intra["intra-test"]
    assert {s.extra["video_key"] for s in test} == set(TEST_VIDEOS["intra"])
    assert not {s.extra["video_key"] for s in train} & set(TEST_VIDEOS["intra"])
    assert "Magic_show_S2_Trim1/Magic_show_S2_Trim1/000003.png" in {s.extra["file_name"] for s in test}
    for samples in (train, test):
        keys = [s.key for s in samples]
        assert keys == sorted(keys) and len(set(keys)) == len(keys)
        assert all(s.frame != 2 for s in samples)  # frame 2 is never annotated: numbering keeps the gap
    inter = converted(miniature.root, tmp_path / "inter", "inter-test", body_models)
    assert {s.extra["scene"] for s in inter} == {"TalkShow"}
    assert video_key("/TalkShow_S1_Trim1/TalkShow_S1_Trim1/000001.png".lstrip("/")) == "TalkShow_S1"


def test_frames_are_numbered_from_one_and_extracted_ones_kept(intra, miniature) -> None:
    samples = intra["intra-train"] + intra["intra-test"]
    sources = {s.extra["frame_source"] for s in samples}
    assert sources == {"images", "video"}
    for sample in samples:
        if sample.extra["frame_source"] == "images":
            path = miniature.root / "images" / sample.extra["scene"] / sample.extra["file_name"]
            assert sample.image == path.read_bytes()
        corner = decode_image(sample.image)[2:STAMP_SIZE - 2, 2:STAMP_SIZE - 2].astype(float)
        assert abs(corner.mean() - stamp_value(sample.frame)) < 8, sample.key


def test_video_decoding_repeats_frames_of_slower_videos(tmp_path) -> None:
    frames = [np.full((32, 48, 3), 30 * i + 20, np.uint8) for i in range(5)]
    at_30 = decode_video_frames(write_video(tmp_path / "a.mp4", frames, fps=30), [1, 3, 5])
    assert {n: round(float(p.mean()) / 30) for n, p in at_30.items()} == {1: 1, 3: 3, 5: 5}
    at_15 = decode_video_frames(write_video(tmp_path / "b.mp4", frames, fps=15), [1, 2, 3, 4, 10])
    assert {n: round(float(p.mean()) / 30) for n, p in at_15.items()} == {1: 1, 2: 1, 3: 2, 4: 2, 10: 5}
    with pytest.raises(ConversionError, match="no frame 000006"):
        decode_video_frames(tmp_path / "a.mp4", [6])


def cli(raw: Path, out: Path, split: str, body_models: Path, *extra: str) -> int:
    return main(["convert", "ubody", "--root", str(raw), "--out", str(out), "--split", split,
                 "--body-models", str(body_models), *extra])


def test_missing_and_truncated_annotations(raw, tmp_path, miniature, body_models, capsys) -> None:
    smplx = raw / "annotations" / "TalkShow" / "smplx_annotation.json"
    smplx.unlink()
    assert cli(raw, tmp_path / "a", "intra-train", body_models) == 2
    assert "TalkShow/smplx_annotation.json: SMPL-X annotation is missing" in capsys.readouterr().err
    shutil.copy(miniature.root / "annotations" / "TalkShow" / "smplx_annotation.json", smplx)
    path = raw / "annotations" / "Magic_show" / "keypoint_annotation.json"
    path.write_bytes(path.read_bytes()[:500])
    with pytest.raises(ConversionError, match="keypoint_annotation.json: keypoint annotation is not valid JSON"):
        convert("ubody", raw, tmp_path / "b", split="intra-test", body_models=body_models, progress=False)
    assert cli(raw, tmp_path / "c", "intra-test", body_models, "--skip-bad") == 0
    manifest = json.loads((tmp_path / "c" / "manifest.json").read_text())
    assert [d["item"] for d in manifest["dropped"]] == ["Magic_show"]
    assert "not valid JSON" in manifest["dropped"][0]["reason"]
    assert manifest["total_count"] == 2  # TalkShow_S2 frames 1 and 3


def test_missing_video_or_frames_for_an_annotated_frame(raw, tmp_path, body_models, capsys) -> None:
    shutil.rmtree(raw / "videos" / "Magic_show" / "Magic_show_S1_Trim2")
    assert cli(raw, tmp_path / "a", "intra-train", body_models) == 2
    err = capsys.readouterr().err
    assert "neither the extracted image" in err and "Magic_show_S1_Trim2.mp4" in err
    assert cli(raw, tmp_path / "b", "intra-train", body_models, "--skip-bad") == 0
    manifest = json.loads((tmp_path / "b" / "manifest.json").read_text())
    assert [d["item"] for d in manifest["dropped"]] == ["Magic_show/Magic_show_S1_Trim2/Magic_show_S1_Trim2[0:2]"]
    video = raw / "videos" / "TalkShow" / "TalkShow_S2" / "TalkShow_S2.mp4"
    write_video(video, [np.zeros((96, 128, 3), np.uint8)] * 2)  # shorter than the annotated frame 3
    with pytest.raises(ConversionError, match="TalkShow_S2.mp4: video has no frame 000003"):
        convert("ubody", raw, tmp_path / "c", split="intra-test", body_models=body_models, progress=False)


def test_unknown_split_missing_split_file_and_body_models(raw, tmp_path, body_models, capsys, monkeypatch) -> None:
    assert cli(raw, tmp_path / "a", "test", body_models) == 2
    assert "unknown split 'test'" in capsys.readouterr().err
    (raw / "splits" / "inter_scene_test_list.npy").unlink()
    assert cli(raw, tmp_path / "b", "inter-train", body_models) == 2
    assert "inter_scene_test_list.npy: UBody split file is missing" in capsys.readouterr().err
    monkeypatch.delenv(ENV_VAR, raising=False)
    with pytest.raises(ConversionError, match="relative to the SMPL-X mean hand"):
        UBodyConverter(raw, "intra-train")
