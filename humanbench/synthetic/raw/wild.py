"""Miniature in-the-wild clips: one synthetic sequence written in every layout the wild converter reads.

Each clip folder under ``ROOT`` holds the same rendered frames in one combination of the raw
layouts of formats.md §6 (see ``CLIP_LAYOUTS`` and ``docs/datasets/wild.md``)::

    HumanNeRF/        images/%06d.png, masks/%06d.png (RGB 0/255), metadata.json (flat poses/betas)
    MonoHuman/        images/%06d.png, masks/%06d.png, metadata.json (nested (1,72) poses, (1,10) betas)
    MonoHuman_pare/   images/img_%04d.png, pare/img_%04d.pkl (plain pickles), masks/0000.png... (RVM alpha)
    PARE_folder/      images/frame%03d.jpg (JPEG), pare_results/frame%03d.pkl (joblib), mask.mp4
    PARE_video/       video.mp4, pare_output.pkl (joblib, two tracks), masks/0000.png... (RVM alpha)

The person is rendered by the synthetic world (neutral SMPL) with the world's own camera; a few
distinct renderings are cycled, each frame moved by a few pixels (its principal point moved alike),
so every frame has its own camera at the cost of rendering only a couple. The PARE-style camera of
each frame is then made up the way a regressor would see the person: a square box around the
projected mesh (1.2 x its larger side), ``f = b / 224 * 5000`` about the box centre, and the body
moved so that its pelvis projects to the same pixel at the same scale (depth scaled by the focal
ratio). The PARE files, ``metadata.json`` and the returned ground truth all use this
camera, so the weak-perspective conversion reproduces PARE's ``smpl_joints2d`` exactly; the rendered
silhouette matches it up to the small perspective difference between the two cameras (about a
pixel). Quirks: ``pose`` as rotation matrices (N,24,3,3), float32 arrays, joblib's format (a pickled
``NumpyArrayWrapper`` followed by raw array bytes, protocol-4 frames, 16-byte alignment); a second,
shorter PARE track and a second detection in folder-mode frame 1 (both must be ignored); frame 3 of
PARE_folder has no result file and frame 2 of PARE_video no detection; RVM alpha with a soft halo
below 128 around the silhouette.
"""

from __future__ import annotations

import io
import itertools
import json
import pickle
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from scipy.spatial.transform import Rotation

from humanbench.schema import decode_image
from humanbench.synthetic.raw.ubody import NeutralWorld, write_video
from humanbench.synthetic.world import WorldConfig

CROP_SIZE = 224.0
CROP_FOCAL = 5000.0
BOX_SCALE = 1.2
PARE_JOINTS = 49


@dataclass(frozen=True)
class ClipLayout:
    """One combination of raw layouts: frames (images/video), SMPL source, masks, item-id pattern, image format."""

    frames: str  # "images" | "video"
    smpl: str  # "metadata" | "metadata_nested" | "pare" | "pare_results" | "pare_output"
    masks: str  # "masks" (named like the frames) | "rvm" | "video"
    item: str = "{:06d}"  # item id of frame position i (video clips always use 6 digits)
    image_format: str = "png"  # "png" | "jpg" (the world's JPEG bytes)
    missing: int | None = None  # frame position without a detection (PARE layouts)


CLIP_LAYOUTS: dict[str, ClipLayout] = {
    "HumanNeRF": ClipLayout("images", "metadata", "masks"),
    "MonoHuman": ClipLayout("images", "metadata_nested", "masks"),
    "MonoHuman_pare": ClipLayout("images", "pare", "rvm", item="img_{:04d}"),
    "PARE_folder": ClipLayout("images", "pare_results", "video", item="frame{:03d}", image_format="jpg", missing=3),
    "PARE_video": ClipLayout("video", "pare_output", "rvm", missing=2),
}


@dataclass(frozen=True)
class WildFrame:
    """Ground truth of one frame of one clip, in the PARE-style camera of the frame."""

    clip: str
    position: int
    item_id: str
    has_smpl: bool  # False for the frame without a detection
    betas: np.ndarray  # (10,)
    global_orient: np.ndarray  # (3,) camera frame
    body_pose: np.ndarray  # (69,)
    transl: np.ndarray  # (3,) camera frame, smplx semantics
    K: np.ndarray  # (3,3)
    pred_cam: np.ndarray  # (3,) s, tx, ty
    bbox: np.ndarray  # (4,) cx, cy, b, b
    joints2d: np.ndarray  # (24,2) SMPL joints projected with K (PARE's smpl_joints2d[:, :24])
    rendered_joints2d: np.ndarray  # (24,2) where the world rendered them
    mask: np.ndarray  # (H,W) bool, the rendered silhouette
    image: Path | None  # the frame file (None in a video)


@dataclass
class WildMiniature:
    """What :func:`write_miniature_wild` wrote, by sample key ``<clip lowercased>-<position:06d>``."""

    root: Path
    size: tuple[int, int]  # width, height
    frames: dict[str, WildFrame] = field(default_factory=dict)

    def clip(self, name: str) -> list[WildFrame]:
        """The frames of one clip in order."""
        return sorted((f for f in self.frames.values() if f.clip == name), key=lambda f: f.position)


# ----------------------------------------------------------------------------- joblib's file format


class _JoblibWriter:
    """Writes ``joblib.dump``'s format without joblib: protocol-4 pickle opcodes, each array as a
    ``joblib.numpy_pickle.NumpyArrayWrapper`` whose frame is closed right after its BUILD, followed by
    a padding-length byte, 0xff padding to an aligned offset and the raw array bytes (Fortran order
    for arrays that are only Fortran-contiguous, C order otherwise)."""

    def __init__(self, alignment: int | None) -> None:
        self.out = bytearray(b"\x80\x04")  # PROTO 4
        self.frame = bytearray()
        self.alignment = alignment

    def _commit(self) -> None:
        if len(self.frame) >= 4:  # as pickle's framer: tiny frames are written without a header
            self.out += b"\x95" + struct.pack("<Q", len(self.frame))
        self.out += self.frame
        self.frame = bytearray()

    def _text(self, text: str) -> None:
        data = text.encode()
        self.frame += b"\x8c" + bytes([len(data)]) + data  # SHORT_BINUNICODE

    def _global(self, module: str, name: str) -> None:
        self._text(module)
        self._text(name)
        self.frame += b"\x93"  # STACK_GLOBAL

    def save(self, obj: Any) -> None:
        """Append ``obj`` (dict, tuple, str, int, bool, None or numeric ndarray)."""
        if isinstance(obj, dict):
            self.frame += b"}("  # EMPTY_DICT MARK
            for key, value in obj.items():
                self.save(key)
                self.save(value)
            self.frame += b"u"  # SETITEMS
        elif isinstance(obj, tuple):
            self.frame += b"("
            for value in obj:
                self.save(value)
            self.frame += b"t"
        elif obj is None or isinstance(obj, bool):
            self.frame += {None: b"N", True: b"\x88", False: b"\x89"}[obj]
        elif isinstance(obj, int):
            self.frame += b"J" + struct.pack("<i", obj)  # BININT
        elif isinstance(obj, str):
            self._text(obj)
        else:
            self._array(np.asarray(obj))

    def _array(self, array: np.ndarray) -> None:
        order = "F" if array.flags.f_contiguous and not array.flags.c_contiguous else "C"  # as joblib decides
        self._global("joblib.numpy_pickle", "NumpyArrayWrapper")
        self.frame += b")\x81}("  # EMPTY_TUPLE NEWOBJ EMPTY_DICT MARK
        self._text("subclass")
        self._global("numpy", "ndarray")
        for key, value in (("shape", tuple(int(n) for n in array.shape)), ("order", order)):
            self.save(key)
            self.save(value)
        self._text("dtype")
        self._global("numpy", "dtype")
        self.save((array.dtype.str[1:], False, True))
        self.frame += b"R"  # REDUCE
        self.save((3, array.dtype.str[0], None, None, None, -1, -1, 0))
        self.frame += b"b"  # BUILD (the dtype's state)
        self.save("allow_mmap")
        self.save(True)
        if self.alignment is not None:
            self.save("numpy_array_alignment_bytes")
            self.save(self.alignment)
        self.frame += b"ub"  # SETITEMS, BUILD (the wrapper)
        self._commit()
        if self.alignment is not None:
            padding = self.alignment - (len(self.out) + 1) % self.alignment
            self.out += bytes([padding]) + b"\xff" * padding
        self.out += array.tobytes(order=order)

    def finish(self) -> bytes:
        """The file's bytes (STOP appended)."""
        self.frame += b"."
        self._commit()
        return bytes(self.out)


def joblib_bytes(obj: Any, *, alignment: int | None = 16) -> bytes:
    """What ``joblib.dump(obj, path)`` (uncompressed) writes for a tree of dicts and arrays.

    ``alignment=None`` gives the files of joblib < 1.2, whose wrappers have no
    ``numpy_array_alignment_bytes`` and whose array bytes follow without padding.
    """
    writer = _JoblibWriter(alignment)
    writer.save(obj)
    return writer.finish()


# ----------------------------------------------------------------------------- cameras


def _project(points: np.ndarray, K: np.ndarray) -> np.ndarray:
    """(N,J,3) camera-frame points with per-frame K (N,3,3) -> (N,J,2) pixels."""
    return points[..., :2] / points[..., 2:3] * np.diagonal(K, axis1=1, axis2=2)[:, None, :2] + K[:, None, :2, 2]


def _pare_camera(vertices: np.ndarray, pelvis: np.ndarray,
                 K_world: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """PARE-style square boxes (N,4) cx,cy,b,b, intrinsics (N,3,3) and translation shifts (N,3) for posed
    vertices (N,V,3) and pelvis (N,3) seen by the cameras ``K_world`` (N,3,3).

    The shift moves the body so that the new camera sees the pelvis at the same pixel and scale:
    ``z' = z f'/f``, ``x' = x + z (c - c')/f``.
    """
    pixels = _project(vertices, K_world)
    low, high = pixels.min(axis=1), pixels.max(axis=1)
    centre, side = (low + high) / 2, BOX_SCALE * (high - low).max(axis=1)
    focal = side / CROP_SIZE * CROP_FOCAL
    K = np.zeros((len(vertices), 3, 3))
    K[:, 0, 0], K[:, 1, 1], K[:, :2, 2], K[:, 2, 2] = focal, focal, centre, 1.0
    depth, world_focal = pelvis[:, 2:3], K_world[:, :1, 0]
    shift = np.concatenate([depth * (K_world[:, :2, 2] - centre) / world_focal,
                            depth * (focal[:, None] / world_focal - 1.0)], axis=1)
    return np.concatenate([centre, side[:, None], side[:, None]], axis=1), K, shift


def _crop_camera(transl: np.ndarray) -> np.ndarray:
    """Inverse of the weak-perspective conversion: translations (N,3) -> pred_cam (N,3) = s, tx, ty."""
    scale = (2 * CROP_FOCAL / transl[:, 2] - 1e-9) / CROP_SIZE
    return np.stack([scale, transl[:, 0], transl[:, 1]], axis=1)


def _orig_cam(pred_cam: np.ndarray, bbox: np.ndarray, width: int, height: int) -> np.ndarray:
    """PARE's ``orig_cam`` (N,4) = sx, sy, tx, ty: the crop camera re-expressed for the whole image."""
    sx, sy = pred_cam[:, 0] * bbox[:, 2] / width, pred_cam[:, 0] * bbox[:, 2] / height
    tx = (bbox[:, 0] - width / 2) / (width / 2) / sx + pred_cam[:, 1]
    ty = (bbox[:, 1] - height / 2) / (height / 2) / sy + pred_cam[:, 2]
    return np.stack([sx, sy, tx, ty], axis=1)


# ----------------------------------------------------------------------------- the rendered sequence


def _shifted(pixels: np.ndarray, offset: tuple[int, int]) -> np.ndarray:
    """(H,W,...) image moved by ``offset`` = (dx, dy) pixels, border pixels repeated into the gap."""
    height, width = pixels.shape[:2]
    rows = np.clip(np.arange(height) - offset[1], 0, height - 1)
    cols = np.clip(np.arange(width) - offset[0], 0, width - 1)
    return pixels[rows][:, cols]


def frame_offset(index: int) -> tuple[int, int]:
    """Image shift (dx, dy) of frame ``index``: distinct for 35 frames, within 3 pixels."""
    return (index * 5) % 7 - 3, (index * 3) % 5 - 2


@dataclass
class _Sequence:
    """Everything the writers need about the N frames, in the PARE-style camera of each frame."""

    pixels: list[np.ndarray]  # N (H,W,3) uint8 RGB
    masks: list[np.ndarray]  # N (H,W) bool
    betas: np.ndarray  # (10,)
    pose: np.ndarray  # (N,72) axis-angle
    transl: np.ndarray  # (N,3)
    K: np.ndarray  # (N,3,3)
    bbox: np.ndarray  # (N,4) cx, cy, b, b
    pred_cam: np.ndarray  # (N,3)
    vertices: np.ndarray  # (N,V,3) without translation
    joints: np.ndarray  # (N,49,3) smplx SMPL joints (45) padded with zeros, without translation
    joints2d: np.ndarray  # (N,49,2) projected with K at transl
    rendered_joints2d: np.ndarray  # (N,24,2) where the world rendered the SMPL joints

    def pare_arrays(self, index: np.ndarray, width: int, height: int, jitter: float = 0.0) -> dict[str, np.ndarray]:
        """PARE-named arrays of frames ``index``; ``jitter`` perturbs them (a bystander)."""
        pose = self.pose[index] + jitter
        pred_cam = self.pred_cam[index] * (1 + jitter)
        bbox = self.bbox[index] + 10 * jitter
        return {"pose": Rotation.from_rotvec(pose.reshape(-1, 3)).as_matrix().reshape(len(index), 24, 3, 3),
                "betas": np.tile(self.betas + jitter, (len(index), 1)), "pred_cam": pred_cam,
                "orig_cam": _orig_cam(pred_cam, bbox, width, height), "bboxes": bbox, "verts": self.vertices[index],
                "joints3d": self.joints[index], "smpl_joints2d": self.joints2d[index],
                "pred_cam_t": self.transl[index]}


def _render(frames: int, rendered: int, size: tuple[int, int], seed: int,
            body_models: str | Path | None) -> _Sequence:
    """``rendered`` distinct world frames of one neutral person, cycled over ``frames`` frames that are each
    moved by :func:`frame_offset` (a pinhole camera with its principal point moved alike), and the
    PARE-style cameras of all frames."""
    world = NeutralWorld(WorldConfig(sequences=1, frames=rendered, max_people=1, width=size[0], height=size[1],
                                     dataset="wild", seed=seed, body_models=body_models))
    cycle = [sample for _, sample in zip(range(frames), itertools.cycle(list(world.sequence(0))))]
    offsets = np.array([frame_offset(i) for i in range(frames)], dtype=np.float64)
    K_world = np.tile(cycle[0].camera.K, (frames, 1, 1))
    K_world[:, :2, 2] += offsets
    people = {name: np.concatenate([s.people[name] for s in cycle]) for name in ("global_orient", "body_pose",
                                                                                "transl", "betas", "joints3d")}
    with torch.no_grad():
        rest = world.model("neutral")(betas=torch.as_tensor(people["betas"]),
                                      global_orient=torch.as_tensor(people["global_orient"]),
                                      body_pose=torch.as_tensor(people["body_pose"]))
    vertices, joints = rest.vertices.numpy(), rest.joints.numpy()
    bbox, K, shift = _pare_camera(vertices + people["transl"][:, None], joints[:, 0] + people["transl"], K_world)
    transl = people["transl"] + shift
    padded = np.concatenate([joints, np.zeros((frames, PARE_JOINTS - joints.shape[1], 3))], axis=1)
    return _Sequence(
        pixels=[_shifted(decode_image(s.image), tuple(o)) for s, o in zip(cycle, offsets.astype(int))],
        masks=[_shifted(decode_image(s.mask) != 0, tuple(o)) for s, o in zip(cycle, offsets.astype(int))],
        betas=people["betas"][0], pose=np.concatenate([people["global_orient"], people["body_pose"]], axis=1),
        transl=transl, K=K, bbox=bbox, pred_cam=_crop_camera(transl), vertices=vertices, joints=padded,
        joints2d=_project(padded + transl[:, None], K), rendered_joints2d=_project(people["joints3d"], K_world))


# ----------------------------------------------------------------------------- writers


def _encoded(pixels: np.ndarray, image_format: str) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG" if image_format == "png" else "JPEG", quality=90)
    return buffer.getvalue()


def _f32(arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    return {name: value.astype(np.float32) for name, value in arrays.items()}


def _metadata(seq: _Sequence, items: list[str], nested: bool) -> dict[str, dict[str, Any]]:
    """HumanNeRF's metadata.json content (MonoHuman's when ``nested``): extrinsics = identity + translation."""
    content = {}
    for index, item in enumerate(items):
        extrinsics = np.eye(4)
        extrinsics[:3, 3] = seq.transl[index]
        poses, betas = seq.pose[index].tolist(), seq.betas.tolist()
        content[item] = {"poses": [poses] if nested else poses, "betas": [betas] if nested else betas,
                         "cam_intrinsics": seq.K[index].tolist(), "cam_extrinsics": extrinsics.tolist()}
    return content


def _write_smpl(folder: Path, layout: ClipLayout, seq: _Sequence, items: list[str], size: tuple[int, int]) -> None:
    """The clip's SMPL source in ``layout.smpl``'s format."""
    width, height = size
    detected = np.array([i for i in range(len(items)) if i != layout.missing])
    if layout.smpl.startswith("metadata"):
        content = _metadata(seq, items, nested=layout.smpl == "metadata_nested")
        (folder / "metadata.json").write_text(json.dumps(content))
    elif layout.smpl == "pare_output":
        track = {**_f32(seq.pare_arrays(detected, width, height)), "joints2d": None, "frame_ids": detected}
        bystander = np.arange(2)
        other = {**_f32(seq.pare_arrays(bystander, width, height, jitter=0.05)), "joints2d": None,
                 "frame_ids": bystander}
        (folder / "pare_output.pkl").write_bytes(joblib_bytes({1: track, 7: other}))
    else:
        (folder / layout.smpl).mkdir()
        for index in detected:
            people = [seq.pare_arrays(np.array([index]), width, height)]
            if index == 1:  # a second detection, which the converter must ignore
                people.append(seq.pare_arrays(np.array([index]), width, height, jitter=0.05))
            arrays = {name: np.concatenate([p[name] for p in people]) for name in people[0]}
            renamed = _f32({"pred_pose": arrays["pose"], "pred_shape": arrays["betas"], "pred_cam": arrays["pred_cam"],
                            "pred_cam_t": arrays["pred_cam_t"], "smpl_vertices": arrays["verts"],
                            "smpl_joints3d": arrays["joints3d"], "smpl_joints2d": arrays["smpl_joints2d"],
                            "bboxes": arrays["bboxes"], "orig_cam": arrays["orig_cam"]})
            data = joblib_bytes(renamed) if layout.smpl == "pare_results" else pickle.dumps(renamed, protocol=4)
            (folder / layout.smpl / f"{items[index]}.pkl").write_bytes(data)


def _white(mask: np.ndarray) -> np.ndarray:
    """(H,W) bool -> (H,W,3) uint8, 255 on the person."""
    return np.repeat(255 * mask[..., None], 3, axis=2).astype(np.uint8)


def _soft_alpha(mask: np.ndarray) -> np.ndarray:
    """(H,W) uint8 alpha like RVM's: 255 on the person, a soft halo of 100 (below the 0.5 threshold) around it."""
    halo = np.zeros(mask.shape, bool)
    for axis in (0, 1):
        halo |= np.roll(mask, 1, axis) | np.roll(mask, -1, axis)
    return np.where(mask, 255, 100 * halo).astype(np.uint8)


def _write_masks(folder: Path, layout: ClipLayout, masks: list[np.ndarray], items: list[str]) -> None:
    """Masks as RGB 0/255 files named like the frames, RVM soft alpha ``0000.png...`` or a mask video."""
    if layout.masks == "video":
        write_video(folder / "mask.mp4", [_white(m) for m in masks])
        return
    (folder / "masks").mkdir()
    for index, (mask, item) in enumerate(zip(masks, items)):
        named = layout.masks == "masks"
        pixels = _white(mask) if named else _soft_alpha(mask)
        (folder / "masks" / (f"{item}.png" if named else f"{index:04d}.png")).write_bytes(_encoded(pixels, "png"))


def _write_clip(root: Path, name: str, layout: ClipLayout, seq: _Sequence, miniature: WildMiniature) -> None:
    """One clip folder and its ground truth."""
    folder = root / name
    folder.mkdir(parents=True)
    frames = len(seq.pixels)
    items = [(layout.item if layout.frames == "images" else "{:06d}").format(i) for i in range(frames)]
    images: list[Path | None] = [None] * frames
    if layout.frames == "video":
        write_video(folder / "video.mp4", seq.pixels)
    else:
        (folder / "images").mkdir()
        for index, pixels in enumerate(seq.pixels):
            images[index] = folder / "images" / f"{items[index]}.{layout.image_format}"
            images[index].write_bytes(_encoded(pixels, layout.image_format))
    _write_smpl(folder, layout, seq, items, miniature.size)
    _write_masks(folder, layout, seq.masks, items)
    for index in range(frames):
        miniature.frames[f"{name.lower()}-{index:06d}"] = WildFrame(
            clip=name, position=index, item_id=items[index], has_smpl=index != layout.missing, betas=seq.betas,
            global_orient=seq.pose[index, :3], body_pose=seq.pose[index, 3:], transl=seq.transl[index],
            K=seq.K[index], pred_cam=seq.pred_cam[index], bbox=seq.bbox[index], joints2d=seq.joints2d[index, :24],
            rendered_joints2d=seq.rendered_joints2d[index], mask=seq.masks[index], image=images[index])


def write_miniature_wild(root: str | Path, *, frames: int = 6, rendered_frames: int = 2,
                         size: tuple[int, int] = (120, 160), seed: int = 0, body_models: str | Path | None = None,
                         clips: dict[str, ClipLayout] | None = None) -> WildMiniature:
    """Write the clips of ``clips`` (default ``CLIP_LAYOUTS``) under ``root``; returns their ground truth.

    Every clip shows the same ``frames`` frames of ``size`` = (width, height) pixels (even, for the
    videos): ``rendered_frames`` distinct renderings (the rasterizer costs about a second a frame on
    two cores) cycled, each frame moved by its own :func:`frame_offset`, so that every frame has its
    own camera. ``body_models``: the SMPL folder (None: $HUMANBENCH_BODY_MODELS or the synthetic
    models); the person is always on the neutral model.
    """
    if frames < 4:
        raise ValueError(f"frames must be at least 4 (the quirks use frames 1 to 3), got {frames}")
    root = Path(root)
    seq = _render(frames, min(rendered_frames, frames), size, seed, body_models)
    miniature = WildMiniature(root, size)
    for name, layout in (CLIP_LAYOUTS if clips is None else clips).items():
        _write_clip(root, name, layout, seq, miniature)
    return miniature
