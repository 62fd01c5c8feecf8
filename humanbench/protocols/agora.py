"""The AGORA protocols (``protocols.md`` §2) as frozen data: the official matching protocol and SMPLer-X's
per-person "AGORA-val" protocol (see ``docs/protocols.md``).

``agora/official`` is image-level: predictions are detections matched to the GT people of their image before
anything is scored, so it is a :class:`MatchingProtocol` (evaluated by
:func:`humanbench.agora_evaluation.evaluate_matching`), not a per-person :class:`MeshProtocol`. Both protocols
accept the 1280x720 and the 3840x2160 copies of the validation split (``accepted_splits``): the image set changes
no number, since both score 3D errors and the official matching runs on 3840x2160 joints whatever was stored.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, Callable

from smplx.joint_names import JOINT_NAMES

from humanbench.agora_evaluation import evaluate_agora_smplerx_val, evaluate_matching
from humanbench.protocols.base import MeshProtocol, MetricSpec, Trap
from humanbench.protocols.mesh import WHOLE_BODY_METRICS

if TYPE_CHECKING:
    from humanbench.agora_evaluation import MatchingOutcome

VALIDATION_SPLITS = ("validation-1280", "validation-3840")
"""The converter's SMPL-X validation splits (1280x720 and 3840x2160 images of the same people)."""


@dataclass(frozen=True)
class AgoraMeshProtocol(MeshProtocol):
    """A per-person :class:`MeshProtocol` that also accepts shards of the other ``accepted_splits``."""

    accepted_splits: tuple[str, ...] = ()

    def describe(self) -> dict[str, Any]:
        """:meth:`MeshProtocol.describe` plus the accepted splits."""
        return {**super().describe(), "accepted_splits": list(self.accepted_splits)}


@dataclass(frozen=True)
class MatchingProtocol:
    """An image-level protocol: per image, detections are matched to GT people, then scored and aggregated.

    ``evaluate(protocol, manifest, predictions, context, ...)`` is the driver (one for all matching protocols);
    ``image_size`` is the pixel frame of the 2D joints the matching compares (GT joints are brought to it,
    predictions must be in it), ``cost_joints`` the joints of the matching cost and ``iou_threshold`` the box
    gate. ``metrics`` lists every reported value with its unit and the decimals the protocol rounds to.
    """

    id: str
    version: int
    title: str
    dataset: str
    split: str
    accepted_splits: tuple[str, ...]
    gt_body_model: str
    pred_body_model: str
    gt_gender: str
    evaluate: Callable[..., "MatchingOutcome"]
    metrics: tuple[MetricSpec, ...]
    image_size: tuple[int, int] = (3840, 2160)
    cost_joints: int = 24
    iou_threshold: float = 0.1
    traps: tuple[Trap, ...] = ()
    sources: tuple[str, ...] = ()
    notes: tuple[str, ...] = field(default=())

    def describe(self) -> dict[str, Any]:
        """JSON-serialisable definition for result records (the driver by its qualified name)."""
        description = asdict(self)
        description["evaluate"] = f"{self.evaluate.__module__}.{self.evaluate.__qualname__}"
        return {"level": "image", **description}


def _score(name: str, description: str) -> MetricSpec:
    return MetricSpec(name, unit="", higher_is_better=True, decimals=2, description=description)


def _error(name: str, description: str) -> MetricSpec:
    return MetricSpec(name, description=description)


_SCORES = (
    _score("precision", "TP / (TP + FP)"),
    _score("recall", "TP / (TP + FN)"),
    _score("f1", "TP / (TP + (FP + FN) / 2)"),
)
_KID_SCORES = tuple(_score(f"kid_{m.name}", f"{m.description} over kids (all false positives)") for m in _SCORES)
_BODY = (
    _error("body-MPJPE", "SMPL-X joints 0-21, each side at its own hip midpoint; matched people (leaderboard "
                         "MPJPE Body)"),
    _error("body-NMJE", "rounded body-MPJPE / rounded F1 (leaderboard NMJE Body)"),
    _error("body-MVE", "the 4010 body_verts_smplx vertices at the hip midpoint; matched people (MVE Body)"),
    _error("body-NMVE", "rounded body-MVE / rounded F1 (NMVE Body)"),
)
_HANDS_FACE = (
    _error("lhand-MPJPE", "left wrist + 15 hand joints at the wrist (root in the mean); valid people of images "
                          "with predictions, misses as 0 (LH)"),
    _error("rhand-MPJPE", "right wrist + 15 hand joints at the wrist, as lhand-MPJPE (RH)"),
    _error("face-MPJPE", "neck + 51 face landmarks at the neck, as lhand-MPJPE (Face)"),
    _error("lhand-MVE", "778 left MANO vertices at the wrist, as lhand-MPJPE (LH)"),
    _error("rhand-MVE", "778 right MANO vertices at the wrist, as lhand-MPJPE (RH)"),
    _error("face-MVE", "5023 FLAME vertices at the neck, as lhand-MPJPE (Face)"),
    _error("fullbody-MPJPE", "body + LH/3 + RH/3 + Face/3 of the rounded parts (leaderboard MPJPE All)"),
    _error("fullbody-MVE", "the same for MVE (leaderboard MVE All)"),
    _error("fullbody-NMJE", "rounded fullbody-MPJPE / rounded F1 (leaderboard NMJE All)"),
    _error("fullbody-NMVE", "rounded fullbody-MVE / rounded F1 (leaderboard NMVE All)"),
)


def _kid(spec: MetricSpec, divisor: str) -> MetricSpec:
    """The kid version of an error: the same over valid kids; a normalised one divides by ``divisor``."""
    base = spec.name.replace("NMJE", "MPJPE").replace("NMVE", "MVE")
    normalised = base != spec.name
    return _error(f"kid-{spec.name}", f"rounded kid-{base} / rounded {divisor}" if normalised
                  else f"{spec.name} over valid kids only")


AGORA_METRICS = (
    *_SCORES, *_KID_SCORES,
    *(spec for body in _BODY for spec in (body, _kid(body, "the kid F1"))),
    *_HANDS_FACE, *(_kid(spec, "the overall F1") for spec in _HANDS_FACE),
)
"""Every value of the official result dictionary (the order ``metrics.agora_aggregate.aggregate`` gives them)."""

AGORA_OFFICIAL = MatchingProtocol(
    id="agora/official", version=1,
    title="AGORA validation, official evaluation kit (greedy 2D matching, F1, NMVE/NMJE, MVE/MPJPE by part)",
    dataset="agora", split="validation-1280", accepted_splits=VALIDATION_SPLITS, gt_body_model="smplx",
    pred_body_model="smplx", gt_gender="gendered SMPL-X, female kids on the neutral kid model (as converted)",
    evaluate=evaluate_matching, metrics=AGORA_METRICS,
    traps=(
        Trap(3, "body root = midpoint of the hips (joints 1, 2), not joint 0; body MVE over the 4010 "
                "body_verts_smplx only; hand/face means include the zero-error root point and a 0 for every miss "
                "in images with predictions; F1 rounded to 0.01 and errors to 0.1 mm before NMxE = error / F1; "
                "greedy matching on the spectral norm of the first 24 2D joints with an IoU >= 0.1 gate and the "
                "counter-based early stop; a detection on an invalid (occluded) person consumes that person and "
                "ends as a false positive; female kids on the neutral kid model on both sides"),
        Trap(4, "this is the official protocol; SMPLer-X / OSX 'AGORA-val' numbers are agora/smplerx-val"),
    ),
    sources=("pixelite1201/agora_evaluation:agora_evaluation/matching.py",
             "pixelite1201/agora_evaluation:agora_evaluation/calculate_v2v_error.py",
             "pixelite1201/agora_evaluation:agora_evaluation/compute_average_error.py",
             "pixelite1201/agora_evaluation:agora_evaluation/get_joints_verts_from_dataframe.py",
             "pixelite1201/agora_evaluation:agora_evaluation/load_predictions.py", "protocols.md §2.1-§2.5"),
    notes=(
        "GT 2D joints: the shards' joints2d (the dataframe's gt_joints_2d scaled to the stored image) scaled back "
        "to 3840x2160, i.e. the official values up to one float rounding; not reprojected, because our float64 "
        "posing is not bit-identical to the kit's float32 gt_joints_2d",
        "GT 3D joints (127) and vertices: the stored parameters posed in float64 with the recorded model genders "
        "and the kid template (the shards keep no gt_verts)",
        "predictions: person = detection index, joints2d in 3840x2160 pixels (>= 24 rows); SMPL-X parameters posed "
        "like the kit (gender, kid template with 11 betas, female kids on the neutral kid model) or vertices + "
        "joints (>= 127 rows) used as given; detections are visited in the kit's file-name order (0, 1, 10, 2, ...)",
        "undefined values are left out of the record: kid metrics without valid kids, NMxE when F1 = 0",
        "summation order = shard order (the kit's: its glob order of dataframes), which can move a mean in its last "
        "bits only",
        "orientation bins are not computed (the schema keeps no Yaw/camYaw); occlusion is in the per-person rows",
    ),
)

AGORA_SMPLERX_VAL = AgoraMeshProtocol(
    id="agora/smplerx-val", version=1,
    title="AGORA validation, SMPLer-X / OSX 'AGORA-val' protocol (GT boxes, whole-body PVE per part)",
    dataset="agora", split="validation-1280", accepted_splits=VALIDATION_SPLITS, gt_body_model="smplx",
    pred_body_model="smplx", gt_gender="gendered", evaluate=evaluate_agora_smplerx_val,
    metrics=tuple(m for m in WHOLE_BODY_METRICS if "mpjpe" not in m.name),
    joint_names=tuple(JOINT_NAMES[i] for i in (0, 20, 21, 12)), person_flag="valid",
    traps=(
        Trap(4, "not the official AGORA MVE: one crop per annotated person from its GT box (no detection, no "
                "matching), all 10475 vertices, pred pelvis (SMPL-X J_regressor row 0) moved onto GT's, hands at the "
                "wrists (rows 20/21), face at the neck (row 12), PA variants with Procrustes per part"),
    ),
    sources=("caizhongang/SMPLer-X:data/AGORA/AGORA.py", "protocols.md §2.6"),
    notes=("people: every valid (isValid) annotation; SMPLer-X also drops crops whose box fails process_bbox "
           "(1280 images) or lacks a crop file (4K), which is not reproduced",
           "GT: the recorded-gender SMPL-X (female kids: neutral kid model) with the kid template; pred: neutral "
           "SMPL-X; 'hands' = mean of the two hands per person",
           "joint_names: the J_regressor rows the parts are aligned at"),
)
