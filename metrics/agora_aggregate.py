"""AGORA's official aggregation: detection scores, rounded errors, NMJE/NMVE, kids, bins.

Reproduces ``compute_avg_error`` of pixelite1201/agora_evaluation
(``agora_evaluation/compute_average_error.py``, snapshot 8c9dece; ``protocols.md``
§2.5), quirks included. Per person the inputs are the per-part errors in metres of
the GT people a prediction was matched to (:mod:`humanbench.metrics.agora`).

Who counts:

* ``count`` = every GT person flagged valid (``isValid``) in every image; in an image
  with no prediction at all every valid person is a miss. A valid person the matching
  treated as invalid (``isValid`` but occlusion outside [0, 90]) is also a miss, as in
  the official code.
* ``FP`` = unmatched predictions summed over images (images without predictions have
  none). ``TP = count - misses``, ``FN = misses``.

Rounding -- two different rules, both reproduced:

* precision / recall / F1 are Python floats in the official code (``int / float``),
  so ``round(x, 2)`` is Python's correctly rounded rounding of the exact binary value
  (ties to even): :func:`round_ratio`.
* every error is a numpy ``float64`` there (``np.mean`` / ``Series.mean``), and
  ``round(np.float64, 1)`` is numpy's ``rint(x * 10) / 10`` (half to even *after*
  the scaling multiplication): :func:`round_error`. The two differ, e.g. for 1.05:
  Python gives 1.1 (1.05 is stored slightly above), numpy 1.0 (1.05 * 10 rounds to
  exactly 10.5).

Other quirks: errors are scaled by 1000 per person *before* averaging; body errors
average matched people only, hand/face errors average every valid person of the
images *with* predictions, a miss contributing 0 (deflates them when recall < 1);
``FB = round(B + (1/3)*LH + (1/3)*RH + (1/3)*F, 1)`` from the already-rounded parts,
in that operation order; ``NMxE = round(rounded error / rounded F1, 1)``; kid
precision/recall/F1 use kid counts but *all* false positives; kid *body* NMxE divides
by the kid F1 but kid *full-body* NMxE by the overall F1.

Arithmetic: the official per-person errors come out in the arrays' dtype (float32
for SMPL-X forward passes) and are then multiplied by ``1e3``; under the numpy 1.x it
pins (pandas 1.0.3 / torch 1.4 era) ``1e3 * np.float32`` is float64, so here each
error is cast to float64 before the scaling; means are numpy's pairwise sums divided
by the count, over people in image order then GT order, as the official lists are.

Deviations (official behaviour undefined): a 0/0 precision (no TP, no FP) is NaN
where the official code raises ``ZeroDivisionError``; kid scores are NaN (official:
the string ``'nan'``) when there are no valid kids.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd

__all__ = [
    "BODY_PARTS",
    "SMPLX_PARTS",
    "OCCLUSION_BIN_EDGES",
    "ORIENTATION_BIN_EDGES",
    "AgoraSummary",
    "ImageResult",
    "Model",
    "aggregate",
    "detection_scores",
    "error_bins",
    "full_body_error",
    "normalized_error",
    "orientation_deg",
    "round_error",
    "round_ratio",
]

Model = Literal["smpl", "smplx"]

BODY_PARTS = ("body-MPJPE", "body-MVE")
"""Per-person error keys for the SMPL protocol (official dataframe column names)."""

SMPLX_PARTS = BODY_PARTS + ("lhand-MPJPE", "rhand-MPJPE", "face-MPJPE", "lhand-MVE", "rhand-MVE", "face-MVE")
"""Per-person error keys for the SMPL-X protocol."""

OCCLUSION_BIN_EDGES = (-1, 10, 20, 30, 40, 50, 60, 70, 80)
"""Official ``occ_bins``: right-closed (-1, 10], (10, 20], ... (70, 80]; > 80 % is in none."""

ORIENTATION_BIN_EDGES = (-1, 45, 90, 135, 180, 225, 270, 315, 360)
"""Official ``ori_bins`` in degrees, right-closed."""

_SCALE = 1e3  # metres -> millimetres (official ``scalar``)


@dataclass(frozen=True, eq=False)
class ImageResult:
    """One image after matching and per-person errors, one entry per GT person.

    Attributes:
        valid: (G,) bool, counted people (the GT ``isValid``).
        kid: (G,) bool.
        matched: (G,) bool, the person is in an accepted (pred, gt) pair.
        errors: part key (:data:`BODY_PARTS` / :data:`SMPLX_PARTS`) -> (G,) error in
            metres; entries of unmatched people are ignored (treated as 0).
        n_false_positives: predictions of this image in no accepted pair.
        has_predictions: the image has at least one prediction.
        occlusion: (G,) occluded fraction in percent.
        orientation: (G,) degrees in [0, 360) (:func:`orientation_deg`).
    """

    valid: np.ndarray
    kid: np.ndarray
    matched: np.ndarray
    errors: Mapping[str, np.ndarray]
    n_false_positives: int
    has_predictions: bool
    occlusion: np.ndarray
    orientation: np.ndarray


@dataclass(frozen=True, eq=False)
class AgoraSummary:
    """The official result dictionary plus counts and the analysis bins.

    Attributes:
        count, tp, fp, fn: all valid GT people, matched, unmatched predictions, misses.
        kid_count, kid_tp, kid_fn: the same restricted to kids (FPs are not split).
        metrics: official ``error_dict`` keys in official order -> value; errors in mm
            rounded to 0.1, scores rounded to 0.01. ``fullbody-*`` is the
            leaderboard's "All", ``body-*`` its "Body".
        occlusion_bins, orientation_bins: :func:`error_bins` tables.
    """

    count: int
    tp: int
    fp: int
    fn: int
    kid_count: int
    kid_tp: int
    kid_fn: int
    metrics: Mapping[str, float]
    occlusion_bins: pd.DataFrame
    orientation_bins: pd.DataFrame

    def to_frame(self) -> pd.DataFrame:
        """Counts then metrics as one ``value`` column indexed by name."""
        counts = {"count": self.count, "TP": self.tp, "FP": self.fp, "FN": self.fn,
                  "kid_count": self.kid_count, "kid_TP": self.kid_tp, "kid_FN": self.kid_fn}
        values = {**{k: float(v) for k, v in counts.items()}, **self.metrics}
        return pd.DataFrame({"value": pd.Series(values, dtype=float)})


def round_ratio(x: float) -> float:
    """Official rounding of precision / recall / F1: Python ``round(x, 2)`` on a Python float."""
    return round(float(x), 2)


def round_error(x: float) -> float:
    """Official rounding of errors: ``round(np.float64(x), 1)``, i.e. numpy ``rint(10 x) / 10``."""
    return float(np.round(np.float64(x), 1))


def _ratio(numerator: float, denominator: float) -> float:
    """``numerator / denominator`` as a Python float; NaN for 0/0."""
    return numerator / denominator if denominator else float("nan")


def detection_scores(count: int, misses: int, false_positives: int) -> tuple[float, float, float]:
    """Official ``compute_prf1``: rounded precision, recall, F1.

    F1 = TP / (TP + (FP + FN) / 2), TP = count - misses, FN = misses.

    Args:
        count: valid GT people.
        misses: of those, unmatched.
        false_positives: unmatched predictions (all of them, also for kids).

    Returns:
        (precision, recall, f1), each :func:`round_ratio`-ed; (0, 0, 0) when count is 0.
    """
    if count == 0:
        return 0.0, 0.0, 0.0
    tp = count - misses
    f1 = round_ratio(tp / (tp + 0.5 * (false_positives + misses)))
    recall = round_ratio(tp / (tp + misses))
    return round_ratio(_ratio(tp, tp + false_positives)), recall, f1


def normalized_error(error: float, f1: float) -> float:
    """Official NMJE / NMVE: ``round(rounded error / rounded F1, 1)`` (inf for F1 = 0)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return round_error(np.float64(error) / f1)


def full_body_error(body: float, lhand: float, rhand: float, face: float) -> float:
    """Official full-body (leaderboard "All") error from the already-rounded parts.

    ``round(B + (1/3)*LH + (1/3)*RH + (1/3)*F, 1)`` evaluated left to right in float64.
    """
    return round_error(np.float64(body) + (1 / 3) * lhand + (1 / 3) * rhand + (1 / 3) * face)


def orientation_deg(yaw: np.ndarray, cam_yaw: float) -> np.ndarray:
    """Official per-person orientation for the bins: ``(yaw - 90 + 22.5 - camYaw) % 360``.

    Args:
        yaw: (G,) the GT ``YawLocal`` (or ``Yaw`` where that is NaN), degrees.
        cam_yaw: the image's ``camYaw``, degrees.

    Returns:
        (G,) degrees in [0, 360).
    """
    return np.mod(np.asarray(yaw, dtype=np.float64) - 90 + 22.5 - cam_yaw, 360)


def _mean_mm(errors_m: np.ndarray) -> float:
    """Mean of ``1e3 * errors`` (float64, pairwise sum / n); NaN when empty."""
    if errors_m.size == 0:
        return float("nan")
    return float(np.mean(_SCALE * errors_m.astype(np.float64)))


def error_bins(values: np.ndarray, body_mpjpe_mm: np.ndarray, body_mve_mm: np.ndarray,
               miss: np.ndarray, edges: Sequence[float]) -> pd.DataFrame:
    """Official occlusion / orientation analysis tables (``create_(un)normalized_df``).

    Args:
        values: (N,) occlusion % or orientation degrees of every valid person.
        body_mpjpe_mm: (N,) body MPJPE in mm (0 for misses).
        body_mve_mm: (N,) body MVE in mm (0 for misses).
        miss: (N,) bool.
        edges: right-closed bin edges.

    Returns:
        One row per bin (a ``pd.Interval`` index): ``n_people``, ``miss_rate``, the
        mean ``body-MPJPE`` / ``body-MVE`` over matched people, and ``body-NMJE`` /
        ``body-NMVE`` = those means / (1 - miss rate), the official "normalised" plots
        (not divided by F1). Unrounded; NaN for bins without matched people.
    """
    frame = pd.DataFrame({
        "bin": pd.cut(np.asarray(values, dtype=np.float64), list(edges)),
        "miss": np.asarray(miss, dtype=np.float64),
        "body-MPJPE": body_mpjpe_mm,
        "body-MVE": body_mve_mm,
    })
    everyone = frame.groupby("bin", observed=False)
    matched = frame[frame["miss"] == 0].groupby("bin", observed=False)[["body-MPJPE", "body-MVE"]].mean()
    out = pd.DataFrame({"n_people": everyone.size(), "miss_rate": everyone["miss"].mean()})
    out[["body-MPJPE", "body-MVE"]] = matched
    kept = 1 - out["miss_rate"]
    out["body-NMJE"] = out["body-MPJPE"] / kept
    out["body-NMVE"] = out["body-MVE"] / kept
    return out


@dataclass(frozen=True)
class _People:
    """Valid GT people of all images, flattened in image then GT order."""

    kid: np.ndarray
    miss: np.ndarray
    in_pred_image: np.ndarray
    occlusion: np.ndarray
    orientation: np.ndarray
    errors: dict[str, np.ndarray]


def _flatten(results: Sequence[ImageResult], parts: Sequence[str]) -> _People:
    """Concatenate the valid people of ``results``; unmatched errors set to 0."""
    def cat(get: Callable[[ImageResult], np.ndarray]) -> np.ndarray:
        return np.concatenate([np.asarray(get(r)) for r in results]) if results else np.zeros(0)

    valid = cat(lambda r: r.valid).astype(bool)
    matched = cat(lambda r: r.matched).astype(bool)[valid]
    errors = {k: np.where(matched, cat(lambda r, k=k: r.errors[k])[valid], 0) for k in parts}
    return _People(
        kid=cat(lambda r: r.kid).astype(bool)[valid],
        miss=~matched,
        in_pred_image=cat(lambda r: np.full(len(r.valid), r.has_predictions)).astype(bool)[valid],
        occlusion=cat(lambda r: r.occlusion)[valid],
        orientation=cat(lambda r: r.orientation)[valid],
        errors=errors,
    )


def _part_means(people: _People, select: np.ndarray, parts: Sequence[str]) -> dict[str, float]:
    """Rounded means in mm: body parts over matched selected people, hand/face parts over
    selected people of images with predictions, misses included as 0 (quirk)."""
    body_rows = select & ~people.miss
    hf_rows = select & people.in_pred_image
    return {k: round_error(_mean_mm(people.errors[k][body_rows if k in BODY_PARTS else hf_rows])) for k in parts}


def aggregate(results: Sequence[ImageResult], model: Model = "smplx") -> AgoraSummary:
    """Official AGORA summary over all images.

    Args:
        results: per-image :class:`ImageResult`, in dataset order (the order fixes the
            float summation order, as in the official lists).
        model: ``"smplx"`` (body, hands, face, full body) or ``"smpl"`` (body only).

    Returns:
        The :class:`AgoraSummary`.
    """
    parts = SMPLX_PARTS if model == "smplx" else BODY_PARTS
    people = _flatten(results, parts)
    count, misses = len(people.miss), int(people.miss.sum())
    kid_count, kid_misses = int(people.kid.sum()), int((people.kid & people.miss).sum())
    fp = int(sum(r.n_false_positives for r in results if r.has_predictions))
    precision, recall, f1 = detection_scores(count, misses, fp)
    nan = float("nan")
    kid_precision, kid_recall, kid_f1 = detection_scores(kid_count, kid_misses, fp) if kid_count else (nan,) * 3
    every = np.ones(count, dtype=bool)
    err, kid_err = _part_means(people, every, parts), _part_means(people, people.kid, parts)
    metrics = {"precision": precision, "recall": recall, "f1": f1,
               "kid_precision": kid_precision, "kid_recall": kid_recall, "kid_f1": kid_f1}
    for kind, norm in (("MPJPE", "NMJE"), ("MVE", "NMVE")):
        metrics[f"body-{kind}"] = err[f"body-{kind}"]
        metrics[f"kid-body-{kind}"] = kid_err[f"body-{kind}"]
        metrics[f"body-{norm}"] = normalized_error(err[f"body-{kind}"], f1)
        metrics[f"kid-body-{norm}"] = normalized_error(kid_err[f"body-{kind}"], kid_f1) if kid_count else nan
    if model == "smplx":
        for prefix, values in (("", err), ("kid-", kid_err)):
            metrics.update({f"{prefix}{k}": values[k] for k in SMPLX_PARTS[2:]})
            for kind in ("MPJPE", "MVE"):
                metrics[f"{prefix}fullbody-{kind}"] = full_body_error(
                    *(values[f"{part}-{kind}"] for part in ("body", "lhand", "rhand", "face")))
            for kind, norm in (("MPJPE", "NMJE"), ("MVE", "NMVE")):
                metrics[f"{prefix}fullbody-{norm}"] = normalized_error(metrics[f"{prefix}fullbody-{kind}"], f1)
    body_mm = {k: _SCALE * people.errors[k].astype(np.float64) for k in BODY_PARTS}
    bins = {name: error_bins(values, body_mm["body-MPJPE"], body_mm["body-MVE"], people.miss, edges)
            for name, values, edges in (("occ", people.occlusion, OCCLUSION_BIN_EDGES),
                                        ("ori", people.orientation, ORIENTATION_BIN_EDGES))}
    return AgoraSummary(
        count=count, tp=count - misses, fp=fp, fn=misses,
        kid_count=kid_count, kid_tp=kid_count - kid_misses, kid_fn=kid_misses,
        metrics=metrics, occlusion_bins=bins["occ"], orientation_bins=bins["ori"],
    )
