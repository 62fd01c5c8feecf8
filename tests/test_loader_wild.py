"""In-the-wild converter on miniature clips: every input variant, the weak-perspective camera, masks,
the HumanNeRF/MonoHuman export and its re-import, bad input."""

from __future__ import annotations

import io
import json
import pickle
import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from scipy.ndimage import binary_dilation
from scipy.spatial.transform import Rotation

from humanbench.bodymodels import load_body_model
from humanbench.cli import main
from humanbench.loaders import CONVERTERS, wild
from humanbench.loaders.base import ConversionError
from humanbench.loaders.wild import WildConverter, decode_video, read_pare_file, weak_perspective_to_pinhole
from humanbench.schema import Camera, Sample, decode_image
from humanbench.synthetic.raw.ubody import write_video
from humanbench.synthetic.raw.wild import CLIP_LAYOUTS, WildMiniature, joblib_bytes, write_miniature_wild
from humanbench.wild_export import ExportError, export_wild, metadata_entry, person_mask

FRAMES = 6
PARAMS = ("betas", "global_orient", "body_pose", "transl")
DROPPED = {"PARE_folder/frame003", "PARE_video/000002"}


@pytest.fixture(scope="module")
def miniature(tmp_path_factory) -> WildMiniature:
    return write_miniature_wild(tmp_path_factory.mktemp("wild") / "raw", frames=FRAMES)


def _convert(root: Path, split: str = "all") -> tuple[list[Sample], list[dict[str, str]]]:
    converter = WildConverter(root, split)
    results = [converter.convert_unit(unit) for unit in converter.units()]
    return [s for r in results for s in r.samples], [d for r in results for d in r.dropped]


@pytest.fixture(scope="module")
def converted(miniature) -> tuple[list[Sample], list[dict[str, str]]]:
    return _convert(miniature.root)


@pytest.fixture(scope="module")
def smpl() -> torch.nn.Module:
    return load_body_model("smpl", "neutral", dtype=torch.float64)


@pytest.fixture
def raw_copy(miniature, tmp_path) -> Path:
    return Path(shutil.copytree(miniature.root, tmp_path / "raw"))


def _posed(model: torch.nn.Module, samples: list[Sample]) -> tuple[np.ndarray, np.ndarray]:
    """Camera-frame joints (N,24,3) and vertices (N,V,3) of the one person of each sample."""
    with torch.no_grad():
        out = model(**{name: torch.as_tensor(np.concatenate([s.people[name] for s in samples])) for name in PARAMS})
    return out.joints[:, :24].numpy(), out.vertices.numpy()


def _project(points: np.ndarray, K: np.ndarray) -> np.ndarray:
    """(N,J,3) points, (N,3,3) intrinsics -> (N,J,2) pixels."""
    return points[..., :2] / points[..., 2:] * np.diagonal(K, axis1=1, axis2=2)[:, None, :2] + K[:, None, :2, 2]


def _rotations(rotvecs: np.ndarray) -> np.ndarray:
    return Rotation.from_rotvec(rotvecs.reshape(-1, 3)).as_matrix()


def test_miniature_writes_every_layout_with_the_raw_names(miniature) -> None:
    root = miniature.root
    track = read_pare_file(root / "PARE_video" / "pare_output.pkl")
    assert list(track) == [1, 7] and track[1]["joints2d"] is None
    shapes = {"pose": (5, 24, 3, 3), "betas": (5, 10), "pred_cam": (5, 3), "orig_cam": (5, 4), "bboxes": (5, 4),
              "verts": (5, 6890, 3), "joints3d": (5, 49, 3), "smpl_joints2d": (5, 49, 2), "frame_ids": (5,)}
    assert {k: v.shape for k, v in track[1].items() if v is not None} == {**shapes, "pred_cam_t": (5, 3)}
    assert track[1]["pose"].dtype == np.float32 and track[1]["frame_ids"].tolist() == [0, 1, 3, 4, 5]
    data = (root / "PARE_video" / "pare_output.pkl").read_bytes()
    assert data[:3] == b"\x80\x04\x95" and b"NumpyArrayWrapper" in data
    folder_mode = read_pare_file(root / "PARE_folder" / "pare_results" / "frame001.pkl")
    assert folder_mode["pred_pose"].shape == (2, 24, 3, 3) and folder_mode["smpl_vertices"].shape == (2, 6890, 3)
    assert not (root / "PARE_folder" / "pare_results" / "frame003.pkl").exists()
    assert b"NumpyArrayWrapper" not in (root / "MonoHuman_pare" / "pare" / "img_0000.pkl").read_bytes()
    flat = json.loads((root / "HumanNeRF" / "metadata.json").read_text())["000002"]
    nested = json.loads((root / "MonoHuman" / "metadata.json").read_text())["000002"]
    assert set(flat) == {"poses", "betas", "cam_intrinsics", "cam_extrinsics"}
    assert np.shape(flat["poses"]) == (72,) and np.shape(nested["poses"]) == (1, 72)
    assert np.shape(nested["betas"]) == (1, 10) and np.shape(flat["cam_extrinsics"]) == (4, 4)
    rvm = sorted(p.name for p in (root / "PARE_video" / "masks").iterdir())
    assert rvm == [f"{i:04d}.png" for i in range(FRAMES)]
    alpha = np.asarray(Image.open(root / "PARE_video" / "masks" / "0001.png"))
    assert alpha.ndim == 2 and {0, 100, 255} <= set(np.unique(alpha).tolist())  # soft halo below 128
    assert np.asarray(Image.open(root / "HumanNeRF" / "masks" / "000001.png")).shape == (160, 120, 3)
    assert (root / "PARE_folder" / "mask.mp4").is_file() and (root / "PARE_video" / "video.mp4").is_file()


def test_joblib_reader_handles_fortran_order_big_endian_and_old_wrappers(tmp_path) -> None:
    arrays = {"f": np.asfortranarray(np.arange(12.0).reshape(3, 4)), "b": np.arange(5, dtype=">i4"),
              "empty": np.zeros((0, 3), np.float32)}
    path = tmp_path / "x.pkl"
    path.write_bytes(joblib_bytes({"arrays": arrays, "none": None}))
    loaded = read_pare_file(path)["arrays"]
    assert all(np.array_equal(loaded[k], v) and loaded[k].shape == v.shape for k, v in arrays.items())
    assert loaded["b"].dtype == np.dtype("=i4")
    path.write_bytes(joblib_bytes({"a": np.arange(3)}, alignment=None))  # joblib < 1.2: no padding
    data = path.read_bytes()
    assert b"numpy_array_alignment_bytes" not in data and data.endswith(b"ub" + np.arange(3).tobytes() + b"u.")
    np.testing.assert_array_equal(read_pare_file(path)["a"], np.arange(3))


def test_weak_perspective_formula() -> None:
    K, transl = weak_perspective_to_pinhole(np.array([[0.5, 0.1, -0.2]]), np.array([[100.0, 200.0, 448.0, 448.0]]))
    np.testing.assert_allclose(K[0], [[10000.0, 0, 100.0], [0, 10000.0, 200.0], [0, 0, 1]])
    np.testing.assert_allclose(transl[0], [0.1, -0.2, 2 * 5000 / (224 * 0.5 + 1e-9)], rtol=1e-15)


def test_params_cameras_and_drops_match_the_truth(miniature, converted) -> None:
    samples, dropped = converted
    assert {d["item"] for d in dropped} == DROPPED
    assert sorted(s.key for s in samples) == sorted(k for k, f in miniature.frames.items() if f.has_smpl)
    for sample in samples:
        frame = miniature.frames[sample.key]
        exact = sample.extra["smpl_source"] == "metadata.json"  # PARE files are float32
        tol = dict(rtol=0, atol=1e-12) if exact else dict(rtol=2e-6, atol=2e-6)
        assert (sample.sequence, sample.frame, sample.extra["item_id"]) == (frame.clip, frame.position, frame.item_id)
        np.testing.assert_allclose(sample.people["betas"][0], frame.betas, **tol)
        np.testing.assert_allclose(_rotations(sample.people["global_orient"]), _rotations(frame.global_orient), **tol)
        np.testing.assert_allclose(_rotations(sample.people["body_pose"]), _rotations(frame.body_pose), **tol)
        np.testing.assert_allclose(sample.people["transl"][0], frame.transl, rtol=2e-6, atol=1e-12 if exact else 2e-6)
        np.testing.assert_allclose(sample.camera.K, frame.K, rtol=2e-6, atol=1e-12 if exact else 1e-4)
        assert sample.coords == "camera" and sample.genders == ["neutral"] and sample.body_model == "smpl"
        if not exact:
            half = frame.bbox[2] / 2
            np.testing.assert_allclose(sample.people["bbox"][0], [*(frame.bbox[:2] - half), *(frame.bbox[:2] + half)],
                                       atol=1e-4)
            np.testing.assert_allclose(sample.extra["pred_cam"], frame.pred_cam, rtol=1e-6)
    assert {s.extra["smpl_source"] for s in samples} == {"metadata.json", "pare_output.pkl", "pare_results", "pare"}
    assert {s.extra["mask_source"] for s in samples} == {"masks", "rvm", "video"}
    assert {s.person_ids[0] for s in samples if s.sequence == "PARE_video"} == {"1"}


def test_weak_perspective_camera_reprojects_the_joints(miniature, converted, smpl) -> None:
    samples, _ = converted
    joints, _ = _posed(smpl, samples)
    uv = _project(joints, np.stack([s.camera.K for s in samples]))
    pare = np.stack([miniature.frames[s.key].joints2d for s in samples])  # PARE's smpl_joints2d
    rendered = np.stack([miniature.frames[s.key].rendered_joints2d for s in samples])  # the world's camera
    np.testing.assert_allclose(uv, pare, rtol=0, atol=1e-3)
    assert np.abs(uv - rendered).max() < 2.0  # the regressor's far camera has weaker perspective


def test_projected_vertices_land_on_the_mask(converted, smpl) -> None:
    samples, _ = converted
    _, vertices = _posed(smpl, samples)
    pixels = np.rint(_project(vertices, np.stack([s.camera.K for s in samples]))).astype(int)
    for sample, uv in zip(samples, pixels):
        mask = binary_dilation(decode_image(sample.mask) != 0, iterations=2)
        inside = (uv >= 0).all(1) & (uv[:, 0] < sample.width) & (uv[:, 1] < sample.height)
        on_mask = np.zeros(len(uv), bool)
        on_mask[inside] = mask[uv[inside, 1], uv[inside, 0]]
        assert on_mask.mean() >= 0.99, (sample.key, on_mask.mean())


def test_images_and_masks_come_from_the_raw_files(miniature, converted) -> None:
    samples, _ = converted
    for sample in samples:
        frame = miniature.frames[sample.key]
        mask = decode_image(sample.mask)
        assert set(np.unique(mask).tolist()) == {0, 1} and (sample.width, sample.height) == miniature.size
        if sample.extra["mask_source"] == "video":  # lossy: a pixel or two along the outline may flip
            assert ((mask != 0) != frame.mask).sum() <= 5
        else:
            np.testing.assert_array_equal(mask != 0, frame.mask)
        if frame.image is not None:
            assert sample.image == frame.image.read_bytes()
            assert sample.image_format == frame.image.suffix[1:] and sample.extra["frame_source"] == "images"
        else:
            assert sample.image_format == "png" and sample.extra["frame_source"] == "video"
    decoded = [s for s in samples if s.sequence == "PARE_video"]
    reference = [decode_image(miniature.frames[s.key.replace("pare_video", "humannerf")].image.read_bytes())
                 for s in decoded]
    errors = [np.abs(decode_image(s.image).astype(int) - r).mean() for s, r in zip(decoded, reference)]
    assert max(errors) < 4, errors  # the right frame through H.264 (about 2; a wrong frame is 6 or more)


def test_splits_hold_out_the_last_fifth(miniature) -> None:
    test, _ = _convert(miniature.root, "test")
    train, dropped = _convert(miniature.root, "train")
    assert {s.frame for s in test} == {FRAMES - 1} and len(test) == len(CLIP_LAYOUTS)
    assert {s.frame for s in train} == set(range(FRAMES - 1)) and {d["item"] for d in dropped} == DROPPED
    assert [u.describe() for u in WildConverter(miniature.root, "test").units()][0] == "HumanNeRF[5:6]"


def test_units_are_bounded_and_keys_sorted(miniature, monkeypatch) -> None:
    monkeypatch.setattr(wild, "FRAMES_PER_UNIT", 4)
    converter = WildConverter(miniature.root, "all")
    units = converter.units()
    assert len(units) == 2 * len(CLIP_LAYOUTS) and all(0 < u.stop - u.start <= 4 for u in units)
    keys = [s.key for u in units for s in converter.convert_unit(u).samples]
    assert keys == sorted(keys) and keys[0] == "humannerf-000000"
    sources = [p.relative_to(miniature.root).as_posix() for p in converter.source_files()]
    assert sources == ["HumanNeRF/metadata.json", "MonoHuman/metadata.json",
                       *[f"MonoHuman_pare/pare/img_{i:04d}.pkl" for i in range(FRAMES)],
                       *[f"PARE_folder/pare_results/frame{i:03d}.pkl" for i in range(FRAMES) if i != 3],
                       "PARE_video/pare_output.pkl"]


def test_rotated_extrinsics_fold_the_pelvis(raw_copy, converted, smpl) -> None:
    path = raw_copy / "HumanNeRF" / "metadata.json"
    content = json.loads(path.read_text())
    expected = {s.extra["item_id"]: s for s in converted[0] if s.sequence == "HumanNeRF"}
    rng = np.random.default_rng(3)
    for item, entry in content.items():
        R = Rotation.from_rotvec(rng.normal(size=3)).as_matrix()
        betas = np.array(entry["betas"])
        with torch.no_grad():
            pelvis = smpl(betas=torch.as_tensor(betas[None])).joints[0, 0].numpy()
        orient = Rotation.from_matrix(R.T) * Rotation.from_rotvec(entry["poses"][:3])
        extrinsics = np.eye(4)
        extrinsics[:3, :3], extrinsics[:3, 3] = R, expected[item].people["transl"][0] + pelvis - R @ pelvis
        entry.update(poses=[*orient.as_rotvec(), *entry["poses"][3:]], cam_extrinsics=extrinsics.tolist())
    path.write_text(json.dumps(content))
    for sample in _convert(raw_copy)[0]:
        if sample.sequence == "HumanNeRF":
            reference = expected[sample.extra["item_id"]]
            np.testing.assert_allclose(sample.people["transl"], reference.people["transl"], atol=1e-10)
            np.testing.assert_allclose(_rotations(sample.people["global_orient"]),
                                       _rotations(reference.people["global_orient"]), atol=1e-10)
            assert sample.synthetic == smpl.synthetic


def test_axis_angle_pose_is_read_too(raw_copy, converted) -> None:
    path = raw_copy / "PARE_video" / "pare_output.pkl"
    tracks = read_pare_file(path)
    for track in tracks.values():
        track["pose"] = Rotation.from_matrix(track["pose"].reshape(-1, 3, 3)).as_rotvec().reshape(-1, 72)
    path.write_bytes(joblib_bytes(tracks))
    again = {s.key: s for s in _convert(raw_copy)[0] if s.sequence == "PARE_video"}
    for sample in converted[0]:
        if sample.sequence == "PARE_video":
            np.testing.assert_allclose(again[sample.key].people["body_pose"], sample.people["body_pose"], atol=1e-7)


@pytest.mark.slow
def test_export_and_reimport_give_the_same_params(miniature, converted, tmp_path) -> None:
    samples, _ = converted
    shards = tmp_path / "shards"
    assert convert_cli(miniature.root, shards) == 0
    subjects = export_wild(shards, tmp_path / "humannerf")
    assert [(s.folder.name, s.frames) for s in subjects] == [(name, FRAMES - (layout.missing is not None))
                                                            for name, layout in CLIP_LAYOUTS.items()]
    nested = export_wild(shards, tmp_path / "monohuman", variant="monohuman")
    entry = json.loads((nested[0].folder / "metadata.json").read_text())["000000"]
    assert np.shape(entry["poses"]) == (1, 72) and np.shape(entry["betas"]) == (1, 10)
    for folder in (tmp_path / "humannerf", tmp_path / "monohuman"):
        again = {(s.sequence, s.extra["item_id"]): s for s in _convert(folder)[0]}
        assert len(again) == len(samples)
        for sample in samples:
            back = again[sample.sequence, sample.extra["item_id"]]
            for name in PARAMS:
                np.testing.assert_array_equal(back.people[name], sample.people[name])
            np.testing.assert_array_equal(back.camera.K, sample.camera.K)
            np.testing.assert_array_equal(decode_image(back.mask), decode_image(sample.mask))
            np.testing.assert_array_equal(decode_image(back.image), decode_image(sample.image))
            assert back.extra["item_id"] == sample.extra["item_id"] and back.image_format == "png"
    with pytest.raises(ExportError, match="exists already"):
        export_wild(shards, tmp_path / "humannerf")
    from humanbench.cli import main

    assert main(["export-wild", str(shards), "--out", str(tmp_path / "cli"), "--variant", "monohuman"]) == 0
    assert (tmp_path / "cli" / nested[0].folder.name / "metadata.json").read_bytes() == \
        (nested[0].folder / "metadata.json").read_bytes()
    assert main(["export-wild", str(shards), "--out", str(tmp_path / "cli")]) == 2  # exists already: clear error


def convert_cli(root: Path, out: Path, *extra: str, split: str = "all") -> int:
    return main(["convert", "wild", "--root", str(root), "--out", str(out), "--split", split, "--max-count", "8",
                 *extra])


def _missing_mask(root: Path) -> list[str]:
    path = root / "HumanNeRF" / "masks" / "000003.png"
    path.unlink()
    return [str(path), "mask missing for frame '000003'"]


def _truncated_metadata(root: Path) -> list[str]:
    path = root / "MonoHuman" / "metadata.json"
    path.write_text(path.read_text()[:500])
    return [str(path), "is not valid JSON", "truncated"]


def _short_video(root: Path) -> list[str]:
    path = root / "PARE_video" / "video.mp4"
    write_video(path, decode_video(path, 0, 4, "rgb24"))
    return [str(root / "PARE_video" / "pare_output.pkl"), "frame_id 5 but the clip has only 4 frames"]


def _short_mask_video(root: Path) -> list[str]:
    path = root / "PARE_folder" / "mask.mp4"
    write_video(path, decode_video(path, 0, 3, "rgb24"))
    return [str(path), "video has only 3 frames"]


def _malicious_pickle(root: Path) -> list[str]:
    path = root / "MonoHuman_pare" / "pare" / "img_0002.pkl"
    path.write_bytes(b"\x80\x02cos\nsystem\n\x8c\x04echo\x85R.")
    return [str(path), "refused to load 'os.system'"]


def _malicious_joblib(root: Path) -> list[str]:
    path = root / "PARE_folder" / "pare_results" / "frame002.pkl"
    path.write_bytes(b"\x80\x04\x8c\x13joblib.numpy_pickle0cposix\nsystem\n\x8c\x04echo\x85R.")
    return [str(path), "refused to load 'posix.system'"]


def _cut_joblib(root: Path) -> list[str]:
    path = root / "PARE_video" / "pare_output.pkl"
    path.write_bytes(path.read_bytes()[:5000])
    return [str(path), "truncated"]


def _stray_params(root: Path) -> list[str]:
    shutil.copy(root / "PARE_folder" / "pare_results" / "frame000.pkl", root / "PARE_folder" / "pare_results" / "x.pkl")
    return [str(root / "PARE_folder" / "pare_results"), "has x.pkl but the clip has no frame 'x'"]


@pytest.mark.parametrize("damage", [_missing_mask, _truncated_metadata, _short_video, _short_mask_video,
                                    _malicious_pickle, _malicious_joblib, _cut_joblib, _stray_params])
def test_bad_input_is_a_clear_error(raw_copy, tmp_path, capsys, damage) -> None:
    expected = damage(raw_copy)
    assert convert_cli(raw_copy, tmp_path / "out") == 2
    err = capsys.readouterr().err
    assert "humanbench convert: error: wild: " in err and all(part in err for part in expected), err
    assert not (tmp_path / "out" / "manifest.json").exists()


def test_skip_bad_lists_every_skipped_item(raw_copy, tmp_path) -> None:
    _missing_mask(raw_copy)
    _truncated_metadata(raw_copy)
    assert convert_cli(raw_copy, tmp_path / "out", "--skip-bad") == 0
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    items = {d["item"]: d["reason"] for d in manifest["dropped"]}
    assert set(items) == {"HumanNeRF[0:6]", "MonoHuman[0:6]"} | DROPPED
    assert "000003.png: mask missing" in items["HumanNeRF[0:6]"] and "not valid JSON" in items["MonoHuman[0:6]"]
    assert manifest["total_count"] == 3 * FRAMES - 2


def test_layout_errors(miniature, tmp_path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConversionError, match="holds no clip folders"):
        WildConverter(tmp_path / "empty", "all").units()
    with pytest.raises(ConversionError, match=r"unknown split 'val'; this dataset has \['all', 'train', 'test'\]"):
        CONVERTERS["wild"](miniature.root, "val")
    clip = tmp_path / "lonely" / "clip"
    (clip / "images").mkdir(parents=True)
    (clip / "images" / "a.png").write_bytes(_png())
    converter = WildConverter(tmp_path / "lonely", "all")
    with pytest.raises(ConversionError, match="has no SMPL: expected one of"):
        converter.convert_unit(converter.units()[0])


def _png() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (4, 4)).save(buffer, format="PNG")
    return buffer.getvalue()


def test_pickled_track_must_have_the_pare_keys(raw_copy) -> None:
    path = raw_copy / "PARE_video" / "pare_output.pkl"
    path.write_bytes(pickle.dumps({1: {"pred_cam": np.zeros((1, 3))}}))
    with pytest.raises(ConversionError, match=r"track 1 has no key 'bboxes'"):
        _convert(raw_copy)


@pytest.mark.slow
def test_cli_workers_give_identical_shards(miniature, tmp_path) -> None:
    assert convert_cli(miniature.root, tmp_path / "one", "--workers", "1") == 0
    assert convert_cli(miniature.root, tmp_path / "two", "--workers", "2") == 0
    one, two = (sorted((tmp_path / name).iterdir()) for name in ("one", "two"))
    assert [p.name for p in one] == [p.name for p in two] and len(one) > 2
    assert all(a.read_bytes() == b.read_bytes() for a, b in zip(one, two))


def test_export_refuses_what_humannerf_cannot_hold(converted, tmp_path) -> None:
    sample = converted[0][0]
    with pytest.raises(ExportError, match="has no mask"):
        person_mask(replace(sample, mask=None), 0)
    with pytest.raises(ExportError, match="needs camera-frame SMPL parameters; the sample has body model 'smpl', "
                                          "coords 'world'"):
        metadata_entry(replace(sample, coords="world"), 0, nested=False)
    with pytest.raises(ExportError, match="has 1 people, no person 1"):
        metadata_entry(sample, 1, nested=False)
    with pytest.raises(ExportError, match="lens distortion"):
        metadata_entry(replace(sample, camera=Camera(K=sample.camera.K, dist=np.array([0.1, 0, 0, 0]))), 0, nested=False)
    with pytest.raises(ExportError, match="unknown variant 'neuman'"):
        export_wild(tmp_path, tmp_path / "out", variant="neuman")
