"""Restricted unpickler for body-model and dataset pickles.

Official SMPL / SMPL-H / MANO ``.pkl`` files are Python-2 pickles holding
numpy arrays, ``chumpy`` objects and ``scipy.sparse`` matrices; dataset
pickles (3DPW, ...) hold plain containers of numpy arrays.  A normal
``pickle.load`` on such a file can run arbitrary code, and needs chumpy.

:func:`load_pickle_restricted` resolves every global the pickle names against
an explicit allow-list (after the Python 2 -> 3 name mapping) and refuses
anything else with :class:`UnsafePickleError`.  chumpy and scipy.sparse
classes are replaced by inert stubs that only record their pickled state;
after loading, the stubs are converted to numpy arrays (or scipy matrices we
build ourselves from validated ``data/indices/indptr``).  No chumpy or scipy
``__setstate__`` ever runs.

Loaders that need more (pandas frames, torch tensors) pass ``allow``: a
mapping ``{(module, name): vetted_object}``; the object is returned for that
exact name only, never looked up dynamically.
"""

from __future__ import annotations

import _compat_pickle
import codecs
import collections
import io
import pickle
from pathlib import Path
from types import MappingProxyType
from typing import Any, ClassVar, Literal, Mapping

import numpy as np

from humanbench.errors import HumanbenchError

__all__ = [
    "DEFAULT_ALLOWED",
    "PickleLoadError",
    "UnsafePickleError",
    "CorruptPickleError",
    "UnsupportedPickleContentError",
    "load_pickle_restricted",
    "loads_pickle_restricted",
]

SparseMode = Literal["dense", "scipy"]

# Refuse to densify sparse matrices bigger than this many elements.
_MAX_DENSE_ELEMENTS = 1 << 28


class PickleLoadError(HumanbenchError, pickle.UnpicklingError):
    """Base class: a pickle could not be loaded safely; names the file."""


class UnsafePickleError(PickleLoadError):
    """The pickle references a global that is not on the allow-list."""


class CorruptPickleError(PickleLoadError):
    """The file is truncated, corrupt or not a pickle at all."""


class UnsupportedPickleContentError(PickleLoadError):
    """The pickle is safe but holds content we cannot convert (e.g. a chumpy expression)."""


# --------------------------------------------------------------------------
# Inert stubs


class _StateStub:
    """Records the state handed to BUILD; runs nothing else."""

    __slots__ = ("state",)
    qualname: ClassVar[str] = ""

    def __setstate__(self, state: Any) -> None:
        self.state = state


class ChumpyStub(_StateStub):
    """Placeholder for a pickled ``chumpy`` object."""

    __slots__ = ()


class SparseStub(_StateStub):
    """Placeholder for a pickled ``scipy.sparse`` csc/csr matrix."""

    __slots__ = ()
    layout: ClassVar[str] = ""


_STUB_CACHE: dict[str, type[_StateStub]] = {}


def _stub_class(base: type[_StateStub], qualname: str, **attrs: str) -> type[_StateStub]:
    """One stub subclass per pickled class name, so the name survives NEWOBJ."""
    if qualname not in _STUB_CACHE:
        name = qualname.rsplit(".", 1)[-1]
        _STUB_CACHE[qualname] = type(name, (base,), {"__slots__": (), "qualname": qualname, **attrs})
    return _STUB_CACHE[qualname]


_SPARSE_MODULES = ("scipy.sparse.csc", "scipy.sparse._csc", "scipy.sparse.csr", "scipy.sparse._csr")
_SPARSE_NAMES = ("csc_matrix", "csr_matrix", "csc_array", "csr_array")


def _is_chumpy(module: str, name: str) -> bool:
    return (module == "chumpy" or module.startswith("chumpy.")) and name.isidentifier()


def _is_sparse(module: str, name: str) -> bool:
    return module in _SPARSE_MODULES and name in _SPARSE_NAMES and module.endswith(name[:3])


# --------------------------------------------------------------------------
# Vetted callables.  Python-level ones are slotted instances (no ``__dict__``)
# so that a BUILD opcode aimed at them cannot mutate shared state.


class _Latin1Encode:
    """Python 3 pickles ``bytes`` at protocol <= 2 as ``_codecs.encode(text, 'latin1')``."""

    __slots__ = ()

    def __call__(self, text: str, encoding: str) -> bytes:
        if not isinstance(text, str) or codecs.lookup(encoding).name != "iso8859-1":
            raise UnsafePickleError(f"refused _codecs.encode(..., {encoding!r}): only latin1 is allowed")
        return text.encode("latin1")


class _FromBuffer:
    """numpy's protocol-5 array constructor: ``frombuffer(buf, dtype).reshape(shape, order)``."""

    __slots__ = ()

    def __call__(self, buf: Any, dtype: np.dtype, shape: tuple[int, ...], order: str) -> np.ndarray:
        return np.frombuffer(buf, dtype=dtype).reshape(shape, order=order)


class _Reconstructor:
    """Protocol 0/1 ``copyreg._reconstructor``, restricted to ``object.__new__`` of vetted classes."""

    __slots__ = ("_vetted",)

    def __init__(self, vetted: frozenset[type]):
        self._vetted = vetted

    def __call__(self, cls: Any, base: Any, state: Any) -> Any:
        vetted = isinstance(cls, type) and (issubclass(cls, _StateStub) or cls in self._vetted)
        if base is not object or state is not None or not vetted:
            raise UnsafePickleError(f"refused copyreg._reconstructor({cls!r}, {base!r}, ...)")
        return object.__new__(cls)


_NUMPY_CORE = {
    ("multiarray", "_reconstruct"): np.zeros(1).__reduce__()[0],
    ("multiarray", "scalar"): np.float64(0).__reduce__()[0],
    ("numeric", "_frombuffer"): _FromBuffer(),
}

_BASE_ALLOWED: dict[tuple[str, str], Any] = {
    ("builtins", "set"): set,
    ("builtins", "frozenset"): frozenset,
    ("builtins", "complex"): complex,
    ("builtins", "slice"): slice,
    ("builtins", "bytes"): bytes,
    ("builtins", "bytearray"): bytearray,
    ("builtins", "object"): object,
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("_codecs", "encode"): _Latin1Encode(),
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
    **{
        (f"{core}.{module}", name): obj
        for core in ("numpy.core", "numpy._core")
        for (module, name), obj in _NUMPY_CORE.items()
    },
}

#: Globals every restricted load accepts, besides the chumpy / scipy.sparse
#: stubs and ``copyreg._reconstructor`` (restricted), which are built per load.
DEFAULT_ALLOWED: Mapping[tuple[str, str], Any] = MappingProxyType(_BASE_ALLOWED)


class _RestrictedUnpickler(pickle.Unpickler):
    """Unpickler whose ``find_class`` consults an explicit allow-list only."""

    def __init__(self, file: io.BufferedIOBase, allowed: Mapping[tuple[str, str], Any]):
        super().__init__(file, encoding="latin1")
        self._allowed = allowed
        self._reconstructor = _Reconstructor(frozenset(v for v in allowed.values() if isinstance(v, type)))

    def find_class(self, module: str, name: str) -> Any:
        module, name = _py3_name(module, name)
        if (module, name) in self._allowed:
            return self._allowed[(module, name)]
        if (module, name) == ("copyreg", "_reconstructor"):
            return self._reconstructor
        if _is_chumpy(module, name):
            return _stub_class(ChumpyStub, f"{module}.{name}")
        if _is_sparse(module, name):
            return _stub_class(SparseStub, f"{module}.{name}", layout=name[:3])
        raise UnsafePickleError(
            f"refused to load '{module}.{name}': it is not on the allow-list of "
            "globals a body-model or dataset pickle needs. The file may be malicious, or a format "
            "humanbench does not read; nothing from it was executed."
        )


def _py3_name(module: str, name: str) -> tuple[str, str]:
    """Apply the Python 2 -> 3 renames pickle itself applies (``__builtin__`` -> ``builtins``...)."""
    if (module, name) in _compat_pickle.NAME_MAPPING:
        return _compat_pickle.NAME_MAPPING[(module, name)]
    return _compat_pickle.IMPORT_MAPPING.get(module, module), name


# --------------------------------------------------------------------------
# Stub -> numpy conversion


class _Converter:
    """Replaces stubs by arrays throughout a loaded object graph (shared objects stay shared)."""

    def __init__(self, sparse: SparseMode):
        self._sparse = sparse
        self._memo: dict[int, Any] = {}

    def __call__(self, obj: Any) -> Any:
        key = id(obj)
        if key not in self._memo:
            self._memo[key] = self._convert(obj)
        return self._memo[key]

    def _convert(self, obj: Any) -> Any:
        if isinstance(obj, ChumpyStub):
            return self._chumpy(obj)
        if isinstance(obj, SparseStub):
            return self._sparse_matrix(obj)
        if type(obj) in (dict, collections.OrderedDict):
            return type(obj)((k, self(v)) for k, v in obj.items())
        if type(obj) in (list, tuple):
            return type(obj)(self(v) for v in obj)
        if isinstance(obj, np.ndarray) and obj.dtype == object:
            out = np.empty(obj.shape, dtype=object)
            for index, value in np.ndenumerate(obj):
                out[index] = self(value)
            return out
        return obj

    def _state(self, stub: _StateStub, keys: tuple[str, ...]) -> dict[str, Any]:
        state = getattr(stub, "state", None)
        if not isinstance(state, dict) or not all(k in state for k in keys):
            raise UnsupportedPickleContentError(f"{stub.qualname} object without the expected state keys {keys}")
        return state

    def _numeric(self, value: Any, what: str) -> np.ndarray:
        array = np.asarray(self(value))
        if array.dtype.kind not in "biuf":
            raise UnsupportedPickleContentError(f"{what} holds non-numeric data (dtype {array.dtype})")
        return array

    def _chumpy(self, stub: ChumpyStub) -> np.ndarray:
        """Evaluate the few chumpy node types that appear in model files."""
        kind = stub.qualname.rsplit(".", 1)[-1]
        if kind == "Ch":
            return self._numeric(self._state(stub, ("x",))["x"], stub.qualname)
        if kind == "Select":
            state = self._state(stub, ("a", "idxs"))
            picked = self._numeric(state["a"], stub.qualname).ravel()[np.asarray(state["idxs"])]
            shape = state.get("preferred_shape")
            return picked if shape is None else picked.reshape(shape)
        if kind == "Reshape":
            state = self._state(stub, ("a", "newshape"))
            return self._numeric(state["a"], stub.qualname).reshape(state["newshape"])
        if kind == "transpose":
            state = self._state(stub, ("a",))
            return np.transpose(self._numeric(state["a"], stub.qualname), state.get("axes"))
        raise UnsupportedPickleContentError(
            f"chumpy class {stub.qualname} cannot be converted to an array (supported: chumpy.ch.Ch, "
            "chumpy.reordering.Select/Reshape/transpose). Re-export the file with numpy arrays."
        )

    def _sparse_matrix(self, stub: SparseStub) -> Any:
        state = self._state(stub, ("data", "indices", "indptr"))
        shape = state.get("_shape", state.get("shape"))
        data = self._numeric(state["data"], f"{stub.qualname}.data")
        indices = self._numeric(state["indices"], f"{stub.qualname}.indices")
        indptr = self._numeric(state["indptr"], f"{stub.qualname}.indptr")
        shape = _check_compressed(stub.layout, shape, data, indices, indptr)
        if self._sparse == "scipy":
            import scipy.sparse

            build = scipy.sparse.csc_matrix if stub.layout == "csc" else scipy.sparse.csr_matrix
            return build((data, indices, indptr), shape=shape)
        if shape[0] * shape[1] > _MAX_DENSE_ELEMENTS:
            raise UnsupportedPickleContentError(f"{stub.qualname} of shape {shape} is too large to densify; use sparse='scipy'")
        major = np.repeat(np.arange(len(indptr) - 1), np.diff(indptr))
        dense = np.zeros(shape, dtype=data.dtype)
        rows, cols = (indices, major) if stub.layout == "csc" else (major, indices)
        np.add.at(dense, (rows, cols), data)
        return dense


def _check_compressed(
    layout: str,
    shape: Any,
    data: np.ndarray,
    indices: np.ndarray,
    indptr: np.ndarray,
) -> tuple[int, int]:
    """Validate compressed-sparse arrays before anything is built from them; returns the shape."""
    two_ints = isinstance(shape, tuple) and len(shape) == 2 and all(isinstance(n, (int, np.integer)) for n in shape)
    if not two_ints or min(shape) < 0:
        raise UnsupportedPickleContentError(f"sparse matrix with invalid shape {shape!r}")
    shape = (int(shape[0]), int(shape[1]))
    n_major, n_minor = shape[::-1] if layout == "csc" else shape
    if data.ndim != 1 or indices.ndim != 1 or indptr.ndim != 1:
        raise UnsupportedPickleContentError("sparse matrix arrays must be one-dimensional")
    if indices.dtype.kind not in "iu" or indptr.dtype.kind not in "iu":
        raise UnsupportedPickleContentError("sparse matrix indices must be integers")
    if len(indptr) != n_major + 1 or len(indices) != len(data):
        raise UnsupportedPickleContentError(f"sparse matrix arrays inconsistent with shape {shape}")
    if indptr[0] != 0 or indptr[-1] != len(data) or np.any(np.diff(indptr.astype(np.int64)) < 0):
        raise UnsupportedPickleContentError("sparse matrix indptr is not a valid monotone pointer array")
    if len(indices) and (indices.min() < 0 or indices.max() >= n_minor):
        raise UnsupportedPickleContentError(f"sparse matrix indices out of range for shape {shape}")
    return shape


# --------------------------------------------------------------------------
# Public entry points


def loads_pickle_restricted(
    data: bytes,
    *,
    source: str = "<bytes>",
    allow: Mapping[tuple[str, str], Any] | None = None,
    sparse: SparseMode = "dense",
    expected: str = "a Python pickle",
) -> Any:
    """Unpickle ``data`` with the allow-list; chumpy -> ndarray, sparse -> dense ndarray or scipy matrix.

    ``source`` names the data in error messages; ``expected`` describes what
    the file should be (used when it is truncated or corrupt).
    """
    allowed = {**_BASE_ALLOWED, **(allow or {})}
    try:
        obj = _RestrictedUnpickler(io.BytesIO(data), allowed).load()
    except PickleLoadError as exc:
        raise type(exc)(f"{source}: {exc}") from None
    except Exception as exc:  # anything else means the byte stream itself is bad
        raise CorruptPickleError(
            f"{source}: could not be read as {expected} ({type(exc).__name__}: {exc}). "
            "The file is truncated (e.g. an interrupted download), corrupt, or not a pickle."
        ) from exc
    try:
        return _Converter(sparse)(obj)
    except PickleLoadError as exc:
        raise type(exc)(f"{source}: {exc}") from None
    except RecursionError:
        raise UnsupportedPickleContentError(f"{source}: objects nested too deeply (or cyclic)") from None
    except (ValueError, TypeError, IndexError) as exc:  # malformed chumpy state (bad idxs, newshape...)
        raise UnsupportedPickleContentError(
            f"{source}: could not convert the pickled chumpy/sparse objects ({type(exc).__name__}: {exc})"
        ) from exc


def load_pickle_restricted(
    path: str | Path,
    *,
    allow: Mapping[tuple[str, str], Any] | None = None,
    sparse: SparseMode = "dense",
    expected: str = "a Python pickle",
) -> Any:
    """Load the pickle file at ``path`` safely; see :func:`loads_pickle_restricted`."""
    path = Path(path)
    return loads_pickle_restricted(
        path.read_bytes(), source=str(path), allow=allow, sparse=sparse, expected=expected
    )
