"""Predictions: npz/parquet round-trips, validation messages, AGORA-kit import, rotation conversion."""

from __future__ import annotations

import dataclasses
import pickle
import zipfile
from pathlib import Path

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from humanbench.agora_predictions import agora_sample_key, import_agora_predictions, rotmat_to_axis_angle
from humanbench.bodymodels.safe_pickle import UnsafePickleError
from humanbench.predictions import (
    PREDICTION_FIELDS,
    PredictionError,
    Predictions,
    load_predictions,
    save_predictions,
    validate_predictions,
)

RNG_SEED = 7


def _smplx(n: int = 4, seed: int = RNG_SEED) -> Predictions:
    """SMPL-X predictions for samples 's0', 's1', ... with two people each, every field filled."""
    rng = np.random.default_rng(seed)
    f32 = lambda *shape: rng.normal(size=(n, *shape)).astype(np.float32)  # noqa: E731
    return Predictions(
        keys=np.array([f"s{i // 2}" for i in range(n)]), person=np.arange(n, dtype=np.int64) % 2, body_model="smplx",
        betas=f32(11), global_orient=f32(3), body_pose=f32(63), transl=rng.normal(size=(n, 3)),
        left_hand_pose=f32(45), right_hand_pose=f32(45), jaw_pose=f32(3), leye_pose=f32(3), reye_pose=f32(3),
        expression=f32(10), gender=np.array(["neutral", "male", "female", "male"] * (n // 4) + ["neutral"] * (n % 4)),
        kid=np.arange(n) % 3 == 0, vertices=f32(10475, 3), joints=f32(127, 3), joints2d=f32(144, 2) * 1000,
        score=rng.uniform(size=n),
    )


def _smpl(n: int = 4) -> Predictions:
    rng = np.random.default_rng(RNG_SEED)
    return Predictions(
        keys=np.array([f"s{i // 2}" for i in range(n)]), person=np.arange(n) % 2, body_model="smpl",
        betas=rng.normal(size=(n, 10)), global_orient=rng.normal(size=(n, 3)), body_pose=rng.normal(size=(n, 69)),
    )


def _assert_same(a: Predictions, b: Predictions, *, exact_dtype: bool = True) -> None:
    assert a.body_model == b.body_model
    assert list(a.arrays()) == list(b.arrays())
    for name, arr in a.arrays().items():
        other = getattr(b, name)
        assert other.shape == arr.shape, name
        assert np.array_equal(other, arr), name
        assert other.dtype == arr.dtype if exact_dtype or arr.dtype.kind != "U" else other.dtype.kind == "U", name


def _problems(pred: Predictions, **kwargs) -> str:
    with pytest.raises(PredictionError) as info:
        validate_predictions(pred, **kwargs)
    return str(info.value)


# ----------------------------------------------------------------------------- format


def test_field_table_matches_the_dataclass():
    assert [f.name for f in dataclasses.fields(Predictions) if f.name != "body_model"] == list(PREDICTION_FIELDS)


def test_fields_are_documented():
    doc = (Path(__file__).parents[1] / "docs" / "predictions.md").read_text()
    assert [name for name in PREDICTION_FIELDS if f"`{name}`" not in doc] == []


@pytest.mark.parametrize("suffix", [".npz", ".parquet"])
@pytest.mark.parametrize("make", [_smplx, _smpl], ids=["smplx", "smpl"])
def test_round_trip_is_exact(tmp_path, suffix, make):
    pred = make()
    loaded = load_predictions(save_predictions(pred, tmp_path / f"pred{suffix}"))
    _assert_same(pred, loaded, exact_dtype=suffix == ".npz")


@pytest.mark.parametrize("suffix", [".npz", ".parquet"])
def test_round_trip_vertices_only_and_empty(tmp_path, suffix):
    verts = Predictions(keys=np.array(["a", "b"]), person=np.array([0, 0]), vertices=np.ones((2, 6890, 3)),
                        joints=np.zeros((2, 24, 3), np.float32))
    _assert_same(verts, load_predictions(save_predictions(verts, tmp_path / f"v{suffix}")), exact_dtype=False)
    empty = Predictions(keys=np.zeros(0, dtype="<U1"), person=np.zeros(0, np.int64), body_model="smpl",
                        betas=np.zeros((0, 10)), global_orient=np.zeros((0, 3)), body_pose=np.zeros((0, 69)))
    _assert_same(empty, load_predictions(save_predictions(empty, tmp_path / f"e{suffix}")))


def test_npz_is_pickle_free_and_deterministic(tmp_path):
    pred = _smplx()
    pred.keys = pred.keys.astype(object)  # object strings are written as fixed-width unicode
    first = save_predictions(pred, tmp_path / "a.npz").read_bytes()
    assert first == save_predictions(pred, tmp_path / "b.npz").read_bytes()
    with np.load(tmp_path / "a.npz", allow_pickle=False) as npz:
        assert npz["keys"].dtype.kind == "U" and str(npz["body_model"]) == "smplx"


def test_parquet_has_one_row_per_prediction_and_fixed_size_lists(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pq.read_table(save_predictions(_smplx(), tmp_path / "p.parquet"))
    assert table.num_rows == 4
    assert table.schema.field("vertices").type == pa.list_(pa.list_(pa.float32(), 3), 10475)
    assert table.schema.field("betas").type == pa.list_(pa.float32(), 11)


def test_to_dataframe():
    frame = _smplx().to_dataframe()
    assert len(frame) == 4 and frame.attrs["body_model"] == "smplx"
    assert frame["vertices"].iloc[1].shape == (10475, 3) and frame["betas"].iloc[0].shape == (11,)
    assert frame["keys"].tolist() == ["s0", "s0", "s1", "s1"] and frame["person"].tolist() == [0, 1, 0, 1]


def test_bad_files_are_refused(tmp_path):
    with pytest.raises(PredictionError, match="unknown predictions file type '.pkl'"):
        load_predictions(tmp_path / "p.pkl")
    np.savez(tmp_path / "obj.npz", keys=np.array(["a"], dtype=object), person=np.zeros(1, int))
    with pytest.raises(PredictionError, match="not a readable predictions npz"):
        load_predictions(tmp_path / "obj.npz")
    np.savez(tmp_path / "extra.npz", keys=np.array(["a"]), person=np.zeros(1, int), format_version=np.array(1), foo=np.ones(1))
    with pytest.raises(PredictionError, match=r"unknown field\(s\) \['foo'\]"):
        load_predictions(tmp_path / "extra.npz")
    np.savez(tmp_path / "old.npz", keys=np.array(["a"]), person=np.zeros(1, int))
    with pytest.raises(PredictionError, match="format_version None"):
        load_predictions(tmp_path / "old.npz")


def test_save_checks_structure_but_not_values(tmp_path):
    pred = _smpl()
    pred.betas[0, 0] = np.nan
    save_predictions(pred, tmp_path / "nan.npz")  # NaN can be saved and inspected
    pred.body_pose = pred.body_pose[:, :63]
    with pytest.raises(PredictionError, match="(?s)cannot save predictions.*wrong body model"):
        save_predictions(pred, tmp_path / "bad.npz")
    assert not (tmp_path / "bad.npz").exists()


# ----------------------------------------------------------------------------- validation


def test_valid_predictions_pass():
    validate_predictions(_smplx(), {"s0": 2, "s1": 2}, "smplx", require=("params", "vertices"))
    validate_predictions(_smpl(), {"s0": 2, "s1": 2, "s9": 0}, "smpl", require=("params",))


def test_missing_pairs_are_counted_and_listed():
    message = _problems(_smpl(), expected={"s0": 3, "s1": 2, "s2": 1, "s3": 2, "s4": 4})
    assert "missing: 8 expected (sample, person) pair(s) without a prediction in 4 sample(s)" in message
    assert "first: 's0' person 2, 's2' person 0, 's3' person 0, 's3' person 1, 's4' person 0, ..." in message


def test_extra_predictions_unknown_key_or_person_out_of_range():
    message = _problems(_smpl(), expected={"s0": 1})
    assert "extra: 3 prediction(s)" in message and "1 unknown key(s)" in message
    assert "first: 's0' person 1, 's1' person 0, 's1' person 1" in message


def test_detection_protocols_only_refuse_unknown_keys():
    pred = _smpl()
    pred.person = np.array([0, 7, 0, 3])
    validate_predictions(pred, {"s0": 1, "s1": 5, "s2": 2}, detections=True)
    message = _problems(pred, expected={"s0": 1}, detections=True)
    assert "extra: 2 prediction(s) (sample key not in the expected set; 1 unknown key(s)), first: 's1' person 0, 's1' person 3" in message
    assert "missing" not in message


def test_duplicates():
    pred = _smpl(8)
    pred.keys[:] = "s0"
    pred.person = np.array([0, 1, 0, 2, 1, 0, 3, 4])
    message = _problems(pred)
    assert "duplicates: 2 (key, person) pair(s) occur more than once (3 surplus row(s)), first: 's0' person 0, 's0' person 1" in message


def test_non_finite_values_name_field_and_key():
    pred = _smplx()
    pred.betas[1, 3] = np.nan
    pred.vertices[2, 100, 0] = np.inf
    pred.vertices[1, 0, 0] = -np.inf
    message = _problems(pred)
    assert "NaN/inf: 2 prediction(s) with non-finite values" in message
    assert "field 'betas' 1 row(s), first: 's0' person 1" in message
    assert "field 'vertices' 2 row(s), first: 's0' person 1, 's1' person 0" in message


def test_wrong_shapes_name_field_expected_and_found():
    pred = _smplx()
    pred.left_hand_pose = pred.left_hand_pose[:, :30]
    pred.joints2d = pred.joints2d[..., :1]
    message = _problems(pred)
    assert "wrong shape: field 'left_hand_pose': expected (N, 45) = (4, 45), found (4, 30)" in message
    assert "wrong shape: field 'joints2d': expected (N, J2, 2) = (4, 144, 2), found (4, 144, 1)" in message
    pred = _smpl()
    pred.person = pred.person.astype(float)
    assert "wrong shape: field 'person': expected 'iu'-kind array of shape (N), found shape (4,) dtype float64" in _problems(pred)
    pred = _smpl()
    pred.body_pose = pred.body_pose[:, :50]
    assert "wrong shape: field 'body_pose': body model 'smpl' needs 69 values per person, found 50" in _problems(pred)


def test_wrong_body_model():
    assert "wrong body model: predictions are 'smplx' but the protocol evaluates 'smpl'" in _problems(_smplx(), body_model="smpl")
    pred = _smpl()
    pred.body_pose = pred.body_pose[:, :63]
    assert ("wrong body model: body_pose has 63 values per person (smplx) but the body model is 'smpl', which needs 69"
            in _problems(pred))
    pred = _smpl()
    pred.jaw_pose = np.zeros((4, 3))
    assert "wrong body model: SMPL-X fields ['jaw_pose'] with body_model 'smpl'" in _problems(pred)
    verts = Predictions(keys=np.array(["a"]), person=np.array([0]), vertices=np.zeros((1, 6890, 3)))
    assert ("wrong body model: vertices has 6890 vertices (smpl) but the body model is 'smplx', which needs 10475"
            in _problems(verts, body_model="smplx"))
    pred = _smpl()
    pred.body_model = None
    assert "parameters ['betas', 'global_orient', 'body_pose'] given with body_model None" in _problems(pred)
    pred = _smpl()
    pred.betas = None
    assert "incomplete parameters: ['global_orient', 'body_pose'] given" in _problems(pred)


def test_mixed_lengths():
    pred = _smplx()
    pred.score = pred.score[:3]
    message = _problems(pred)
    assert "mixed lengths: keys has 4, person has 4, betas has 4" in message and "score has 3 rows" in message


def test_value_rules_and_required_fields():
    pred = _smpl()
    pred.person[0] = -1
    pred.gender = np.array(["male", "man", "female", "kid"])
    pred.kid = np.array([False, True, False, False])
    message = _problems(pred, require=("params", "joints2d"))
    assert "missing fields: the protocol needs ['joints2d']" in message
    assert "invalid person index: 1 negative, first: 's0' person -1" in message
    assert "invalid gender: 2 prediction(s) with ['kid', 'man']" in message
    assert "kid without template weight: 1 kid prediction(s) but betas has 10 columns" in message
    nothing = Predictions(keys=np.array(["a"]), person=np.array([0]), joints2d=np.zeros((1, 24, 2)))
    assert "nothing to evaluate" in _problems(nothing)
    with pytest.raises(ValueError, match="unknown field"):
        validate_predictions(_smpl(), require=("verts",))


# ----------------------------------------------------------------------------- AGORA import

STEM = "ag_validationset_renderpeople_bfh_flowers_5_15_00003"


def _rotmats(rng: np.random.Generator, *shape: int) -> np.ndarray:
    return Rotation.random(int(np.prod(shape)), random_state=rng).as_matrix().reshape(*shape, 3, 3)


def _write(folder: Path, name: str, content: object) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_bytes(pickle.dumps(content))
    return path


def _smpl_rotmat_file(rng: np.random.Generator) -> dict:
    """Layout of the kit's sample ``smpl_param_rm_personId_0.pkl`` (formats.md §8)."""
    return {
        "params": {"global_orient": _rotmats(rng, 1, 1).astype(np.float32), "body_pose": _rotmats(rng, 1, 23).astype(np.float32),
                   "betas": rng.normal(size=(1, 10)).astype(np.float32), "transl": rng.normal(size=(1, 3))},
        "pose2rot": False, "num_betas": 10, "gender": "neutral", "age": "adult", "joints": rng.uniform(0, 3840, (1, 45, 2)),
    }


def _smplx_params(rng: np.random.Generator, rotmat: bool) -> dict:
    joints = {"global_orient": 1, "body_pose": 21, "left_hand_pose": 15, "right_hand_pose": 15, "jaw_pose": 1, "leye_pose": 1, "reye_pose": 1}
    if rotmat:
        poses = {name: _rotmats(rng, 1, j) for name, j in joints.items()}
    else:
        poses = {name: rng.normal(size=(1, 3 * j)).astype(np.float32) for name, j in joints.items()}
    return {**poses, "expression": rng.normal(size=(1, 10)), "betas": rng.normal(size=(1, 10)), "transl": rng.normal(size=(1, 3))}


def test_agora_smpl_rotmat_and_axis_angle(tmp_path):
    rng = np.random.default_rng(0)
    rm = _smpl_rotmat_file(rng)
    aa = {"params": {"global_orient": rng.normal(size=(1, 1, 3)), "body_pose": rng.normal(size=(1, 23, 3)),
                     "betas": rng.normal(size=(1, 10)), "transl": rng.normal(size=(1, 3))},
          "joints": rng.uniform(0, 3840, (45, 3)), "gender": "male"}
    _write(tmp_path, f"{STEM}_personId_1.pkl", rm)
    _write(tmp_path, f"{STEM}_personId_0.pkl", aa)
    _write(tmp_path, "conf.yaml", {})  # not a .pkl: ignored, as by the kit
    pred = import_agora_predictions(tmp_path, body_model="smpl")
    assert pred.body_model == "smpl" and pred.keys.tolist() == [STEM, STEM] and pred.person.tolist() == [0, 1]
    assert pred.body_pose.shape == (2, 69) and pred.global_orient.shape == (2, 3) and pred.transl.dtype == np.float64
    expected = Rotation.from_matrix(rm["params"]["body_pose"][0].astype(np.float64)).as_rotvec().reshape(-1)
    np.testing.assert_allclose(pred.body_pose[1], expected, atol=1e-9)
    np.testing.assert_array_equal(pred.body_pose[0], aa["params"]["body_pose"].reshape(-1))
    np.testing.assert_array_equal(pred.joints2d[0], aa["joints"][:, :2])
    assert pred.gender.tolist() == ["male", "neutral"] and not pred.kid.any() and pred.vertices is None
    validate_predictions(pred, {STEM: 5}, "smpl", require=("params", "joints2d"), detections=True)


@pytest.mark.parametrize("rotmat", [True, False], ids=["rotmat", "axis-angle"])
def test_agora_smplx_params(tmp_path, rotmat):
    rng = np.random.default_rng(1)
    params = _smplx_params(rng, rotmat)
    content = {"params": params, "joints": rng.uniform(0, 3840, (144, 2)).astype(np.float32), "gender": "female"}
    if rotmat:
        content["pose2rot"] = False
    _write(tmp_path, f"{STEM}_personId_2.pkl", content)
    pred = import_agora_predictions(tmp_path)
    assert pred.body_model == "smplx" and pred.person.tolist() == [2] and pred.joints2d.shape == (1, 144, 2)
    from humanbench.bodymodels import smplx_hand_means

    means = dict(zip(("left_hand_pose", "right_hand_pose"), smplx_hand_means("female")))
    for name in ("global_orient", "body_pose", "left_hand_pose", "right_hand_pose", "jaw_pose", "leye_pose", "reye_pose"):
        want = Rotation.from_matrix(params[name][0]).as_rotvec().reshape(-1) if rotmat else params[name].reshape(-1)
        if not rotmat and name in means:  # the kit adds the mean hand to axis-angle hand poses only
            want = want + means[name]
        np.testing.assert_allclose(getattr(pred, name)[0], want, atol=1e-9, err_msg=name)
    np.testing.assert_array_equal(pred.expression, params["expression"])
    validate_predictions(pred, body_model="smplx", require=("params",))


@pytest.mark.parametrize("model,verts,joints3d,joints2d", [
    ("smpl", 6890, 45, (1, 45, 2)), ("smplx", 10475, 144, (144, 2))], ids=["smpl", "smplx"])
def test_agora_vertices_variants(tmp_path, model, verts, joints3d, joints2d):
    rng = np.random.default_rng(2)
    content = {"verts": rng.normal(size=(verts, 3)).astype(np.float32), "allSmplJoints3d": rng.normal(size=(joints3d, 3)).astype(np.float32),
               "joints": rng.uniform(0, 2160, joints2d)}
    _write(tmp_path, f"{STEM}_personId_0.pkl", content)
    pred = import_agora_predictions(tmp_path, body_model=model)
    assert pred.body_model == model and pred.betas is None
    np.testing.assert_array_equal(pred.vertices[0], content["verts"])
    np.testing.assert_array_equal(pred.joints[0], content["allSmplJoints3d"])
    validate_predictions(pred, {STEM: 3}, model, require=("vertices", "joints", "joints2d"), detections=True)


def test_agora_kids_genders_and_padded_betas(tmp_path):
    rng = np.random.default_rng(3)
    adult, kid, kid_by_age = (_smpl_rotmat_file(rng) for _ in range(3))
    kid.update(kid_flag=True, gender="male", num_betas=11)
    kid["params"]["betas"] = rng.normal(size=(1, 11)).astype(np.float32)
    kid_by_age.update(age="kid", num_betas=11)
    kid_by_age["params"]["betas"] = rng.normal(size=(1, 11)).astype(np.float32)
    for k, content in enumerate((adult, kid, kid_by_age)):
        _write(tmp_path, f"{STEM}_personId_{k}.pkl", content)
    pred = import_agora_predictions(tmp_path)
    assert pred.kid.tolist() == [False, True, True] and pred.gender.tolist() == ["neutral", "male", "neutral"]
    assert pred.betas.shape == (3, 11) and pred.betas[0, 10] == 0
    np.testing.assert_array_equal(pred.betas[1], kid["params"]["betas"][0])
    validate_predictions(pred)


def test_agora_zip_and_image_name_suffix(tmp_path):
    rng = np.random.default_rng(4)
    archive = tmp_path / "pred.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr(f"predictions/{STEM}_1280x720_personId_0.pkl", pickle.dumps(_smpl_rotmat_file(rng)))
        zf.writestr(f"predictions/{STEM.replace('00003', '00004')}_personId_0.pkl", pickle.dumps(_smpl_rotmat_file(rng)))
        zf.writestr(f"__MACOSX/predictions/._{STEM}_personId_0.pkl", b"\x00junk")
    assert import_agora_predictions(archive).keys.tolist() == [STEM, STEM.replace("00003", "00004")]
    assert import_agora_predictions(archive, resolution_suffix="keep").keys.tolist()[0] == f"{STEM}_1280x720"
    with pytest.raises(PredictionError, match="(?s)1 bad file.*ends in '_1280x720'"):
        import_agora_predictions(archive, resolution_suffix="error")
    assert agora_sample_key(f"{STEM.upper()}.png") == STEM == agora_sample_key(f"{STEM}_1280x720.png")


def test_agora_format_errors_name_the_files(tmp_path):
    rng = np.random.default_rng(5)
    mismatch = _smpl_rotmat_file(rng) | {"num_betas": 12}
    contradicting = _smpl_rotmat_file(rng) | {"pose2rot": True}
    no_joints = {k: v for k, v in _smpl_rotmat_file(rng).items() if k != "joints"}
    _write(tmp_path / "bad", "x_personId_0.pkl", mismatch)
    _write(tmp_path / "bad", "x_personId_1.pkl", contradicting)
    _write(tmp_path / "bad", "x_personId_2.pkl", no_joints)
    _write(tmp_path / "bad", "x_person_3.pkl", _smpl_rotmat_file(rng))
    message = str(pytest.raises(PredictionError, import_agora_predictions, tmp_path / "bad").value)
    assert "4 bad file(s)" in message
    assert "x_personId_0.pkl: num_betas is 12 but params['betas'] has 10 values" in message
    assert "x_personId_1.pkl: pose2rot is True but ['global_orient', 'body_pose'] hold rotation matrices" in message
    assert "x_personId_2.pkl: the required 'joints'" in message and "x_person_3.pkl: file name is not" in message

    squashed = _smpl_rotmat_file(rng)
    squashed["params"]["body_pose"][0, 4] *= 1.5
    _write(tmp_path / "rot", "y_personId_0.pkl", squashed)
    with pytest.raises(PredictionError, match=r"(?s)params\['body_pose'\]: 1 file\(s\) hold matrices that are not rotations.*y_personId_0"):
        import_agora_predictions(tmp_path / "rot")

    _write(tmp_path / "mixed", "z_personId_0.pkl", _smpl_rotmat_file(rng))
    _write(tmp_path / "mixed", "z_personId_1.pkl", {"params": _smplx_params(rng, False), "joints": np.zeros((144, 2))})
    with pytest.raises(PredictionError, match="(?s)mixed body model: smpl in 1 file.*smplx in 1 file"):
        import_agora_predictions(tmp_path / "mixed")
    with pytest.raises(PredictionError, match="wrong body model: the files hold smpl predictions, expected smplx"):
        import_agora_predictions(_write(tmp_path / "single", "w_personId_0.pkl", _smpl_rotmat_file(rng)).parent, body_model="smplx")
    (tmp_path / "empty").mkdir()
    with pytest.raises(PredictionError, match="no <imgname>_personId_<k>.pkl files"):
        import_agora_predictions(tmp_path / "empty")


def test_agora_bad_files_are_counted_and_the_first_five_listed(tmp_path):
    rng = np.random.default_rng(8)
    for k in range(7):
        _write(tmp_path, f"{STEM}_personId_{k}.pkl", _smpl_rotmat_file(rng) | {"kid_flag": True, "num_betas": 10})
    _write(tmp_path, f"{STEM}_personId_9.pkl", _smpl_rotmat_file(rng) | {"gender": "m"})
    problems = pytest.raises(PredictionError, import_agora_predictions, tmp_path).value.problems
    assert len(problems) == 6 and problems[-1] == "... and 3 more file(s)"
    assert problems[0].endswith("_personId_0.pkl: kid_flag is set but params['betas'] has 10 values; "
                                "kids need 11 (the last one the kid-template weight)")


class _Reduce:
    """Pickles as ``func(*args)``: a code-execution payload under plain pickle."""

    def __init__(self, func, *args):
        self.func, self.args = func, args

    def __reduce__(self):
        return self.func, self.args


def test_malicious_prediction_pickle_is_refused_and_not_executed(tmp_path):
    marker = tmp_path / "pwned"
    payload = {"joints": np.zeros((24, 2)), "params": {"betas": _Reduce(eval, f"open({str(marker)!r}, 'w').close()")}}
    _write(tmp_path / "pred", f"{STEM}_personId_0.pkl", payload)
    with pytest.raises(UnsafePickleError, match="builtins.eval"):
        import_agora_predictions(tmp_path / "pred")
    archive = tmp_path / "pred.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.write(tmp_path / "pred" / f"{STEM}_personId_0.pkl", f"predictions/{STEM}_personId_0.pkl")
    with pytest.raises(UnsafePickleError):
        import_agora_predictions(archive)
    assert not marker.exists()


# ----------------------------------------------------------------------------- rotations


def test_rotmat_to_axis_angle_matches_scipy_including_near_0_and_pi():
    rng = np.random.default_rng(6)
    axes = rng.normal(size=(14, 3))
    axes /= np.linalg.norm(axes, axis=1, keepdims=True)
    angles = np.array([0.0, 1e-12, 1e-9, 1e-7, 1e-6, 1e-5, 1e-3, np.pi - 1e-3, np.pi - 1e-6, np.pi - 1e-9,
                       np.pi - 1e-12, np.pi, 1.0, 2.5])
    rotvecs = np.concatenate([axes * angles[:, None], Rotation.random(2000, random_state=rng).as_rotvec()])
    rot = Rotation.from_rotvec(rotvecs).as_matrix()
    ours = rotmat_to_axis_angle(rot.reshape(-1, 2, 3, 3)).reshape(-1, 3)
    reference = Rotation.from_matrix(rot).as_rotvec()
    norm = np.linalg.norm(reference, axis=1)
    away = norm < np.pi - 1e-6  # near pi, v and -v are (almost) the same rotation
    np.testing.assert_allclose(ours[away], reference[away], rtol=0, atol=1e-12)
    np.testing.assert_allclose(Rotation.from_rotvec(ours).as_matrix(), rot, rtol=0, atol=1e-12)
    assert np.all(np.linalg.norm(ours, axis=1) <= np.pi + 1e-12)
    near_pi = ~away
    flipped = np.minimum(np.abs(ours[near_pi] - reference[near_pi]).max(1), np.abs(ours[near_pi] + reference[near_pi]).max(1))
    assert flipped.max() < 1e-8
    tiny = np.linalg.norm(rotvecs, axis=1) < 1e-6
    np.testing.assert_allclose(ours[tiny], rotvecs[tiny], rtol=1e-9, atol=1e-20)


def test_rotmat_to_axis_angle_float32_and_shapes():
    rot = Rotation.random(30, random_state=0).as_matrix().reshape(5, 6, 3, 3)
    ours = rotmat_to_axis_angle(rot.astype(np.float32))
    assert ours.shape == (5, 6, 3) and ours.dtype == np.float64
    np.testing.assert_allclose(ours.reshape(-1, 3), Rotation.from_matrix(rot.reshape(-1, 3, 3)).as_rotvec(), atol=2e-6)


def test_agora_axis_angle_hands_get_the_kit_models_hand_mean(tmp_path) -> None:
    """The kit adds the SMPL-X mean hand to axis-angle hand poses only; the import reproduces that."""
    import pickle

    from humanbench.agora_predictions import import_agora_predictions
    from humanbench.bodymodels import smplx_hand_means

    def params(rotmat: bool) -> dict:
        eye = np.broadcast_to(np.eye(3), (1, 15, 3, 3)).copy()
        hand = eye if rotmat else np.zeros((1, 15, 3))
        one = np.eye(3)[None, None] if rotmat else np.zeros((1, 3))
        return {"params": {"global_orient": one, "body_pose": np.broadcast_to(np.eye(3), (1, 21, 3, 3)).copy() if rotmat else np.zeros((1, 63)),
                           "betas": np.zeros((1, 10)), "transl": np.zeros((1, 3)), "left_hand_pose": hand,
                           "right_hand_pose": hand, "jaw_pose": one, "leye_pose": one, "reye_pose": one,
                           "expression": np.zeros((1, 10))},
                "joints": np.zeros((1, 144, 2)), "gender": "male"}

    for variant, rotmat in (("aa", False), ("rm", True)):
        folder = tmp_path / variant
        folder.mkdir()
        (folder / "ag_validationset_x_bfh_y_00001_personId_0.pkl").write_bytes(pickle.dumps(params(rotmat), protocol=2))
        pred = import_agora_predictions(folder)
        expected = smplx_hand_means("male")[0] if not rotmat else np.zeros(45)
        np.testing.assert_allclose(pred.left_hand_pose[0], expected, atol=1e-12)
