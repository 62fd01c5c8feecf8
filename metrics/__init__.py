"""Metric maths: pure batched tensor/array functions, and protocol-bound evaluators built on them.

- :mod:`humanbench.metrics.procrustes`: similarity Procrustes (SPIN/ExPose/AGORA family).
- :mod:`humanbench.metrics.mesh`: MPJPE, PA-MPJPE, PVE, PA-PVE, part errors, in-image masks.
- :mod:`humanbench.metrics.hmr`: per-person evaluators of the mesh-recovery protocols.
- :mod:`humanbench.metrics.agora_matching`, :mod:`~humanbench.metrics.agora`,
  :mod:`~humanbench.metrics.agora_aggregate`: the official AGORA matching, errors and aggregation.
"""

from humanbench.metrics.mesh import (
    in_image_mask,
    mean_point_error,
    mpjpe,
    pa_mpjpe,
    pa_part_errors,
    pa_pve,
    part_errors,
    point_errors,
    pve,
)
from humanbench.metrics.procrustes import ProcrustesResult, similarity_procrustes

__all__ = [
    "ProcrustesResult", "in_image_mask", "mean_point_error", "mpjpe", "pa_mpjpe", "pa_part_errors", "pa_pve",
    "part_errors", "point_errors", "pve", "similarity_procrustes",
]
