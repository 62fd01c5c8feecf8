"""Import an AGORA evaluation-kit prediction folder (or zip) into :class:`~humanbench.predictions.Predictions`.

The kit (pixelite1201/agora_evaluation, ``docs/prediction_format.md``) wants one pickle per
detected person, ``<imgname>_personId_<k>.pkl``, holding a dict of numpy arrays:

* ``joints``: (J2,2), (1,J2,2) or with extra columns; J2 >= 24 projected joints in 3840x2160 pixels;
* ``verts`` ((6890,3) SMPL or (10475,3) SMPL-X) with ``allSmplJoints3d`` (>= 24 / >= 127 rows),
  metres, camera frame; and/or
* ``params``: ``betas``, ``global_orient``, ``body_pose``, ``transl`` (SMPL), plus hands, jaw,
  eyes and ``expression`` (SMPL-X), either axis-angle (``pose2rot`` True, the default) or
  rotation matrices (``pose2rot`` False: ``global_orient`` (1,1,3,3), ``body_pose`` (1,23|21,3,3),
  hands (1,15,3,3), jaw/eyes (1,1,3,3));
* optional ``gender`` (default neutral), ``num_betas``, ``kid_flag`` (read by the kit) or ``age``
  ('kid'/'adult', in the docs); kids carry 11 betas, the last one the kid-template weight.

Every file is read through the restricted unpickler (numpy arrays and plain containers only;
anything else is refused and nothing runs). Rotation matrices become axis-angle with
:func:`rotmat_to_axis_angle`. The image name becomes the sample key with
:func:`agora_sample_key`; ``k`` becomes ``person``, a **detection** index (validate with
``detections=True``).
"""

from __future__ import annotations

import re
import zipfile
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, Literal

import numpy as np

from humanbench.bodymodels.models import smplx_hand_means
from humanbench.bodymodels.safe_pickle import load_pickle_restricted, loads_pickle_restricted
from humanbench.predictions import MAX_OFFENDERS, VERTEX_COUNT, PredictionError, Predictions
from humanbench.schema import BODY_POSE_DIM, GENDERS, KEY_PATTERN

__all__ = [
    "LOW_RES_SUFFIX",
    "PERSON_FILE",
    "ROTATION_TOL",
    "agora_sample_key",
    "import_agora_predictions",
    "rotmat_to_axis_angle",
]

PERSON_FILE = re.compile(r"^(?P<image>.+)_personId_(?P<k>\d+)\.pkl$")
"""Name of one prediction pickle: the image name without ``.png``, then ``_personId_<k>``."""

LOW_RES_SUFFIX = "_1280x720"
"""Stem suffix of AGORA's 1280x720 image copies (the 3840x2160 originals have none)."""

ROTATION_TOL = 1e-3
"""Largest accepted ``|R R^T - I|`` entry of a predicted rotation matrix."""

ResolutionSuffix = Literal["strip", "keep", "error"]

POSE_JOINTS = {"global_orient": 1, "left_hand_pose": 15, "right_hand_pose": 15, "jaw_pose": 1, "leye_pose": 1, "reye_pose": 1}
"""Joint counts of the pose parameters (``body_pose``: 23 SMPL, 21 SMPL-X)."""

PARAMS = {
    "smpl": ("betas", "global_orient", "body_pose", "transl"),
    "smplx": ("betas", "global_orient", "body_pose", "transl", "left_hand_pose", "right_hand_pose",
              "jaw_pose", "leye_pose", "reye_pose", "expression"),
}
"""The ``params`` keys the kit requires per body model."""

MIN_JOINTS3D = {"smpl": 24, "smplx": 127}
"""Fewest ``allSmplJoints3d`` rows the kit accepts."""

MIN_JOINTS2D = 24
"""Fewest ``joints`` rows the kit accepts (the first 24 are used for matching)."""

_BODY_POSE_MODEL = {size * factor: kind for kind, size in BODY_POSE_DIM.items() for factor in (1, 3)}


# ----------------------------------------------------------------------------- rotations


def _rotmat_to_quaternion(rot: np.ndarray) -> np.ndarray:
    """(M,3,3) rotation matrices -> (M,4) unit quaternions (w, x, y, z) with w >= 0.

    Each of the four rows below equals ``4 q_i * q`` for one component ``q_i``; the row of the
    largest ``|q_i|`` (found from the trace and the diagonal) has norm >= 2, so normalising it is
    well-conditioned for every angle, including 0 and pi.
    """
    (m00, m01, m02), (m10, m11, m12), (m20, m21, m22) = np.moveaxis(rot, 0, -1)
    trace = m00 + m11 + m22
    rows = np.stack([
        np.stack([1 + trace, m21 - m12, m02 - m20, m10 - m01], -1),
        np.stack([m21 - m12, 1 + m00 - m11 - m22, m01 + m10, m02 + m20], -1),
        np.stack([m02 - m20, m01 + m10, 1 - m00 + m11 - m22, m12 + m21], -1),
        np.stack([m10 - m01, m02 + m20, m12 + m21, 1 - m00 - m11 + m22], -1),
    ], axis=1)
    pick = np.argmax(np.stack([trace, m00, m11, m22], -1), axis=-1)
    quat = rows[np.arange(len(rot)), pick]
    quat /= np.linalg.norm(quat, axis=-1, keepdims=True)
    return quat * np.where(quat[:, :1] < 0, -1.0, 1.0)


def _quaternion_to_axis_angle(quat: np.ndarray) -> np.ndarray:
    """(M,4) unit quaternions with w >= 0 -> (M,3) axis-angle, angle = 2 atan2(|v|, w) in [0, pi].

    For tiny ``|v|`` the factor ``angle / |v|`` uses its series ``2/w - 2|v|^2 / (3 w^3)``.
    """
    w, vec = quat[:, 0], quat[:, 1:]
    norm = np.linalg.norm(vec, axis=-1)
    small = norm < 1e-6
    safe_norm = np.where(small, 1.0, norm)
    safe_w = np.where(small, w, 1.0)
    scale = np.where(small, 2 / safe_w - 2 * norm**2 / (3 * safe_w**3), 2 * np.arctan2(norm, w) / safe_norm)
    return vec * scale[:, None]


def rotmat_to_axis_angle(rotmats: np.ndarray) -> np.ndarray:
    """Rotation matrices -> axis-angle vectors, batched, in float64.

    Args:
        rotmats: (..., 3, 3) rotation matrices.

    Returns:
        (..., 3) axis-angle with angle in [0, pi] (at exactly pi, v and -v are the same rotation).
    """
    rot = np.asarray(rotmats, dtype=np.float64)
    quat = _rotmat_to_quaternion(rot.reshape(-1, 3, 3))
    return _quaternion_to_axis_angle(quat).reshape(*rot.shape[:-2], 3)


def _not_rotations(rot: np.ndarray, tol: float) -> np.ndarray:
    """(M,...,3,3) -> (M,) True where some matrix is not a rotation (orthonormal within ``tol``, det > 0)."""
    rot = rot.reshape(len(rot), -1, 3, 3).astype(np.float64)
    error = np.abs(rot @ np.swapaxes(rot, -1, -2) - np.eye(3)).max(axis=(-2, -1))
    return ((error > tol) | (np.linalg.det(rot) <= 0)).any(axis=-1)


# ----------------------------------------------------------------------------- names


def agora_sample_key(image_name: str, resolution_suffix: ResolutionSuffix = "strip") -> str:
    """AGORA image name (or prediction stem) -> humanbench sample key.

    ``ag_validationset_renderpeople_bfh_flowers_5_15_00000[_1280x720][.png]`` -> the lowercase stem
    without ``.png``. ``resolution_suffix`` says what happens to a trailing ``_1280x720``:
    ``"strip"`` (default) maps both resolutions of an image to the key of its 3840x2160 name,
    which is the name the kit and the GT dataframes (``imgPath``) use; ``"keep"`` keeps it (for
    shards keyed by the low-resolution file name); ``"error"`` refuses it, as the kit would
    silently match nothing for such a file.
    """
    stem = PurePosixPath(image_name).name
    stem = (stem[:-4] if stem.lower().endswith(".png") else stem).lower()
    if stem.endswith(LOW_RES_SUFFIX) and resolution_suffix != "keep":
        if resolution_suffix == "error":
            raise PredictionError([f"{image_name!r} ends in {LOW_RES_SUFFIX!r}; the kit expects the 3840x2160 image name"])
        stem = stem[: -len(LOW_RES_SUFFIX)]
    if not KEY_PATTERN.match(stem):
        raise PredictionError([f"{image_name!r} gives key {stem!r}, not a sample key (lowercase letters, digits, '_', '-')"])
    return stem


# ----------------------------------------------------------------------------- reading files


def _pickle_names(names: list[str]) -> list[str]:
    """Keep ``.pkl`` entries, dropping macOS zip debris (``__MACOSX/``, ``._*``); sorted."""
    return sorted(n for n in names if n.endswith(".pkl") and "__MACOSX" not in n
                  and not PurePosixPath(n).name.startswith("._"))


def _read_pickles(path: Path) -> Iterator[tuple[str, Any]]:
    """Yield ``(source, content)`` for every prediction pickle of a folder (recursively) or zip."""
    if path.is_dir():
        for name in _pickle_names([p.relative_to(path).as_posix() for p in path.rglob("*.pkl")]):
            yield str(path / name), load_pickle_restricted(path / name, expected="an AGORA prediction pickle")
    elif zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as archive:
            for name in _pickle_names([i.filename for i in archive.infolist() if not i.is_dir()]):
                source = f"{path}:{name}"
                yield source, loads_pickle_restricted(archive.read(name), source=source, expected="an AGORA prediction pickle")
    else:
        raise PredictionError([f"{path} is neither a folder nor a zip of <imgname>_personId_<k>.pkl files"])


# ----------------------------------------------------------------------------- one file


class _BadFile(Exception):
    """One prediction file breaks the kit's format; the message says how."""


@dataclass
class _Person:
    """One file's content: per-person arrays without the leading N (poses (J,3) or (J,3,3))."""

    source: str
    key: str
    person: int
    body_model: str
    arrays: dict[str, np.ndarray]
    gender: str
    kid: bool


def _numeric(value: Any, what: str) -> np.ndarray:
    if not isinstance(value, np.ndarray) or value.dtype.kind not in "biuf":
        raise _BadFile(f"{what} must be a numeric numpy array, found {type(value).__name__}"
                       + (f" of dtype {value.dtype}" if isinstance(value, np.ndarray) else ""))
    return value


def _squeeze(arr: np.ndarray, ndim: int, what: str) -> np.ndarray:
    """Drop leading size-1 axes down to ``ndim`` axes: (1,45,2) -> (45,2)."""
    lead = arr.shape[: max(arr.ndim - ndim, 0)]
    if arr.ndim < ndim or any(d != 1 for d in lead):
        raise _BadFile(f"{what} has shape {arr.shape}, expected {ndim} axes (after leading 1s)")
    return arr.reshape(arr.shape[arr.ndim - ndim:])


def _pose(arr: np.ndarray, joints: int, what: str) -> np.ndarray:
    """Axis-angle -> (J,3), rotation matrices -> (J,3,3), whatever the leading 1s."""
    if arr.size == joints * 9 and arr.shape[-2:] == (3, 3):
        return arr.reshape(joints, 3, 3)
    if arr.size == joints * 3 and arr.shape[-1] in (3, joints * 3):
        return arr.reshape(joints, 3)
    raise _BadFile(f"{what} has shape {arr.shape}, expected {joints}x3 axis-angle or {joints}x3x3 rotation matrices")


def _params(params: Any, pose2rot: Any) -> tuple[str, dict[str, np.ndarray]]:
    """The ``params`` dict -> (body model, arrays); poses keep their representation."""
    if not isinstance(params, dict):
        raise _BadFile(f"params must be a dict, found {type(params).__name__}")
    body_pose = _numeric(params.get("body_pose"), "params['body_pose']")
    model = _BODY_POSE_MODEL.get(body_pose.size)
    if model is None:
        raise _BadFile(f"params['body_pose'] has {body_pose.size} values: neither SMPL (23 joints) nor SMPL-X (21 joints)")
    missing = [name for name in PARAMS[model] if name not in params]
    if missing:
        raise _BadFile(f"{model} params lack {missing}")
    joints = {**POSE_JOINTS, "body_pose": BODY_POSE_DIM[model] // 3}
    arrays = {}
    for name in PARAMS[model]:
        arr = _numeric(params[name], f"params[{name!r}]")
        arrays[name] = _pose(arr, joints[name], f"params[{name!r}]") if name in joints else _squeeze(arr, 1, f"params[{name!r}]")
    if pose2rot is not None:
        wrong = [name for name in joints if name in arrays and (arrays[name].ndim == 3) == bool(pose2rot)]
        if wrong:
            raise _BadFile(f"pose2rot is {bool(pose2rot)} but {wrong} hold {'rotation matrices' if pose2rot else 'axis-angle'}")
    if arrays["transl"].shape != (3,):
        raise _BadFile(f"params['transl'] has {arrays['transl'].size} values, expected 3")
    return model, arrays


def _meshes(content: dict) -> tuple[str, dict[str, np.ndarray]]:
    """``verts`` + ``allSmplJoints3d`` -> (body model, {vertices, joints})."""
    verts = _squeeze(_numeric(content["verts"], "verts"), 2, "verts")
    model = next((kind for kind, count in VERTEX_COUNT.items() if verts.shape == (count, 3)), None)
    if model is None:
        raise _BadFile(f"verts has shape {verts.shape}, expected (6890, 3) SMPL or (10475, 3) SMPL-X")
    joints = _squeeze(_numeric(content["allSmplJoints3d"], "allSmplJoints3d"), 2, "allSmplJoints3d")
    if joints.shape[1] != 3 or joints.shape[0] < MIN_JOINTS3D[model]:
        raise _BadFile(f"allSmplJoints3d has shape {joints.shape}, expected (>= {MIN_JOINTS3D[model]}, 3) for {model}")
    return model, {"vertices": verts, "joints": joints}


def _kid_and_gender(content: dict, betas: np.ndarray | None) -> tuple[bool, str]:
    """``kid_flag`` (else ``age == 'kid'``) and ``gender``; kids need 11 betas, ``num_betas`` must fit."""
    flag = content.get("kid_flag", content.get("age") == "kid")
    if not isinstance(flag, (bool, np.bool_)):
        raise _BadFile(f"kid_flag must be True or False, found {flag!r}")
    gender = content.get("gender", "neutral")
    if not isinstance(gender, str) or gender not in GENDERS:
        raise _BadFile(f"gender {gender!r}, expected one of {list(GENDERS)}")
    if betas is not None:
        width, num_betas = len(betas), content.get("num_betas", len(betas))
        if not isinstance(num_betas, (int, np.integer)) or num_betas != width:
            raise _BadFile(f"num_betas is {num_betas!r} but params['betas'] has {width} values")
        if flag and width != 11:
            raise _BadFile(f"kid_flag is set but params['betas'] has {width} values; "
                           "kids need 11 (the last one the kid-template weight)")
    return bool(flag), str(gender)


def _joints2d(content: dict) -> np.ndarray:
    if "joints" not in content:
        raise _BadFile("the required 'joints' (2D joints, 3840x2160 pixels) is missing")
    joints = _squeeze(_numeric(content["joints"], "joints"), 2, "joints")
    if joints.shape[0] < MIN_JOINTS2D or joints.shape[1] < 2:
        raise _BadFile(f"joints has shape {joints.shape}, expected (>= {MIN_JOINTS2D}, 2)")
    return joints[:, :2]


def _parse_person(source: str, content: Any, resolution_suffix: ResolutionSuffix) -> _Person:
    """One pickle's content -> :class:`_Person`; raises :class:`_BadFile`."""
    match = PERSON_FILE.match(PurePosixPath(source).name)
    if match is None:
        raise _BadFile("file name is not <imgname>_personId_<k>.pkl")
    if not isinstance(content, dict):
        raise _BadFile(f"holds a {type(content).__name__}, expected a dict")
    models, arrays = [], {"joints2d": _joints2d(content)}
    if "verts" in content and "allSmplJoints3d" in content:
        model, meshes = _meshes(content)
        models.append(model)
        arrays.update(meshes)
    if "params" in content:
        model, params = _params(content["params"], content.get("pose2rot"))
        models.append(model)
        arrays.update(params)
    if not models:
        raise _BadFile("has neither 'verts' + 'allSmplJoints3d' nor 'params'")
    if len(set(models)) > 1:
        raise _BadFile(f"verts are {models[0]} but params are {models[1]}")
    kid, gender = _kid_and_gender(content, arrays.get("betas"))
    try:
        key = agora_sample_key(match["image"], resolution_suffix)
    except PredictionError as exc:
        raise _BadFile(exc.problems[0]) from None
    return _Person(source, key, int(match["k"]), models[0], arrays, gender, kid)


# ----------------------------------------------------------------------------- stacking


def _firsts(sources: list[str]) -> str:
    return ", ".join(sources[:MAX_OFFENDERS]) + (", ..." if len(sources) > MAX_OFFENDERS else "")


def _stack_pose(name: str, poses: list[np.ndarray], sources: list[str], tol: float) -> np.ndarray:
    """Per-file (J,3) axis-angle or (J,3,3) rotation matrices -> (N, J*3), rotations converted in one batch."""
    is_rot = np.array([p.ndim == 3 for p in poses])
    dtype = np.float64 if is_rot.any() else np.result_type(*poses)
    out = np.empty((len(poses), poses[0].shape[0] * 3), dtype=dtype)
    if is_rot.any():
        rot = np.stack([p for p, r in zip(poses, is_rot) if r])
        bad = _not_rotations(rot, tol)
        if bad.any():
            rot_sources = [s for s, r in zip(sources, is_rot) if r]
            raise PredictionError([f"params[{name!r}]: {int(bad.sum())} file(s) hold matrices that are not rotations "
                                   f"(|R R^T - I| > {tol} or det <= 0): {_firsts([s for s, b in zip(rot_sources, bad) if b])}"])
        out[is_rot] = rotmat_to_axis_angle(rot).reshape(len(rot), -1)
    if not is_rot.all():
        out[~is_rot] = np.stack([p for p, r in zip(poses, is_rot) if not r]).reshape(int((~is_rot).sum()), -1)
    return out


def _stack(name: str, values: list[np.ndarray], sources: list[str]) -> np.ndarray:
    """Stack same-shape per-file arrays; ``betas`` of different widths are zero-padded on the right."""
    if name == "betas":
        width = max(len(v) for v in values)
        return np.stack([np.pad(v, (0, width - len(v))) for v in values])
    shapes = Counter(v.shape for v in values)
    if len(shapes) > 1:
        common = shapes.most_common(1)[0][0]
        odd = [s for s, v in zip(sources, values) if v.shape != common]
        raise PredictionError([f"{name}: files disagree on the shape {dict(shapes)}; not {common}: {_firsts(odd)}"])
    return np.stack(values)


def _check_uniform(people: list[_Person]) -> None:
    """All files must use the same body model and the same set of fields (one variant)."""
    for what, value in (("body model", lambda p: p.body_model), ("variant (fields)", lambda p: tuple(sorted(p.arrays)))):
        groups = Counter(value(p) for p in people)
        if len(groups) > 1:
            parts = [f"{g} in {n} file(s), e.g. {next(p.source for p in people if value(p) == g)}" for g, n in groups.items()]
            raise PredictionError([f"mixed {what}: " + "; ".join(parts)])


def _add_hand_means(arrays: dict[str, np.ndarray], people: list[_Person], body_models: str | Path | None) -> None:
    """Make the kit's mean-relative SMPL-X hand poses absolute (the schema's convention), in place.

    The kit poses axis-angle ``params`` with ``smplx.create`` (``flat_hand_mean=False``: the model's
    mean hand is added) but rotation-matrix ones with a layer that adds nothing; so only files
    with axis-angle hands get the mean of the model the kit uses (female kids: neutral).
    """
    for row, person in enumerate(people):
        if person.body_model == "smplx" and person.arrays["left_hand_pose"].ndim == 2:
            gender = "neutral" if person.kid and person.gender == "female" else person.gender
            means = smplx_hand_means(gender, root=body_models)
            arrays["left_hand_pose"][row] += means[0]
            arrays["right_hand_pose"][row] += means[1]


def _to_predictions(people: list[_Person], tol: float, body_models: str | Path | None) -> Predictions:
    """Stack per-file records, sorted by (key, person), into one :class:`Predictions`."""
    _check_uniform(people)
    keys = np.array([p.key for p in people], dtype=str)
    person = np.array([p.person for p in people], dtype=np.int64)
    order = np.lexsort((person, keys))
    people = [people[i] for i in order]
    sources = [p.source for p in people]
    arrays = {}
    for name in people[0].arrays:
        values = [p.arrays[name] for p in people]
        arrays[name] = (_stack_pose(name, values, sources, tol) if name in POSE_JOINTS or name == "body_pose"
                        else _stack(name, values, sources))
    if "left_hand_pose" in arrays:
        arrays["left_hand_pose"] = arrays["left_hand_pose"].astype(np.float64)
        arrays["right_hand_pose"] = arrays["right_hand_pose"].astype(np.float64)
        _add_hand_means(arrays, people, body_models)
    return Predictions(
        keys=keys[order], person=person[order], body_model=people[0].body_model,
        gender=np.array([p.gender for p in people], dtype=str), kid=np.array([p.kid for p in people], dtype=bool),
        **arrays,
    )


def import_agora_predictions(
    path: str | Path,
    *,
    body_model: str | None = None,
    resolution_suffix: ResolutionSuffix = "strip",
    rotation_tol: float = ROTATION_TOL,
    body_models: str | Path | None = None,
) -> Predictions:
    """Read an AGORA-kit prediction folder (searched recursively) or zip into :class:`Predictions`.

    Args:
        path: folder or ``.zip`` holding ``<imgname>_personId_<k>.pkl`` files (other files are ignored).
        body_model: "smpl" or "smplx" to insist on one; None accepts whichever all files use.
        resolution_suffix: what a ``_1280x720`` in the image name does to the key (:func:`agora_sample_key`).
        rotation_tol: largest accepted ``|R R^T - I|`` entry of rotation-matrix parameters.
        body_models: body-model folder whose SMPL-X hand means make axis-angle hand poses absolute
            (None: ``$HUMANBENCH_BODY_MODELS`` or the synthetic models).

    Returns:
        N = number of files, sorted by (key, person); ``person`` is the detection index ``k``;
        ``joints2d`` (N,J2,2) as given (the kit wants 3840x2160 pixels); params as axis-angle,
        ``body_pose`` (N,69|63), betas zero-padded to the widest file (kid rows: column 10 is the
        kid-template weight); ``vertices``/``joints`` when the files carry meshes.

    Raises:
        UnsafePickleError: a file references anything but numpy arrays and plain containers.
        PredictionError: files break the kit's format (the first few named) or disagree.
    """
    if body_model not in (None, *VERTEX_COUNT):
        raise ValueError(f"body_model must be 'smpl', 'smplx' or None, got {body_model!r}")
    path = Path(path)
    people, problems = [], []
    for source, content in _read_pickles(path):
        try:
            people.append(_parse_person(source, content, resolution_suffix))
        except _BadFile as exc:
            problems.append(f"{source}: {exc}")
    if problems:
        more = [f"... and {len(problems) - MAX_OFFENDERS} more file(s)"] if len(problems) > MAX_OFFENDERS else []
        raise PredictionError(problems[:MAX_OFFENDERS] + more, f"AGORA predictions {path}: {len(problems)} bad file(s)")
    if not people:
        raise PredictionError([f"no <imgname>_personId_<k>.pkl files in {path}"])
    pred = _to_predictions(people, rotation_tol, body_models)
    if body_model is not None and pred.body_model != body_model:
        raise PredictionError([f"wrong body model: the files hold {pred.body_model} predictions, expected {body_model}"])
    return pred
