"""EHF converter: GT mesh through the fixed camera, OpenPose keypoints, PLY parsing, camera file, bad input."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from humanbench.cli import main
from humanbench.convert import convert
from humanbench.loaders import ehf
from humanbench.loaders.base import ConversionError
from humanbench.schema import Sample, decode_sample
from humanbench.shards import iter_encoded
from humanbench.synthetic.raw.ehf import EHFMiniature, camera_text, write_miniature_ehf, write_ply

# The values of EHF_camera.txt quoted in formats.md §4.2 (rotation vector to mmhuman3d's digits).
FORMATS_MD = {"focal": 1498.22426237, "princpt": (790.263706, 578.90334),
              "rotvec": (-2.98747896, 0.01172457, -0.05704687), "t": (-0.03609917, 0.43416458, 2.37101226)}


@pytest.fixture(scope="module")
def miniature(tmp_path_factory) -> EHFMiniature:
    return write_miniature_ehf(tmp_path_factory.mktemp("ehf") / "raw")


@pytest.fixture(scope="module")
def samples(tmp_path_factory, miniature) -> list[Sample]:
    out = tmp_path_factory.mktemp("out")
    convert("ehf", miniature.root, out, split="test", progress=False)
    return [decode_sample(e) for e in iter_encoded(out)]


@pytest.fixture
def raw(tmp_path, miniature) -> Path:
    """A private copy of the miniature to break."""
    return Path(shutil.copytree(miniature.root, tmp_path / "raw"))


def test_camera_constants_are_the_published_ones() -> None:
    assert ehf.FOCAL == (FORMATS_MD["focal"],) * 2 and ehf.PRINCIPAL_POINT == FORMATS_MD["princpt"]
    assert ehf.TRANSLATION == FORMATS_MD["t"]
    np.testing.assert_allclose(ehf.ROTATION_VECTOR, FORMATS_MD["rotvec"], atol=1e-8)


def test_mesh_in_camera_frame_and_projection(samples, miniature) -> None:
    assert [s.key for s in samples] == ["ehf-001", "ehf-002", "ehf-100"]
    assert [s.frame for s in samples] == [1, 2, 100]
    R = Rotation.from_rotvec(FORMATS_MD["rotvec"]).as_matrix()
    for sample, truth in zip(samples, miniature.frames):
        assert (sample.width, sample.height, sample.image_format) == (1600, 1200, "jpg")
        assert sample.image == (miniature.root / f"{truth.frame_id}_img.jpg").read_bytes()
        vertices = sample.people["vertices"][0]
        np.testing.assert_allclose(vertices, truth.vertices_world @ R.T + FORMATS_MD["t"], atol=1e-7)
        np.testing.assert_array_equal(vertices, ehf.world_to_camera(truth.vertices_world))
        K = sample.camera.K
        pixels = vertices[:, :2] / vertices[:, 2:] * np.diag(K)[:2] + K[:2, 2]
        np.testing.assert_allclose(pixels, truth.pixels, atol=1e-3)
        np.testing.assert_allclose(sample.people["joints2d"][0], truth.keypoints, atol=1e-9)
        assert sample.joints2d_format == "openpose137" and sample.coords == "camera"
        assert "betas" not in sample.people and sample.people["valid"][0]
        assert sample.extra["ground_truth"] == "mesh"
        assert sample.extra["camera_file"] == "matches"


def test_ply_ascii_and_binary_agree(tmp_path) -> None:
    rng = np.random.default_rng(0)
    vertices, faces = rng.normal(size=(7, 3)).astype(np.float32), rng.integers(0, 7, (4, 3))
    binary = ehf.read_ply_vertices(write_ply(tmp_path / "b.ply", vertices, faces))
    ascii_ = ehf.read_ply_vertices(write_ply(tmp_path / "a.ply", vertices, faces, "ascii"))
    np.testing.assert_array_equal(binary, vertices.astype(np.float64))
    np.testing.assert_array_equal(ascii_, binary)
    (tmp_path / "t.ply").write_bytes((tmp_path / "b.ply").read_bytes()[:-60 - 13 * 4])
    with pytest.raises(ConversionError, match=r"t\.ply: PLY file is truncated"):
        ehf.read_ply_vertices(tmp_path / "t.ply")


def test_camera_file_is_cross_checked(raw, tmp_path) -> None:
    camera = raw / ehf.CAMERA_FILE
    camera.write_text("an unknown layout\n")
    assert ehf.check_camera_file(camera) == "unparsed"
    camera.write_text(camera_text().replace("1498.22426237", "1500.0"))
    with pytest.raises(ConversionError, match="EHF_camera.txt: focal is \\[1500.0, 1500.0\\]"):
        convert("ehf", raw, tmp_path / "out", split="test", progress=False)
    camera.unlink()
    assert ehf.check_camera_file(camera) == "absent"


def cli(raw: Path, out: Path, *extra: str) -> int:
    return main(["convert", "ehf", "--root", str(raw), "--out", str(out), "--split", "test", *extra])


def test_missing_and_truncated_files(raw, tmp_path, capsys) -> None:
    (raw / "02_align.ply").unlink()
    (raw / "100_2Djnt.json").write_text('{"people": [{"pose_keypoints_2d": [1.0, ')
    assert cli(raw, tmp_path / "a") == 2
    assert "02_align.ply: ground-truth mesh of EHF frame 02 is missing" in capsys.readouterr().err
    assert cli(raw, tmp_path / "b", "--skip-bad") == 0
    manifest = json.loads((tmp_path / "b" / "manifest.json").read_text())
    reasons = {d["item"]: d["reason"] for d in manifest["dropped"]}
    assert sorted(reasons) == ["02", "100"]
    assert "02_align.ply" in reasons["02"] and "100_2Djnt.json: not valid JSON" in reasons["100"]
    assert manifest["total_count"] == 1
    (raw / "01_img.jpg").unlink()
    with pytest.raises(ConversionError, match="01_img.jpg: image of EHF frame 01 is missing"):
        convert("ehf", raw, tmp_path / "c", split="test", progress=False)


def test_unknown_split_and_empty_folder(tmp_path, capsys) -> None:
    assert cli(tmp_path, tmp_path / "a") == 2
    assert "no XX_img.jpg / XX_align.ply / XX_2Djnt.json files" in capsys.readouterr().err
    assert main(["convert", "ehf", "--root", str(tmp_path), "--out", str(tmp_path / "b"), "--split", "train"]) == 2
    assert "unknown split 'train'" in capsys.readouterr().err
