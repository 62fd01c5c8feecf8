"""In-the-wild monocular clips (HumanNeRF / MonoHuman preparation) -> schema samples, one per frame.

Raw layout (see ``docs/datasets/wild.md``; formats.md §6)::

    ROOT/<clip>/images/<item_id>.png|.jpg      the frames as files (HumanNeRF layout), or
    ROOT/<clip>/video.<ext>                    the frames in a video; item_id = 6-digit 0-based frame index
    ROOT/<clip>/metadata.json                  SMPL + camera per item_id: HumanNeRF (flat) or MonoHuman (nested)
    ROOT/<clip>/pare_output.pkl                or PARE video mode: {track_id: per-track arrays}
    ROOT/<clip>/pare_results/<item_id>.pkl     or PARE folder mode: one file per image
    ROOT/<clip>/pare/<item_id>.pkl             or MonoHuman's copy of the folder-mode files
    ROOT/<clip>/masks/<item_id>.png            masks named like the frames, or
    ROOT/<clip>/masks/0000.png, 0001.png, ...  RobustVideoMatting's png_sequence alpha (running counter), or
    ROOT/<clip>/mask.<ext>                     a mask video, frame i for frame i

The first SMPL source found in the order above is used. PARE files (joblib or plain pickles of
numpy arrays) are read by a restricted unpickler and never by joblib or ``pickle.load``. PARE's
weak-perspective crop camera becomes a pinhole camera on the original frame (formats.md §6.2, see
:func:`weak_perspective_to_pinhole`); all parameters are neutral SMPL in the camera frame
(``coords="camera"``). Splits: ``all``; ``test`` = the last ``N // 5`` frames of each clip
(MonoHuman's novel-pose hold-out, protocols.md §7.2); ``train`` = the others.
"""

from __future__ import annotations

import io
import json
import pickle
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, ClassVar

import av
import numpy as np
import torch
from PIL import Image
from scipy.spatial.transform import Rotation

from humanbench.bodymodels import (BodyModel, PickleLoadError, UnsafePickleError, load_body_model,
                                   load_pickle_restricted)
from humanbench.bodymodels.rigid import move_root
from humanbench.bodymodels.safe_pickle import DEFAULT_ALLOWED, CorruptPickleError, UnsupportedPickleContentError
from humanbench.loaders.base import ConversionError, Converter, Unit, UnitResult
from humanbench.schema import Camera, Sample

FRAMES_PER_UNIT = 64
CROP_SIZE = 224.0
"""Side of the square crop PARE / SPIN / VIBE regress from, pixels."""
CROP_FOCAL = 5000.0
"""Focal length those regressors assume for the crop, pixels."""
TEST_FRACTION = 5
"""``test`` holds the last ``N // TEST_FRACTION`` frames of a clip."""
SPLITS = ("all", "train", "test")
VIDEO_SUFFIXES = (".mp4", ".mov", ".avi", ".mkv", ".webm")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
MASK_THRESHOLD = 128
"""Mask pixels (0..255 after conversion to grey) at or above this are the person."""
SMPL_SOURCES = ("metadata.json", "pare_output.pkl", "pare_results", "pare")
"""Where a clip's SMPL may come from, in order of preference."""
PARE_TRACK_KEYS = ("pred_cam", "bboxes", "pose", "betas", "frame_ids")
PARE_IMAGE_KEYS = ("pred_cam", "bboxes", "pred_pose", "pred_shape")
METADATA_KEYS = ("poses", "betas", "cam_intrinsics", "cam_extrinsics")
NUM_BETAS = 10
_JOBLIB_MARKER = b"joblib.numpy_pickle"


def _fail(where: Path | str, problem: str) -> ConversionError:
    return ConversionError(f"wild: {where}: {problem}")


# ----------------------------------------------------------------------------- cameras and rotations


def weak_perspective_to_pinhole(pred_cam: np.ndarray, bboxes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Weak-perspective crop cameras (N,3) and boxes (N,>=3) -> intrinsics (N,3,3) and translations (N,3).

    ``pred_cam = (s, tx, ty)`` is the camera of the 224-pixel square crop, ``bboxes[:, :3] = (cx, cy, b)``
    its centre and side in the original frame (PARE stores ``(cx, cy, w, h)`` and, like MonoHuman's
    ``process_pare.py``, column 2 is the side). With ``f = b / 224 * 5000``::

        K = [[f, 0, cx], [0, f, cy], [0, 0, 1]]
        transl = (tx, ty, 2 * 5000 / (224 * s + 1e-9))

    The crop projects with focal 5000 about its centre; scaling the crop back to ``b`` pixels about
    ``(cx, cy)`` scales the focal length by ``b / 224``, so the body at ``transl`` projects with ``K``
    exactly where it did in the crop.
    """
    scale, tx, ty = pred_cam[:, 0], pred_cam[:, 1], pred_cam[:, 2]
    focal = bboxes[:, 2] / CROP_SIZE * CROP_FOCAL
    K = np.zeros((len(pred_cam), 3, 3))
    K[:, 0, 0], K[:, 1, 1], K[:, 0, 2], K[:, 1, 2], K[:, 2, 2] = focal, focal, bboxes[:, 0], bboxes[:, 1], 1.0
    return K, np.stack([tx, ty, 2 * CROP_FOCAL / (CROP_SIZE * scale + 1e-9)], axis=1)


def _check_rotations(matrices: np.ndarray, where: str) -> None:
    """Raise unless every (...,3,3) matrix is a rotation (orthonormal, det +1) to 1e-3."""
    error = np.abs(matrices @ np.swapaxes(matrices, -1, -2) - np.eye(3)).max(initial=0.0)
    if error > 1e-3 or np.any(np.linalg.det(matrices) <= 0):
        raise _fail(where, f"holds matrices that are not rotations (|R R^T - I| up to {error:.2g} or det <= 0)")


def pose_to_axis_angle(pose: np.ndarray, where: str) -> np.ndarray:
    """SMPL poses as rotation matrices (N,24,3,3) (PARE) or axis-angle (N,72) (VIBE) -> axis-angle (N,72)."""
    if pose.ndim == 2:
        return pose.astype(np.float64)
    _check_rotations(pose, where)
    return Rotation.from_matrix(pose.reshape(-1, 3, 3).astype(np.float64)).as_rotvec().reshape(len(pose), 72)


@lru_cache(maxsize=2)
def _neutral_smpl(body_models: str | None) -> BodyModel:
    return load_body_model("smpl", "neutral", root=body_models, dtype=torch.float64)


def rest_pelvis(betas: np.ndarray, body_models: str | None) -> tuple[np.ndarray, bool]:
    """Rest-pose pelvis J0 (N,3) of the neutral SMPL at ``betas`` (N,10); and whether the model is synthetic."""
    model = _neutral_smpl(body_models)
    with torch.no_grad():
        joints = model(betas=torch.as_tensor(betas, dtype=torch.float64)).joints
    return joints[:, 0].numpy(), model.synthetic


# ----------------------------------------------------------------------------- PARE files (joblib or pickle)


class _ArrayWrapper:
    """Stand-in for joblib's ``NumpyArrayWrapper``: its BUILD reads the raw array bytes that follow it.

    joblib writes each array as a pickled wrapper (shape, order, dtype, alignment) immediately
    followed, outside the pickle opcodes, by an alignment padding byte ``p``, ``p`` filler bytes and
    the array data. A subclass per load carries the stream being unpickled.
    """

    __slots__ = ("array",)
    stream: ClassVar[io.BytesIO]

    def __setstate__(self, state: Any) -> None:
        if not isinstance(state, dict) or not {"shape", "order", "dtype"} <= set(state):
            raise UnsupportedPickleContentError("joblib NumpyArrayWrapper without shape/order/dtype")
        shape, order, dtype = state["shape"], state["order"], state["dtype"]
        sizes_ok = isinstance(shape, tuple) and all(isinstance(n, int) and n >= 0 for n in shape)
        if not sizes_ok or order not in ("C", "F") or not isinstance(dtype, np.dtype) or dtype.kind not in "biuf":
            raise UnsupportedPickleContentError(f"joblib array of shape {shape!r}, order {order!r}, dtype {dtype!r}: "
                                                "only numeric arrays are read")
        if state.get("numpy_array_alignment_bytes") is not None:  # absent before joblib 1.2
            padding = self.stream.read(1)
            self.stream.read(padding[0] if padding else 0)
        size = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
        data = self.stream.read(size)
        if len(data) != size:
            raise CorruptPickleError(f"joblib array data cut short ({len(data)} of {size} bytes): truncated file")
        flat = np.frombuffer(data, dtype=dtype)
        array = flat.reshape(shape[::-1]).T if order == "F" else flat.reshape(shape)
        self.array = array.astype(dtype.newbyteorder("="))


class _JoblibUnpickler(pickle.Unpickler):
    """Reads joblib files with the restricted unpickler's allow-list plus the array wrapper, nothing else."""

    def __init__(self, stream: io.BytesIO) -> None:
        super().__init__(stream)
        self._wrapper = type("NumpyArrayWrapper", (_ArrayWrapper,), {"__slots__": (), "stream": stream})

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) == ("joblib.numpy_pickle", "NumpyArrayWrapper"):
            return self._wrapper
        if (module, name) in DEFAULT_ALLOWED:
            return DEFAULT_ALLOWED[(module, name)]
        raise UnsafePickleError(f"refused to load '{module}.{name}': a PARE output file holds only numpy arrays; "
                                "the file may be malicious. Nothing from it was executed.")


def _unwrap(obj: Any) -> Any:
    """Replace the array wrappers in a loaded dict/list/tuple tree by their arrays."""
    if isinstance(obj, _ArrayWrapper):
        return obj.array
    if isinstance(obj, dict):
        return {key: _unwrap(value) for key, value in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_unwrap(value) for value in obj)
    return obj


def read_pare_file(path: Path) -> Any:
    """A PARE output file (``joblib.dump`` or plain pickle of numpy arrays), loaded without running code."""
    try:
        data = path.read_bytes()
        if _JOBLIB_MARKER not in data:
            return load_pickle_restricted(path, expected="a PARE output file")
        try:
            return _unwrap(_JoblibUnpickler(io.BytesIO(data)).load())
        except PickleLoadError:
            raise
        except Exception as err:  # the byte stream itself is bad
            raise CorruptPickleError(f"could not be read as a joblib PARE output file ({type(err).__name__}: {err}); "
                                     "truncated or corrupt") from None
    except PickleLoadError as err:
        raise _fail(path, str(err).removeprefix(f"{path}: ")) from None
    except OSError as err:
        raise _fail(path, f"cannot be read ({err})") from None


# ----------------------------------------------------------------------------- numbers from raw files


def _numbers(value: Any, shapes: tuple[tuple[int, ...], ...], where: str) -> np.ndarray:
    """``value`` as a finite numeric array of one of ``shapes`` (-1 = any size)."""
    try:
        array = np.asarray(value)
    except ValueError as err:  # ragged nested lists
        raise _fail(where, f"is not an array ({err})") from None
    fits = [s for s in shapes if len(s) == array.ndim and all(n in (-1, m) for n, m in zip(s, array.shape))]
    if array.dtype.kind not in "biuf" or not fits:
        wanted = " or ".join("(" + ", ".join("*" if n == -1 else str(n) for n in s) + ")" for s in shapes)
        raise _fail(where, f"has shape {array.shape} ({array.dtype}); expected numbers of shape {wanted}")
    if not np.all(np.isfinite(array)):
        raise _fail(where, "holds NaN or infinite values")
    return array


# ----------------------------------------------------------------------------- SMPL of a clip


@dataclass(frozen=True)
class ClipSmpl:
    """Camera-frame neutral SMPL of the M frames of a clip that have it, and why the others have none."""

    source: str  # one of SMPL_SOURCES
    positions: np.ndarray  # (M,) 0-based frame positions, increasing
    betas: np.ndarray  # (M,10)
    global_orient: np.ndarray  # (M,3) camera frame
    body_pose: np.ndarray  # (M,69)
    transl: np.ndarray  # (M,3) camera frame, smplx semantics
    K: np.ndarray  # (M,3,3)
    bbox: np.ndarray | None  # (M,4) x1, y1, x2, y2 of PARE's crop box; None for metadata.json
    raw_camera: list[dict[str, Any]]  # M per-frame raw camera values, kept in ``extra``
    person_id: str
    missing: dict[int, str]  # position -> why it has no SMPL
    synthetic: bool  # a synthetic body model was needed (metadata.json with rotated extrinsics)


def _from_pare(source: str, positions: np.ndarray, arrays: dict[str, np.ndarray], person_id: str,
               missing: dict[int, str], where: str) -> ClipSmpl:
    """ClipSmpl from stacked PARE arrays of M frames at ``positions`` (M,).

    ``pose`` (M,24,3,3) or (M,72), ``betas`` (M,10), ``pred_cam`` (M,3), ``bboxes`` (M,4) cx, cy, w, h.
    """
    order = np.argsort(positions, kind="stable")
    arrays = {name: value[order].astype(np.float64) for name, value in arrays.items()}
    pose = pose_to_axis_angle(arrays["pose"], f"{where}, pose")
    K, transl = weak_perspective_to_pinhole(arrays["pred_cam"], arrays["bboxes"])
    centre, size = arrays["bboxes"][:, :2], arrays["bboxes"][:, 2:4]
    raw = [{"pred_cam": cam.tolist(), "pare_bbox_cxcywh": box[:4].tolist()}
           for cam, box in zip(arrays["pred_cam"], arrays["bboxes"])]
    return ClipSmpl(source, positions[order], arrays["betas"], pose[:, :3], pose[:, 3:], transl, K,
                    np.concatenate([centre - size / 2, centre + size / 2], axis=1), raw, person_id, missing, False)


def _read_pare_video(path: Path, frames: int) -> ClipSmpl:
    """``pare_output.pkl``: the track with the most frames (ties: the first in the file)."""
    raw = read_pare_file(path)
    if not isinstance(raw, dict) or not raw or not all(isinstance(v, dict) for v in raw.values()):
        raise _fail(path, "expected PARE's video-mode output: a non-empty dict {track_id: dict of arrays}")
    for track, content in raw.items():
        absent = [key for key in PARE_TRACK_KEYS if key not in content]
        if absent:
            raise _fail(path, f"track {track!r} has no key {absent[0]!r}; a PARE track has {list(PARE_TRACK_KEYS)}")
    track = max(raw, key=lambda t: np.size(raw[t]["frame_ids"]))
    where = f"{path}, track {track!r}"
    ids = _numbers(raw[track]["frame_ids"], ((-1,),), f"{where}, key 'frame_ids'")
    n = len(ids)
    arrays = {"pose": _numbers(raw[track]["pose"], ((n, 24, 3, 3), (n, 72)), f"{where}, key 'pose'"),
              "betas": _numbers(raw[track]["betas"], ((n, NUM_BETAS),), f"{where}, key 'betas'"),
              "pred_cam": _numbers(raw[track]["pred_cam"], ((n, 3),), f"{where}, key 'pred_cam'"),
              "bboxes": _numbers(raw[track]["bboxes"], ((n, 4),), f"{where}, key 'bboxes'")}
    if ids.dtype.kind not in "iu" or len(np.unique(ids)) != n or (n and ids.min() < 0):
        raise _fail(where, "key 'frame_ids' must hold distinct non-negative frame indices")
    if n and ids.max() >= frames:
        raise _fail(where, f"has frame_id {int(ids.max())} but the clip has only {frames} frames "
                           "(is the video shorter than the params, or the wrong one?)")
    missing = {p: f"track {track!r} of pare_output.pkl has no detection in this frame"
               for p in sorted(set(range(frames)) - set(ids.tolist()))}
    return _from_pare("pare_output.pkl", ids.astype(np.int64), arrays, str(track), missing, where)


def _pare_image_arrays(path: Path) -> dict[str, np.ndarray] | None:
    """The first detection's arrays of a folder-mode PARE file; None when it has no detection."""
    raw = read_pare_file(path)
    if not isinstance(raw, dict) or any(key not in raw for key in PARE_IMAGE_KEYS):
        raise _fail(path, f"expected PARE's per-image output: a dict with keys {list(PARE_IMAGE_KEYS)}")
    pred_cam = _numbers(raw["pred_cam"], ((-1, 3),), f"{path}, key 'pred_cam'")
    n = len(pred_cam)
    if n == 0:
        return None
    return {"pose": _numbers(raw["pred_pose"], ((n, 24, 3, 3), (n, 72)), f"{path}, key 'pred_pose'")[0],
            "betas": _numbers(raw["pred_shape"], ((n, NUM_BETAS),), f"{path}, key 'pred_shape'")[0],
            "pred_cam": pred_cam[0], "bboxes": _numbers(raw["bboxes"], ((n, -1),), f"{path}, key 'bboxes'")[0, :4]}


def _read_pare_folder(folder: Path, items: list[str]) -> ClipSmpl:
    """``pare_results/`` or ``pare/``: one file per image stem, first detection of each."""
    index = {item: position for position, item in enumerate(items)}
    files = sorted(folder.glob("*.pkl"))
    stray = [f.name for f in files if f.stem not in index]
    if stray:
        raise _fail(folder, f"has {stray[0]} but the clip has no frame {Path(stray[0]).stem!r} "
                            "(are the frames fewer than the params?)")
    found = {f.stem: _pare_image_arrays(f) for f in files}
    missing = {index[item]: f"no {folder.name}/{item}.pkl (PARE found nobody in this frame)"
               for item in items if item not in found}
    missing.update({index[item]: f"{folder.name}/{item}.pkl has no detection"
                    for item, arrays in found.items() if arrays is None})
    kept = [item for item in items if found.get(item) is not None]
    if not kept:
        raise _fail(folder, "holds no detection for any frame of the clip")
    arrays = {name: np.stack([found[item][name] for item in kept]) for name in ("pose", "betas", "pred_cam", "bboxes")}
    return _from_pare(folder.name, np.array([index[i] for i in kept]), arrays, "0", missing, str(folder))


def _metadata_entry(value: Any, where: str) -> tuple[np.ndarray, ...]:
    """poses (72,), betas (10,), K (3,3), extrinsics (4,4) of one item; MonoHuman's (1,72)/(1,10) are squeezed."""
    if not isinstance(value, dict):
        raise _fail(where, f"is a {type(value).__name__}; expected an object with keys {list(METADATA_KEYS)}")
    absent = [key for key in METADATA_KEYS if key not in value]
    if absent:
        raise _fail(where, f"has no key {absent[0]!r}; HumanNeRF's metadata.json gives {list(METADATA_KEYS)}")
    poses = _numbers(value["poses"], ((72,), (1, 72)), f"{where}, 'poses'").reshape(72)
    betas = _numbers(value["betas"], ((NUM_BETAS,), (1, NUM_BETAS)), f"{where}, 'betas'").reshape(NUM_BETAS)
    K = _numbers(value["cam_intrinsics"], ((3, 3),), f"{where}, 'cam_intrinsics'")
    extrinsics = _numbers(value["cam_extrinsics"], ((4, 4),), f"{where}, 'cam_extrinsics'")
    if not np.allclose(extrinsics[3], [0, 0, 0, 1]):
        raise _fail(where, f"'cam_extrinsics' last row is {extrinsics[3].tolist()}, expected [0, 0, 0, 1]")
    _check_rotations(extrinsics[:3, :3], f"{where}, 'cam_extrinsics'")
    return poses, betas, K, extrinsics


def _read_metadata(path: Path, items: list[str], body_models: str | None) -> ClipSmpl:
    """HumanNeRF / MonoHuman ``metadata.json``, folded into the camera frame.

    The body sits in a world frame with zero translation and ``X_cam = R X + t``; smplx rotates about
    the rest pelvis J0, so ``global_orient' = R global_orient`` and ``transl = R J0 + t - J0``
    (:func:`~humanbench.bodymodels.rigid.move_root`). Frames with ``R = I``, as the PARE/VIBE
    preparation scripts write them, keep ``poses[:3]`` and ``t`` bit for bit; J0 (neutral SMPL of
    ``body_models``) is only computed when some frame is rotated.
    """
    try:
        content = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError) as err:
        raise _fail(path, f"cannot be read ({err})") from None
    except json.JSONDecodeError as err:
        raise _fail(path, f"is not valid JSON ({err}); truncated?") from None
    if not isinstance(content, dict) or not content:
        raise _fail(path, "expected a JSON object {item_id: {poses, betas, cam_intrinsics, cam_extrinsics}}")
    index = {item: position for position, item in enumerate(items)}
    stray = [key for key in content if key not in index]
    if stray:
        raise _fail(path, f"has item {stray[0]!r} but the clip has no such frame (are the frames fewer than the "
                          "params?)")
    kept = [item for item in items if item in content]
    entries = [_metadata_entry(content[item], f"{path}, item {item!r}") for item in kept]
    poses, betas, K, extrinsics = (np.stack(column).astype(np.float64) for column in zip(*entries))
    R, t = extrinsics[:, :3, :3], extrinsics[:, :3, 3]
    kept_exactly = np.all(R == np.eye(3), axis=(1, 2))[:, None]  # no round trip through rotations for these
    pelvis, synthetic = (np.zeros_like(t), False) if kept_exactly.all() else rest_pelvis(betas, body_models)
    orient, transl = move_root(poses[:, :3], np.zeros_like(t), R, t, pelvis)
    orient, transl = np.where(kept_exactly, poses[:, :3], orient), np.where(kept_exactly, t, transl)
    missing = {index[item]: "no entry in metadata.json" for item in items if item not in content}
    return ClipSmpl("metadata.json", np.array([index[i] for i in kept]), betas, orient, poses[:, 3:], transl, K, None,
                    [{"cam_extrinsics": e.tolist()} for e in extrinsics], "0", missing, synthetic)


# ----------------------------------------------------------------------------- frames and masks


def _video_file(folder: Path, stem: str) -> Path | None:
    """``folder/<stem>.<video suffix>`` (first suffix of VIDEO_SUFFIXES found), or None."""
    return next((folder / f"{stem}{s}" for s in VIDEO_SUFFIXES if (folder / f"{stem}{s}").is_file()), None)


def video_frame_count(path: Path) -> int:
    """Frames of the first video stream, counted from its packets (nothing is decoded)."""
    try:
        with av.open(str(path)) as container:
            return sum(1 for packet in container.demux(container.streams.video[0]) if packet.size)
    except (av.error.FFmpegError, IndexError) as err:
        raise _fail(path, f"is not a readable video ({err})") from None


def decode_video(path: Path, start: int, stop: int, pixel_format: str) -> list[np.ndarray]:
    """Frames ``[start, stop)`` (0-based, decoding order = display order) as (H,W,3) rgb24 or (H,W) gray arrays."""
    pixels: list[np.ndarray] = []
    try:
        with av.open(str(path)) as container:
            for index, frame in enumerate(container.decode(video=0)):
                if index >= stop:
                    break
                if index >= start:
                    pixels.append(frame.to_ndarray(format=pixel_format))
    except (av.error.FFmpegError, IndexError) as err:
        raise _fail(path, f"video cannot be decoded ({err})") from None
    if len(pixels) < stop - start:
        raise _fail(path, f"video has only {start + len(pixels)} frames; frame {start + len(pixels)} was needed")
    return pixels


@dataclass(frozen=True)
class ClipFrames:
    """Where a clip's frames come from: image files (sorted by name) or a video."""

    folder: Path  # the clip folder
    items: list[str]  # item id of each frame position
    images: list[Path]  # image files, empty for a video
    video: Path | None

    @property
    def source(self) -> str:
        """``images`` or ``video`` (kept in ``extra.frame_source``)."""
        return "video" if self.video else "images"


def clip_frames(folder: Path) -> ClipFrames:
    """The frames of clip ``folder``: ``images/`` if present, else ``video.<ext>``."""
    images = folder / "images"
    if images.is_dir():
        files = sorted(p for p in images.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
        if not files:
            raise _fail(images, f"holds no frames (expected <item_id> files ending in {list(IMAGE_SUFFIXES)})")
        stems = [p.stem for p in files]
        if len(set(stems)) != len(stems):
            raise _fail(images, "holds two frames with the same item id (e.g. x.png and x.jpg)")
        return ClipFrames(folder, stems, files, None)
    video = _video_file(folder, "video")
    if video is None:
        raise _fail(folder, f"has neither images/ nor video{{{','.join(VIDEO_SUFFIXES)}}}")
    count = video_frame_count(video)
    if count == 0:
        raise _fail(video, "holds no frames")
    return ClipFrames(folder, [f"{i:06d}" for i in range(count)], [], video)


def _png(pixels: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def _image_file(path: Path) -> tuple[bytes, str, int, int]:
    """Bytes, format (png/jpg), width and height of a frame file."""
    try:
        data = path.read_bytes()
        with Image.open(io.BytesIO(data)) as image:
            fmt, (width, height) = image.format, image.size
    except OSError as err:
        raise _fail(path, f"not a readable image ({err})") from None
    if fmt not in ("PNG", "JPEG"):
        raise _fail(path, f"is {fmt}; expected PNG or JPEG")
    return data, ("png" if fmt == "PNG" else "jpg"), width, height


def frame_images(frames: ClipFrames, positions: list[int]) -> list[tuple[bytes, str, int, int]]:
    """(bytes, format, width, height) of the frames at increasing ``positions``: files, or video frames as PNG."""
    if frames.video is None:
        return [_image_file(frames.images[p]) for p in positions]
    decoded = decode_video(frames.video, positions[0], positions[-1] + 1, "rgb24")
    return [(_png(decoded[p - positions[0]]), "png", *decoded[0].shape[1::-1]) for p in positions]


@dataclass(frozen=True)
class MaskSource:
    """``masks`` (files named like the frames), ``rvm`` (``0000.png`` running counter) or ``video``."""

    kind: str
    path: Path  # the folder or the video

    def file(self, position: int, item: str) -> Path:
        """The mask file of a frame (folder kinds)."""
        return self.path / (f"{item}.png" if self.kind == "masks" else f"{position:04d}.png")


def mask_source(frames: ClipFrames) -> MaskSource:
    """Find the clip's masks: ``masks/<item_id>.png``, else RVM's ``masks/0000.png...``, else ``mask.<ext>``."""
    folder = frames.folder / "masks"
    if folder.is_dir():
        if any((folder / f"{item}.png").is_file() for item in frames.items):
            return MaskSource("masks", folder)
        if (folder / "0000.png").is_file():
            return MaskSource("rvm", folder)
        raise _fail(folder, f"holds neither masks named like the frames ({frames.items[0]}.png, ...) nor "
                            "RobustVideoMatting's 0000.png, 0001.png, ...")
    video = _video_file(frames.folder, "mask")
    if video is None:
        raise _fail(frames.folder, "has no masks: expected masks/<item_id>.png, RobustVideoMatting's "
                                   f"masks/0000.png... or a mask video mask{{{','.join(VIDEO_SUFFIXES)}}}")
    return MaskSource("video", video)


def _mask_file(path: Path, item: str) -> np.ndarray:
    """(H,W) bool mask of a PNG (grey, RGB or soft alpha; ``>= 128`` is the person)."""
    try:
        with Image.open(path) as image:
            grey = np.asarray(image.convert("L"))
    except FileNotFoundError:
        raise _fail(path, f"mask missing for frame {item!r}") from None
    except OSError as err:
        raise _fail(path, f"not a readable mask image ({err}); frame {item!r}") from None
    return grey >= MASK_THRESHOLD


def frame_masks(source: MaskSource, frames: ClipFrames, positions: list[int]) -> list[np.ndarray]:
    """(H,W) bool masks of the frames at increasing ``positions``."""
    if source.kind == "video":
        decoded = decode_video(source.path, positions[0], positions[-1] + 1, "gray")
        return [decoded[p - positions[0]] >= MASK_THRESHOLD for p in positions]
    return [_mask_file(source.file(p, frames.items[p]), frames.items[p]) for p in positions]


# ----------------------------------------------------------------------------- converter


def clip_slug(name: str) -> str:
    """Sample-key prefix of a clip folder: lowercase, characters other than a-z 0-9 _ - become ``_``."""
    return re.sub(r"[^a-z0-9_-]", "_", name.lower())


def split_range(split: str, frames: int) -> range:
    """Frame positions of ``split`` in a clip of ``frames`` frames."""
    first_test = frames - frames // TEST_FRACTION
    return {"all": range(frames), "train": range(first_test), "test": range(first_test, frames)}[split]


def smpl_source(folder: Path) -> Path:
    """The clip's SMPL source: the first of ``SMPL_SOURCES`` present."""
    found = next((folder / name for name in SMPL_SOURCES if (folder / name).exists()), None)
    if found is None:
        raise _fail(folder, f"has no SMPL: expected one of {list(SMPL_SOURCES)}")
    return found


def _stamp(source: Path) -> tuple:
    """What changes when a SMPL source (file or folder of ``.pkl`` files) does: names, mtimes, sizes."""
    files = sorted(source.glob("*.pkl")) if source.is_dir() else [source]
    return tuple((f.name, f.stat().st_mtime_ns, f.stat().st_size) for f in files)


@lru_cache(maxsize=4)
def _cached_smpl(source: Path, stamp: tuple, items: tuple[str, ...], body_models: str | None) -> ClipSmpl:
    """The clip's SMPL, read once per process for consecutive units (``stamp`` from :func:`_stamp`)."""
    if source.name == "metadata.json":
        return _read_metadata(source, list(items), body_models)
    if source.name == "pare_output.pkl":
        return _read_pare_video(source, len(items))
    return _read_pare_folder(source, list(items))


class WildConverter(Converter):
    """Monocular clips; a unit is up to ``FRAMES_PER_UNIT`` consecutive frames of one clip."""

    name = "wild"
    splits = SPLITS

    def _clips(self) -> dict[str, Path]:
        """Clip folders by key prefix, in key order; raises when there is none."""
        folders = [p for p in sorted(self.root.iterdir()) if p.is_dir() and
                   ((p / "images").is_dir() or _video_file(p, "video") is not None)]
        if not folders:
            raise ConversionError(f"wild: {self.root} holds no clip folders (expected <clip>/images/ or "
                                  "<clip>/video.mp4 with metadata.json or PARE output and masks; see "
                                  "docs/datasets/wild.md)")
        clips: dict[str, Path] = {}
        for folder in folders:
            slug = clip_slug(folder.name)
            if slug in clips:
                raise ConversionError(f"wild: clip folders {clips[slug].name!r} and {folder.name!r} give the same "
                                      f"sample-key prefix {slug!r}; rename one")
            clips[slug] = folder
        return dict(sorted(clips.items()))

    def units(self) -> list[Unit]:
        """Chunks of the split's frame range per clip; a clip whose frames cannot be listed is one failing unit."""
        units = []
        for folder in self._clips().values():
            try:
                positions = split_range(self.split, len(clip_frames(folder).items))
            except ConversionError:  # reported by convert_unit, so --skip-bad skips just this clip
                units.append(Unit(folder.name))
                continue
            units += [Unit(folder.name, s, min(s + FRAMES_PER_UNIT, positions.stop))
                      for s in range(positions.start, positions.stop, FRAMES_PER_UNIT)]
        return units

    def source_files(self) -> list[Path]:
        """The SMPL source file of every clip, or the ``.pkl`` files of its PARE folder (not the rendered images)."""
        files = []
        for folder in self._clips().values():
            try:
                source = smpl_source(folder)
            except ConversionError:  # reported by convert_unit
                continue
            files += sorted(source.glob("*.pkl")) if source.is_dir() else [source]
        return files

    def convert_unit(self, unit: Unit) -> UnitResult:
        """Samples of the frames ``[unit.start, unit.stop)`` of clip ``unit.item`` with SMPL; the others are dropped."""
        frames = clip_frames(self.root / unit.item)
        source = smpl_source(frames.folder)
        body_models = None if self.body_models is None else str(self.body_models)
        smpl = _cached_smpl(source, _stamp(source), tuple(frames.items), body_models)
        masks = mask_source(frames)
        span = range(unit.start, unit.stop) if unit.stop else split_range(self.split, len(frames.items))
        rows = {int(p): row for row, p in enumerate(smpl.positions) if p in span}
        dropped = [{"item": f"{unit.item}/{frames.items[p]}", "reason": smpl.missing[p]} for p in span if p not in rows]
        if not rows:
            return UnitResult([], dropped)
        positions = sorted(rows)
        samples = [self._sample(frames, smpl, masks.kind, p, rows[p], image, mask) for p, image, mask in
                   zip(positions, frame_images(frames, positions), frame_masks(masks, frames, positions))]
        return UnitResult(samples, dropped)

    def _sample(self, frames: ClipFrames, smpl: ClipSmpl, mask_kind: str, position: int, row: int,
                image: tuple[bytes, str, int, int], mask: np.ndarray) -> Sample:
        data, fmt, width, height = image
        item = frames.items[position]
        if mask.shape != (height, width):
            raise _fail(frames.folder, f"mask of frame {item!r} is {mask.shape[1]}x{mask.shape[0]}, "
                                       f"the frame is {width}x{height}")
        people = {"betas": smpl.betas[row:row + 1], "global_orient": smpl.global_orient[row:row + 1],
                  "body_pose": smpl.body_pose[row:row + 1], "transl": smpl.transl[row:row + 1],
                  "valid": np.ones(1, bool), "kid": np.zeros(1, bool)}
        if smpl.bbox is not None:
            people["bbox"] = smpl.bbox[row:row + 1]
        return Sample(
            key=f"{clip_slug(frames.folder.name)}-{position:06d}", dataset=self.name, split=self.split, image=data,
            image_format=fmt, width=width, height=height, camera=Camera(K=smpl.K[row]), body_model="smpl",
            coords="camera", people=people, genders=["neutral"], person_ids=[smpl.person_id],
            sequence=frames.folder.name, frame=position, mask=_png(mask.astype(np.uint8)), synthetic=smpl.synthetic,
            extra={"item_id": item, "frame_source": frames.source, "smpl_source": smpl.source,
                   "mask_source": mask_kind, **smpl.raw_camera[row]},
        )
