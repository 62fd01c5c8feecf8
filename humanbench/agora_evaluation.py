"""AGORA evaluation (``protocols.md`` §2): posing AGORA people, the per-person ``agora/smplerx-val`` evaluator and
the image-level driver of the official matching protocol ``agora/official``.

:func:`pose_smplx` poses people with the SMPL-X models AGORA uses: one per (gender, kid), kids through the kid
model (the kid template as an 11th beta), float64.

:func:`evaluate_matching` runs a :class:`~humanbench.protocols.agora.MatchingProtocol`, where predictions are
detections (``person`` = detection index) matched to the GT people of their image before anything is scored:

1. this rank reads its exact-once slice of images (:func:`humanbench.shards.iter_encoded`);
2. every image is matched with :func:`~humanbench.metrics.agora_matching.match_greedy` on 2D joints in the
   protocol's 3840x2160 frame: the GT's are the stored ``joints2d`` scaled back to it (the converter stored the
   dataframe's ``gt_joints_2d`` scaled to the image, so these are the official values up to one rounding), the
   detections' are given in it; detections are visited in the kit's order, its file names sorted as strings
   (``_personId_0, 1, 10, 11, 2, ...``), which decides exact cost ties;
3. matched GT people (stored parameters, recorded model genders, kid template) and detections (SMPL-X parameters
   posed like the kit, or given vertices and joints) are turned into 127 joints and 10475 vertices and scored by
   :func:`~humanbench.metrics.agora.person_errors`, ``batch_size`` pairs at a time;
4. every rank's :class:`~humanbench.metrics.agora_aggregate.ImageResult` s are gathered and aggregated in shard
   order by :func:`~humanbench.metrics.agora_aggregate.aggregate`, so any number of ranks gives the numbers of
   one process.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np
import pandas as pd
import torch
from torch import Tensor
from tqdm import tqdm

from humanbench.bodymodels import BodyModel, BodyModelRoot, load_body_model, resolve_root
from humanbench.loaders.agora import model_gender
from humanbench.metrics.agora import VertexSets, person_errors
from humanbench.metrics.agora_aggregate import BODY_PARTS, SMPLX_PARTS, ImageResult, aggregate
from humanbench.metrics.agora_matching import MatchResult, match_greedy, matching_validity
from humanbench.metrics.hmr import SMPLX_PARAMS, EvalContext, PersonBatch, PersonErrors
from humanbench.metrics.hmr_smplx import smplx_part_errors
from humanbench.predictions import PredictionError, Predictions, validate_predictions
from humanbench.schema import Sample, decode_sample
from humanbench.shards import Manifest, iter_encoded
from humanbench.shards.reader import slice_bounds

if TYPE_CHECKING:
    from humanbench.protocols.agora import MatchingProtocol

ADULT_BETAS = 10
"""Shape coefficients of an adult SMPL-X (more only where a prediction uses more)."""

KID_BETAS = 11
"""Betas of a kid: 10 shape coefficients, then the kid-template weight (AGORA convention)."""

SMPLX_JOINTS = 127
"""SMPL-X joints the official errors index (55 skeleton + 21 vertex joints + 51 face landmarks)."""

SMPLERX_AGORA_METRICS = ("pa_pve_all", "pa_pve_hands", "pa_pve_face", "pve_all", "pve_hands", "pve_face")
"""What SMPLer-X's AGORA ``evaluate`` computes (no joint errors)."""


# --------------------------------------------------------------------------- posing AGORA people


@lru_cache(maxsize=12)
def _smplx(root: BodyModelRoot | None, gender: str, kid: bool, num_betas: int, device: torch.device,
           dtype: torch.dtype) -> BodyModel:
    """SMPL-X of ``gender`` with ``num_betas`` shape coefficients (kid: plus the kid template); absolute hand poses."""
    return load_body_model("smplx", gender, root=root, age="kid" if kid else "adult", num_betas=num_betas,
                           device=device, dtype=dtype)


def _group_betas(betas: Tensor, kid: bool) -> Tensor:
    """Betas (n,B) of one group as its model takes them: kids their first 11; adults at least 10 columns, trailing
    all-zero columns dropped (an adult's zero kid-template column changes nothing)."""
    if kid:
        return betas[:, :KID_BETAS]
    used = torch.nonzero(betas.ne(0).any(dim=0)).flatten()
    width = max(ADULT_BETAS, int(used[-1]) + 1 if len(used) else 0)
    return torch.nn.functional.pad(betas[:, :width], (0, width - min(width, betas.shape[1])))


def pose_smplx(context: EvalContext, params: Mapping[str, Tensor], genders: Sequence[str],
               kids: Sequence[bool]) -> tuple[Tensor, Tensor]:
    """Pose N >= 1 people without translation with the SMPL-X models AGORA uses.

    Each (gender, kid) group goes through one model: kids through the kid model (``betas[:, :11]``, the last the
    kid-template weight), adults through the adult model with as many betas as they use (at least 10). Hand poses
    are absolute (the schema's and the predictions' convention). Translation is left out: every AGORA error is
    measured after aligning each side at its own root joint.

    Args:
        context: device, dtype and body-model folder.
        params: SMPL-X parameters, each (N, ·); ``betas`` (N, B) with B >= 11 where any person is a kid.
        genders: (N,) body-model genders.
        kids: (N,) bool.

    Returns:
        Vertices (N, 10475, 3) and joints (N, 127, 3) in the context's dtype and device.
    """
    root = resolve_root(context.root)
    groups = [(str(g), bool(k)) for g, k in zip(genders, kids)]
    vertices = joints = None
    for gender, kid in sorted(set(groups)):
        index = torch.as_tensor([i for i, group in enumerate(groups) if group == (gender, kid)], device=context.device)
        inputs = {n: params[n][index].to(context.device, context.dtype) for n in SMPLX_PARAMS if n in params}
        inputs["betas"] = _group_betas(inputs["betas"], kid)
        out = _smplx(root, gender, kid, inputs["betas"].shape[1] - kid, context.device, context.dtype)(**inputs)
        if vertices is None:
            vertices = out.vertices.new_empty((len(groups), *out.vertices.shape[1:]))
            joints = out.joints.new_empty((len(groups), *out.joints.shape[1:]))
        vertices[index], joints[index] = out.vertices, out.joints
    return vertices, joints


# --------------------------------------------------------------------------- agora/smplerx-val (per person)


def evaluate_agora_smplerx_val(batch: PersonBatch, context: EvalContext) -> PersonErrors:
    """SMPLer-X / OSX "AGORA-val" (protocols.md §2.6), one GT-boxed person at a time: all 10475 vertices, pred
    pelvis (J_regressor row 0) onto GT's, hands at the wrists, face at the neck, Procrustes per part.

    GT: the recorded-gender SMPL-X with the kid template wherever the kid weight (betas column 10, zero for
    adults) is set; pred: neutral SMPL-X (given vertices, else parameters).
    """
    gt = pose_smplx(context, batch.gt, batch.genders, (batch.gt["betas"][:, ADULT_BETAS] != 0).tolist())[0]
    errors = smplx_part_errors(context, context.pred_mesh("smplx", batch), gt)
    return PersonErrors({name: errors[name] for name in SMPLERX_AGORA_METRICS})


# --------------------------------------------------------------------------- agora/official (image level)


class MatchingOutcome(NamedTuple):
    """What :func:`evaluate_matching` gives the evaluation driver for its result record."""

    per_person: pd.DataFrame  # one row per matched GT person, miss and false positive
    metrics: dict[str, float]
    counts: dict[str, int]
    synthetic: bool


@dataclass(frozen=True)
class _Images:
    """GT of this rank's images; people of all images stacked (G people), image ``i`` owns rows
    ``offsets[i]:offsets[i + 1]``."""

    index: np.ndarray  # (I,) global sample index
    keys: np.ndarray  # (I,) str
    offsets: np.ndarray  # (I+1,)
    joints2d: np.ndarray  # (G,J,2) pixels of the protocol's image size
    valid: np.ndarray  # (G,) bool, isValid
    occlusion: np.ndarray  # (G,) percent
    kid: np.ndarray  # (G,) bool
    genders: np.ndarray  # (G,) str, body-model genders
    params: dict[str, np.ndarray]  # SMPL-X parameters (G, ·)
    synthetic: bool

    def people(self, image: int) -> slice:
        """The stacked rows of image ``image``."""
        return slice(int(self.offsets[image]), int(self.offsets[image + 1]))


def _image_people(sample: Sample, image_size: tuple[int, int]) -> dict[str, np.ndarray]:
    """One sample's people: 2D joints scaled to ``image_size``, flags, genders and SMPL-X parameters."""
    people = sample.people
    scale = np.array([image_size[0] / sample.width, image_size[1] / sample.height])
    joints2d = people["joints2d"][..., :2] * scale if "joints2d" in people else np.zeros((0, SMPLX_JOINTS, 2))
    return {"joints2d": joints2d, "valid": people["valid"], "occlusion": people.get("occlusion", np.zeros(0)),
            "kid": people["kid"], "genders": np.asarray(sample.genders, dtype=str).reshape(-1),
            **{name: people[name] for name in SMPLX_PARAMS}}


def _read_images(manifest: Manifest, image_size: tuple[int, int], rank: int, world: int) -> _Images:
    """Stream this rank's exact-once slice of the shards, keeping only what matching and posing need."""
    first, _ = slice_bounds(manifest.total_count, world, rank)
    keys, parts, synthetic = [], [], False
    for encoded in iter_encoded(manifest, rank=rank, world_size=world, num_workers=1, worker=0):
        sample = decode_sample(encoded)
        keys.append(sample.key)
        parts.append(_image_people(sample, image_size))
        synthetic |= sample.synthetic
    names = ("joints2d", "valid", "occlusion", "kid", "genders", *SMPLX_PARAMS)
    stacked = {name: np.concatenate([p[name] for p in parts]) if parts else np.zeros(0) for name in names}
    counts = [len(p["valid"]) for p in parts]
    return _Images(np.arange(first, first + len(keys)), np.asarray(keys, dtype=str), np.cumsum([0, *counts]),
                   stacked["joints2d"], stacked["valid"].astype(bool), stacked["occlusion"],
                   stacked["kid"].astype(bool), stacked["genders"], {name: stacked[name] for name in SMPLX_PARAMS},
                   synthetic)


def _check_predictions(pred: Predictions, expected: dict[str, int], protocol: MatchingProtocol) -> None:
    """Predictions the matching protocol can score: known keys, 2D joints, SMPL-X parameters or meshes."""
    validate_predictions(pred, expected, protocol.pred_body_model, require=("joints2d",), detections=True)
    problems = []
    if pred.joints2d.shape[1] < protocol.cost_joints:
        problems.append(f"joints2d: {pred.joints2d.shape[1]} joints per detection; the matching needs >= "
                        f"{protocol.cost_joints} ({protocol.image_size[0]}x{protocol.image_size[1]} pixels)")
    if pred.betas is None and (pred.vertices is None or pred.joints is None):
        problems.append("missing fields: the protocol needs SMPL-X parameters, or vertices and joints")
    if pred.vertices is not None and pred.joints is not None and pred.joints.shape[1] < SMPLX_JOINTS:
        problems.append(f"joints: {pred.joints.shape[1]} per detection; the errors need the {SMPLX_JOINTS} SMPL-X "
                        "joints (skeleton, vertex joints, face landmarks)")
    if problems:
        raise PredictionError(problems)


def _detection_rows(pred: Predictions, keys: np.ndarray) -> list[np.ndarray]:
    """Per image key, its prediction rows in the kit's order (detection indices sorted as strings)."""
    order = np.lexsort((pred.person.astype(str), pred.keys))
    sorted_keys = pred.keys[order]
    starts, stops = np.searchsorted(sorted_keys, keys, "left"), np.searchsorted(sorted_keys, keys, "right")
    return [order[a:b] for a, b in zip(starts, stops)]


def _match(images: _Images, pred: Predictions, rows: list[np.ndarray], protocol: MatchingProtocol) -> list[MatchResult]:
    """The official matching of every image (``rows[i]``: image ``i``'s detections)."""
    validity = matching_validity(images.valid, images.occlusion)
    return [match_greedy(pred.joints2d[r], images.joints2d[images.people(i)], validity[images.people(i)],
                         protocol.iou_threshold, protocol.cost_joints) for i, r in enumerate(rows)]


def _numpy(array: Tensor | np.ndarray) -> np.ndarray:
    """A float64 numpy copy of a tensor or array."""
    return (array.cpu().numpy() if isinstance(array, Tensor) else np.asarray(array)).astype(np.float64)


def _pred_meshes(context: EvalContext, pred: Predictions, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Joints (n,127,3) and vertices (n,V,3) of detections ``rows``: given ones, else their SMPL-X parameters posed
    like the kit (its gender, female kids on the neutral kid model)."""
    if pred.vertices is not None and pred.joints is not None:
        return _numpy(pred.joints[rows, :SMPLX_JOINTS]), _numpy(pred.vertices[rows])
    kids = pred.kid[rows] if pred.kid is not None else np.zeros(len(rows), bool)
    genders = pred.gender[rows] if pred.gender is not None else np.full(len(rows), "neutral")
    params = {name: context.tensor(array[rows]) for name, array in pred.arrays().items() if name in SMPLX_PARAMS}
    vertices, joints = pose_smplx(context, params, [model_gender("smplx", g, k) for g, k in zip(genders, kids)], kids)
    return _numpy(joints), _numpy(vertices)


def _pair_errors(context: EvalContext, images: _Images, pred: Predictions, gt_rows: np.ndarray, pred_rows: np.ndarray,
                 batch_size: int, progress: str | None) -> dict[str, np.ndarray]:
    """Official part errors (metres) of the matched (GT, detection) pairs, ``batch_size`` pairs at a time
    (``progress``: the progress bar's label, None for none).

    Returns:
        :data:`SMPLX_PARTS` key -> (M,) errors, M = len(gt_rows).
    """
    sets = context.index_sets
    vertex_sets = VertexSets(sets.body_verts_smplx, sets.mano_left_vertex_ids, sets.mano_right_vertex_ids,
                             sets.flame_vertex_ids)
    chunks: dict[str, list[np.ndarray]] = {part: [np.zeros(0)] for part in SMPLX_PARTS}
    for start in tqdm(range(0, len(gt_rows), batch_size), desc=progress, disable=progress is None, unit="batch"):
        gt, rows = gt_rows[start:start + batch_size], pred_rows[start:start + batch_size]
        with torch.no_grad():
            gt_vertices, gt_joints = pose_smplx(context, {n: context.tensor(a[gt]) for n, a in images.params.items()},
                                                images.genders[gt], images.kid[gt])
            pred_joints, pred_vertices = _pred_meshes(context, pred, rows)
        errors = person_errors(pred_joints, pred_vertices, _numpy(gt_joints), _numpy(gt_vertices), vertex_sets)
        for part, values in errors.items():
            chunks[part].append(values)
    return {part: np.concatenate(values) for part, values in chunks.items()}


def _image_results(images: _Images, matches: list[MatchResult], rows: list[np.ndarray], gt_rows: np.ndarray,
                   errors: dict[str, np.ndarray]) -> list[ImageResult]:
    """One :class:`ImageResult` per image (unmatched people's errors 0, orientation unknown: NaN)."""
    matched = np.zeros(len(images.valid), bool)
    matched[gt_rows] = True
    flat = {part: np.zeros(len(images.valid)) for part in errors}
    for part, values in errors.items():
        flat[part][gt_rows] = values
    results = []
    for i, (match, detections) in enumerate(zip(matches, rows)):
        people = images.people(i)
        results.append(ImageResult(
            valid=images.valid[people], kid=images.kid[people], matched=matched[people],
            errors={part: values[people] for part, values in flat.items()},
            n_false_positives=len(match.false_positives), has_predictions=len(detections) > 0,
            occlusion=images.occlusion[people], orientation=np.full(people.stop - people.start, np.nan)))
    return results


def _person_rows(images: _Images, pred: Predictions, matches: list[MatchResult], rows: list[np.ndarray],
                 gt_rows: np.ndarray, pred_rows: np.ndarray, errors: dict[str, np.ndarray]) -> pd.DataFrame:
    """Sidecar rows: every matched GT person (with its detection and part errors in mm), every miss (valid GT
    person without a detection) and every false positive (detection without a GT person)."""
    owner = np.repeat(np.arange(len(images.keys)), np.diff(images.offsets))
    local = np.arange(len(images.valid)) - images.offsets[owner]
    detection = np.full(len(images.valid), -1)
    detection[gt_rows] = pred.person[pred_rows]
    listed = images.valid  # every matched person is valid
    people = pd.DataFrame({
        "key": images.keys[owner][listed], "person": local[listed], "detection": detection[listed],
        "status": np.where(detection >= 0, "matched", "miss")[listed], "occlusion": images.occlusion[listed],
        "kid": pd.array(images.kid[listed], dtype="boolean"), "gender": images.genders[listed]})
    for part, values in errors.items():
        mm = np.full(len(images.valid), np.nan)
        mm[gt_rows] = 1000.0 * values
        people[part] = mm[listed]
    false = np.concatenate([r[m.false_positives] for r, m in zip(rows, matches)] + [np.zeros(0, np.int64)])
    false_positives = pd.DataFrame({"key": pred.keys[false], "person": -1, "detection": pred.person[false],
                                    "status": "false_positive"})
    return pd.concat([people, false_positives], ignore_index=True)


def _rank_outcome(protocol: MatchingProtocol, images: _Images, pred: Predictions, context: EvalContext,
                  batch_size: int, progress: bool) -> tuple[list[ImageResult], pd.DataFrame]:
    """This rank's images matched and scored: their :class:`ImageResult` s and sidecar rows."""
    rows = _detection_rows(pred, images.keys)
    matches = _match(images, pred, rows, protocol)
    pairs = [(images.offsets[i] + m.pairs[:, 1], r[m.pairs[:, 0]]) for i, (m, r) in enumerate(zip(matches, rows))]
    gt_rows = np.concatenate([g for g, _ in pairs] + [np.zeros(0, np.int64)]).astype(np.int64)
    pred_rows = np.concatenate([p for _, p in pairs] + [np.zeros(0, np.int64)]).astype(np.int64)
    errors = _pair_errors(context, images, pred, gt_rows, pred_rows, batch_size, protocol.id if progress else None)
    return (_image_results(images, matches, rows, gt_rows, errors),
            _person_rows(images, pred, matches, rows, gt_rows, pred_rows, errors))


def _counts(results: Sequence[ImageResult], summary_counts: dict[str, int], metrics: Mapping[str, float],
            n_detections: int) -> dict[str, int]:
    """Summary counts plus, for every reported metric, the number of people it averages (or scores)."""
    in_pred = [r for r in results if r.has_predictions]
    people = {
        "all": summary_counts["people"], "kid_all": summary_counts["kid_people"],
        "matched": summary_counts["TP"], "kid_matched": summary_counts["kid_TP"],
        "in_pred_images": int(sum(r.valid.sum() for r in in_pred)),
        "kid_in_pred_images": int(sum((r.valid & r.kid).sum() for r in in_pred)),
    }
    counts = {**summary_counts, "images": len(results), "images_with_predictions": len(in_pred),
              "detections": n_detections}
    for name in metrics:  # body errors: matched people; hands/face: valid people of images with predictions
        kid = name.startswith("kid")
        base = name[4:] if kid else name
        group = "matched" if base in BODY_PARTS else "in_pred_images" if base in SMPLX_PARTS else "all"
        counts[name] = people[f"kid_{group}" if kid else group]
    return counts


def evaluate_matching(protocol: MatchingProtocol, manifest: Manifest, pred: Predictions, context: EvalContext, *,
                      rank: int, world: int, gather: Callable[[Any], list[Any]], batch_size: int = 64,
                      progress: bool = True) -> MatchingOutcome:
    """Run a matching protocol on GT shards and detections (see the module doc).

    Args:
        protocol: the protocol (image size, cost joints, IoU gate).
        manifest: the GT shards (an accepted split of the protocol).
        pred: detections; ``person`` = detection index per image.
        context: device, dtype, body models and index sets.
        rank, world: this process and the number of processes.
        gather: every rank's object, in rank order (one element without torch.distributed).
        batch_size: matched pairs posed and scored at a time.
        progress: show a progress bar.

    Returns:
        The :class:`MatchingOutcome`: per-person rows, the protocol's metrics (undefined ones left out), counts
        (TP/FP/FN, people, images; per metric the people it covers) and whether anything synthetic was used.
    """
    images = _read_images(manifest, protocol.image_size, rank, world)
    expected = {key: count for part in gather(dict(zip(images.keys.tolist(), np.diff(images.offsets).tolist())))
                for key, count in part.items()}
    _check_predictions(pred, expected, protocol)
    results, frame = _rank_outcome(protocol, images, pred, context, batch_size, progress)
    gathered = gather((images.index, results, frame, images.synthetic or context.synthetic))
    order = np.argsort(np.concatenate([index for index, _, _, _ in gathered]), kind="stable")
    every = [result for _, part, _, _ in gathered for result in part]
    summary = aggregate([every[i] for i in order], protocol.gt_body_model)
    metrics = {name: float(value) for name, value in summary.metrics.items() if np.isfinite(value)}
    counts = {"people": summary.count, "TP": summary.tp, "FP": summary.fp, "FN": summary.fn,
              "kid_people": summary.kid_count, "kid_TP": summary.kid_tp, "kid_FN": summary.kid_fn}
    per_person = pd.concat([part for _, _, part, _ in gathered], ignore_index=True)
    per_person = per_person.sort_values(["key", "person", "detection"], kind="stable", ignore_index=True)
    return MatchingOutcome(per_person, metrics, _counts(every, counts, metrics, len(pred)),
                           any(synthetic for _, _, _, synthetic in gathered))
