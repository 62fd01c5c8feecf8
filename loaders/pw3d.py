"""3DPW (3D Poses in the Wild), as downloaded -> schema samples: one per image, both actors stacked.

Raw layout (formats.md §1.1; a doubled ``sequenceFiles/sequenceFiles/`` from unzipping is found too)::

    ROOT/imageFiles/<sequence>/image_%05d.jpg
    ROOT/sequenceFiles/{train,validation,test}/<sequence>.pkl

Sequence pickles are Python-2 pickles of plain arrays, read with the restricted unpickler (latin1).
The SMPL parameters there are in a WORLD frame with a world->camera pose per frame (``cam_poses``);
samples hold them in the camera frame (``coords="camera"``): ``R_g' = R R_g`` and, since SMPL rotates
about the rest pelvis ``J0(betas)`` of the gendered model, ``trans' = R (trans + J0) + t - J0``
(formats.md §1.4). ``cam_R``/``cam_t`` keep the frame's world->camera pose, so the world frame stays
recoverable. See docs/datasets/3dpw.md for everything kept and the validity rules.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from humanbench.bodymodels import BodyModel, PickleLoadError, load_body_model, load_pickle_restricted
from humanbench.bodymodels.rigid import move_root
from humanbench.loaders.base import ConversionError, Converter, Unit, UnitResult
from humanbench.schema import Camera, Sample

FRAMES_PER_UNIT = 64
BBOX_SCALE = 1.2
JOINTS2D_FORMAT = "coco18"
JOINTS3D_FORMAT = "smpl24"
COCO18_JOINTS = ("nose", "neck", "right_shoulder", "right_elbow", "right_wrist", "left_shoulder", "left_elbow",
                 "left_wrist", "right_hip", "right_knee", "right_ankle", "left_hip", "left_knee", "left_ankle",
                 "right_eye", "left_eye", "right_ear", "left_ear")
"""Joint order of ``poses2d`` / ``joints2d`` (formats.md §1.3)."""
GENDERS = {"m": "male", "f": "female"}
NUM_BETAS = 10
ACTOR_KEYS = ("betas", "poses", "trans", "poses2d", "jointPositions", "campose_valid")
"""Per-actor lists the converter reads (each of length P)."""
REQUIRED_KEYS = ("sequence", "genders", *ACTOR_KEYS, "img_frame_ids", "cam_poses", "cam_intrinsics")


def sample_key(sequence: str, frame: int) -> str:
    """``<sequence lowercased>-<frame:06d>``, e.g. ``downtown_walkuphill_00-000012``."""
    return f"{sequence.lower()}-{frame:06d}"


def image_path(root: Path, sequence: str, frame: int) -> Path:
    """Where the download keeps image ``frame`` (0-based) of ``sequence``."""
    return root / "imageFiles" / sequence / f"image_{frame:05d}.jpg"


@dataclass(frozen=True)
class PW3DSequence:
    """One sequence pickle with every frame converted to the camera frame; P actors, N images."""

    name: str
    gender_letters: list[str]  # P, as stored ('m' / 'f')
    betas: np.ndarray  # (P,10)
    global_orient: np.ndarray  # (P,N,3) camera frame
    body_pose: np.ndarray  # (P,N,69)
    transl: np.ndarray  # (P,N,3) camera frame, smplx semantics
    joints3d: np.ndarray  # (P,N,24,3) jointPositions in the camera frame, metres
    joints2d: np.ndarray  # (P,N,18,3) poses2d transposed: x, y, confidence
    bbox: np.ndarray  # (P,N,4) x1, y1, x2, y2
    campose_valid: np.ndarray  # (P,N) bool
    detected: np.ndarray  # (P,N) bool: poses2d not all zero
    cam_K: np.ndarray  # (3,3)
    cam_R: np.ndarray  # (N,3,3) world->camera
    cam_t: np.ndarray  # (N,3)
    img_frame_ids: np.ndarray  # (N,) index into the 60 Hz arrays
    synthetic_body_model: bool

    @property
    def genders(self) -> list[str]:
        """P schema genders ('male' / 'female')."""
        return [GENDERS[g] for g in self.gender_letters]


def _fail(path: Path, sequence: str, problem: str) -> ConversionError:
    """The error for a bad sequence pickle, naming file and sequence."""
    return ConversionError(f"3dpw: {path}: {problem} (sequence {sequence})")


def _read_pickle(path: Path) -> dict[str, Any]:
    """The raw dict of a sequence pickle, with every key the converter needs."""
    try:
        raw = load_pickle_restricted(path, expected="a 3DPW sequence pickle")
    except (PickleLoadError, OSError) as err:
        raise ConversionError(f"3dpw: sequence {path.stem}: {err}") from None
    if not isinstance(raw, dict):
        raise _fail(path, path.stem, f"holds a {type(raw).__name__}; expected a dict with keys {list(REQUIRED_KEYS)}")
    missing = [key for key in REQUIRED_KEYS if key not in raw]
    if missing:
        raise _fail(path, path.stem, f"key {missing[0]!r} is missing; a 3DPW sequence pickle has {list(REQUIRED_KEYS)}")
    if raw["sequence"] != path.stem:
        raise _fail(path, path.stem, f"key 'sequence' is {raw['sequence']!r}, expected the file name {path.stem!r}")
    return raw


def frame_count(path: Path) -> int:
    """Number of annotated images N of a sequence pickle (``len(img_frame_ids)``)."""
    return len(_array(path, _read_pickle(path), "img_frame_ids", (-1,)))


def _array(path: Path, raw: dict[str, Any], key: str, shape: tuple[int, ...], actor: int | None = None) -> np.ndarray:
    """``raw[key]`` (or its entry ``actor``) as a numeric array of ``shape`` (-1 = any size)."""
    what = f"key {key!r}" + ("" if actor is None else f" of actor {actor}")
    try:
        array = np.asarray(raw[key] if actor is None else raw[key][actor])
    except ValueError as err:  # ragged nested lists
        raise _fail(path, path.stem, f"{what} is not an array ({err})") from None
    ok = array.dtype.kind in "biuf" and array.ndim == len(shape)
    if not ok or any(s not in (-1, n) for s, n in zip(shape, array.shape)):
        wanted = "(" + ", ".join("*" if s == -1 else str(s) for s in shape) + ")"
        raise _fail(path, path.stem, f"{what} has shape {array.shape} ({array.dtype}); "
                                     f"expected numbers of shape {wanted}")
    if array.dtype.kind == "f" and not np.all(np.isfinite(array)):
        raise _fail(path, path.stem, f"{what} holds NaN or infinite values")
    return array


def _actor_arrays(path: Path, raw: dict[str, Any], frames: int) -> dict[str, np.ndarray]:
    """Per-actor arrays stacked on a leading P axis, shape-checked; betas cut to 10 (the rest must be zero)."""
    genders = raw["genders"]
    if not isinstance(genders, list) or not genders or any(not isinstance(g, str) or g not in GENDERS for g in genders):
        raise _fail(path, path.stem, f"key 'genders' is {genders!r}; expected a list of 'm' / 'f', one per actor")
    for key in ACTOR_KEYS:
        if not isinstance(raw[key], list) or len(raw[key]) != len(genders):
            raise _fail(path, path.stem, f"key {key!r} must be a list with one entry per actor ({len(genders)})")
    shapes = {"poses": (frames, 72), "trans": (frames, 3), "poses2d": (frames, 3, 18),
              "jointPositions": (frames, 72), "campose_valid": (frames,)}
    arrays = {key: np.stack([_array(path, raw, key, shape, p) for p in range(len(genders))])
              for key, shape in shapes.items()}
    betas = [_array(path, raw, "betas", (-1,), p) for p in range(len(genders))]
    for p, b in enumerate(betas):
        if len(b) < NUM_BETAS or np.any(b[NUM_BETAS:] != 0):
            raise _fail(path, path.stem, f"betas of actor {p} has {len(b)} values; expected 10, or more with all "
                                         "beyond the 10th zero (3DPW's SMPL has 10 shape components)")
    arrays["betas"] = np.stack([b[:NUM_BETAS] for b in betas]).astype(np.float64)
    return arrays


@lru_cache(maxsize=None)
def _body_model(gender: str, body_models: str | None) -> BodyModel:
    """The float64 SMPL model of ``gender`` (loaded once per process)."""
    return load_body_model("smpl", gender, root=body_models, dtype=torch.float64)


def rest_pelvis(genders: list[str], betas: np.ndarray, body_models: str | None) -> tuple[np.ndarray, bool]:
    """Rest-pose pelvis J0 (P,3) of each actor's gendered SMPL at its ``betas`` (P,10).

    Also returns whether any model used was one of the embedded synthetic stand-ins.
    """
    pelvis, synthetic = [], False
    for gender, shape in zip(genders, betas):
        model = _body_model(gender, body_models)
        with torch.no_grad():
            pelvis.append(model(betas=torch.as_tensor(shape[None], dtype=torch.float64)).joints[0, 0].numpy())
        synthetic |= model.synthetic
    return np.stack(pelvis), synthetic


def to_camera_frame(global_orient: np.ndarray, transl: np.ndarray, cam_R: np.ndarray, cam_t: np.ndarray,
                    pelvis: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """World-frame SMPL roots (P,N,3) + (P,N,3) -> camera frame with per-frame R (N,3,3), t (N,3), J0 (P,3).

    ``R_g' = R R_g``; ``trans' = R (trans + J0) + t - J0`` (:func:`~humanbench.bodymodels.rigid.move_root`).
    """
    return move_root(global_orient, transl, cam_R[None], cam_t[None], pelvis[:, None])


def _project(points: np.ndarray, K: np.ndarray) -> np.ndarray:
    """(...,3) camera-frame points -> (...,2) pixels; depths clamped to 1 mm so points behind stay finite."""
    return points[..., :2] / np.maximum(points[..., 2:3], 1e-3) * np.diag(K)[:2] + K[:2, 2]


def keypoint_boxes(joints2d: np.ndarray, fallback: np.ndarray) -> np.ndarray:
    """SPIN-style boxes (...,4): extent of the keypoints with confidence > 0 in ``joints2d`` (...,J,3), scaled
    by 1.2 about its centre; where none is visible, of the ``fallback`` points (...,K,2) instead."""
    visible = joints2d[..., 2:] > 0
    lo = np.where(visible, joints2d[..., :2], np.inf).min(axis=-2)
    hi = np.where(visible, joints2d[..., :2], -np.inf).max(axis=-2)
    seen = visible.any(axis=(-2, -1))[..., None]
    lo, hi = np.where(seen, lo, fallback.min(axis=-2)), np.where(seen, hi, fallback.max(axis=-2))
    centre, half = (lo + hi) / 2, (hi - lo) / 2 * BBOX_SCALE
    return np.concatenate([centre - half, centre + half], axis=-1)


def read_sequence(path: Path, body_models: str | None = None) -> PW3DSequence:
    """Read a sequence pickle and convert all its frames to the camera frame (vectorised over actors and frames)."""
    raw = _read_pickle(path)
    frames = len(_array(path, raw, "img_frame_ids", (-1,)))
    if frames == 0:
        raise _fail(path, path.stem, "key 'img_frame_ids' is empty: the sequence has no annotated images")
    arrays = _actor_arrays(path, raw, frames)
    cam_poses = _array(path, raw, "cam_poses", (frames, 4, 4)).astype(np.float64)
    cam_K = _array(path, raw, "cam_intrinsics", (3, 3)).astype(np.float64)
    cam_R, cam_t = cam_poses[:, :3, :3], cam_poses[:, :3, 3]
    letters = list(raw["genders"])
    pelvis, synthetic = rest_pelvis([GENDERS[g] for g in letters], arrays["betas"], body_models)
    poses = arrays["poses"].astype(np.float64)
    orient, transl = to_camera_frame(poses[..., :3], arrays["trans"].astype(np.float64), cam_R, cam_t, pelvis)
    joints3d = np.einsum("nij,pnkj->pnki", cam_R, arrays["jointPositions"].reshape(len(letters), frames, 24, 3))
    joints3d = joints3d + cam_t[None, :, None]
    joints2d = arrays["poses2d"].astype(np.float64).transpose(0, 1, 3, 2)
    return PW3DSequence(
        name=path.stem, gender_letters=letters, betas=arrays["betas"], global_orient=orient,
        body_pose=poses[..., 3:], transl=transl, joints3d=joints3d, joints2d=joints2d,
        bbox=keypoint_boxes(joints2d, _project(joints3d, cam_K)), campose_valid=arrays["campose_valid"].astype(bool),
        detected=np.any(joints2d != 0, axis=(-2, -1)), cam_K=cam_K, cam_R=cam_R, cam_t=cam_t,
        img_frame_ids=np.asarray(raw["img_frame_ids"]), synthetic_body_model=synthetic,
    )


@lru_cache(maxsize=4)
def _cached_sequence(path: Path, stamp: tuple[int, int], body_models: str | None) -> PW3DSequence:
    """:func:`read_sequence`, once per process for consecutive units of one file (``stamp`` = mtime, size)."""
    return read_sequence(path, body_models)


def read_image(root: Path, sequence: str, frame: int) -> tuple[bytes, int, int]:
    """The JPEG bytes of an annotated image and its (width, height) from the header."""
    path = image_path(root, sequence, frame)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise ConversionError(f"3dpw: {path}: image missing for annotated frame {frame} of sequence {sequence} "
                              "(imageFiles.zip not fully extracted?)") from None
    try:
        with Image.open(io.BytesIO(data)) as image:
            fmt, (width, height) = image.format, image.size
    except (UnidentifiedImageError, OSError) as err:
        raise ConversionError(f"3dpw: {path}: not a readable image ({err}); "
                              f"frame {frame} of sequence {sequence}") from None
    if fmt != "JPEG":
        raise ConversionError(f"3dpw: {path}: is {fmt}, expected JPEG; frame {frame} of sequence {sequence}")
    return data, width, height


class PW3DConverter(Converter):
    """3DPW converter; units are up to ``FRAMES_PER_UNIT`` images of one sequence."""

    name = "3dpw"
    splits = ("train", "validation", "test")

    def _sequence_files(self) -> list[Path]:
        """The split's sequence pickles, in key order; raises when the layout as a whole is broken."""
        folder = self.root / "sequenceFiles"
        if not folder.is_dir():
            raise ConversionError(f"3dpw: {folder} does not exist; expected the extracted sequenceFiles.zip "
                                  f"with sequenceFiles/{self.split}/<sequence>.pkl (see docs/datasets/3dpw.md)")
        if not (self.root / "imageFiles").is_dir():
            raise ConversionError(f"3dpw: {self.root / 'imageFiles'} does not exist; expected the extracted "
                                  "imageFiles.zip with imageFiles/<sequence>/image_%05d.jpg")
        files: dict[str, Path] = {}
        for path in sorted(folder.glob(f"**/{self.split}/*.pkl")):
            if path.stem in files:
                raise ConversionError(f"3dpw: sequence {path.stem} is there twice: {files[path.stem]} and {path}; "
                                      "remove one copy")
            files[path.stem] = path
        if not files:
            raise ConversionError(f"3dpw: no {self.split}/<sequence>.pkl under {folder}")
        return sorted(files.values(), key=lambda p: sample_key(p.stem, 0))

    def units(self) -> list[Unit]:
        """Chunks of up to ``FRAMES_PER_UNIT`` images per sequence; an unreadable pickle is one unit that fails."""
        units = []
        for path in self._sequence_files():
            try:
                frames = frame_count(path)
            except ConversionError:  # reported by convert_unit, so --skip-bad can skip just this sequence
                frames = 0
            starts = range(0, frames, FRAMES_PER_UNIT)
            units += [Unit(path.stem, s, min(s + FRAMES_PER_UNIT, frames)) for s in starts] or [Unit(path.stem)]
        return units

    def convert_unit(self, unit: Unit) -> UnitResult:
        """Samples of images ``[unit.start, unit.stop)`` of sequence ``unit.item``."""
        files = {p.stem: p for p in self._sequence_files()}
        if unit.item not in files:
            raise ConversionError(f"3dpw: sequence {unit.item}: its pickle is gone from {self.root / 'sequenceFiles'}")
        path = files[unit.item]
        stat = path.stat()
        body_models = None if self.body_models is None else str(self.body_models)
        seq = _cached_sequence(path, (stat.st_mtime_ns, stat.st_size), body_models)
        stop = unit.stop if unit.stop else len(seq.img_frame_ids)
        return UnitResult([self._sample(seq, frame) for frame in range(unit.start, stop)])

    def _sample(self, seq: PW3DSequence, frame: int) -> Sample:
        image, width, height = read_image(self.root, seq.name, frame)
        campose_valid, detected = seq.campose_valid[:, frame], seq.detected[:, frame]
        people = {
            "betas": seq.betas, "global_orient": seq.global_orient[:, frame], "body_pose": seq.body_pose[:, frame],
            "transl": seq.transl[:, frame], "joints2d": seq.joints2d[:, frame], "joints3d": seq.joints3d[:, frame],
            "bbox": seq.bbox[:, frame], "valid": campose_valid & detected, "kid": np.zeros(len(seq.betas), bool),
        }
        return Sample(
            key=sample_key(seq.name, frame), dataset=self.name, split=self.split, image=image, image_format="jpg",
            width=width, height=height, camera=Camera(K=seq.cam_K, R=seq.cam_R[frame], t=seq.cam_t[frame]),
            body_model="smpl", coords="camera", people=people, genders=seq.genders,
            person_ids=[str(p) for p in range(len(seq.betas))], sequence=seq.name, frame=frame,
            joints2d_format=JOINTS2D_FORMAT, joints3d_format=JOINTS3D_FORMAT,
            flags={"campose_valid": campose_valid, "poses2d_detected": detected},
            synthetic=seq.synthetic_body_model,
            extra={"gender_letters": seq.gender_letters, "img_frame_id": int(seq.img_frame_ids[frame])},
        )

    def source_files(self) -> list[Path]:
        """The split's sequence pickles."""
        return self._sequence_files()
