"""ZJU-MoCap (Neural Body release) as downloaded -> schema samples, one per (frame, camera).

Raw layout (formats.md §5, see docs/datasets/zju-mocap.md)::

    ROOT/CoreView_<id>/annots.npy                np.save of a dict: cams {K, R, T (mm), D (5,1)}, ims [...]
    ROOT/CoreView_<id>/Camera_B<k>/%06d.jpg       377..394: 23 cameras, 0-based frames
    ROOT/CoreView_<id>/Camera (<k>)/CoreView_<id>_Camera_(<k>)_<FFFF>_<time>.jpg   313, 315: 21 cameras, 1-based
    ROOT/CoreView_<id>/mask/<image path>.png, mask_cihp/<image path>.png
    ROOT/CoreView_<id>/params/<i>.npy, new_params/<i>.npy, vertices/<i>.npy

``annots.npy`` and the params files are pickles inside an npy container: the header is parsed by
numpy's format reader and the payload goes through the restricted unpickler, never
``np.load(allow_pickle=True)``. Samples are in the WORLD frame (``coords="world"``): the stored
JPEG is the original, distorted image, with ``cam_dist`` = the camera's D; ``cam_t`` is ``T`` in
metres. EasyMocap's ``Rh``/``Th`` rotate the posed body about the world origin; they are kept in
``rh``/``th`` and converted to smplx semantics: ``global_orient = R(Rh) R(poses[:3])`` and
``transl = R(Rh) J0 + Th - J0`` with ``J0`` the rest pelvis of the neutral SMPL at ``shapes``. The
single schema mask holds both raw masks as bits (1: ``mask``, 2: ``mask_cihp``), so it is non-zero
on their union. The split (:mod:`humanbench.loaders.zju_splits`) picks subjects, views, frames and
the SMPL folder (``params/`` fitted without pose blend shapes, or ``new_params/``).
"""

from __future__ import annotations

import io
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from scipy.spatial.transform import Rotation

from humanbench.bodymodels import BodyModel, PickleLoadError, load_body_model
from humanbench.bodymodels.safe_pickle import loads_pickle_restricted
from humanbench.loaders.base import ConversionError, Converter, Unit, UnitResult
from humanbench.loaders.zju_splits import SPLITS, Split
from humanbench.schema import Camera, Sample

FRAMES_PER_UNIT = 64
NUM_VERTICES = 6890
MM_PER_METRE = 1000.0
MASK_BITS = {"mask": 1, "mask_cihp": 2}
"""Bit of each raw mask in the stored mask PNG (pixel non-zero in that mask)."""
PARAM_SIZES = {"poses": 72, "shapes": 10, "Rh": 3, "Th": 3}
"""Values per frame of each key of ``params/<i>.npy`` (stored (1,n) or (n,))."""
_B_CAMERA = re.compile(r"^Camera_B(\d+)$")
_PARENTHESIS_CAMERA = re.compile(r"^Camera \((\d+)\)$")
_B_IMAGE = re.compile(r"^(\d+)\.jpg$")
_PARENTHESIS_IMAGE = re.compile(r"^CoreView_\d+_Camera_\(\d+\)_(\d{4})_.+\.jpg$")
_SUBJECT_FOLDER = re.compile(r"^CoreView_\d+$")


def sample_key(subject: str, camera: int, frame: int) -> str:
    """``<subject lowercased>-b<camera number:02d>-<frame:06d>``, e.g. ``coreview_377-b01-000000``."""
    return f"{subject.lower()}-b{camera:02d}-{frame:06d}"


@dataclass(frozen=True)
class View:
    """One calibrated camera of a subject: its position in annots.npy's lists and its folder."""

    index: int  # 0-based position in annots['cams'][...] and annots['ims'][f]['ims']: the splits' view index
    number: int  # k of Camera_Bk / Camera (k)
    folder: str
    K: np.ndarray  # (3,3)
    D: np.ndarray  # (5,) k1, k2, p1, p2, k3
    R: np.ndarray  # (3,3) world -> camera
    t: np.ndarray  # (3,) metres


@dataclass(frozen=True)
class Subject:
    """The cameras and image list of one subject's annots.npy."""

    name: str
    folder: Path
    views: tuple[View, ...]  # (C,) annots order
    images: tuple[tuple[str, ...], ...]  # (F,C) image paths relative to the subject folder
    params_index: tuple[int, ...]  # (F,) the <i> of params/<i>.npy, from the image names

    @property
    def num_frames(self) -> int:
        """F, the number of annotated frames."""
        return len(self.images)


def without_pose_blend_shapes(model: BodyModel) -> BodyModel:
    """Zero ``model``'s pose blend shapes (``posedirs``) in place and return it.

    ``params/`` (and ``vertices/``) were fitted with such a model; feed the samples of a split
    that reads ``params/`` to it to reproduce the release's meshes. ``new_params/`` need the
    unchanged model.
    """
    model.smplx_model.posedirs.zero_()
    return model


# ----------------------------------------------------------------------------- raw files

def _fail(path: Path, problem: str, where: str) -> ConversionError:
    return ConversionError(f"zju-mocap: {path}: {problem} ({where})")


def read_pickled_npy(path: Path, what: str, where: str) -> Any:
    """The object ``np.save`` stored in ``path`` (a 0-d object array), through the restricted unpickler."""
    try:
        with path.open("rb") as file:
            version = np.lib.format.read_magic(file)
            if version not in ((1, 0), (2, 0)):
                raise ValueError(f"npy format version {version} is not one np.save writes for pickles")
            header = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                      else np.lib.format.read_array_header_2_0)(file)
            payload = file.read()
    except FileNotFoundError:
        raise _fail(path, f"missing; expected {what}", where) from None
    except (ValueError, OSError, EOFError) as err:
        raise _fail(path, f"not a readable .npy file ({err}); expected {what}", where) from None
    shape, _, dtype = header
    if dtype != np.dtype(object) or shape != ():
        raise _fail(path, f"holds a {dtype} array of shape {shape}; expected {what} saved with np.save", where)
    try:
        array = loads_pickle_restricted(payload, source=str(path), expected=what)
    except PickleLoadError as err:
        raise ConversionError(f"zju-mocap: {err} ({where})") from None
    if not isinstance(array, np.ndarray) or array.shape != ():
        raise _fail(path, f"holds a {type(array).__name__}; expected {what}", where)
    return array.item()


def _matrices(path: Path, cams: dict, key: str, shape: tuple[int, ...], where: str) -> np.ndarray:
    """``cams[key]`` as a (C,*shape) float64 array of finite numbers."""
    try:
        array = np.asarray(cams[key], dtype=np.float64)
    except KeyError:
        raise _fail(path, f"key 'cams/{key}' is missing; expected cams with K, R, T, D", where) from None
    except (ValueError, TypeError) as err:
        raise _fail(path, f"'cams/{key}' is not a list of numeric arrays ({err})", where) from None
    if array.ndim != len(shape) + 1 or array.shape[1:] != shape or not np.all(np.isfinite(array)):
        raise _fail(path, f"'cams/{key}' has shape {array.shape}; expected C finite arrays of shape {shape}", where)
    return array


def _camera_number(path: Path, folder: str, where: str) -> int:
    match = _B_CAMERA.match(folder) or _PARENTHESIS_CAMERA.match(folder)
    if match is None:
        raise _fail(path, f"camera folder {folder!r} is neither 'Camera_B<k>' nor 'Camera (<k>)'", where)
    return int(match.group(1))


def _params_index(path: Path, name: str, where: str) -> int:
    """``<i>`` of the params file of an image: ``000012.jpg`` -> 12, ``..._Camera_(1)_0013_<time>.jpg`` -> 13."""
    match = _B_IMAGE.match(name) or _PARENTHESIS_IMAGE.match(name)
    if match is None:
        raise _fail(path, f"image name {name!r} is neither '%06d.jpg' nor 'CoreView_<id>_Camera_(<k>)_<FFFF>_"
                          "<time>.jpg'", where)
    return int(match.group(1))


def _image_table(path: Path, ims: Any, cameras: int, where: str) -> tuple[tuple[str, ...], ...]:
    """``annots['ims']`` as (F,C) relative image paths."""
    if not isinstance(ims, (list, tuple)) or not ims:
        raise _fail(path, "key 'ims' must be a non-empty list with one {'ims': [paths]} per frame", where)
    table = []
    for frame, entry in enumerate(ims):
        paths = entry.get("ims") if isinstance(entry, dict) else None
        paths = [] if paths is None else [str(p) for p in np.asarray(paths).reshape(-1)]
        if len(paths) != cameras:
            raise _fail(path, f"'ims' of frame {frame} lists {len(paths)} images; expected one per camera "
                              f"({cameras})", where)
        table.append(tuple(paths))
    return tuple(table)


def read_subject(folder: Path) -> Subject:
    """Read and check ``folder/annots.npy``: cameras (T in metres) and the image table."""
    path, where = folder / "annots.npy", f"subject {folder.name}"
    annots = read_pickled_npy(path, "the annots dict with keys 'cams' and 'ims'", where)
    if not isinstance(annots, dict) or not isinstance(annots.get("cams"), dict) or "ims" not in annots:
        raise _fail(path, "expected a dict with keys 'cams' (K, R, T, D) and 'ims'", where)
    cams = annots["cams"]
    K, R = _matrices(path, cams, "K", (3, 3), where), _matrices(path, cams, "R", (3, 3), where)
    T, D = _matrices(path, cams, "T", (3, 1), where), _matrices(path, cams, "D", (5, 1), where)
    if not len(K) == len(R) == len(T) == len(D):
        raise _fail(path, f"cams K, R, T, D list {len(K)}, {len(R)}, {len(T)}, {len(D)} cameras", where)
    images = _image_table(path, annots["ims"], len(K), where)
    folders = [p.split("/")[0] for p in images[0]]
    for frame, paths in enumerate(images):
        if [p.split("/")[0] for p in paths] != folders:
            raise _fail(path, f"frame {frame} lists its cameras in other folders than frame 0", where)
    views = tuple(View(c, _camera_number(path, name, where), name, K[c], D[c, :, 0], R[c], T[c, :, 0] / MM_PER_METRE)
                  for c, name in enumerate(folders))
    if len({v.number for v in views}) != len(views):
        raise _fail(path, f"camera folders {folders} repeat a camera number", where)
    index = tuple(_params_index(path, paths[0].split("/")[-1], f"{where}, frame {f}") for f, paths in enumerate(images))
    return Subject(folder.name, folder, views, images, index)


@lru_cache(maxsize=4)
def _cached_subject(folder: Path, stamp: tuple[int, int]) -> Subject:
    """:func:`read_subject`, once per process for consecutive units (``stamp`` = annots mtime, size)."""
    return read_subject(folder)


def _param_array(path: Path, params: dict, key: str, where: str) -> np.ndarray:
    size = PARAM_SIZES[key]
    try:
        array = np.asarray(params[key], dtype=np.float64)
    except KeyError:
        raise _fail(path, f"key {key!r} is missing; a params file has {list(PARAM_SIZES)}", where) from None
    except (ValueError, TypeError) as err:
        raise _fail(path, f"key {key!r} is not numeric ({err})", where) from None
    if array.shape not in ((1, size), (size,)) or not np.all(np.isfinite(array)):
        raise _fail(path, f"key {key!r} has shape {array.shape}; expected (1, {size}) finite numbers", where)
    return array.reshape(size)


def read_params(path: Path, where: str) -> dict[str, np.ndarray]:
    """One ``params/<i>.npy`` dict as flat float64 arrays: poses (72,), shapes (10,), Rh (3,), Th (3,)."""
    params = read_pickled_npy(path, f"an SMPL parameter dict with keys {list(PARAM_SIZES)}", where)
    if not isinstance(params, dict):
        raise _fail(path, f"holds a {type(params).__name__}; expected a dict with keys {list(PARAM_SIZES)}", where)
    return {key: _param_array(path, params, key, where) for key in PARAM_SIZES}


@lru_cache(maxsize=2)
def _pelvis_map(body_models: str | None) -> tuple[np.ndarray, np.ndarray, bool]:
    """``J0(betas) = base + dirs @ betas``: base (3,), dirs (3,10) of the neutral SMPL (EasyMocap's model), and
    whether that model is synthetic.

    The pelvis row of the model's ``J_regressor`` applied to its shaped template
    ``v_template + shapedirs · betas``: the linear map smplx computes the rest joints with.
    """
    model = load_body_model("smpl", "neutral", root=body_models, dtype=torch.float64)
    smpl = model.smplx_model
    row = smpl.J_regressor[0]
    return (row @ smpl.v_template).numpy(), torch.einsum("v,vcb->cb", row, smpl.shapedirs).numpy(), model.synthetic


def rest_pelvis(shapes: np.ndarray, body_models: str | None) -> tuple[np.ndarray, bool]:
    """Rest-pose pelvis J0 (N,3) of the neutral SMPL at ``shapes`` (N,10), and whether the model is synthetic."""
    base, dirs, synthetic = _pelvis_map(body_models)
    return base + shapes @ dirs.T, synthetic


def to_smplx(poses: np.ndarray, Rh: np.ndarray, Th: np.ndarray, pelvis: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """EasyMocap (N,72), (N,3), (N,3) with rest pelvis (N,3) -> smplx world ``global_orient``, ``transl`` (N,3).

    ``V = R(Rh) (R(p0) (x - J0) + J0) + Th = R_go (x - J0) + J0 + transl`` with ``R_go = R(Rh) R(p0)``
    and ``transl = R(Rh) J0 + Th - J0``.
    """
    rotation = Rotation.from_rotvec(Rh)
    orient = (rotation * Rotation.from_rotvec(poses[:, :3])).as_rotvec()
    return orient, rotation.apply(pelvis) + Th - pelvis


def read_image(path: Path, where: str) -> tuple[bytes, int, int]:
    """The original JPEG bytes of an image and its (width, height) from the header."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise _fail(path, "image missing for an annotated frame", where) from None
    try:
        with Image.open(io.BytesIO(data)) as image:
            fmt, (width, height) = image.format, image.size
    except (UnidentifiedImageError, OSError) as err:
        raise _fail(path, f"not a readable image ({err})", where) from None
    if fmt != "JPEG":
        raise _fail(path, f"is {fmt}, expected JPEG", where)
    return data, width, height


def read_mask(path: Path, size: tuple[int, int], where: str) -> np.ndarray:
    """(H,W) bool: pixels != 0 of a mask PNG (channel 0 of a colour PNG, as HumanNeRF reads it)."""
    try:
        with Image.open(path) as image:
            array = np.asarray(image)
    except FileNotFoundError:
        raise _fail(path, "mask missing for an annotated image", where) from None
    except (UnidentifiedImageError, OSError) as err:
        raise _fail(path, f"not a readable mask image ({err})", where) from None
    array = array[..., 0] if array.ndim == 3 else array
    if array.shape != size[::-1]:
        raise _fail(path, f"mask is {array.shape[1]}x{array.shape[0]}; the image is {size[0]}x{size[1]}", where)
    return array != 0


def encode_mask(mask: np.ndarray, cihp: np.ndarray) -> bytes:
    """Single-channel PNG with ``MASK_BITS``: 1 where ``mask`` (H,W) is set, 2 where ``cihp`` (H,W) is."""
    buf = io.BytesIO()
    values = mask * MASK_BITS["mask"] + cihp * MASK_BITS["mask_cihp"]
    Image.fromarray(values.astype(np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


def read_vertices(path: Path, where: str) -> np.ndarray:
    """(6890,3) float64 world-frame vertices of ``vertices/<i>.npy`` (numeric npy, never unpickled)."""
    try:
        array = np.load(path, allow_pickle=False)
    except FileNotFoundError:
        raise _fail(path, "vertices missing for an annotated frame (vertices/ is there)", where) from None
    except (ValueError, OSError, EOFError) as err:
        raise _fail(path, f"not a numeric .npy array ({err})", where) from None
    if array.shape != (NUM_VERTICES, 3) or array.dtype.kind != "f" or not np.all(np.isfinite(array)):
        raise _fail(path, f"holds {array.dtype} {array.shape}; expected ({NUM_VERTICES}, 3) finite floats", where)
    return array.astype(np.float64)


# ----------------------------------------------------------------------------- converter

@dataclass(frozen=True)
class _Frames:
    """Converted SMPL of N frames of one subject (world frame, smplx semantics)."""

    shapes: np.ndarray  # (N,10)
    poses: np.ndarray  # (N,72)
    rh: np.ndarray  # (N,3)
    th: np.ndarray  # (N,3)
    global_orient: np.ndarray  # (N,3)
    transl: np.ndarray  # (N,3)
    vertices: np.ndarray | None  # (N,6890,3) from vertices/, for params/ only
    synthetic: bool


class ZJUMocapConverter(Converter):
    """ZJU-MoCap converter; units are up to ``FRAMES_PER_UNIT`` selected frames of one camera of one subject."""

    name = "zju-mocap"
    splits = tuple(SPLITS)

    @property
    def spec(self) -> Split:
        """The split definition (:mod:`humanbench.loaders.zju_splits`)."""
        return SPLITS[self.split]

    def _subject_names(self) -> list[str]:
        """The split's subjects (``all``: every ``CoreView_<id>`` folder), in key order."""
        found = sorted(p.name for p in self.root.iterdir() if p.is_dir() and _SUBJECT_FOLDER.match(p.name))
        if not found:
            raise ConversionError(f"zju-mocap: no CoreView_<id> folder in {self.root}; expected the extracted "
                                  "download with ROOT/CoreView_377/annots.npy ... (see docs/datasets/zju-mocap.md)")
        names = found if self.spec.subjects is None else list(self.spec.subjects)
        return sorted(names, key=str.lower)

    def _subject(self, name: str) -> Subject:
        folder = self.root / name
        if not folder.is_dir():
            raise ConversionError(f"zju-mocap: {folder} does not exist; split {self.split!r} uses subjects "
                                  f"{self._subject_names()}")
        annots = folder / "annots.npy"
        stamp = annots.stat() if annots.exists() else None
        return _cached_subject(folder, (stamp.st_mtime_ns, stamp.st_size) if stamp else (0, 0))

    def _plan(self, subject: Subject) -> list[tuple[View, list[int]]]:
        """The split's views of ``subject`` (by camera number) with their frames; empty when no frame is selected."""
        selection = self.spec.selection(subject.name)
        try:
            views = selection.views.select(len(subject.views))
        except ValueError as err:
            raise ConversionError(f"zju-mocap: {subject.folder / 'annots.npy'}: split {self.split!r} needs {err} "
                                  f"(subject {subject.name})") from None
        frames = list(selection.frames.select(subject.num_frames))
        ordered = sorted((subject.views[i] for i in views), key=lambda v: v.number)
        return [(view, frames) for view in ordered] if frames else []

    def units(self) -> list[Unit]:
        """Chunks of selected frames per subject and camera; an unreadable subject is one unit that fails."""
        units = []
        for name in self._subject_names():
            try:
                subject = self._subject(name)
                plan = self._plan(subject)
            except ConversionError:  # reported by convert_unit, so --skip-bad can skip just this subject
                units.append(Unit(name))
                continue
            for view, frames in plan:
                for start in range(0, len(frames), FRAMES_PER_UNIT):
                    chunk = frames[start:start + FRAMES_PER_UNIT]
                    units.append(Unit(f"{name}/{view.folder}", chunk[0], chunk[-1] + 1))
        return units

    def convert_unit(self, unit: Unit) -> UnitResult:
        """Samples of the unit's camera and frames ``[start, stop)``; a bare subject unit converts all of it."""
        name, _, folder = unit.item.partition("/")
        subject = self._subject(name)
        samples = []
        for view, frames in self._plan(subject):
            if folder and view.folder != folder:
                continue
            chosen = [f for f in frames if not folder or unit.start <= f < unit.stop]
            if chosen:
                params = self._frames(subject, chosen)
                samples += [self._sample(subject, view, frame, params, n) for n, frame in enumerate(chosen)]
        return UnitResult(samples)

    def _frames(self, subject: Subject, frames: list[int]) -> _Frames:
        """Read and convert the SMPL parameters (and vertices) of ``frames``, vectorised."""
        folder = subject.folder / self.spec.params
        where = [f"subject {subject.name}, frame {f}" for f in frames]
        raw = [read_params(folder / f"{subject.params_index[f]}.npy", w) for f, w in zip(frames, where)]
        stacked = {key: np.stack([r[key] for r in raw]) for key in PARAM_SIZES}
        body_models = None if self.body_models is None else str(self.body_models)
        pelvis, synthetic = rest_pelvis(stacked["shapes"], body_models)
        orient, transl = to_smplx(stacked["poses"], stacked["Rh"], stacked["Th"], pelvis)
        vertex_folder = subject.folder / "vertices"
        vertices = None
        if self.spec.params == "params" and vertex_folder.is_dir():
            vertices = np.stack([read_vertices(vertex_folder / f"{subject.params_index[f]}.npy", w)
                                 for f, w in zip(frames, where)])
        return _Frames(stacked["shapes"], stacked["poses"], stacked["Rh"], stacked["Th"], orient, transl, vertices,
                       synthetic)

    def _sample(self, subject: Subject, view: View, frame: int, params: _Frames, n: int) -> Sample:
        relative = subject.images[frame][view.index]
        where = f"subject {subject.name}, camera {view.folder}, frame {frame}"
        image, width, height = read_image(subject.folder / relative, where)
        mask_name = str(Path(relative).with_suffix(".png"))
        masks = [read_mask(subject.folder / kind / mask_name, (width, height), where) for kind in MASK_BITS]
        people = {
            "betas": params.shapes[n][None], "global_orient": params.global_orient[n][None],
            "body_pose": params.poses[n, 3:][None], "transl": params.transl[n][None], "rh": params.rh[n][None],
            "th": params.th[n][None], "valid": np.ones(1, bool), "kid": np.zeros(1, bool),
        }
        if params.vertices is not None:
            people["vertices"] = params.vertices[n][None]
        return Sample(
            key=sample_key(subject.name, view.number, frame), dataset=self.name, split=self.split, image=image,
            image_format="jpg", width=width, height=height, camera=Camera(K=view.K, R=view.R, t=view.t, dist=view.D),
            body_model="smpl", coords="world", people=people, genders=["neutral"], person_ids=["0"],
            sequence=subject.name, frame=frame, camera_name=view.folder, mask=encode_mask(*masks),
            synthetic=params.synthetic,
            extra={"view": view.index, "image_path": relative, "params": self.spec.params,
                   "params_index": subject.params_index[frame], "pose_blend_shapes": self.spec.params == "new_params",
                   "mask_bits": MASK_BITS},
        )

    def source_files(self) -> list[Path]:
        """annots.npy and the SMPL folder the split reads, of every subject on disk (images and vertices not hashed)."""
        folders = [self.root / name for name in self._subject_names()]
        return [path for folder in folders for path in (folder / "annots.npy", folder / self.spec.params)
                if path.exists()]
