"""AGORA converter: round trip through a miniature download (both image sets, SMPL-X and SMPL, kids),
CUDA-tagged tensors, pandas pickle layouts, refused malicious pickles, bad input and --skip-bad."""

from __future__ import annotations

import copyreg
import fcntl
import io
import json
import os
import pickle
import shutil
from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from humanbench.bodymodels import BodyModel, load_body_model, resolve_root
from humanbench.cli import main
from humanbench.convert import convert
from humanbench.loaders.agora import (AgoraConverter, SplitSpec, image_file, model_gender, parse_split, rot_y,
                                      scene_camera, split_names, unreal_to_cv)
from humanbench.loaders.agora_pickles import read_dataframe, read_fit
from humanbench.loaders.base import ConversionError
from humanbench.schema import Sample, decode_sample
from humanbench.shards import iter_encoded
from humanbench.synthetic.raw.agora import AgoraMiniature, ImageTruth, tensor_pickle_bytes, write_miniature_agora

KINDS = ("smplx", "smpl")


# --------------------------------------------------------------------------- fixtures


def _save_truth(miniature: AgoraMiniature, path: Path) -> None:
    """The miniature's truth as a plain npz (read back without pickles by :func:`_load_truth`)."""
    arrays = {"test_keys": np.array(miniature.test_keys),
              **{f"size_{k}": np.array(v) for k, v in miniature.sizes.items()}}
    for key, t in miniature.images.items():
        fields = {"split": t.split, "dataframe": t.dataframe, "genders": t.genders, "kid": t.kid, "valid": t.valid,
                  "occlusion": t.occlusion, **{f"{name}_{kind}": getattr(t, name)[kind]
                                               for name in ("joints3d", "joints2d") for kind in KINDS}}
        arrays.update({f"{key}/{name}": np.asarray(value) for name, value in fields.items()})
    np.savez(path, **arrays)


def _load_truth(root: Path, path: Path) -> AgoraMiniature:
    with np.load(path, allow_pickle=False) as npz:
        data = {name: npz[name] for name in npz.files}
    images = {}
    for key in sorted({name.split("/")[0] for name in data if "/" in name}):
        fields = {name.split("/")[1]: value for name, value in data.items() if name.startswith(f"{key}/")}
        images[key] = ImageTruth(str(fields["split"]), str(fields["dataframe"]), fields["genders"].tolist(),
                                 fields["kid"], fields["valid"], fields["occlusion"],
                                 {kind: fields[f"joints3d_{kind}"] for kind in KINDS},
                                 {kind: fields[f"joints2d_{kind}"] for kind in KINDS})
    sizes = {k: tuple(int(v) for v in data[f"size_{k}"]) for k in ("1280", "3840")}
    return AgoraMiniature(root, images, data["test_keys"].tolist(), sizes)


@pytest.fixture(scope="module")
def miniature(tmp_path_factory, worker_id) -> AgoraMiniature:
    """The miniature, generated once per test session (xdist workers share it under a file lock)."""
    if worker_id == "master":
        return write_miniature_agora(tmp_path_factory.mktemp("agora") / "raw")
    shared = tmp_path_factory.getbasetemp().parent / "agora-miniature"
    shared.mkdir(exist_ok=True)
    with open(shared / "lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (shared / "truth.npz").exists():
            _save_truth(write_miniature_agora(shared / "raw"), shared / "truth.npz")
    return _load_truth(shared / "raw", shared / "truth.npz")


@pytest.fixture
def raw(tmp_path, miniature) -> Path:
    """A private copy of the miniature to break."""
    return Path(shutil.copytree(miniature.root, tmp_path / "raw"))


def converted(root: Path, out: Path, split: str) -> list[Sample]:
    convert("agora", root, out, split=split, progress=False)
    return [decode_sample(encoded) for encoded in iter_encoded(out)]


@lru_cache(maxsize=None)
def schema_model(kind: str, gender: str, kid: bool) -> BodyModel:
    """A body model with the schema's conventions (load_body_model defaults), float64."""
    return load_body_model(kind, gender, age="kid" if kid else "adult", dtype=torch.float64)


def posed_joints(sample: Sample, person: int) -> np.ndarray:
    """(J, 3) camera-frame joints of one person of a sample, from its schema parameters alone."""
    kid = bool(sample.people["kid"][person])
    model = schema_model(sample.body_model, sample.genders[person], kid)
    inputs = {name: torch.from_numpy(value[person:person + 1]) for name, value in sample.people.items()
              if name not in ("betas", "joints2d", "joints3d", "bbox", "valid", "kid", "occlusion")}
    betas = sample.people["betas"][person:person + 1, :11 if kid else 10]
    with torch.no_grad():
        return model(betas=torch.from_numpy(betas), **inputs).joints[0].numpy()


# --------------------------------------------------------------------------- camera facts (formats.md §2.5)


def test_camera_rules_follow_the_kit() -> None:
    assert np.allclose(unreal_to_cv([100.0, 200.0, 300.0]), [2.0, -3.0, 1.0])  # [x, y, z] -> [y, -z, x], cm -> m
    assert np.allclose(rot_y(90.0) @ [1.0, 0.0, 0.0], [0.0, 0.0, -1.0])  # Rodrigues([0, +90 deg, 0])
    archviz = scene_camera("ag_trainset_renderpeople_bfh_archviz_5_10_cam01_00003.png", np.ones(3), 77.0)
    assert (archviz.rule, archviz.focal_mm, archviz.yaw, archviz.pitch) == ("cam01", 18.0, -135.0, 30.0)
    assert np.allclose(archviz.position, unreal_to_cv([400.0, 225.0, 265.0]))
    hdri = scene_camera("ag_validationset_axyz_bfh_hdri_50mm_5_10_00001.png", np.ones(3), 77.0)
    assert (hdri.focal_mm, hdri.yaw, hdri.pitch) == (50.0, 0.0, 0.0)
    forest = scene_camera("ag_trainset_axyz_bfh_brushifyforest_5_15_00002.png", np.array([100.0, 0.0, 50.0]), 33.0)
    assert (forest.rule, forest.focal_mm, forest.yaw, forest.pitch) == ("dataframe", 28.0, 33.0, 0.0)
    assert np.allclose(forest.position, [0.0, -0.5 - 1.7, 1.0])  # the kit's ground offset for these scenes
    K = forest.intrinsics(1280, 720)
    assert np.allclose(K, [[28 / 36 * 1280, 0, 640], [0, 28 / 20.25 * 720, 360], [0, 0, 1]])
    axis = archviz.rotation().T @ [0.0, 0.0, 1.0]  # optical axis in the world: pitched 30 deg down (+y), yawed
    assert np.allclose(axis, rot_y(-135.0) @ [0.0, 0.5, np.cos(np.pi / 6)])


def test_split_names_and_body_model_choice() -> None:
    assert "validation-1280" in split_names() and "train-3840-smpl" in split_names()
    assert "test-1280-smpl" not in split_names() and "validation" not in split_names()
    assert parse_split("validation-3840-smpl") == SplitSpec("validation", "3840", "smpl")
    assert parse_split("test-1280") == SplitSpec("test", "1280", "smplx")
    assert [model_gender("smplx", g, k) for g, k in [("female", True), ("male", True), ("female", False)]] == \
        ["neutral", "male", "female"]
    assert model_gender("smpl", "male", False) == "neutral"


def test_fit_paths_with_and_without_the_folder_prefix(tmp_path: Path) -> None:
    (tmp_path / "smplx_gt" / "subset").mkdir(parents=True)
    (tmp_path / "smplx_gt" / "subset" / "scan.pkl").write_bytes(b"")
    converter = AgoraConverter(tmp_path, "validation-1280")
    expected = tmp_path / "smplx_gt" / "subset" / "scan.pkl"
    assert converter.fit_path("smplx_gt/subset/scan.obj") == converter.fit_path("subset/scan.obj") == expected


# --------------------------------------------------------------------------- pickles


def test_cuda_tagged_tensors_load_on_the_cpu(tmp_path: Path) -> None:
    arrays = {"root_pose": np.arange(3.0).reshape(1, 3), "body_pose": np.linspace(-1, 1, 69).reshape(1, 23, 3)}
    for device in ("cuda", "cpu"):
        (tmp_path / f"{device}.pkl").write_bytes(tensor_pickle_bytes(arrays, device))
        fit = read_fit(tmp_path / f"{device}.pkl")
        assert all(np.array_equal(fit[k], v.astype(np.float32)) for k, v in arrays.items())
    reference = pickle.loads((tmp_path / "cpu.pkl").read_bytes())  # our own bytes: torch reads them as tensors
    assert isinstance(reference["body_pose"], torch.Tensor) and reference["body_pose"].shape == (1, 23, 3)
    if not torch.cuda.is_available():  # the device tag is real: torch itself refuses it without a GPU
        with pytest.raises(RuntimeError, match="CUDA"):
            pickle.loads((tmp_path / "cuda.pkl").read_bytes())


class _Payload:
    """Pickles as a call of os.system: what a malicious pickle looks like."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple:
        return os.system, (f"touch {self.marker}",)


def test_malicious_pickles_are_refused_and_nothing_runs(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    frame = pd.DataFrame({"imgPath": pd.Series(["a.png"], dtype=object),
                          "X": pd.Series([[_Payload(marker)]], dtype=object)})
    frame.to_pickle(tmp_path / "evil_withjv.pkl")
    with pytest.raises(ConversionError, match=r"evil_withjv\.pkl: refused to load '(posix|os)\.system'"):
        read_dataframe(tmp_path / "evil_withjv.pkl")
    (tmp_path / "fit.pkl").write_bytes(pickle.dumps({"betas": _Payload(marker)}))
    with pytest.raises(ConversionError, match="refused to load"):
        read_fit(tmp_path / "fit.pkl")
    assert not marker.exists()


class _LegacyPickler(pickle._Pickler):
    """Writes classes and functions under the names given, without checking they import."""

    def save_global(self, obj: object, name: str | None = None) -> None:
        self.write(pickle.GLOBAL + f"{obj.__module__}\n{obj.__qualname__}\n".encode())
        self.memoize(obj)


def _named_class(module: str, name: str, **attrs: object) -> type:
    """A class that pickles as the global ``module.name``."""
    return type(name, (), {"__module__": module, "__qualname__": name, **attrs})


def _named(module: str, name: str, state: object) -> object:
    """An object pickling as NEWOBJ ``module.name`` + BUILD(state), like pandas <= 1.2 objects."""
    reduce = lambda self, protocol: (copyreg.__newobj__, (type(self),), state)  # noqa: E731
    return _named_class(module, name, __reduce_ex__=reduce)()


def test_pandas_1_2_dataframe_layout_is_read(tmp_path: Path) -> None:
    """pandas <= 1.2 pickled BlockManager state as the '0.14.1' tuple and rows as Int64Index."""
    new_index = _named_class("pandas.core.indexes.base", "_new_Index")  # stands for the function's global
    index_cls = _named_class("pandas.core.indexes.base", "Index")
    int_cls = _named_class("pandas.core.indexes.numeric", "Int64Index")

    class Index:
        def __init__(self, cls: type, data: np.ndarray) -> None:
            self.cls, self.data = cls, data

        def __reduce__(self) -> tuple:
            return new_index, (self.cls, {"data": self.data, "name": None})

    columns = Index(index_cls, np.array(["imgPath", "camX", "kid"], dtype=object))
    rows = Index(int_cls, np.array([4, 7]))
    objects = np.empty((2, 2), dtype=object)
    objects[0], objects[1] = ["a.png", "b.png"], [[True, False], [False]]
    blocks = [{"values": np.array([[1.5, 2.5]]), "mgr_locs": slice(1, 2, 1)},
              {"values": objects, "mgr_locs": np.array([0, 2])}]
    manager = _named("pandas.core.internals.managers", "BlockManager",
                     ([columns, rows], [b["values"] for b in blocks], [], {"0.14.1": {"axes": [columns, rows],
                                                                                      "blocks": blocks}}))
    frame = _named("pandas.core.frame", "DataFrame", {"_data": manager, "_typ": "dataframe", "_metadata": []})
    buf = io.BytesIO()
    _LegacyPickler(buf, protocol=2).dump(frame)
    (tmp_path / "old_withjv.pkl").write_bytes(buf.getvalue())
    assert read_dataframe(tmp_path / "old_withjv.pkl") == {"imgPath": ["a.png", "b.png"], "camX": [1.5, 2.5],
                                                          "kid": [[True, False], [False]]}


# --------------------------------------------------------------------------- round trip


@pytest.mark.slow
@pytest.mark.parametrize("split", ["validation-1280", "train-3840", "validation-1280-smpl"])
def test_round_trip_reproduces_the_ground_truth(tmp_path: Path, miniature: AgoraMiniature, split: str) -> None:
    spec = parse_split(split)
    samples = converted(miniature.root, tmp_path / "out", split)
    truths = {key: t for key, t in miniature.images.items() if t.split == spec.base}
    assert [s.key for s in samples] == sorted(truths)  # train: two dataframes whose images interleave
    width, height = miniature.sizes[spec.image_set]
    kids = 0
    for sample in samples:
        truth = truths[sample.key]
        image = miniature.root / "images" / spec.base / image_file(sample.key, spec.image_set)
        assert sample.image == image.read_bytes() and (sample.width, sample.height) == (width, height)
        assert sample.body_model == spec.kind and sample.coords == "camera"
        assert sample.synthetic == (resolve_root(None) is None)  # J0 from the embedded models unless real ones are set
        assert sample.extra["image_set"] == {"1280": "1280x720", "3840": "3840x2160"}[spec.image_set]
        assert sample.extra["annotated_genders"] == truth.genders
        assert sample.genders == [model_gender(spec.kind, g, k) for g, k in zip(truth.genders, truth.kid)]
        assert np.array_equal(sample.people["kid"], truth.kid) and np.array_equal(sample.people["valid"], truth.valid)
        assert np.array_equal(sample.flags["is_valid"], truth.valid)
        assert np.array_equal(sample.people["occlusion"], truth.occlusion)
        betas = sample.people["betas"]
        assert betas.shape == (len(truth.kid), 11) and np.all(betas[~truth.kid, 10] == 0)
        assert np.allclose(sample.people["joints2d"][..., :2], truth.joints2d[spec.kind] * width / 3840, atol=1e-9)
        K = sample.camera.K
        for person in range(sample.num_people):
            joints = posed_joints(sample, person)
            assert np.abs(joints - truth.joints3d[spec.kind][person]).max() < 1e-5
            pixels = joints[:, :2] / joints[:, 2:] * np.diag(K)[:2] + K[:2, 2]
            assert np.abs(pixels - sample.people["joints2d"][person, :, :2]).max() < 1e-3
        kids += int(truth.kid.sum())
    assert kids >= 2


@pytest.mark.slow
def test_test_split_holds_images_only(tmp_path: Path, miniature: AgoraMiniature) -> None:
    samples = converted(miniature.root, tmp_path / "out", "test-3840")
    assert [s.key for s in samples] == miniature.test_keys
    assert all(s.num_people == 0 and s.people["betas"].shape == (0, 11) for s in samples)
    archviz = samples[0]
    assert archviz.camera_name == "cam03" and np.isclose(archviz.camera.K[0, 0], 18 / 36 * miniature.sizes["3840"][0])


# --------------------------------------------------------------------------- bad input


def cli(raw: Path, out: Path, split: str, *extra: str) -> int:
    return main(["convert", "agora", "--root", str(raw), "--out", str(out), "--split", split, *extra])


def test_bad_input_gives_clear_errors_and_a_failing_exit(tmp_path: Path, raw: Path, capsys) -> None:
    assert cli(raw, tmp_path / "o1", "validation") == 2
    assert "unknown split 'validation'" in capsys.readouterr().err
    frame = raw / "SMPLX" / "validation_0_withjv.pkl"
    frame.write_bytes(frame.read_bytes()[: frame.stat().st_size // 2])
    assert cli(raw, tmp_path / "o2", "validation-1280") == 2
    assert "validation_0_withjv.pkl: could not be read" in capsys.readouterr().err
    shutil.rmtree(raw / "SMPLX")
    assert cli(raw, tmp_path / "o3", "validation-3840") == 2
    assert "no dataframe folder" in capsys.readouterr().err
    (raw / "images" / "train" / "ag_trainset_3dpeople_bfh_archviz_5_10_cam00_00000_1280x720.png").unlink()
    assert cli(raw, tmp_path / "o4", "train-1280-smpl") == 2
    err = capsys.readouterr().err
    assert "image missing for train_0_withjv.pkl row 0 (ag_trainset_3dpeople_bfh_archviz_5_10_cam00_00000.png)" in err
    assert not any((tmp_path / name / "manifest.json").exists() for name in ("o1", "o2", "o3", "o4"))


@pytest.mark.slow
def test_skip_bad_lists_the_skipped_items(tmp_path: Path, raw: Path) -> None:
    (raw / "images" / "train" / "ag_trainset_axyz_bfh_hdri_50mm_5_10_00001_1280x720.png").unlink()
    assert cli(raw, tmp_path / "out", "train-1280-smpl", "--skip-bad") == 0
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert [d["item"] for d in manifest["dropped"]] == ["train_1_withjv.pkl[0:1]"]
    assert "image missing" in manifest["dropped"][0]["reason"] and manifest["total_count"] == 2


@pytest.mark.slow
def test_fits_that_miss_the_dataframe_joints_are_refused(tmp_path: Path, raw: Path) -> None:
    """A fit or body model that does not reproduce gt_joints_3d stops the conversion instead of shifting people."""
    fit_file = raw / "smpl_gt" / "trainset_humanalloy_adults_body" / "hm_w_Sara_0_0.pkl"
    fit = read_fit(fit_file)
    fit["betas"][0, 0] += 2.0
    fit_file.write_bytes(tensor_pickle_bytes(fit, "cuda"))
    with pytest.raises(ConversionError, match=r"miss gt_joints_3d by .* m"):
        convert("agora", raw, tmp_path / "out", split="validation-1280-smpl", progress=False)
