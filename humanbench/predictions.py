"""A method's output: predictions keyed by sample key and person index, their files and validation.

One :class:`Predictions` holds N rows, one per predicted person, each identified by ``(keys[i],
person[i])``: the sample key (the shard ``__key__``) and a person index. What ``person`` means
depends on the protocol: the GT person index for protocols that evaluate every annotated person
(3DPW, UBody, EHF), a detection index for protocols that match detections to GT (AGORA official).
Everything is in the **camera frame** of the sample's image, in **metres**, rotations in
**axis-angle**; SMPL-X hand poses are full 15 x 3 axis-angle with a flat hand mean, like the
sample schema. The reference is ``docs/predictions.md``; :data:`PREDICTION_FIELDS` is the same
table in machine-readable form and drives validation and both file formats.

Files: ``.npz`` (no pickles; strings as fixed-width unicode) or ``.parquet`` (one row per
prediction; arrays as fixed-size list columns). :func:`save_predictions` /
:func:`load_predictions` choose by suffix. :func:`validate_predictions` checks a set against a
protocol and raises :class:`PredictionError` listing every problem with counts and the first
offenders.
"""

from __future__ import annotations

import json
import os
import zipfile
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from humanbench.errors import HumanbenchError
from humanbench.npzio import write_npz
from humanbench.schema import BODY_MODEL_KINDS, BODY_POSE_DIM, GENDERS

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa

__all__ = [
    "FORMAT_VERSION",
    "PARAM_FIELDS",
    "PREDICTION_FIELDS",
    "VERTEX_COUNT",
    "PredField",
    "PredictionError",
    "Predictions",
    "load_predictions",
    "save_predictions",
    "validate_predictions",
]

FORMAT_VERSION = 1
"""Version of the npz / parquet layout written by :func:`save_predictions`."""

VERTEX_COUNT = {"smpl": 6890, "smplx": 10475}
"""Mesh vertex count per body model (also of the embedded synthetic stand-ins)."""

PARAM_FIELDS = ("betas", "global_orient", "body_pose")
"""The core body-model parameters: all three or none. ``require=("params",)`` asks for them."""

MAX_OFFENDERS = 5
"""How many offending (key, person) pairs an error message lists per problem."""


class PredictionError(HumanbenchError, ValueError):
    """Predictions that cannot be evaluated; ``problems`` lists one line per problem found."""

    def __init__(self, problems: list[str], context: str = "predictions") -> None:
        self.problems = problems
        super().__init__(f"{context}: {len(problems)} problem(s):\n  - " + "\n  - ".join(problems))


@dataclass(frozen=True)
class PredField:
    """Shape and dtype rule for one per-prediction array.

    ``shape`` uses symbols: ``N`` predictions; ``BP`` (body-pose length) and ``V`` (vertex
    count) fixed by the body model (:data:`~humanbench.schema.BODY_POSE_DIM`,
    :data:`VERTEX_COUNT`); ``B`` betas, ``E`` expression coefficients, ``J``/``J2`` joint
    counts free but at least 1; integers are exact sizes. ``kinds`` lists the accepted numpy
    dtype kinds.
    """

    shape: tuple[str | int, ...]
    kinds: str
    smplx_only: bool = False
    doc: str = ""


PREDICTION_FIELDS: dict[str, PredField] = {
    "keys": PredField(("N",), "U", doc="sample key (shard `__key__`)"),
    "person": PredField(("N",), "iu", doc="GT person index (per-person protocols) or detection index (matching protocols)"),
    "betas": PredField(("N", "B"), "f", doc="shape coefficients; for kid rows column 10 is the kid-template weight"),
    "global_orient": PredField(("N", 3), "f", doc="axis-angle root rotation, camera frame"),
    "body_pose": PredField(("N", "BP"), "f", doc="axis-angle body joints: SMPL 69 (23x3), SMPL-X 63 (21x3)"),
    "transl": PredField(("N", 3), "f", doc="smplx translation, metres, camera frame (zeros when absent)"),
    "left_hand_pose": PredField(("N", 45), "f", True, "full axis-angle 15x3, flat hand mean"),
    "right_hand_pose": PredField(("N", 45), "f", True, "full axis-angle 15x3, flat hand mean"),
    "jaw_pose": PredField(("N", 3), "f", True, "axis-angle"),
    "leye_pose": PredField(("N", 3), "f", True, "axis-angle"),
    "reye_pose": PredField(("N", 3), "f", True, "axis-angle"),
    "expression": PredField(("N", "E"), "f", True, "expression coefficients"),
    "gender": PredField(("N",), "U", doc="body-model gender: neutral, male or female (neutral when absent)"),
    "kid": PredField(("N",), "b", doc="child body: betas column 10 is the kid-template weight"),
    "vertices": PredField(("N", "V", 3), "f", doc="mesh vertices, metres, camera frame"),
    "joints": PredField(("N", "J", 3), "f", doc="3D joints, metres, camera frame"),
    "joints2d": PredField(("N", "J2", 2), "f", doc="2D joints, pixels of the evaluated image (AGORA: 3840x2160)"),
    "score": PredField(("N",), "f", doc="detection confidence"),
}
"""Every array a :class:`Predictions` may hold; each has the leading axis N."""

_STRING_FIELDS = tuple(name for name, spec in PREDICTION_FIELDS.items() if spec.kinds == "U")


@dataclass(eq=False)
class Predictions:
    """N predicted people, keyed by ``(keys[i], person[i])``; see :data:`PREDICTION_FIELDS`.

    ``body_model`` is ``"smpl"``, ``"smplx"``, or None when only ``vertices``/``joints`` are
    given. Absent optional parameters mean zeros (``transl``, SMPL-X hands/face/expression),
    absent ``gender`` means neutral, absent ``kid`` means adults.

    Attributes:
        keys: (N,) str sample keys.
        person: (N,) int person (or detection) indices.
        betas: (N,B); global_orient: (N,3); body_pose: (N,69) SMPL or (N,63) SMPL-X;
        transl: (N,3); left_hand_pose, right_hand_pose: (N,45); jaw_pose, leye_pose,
        reye_pose: (N,3); expression: (N,E).
        gender: (N,) str; kid: (N,) bool.
        vertices: (N,V,3) and joints: (N,J,3), metres, camera frame.
        joints2d: (N,J2,2) pixels; score: (N,) detection confidence.
    """

    keys: np.ndarray
    person: np.ndarray
    body_model: str | None = None
    betas: np.ndarray | None = None
    global_orient: np.ndarray | None = None
    body_pose: np.ndarray | None = None
    transl: np.ndarray | None = None
    left_hand_pose: np.ndarray | None = None
    right_hand_pose: np.ndarray | None = None
    jaw_pose: np.ndarray | None = None
    leye_pose: np.ndarray | None = None
    reye_pose: np.ndarray | None = None
    expression: np.ndarray | None = None
    gender: np.ndarray | None = None
    kid: np.ndarray | None = None
    vertices: np.ndarray | None = None
    joints: np.ndarray | None = None
    joints2d: np.ndarray | None = None
    score: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.keys)

    def arrays(self) -> dict[str, np.ndarray]:
        """The present arrays (``keys`` and ``person`` first), in :data:`PREDICTION_FIELDS` order."""
        return {name: getattr(self, name) for name in PREDICTION_FIELDS if getattr(self, name) is not None}

    def to_dataframe(self) -> pd.DataFrame:
        """One row per prediction: scalar fields as columns, arrays as per-row ndarrays (e.g. (V,3))."""
        import pandas as pd

        columns = {name: (arr if arr.ndim == 1 else list(arr)) for name, arr in self.arrays().items()}
        frame = pd.DataFrame(columns)
        frame.attrs["body_model"] = self.body_model
        return frame


# ----------------------------------------------------------------------------- validation


def _describe(arr: object) -> str:
    if isinstance(arr, np.ndarray):
        return f"shape {tuple(arr.shape)} dtype {arr.dtype}"
    return type(arr).__name__


def _pair_list(keys: np.ndarray, person: np.ndarray) -> str:
    """``'k' person p, ...`` for the first :data:`MAX_OFFENDERS` pairs in (key, person) order."""
    order = np.lexsort((person, keys))[:MAX_OFFENDERS]
    more = ", ..." if len(keys) > MAX_OFFENDERS else ""
    return ", ".join(f"{str(keys[i])!r} person {person[i]}" for i in order) + more


def _width_problem(name: str, width: int, model: str) -> str | None:
    """``body_pose`` width or ``vertices`` count against ``model``; names the other model when it fits that."""
    table, unit = (VERTEX_COUNT, "vertices") if name == "vertices" else (BODY_POSE_DIM, "values per person")
    if width == table[model]:
        return None
    other = next((kind for kind, size in table.items() if size == width), None)
    if other is not None:
        return f"wrong body model: {name} has {width} {unit} ({other}) but the body model is {model!r}, which needs {table[model]}"
    return f"wrong shape: field {name!r}: body model {model!r} needs {table[model]} {unit}, found {width}"


def _model_problems(pred: Predictions, body_model: str | None) -> list[str]:
    """Body-model consistency: the declared model, the protocol's, parameter sets, pose and mesh sizes."""
    if pred.body_model not in (None, *BODY_MODEL_KINDS):
        return [f"wrong body model: body_model {pred.body_model!r}, expected one of {list(BODY_MODEL_KINDS)} or None"]
    problems = []
    if body_model is not None and pred.body_model not in (None, body_model):
        problems.append(f"wrong body model: predictions are {pred.body_model!r} but the protocol evaluates {body_model!r}")
    present = pred.arrays()
    params = [name for name in PARAM_FIELDS if name in present]
    if params and pred.body_model is None:
        problems.append(f"wrong body model: parameters {params} given with body_model None (set 'smpl' or 'smplx')")
    if 0 < len(params) < len(PARAM_FIELDS):
        problems.append(f"incomplete parameters: {params} given, {list(PARAM_FIELDS)} go together")
    smplx_only = [name for name, spec in PREDICTION_FIELDS.items() if spec.smplx_only and name in present]
    if smplx_only and pred.body_model == "smpl":
        problems.append(f"wrong body model: SMPL-X fields {smplx_only} with body_model 'smpl'")
    model = pred.body_model or body_model
    for name in ("body_pose", "vertices"):
        arr = present.get(name)
        if model is not None and isinstance(arr, np.ndarray) and arr.ndim > 1 and (p := _width_problem(name, arr.shape[1], model)):
            problems.append(p)
    return problems


def _shape_problem(name: str, arr: object, spec: PredField, sizes: dict[str, int]) -> str | None:
    """One field against its symbolic shape; binds free symbols in ``sizes``. None when fine."""
    symbolic = f"({', '.join(map(str, spec.shape))})"
    if not isinstance(arr, np.ndarray) or arr.dtype.kind not in spec.kinds or arr.ndim != len(spec.shape):
        return f"wrong shape: field {name!r}: expected {spec.kinds!r}-kind array of shape {symbolic}, found {_describe(arr)}"
    if arr.shape[0] != sizes["N"]:
        return None  # reported as mixed lengths
    for dim, sym in zip(arr.shape[1:], spec.shape[1:]):
        want = sym if isinstance(sym, int) else sizes.setdefault(sym, dim)
        if dim != want or dim < 1:
            bound = tuple(s if isinstance(s, int) else sizes.get(s, s) for s in spec.shape)
            return f"wrong shape: field {name!r}: expected {symbolic} = {bound}, found {tuple(arr.shape)}"
    return None


def _structure_problems(pred: Predictions, body_model: str | None = None) -> list[str]:
    """Lengths, shapes, dtypes and body model: everything that does not look at values."""
    present = pred.arrays()
    sizes = {"N": len(pred.keys) if isinstance(pred.keys, np.ndarray) and pred.keys.ndim else -1}
    problems = _model_problems(pred, body_model)
    for name in ("keys", "person"):
        if name not in present:
            problems.append(f"wrong shape: field {name!r} is required")
    problems += [p for name, arr in present.items() if (p := _shape_problem(name, arr, PREDICTION_FIELDS[name], sizes))]
    lengths = {name: arr.shape[0] for name, arr in present.items() if isinstance(arr, np.ndarray) and arr.ndim}
    if len(set(lengths.values())) > 1:
        problems.append("mixed lengths: " + ", ".join(f"{name} has {n}" for name, n in lengths.items())
                        + " rows (every array needs the same leading N)")
    if not problems and not any(name in present for name in ("betas", "vertices", "joints")):
        problems.append("nothing to evaluate: give parameters (betas, global_orient, body_pose), vertices or joints")
    return problems


def _required_problems(pred: Predictions, require: Iterable[str]) -> list[str]:
    """Fields the protocol needs; ``"params"`` stands for :data:`PARAM_FIELDS`."""
    wanted = [f for name in require for f in (PARAM_FIELDS if name == "params" else (name,))]
    unknown = [name for name in wanted if name not in PREDICTION_FIELDS]
    if unknown:
        raise ValueError(f"require: unknown field(s) {unknown}; known: {['params', *PREDICTION_FIELDS]}")
    absent = [name for name in dict.fromkeys(wanted) if getattr(pred, name) is None]
    return [f"missing fields: the protocol needs {absent}"] if absent else []


def _value_problems(pred: Predictions) -> list[str]:
    """Non-finite floats, negative person indices, unknown genders, kids without a template weight."""
    keys, person = pred.keys, pred.person
    problems = []
    bad_rows = {}
    for name, arr in pred.arrays().items():
        if arr.dtype.kind == "f":
            bad = ~np.isfinite(arr.reshape(len(arr), -1)).all(axis=1)
            if bad.any():
                bad_rows[name] = bad
    if bad_rows:
        total = int(np.logical_or.reduce(list(bad_rows.values())).sum())
        parts = [f"field {name!r} {int(bad.sum())} row(s), first: {_pair_list(keys[bad], person[bad])}"
                 for name, bad in bad_rows.items()]
        problems.append(f"NaN/inf: {total} prediction(s) with non-finite values; " + "; ".join(parts))
    negative = person < 0
    if negative.any():
        problems.append(f"invalid person index: {int(negative.sum())} negative, first: {_pair_list(keys[negative], person[negative])}")
    if pred.gender is not None:
        unknown = ~np.isin(pred.gender, GENDERS)
        if unknown.any():
            values = sorted(set(pred.gender[unknown].tolist()))[:MAX_OFFENDERS]
            problems.append(f"invalid gender: {int(unknown.sum())} prediction(s) with {values} (allowed {list(GENDERS)}), "
                            f"first: {_pair_list(keys[unknown], person[unknown])}")
    if pred.kid is not None and pred.betas is not None and pred.betas.shape[1] < 11 and pred.kid.any():
        kid = pred.kid
        problems.append(f"kid without template weight: {int(kid.sum())} kid prediction(s) but betas has "
                        f"{pred.betas.shape[1]} columns (kids need column 10), first: {_pair_list(keys[kid], person[kid])}")
    return problems


def _duplicate_problems(keys: np.ndarray, person: np.ndarray) -> list[str]:
    """The same (key, person) predicted more than once."""
    order = np.lexsort((person, keys))
    k, p = keys[order], person[order]
    repeat = np.zeros(len(k), dtype=bool)
    repeat[1:] = (k[1:] == k[:-1]) & (p[1:] == p[:-1])
    if not repeat.any():
        return []
    first_repeat = repeat & ~np.r_[False, repeat[:-1]]
    return [f"duplicates: {int(first_repeat.sum())} (key, person) pair(s) occur more than once "
            f"({int(repeat.sum())} surplus row(s)), first: {_pair_list(k[first_repeat], p[first_repeat])}"]


def _coverage_problems(pred: Predictions, expected: Mapping[str, int], detections: bool) -> list[str]:
    """Extra predictions (unknown key, or person beyond the GT count) and missing GT people."""
    exp_keys = np.asarray(list(expected), dtype=str)
    counts = np.fromiter(expected.values(), dtype=np.int64, count=len(exp_keys))
    order = np.argsort(exp_keys)
    exp_keys, counts = exp_keys[order], counts[order]
    keys, person = pred.keys, pred.person
    slot = np.searchsorted(exp_keys, keys)
    found = slot < len(exp_keys)
    known = np.zeros(len(keys), dtype=bool)
    known[found] = exp_keys[slot[found]] == keys[found]
    limit = np.zeros(len(keys), dtype=np.int64)
    limit[known] = counts[slot[known]]
    in_set = known if detections else known & (person >= 0) & (person < limit)
    problems = []
    if not in_set.all():
        extra = ~in_set
        what = "sample key not in the expected set" if detections else "sample key not expected, or person >= its GT person count"
        problems.append(f"extra: {int(extra.sum())} prediction(s) ({what}; {len(np.unique(keys[~known]))} unknown key(s)), "
                        f"first: {_pair_list(keys[extra], person[extra])}")
    if detections:
        return problems
    starts = np.cumsum(counts) - counts
    covered = np.zeros(int(counts.sum()), dtype=bool)
    covered[starts[slot[in_set]] + person[in_set]] = True
    if not covered.all():
        missing = ~covered
        miss_keys = np.repeat(exp_keys, counts)[missing]
        miss_person = (np.arange(len(covered)) - np.repeat(starts, counts))[missing]
        problems.append(f"missing: {int(missing.sum())} expected (sample, person) pair(s) without a prediction in "
                        f"{len(np.unique(miss_keys))} sample(s), first: {_pair_list(miss_keys, miss_person)}")
    return problems


def validate_predictions(
    pred: Predictions,
    expected: Mapping[str, int] | None = None,
    body_model: str | None = None,
    require: Iterable[str] = (),
    *,
    detections: bool = False,
) -> None:
    """Raise :class:`PredictionError` listing every problem that keeps ``pred`` from being evaluated.

    Args:
        pred: the predictions (N rows).
        expected: sample key -> number of GT people (from the GT shards), or None to skip the
            coverage checks. Per-person protocols (``detections=False``) need exactly one
            prediction for every ``(key, p)`` with ``0 <= p < expected[key]``: missing pairs
            and pairs outside that set (extra) are errors. Matching protocols
            (``detections=True``, ``person`` = detection index) only refuse unknown keys: an
            image without detections is the protocol's business (misses).
        body_model: the protocol's body model ("smpl" | "smplx"), or None for any.
        require: fields the protocol needs; ``"params"`` stands for betas, global_orient, body_pose.
        detections: ``person`` holds detection indices (see ``expected``).

    Structure (lengths, shapes, dtypes, body model) is checked first; values (NaN/inf,
    genders, duplicates, coverage) only when the structure is sound. Every check is vectorised.
    """
    if body_model not in (None, *BODY_MODEL_KINDS):
        raise ValueError(f"body_model must be one of {list(BODY_MODEL_KINDS)} or None, got {body_model!r}")
    problems = _structure_problems(pred, body_model)
    if problems:
        raise PredictionError(problems)
    problems = _required_problems(pred, require) + _value_problems(pred) + _duplicate_problems(pred.keys, pred.person)
    if expected is not None:
        problems += _coverage_problems(pred, expected, detections)
    if problems:
        raise PredictionError(problems)


# ----------------------------------------------------------------------------- files

_META_FIELDS = ("format_version", "body_model")


def _check_writable(pred: Predictions) -> dict[str, np.ndarray]:
    """Structure-check ``pred`` and return its arrays with strings as fixed-width unicode."""
    arrays = {name: arr.astype(str) if name in _STRING_FIELDS and isinstance(arr, np.ndarray) and arr.dtype == object else arr
              for name, arr in pred.arrays().items()}
    problems = _structure_problems(Predictions(body_model=pred.body_model, **arrays))
    if problems:
        raise PredictionError(problems, "cannot save predictions")
    return arrays


def _atomic_write(path: Path, write: Callable[[Path], None]) -> None:
    """Write through ``write(tmp_path)`` into a sibling temporary file, then rename over ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _save_npz(pred: Predictions, path: Path) -> None:
    arrays = dict(_check_writable(pred), format_version=np.array(FORMAT_VERSION))
    if pred.body_model is not None:
        arrays["body_model"] = np.array(pred.body_model)
    _atomic_write(path, lambda tmp: write_npz(tmp, arrays))


def _check_meta(path: Path, version: object, names: Iterable[str]) -> None:
    unknown = sorted(set(names) - set(PREDICTION_FIELDS) - set(_META_FIELDS))
    if version != FORMAT_VERSION:
        raise PredictionError([f"format_version {version!r}, this humanbench reads {FORMAT_VERSION}"], str(path))
    if unknown:
        raise PredictionError([f"unknown field(s) {unknown}; known: {list(PREDICTION_FIELDS)}"], str(path))


def _load_npz(path: Path) -> Predictions:
    try:
        with zipfile.ZipFile(path):  # np.load would also accept a bare .npy
            pass
        with np.load(path, allow_pickle=False) as npz:
            arrays = {name: npz[name] for name in npz.files}
    except (ValueError, OSError, zipfile.BadZipFile) as exc:
        raise PredictionError([f"not a readable predictions npz ({type(exc).__name__}: {exc})"], str(path)) from None
    _check_meta(path, arrays.pop("format_version", np.array(None)).item(), arrays)
    body_model = arrays.pop("body_model", None)
    return Predictions(body_model=None if body_model is None else str(body_model), **arrays)


def _arrow_column(arr: np.ndarray) -> pa.Array:
    """(N, d1, ..., dk) array -> arrow array of N nested fixed-size lists (plain array when k = 0)."""
    import pyarrow as pa

    column = pa.array(arr.reshape(-1))
    for size in reversed(arr.shape[1:]):
        column = pa.FixedSizeListArray.from_arrays(column, size)
    return column


def _numpy_column(column: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """Inverse of :func:`_arrow_column` for a (possibly chunked) arrow column."""
    import pyarrow as pa

    column = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    if column.null_count:
        raise ValueError(f"{column.null_count} null value(s)")
    shape = [len(column)]
    while pa.types.is_fixed_size_list(column.type):
        shape.append(column.type.list_size)
        column = column.flatten()
    values = column.to_numpy(zero_copy_only=False)
    return (values.astype(str) if values.dtype == object else values).reshape(shape)


def _save_parquet(pred: Predictions, path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    arrays = _check_writable(pred)
    table = pa.table({name: _arrow_column(arr) for name, arr in arrays.items()})
    meta = {"format_version": FORMAT_VERSION, "body_model": pred.body_model}
    table = table.replace_schema_metadata({"humanbench.predictions": json.dumps(meta)})
    _atomic_write(path, lambda tmp: pq.write_table(table, tmp))


def _load_parquet(path: Path) -> Predictions:
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(path)
        meta = json.loads((table.schema.metadata or {}).get(b"humanbench.predictions", b"{}"))
        _check_meta(path, meta.get("format_version"), table.column_names)
        arrays = {name: _numpy_column(table.column(name)) for name in table.column_names}
    except PredictionError:
        raise
    except (ValueError, OSError) as exc:  # pyarrow's errors derive from these
        raise PredictionError([f"not a readable predictions parquet ({type(exc).__name__}: {exc})"], str(path)) from None
    return Predictions(body_model=meta.get("body_model"), **arrays)


_FORMATS = {".npz": (_save_npz, _load_npz), ".parquet": (_save_parquet, _load_parquet)}


def _format(path: Path) -> tuple[Callable[[Predictions, Path], None], Callable[[Path], Predictions]]:
    if path.suffix not in _FORMATS:
        raise PredictionError([f"unknown predictions file type {path.suffix!r}; use one of {list(_FORMATS)}"], str(path))
    return _FORMATS[path.suffix]


def save_predictions(pred: Predictions, path: str | Path) -> Path:
    """Write ``pred`` to ``path`` (``.npz`` or ``.parquet``, by suffix) atomically; returns the path.

    The structure (lengths, shapes, dtypes, body model) is checked first; values are not, so
    predictions with NaN can still be saved and inspected (:func:`validate_predictions` refuses them).
    """
    path = Path(path)
    _format(path)[0](pred, path)
    return path


def load_predictions(path: str | Path) -> Predictions:
    """Read a ``.npz`` or ``.parquet`` predictions file (by suffix); no pickles are ever loaded."""
    path = Path(path)
    return _format(path)[1](path)

