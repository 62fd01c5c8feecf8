"""Miniature ZJU-MoCap (Neural Body release) in the layout of the download, with a synthetic person.

Written layout per subject (formats.md §5.1-5.4)::

    ROOT/CoreView_377/annots.npy                  np.save of {'cams': {K, R, T (mm), D (5,1)}, 'ims': [...]}
    ROOT/CoreView_377/Camera_B1/000000.jpg ...    23 cameras, 6-digit 0-based frame numbers
    ROOT/CoreView_377/mask/Camera_B1/000000.png, mask_cihp/Camera_B1/000000.png
    ROOT/CoreView_377/params/0.npy, new_params/0.npy, vertices/0.npy        0-based
    ROOT/CoreView_313/Camera (1)/CoreView_313_Camera_(1)_0001_2019-08-23_16-08-50.592.jpg ...
    ROOT/CoreView_313/params/1.npy ...           313 and 315: 21 cameras, 1-based 4-digit numbers

The person follows EasyMocap's model: world vertices ``V = R(Rh) · SMPL(poses, shapes) + Th``, the
neutral SMPL posed with ``poses[:3]`` about its rest pelvis and no translation, then rotated about
the world ORIGIN by ``Rh``. The world is z-up (``Rh`` stands the y-up body up). ``new_params`` are
the "refit" rendered in the images (with pose blend shapes); ``params`` are a slightly different
"older fit" whose vertices, ``vertices/``, are computed WITHOUT pose blend shapes, as the release's
are. Cameras stand on a ring around the person; each image is rendered undistorted on a padded
canvas and resampled through the camera's OpenCV distortion ``D`` (k1, k2, p1, p2, k3), so the
stored JPEG and masks are distorted like the real ones. ``mask/`` (0/255) is the silhouette grown
by one pixel with the right foot cut out, ``mask_cihp/`` CIHP part labels on the silhouette with the
left hand missing: the two differ slightly both ways, and their union, the grown silhouette, is
what HumanNeRF uses.
"""

from __future__ import annotations

import datetime
import io
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from PIL import Image
from scipy.spatial.transform import Rotation

from humanbench.bodymodels import BodyModel, load_body_model
from humanbench.synthetic.motion import MOTIONS, sample_motion
from humanbench.synthetic.raster import rasterize, shade
from humanbench.synthetic.world import PART_MATERIAL

PARENTHESIS_SUBJECTS = ("CoreView_313", "CoreView_315")
"""Subjects with ``Camera (k)`` folders, timestamped 1-based image names and 1-based params."""
CAMERA_NUMBERS = tuple(range(1, 24))
PARENTHESIS_CAMERA_NUMBERS = (*range(1, 20), 22, 23)
"""313/315 have 21 calibrated cameras; Camera (20) and (21) are reported missing (formats.md §5.1)."""
SMPL_TO_CIHP = np.array([9, 9, 9, 5, 16, 17, 5, 18, 19, 5, 18, 19, 10, 5, 5, 13, 14, 15, 14, 15, 14, 15, 3, 3])
"""CIHP label (5 upper clothes, 9 pants, 13 face, 14/15 arms, 16/17 legs, 18/19 shoes, ...) of each SMPL part."""
LEFT_HAND, RIGHT_FOOT = 22, 11
FIRST_TIMESTAMP = datetime.datetime(2019, 8, 23, 16, 8, 50, 592000)
_UNDISTORT_ITERATIONS = 40


@dataclass(frozen=True)
class CameraRig:
    """C calibrated cameras, world -> camera, metres (annots.npy stores ``T`` in millimetres)."""

    numbers: tuple[int, ...]  # (C,) k of Camera_Bk / Camera (k)
    K: np.ndarray  # (C,3,3)
    D: np.ndarray  # (C,5) k1, k2, p1, p2, k3
    R: np.ndarray  # (C,3,3)
    t: np.ndarray  # (C,3) metres


@dataclass(frozen=True)
class Fit:
    """EasyMocap SMPL parameters of F frames (as stored, float32 values) and the world vertices they give."""

    poses: np.ndarray  # (F,72)
    shapes: np.ndarray  # (F,10)
    Rh: np.ndarray  # (F,3)
    Th: np.ndarray  # (F,3) metres
    vertices: np.ndarray  # (F,V,3) world frame

    def frame(self, index: int) -> dict[str, np.ndarray]:
        """The ``params/<i>.npy`` dict of frame ``index``: (1,72), (1,10), (1,3), (1,3) float32."""
        arrays = {"poses": self.poses, "shapes": self.shapes, "Rh": self.Rh, "Th": self.Th}
        return {key: value[index][None].astype(np.float32) for key, value in arrays.items()}


@dataclass(frozen=True)
class SubjectTruth:
    """Everything written for one subject, by annots position: frame f (0-based), view c."""

    name: str
    rig: CameraRig
    params: Fit  # params/: no pose blend shapes; its vertices are vertices/
    new_params: Fit  # new_params/: with pose blend shapes; rendered in the images
    params_index: tuple[int, ...]  # (F,) the <i> of params/<i>.npy
    images: tuple[tuple[str, ...], ...]  # (F,C) paths relative to the subject folder
    mask: np.ndarray  # (F,C,H,W) bool, mask/ != 0
    cihp: np.ndarray  # (F,C,H,W) uint8 CIHP labels of mask_cihp/

    def key(self, view: int, frame: int) -> str:
        """Sample key ``coreview_377-b01-000000`` of annots view ``view`` and frame ``frame``."""
        return f"{self.name.lower()}-b{self.rig.numbers[view]:02d}-{frame:06d}"


@dataclass
class GroundTruth:
    """What :func:`write_miniature_zju` wrote, by subject name."""

    subjects: dict[str, SubjectTruth] = field(default_factory=dict)


def _camera_numbers(subject: str, cameras: int | None) -> tuple[int, ...]:
    numbers = PARENTHESIS_CAMERA_NUMBERS if subject in PARENTHESIS_SUBJECTS else CAMERA_NUMBERS
    return numbers[:cameras]


def image_path(subject: str, camera: int, frame: int) -> str:
    """Path of frame ``frame`` (0-based) of camera number ``camera``, relative to the subject folder."""
    if subject not in PARENTHESIS_SUBJECTS:
        return f"Camera_B{camera}/{frame:06d}.jpg"
    stamp = FIRST_TIMESTAMP + datetime.timedelta(milliseconds=frame * 40 + 3 * camera)
    name = f"{subject}_Camera_({camera})_{frame + 1:04d}_{stamp:%Y-%m-%d_%H-%M-%S}.{stamp.microsecond // 1000:03d}"
    return f"Camera ({camera})/{name}.jpg"


def params_index(subject: str, frame: int) -> int:
    """The ``<i>`` of ``params/<i>.npy`` for frame ``frame`` (0-based): 1-based for 313 and 315."""
    return frame + 1 if subject in PARENTHESIS_SUBJECTS else frame


def _world_vertices(model: BodyModel, poses: np.ndarray, shapes: np.ndarray, Rh: np.ndarray,
                    Th: np.ndarray) -> np.ndarray:
    """EasyMocap's ``R(Rh) · SMPL(poses, shapes) + Th``: (F,72), (F,10), (F,3), (F,3) -> (F,V,3)."""
    with torch.no_grad():
        local = model(betas=torch.as_tensor(shapes, dtype=torch.float64),
                      global_orient=torch.as_tensor(poses[:, :3], dtype=torch.float64),
                      body_pose=torch.as_tensor(poses[:, 3:], dtype=torch.float64)).vertices.numpy()
    return np.einsum("fij,fvj->fvi", Rotation.from_rotvec(Rh).as_matrix(), local) + Th[:, None]


def _fit(model: BodyModel, poses: np.ndarray, shapes: np.ndarray, Rh: np.ndarray, Th: np.ndarray) -> Fit:
    """A :class:`Fit` of values rounded to float32 (as stored) and the vertices of those stored values."""
    stored = [np.asarray(a, np.float32).astype(np.float64) for a in (poses, shapes, Rh, Th)]
    return Fit(*stored, vertices=_world_vertices(model, *stored))


def _fits(models: tuple[BodyModel, BodyModel], frames: int, rng: np.random.Generator) -> tuple[Fit, Fit]:
    """The refit (``new_params``, posed by ``models[0]``) and the older fit (``params``, by ``models[1]``)."""
    shapes = np.tile(rng.normal(scale=0.8, size=10), (frames, 1))
    with torch.no_grad():
        rest = models[0](betas=torch.as_tensor(shapes[:1])).vertices[0].numpy()
    body = sample_motion(str(rng.choice(sorted(MOTIONS))), frames, rng).reshape(frames, -1)
    poses = np.concatenate([rng.normal(scale=0.15, size=(frames, 3)), body], axis=1)
    yaw = rng.uniform(-np.pi, np.pi) + 0.05 * np.arange(frames)
    Rh = (Rotation.from_euler("z", yaw[:, None]) * Rotation.from_euler("x", np.pi / 2)).as_rotvec()
    Th = np.array([*rng.uniform(-0.4, 0.4, 2), -rest[:, 1].min()]) + rng.normal(scale=0.02, size=(frames, 3))
    refit = _fit(models[0], poses, shapes, Rh, Th)
    older = _fit(models[1], poses + rng.normal(scale=0.02, size=poses.shape), shapes,
                 Rh + rng.normal(scale=0.01, size=Rh.shape), Th + rng.normal(scale=0.005, size=Th.shape))
    return refit, older


def _look_at(position: np.ndarray, target: np.ndarray) -> np.ndarray:
    """World -> camera rotation (3,3) of an OpenCV camera at ``position`` looking at ``target``, z-up world."""
    forward = (target - position) / np.linalg.norm(target - position)
    right = np.cross(forward, [0.0, 0.0, 1.0])
    right /= np.linalg.norm(right)
    return np.stack([right, np.cross(forward, right), forward])


def _rig(numbers: tuple[int, ...], centre: np.ndarray, size: tuple[int, int], rng: np.random.Generator) -> CameraRig:
    """Cameras on a ring of radius ~3 m around ``centre`` (3,), with intrinsics and distortion for ``size``."""
    count = len(numbers)
    width, height = size
    angle = 2 * np.pi * np.arange(count) / count + rng.uniform(-0.1, 0.1, count)
    radius, lift = rng.uniform(2.8, 3.2, count), rng.uniform(-0.2, 0.6, count)
    positions = centre + np.stack([radius * np.cos(angle), radius * np.sin(angle), lift], axis=1)
    R = np.stack([_look_at(p, centre + rng.normal(scale=0.05, size=3)) for p in positions])
    focal = 1.15 * height * rng.uniform(0.97, 1.03, (count, 2))
    K = np.zeros((count, 3, 3))
    K[:, 0, 0], K[:, 1, 1], K[:, 2, 2] = focal[:, 0], focal[:, 1], 1.0
    K[:, :2, 2] = np.array([width, height]) / 2 + rng.normal(scale=0.02 * height, size=(count, 2))
    D = np.stack([rng.uniform(-0.3, -0.1, count), rng.uniform(0.0, 0.12, count), rng.uniform(-2e-3, 2e-3, count),
                  rng.uniform(-2e-3, 2e-3, count), rng.uniform(-0.02, 0.02, count)], axis=1)
    return CameraRig(numbers, K, D, R, -np.einsum("cij,cj->ci", R, positions))


def _lens_terms(points: np.ndarray, D: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """OpenCV radial factor (...,) and tangential offset (...,2) at normalized points (...,2), D = (k1, k2, p1, p2, k3)."""
    k1, k2, p1, p2, k3 = D
    x, y = points[..., 0], points[..., 1]
    r2 = x * x + y * y
    tangential = np.stack([2 * p1 * x * y + p2 * (r2 + 2 * x * x), p1 * (r2 + 2 * y * y) + 2 * p2 * x * y], axis=-1)
    return 1 + r2 * (k1 + r2 * (k2 + r2 * k3)), tangential


def distort_normalized(points: np.ndarray, D: np.ndarray) -> np.ndarray:
    """OpenCV lens distortion of normalized image points (...,2)."""
    radial, tangential = _lens_terms(points, D)
    return points * radial[..., None] + tangential


def undistort_normalized(points: np.ndarray, D: np.ndarray) -> np.ndarray:
    """Invert :func:`distort_normalized` (...,2) by fixed-point iteration, as cv2.undistortPoints; checks convergence."""
    undistorted = points.copy()
    for _ in range(_UNDISTORT_ITERATIONS):
        radial, tangential = _lens_terms(undistorted, D)
        undistorted = (points - tangential) / radial[..., None]
    if np.abs(distort_normalized(undistorted, D) - points).max() > 1e-9:
        raise ValueError(f"distortion {D} cannot be inverted over the image; use milder coefficients")
    return undistorted


def _source_pixels(K: np.ndarray, D: np.ndarray, size: tuple[int, int], pad: int) -> tuple[np.ndarray, np.ndarray]:
    """For each pixel (H,W) of the distorted image: row and column of the undistorted padded canvas it shows."""
    width, height = size
    u, v = np.meshgrid(np.arange(width, dtype=np.float64), np.arange(height, dtype=np.float64))
    normalized = (np.stack([u, v], axis=-1) - K[:2, 2]) / np.diag(K)[:2]
    pixels = undistort_normalized(normalized, D) * np.diag(K)[:2] + K[:2, 2] + pad
    cols = np.clip(np.rint(pixels[..., 0]), 0, width + 2 * pad - 1).astype(np.int64)
    rows = np.clip(np.rint(pixels[..., 1]), 0, height + 2 * pad - 1).astype(np.int64)
    return rows, cols


def _grown(mask: np.ndarray) -> np.ndarray:
    """3x3 dilation of a boolean (H,W) mask."""
    padded = np.pad(mask, 1)
    height, width = mask.shape
    return np.logical_or.reduce([padded[dy:dy + height, dx:dx + width] for dy in range(3) for dx in range(3)])


@dataclass(frozen=True)
class _Look:
    """Per-vertex appearance of the person: (V,3) colours, (V,) SMPL part."""

    colours: np.ndarray
    part: np.ndarray


def _render(vertices: np.ndarray, faces: np.ndarray, look: _Look, rig: CameraRig, view: int,
            size: tuple[int, int], background: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Distorted image (H,W,3) uint8, ``mask/`` (H,W) bool and ``mask_cihp/`` (H,W) labels of one view."""
    width, height = size
    pad = max(width, height) // 4
    K = rig.K[view].copy()
    K[:2, 2] += pad
    verts = torch.as_tensor(vertices @ rig.R[view].T + rig.t[view])
    faces_t = torch.as_tensor(faces)
    frags = rasterize(verts, faces_t, torch.as_tensor(K), height + 2 * pad, width + 2 * pad)
    canvas = np.full((height + 2 * pad, width + 2 * pad, 3), background, dtype=np.uint8)
    image = shade(frags, verts, faces_t, torch.as_tensor(look.colours), background=torch.as_tensor(canvas)).numpy()
    rows, cols = _source_pixels(rig.K[view], rig.D[view], size, pad)
    face = frags.face_index.numpy()[rows, cols]
    part = np.where(face >= 0, look.part[faces[np.maximum(face, 0), 0]], -1)
    cihp = np.where((face >= 0) & (part != LEFT_HAND), SMPL_TO_CIHP[part], 0).astype(np.uint8)
    return image[rows, cols], _grown(face >= 0) & (part != RIGHT_FOOT), cihp


def _png(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format="PNG")
    return buf.getvalue()


def _jpeg(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format="JPEG", quality=90)
    return buf.getvalue()


def _write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def _write_subject(folder: Path, truth: SubjectTruth, images: list[list[np.ndarray]]) -> None:
    """annots.npy, params/, new_params/, vertices/, images and masks of one subject."""
    rig = truth.rig
    folder.mkdir(parents=True, exist_ok=True)
    np.save(folder / "annots.npy", {
        "cams": {"K": list(rig.K), "R": list(rig.R), "T": list(rig.t[:, :, None] * 1000.0),
                 "D": list(rig.D[:, :, None])},
        "ims": [{"ims": list(paths), "kpts2d": np.zeros((len(paths), 25, 3))} for paths in truth.images],
    })
    for frame, index in enumerate(truth.params_index):
        for name, fit in (("params", truth.params), ("new_params", truth.new_params)):
            (folder / name).mkdir(exist_ok=True)
            np.save(folder / name / f"{index}.npy", fit.frame(frame))
        (folder / "vertices").mkdir(exist_ok=True)
        np.save(folder / "vertices" / f"{index}.npy", truth.params.vertices[frame].astype(np.float32))
        for view, path in enumerate(truth.images[frame]):
            _write(folder / path, _jpeg(images[frame][view]))
            png = Path(path).with_suffix(".png")
            _write(folder / "mask" / png, _png(truth.mask[frame, view].astype(np.uint8) * 255))
            _write(folder / "mask_cihp" / png, _png(truth.cihp[frame, view]))


def _subject(name: str, models: tuple[BodyModel, BodyModel], look: _Look, frames: int, cameras: int | None,
             size: tuple[int, int], rng: np.random.Generator) -> tuple[SubjectTruth, list[list[np.ndarray]]]:
    """Pose, place, film and mask one subject; returns its truth and the (F,C) images."""
    refit, older = _fits(models, frames, rng)
    rig = _rig(_camera_numbers(name, cameras), refit.vertices[0].mean(axis=0), size, rng)
    background = rng.integers(20, 70, (len(rig.numbers), 3), dtype=np.uint8)
    rendered = [[_render(refit.vertices[f], models[0].faces, look, rig, c, size, background[c])
                 for c in range(len(rig.numbers))] for f in range(frames)]
    truth = SubjectTruth(
        name=name, rig=rig, params=older, new_params=refit,
        params_index=tuple(params_index(name, f) for f in range(frames)),
        images=tuple(tuple(image_path(name, k, f) for k in rig.numbers) for f in range(frames)),
        mask=np.array([[r[1] for r in row] for row in rendered]),
        cihp=np.array([[r[2] for r in row] for row in rendered]),
    )
    return truth, [[r[0] for r in row] for row in rendered]


def write_miniature_zju(root: str | Path, subjects: Sequence[str] = ("CoreView_377", "CoreView_313"), *,
                        frames: int = 2, cameras: int | None = None, size: tuple[int, int] = (96, 96), seed: int = 0,
                        body_models: str | Path | None = None) -> GroundTruth:
    """Write a miniature ZJU-MoCap under ``root`` and return what was written.

    Every subject gets ``frames`` frames filmed by its first ``cameras`` cameras (None: all, 23 or
    21 for 313/315) at ``size`` = (width, height) pixels. ``body_models`` is the folder of the
    neutral SMPL (None: ``$HUMANBENCH_BODY_MODELS`` or the embedded synthetic model).
    """
    if frames < 1:
        raise ValueError(f"frames must be at least 1, got {frames}")
    refit = load_body_model("smpl", "neutral", root=body_models, dtype=torch.float64)
    older = load_body_model("smpl", "neutral", root=body_models, dtype=torch.float64)
    older.smplx_model.posedirs.zero_()  # params/ were fitted without pose blend shapes
    part = refit.smplx_model.lbs_weights.argmax(dim=1).numpy()
    rng = np.random.default_rng(seed)
    palette = np.stack([rng.uniform([0.55, 0.35, 0.25], [0.95, 0.75, 0.6]), *rng.uniform(0.05, 0.9, (3, 3))])
    look = _Look(palette[PART_MATERIAL[part]], part)
    truth = GroundTruth()
    for position, name in enumerate(subjects):
        subject, images = _subject(name, (refit, older), look, frames, cameras, size,
                                   np.random.default_rng([seed, position]))
        _write_subject(Path(root) / name, subject, images)
        truth.subjects[name] = subject
    return truth
