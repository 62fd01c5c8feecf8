"""Person crops and training targets of the HMR regressor, from decoded samples.

Crops are squares around the person box (side = ``CROP_SCALE`` x the longer box side), resized
to ``size`` x ``size`` and normalised with the ImageNet mean/std. Crop coordinates run from -1
to 1 across the crop; image pixels are centred on integer coordinates (schema convention), so a
pixel coordinate u lies at u + 0.5 in PIL's continuous frame.
"""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

from humanbench.schema import Sample
from humanbench.training.config import TrainingError

from .geometry import axis_angle_to_rotmat

CROP_SCALE = 1.25
MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)
NUM_JOINTS = 24
SMPL_MIRROR = [0, 2, 1, 3, 5, 4, 6, 8, 7, 9, 11, 10, 12, 14, 13, 15, 17, 16, 19, 18, 21, 20, 23, 22]
"""SMPL joint order of the mirror image: left and right swapped."""
MIRROR_X = np.diag([-1.0, 1.0, 1.0])


def open_image(sample: Sample) -> Image.Image:
    """The sample's image as an RGB PIL image."""
    return Image.open(io.BytesIO(sample.image)).convert("RGB")


def person_square(bbox: np.ndarray, scale: float = CROP_SCALE, shift: np.ndarray | None = None) -> tuple[float, float, float]:
    """Centre (x, y) in PIL's continuous frame and side of the square crop around ``bbox`` (x1, y1, x2, y2).

    ``shift`` (2,) moves the centre by a fraction of the side (augmentation).
    """
    x1, y1, x2, y2 = (float(v) for v in bbox)
    side = max(x2 - x1, y2 - y1, 4.0) * scale
    cx, cy = (x1 + x2) / 2 + 0.5, (y1 + y2) / 2 + 0.5
    if shift is not None:
        cx, cy = cx + shift[0] * side, cy + shift[1] * side
    return cx, cy, side


def crop(image: Image.Image, cx: float, cy: float, side: float, size: int) -> np.ndarray:
    """The square (cx, cy, side) of ``image`` resized to (3, size, size) float32, normalised; outside is black."""
    half = side / 2
    patch = image.transform((size, size), Image.Transform.EXTENT, (cx - half, cy - half, cx + half, cy + half),
                            resample=Image.Resampling.BILINEAR)
    pixels = (np.asarray(patch, dtype=np.float32) / 255.0 - MEAN) / STD
    return np.ascontiguousarray(pixels.transpose(2, 0, 1))


def to_crop(points: np.ndarray, cx: float, cy: float, side: float) -> np.ndarray:
    """Pixel coordinates (J, 2) -> crop coordinates in [-1, 1] over the crop (J, 2)."""
    return (points + 0.5 - np.array([cx, cy])) / (side / 2)


def mirror(item: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The training item of the horizontally flipped crop: x negated, left and right joints swapped.

    Rotations are conjugated by the reflection x -> -x (axis-angle (a, b, c) -> (a, -b, -c)), which
    mirrors the posed body for a left-right symmetric template.
    """
    flipped = dict(item)
    flipped["image"] = np.ascontiguousarray(item["image"][:, :, ::-1])
    flipped["rotmat"] = (MIRROR_X @ item["rotmat"][SMPL_MIRROR] @ MIRROR_X).astype(np.float32)
    flipped["joints3d"] = item["joints3d"][SMPL_MIRROR] * np.float32([-1, 1, 1])
    flipped["joints2d"] = item["joints2d"][SMPL_MIRROR] * np.float32([-1, 1, 1])
    return flipped


def training_item(sample: Sample, rng: np.random.Generator, size: int, scale_jitter: float,
                  shift_jitter: float, flip: bool) -> dict[str, np.ndarray]:
    """One person of ``sample`` (a random valid one) as a crop with its SMPL, 3D and 2D targets.

    Augmentation: box scale and centre jitter, and a horizontal flip half of the time when ``flip``.
    Returns float32 arrays: ``image`` (3, S, S); ``rotmat`` (24, 3, 3) root + body rotations;
    ``betas`` (10,); ``joints3d`` (24, 3) pelvis-relative metres; ``joints2d`` (24, 3) crop
    coordinates and confidence; ``weight`` () 0 when the sample has no valid person, ``has_joints3d`` ().
    """
    people = sample.people
    if sample.body_model != "smpl" or "body_pose" not in people or "bbox" not in people:
        raise TrainingError(f"sample {sample.key!r}: the HMR regressor trains on SMPL samples with parameters and boxes "
                            f"(got body model {sample.body_model!r}, fields {sorted(people)})")
    valid = np.flatnonzero(people["valid"])
    p = int(rng.choice(valid)) if len(valid) else int(rng.integers(sample.num_people))
    scale = CROP_SCALE * (1.0 + rng.uniform(-scale_jitter, scale_jitter))
    cx, cy, side = person_square(people["bbox"][p], scale, rng.uniform(-shift_jitter, shift_jitter, 2))
    rotvecs = np.concatenate([people["global_orient"][p][None], people["body_pose"][p].reshape(23, 3)])
    joints2d = np.zeros((NUM_JOINTS, 3))
    if sample.joints2d_format == "smpl24" and "joints2d" in people:
        joints2d[:, :2] = to_crop(people["joints2d"][p][:, :2], cx, cy, side)
        joints2d[:, 2] = people["joints2d"][p][:, 2]
    has_joints3d = sample.joints3d_format == "smpl24" and "joints3d" in people
    joints3d = people["joints3d"][p] - people["joints3d"][p][:1] if has_joints3d else np.zeros((NUM_JOINTS, 3))
    item = {
        "image": crop(open_image(sample), cx, cy, side, size),
        "rotmat": axis_angle_to_rotmat(rotvecs).astype(np.float32),
        "betas": people["betas"][p][:10].astype(np.float32),
        "joints3d": joints3d.astype(np.float32),
        "joints2d": joints2d.astype(np.float32),
        "weight": np.float32(len(valid) > 0),
        "has_joints3d": np.float32(has_joints3d),
    }
    return mirror(item) if flip and rng.random() < 0.5 else item

