"""Vertex / joint index sets used by the metrics (H36M regressors, hand and face vertex ids...).

Read from the user's body-model folder (``ROOT/index_sets/`` or ``ROOT``),
or taken from the synthetic defaults when no folder is configured.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Mapping

import numpy as np

from humanbench.bodymodels.files import (
    BodyModelFormatError,
    BodyModelRoot,
    locate_index_file,
    read_npy,
    resolve_root,
)
from humanbench.bodymodels.safe_pickle import load_pickle_restricted

__all__ = ["INDEX_SETS", "IndexSetSpec", "IndexSets", "read_index_set", "load_index_sets"]


@dataclass(frozen=True)
class IndexSetSpec:
    """Official file name, expected shape, and for vertex-id sets the vertex count they index."""

    file_name: str
    shape: tuple[int, ...]
    num_vertices: int | None = None  # set for integer vertex-id sets
    pickle_key: str | None = None  # key inside a pickled dict


INDEX_SETS: Mapping[str, IndexSetSpec] = {
    "J_regressor_h36m": IndexSetSpec("J_regressor_h36m.npy", (17, 6890)),
    "J_regressor_h36m_smplx": IndexSetSpec("J_regressor_h36m_smplx.npy", (17, 10475)),
    "smplx_to_j14": IndexSetSpec("SMPLX_to_J14.pkl", (14, 10475)),
    "mano_left_vertex_ids": IndexSetSpec("MANO_SMPLX_vertex_ids.pkl", (778,), 10475, "left_hand"),
    "mano_right_vertex_ids": IndexSetSpec("MANO_SMPLX_vertex_ids.pkl", (778,), 10475, "right_hand"),
    "flame_vertex_ids": IndexSetSpec("SMPL-X__FLAME_vertex_ids.npy", (5023,), 10475),
    "body_verts_smpl": IndexSetSpec("body_verts_smpl.npy", (4010,), 6890),
    "body_verts_smplx": IndexSetSpec("body_verts_smplx.npy", (4010,), 10475),
}


@dataclass(frozen=True, eq=False)
class IndexSets:
    """Index arrays (None when not requested) and where they came from.

    Regressors: ``J_regressor_h36m`` (17, 6890), ``J_regressor_h36m_smplx``
    (17, 10475), ``smplx_to_j14`` (14, 10475).  Vertex ids (int64):
    ``mano_left_vertex_ids`` / ``mano_right_vertex_ids`` (778,),
    ``flame_vertex_ids`` (5023,) into SMPL-X; ``body_verts_smpl`` (4010,)
    into SMPL, ``body_verts_smplx`` (4010,) into SMPL-X.
    """

    J_regressor_h36m: np.ndarray | None = None
    J_regressor_h36m_smplx: np.ndarray | None = None
    smplx_to_j14: np.ndarray | None = None
    mano_left_vertex_ids: np.ndarray | None = None
    mano_right_vertex_ids: np.ndarray | None = None
    flame_vertex_ids: np.ndarray | None = None
    body_verts_smpl: np.ndarray | None = None
    body_verts_smplx: np.ndarray | None = None
    synthetic: bool = False
    sources: Mapping[str, str] = field(default_factory=dict)


def _validated(name: str, value: object, source: str) -> np.ndarray:
    spec = INDEX_SETS[name]
    array = np.asarray(value)
    what = f"{source}: index set '{name}'"
    if array.shape != spec.shape:
        raise BodyModelFormatError(f"{what} has shape {array.shape}; expected {spec.shape}")
    if spec.num_vertices is None:
        if array.dtype.kind not in "iuf":
            raise BodyModelFormatError(f"{what} has dtype {array.dtype}; expected a numeric regressor")
        return array.astype(np.float64)
    if array.dtype.kind not in "iu" or array.min() < 0 or array.max() >= spec.num_vertices:
        raise BodyModelFormatError(f"{what} must hold integer vertex ids in [0, {spec.num_vertices})")
    return array.astype(np.int64)


def read_index_set(root: BodyModelRoot, name: str) -> tuple[np.ndarray, Path]:
    """Read and validate one index set from the folder; returns the array and its file."""
    spec = INDEX_SETS[name]
    path = locate_index_file(root, spec.file_name).path
    if path.suffix == ".npy":
        return _validated(name, read_npy(path), str(path)), path
    content = load_pickle_restricted(path, expected=f"the pickled index set {spec.file_name}")
    if spec.pickle_key is not None:
        if not isinstance(content, dict) or spec.pickle_key not in content:
            raise BodyModelFormatError(f"{path}: expected a dict with key '{spec.pickle_key}'")
        content = content[spec.pickle_key]
    return _validated(name, content, str(path)), path


def load_index_sets(root: str | Path | BodyModelRoot | None = None, *, names: Iterable[str] | None = None) -> IndexSets:
    """Load the requested index sets (default: all) from the folder, or the synthetic defaults.

    ``root`` resolves like :func:`load_body_model` (explicit > env var >
    synthetic).  A requested file that is missing raises
    :class:`BodyModelNotFoundError`; synthetic and real sets are never mixed.
    """
    names = tuple(INDEX_SETS) if names is None else tuple(names)
    unknown = sorted(set(names) - set(INDEX_SETS))
    if unknown:
        raise ValueError(f"unknown index sets {unknown}; known: {list(INDEX_SETS)}")
    resolved = resolve_root(root)
    if resolved is None:
        from humanbench.bodymodels.synthetic import synthetic_index_sets

        defaults = synthetic_index_sets()
        arrays = {n: _validated(n, defaults[n], "synthetic") for n in names}
        return IndexSets(**arrays, synthetic=True, sources={n: "synthetic" for n in names})
    loaded = {n: read_index_set(resolved, n) for n in names}
    return IndexSets(**{n: a for n, (a, _) in loaded.items()}, synthetic=resolved.synthetic,
                     sources={n: str(p) for n, (_, p) in loaded.items()})
