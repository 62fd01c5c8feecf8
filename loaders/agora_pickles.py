"""Safe readers for AGORA's pickles: pandas camera dataframes and fit pickles holding torch tensors.

Both go through :func:`~humanbench.bodymodels.safe_pickle.load_pickle_restricted`; the extra globals
they need are mapped to inert stand-ins written here, so neither pandas nor torch code ever runs on
the raw bytes:

* **DataFrames** (``*_withjv.pkl``). ``DataFrame`` and ``BlockManager`` become record stubs that only
  keep their constructor arguments / pickled state; ``_new_Index`` and ``_unpickle_block`` return plain
  records. :func:`read_dataframe` then rebuilds the columns itself from the numpy blocks. Both layouts
  pandas has written are read: pandas <= 1.2 (``BlockManager`` state tuple with the ``"0.14.1"`` block
  list) and pandas >= 1.3 (``BlockManager(blocks, axes)`` with ``_unpickle_block`` per block).
* **Torch tensors** (``smpl_gt/**.pkl``). Plain ``pickle`` stores a tensor as
  ``torch._utils._rebuild_tensor_v2(torch.storage._load_from_bytes(<legacy torch.save bytes>), offset,
  size, stride, requires_grad, hooks)``. The stand-ins parse the legacy storage stream ourselves
  (magic number, protocol 1001, system info, one persistent id, storage keys, raw little-endian data)
  and return numpy arrays. The storage's device tag (``'cuda:0'``) is ignored: every tensor lands on
  the CPU, and no GPU (or CUDA build of torch) is needed.

Every stand-in is a slotted object (a BUILD opcode aimed at it fails) that validates its arguments and
only builds numpy arrays or records; none of them can reach another callable.
"""

from __future__ import annotations

import io
import pickle
from collections import OrderedDict
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from humanbench.bodymodels.safe_pickle import (
    PickleLoadError,
    UnsafePickleError,
    UnsupportedPickleContentError,
    load_pickle_restricted,
)
from humanbench.loaders.base import ConversionError

# --------------------------------------------------------------------------- pandas stand-ins


class _Record:
    """Inert stand-in for a pickled pandas object: keeps constructor arguments and BUILD state only."""

    __slots__ = ("args", "state")

    def __init__(self, *args: Any) -> None:
        self.args = args

    def __setstate__(self, state: Any) -> None:
        self.state = state


class FrameRecord(_Record):
    """A pickled ``pandas.DataFrame``."""

    __slots__ = ()


class ManagerRecord(_Record):
    """A pickled ``pandas.core.internals.managers.BlockManager``."""

    __slots__ = ()


class _IndexKind:
    """Marker for a pandas index class (``Index``, ``RangeIndex``, ``Int64Index``); not callable."""

    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name


class IndexRecord:
    """What ``_new_Index(cls, d)`` returns here: the index kind and its pickled attributes."""

    __slots__ = ("kind", "attrs")

    def __init__(self, kind: str, attrs: dict) -> None:
        self.kind, self.attrs = kind, attrs


class BlockRecord:
    """What ``_unpickle_block(values, placement, ndim)`` returns here."""

    __slots__ = ("values", "placement")

    def __init__(self, values: Any, placement: Any) -> None:
        self.values, self.placement = values, placement


class _NewIndex:
    """Stand-in for ``pandas.core.indexes.base._new_Index``: records, builds no pandas object."""

    __slots__ = ()

    def __call__(self, cls: Any, attrs: Any) -> IndexRecord:
        if not isinstance(cls, _IndexKind) or not isinstance(attrs, dict):
            raise UnsafePickleError(f"refused _new_Index({cls!r}, ...): only plain pandas index classes are read")
        return IndexRecord(cls.name, attrs)


class _UnpickleBlock:
    """Stand-in for ``pandas._libs.internals._unpickle_block``."""

    __slots__ = ()

    def __call__(self, values: Any, placement: Any, ndim: Any = 2) -> BlockRecord:
        return BlockRecord(values, placement)


_INDEX_KINDS = {"Index": _IndexKind("Index"), "RangeIndex": _IndexKind("RangeIndex"),
                "Int64Index": _IndexKind("Int64Index")}

#: Globals a pandas DataFrame pickle of plain numpy / object columns needs (pandas 1.x to 3.x).
DATAFRAME_ALLOW: Mapping[tuple[str, str], Any] = {
    ("pandas.core.frame", "DataFrame"): FrameRecord,
    ("pandas", "DataFrame"): FrameRecord,
    ("pandas.core.internals.managers", "BlockManager"): ManagerRecord,
    ("pandas._libs.internals", "_unpickle_block"): _UnpickleBlock(),
    ("pandas.core.indexes.base", "_new_Index"): _NewIndex(),
    ("pandas.core.indexes.base", "Index"): _INDEX_KINDS["Index"],
    ("pandas", "Index"): _INDEX_KINDS["Index"],
    ("pandas.core.indexes.range", "RangeIndex"): _INDEX_KINDS["RangeIndex"],
    ("pandas", "RangeIndex"): _INDEX_KINDS["RangeIndex"],
    ("pandas.core.indexes.numeric", "Int64Index"): _INDEX_KINDS["Int64Index"],
}

# --------------------------------------------------------------------------- torch stand-ins

_TORCH_MAGIC = 0x1950A86A20F9469CFC6C
_TORCH_LEGACY_PROTOCOL = 1001
_STORAGE_DTYPES = {
    "FloatStorage": np.float32, "DoubleStorage": np.float64, "HalfStorage": np.float16,
    "LongStorage": np.int64, "IntStorage": np.int32, "ShortStorage": np.int16, "CharStorage": np.int8,
    "ByteStorage": np.uint8, "BoolStorage": np.bool_,
}


class _StorageType:
    """Marker for a torch storage class (``torch.FloatStorage``, ``torch.cuda.FloatStorage``...)."""

    __slots__ = ("dtype",)

    def __init__(self, dtype: type) -> None:
        self.dtype = np.dtype(dtype)


_STORAGE_TYPES = {name: _StorageType(dtype) for name, dtype in _STORAGE_DTYPES.items()}


class _StorageRef:
    """The persistent id of a storage in a legacy torch stream: key, dtype and element count."""

    __slots__ = ("key", "dtype", "numel")

    def __init__(self, key: str, dtype: np.dtype, numel: int) -> None:
        self.key, self.dtype, self.numel = key, dtype, numel


class _StorageStreamUnpickler(pickle.Unpickler):
    """Reads the small pickles of a legacy ``torch.save`` stream; knows storage classes only."""

    def __init__(self, stream: io.BytesIO) -> None:
        super().__init__(stream)
        self.refs: dict[str, _StorageRef] = {}

    def find_class(self, module: str, name: str) -> Any:
        if module in ("torch", "torch.cuda") and name in _STORAGE_TYPES:
            return _STORAGE_TYPES[name]
        raise UnsafePickleError(f"refused '{module}.{name}' inside a pickled torch storage")

    def persistent_load(self, pid: Any) -> _StorageRef:
        valid = (isinstance(pid, tuple) and len(pid) in (5, 6) and pid[0] == "storage"
                 and isinstance(pid[1], _StorageType) and isinstance(pid[2], str) and isinstance(pid[3], str)
                 and isinstance(pid[4], int) and pid[4] >= 0 and (len(pid) == 5 or pid[5] is None))
        if not valid:
            raise UnsupportedPickleContentError(f"unexpected torch storage id {pid!r}")
        ref = _StorageRef(pid[2], pid[1].dtype, pid[4])  # pid[3], the device ('cuda:0'...), is ignored
        self.refs[ref.key] = ref
        return ref


def _expect(value: Any, wanted: Any, what: str) -> None:
    if value != wanted:
        raise UnsupportedPickleContentError(f"torch storage stream: {what} is {value!r}, expected {wanted!r}")


def _storage_from_bytes(data: bytes) -> np.ndarray:
    """Parse a legacy ``torch.save(storage)`` byte stream into its (N,) numpy array."""
    stream = io.BytesIO(data)
    unpickler = _StorageStreamUnpickler(stream)
    _expect(unpickler.load(), _TORCH_MAGIC, "the magic number")
    _expect(unpickler.load(), _TORCH_LEGACY_PROTOCOL, "the protocol version")
    info = unpickler.load()
    _expect(isinstance(info, dict) and info.get("little_endian"), True, "little_endian")
    root, keys = unpickler.load(), unpickler.load()
    if not isinstance(root, _StorageRef) or not isinstance(keys, list) or root.key not in keys:
        raise UnsupportedPickleContentError("torch storage stream does not hold a single storage")
    arrays = {}
    for key in keys:
        ref = unpickler.refs.get(key)
        count = int.from_bytes(stream.read(8), "little", signed=True)
        if ref is None or count != ref.numel:
            raise UnsupportedPickleContentError(f"torch storage {key!r}: element count {count} does not match its id")
        raw = stream.read(count * ref.dtype.itemsize)
        if len(raw) != count * ref.dtype.itemsize:
            raise UnsupportedPickleContentError(f"torch storage {key!r} is truncated")
        arrays[key] = np.frombuffer(raw, dtype=ref.dtype)
    return arrays[root.key]


class _LoadFromBytes:
    """Stand-in for ``torch.storage._load_from_bytes``: storage bytes -> (N,) numpy array, on the CPU."""

    __slots__ = ()

    def __call__(self, data: Any) -> np.ndarray:
        if not isinstance(data, (bytes, bytearray)):
            raise UnsupportedPickleContentError("torch.storage._load_from_bytes expects bytes")
        return _storage_from_bytes(bytes(data))


def _int_tuple(value: Any, what: str) -> tuple[int, ...]:
    if not isinstance(value, tuple) or not all(isinstance(v, int) and v >= 0 for v in value):
        raise UnsupportedPickleContentError(f"tensor {what} {value!r} is not a tuple of non-negative ints")
    return value


class _RebuildTensor:
    """Stand-in for ``torch._utils._rebuild_tensor_v2``: a strided copy out of the storage array."""

    __slots__ = ()

    def __call__(self, storage: Any, offset: Any, size: Any, stride: Any, requires_grad: Any, hooks: Any,
                 metadata: Any = None) -> np.ndarray:
        shape, steps = _int_tuple(size, "size"), _int_tuple(stride, "stride")
        if not isinstance(storage, np.ndarray) or not isinstance(offset, int) or len(shape) != len(steps):
            raise UnsupportedPickleContentError("malformed tensor (storage, offset, size, stride)")
        if not isinstance(hooks, (dict, OrderedDict)) or hooks:
            raise UnsupportedPickleContentError("tensors with backward hooks are not read")
        if 0 in shape:
            return np.zeros(shape, dtype=storage.dtype)
        last = offset + sum((n - 1) * s for n, s in zip(shape, steps))
        if offset < 0 or last >= storage.size:
            raise UnsupportedPickleContentError(f"tensor of size {shape} reaches past its storage of {storage.size}")
        strides = tuple(s * storage.itemsize for s in steps)
        return np.lib.stride_tricks.as_strided(storage[offset:], shape, strides).copy()


class _RebuildParameter:
    """Stand-in for ``torch._utils._rebuild_parameter``: the parameter's data array."""

    __slots__ = ()

    def __call__(self, data: Any, requires_grad: Any, hooks: Any) -> np.ndarray:
        if not isinstance(data, np.ndarray):
            raise UnsupportedPickleContentError("torch parameter without tensor data")
        return data


#: Globals a pickle of torch tensors needs, mapped to numpy-producing stand-ins.
TENSOR_ALLOW: Mapping[tuple[str, str], Any] = {
    ("torch._utils", "_rebuild_tensor_v2"): _RebuildTensor(),
    ("torch._utils", "_rebuild_parameter"): _RebuildParameter(),
    ("torch.storage", "_load_from_bytes"): _LoadFromBytes(),
}

# --------------------------------------------------------------------------- readers


def _restricted(path: Path, allow: Mapping[tuple[str, str], Any], expected: str) -> Any:
    """Load ``path`` through the restricted unpickler; any failure becomes a ConversionError."""
    if not path.is_file():
        raise ConversionError(f"{path}: file not found (expected {expected})")
    try:
        return load_pickle_restricted(path, allow=allow, expected=expected)
    except PickleLoadError as err:
        raise ConversionError(str(err)) from None


def _axis_labels(index: Any, source: Path) -> list:
    """Labels of a pickled pandas index (columns or rows)."""
    if isinstance(index, IndexRecord) and index.kind == "RangeIndex":
        attrs = index.attrs
        return list(range(attrs.get("start", 0), attrs["stop"], attrs.get("step", 1)))
    if isinstance(index, IndexRecord) and isinstance(index.attrs.get("data"), np.ndarray):
        return index.attrs["data"].tolist()
    raise ConversionError(f"{source}: unexpected pandas index in the dataframe pickle")


def _blocks(manager: Any, source: Path) -> tuple[list[tuple[Any, Any]], list]:
    """(values, placement) per block and the two axes, from either pickled BlockManager layout."""
    if not isinstance(manager, ManagerRecord):
        raise ConversionError(f"{source}: the DataFrame pickle holds no BlockManager")
    args, state = getattr(manager, "args", ()), getattr(manager, "state", None)
    if len(args) >= 2 and all(isinstance(b, BlockRecord) for b in args[0]):  # pandas >= 1.3
        return [(b.values, b.placement) for b in args[0]], list(args[1])
    if isinstance(state, tuple) and len(state) >= 4 and isinstance(state[3], dict) and "0.14.1" in state[3]:
        legacy = state[3]["0.14.1"]  # pandas <= 1.2
        return [(b["values"], b["mgr_locs"]) for b in legacy["blocks"]], list(legacy["axes"])
    raise ConversionError(f"{source}: unsupported pandas BlockManager layout in the dataframe pickle")


def _frame_columns(frame: Any, source: Path) -> dict[str, list]:
    """Column name -> list of row values, rebuilt from the pickled blocks."""
    state = getattr(frame, "state", None)
    if not isinstance(frame, FrameRecord) or not isinstance(state, dict):
        raise ConversionError(f"{source}: expected a pickled pandas DataFrame, found {type(frame).__name__}")
    blocks, axes = _blocks(state.get("_mgr", state.get("_data")), source)
    names, rows = _axis_labels(axes[0], source), len(_axis_labels(axes[1], source))
    columns: dict[str, list] = {}
    for values, placement in blocks:
        values = values.reshape(1, -1) if isinstance(values, np.ndarray) and values.ndim == 1 else values
        if not isinstance(values, np.ndarray) or values.ndim != 2 or values.shape[1] != rows:
            raise ConversionError(f"{source}: a dataframe block is not a 2-D numpy array with {rows} rows")
        positions = np.arange(len(names))[placement]
        columns.update((str(names[p]), row.tolist()) for p, row in zip(np.atleast_1d(positions), values))
    return columns


def read_dataframe(path: Path) -> dict[str, list]:
    """A pickled pandas DataFrame as ``{column: [value per row]}``, without pandas and without executing code."""
    frame = _restricted(path, DATAFRAME_ALLOW, "a pandas DataFrame pickle (AGORA camera dataframe)")
    try:
        return _frame_columns(frame, path)
    except (KeyError, TypeError, IndexError, ValueError, AttributeError) as err:
        raise ConversionError(f"{path}: malformed DataFrame pickle ({type(err).__name__}: {err})") from None


def read_fit(path: Path) -> dict[str, np.ndarray]:
    """An AGORA fit pickle as ``{key: float64 array}``; numpy arrays and torch tensors (any device) alike."""
    fit = _restricted(path, TENSOR_ALLOW, "an AGORA fit pickle (dict of numpy arrays or torch tensors)")
    if not isinstance(fit, dict):
        raise ConversionError(f"{path}: expected a dict of parameters, found {type(fit).__name__}")
    return {str(k): v.astype(np.float64) for k, v in fit.items()
            if isinstance(v, np.ndarray) and v.dtype.kind in "biuf"}
