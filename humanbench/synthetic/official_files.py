"""Write miniature body-model files laid out like the official downloads.

Used by tests and demos to exercise the real loading path without the
licensed files.  The pickles are emitted opcode by opcode the way Python 2
with numpy 1.x, chumpy and scipy 0.x wrote them (protocol 2, byte strings as
Python-2 ``str`` opcodes, so loading needs ``encoding='latin1'``); neither
chumpy nor scipy is needed to write them.

Folder layout written by :func:`write_model_folder` (the smplx layout)::

    ROOT/smpl/SMPL_{NEUTRAL,MALE,FEMALE}.pkl      chumpy + csc, Python-2 pickle
    ROOT/smpl/smpl_kid_template.npy
    ROOT/smplx/SMPLX_{NEUTRAL,MALE,FEMALE}.npz    (or .pkl)
    ROOT/smplx/smplx_kid_template.npy
    ROOT/smplh/SMPLH_{GENDER}.pkl, ROOT/mano/MANO_{LEFT,RIGHT}.pkl   (if asked for)
    ROOT/index_sets/...                           see ``index_sets.INDEX_SETS``
"""

from __future__ import annotations

import pickle
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Literal, Mapping

import numpy as np

from humanbench.bodymodels.files import SYNTHETIC_MARKER
from humanbench.bodymodels.index_sets import INDEX_SETS

__all__ = [
    "py2_pickle_bytes",
    "Chumpy",
    "CscMatrix",
    "write_smpl_pkl",
    "write_smplx_npz",
    "write_smplx_pkl",
    "write_kid_template",
    "write_index_sets",
    "write_model_folder",
]

ArraysFor = Callable[[str, str], Mapping[str, np.ndarray]]

@dataclass(frozen=True)
class Chumpy:
    """Marker: pickle ``x`` as a ``chumpy.ch.Ch`` object."""

    x: np.ndarray


@dataclass(frozen=True)
class CscMatrix:
    """Marker: pickle the dense 2-D ``dense`` as a ``scipy.sparse.csc.csc_matrix``."""

    dense: np.ndarray


class _Py2Pickler:
    """Protocol-2 emitter for dict/list/tuple/set/str/number/ndarray/Chumpy/CscMatrix."""

    def __init__(self) -> None:
        self._out = bytearray()

    def dump(self, obj: Any) -> bytes:
        self._out += pickle.PROTO + b"\x02"
        self._save(obj)
        self._out += pickle.STOP
        return bytes(self._out)

    def _save(self, obj: Any) -> None:
        if obj is None:
            self._out += pickle.NONE
        elif isinstance(obj, (bool, np.bool_)):
            self._out += pickle.NEWTRUE if obj else pickle.NEWFALSE
        elif isinstance(obj, (int, np.integer)):
            self._save_int(int(obj))
        elif isinstance(obj, (float, np.floating)):
            self._out += pickle.BINFLOAT + struct.pack(">d", float(obj))
        elif isinstance(obj, (str, bytes)):
            self._save_py2_str(obj.encode("latin1") if isinstance(obj, str) else obj)
        elif isinstance(obj, tuple):
            self._save_tuple(obj)
        elif isinstance(obj, list):
            self._out += pickle.EMPTY_LIST
            self._save_items(obj, pickle.APPENDS)
        elif isinstance(obj, dict):
            self._out += pickle.EMPTY_DICT
            self._save_items([x for kv in obj.items() for x in kv], pickle.SETITEMS)
        elif isinstance(obj, (set, frozenset)):
            self._reduce("__builtin__", type(obj).__name__, (sorted(obj),))
        elif isinstance(obj, np.ndarray):
            self._save_ndarray(obj)
        elif isinstance(obj, Chumpy):
            state = {"x": np.asarray(obj.x), "_dirty_vars": {"x"}, "_itr": None,
                     "_depends_on_deps": {}, "_make_dense": False, "_make_sparse": False}
            self._new_object("chumpy.ch", "Ch", state)
        elif isinstance(obj, CscMatrix):
            self._save_csc(np.asarray(obj.dense))
        else:
            raise TypeError(f"cannot write {type(obj).__name__} into a Python-2 style pickle")

    def _save_int(self, value: int) -> None:
        if 0 <= value < 256:
            self._out += pickle.BININT1 + bytes([value])
        elif -(2**31) <= value < 2**31:
            self._out += pickle.BININT + struct.pack("<i", value)
        else:
            encoded = pickle.encode_long(value)
            self._out += pickle.LONG1 + bytes([len(encoded)]) + encoded

    def _save_py2_str(self, raw: bytes) -> None:
        if len(raw) < 256:
            self._out += pickle.SHORT_BINSTRING + bytes([len(raw)]) + raw
        else:
            self._out += pickle.BINSTRING + struct.pack("<i", len(raw)) + raw

    def _save_tuple(self, items: tuple) -> None:
        if len(items) > 3:
            self._out += pickle.MARK
        for item in items:
            self._save(item)
        self._out += {0: pickle.EMPTY_TUPLE, 1: pickle.TUPLE1, 2: pickle.TUPLE2, 3: pickle.TUPLE3}.get(
            len(items), pickle.TUPLE
        )

    def _save_items(self, items: list, opcode: bytes) -> None:
        if items:
            self._out += pickle.MARK
            for item in items:
                self._save(item)
            self._out += opcode

    def _global(self, module: str, name: str) -> None:
        self._out += pickle.GLOBAL + f"{module}\n{name}\n".encode("ascii")

    def _reduce(self, module: str, name: str, args: tuple, state: Any = None) -> None:
        self._global(module, name)
        self._save_tuple(args)
        self._out += pickle.REDUCE
        if state is not None:
            self._save(state)
            self._out += pickle.BUILD

    def _new_object(self, module: str, name: str, state: dict) -> None:
        self._global(module, name)
        self._out += pickle.EMPTY_TUPLE + pickle.NEWOBJ
        self._save(state)
        self._out += pickle.BUILD

    def _save_dtype(self, dtype: np.dtype) -> None:
        byteorder = "|" if dtype.itemsize == 1 else "<"
        self._reduce("numpy", "dtype", (f"{dtype.kind}{dtype.itemsize}", 0, 1),
                     (3, byteorder, None, None, None, -1, -1, 0))

    def _save_ndarray(self, array: np.ndarray) -> None:
        if array.dtype.kind not in "biuf":
            raise TypeError(f"only numeric arrays can be written, got dtype {array.dtype}")
        array = np.ascontiguousarray(array, dtype=array.dtype.newbyteorder("<"))
        self._global("numpy.core.multiarray", "_reconstruct")
        self._global("numpy", "ndarray")
        self._save_tuple((0,))
        self._save_py2_str(b"b")
        self._out += pickle.TUPLE3 + pickle.REDUCE
        self._out += pickle.MARK
        self._save(1)
        self._save(tuple(array.shape))
        self._save_dtype(array.dtype)
        self._save(False)
        self._save_py2_str(array.tobytes())
        self._out += pickle.TUPLE + pickle.BUILD

    def _save_csc(self, dense: np.ndarray) -> None:
        columns = [np.flatnonzero(dense[:, j]) for j in range(dense.shape[1])]
        indices = np.concatenate(columns).astype(np.int32) if columns else np.zeros(0, np.int32)
        indptr = np.concatenate([[0], np.cumsum([len(c) for c in columns])]).astype(np.int32)
        data = dense.T[dense.T != 0].astype(np.float64)
        state = {"format": "csc", "_shape": tuple(dense.shape), "indptr": indptr, "indices": indices,
                 "data": data, "maxprint": 50, "_has_sorted_indices": 1}
        self._new_object("scipy.sparse.csc", "csc_matrix", state)


def py2_pickle_bytes(obj: Any) -> bytes:
    """Serialize ``obj`` as a Python-2 era protocol-2 pickle (see module docstring)."""
    return _Py2Pickler().dump(obj)


_CHUMPY_KEYS = ("v_template", "shapedirs", "posedirs", "weights", "J")


def write_smpl_pkl(path: str | Path, arrays: Mapping[str, np.ndarray]) -> Path:
    """Write an SMPL v1.0-style pkl (also the SMPL-H and MANO layout).

    ``v_template/shapedirs/posedirs/weights/J`` become chumpy ``Ch`` objects,
    ``J_regressor`` a csc matrix, the rest plain arrays; the extra keys of the
    real files (``bs_style``, ``bs_type``, ``J_regressor_prior``...) are added.
    """
    content: dict[str, Any] = {}
    for key, value in arrays.items():
        value = np.asarray(value)
        if key in _CHUMPY_KEYS:
            content[key] = Chumpy(value)
        elif key == "J_regressor":
            content[key] = CscMatrix(value)
        else:
            content[key] = value
    content.update(
        bs_style="lbs",
        bs_type="lrotmin",
        J_regressor_prior=CscMatrix(np.asarray(arrays["J_regressor"])),
        weights_prior=np.asarray(arrays["weights"]),
        vert_sym_idxs=np.arange(len(arrays["v_template"]), dtype=np.int64),
        pose_training_info={"ndata": 1786, "Tpose_fit": True, "description": "synthetic"},
    )
    return _write_bytes(path, py2_pickle_bytes(content))


def write_smplx_npz(path: str | Path, arrays: Mapping[str, np.ndarray]) -> Path:
    """Write an SMPLX_*.npz like the official one, including pickled object entries.

    ``part2num`` / ``joint2num`` are object arrays (pickled dicts) as in the
    real file; a safe loader must skip them.
    """
    path = _parent_made(path)
    part2num = np.array({"global": 0, "head": 15, "leftHand": 20}, dtype=object)
    joint2num = np.array({"pelvis": 0, "neck": 12, "jaw": 22}, dtype=object)
    with open(path, "wb") as handle:
        np.savez(handle, **{k: np.asarray(v) for k, v in arrays.items()},
                 part2num=part2num, joint2num=joint2num)
    return path


def write_smplx_pkl(path: str | Path, arrays: Mapping[str, np.ndarray]) -> Path:
    """Write an SMPLX_*.pkl variant: a Python-2 style pickle of plain numpy arrays."""
    return _write_bytes(path, py2_pickle_bytes({k: np.asarray(v) for k, v in arrays.items()}))


def write_kid_template(path: str | Path, template: np.ndarray) -> Path:
    """Write an AGORA kid template (``(V, 3)`` float array) as ``.npy``."""
    path = _parent_made(path)
    np.save(path, np.asarray(template))
    return path


def write_index_sets(folder: str | Path, sets: Mapping[str, np.ndarray]) -> list[Path]:
    """Write index sets under their official names (keys as in ``index_sets.INDEX_SETS``).

    ``SMPLX_to_J14.pkl`` is a Python-3 pickle of the ``(14, V)`` array (as in
    ExPose), ``MANO_SMPLX_vertex_ids.pkl`` a dict with ``left_hand`` /
    ``right_hand``; the rest are ``.npy``.
    """
    folder = Path(folder)
    written = []
    for name, array in sets.items():
        if name == "mano_right_vertex_ids":
            continue  # stored together with the left-hand ids
        path = _parent_made(folder / INDEX_SETS[name].file_name)
        if name == "smplx_to_j14":
            path.write_bytes(pickle.dumps(np.asarray(array), protocol=4))
        elif name == "mano_left_vertex_ids":
            hands = {"left_hand": np.asarray(array), "right_hand": np.asarray(sets["mano_right_vertex_ids"])}
            path.write_bytes(pickle.dumps(hands, protocol=2))
        else:
            np.save(path, np.asarray(array))
        written.append(path)
    return written


def _synthetic_arrays(kind: str, gender: str) -> Mapping[str, np.ndarray]:
    from humanbench.bodymodels.synthetic import synthetic_model_arrays

    return synthetic_model_arrays(kind, gender)


def write_model_folder(
    root: str | Path,
    kinds: Iterable[str] = ("smpl", "smplx"),
    genders: Iterable[str] = ("neutral", "male", "female"),
    *,
    arrays_for: ArraysFor | None = None,
    kid_templates: Mapping[str, np.ndarray] | None = None,
    index_sets: Mapping[str, np.ndarray] | None = None,
    smplx_format: Literal["npz", "pkl"] = "npz",
) -> Path:
    """Lay out a complete user body-model folder in the standard smplx layout.

    ``arrays_for(kind, gender)`` gives the model arrays (official key names;
    default: the synthetic models).  For ``mano`` the "genders" are the sides
    ``left``/``right``.  ``kid_templates`` maps ``smpl``/``smplx`` to a
    ``(V, 3)`` template and ``index_sets`` maps index-set names to arrays
    (defaults: synthetic ones; pass ``{}`` to write none). A folder written from the synthetic
    models gets the ``HUMANBENCH_SYNTHETIC`` marker, so everything loaded from it stays marked
    synthetic.
    """
    if smplx_format not in ("npz", "pkl"):
        raise ValueError(f"smplx_format must be 'npz' or 'pkl', got {smplx_format!r}")
    root = Path(root)
    kinds = tuple(kinds)
    if arrays_for is None:
        arrays_for = _synthetic_arrays
        _write_bytes(root / SYNTHETIC_MARKER, b"Official-format files written from humanbench's synthetic body models.\n")
    for kind in kinds:
        for gender in (("left", "right") if kind == "mano" else genders):
            arrays = arrays_for(kind, gender)
            if kind == "smplx":
                writer = write_smplx_npz if smplx_format == "npz" else write_smplx_pkl
                writer(root / "smplx" / f"SMPLX_{gender.upper()}.{smplx_format}", arrays)
            else:
                stem = {"smpl": "smpl/SMPL", "smplh": "smplh/SMPLH", "mano": "mano/MANO"}[kind]
                write_smpl_pkl(root / f"{stem}_{gender.upper()}.pkl", arrays)
    if kid_templates is None:
        from humanbench.bodymodels.synthetic import synthetic_kid_template

        kid_templates = {k: synthetic_kid_template(k) for k in kinds if k in ("smpl", "smplx")}
    for kind, template in kid_templates.items():
        write_kid_template(root / kind / f"{kind}_kid_template.npy", template)
    if index_sets is None:
        from humanbench.bodymodels.synthetic import synthetic_index_sets

        index_sets = synthetic_index_sets()
    write_index_sets(root / "index_sets", index_sets)
    return root


def _parent_made(path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def _write_bytes(path: str | Path, data: bytes) -> Path:
    path = _parent_made(path)
    path.write_bytes(data)
    return path
