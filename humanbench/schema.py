"""The humanbench sample schema (version ``SCHEMA_VERSION``), its validation and its shard encoding.

One :class:`Sample` is one image: one frame of one camera view. People in the image are
stacked along a leading axis ``P`` so multi-person frames need no special case. The full
field reference, with conventions, is ``docs/schema.md``; :data:`PERSON_FIELDS` is the
machine-readable form of the same table and drives :func:`validate_sample`.

Encoding for shards (see :func:`encode_sample`): ``<key>.json`` holds ids and per-person
categorical values, ``<key>.npz`` every numeric array (uncompressed, fixed zip timestamps so
the bytes are deterministic), ``<key>.<jpg|png>`` the original image bytes (never
re-encoded) and, for avatar data, ``<key>.mask.png``.
"""

from __future__ import annotations

import io
import json
import re
from dataclasses import dataclass, field
from typing import Any, Literal, Mapping

import numpy as np

from humanbench.errors import HumanbenchError
from humanbench.npzio import write_npz

SCHEMA_VERSION = "1.0"

BodyModelKind = Literal["smpl", "smplx"]
Gender = Literal["neutral", "male", "female"]
Coords = Literal["camera", "world"]

BODY_MODEL_KINDS: tuple[str, ...] = ("smpl", "smplx")
GENDERS: tuple[str, ...] = ("neutral", "male", "female")
IMAGE_FORMATS: tuple[str, ...] = ("jpg", "png")
KEY_PATTERN = re.compile(r"^[a-z0-9_\-]+$")

BODY_POSE_DIM = {"smpl": 69, "smplx": 63}
"""Axis-angle body pose length per body model (SMPL 23 joints, SMPL-X 21 joints)."""


class SchemaError(HumanbenchError, ValueError):
    """A sample does not follow the schema; the message names the key, the field and what was expected."""


@dataclass(frozen=True)
class FieldSpec:
    """Shape and dtype rule for one per-person array.

    ``shape`` uses symbols: ``P`` people, ``B`` betas, ``E`` expression coefficients,
    ``BP`` the body-pose length of the sample's body model, ``J2``/``J3``/``V`` free sizes
    that must agree across people; integers are exact sizes.
    """

    shape: tuple[str | int, ...]
    dtype_kind: str  # numpy dtype kinds accepted: "f" float, "b" bool, "i" int
    required: bool = False
    smplx_only: bool = False
    doc: str = ""


PERSON_FIELDS: dict[str, FieldSpec] = {
    "betas": FieldSpec(("P", "B"), "f", doc="shape coefficients; B >= 10; B == 11 means the last one is the kid-template weight (AGORA convention)"),
    "global_orient": FieldSpec(("P", 3), "f", doc="axis-angle root rotation in the frame named by `coords`"),
    "body_pose": FieldSpec(("P", "BP"), "f", doc="axis-angle body joints: SMPL 69 (23x3), SMPL-X 63 (21x3)"),
    "transl": FieldSpec(("P", 3), "f", doc="smplx-style translation (metres) in the frame named by `coords`"),
    "left_hand_pose": FieldSpec(("P", 45), "f", smplx_only=True, doc="full axis-angle 15x3, absolute (flat_hand_mean)"),
    "right_hand_pose": FieldSpec(("P", 45), "f", smplx_only=True, doc="full axis-angle 15x3, absolute (flat_hand_mean)"),
    "jaw_pose": FieldSpec(("P", 3), "f", smplx_only=True),
    "leye_pose": FieldSpec(("P", 3), "f", smplx_only=True),
    "reye_pose": FieldSpec(("P", 3), "f", smplx_only=True),
    "expression": FieldSpec(("P", "E"), "f", smplx_only=True),
    "rh": FieldSpec(("P", 3), "f", doc="EasyMocap/ZJU global rotation about the WORLD ORIGIN (axis-angle)"),
    "th": FieldSpec(("P", 3), "f", doc="EasyMocap/ZJU global translation (metres)"),
    "joints2d": FieldSpec(("P", "J2", 3), "f", doc="pixels (x, y, confidence); joint order in meta `joints2d_format`"),
    "joints3d": FieldSpec(("P", "J3", 3), "f", doc="metres, in the frame named by `coords`; order in `joints3d_format`"),
    "vertices": FieldSpec(("P", "V", 3), "f", doc="ground-truth mesh vertices, metres, frame `coords`"),
    "bbox": FieldSpec(("P", 4), "f", doc="x1, y1, x2, y2 in pixels"),
    "person_K": FieldSpec(("P", 3, 3), "f", doc="per-person intrinsics where the dataset gives each person a virtual camera (UBody); overrides cam_K for that person"),
    "valid": FieldSpec(("P",), "b", True, doc="person usable for evaluation (all dataset validity rules applied)"),
    "kid": FieldSpec(("P",), "b", True, doc="child body (needs the kid template)"),
    "occlusion": FieldSpec(("P",), "f", doc="occluded fraction in percent (AGORA)"),
}
"""Per-person arrays stored in the ``npz`` member; each has a leading people axis P."""

PARAM_FIELDS = ("betas", "global_orient", "body_pose", "transl")
"""The body-model parameters: all present, or none when the ground truth is a mesh (``vertices``)."""

CAMERA_FIELDS: dict[str, tuple[tuple[int | str, ...], str]] = {
    "cam_K": ((3, 3), "f"),
    "cam_R": ((3, 3), "f"),
    "cam_t": ((3,), "f"),
    "cam_dist": (("D",), "f"),
}
"""Camera arrays in the ``npz`` member: intrinsics, world->camera R|t, OpenCV distortion (D in 0,4,5,8,12,14)."""

DISTORTION_LENGTHS = (0, 4, 5, 8, 12, 14)


@dataclass
class Camera:
    """Pinhole camera, OpenCV convention (x right, y down, z forward, metres).

    ``X_cam = R @ X_world + t``. ``dist`` holds OpenCV coefficients (k1, k2, p1, p2[, k3...]) for the
    stored image; an empty array means the image is undistorted.
    """

    K: np.ndarray  # (3,3)
    R: np.ndarray = field(default_factory=lambda: np.eye(3))  # (3,3)
    t: np.ndarray = field(default_factory=lambda: np.zeros(3))  # (3,)
    dist: np.ndarray = field(default_factory=lambda: np.zeros(0))  # (D,)


@dataclass
class Sample:
    """One image (one frame of one camera) with the people in it.

    ``people`` maps field names of :data:`PERSON_FIELDS` to arrays with a leading axis P.
    ``genders`` and ``person_ids`` are per-person lists of length P. ``flags`` holds extra
    per-person dataset validity arrays (e.g. ``campose_valid``, ``is_valid``), each (P,).
    """

    key: str
    dataset: str
    split: str
    image: bytes
    image_format: str  # "jpg" | "png"
    width: int
    height: int
    camera: Camera
    body_model: str  # "smpl" | "smplx"
    coords: str  # "camera" | "world"
    people: dict[str, np.ndarray]
    genders: list[str]
    person_ids: list[str]
    sequence: str = ""
    frame: int = 0
    camera_name: str = ""
    mask: bytes | None = None  # single-channel PNG, non-zero = person
    joints2d_format: str = ""
    joints3d_format: str = ""
    flags: dict[str, np.ndarray] = field(default_factory=dict)
    synthetic: bool = False
    extra: dict[str, Any] = field(default_factory=dict)  # JSON-serialisable dataset specifics

    @property
    def num_people(self) -> int:
        """P, the number of people in the image."""
        return len(self.genders)


def _fail(key: str, name: str, expected: str, got: str) -> SchemaError:
    return SchemaError(f"sample {key!r}: field {name!r}: expected {expected}, got {got}")


def _describe(arr: Any) -> str:
    if isinstance(arr, np.ndarray):
        return f"shape {tuple(arr.shape)} dtype {arr.dtype}"
    return f"{type(arr).__name__}"


def _check_array(key: str, name: str, arr: Any, shape: tuple[int | str, ...], kind: str, sizes: dict[str, int]) -> None:
    """Check one array against a symbolic shape, binding free symbols in ``sizes``."""
    expected = f"{'float' if kind == 'f' else 'bool' if kind == 'b' else 'int'} array of shape ({', '.join(map(str, shape))})"
    if not isinstance(arr, np.ndarray):
        raise _fail(key, name, expected, _describe(arr))
    if arr.dtype.kind != kind:
        raise _fail(key, name, expected, _describe(arr))
    if arr.ndim != len(shape):
        raise _fail(key, name, expected, _describe(arr))
    for dim, sym in zip(arr.shape, shape):
        if isinstance(sym, int):
            if dim != sym:
                raise _fail(key, name, expected, _describe(arr))
        elif sym in sizes and sizes[sym] != dim:
            raise _fail(key, name, f"{expected} with {sym}={sizes[sym]}", _describe(arr))
        else:
            sizes[sym] = dim
    if kind == "f" and not np.all(np.isfinite(arr)):
        raise _fail(key, name, "finite values", "NaN or inf")


def validate_sample(sample: Sample) -> None:
    """Raise :class:`SchemaError` naming the sample key, the field and the expectation on any violation."""
    key = sample.key
    if not isinstance(key, str) or not KEY_PATTERN.match(key):
        raise _fail(str(key), "__key__", "lowercase letters, digits, '_' or '-' only (no dots)", repr(key))
    choices = {
        "body_model": (sample.body_model, BODY_MODEL_KINDS),
        "coords": (sample.coords, ("camera", "world")),
        "image_format": (sample.image_format, IMAGE_FORMATS),
    }
    for name, (value, allowed) in choices.items():
        if value not in allowed:
            raise _fail(key, name, f"one of {list(allowed)}", repr(value))
    if not isinstance(sample.image, (bytes, bytearray)) or not sample.image:
        raise _fail(key, "image", "non-empty encoded image bytes", _describe(sample.image))
    if not (isinstance(sample.width, int) and isinstance(sample.height, int) and sample.width > 0 and sample.height > 0):
        raise _fail(key, "width/height", "positive ints", f"{sample.width!r}x{sample.height!r}")
    sizes: dict[str, int] = {}
    cam = sample.camera
    for name, arr in (("cam_K", cam.K), ("cam_R", cam.R), ("cam_t", cam.t), ("cam_dist", cam.dist)):
        shape, kind = CAMERA_FIELDS[name]
        _check_array(key, name, arr, shape, kind, sizes)
    if sizes["D"] not in DISTORTION_LENGTHS:
        raise _fail(key, "cam_dist", f"length in {DISTORTION_LENGTHS}", str(sizes["D"]))
    _validate_people(sample)


def _validate_people(sample: Sample) -> None:
    key = sample.key
    num = len(sample.genders)
    sizes: dict[str, int] = {"P": num, "BP": BODY_POSE_DIM[sample.body_model]}
    for gender in sample.genders:
        if gender not in GENDERS:
            raise _fail(key, "genders", f"values in {list(GENDERS)}", repr(gender))
    if len(sample.person_ids) != num:
        raise _fail(key, "person_ids", f"{num} entries (one per person)", f"{len(sample.person_ids)}")
    unknown = set(sample.people) - set(PERSON_FIELDS)
    if unknown:
        raise _fail(key, sorted(unknown)[0], f"a field of {sorted(PERSON_FIELDS)}", "an unknown field")
    for name, spec in PERSON_FIELDS.items():
        if name not in sample.people:
            if spec.required:
                raise _fail(key, name, "a required per-person array", "nothing")
            continue
        if spec.smplx_only and sample.body_model != "smplx":
            raise _fail(key, name, "no such field for body_model 'smpl'", _describe(sample.people[name]))
        _check_array(key, name, sample.people[name], spec.shape, spec.dtype_kind, sizes)
    present = [name for name in PARAM_FIELDS if name in sample.people]
    if present and len(present) < len(PARAM_FIELDS):
        missing = sorted(set(PARAM_FIELDS) - set(present))
        raise _fail(key, missing[0], f"all of {list(PARAM_FIELDS)} or none", f"only {present}")
    if not present and "vertices" not in sample.people:
        raise _fail(key, "betas", f"body-model parameters {list(PARAM_FIELDS)} or GT 'vertices'", "neither")
    if present and sizes["B"] < 10:
        raise _fail(key, "betas", "at least 10 coefficients", str(sizes["B"]))
    for name, arr in sample.flags.items():
        kind = arr.dtype.kind if isinstance(arr, np.ndarray) and arr.dtype.kind in "biuf" else "b"
        _check_array(key, f"flags.{name}", arr, ("P",), kind, sizes)


# ----------------------------------------------------------------------------- encoding

def npz_bytes(arrays: Mapping[str, np.ndarray]) -> bytes:
    """Serialise arrays as an uncompressed ``.npz`` with fixed timestamps (byte-deterministic)."""
    buf = io.BytesIO()
    write_npz(buf, arrays)
    return buf.getvalue()


def npz_arrays(data: bytes) -> dict[str, np.ndarray]:
    """Inverse of :func:`npz_bytes`; refuses object arrays (no unpickling)."""
    with np.load(io.BytesIO(data), allow_pickle=False) as npz:
        return {name: npz[name] for name in npz.files}


def json_bytes(obj: Any) -> bytes:
    """Canonical JSON: sorted keys, no whitespace, UTF-8."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def encode_sample(sample: Sample, *, validate: bool = True) -> dict[str, Any]:
    """Sample -> webdataset members ``{"__key__", "json", "npz", "<jpg|png>", ["mask.png"]}`` (deterministic bytes)."""
    if validate:
        validate_sample(sample)
    meta = {
        "schema_version": SCHEMA_VERSION,
        "dataset": sample.dataset,
        "split": sample.split,
        "sequence": sample.sequence,
        "frame": int(sample.frame),
        "camera_name": sample.camera_name,
        "width": sample.width,
        "height": sample.height,
        "image_format": sample.image_format,
        "body_model": sample.body_model,
        "coords": sample.coords,
        "genders": list(sample.genders),
        "person_ids": [str(p) for p in sample.person_ids],
        "joints2d_format": sample.joints2d_format,
        "joints3d_format": sample.joints3d_format,
        "flags": sorted(sample.flags),
        "synthetic": bool(sample.synthetic),
        "has_mask": sample.mask is not None,
        "extra": sample.extra,
    }
    arrays = {"cam_K": sample.camera.K, "cam_R": sample.camera.R, "cam_t": sample.camera.t, "cam_dist": sample.camera.dist}
    arrays.update(sample.people)
    arrays.update({f"flag_{name}": arr for name, arr in sample.flags.items()})
    encoded: dict[str, Any] = {"__key__": sample.key, "json": json_bytes(meta), "npz": npz_bytes(arrays), sample.image_format: bytes(sample.image)}
    if sample.mask is not None:
        encoded["mask.png"] = bytes(sample.mask)
    return encoded


def decode_sample(encoded: Mapping[str, Any]) -> Sample:
    """Webdataset members -> :class:`Sample` (image bytes stay encoded; see :func:`decode_image`)."""
    key = encoded["__key__"]
    try:
        meta = json.loads(encoded["json"])
        arrays = npz_arrays(encoded["npz"])
    except KeyError as err:
        raise SchemaError(f"sample {key!r}: member {err.args[0]!r} is missing") from None
    if meta.get("schema_version") != SCHEMA_VERSION:
        raise SchemaError(f"sample {key!r}: schema_version {meta.get('schema_version')!r}, this humanbench reads {SCHEMA_VERSION!r}")
    fmt = meta["image_format"]
    camera = Camera(K=arrays.pop("cam_K"), R=arrays.pop("cam_R"), t=arrays.pop("cam_t"), dist=arrays.pop("cam_dist"))
    flags = {name: arrays.pop(f"flag_{name}") for name in meta["flags"]}
    return Sample(
        key=key, dataset=meta["dataset"], split=meta["split"], image=encoded[fmt], image_format=fmt,
        width=meta["width"], height=meta["height"], camera=camera, body_model=meta["body_model"],
        coords=meta["coords"], people=arrays, genders=meta["genders"], person_ids=meta["person_ids"],
        sequence=meta["sequence"], frame=meta["frame"], camera_name=meta["camera_name"],
        mask=encoded.get("mask.png"), joints2d_format=meta["joints2d_format"],
        joints3d_format=meta["joints3d_format"], flags=flags, synthetic=meta["synthetic"], extra=meta["extra"],
    )


def decode_image(data: bytes) -> np.ndarray:
    """Encoded JPEG/PNG bytes -> (H,W,3) uint8 RGB (or (H,W) for single-channel masks)."""
    from PIL import Image

    with Image.open(io.BytesIO(data)) as img:
        if img.mode not in ("RGB", "L"):
            img = img.convert("RGB")
        return np.asarray(img)
