"""Body-model folders in the official formats: locate, load safely (no chumpy), validate, report."""

from __future__ import annotations

import functools
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from humanbench.bodymodels.files import (
    ENV_VAR,
    BodyModelFormatError,
    BodyModelNotFoundError,
    resolve_root,
)
from humanbench.bodymodels.index_sets import INDEX_SETS, load_index_sets
from humanbench.bodymodels.models import BodyModel, load_body_model, model_from_arrays, validate_model_arrays
from humanbench.bodymodels.report import format_report, inspect_body_model_folder
from humanbench.bodymodels.safe_pickle import CorruptPickleError, UnsafePickleError
from humanbench.synthetic.official_files import write_model_folder, write_smpl_pkl, write_smplx_npz

SIZES = {  # vertices, faces, skeleton joints, shape components
    "smpl": (6890, 13776, 24, 10),
    "smplh": (6890, 13776, 52, 16),
    "smplx": (10475, 20908, 55, 20),
    "mano": (778, 1538, 16, 10),
}
CASES = [(k, g) for k in ("smpl", "smplh", "smplx") for g in ("neutral", "male", "female")] + [
    ("mano", "left"), ("mano", "right")
]


def random_model_arrays(kind: str, variant: str) -> dict[str, np.ndarray]:
    """Random arrays with the official keys and shapes (float32 blend shapes keep files small)."""
    return dict(_random_model_arrays(kind, variant))


@functools.lru_cache(maxsize=None)
def _random_model_arrays(kind: str, variant: str) -> dict[str, np.ndarray]:
    rng = np.random.default_rng([sum(map(ord, kind)), sum(map(ord, variant))])
    v, f, j, s = SIZES[kind]
    weights = rng.random((v, j)) ** 8
    regressor = (rng.random((j, v)) > 0.995) * rng.random((j, v)) + 1e-4 * (np.arange(v) == 0)
    parents = [0] + [int(rng.integers(0, i)) for i in range(1, j)]
    arrays = {
        "v_template": rng.normal(size=(v, 3)) * 0.3,
        "f": rng.integers(0, v, size=(f, 3)).astype(np.uint32),
        "J_regressor": regressor / regressor.sum(1, keepdims=True),
        "weights": weights / weights.sum(1, keepdims=True),
        "kintree_table": np.array([[4294967295] + parents[1:], list(range(j))], dtype=np.int64),
        "shapedirs": (rng.normal(size=(v, 3, s)) * 0.01).astype(np.float32),
        "posedirs": (rng.normal(size=(v, 3, 9 * (j - 1))) * 0.001).astype(np.float32),
        "J": rng.normal(size=(j, 3)),
    }
    for suffix in ("l", "r") if kind in ("smplh", "smplx") else ("",) if kind == "mano" else ():
        arrays[f"hands_components{suffix}"] = rng.normal(size=(45, 45)) * 0.1
        arrays[f"hands_mean{suffix}"] = rng.normal(size=45) * 0.1
    if kind == "smplx":
        arrays["lmk_faces_idx"] = rng.integers(0, f, size=51).astype(np.int64)
        arrays["lmk_bary_coords"] = rng.dirichlet(np.ones(3), size=51)
    return arrays


def random_index_sets() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(7)
    sets = {}
    for name, spec in INDEX_SETS.items():
        if spec.num_vertices is None:
            sets[name] = rng.random(spec.shape)
        else:
            sets[name] = rng.choice(spec.num_vertices, size=spec.shape, replace=False).astype(np.uint32)
    return sets


KID_TEMPLATES = {k: np.random.default_rng(3).normal(size=(SIZES[k][0], 3)) for k in ("smpl", "smplx")}


def write_folder(root: Path, kinds=("smpl", "smplh", "smplx", "mano"), genders=("neutral", "male", "female")) -> Path:
    return write_model_folder(root, kinds, genders, arrays_for=random_model_arrays,
                              kid_templates=KID_TEMPLATES, index_sets=random_index_sets())


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    return write_folder(tmp_path_factory.mktemp("body_models"))


@pytest.fixture(autouse=True)
def no_env(monkeypatch):
    monkeypatch.delenv(ENV_VAR, raising=False)


def _load(kind: str, variant: str, **kwargs) -> BodyModel:
    if kind == "mano":
        return load_body_model("mano", hand=variant, **kwargs)
    return load_body_model(kind, variant, **kwargs)


def _random_pose(model: BodyModel, batch: int = 2) -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(0)
    sizes = {"betas": model.num_betas, "global_orient": 3, "transl": 3}
    if model.kind == "mano":
        sizes["hand_pose"] = model.hand_pose_dim
    else:
        sizes["body_pose"] = 3 * model.smplx_model.NUM_BODY_JOINTS
    if model.kind in ("smplh", "smplx"):
        sizes.update(left_hand_pose=model.hand_pose_dim, right_hand_pose=model.hand_pose_dim)
    if model.kind == "smplx":
        sizes.update(jaw_pose=3, leye_pose=3, reye_pose=3, expression=model.num_expression_coeffs)
    return {name: 0.3 * torch.randn(batch, size, generator=gen) for name, size in sizes.items()}


@pytest.mark.parametrize("kind,variant", CASES)
def test_folder_loads_without_chumpy_and_matches_source_arrays(folder, kind, variant):
    model = _load(kind, variant, root=folder)
    assert "chumpy" not in sys.modules
    assert not model.synthetic and Path(model.source).parent.parent == folder
    arrays = random_model_arrays(kind, variant)
    reference = BodyModel(
        model_from_arrays(kind, validate_model_arrays(arrays, kind, "arrays"), gender=model.gender, hand=variant,
                          num_pca_comps=12),
        kind=kind, gender=model.gender, age="adult", synthetic=False, source="arrays",
    )
    pose = _random_pose(model)
    out, expected = model(**pose), reference(**pose)
    assert out.vertices.shape == (2, SIZES[kind][0], 3) and out.joints.shape == (2, model.num_joints, 3)
    torch.testing.assert_close(out.vertices, expected.vertices, rtol=0, atol=1e-6)
    torch.testing.assert_close(out.joints, expected.joints, rtol=0, atol=1e-6)
    np.testing.assert_array_equal(model.faces, arrays["f"].astype(np.int64))


def test_smplx_pkl_variant_matches_npz(folder, tmp_path):
    write_model_folder(tmp_path, ("smplx",), ("female",), arrays_for=random_model_arrays, kid_templates={},
                       index_sets={}, smplx_format="pkl")
    from_pkl, from_npz = (load_body_model("smplx", "female", root=r) for r in (tmp_path, folder))
    assert from_pkl.source.endswith("SMPLX_FEMALE.pkl") and from_npz.source.endswith("SMPLX_FEMALE.npz")
    pose = _random_pose(from_npz)
    torch.testing.assert_close(from_pkl(**pose).vertices, from_npz(**pose).vertices, rtol=0, atol=0)


@pytest.mark.parametrize("kind", ["smpl", "smplx"])
def test_kid_model_adds_the_template_as_last_beta(folder, kind):
    model = load_body_model(kind, root=folder, age="kid", flat_hand_mean=True)  # no hand pose: T-pose
    assert model.age == "kid" and model.num_betas == 11
    betas = torch.zeros(1, 11)
    betas[0, -1] = 1.0
    vertices = model(betas=betas).vertices[0].double()
    template = KID_TEMPLATES[kind] - KID_TEMPLATES[kind].mean(0)
    np.testing.assert_allclose(vertices.numpy(), template, atol=1e-5)


def test_forward_rejects_misspelled_and_foreign_keywords(folder):
    model = load_body_model("smpl", root=folder)
    with pytest.raises(TypeError, match="body_pos"):
        model(body_pos=torch.zeros(1, 69))
    with pytest.raises(TypeError, match="left_hand_pose"):
        model(left_hand_pose=torch.zeros(1, 12))
    with pytest.raises(ValueError, match=r"body_pose has shape \(1, 60\)"):
        model(body_pose=torch.zeros(1, 60))


def test_rotation_matrix_input_matches_axis_angle_for_smpl(folder):
    from smplx.lbs import batch_rodrigues

    model = load_body_model("smpl", root=folder)
    pose = _random_pose(model)
    rotations = {
        "global_orient": batch_rodrigues(pose["global_orient"]).reshape(2, 1, 3, 3),
        "body_pose": batch_rodrigues(pose["body_pose"].reshape(-1, 3)).reshape(2, 23, 3, 3),
    }
    expected = model(**pose).vertices
    got = model(**{**pose, **rotations}, pose2rot=False).vertices
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-5)


def test_missing_files_name_path_url_and_alternatives(tmp_path):
    with pytest.raises(BodyModelNotFoundError) as info:
        load_body_model("smpl", "male", root=tmp_path)
    message = str(info.value)
    assert str(tmp_path / "smpl" / "SMPL_MALE.pkl") in message
    assert "https://smpl.is.tue.mpg.de" in message and "basicmodel_m_lbs_10_207_0_v1.0.0.pkl" in message
    assert "--body-models" in message
    with pytest.raises(BodyModelNotFoundError, match="https://smpl-x.is.tue.mpg.de"):
        load_body_model("smplx", root=tmp_path)
    (tmp_path / "smpl").mkdir()
    shutil.copy(write_smpl_pkl(tmp_path / "x.pkl", random_model_arrays("smpl", "neutral")),
                tmp_path / "smpl" / "SMPL_NEUTRAL.pkl")
    with pytest.raises(BodyModelNotFoundError, match=r"(?s)smpl_kid_template\.npy.*https://agora\.is\.tue\.mpg\.de"):
        load_body_model("smpl", root=tmp_path, age="kid")
    with pytest.raises(BodyModelNotFoundError, match=r"(?s)J_regressor_h36m\.npy.*SPIN"):
        load_index_sets(tmp_path, names=["J_regressor_h36m"])
    with pytest.raises(BodyModelNotFoundError, match=r"(?s)MANO_SMPLX_vertex_ids\.pkl.*smpl-x\.is\.tue\.mpg\.de"):
        load_index_sets(tmp_path, names=["mano_left_vertex_ids"])


def test_root_resolution_flag_beats_env_var(folder, tmp_path, monkeypatch):
    assert resolve_root(None) is None
    monkeypatch.setenv(ENV_VAR, str(folder))
    assert load_body_model("smpl", "female", root=None).source == str(folder / "smpl" / "SMPL_FEMALE.pkl")
    monkeypatch.setenv(ENV_VAR, str(tmp_path))
    with pytest.raises(BodyModelNotFoundError, match=f"environment variable {ENV_VAR}"):
        load_body_model("smpl", root=None)
    assert not load_body_model("smpl", root=folder).synthetic
    monkeypatch.setenv(ENV_VAR, str(tmp_path / "nope"))
    with pytest.raises(BodyModelNotFoundError, match="does not exist"):
        resolve_root(None)


def test_original_smpl_download_name_is_accepted_with_a_note(folder, tmp_path):
    (tmp_path / "smpl").mkdir()
    shutil.copy(folder / "smpl" / "SMPL_FEMALE.pkl", tmp_path / "smpl" / "basicModel_f_lbs_10_207_0_v1.0.0.pkl")
    model = load_body_model("smpl", "female", root=tmp_path)
    assert any("basicModel_f_lbs_10_207_0_v1.0.0.pkl" in note for note in model.notes)


def test_wrong_shapes_name_key_and_shapes(tmp_path):
    arrays = random_model_arrays("smpl", "neutral")
    arrays["v_template"] = arrays["v_template"][:, :2]
    write_smpl_pkl(tmp_path / "smpl" / "SMPL_NEUTRAL.pkl", arrays)
    with pytest.raises(BodyModelFormatError, match=r"SMPL_NEUTRAL\.pkl: key 'v_template' has shape \(6890, 2\); "
                                                   r"expected \(6890, 3\)"):
        load_body_model("smpl", root=tmp_path)
    arrays = random_model_arrays("smplx", "neutral")
    arrays["posedirs"] = arrays["posedirs"][..., :207]
    del arrays["lmk_bary_coords"]
    write_smplx_npz(tmp_path / "smplx" / "SMPLX_NEUTRAL.npz", arrays)
    with pytest.raises(BodyModelFormatError, match=r"key 'posedirs' has shape \(10475, 3, 207\); expected \(10475, 3, 486\)"):
        load_body_model("smplx", root=tmp_path)


def test_truncated_files_give_a_clear_error(folder, tmp_path):
    for relative in ("smpl/SMPL_MALE.pkl", "smplx/SMPLX_MALE.npz"):
        data = (folder / relative).read_bytes()
        (tmp_path / relative).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / relative).write_bytes(data[: len(data) // 3])
    with pytest.raises(CorruptPickleError, match=r"(?s)SMPL_MALE\.pkl.*truncated"):
        load_body_model("smpl", "male", root=tmp_path)
    with pytest.raises(BodyModelFormatError, match=r"(?s)SMPLX_MALE\.npz.*truncated"):
        load_body_model("smplx", "male", root=tmp_path)


def _evil_pickle(marker: Path) -> bytes:
    return b"cos\nsystem\n(S'touch " + str(marker).encode() + b"'\ntR."


def test_malicious_model_file_is_refused_and_not_executed(tmp_path):
    marker = tmp_path / "pwned"
    (tmp_path / "smpl").mkdir()
    (tmp_path / "smpl" / "SMPL_NEUTRAL.pkl").write_bytes(_evil_pickle(marker))
    with pytest.raises(UnsafePickleError, match=r"(?s)SMPL_NEUTRAL\.pkl.*'os\.system'"):
        load_body_model("smpl", root=tmp_path)
    assert not marker.exists()


def test_index_sets_round_trip(folder):
    sets = load_index_sets(folder)
    expected = random_index_sets()
    assert not sets.synthetic
    for name in INDEX_SETS:
        np.testing.assert_array_equal(getattr(sets, name), expected[name])
    assert sets.sources["smplx_to_j14"].endswith("SMPLX_to_J14.pkl")
    only = load_index_sets(folder, names=["flame_vertex_ids"])
    assert only.J_regressor_h36m is None and only.flame_vertex_ids.dtype == np.int64


def test_report_flags_each_problem(folder, tmp_path):
    marker = tmp_path / "pwned"
    shutil.copytree(folder / "index_sets", tmp_path / "index_sets")
    (tmp_path / "smpl").mkdir()
    shutil.copy(folder / "smpl" / "SMPL_MALE.pkl", tmp_path / "smpl" / "SMPL_MALE.pkl")
    (tmp_path / "smpl" / "SMPL_NEUTRAL.pkl").write_bytes(_evil_pickle(marker))
    (tmp_path / "smpl" / "SMPL_FEMALE.pkl").write_bytes((folder / "smpl" / "SMPL_FEMALE.pkl").read_bytes()[:1000])
    arrays = random_model_arrays("smplx", "neutral")
    arrays["v_template"] = arrays["v_template"][:100]
    write_smplx_npz(tmp_path / "smplx" / "SMPLX_NEUTRAL.npz", arrays)
    np.save(tmp_path / "smplx" / "smplx_kid_template.npy", np.zeros((10, 3)))
    np.save(tmp_path / "index_sets" / "J_regressor_h36m.npy", np.zeros((17, 10)))

    reports = {(r.kind, r.variant): r for r in inspect_body_model_folder(tmp_path)}
    assert reports[("smpl", "male")].ok and reports[("smpl", "male")].num_vertices == 6890
    assert "UnsafePickleError" in reports[("smpl", "neutral")].problems[0]
    assert "truncated" in reports[("smpl", "female")].problems[0]
    assert "'v_template'" in reports[("smplx", "neutral")].problems[0]
    assert not reports[("kid_template", "smplx")].ok
    assert not reports[("index_set", "J_regressor_h36m")].ok and reports[("index_set", "flame_vertex_ids")].ok
    assert not marker.exists()
    text = format_report(list(reports.values()))
    assert "FAIL smpl         neutral" in text and "OK   smpl         male" in text
    assert text.endswith("5 with problems.")


def test_report_on_empty_or_missing_folder(tmp_path):
    (empty,) = inspect_body_model_folder(tmp_path)
    assert not empty.ok and "no body-model files" in empty.problems[0]
    (missing,) = inspect_body_model_folder(tmp_path / "nope")
    assert not missing.ok and "does not exist" in missing.problems[0]


def test_synthetic_models_are_the_default(tmp_path):
    synthetic = pytest.importorskip("humanbench.bodymodels.synthetic")
    model = load_body_model("smpl")
    assert model.synthetic and model.source == "synthetic"
    write_model_folder(tmp_path, kinds=("smpl",), genders=("neutral",), kid_templates={}, index_sets={})
    from_files = load_body_model("smpl", root=tmp_path)
    assert from_files.synthetic, "a folder written from the synthetic models carries the marker"
    (tmp_path / "HUMANBENCH_SYNTHETIC").unlink()
    assert not load_body_model("smpl", root=tmp_path).synthetic
    pose = _random_pose(model)
    torch.testing.assert_close(from_files(**pose).vertices, model(**pose).vertices, rtol=0, atol=1e-6)
    assert load_index_sets().synthetic
    assert set(synthetic.synthetic_index_sets()) >= set(INDEX_SETS)
