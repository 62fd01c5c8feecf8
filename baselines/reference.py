"""Reference predictors: the floor and the ceiling any real method is compared against.

- :func:`mean_pose_predictions`: every person gets the mean shape and body pose of a training
  shard set, standing upright and facing the camera (no image evidence at all).
- :func:`noisy_gt_predictions`: the GT parameters plus Gaussian noise (a sanity check that the
  metrics rise smoothly with the noise).

Both return :class:`~humanbench.predictions.Predictions` for every person of the GT shards.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from scipy.spatial.transform import Rotation

from humanbench.predictions import Predictions
from humanbench.schema import PARAM_FIELDS, decode_sample
from humanbench.shards import iter_encoded

UPRIGHT_FACING_CAMERA = Rotation.from_euler("x", [np.pi]).as_rotvec().reshape(3)
"""Axis-angle that turns the SMPL rest frame (y up, facing +z) upright in the OpenCV camera frame."""


def _people(shards: str | Path) -> tuple[np.ndarray, np.ndarray, str, dict[str, np.ndarray]]:
    """Keys (N,), person indices (N,), the body model and the stacked GT parameters of every person."""
    keys, person, rows, body_model = [], [], [], None
    for encoded in iter_encoded(shards):
        sample = decode_sample(encoded)
        body_model = sample.body_model
        for p in range(sample.num_people):
            keys.append(sample.key)
            person.append(p)
            rows.append({name: sample.people[name][p] for name in PARAM_FIELDS})
    params = {name: np.stack([r[name] for r in rows]) for name in PARAM_FIELDS} if rows else {}
    return np.asarray(keys, dtype=str), np.asarray(person, dtype=np.int64), body_model or "smpl", params


def mean_pose_predictions(train_shards: str | Path, shards: str | Path) -> Predictions:
    """The mean betas and body pose of ``train_shards`` (axis-angle averaged), upright, for every person of ``shards``."""
    _, _, train_model, train = _people(train_shards)
    keys, person, body_model, _ = _people(shards)
    if train_model != body_model:
        raise ValueError(f"training shards hold {train_model}, evaluated shards {body_model}")
    count = len(keys)
    return Predictions(keys=keys, person=person, body_model=body_model,
                       betas=np.tile(train["betas"][:, :10].mean(0), (count, 1)),
                       global_orient=np.tile(UPRIGHT_FACING_CAMERA, (count, 1)),
                       body_pose=np.tile(train["body_pose"].mean(0), (count, 1)))


def noisy_gt_predictions(shards: str | Path, *, pose_sigma: float = 0.05, shape_sigma: float = 0.1,
                         seed: int = 0) -> Predictions:
    """GT betas, orientation and body pose plus Gaussian noise (radians for poses) for every person."""
    keys, person, body_model, gt = _people(shards)
    rng = np.random.default_rng(seed)
    return Predictions(keys=keys, person=person, body_model=body_model,
                       betas=gt["betas"][:, :10] + rng.normal(scale=shape_sigma, size=gt["betas"][:, :10].shape),
                       global_orient=gt["global_orient"] + rng.normal(scale=pose_sigma, size=gt["global_orient"].shape),
                       body_pose=gt["body_pose"] + rng.normal(scale=pose_sigma, size=gt["body_pose"].shape))
