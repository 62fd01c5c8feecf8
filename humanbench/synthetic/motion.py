"""Parametric, person-like motions for the synthetic world (SMPL-family body poses).

Poses are axis-angle per joint in the SMPL kinematic tree (24 joints; SMPL-X shares the first 22).
Each motion maps a phase array (T,) to body poses (T, 23, 3) for joints 1..23.
"""

from __future__ import annotations

from typing import Callable

import numpy as np
from scipy.spatial.transform import Rotation

# SMPL joint indices (pelvis = 0).
L_HIP, R_HIP, SPINE1, L_KNEE, R_KNEE, SPINE2, L_ANKLE, R_ANKLE, SPINE3 = 1, 2, 3, 4, 5, 6, 7, 8, 9
NECK, L_COLLAR, R_COLLAR, HEAD, L_SHOULDER, R_SHOULDER, L_ELBOW, R_ELBOW = 12, 13, 14, 15, 16, 17, 18, 19

ARMS_DOWN = 1.25  # rad about z that brings T-pose arms down to the sides


def _rotvec(*rotations: tuple[str, np.ndarray]) -> np.ndarray:
    """Compose elementary rotations (applied left to right in the parent frame) -> (T,3) axis-angle."""
    total = None
    for axis, angle in rotations:
        rot = Rotation.from_euler(axis, np.asarray(angle, dtype=np.float64).reshape(-1, 1))
        total = rot if total is None else rot * total
    return total.as_rotvec()


def _rest(num: int) -> np.ndarray:
    """(T,24,3) zero poses with the arms lowered to the sides."""
    pose = np.zeros((num, 24, 3))
    pose[:, L_SHOULDER] = _rotvec(("z", np.full(num, -ARMS_DOWN)))
    pose[:, R_SHOULDER] = _rotvec(("z", np.full(num, ARMS_DOWN)))
    return pose


def walk(phase: np.ndarray) -> np.ndarray:
    """Walking cycle: counter-swinging legs and arms, knees flexing in swing. (T,) -> (T,24,3)."""
    pose = _rest(len(phase))
    swing = 0.45 * np.sin(phase)
    pose[:, L_HIP, 0] = -swing
    pose[:, R_HIP, 0] = swing
    pose[:, L_KNEE, 0] = 0.9 * np.clip(np.sin(phase - 0.8), 0, None)
    pose[:, R_KNEE, 0] = 0.9 * np.clip(-np.sin(phase - 0.8), 0, None)
    pose[:, L_SHOULDER] = _rotvec(("z", -ARMS_DOWN + 0 * phase), ("x", 0.5 * swing))
    pose[:, R_SHOULDER] = _rotvec(("z", ARMS_DOWN + 0 * phase), ("x", -0.5 * swing))
    pose[:, L_ELBOW, 1] = -0.4
    pose[:, R_ELBOW, 1] = 0.4
    return pose


def wave(phase: np.ndarray) -> np.ndarray:
    """Right arm raised and waving from the elbow, slight torso sway. (T,) -> (T,24,3)."""
    pose = _rest(len(phase))
    pose[:, R_SHOULDER] = _rotvec(("z", np.full(len(phase), -0.9)))
    pose[:, R_ELBOW] = _rotvec(("z", -1.0 + 0.5 * np.sin(2 * phase)))
    pose[:, SPINE2, 2] = 0.1 * np.sin(phase)
    pose[:, HEAD, 1] = 0.3 * np.sin(phase)
    return pose


def squat(phase: np.ndarray) -> np.ndarray:
    """Squat: hips and knees flex together, arms reach forward. (T,) -> (T,24,3)."""
    pose = _rest(len(phase))
    depth = 0.5 * (1 - np.cos(phase))
    pose[:, L_HIP, 0] = pose[:, R_HIP, 0] = -1.2 * depth
    pose[:, L_KNEE, 0] = pose[:, R_KNEE, 0] = 2.0 * depth
    pose[:, L_ANKLE, 0] = pose[:, R_ANKLE, 0] = -0.6 * depth
    pose[:, SPINE1, 0] = 0.3 * depth
    pose[:, L_SHOULDER] = _rotvec(("z", -ARMS_DOWN * (1 - depth)), ("y", -1.2 * depth))
    pose[:, R_SHOULDER] = _rotvec(("z", ARMS_DOWN * (1 - depth)), ("y", 1.2 * depth))
    return pose


def reach(phase: np.ndarray) -> np.ndarray:
    """Alternating overhead reaches with a torso bend. (T,) -> (T,24,3)."""
    pose = _rest(len(phase))
    left = 0.5 * (1 + np.sin(phase))
    pose[:, L_SHOULDER] = _rotvec(("z", -ARMS_DOWN + 2.4 * left))
    pose[:, R_SHOULDER] = _rotvec(("z", ARMS_DOWN - 2.4 * (1 - left)))
    pose[:, SPINE2, 2] = 0.25 * (left - 0.5)
    pose[:, L_KNEE, 0] = 0.3 * left
    return pose


MOTIONS: dict[str, Callable[[np.ndarray], np.ndarray]] = {"walk": walk, "wave": wave, "squat": squat, "reach": reach}


def sample_motion(name: str, num_frames: int, rng: np.random.Generator) -> np.ndarray:
    """Body poses (T,23,3) of motion ``name`` from a random start phase, with small per-joint jitter."""
    start = rng.uniform(0, 2 * np.pi)
    phase = start + np.linspace(0, 2 * np.pi * rng.uniform(0.5, 1.0), num_frames)
    pose = MOTIONS[name](phase)
    pose[:, 1:] += rng.normal(scale=0.03, size=(1, 23, 3))  # per-person style offset
    return pose[:, 1:]
