"""``humanbench eval`` for mesh recovery: GT shards + predictions -> a result record under a named protocol.

Each process reads its exact-once slice of the shards (:func:`humanbench.shards.iter_encoded`),
keeps the people the protocol counts, pairs them with their predictions and evaluates them in
batches. Under ``torchrun`` the per-person rows are gathered so that every rank sees all of them;
the record is written by rank 0 and is identical to a single-process run (rows are sorted by
sample key and person before averaging). Matching protocols (AGORA official: detections matched to GT
people per image) run their own image-level driver (``protocol.evaluate``) and give the same record.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from tqdm import tqdm

from humanbench import __version__
from humanbench.agora_predictions import import_agora_predictions
from humanbench.conversion import current_command
from humanbench.errors import HumanbenchError
from humanbench.metrics.hmr import EvalContext, PersonBatch
from humanbench.predictions import Predictions, PredictionError, load_predictions, validate_predictions
from humanbench.protocols import AvatarProtocol, MatchingProtocol, MeshProtocol, get_protocol
from humanbench.records import ResultRecord, write_record
from humanbench.schema import decode_sample
from humanbench.shards import Manifest, iter_encoded
from humanbench.shards.manifest import fingerprint_files, sha256_file


ADULT_BETAS = 10
"""Shape coefficients of the neutral adult model that per-person protocols pose predictions with."""


class EvaluationError(HumanbenchError):
    """Shards, predictions and protocol that do not fit together."""


@dataclass
class _People:
    """The GT people one process evaluates, stacked: keys (N,), person (N,), genders, arrays (N,...)."""

    keys: np.ndarray
    person: np.ndarray
    genders: list[str]
    arrays: dict[str, np.ndarray]
    camera_K: np.ndarray  # (N,3,3)
    image_size: np.ndarray  # (N,2) width, height
    synthetic: bool
    sample_people: dict[str, int]  # every sample of the slice -> its number of GT people
    order: list[tuple]  # (N,) the protocol's global ordering key of each person (subsampling)

    def take(self, keep: np.ndarray) -> "_People":
        """The people where ``keep`` (N,) bool is True."""
        index = np.flatnonzero(keep)
        return _People(self.keys[index], self.person[index], [self.genders[i] for i in index],
                       {n: a[index] for n, a in self.arrays.items()}, self.camera_K[index], self.image_size[index],
                       self.synthetic, self.sample_people, [self.order[i] for i in index])


def _distributed() -> tuple[int, int]:
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return 0, 1


def _gather(obj: Any) -> list[Any]:
    """Every rank's ``obj``, in rank order (a one-element list without torch.distributed)."""
    rank, world = _distributed()
    if world == 1:
        return [obj]
    gathered: list[Any] = [None] * world
    torch.distributed.all_gather_object(gathered, obj)
    return gathered


def _selected_people(manifest: Manifest, protocol: MeshProtocol, rank: int, world: int) -> _People:
    """GT people of this rank's slice that the protocol's person flag selects (before any subsampling)."""
    keys, person, genders, rows, cameras, sizes, order = [], [], [], [], [], [], []
    synthetic, sample_people = False, {}
    for encoded in iter_encoded(manifest, rank=rank, world_size=world, num_workers=1, worker=0):
        sample = decode_sample(encoded)
        synthetic |= sample.synthetic
        sample_people[sample.key] = sample.num_people
        if sample.body_model != protocol.gt_body_model:
            raise EvaluationError(f"sample {sample.key!r}: GT body model {sample.body_model!r}, protocol {protocol.id} "
                                  f"expects {protocol.gt_body_model!r}")
        flags = sample.people if protocol.person_flag == "valid" else sample.flags
        if protocol.person_flag not in flags:
            raise EvaluationError(f"sample {sample.key!r}: protocol {protocol.id} selects people by "
                                  f"{protocol.person_flag!r}, which this sample does not have (flags: {sorted(sample.flags)})")
        for p in np.flatnonzero(flags[protocol.person_flag]):
            keys.append(sample.key)
            person.append(int(p))
            genders.append(sample.genders[p])
            rows.append({name: arr[p] for name, arr in sample.people.items()})
            cameras.append(sample.people["person_K"][p] if "person_K" in sample.people else sample.camera.K)
            sizes.append((sample.width, sample.height))
            order.append(protocol.person_order(sample, int(p)) if protocol.person_order else (sample.key, int(p)))
    arrays = {name: np.stack([r[name] for r in rows]) for name in (rows[0] if rows else {})}
    return _People(np.asarray(keys, dtype=str), np.asarray(person, dtype=np.int64), genders, arrays,
                   np.asarray(cameras, dtype=np.float64).reshape(-1, 3, 3), np.asarray(sizes, dtype=np.float64).reshape(-1, 2),
                   synthetic, sample_people, order)


def _subsample(people: _People, every: int) -> _People:
    """Keep every ``every``-th person of the protocol's global person order, counted over all ranks."""
    everyone = sorted(row for part in _gather(list(zip(people.order, people.keys.tolist(), people.person.tolist())))
                      for row in part)
    chosen = {(key, person) for i, (_, key, person) in enumerate(everyone) if i % every == 0}
    return people.take(np.array([(k, int(p)) in chosen for k, p in zip(people.keys, people.person)], dtype=bool))


def _pair_ids(keys: np.ndarray, person: np.ndarray) -> np.ndarray:
    return np.char.add(np.char.add(keys.astype(str), "\x00"), person.astype(str))


def _prediction_rows(pred: Predictions, people: _People) -> np.ndarray:
    """Row of ``pred`` for each GT person; raises naming counts and the first missing pairs."""
    ids = _pair_ids(pred.keys, pred.person)
    order = np.argsort(ids)
    wanted = _pair_ids(people.keys, people.person)
    slot = np.clip(np.searchsorted(ids[order], wanted), 0, max(len(ids) - 1, 0))
    found = (len(ids) > 0) & (ids[order][slot] == wanted) if len(ids) else np.zeros(len(wanted), bool)
    if not found.all():
        missing = np.flatnonzero(~found)
        first = ", ".join(f"({people.keys[i]!r}, {people.person[i]})" for i in missing[:5])
        raise PredictionError([f"missing: {len(missing)} evaluated (sample, person) pair(s) without a prediction, "
                               f"first: {first}"])
    return order[slot]


def _check_shards(protocol: MeshProtocol | MatchingProtocol, manifest: Manifest) -> None:
    """The shards must hold the protocol's dataset and its split (or one of its ``accepted_splits``)."""
    splits = getattr(protocol, "accepted_splits", None) or (protocol.split,)
    if manifest.dataset != protocol.dataset or manifest.split not in splits:
        raise EvaluationError(f"protocol {protocol.id} is defined on {protocol.dataset}/{' or '.join(splits)}; these "
                              f"shards hold {manifest.dataset}/{manifest.split}")


def _load_predictions(path: Path, body_models: str | Path | None) -> Predictions:
    """A predictions file (.npz / .parquet), or an AGORA-kit folder or .zip of per-person pickles."""
    if path.is_dir() or path.suffix == ".zip":
        return import_agora_predictions(path, body_models=body_models)
    return load_predictions(path)


def _evaluate_people(protocol: MeshProtocol, people: _People, pred: Predictions, context: EvalContext,
                     batch_size: int, progress: bool) -> pd.DataFrame:
    """Per-person errors (mm) of this process's people as a DataFrame."""
    rows = _prediction_rows(pred, people)
    pred_arrays = {name: arr[rows] for name, arr in pred.arrays().items()
                   if name not in ("keys", "person", "gender", "kid", "score", "joints2d")}
    if "betas" in pred_arrays and pred_arrays["betas"].shape[1] > ADULT_BETAS:
        raise PredictionError([f"betas: {pred_arrays['betas'].shape[1]} per person, but {protocol.id} poses predictions "
                               f"with the neutral adult {protocol.pred_body_model} model ({ADULT_BETAS} betas); kid "
                               f"predictions (11 betas) belong to protocols that model kids (agora/official)"])
    columns: dict[str, list[np.ndarray]] = {}
    for start in tqdm(range(0, len(people.keys), batch_size), desc=protocol.id, disable=not progress, unit="batch"):
        part = slice(start, start + batch_size)
        batch = PersonBatch(keys=list(people.keys[part]), person=people.person[part], genders=people.genders[part],
                            gt={n: context.tensor(a[part]) for n, a in people.arrays.items() if a.dtype.kind == "f"},
                            pred={n: context.tensor(a[part]) for n, a in pred_arrays.items()},
                            camera_K=context.tensor(people.camera_K[part]), image_size=context.tensor(people.image_size[part]))
        with torch.no_grad():
            errors = protocol.evaluate(batch, context)
        for name, values in errors.values.items():
            columns.setdefault(name, []).append(values.cpu().numpy() * 1000.0)
        for name, values in errors.per_joint.items():
            columns.setdefault(f"{name}_per_joint", []).append(values.cpu().numpy() * 1000.0)
    frame = pd.DataFrame({"key": people.keys, "person": people.person, "gender": people.genders})
    for name, parts in columns.items():
        values = np.concatenate(parts)
        frame[name] = list(values) if values.ndim > 1 else values
    return frame


def summarize(protocol: MeshProtocol, frame: pd.DataFrame) -> tuple[dict[str, float], dict[str, int], dict[str, list[float]]]:
    """Metrics (mean over the people a metric is defined for), counts and per-joint means from per-person rows."""
    metrics, counts, per_joint = {}, {"people": len(frame), "samples": int(frame["key"].nunique())}, {}
    for spec in protocol.metrics:
        values = frame[spec.name].to_numpy(dtype=np.float64)
        defined = ~np.isnan(values)
        metrics[spec.name] = float(values[defined].mean()) if defined.any() else float("nan")
        counts[spec.name] = int(defined.sum())
        if f"{spec.name}_per_joint" in frame:
            stacked = np.stack(frame[f"{spec.name}_per_joint"].to_numpy())
            per_joint[spec.name] = [float(v) for v in stacked.mean(axis=0)]
    return metrics, counts, per_joint


def _evaluate_mesh(protocol: MeshProtocol, manifest: Manifest, pred: Predictions, context: EvalContext, rank: int,
                   world: int, batch_size: int, progress: bool
                   ) -> tuple[pd.DataFrame, dict[str, float], dict[str, int], dict[str, list[float]], bool]:
    """Per-person protocols: this rank's people evaluated in batches, rows gathered from all ranks and averaged.

    Returns per-person rows, metrics, counts, per-joint means and whether anything synthetic was used.
    """
    people = _selected_people(manifest, protocol, rank, world)
    if protocol.subsample > 1:
        people = _subsample(people, protocol.subsample)
    expected = {key: count for part in _gather(people.sample_people) for key, count in part.items()}
    validate_predictions(pred, expected, protocol.pred_body_model, detections=True)
    gathered = _gather((_evaluate_people(protocol, people, pred, context, batch_size, progress and rank == 0),
                        people.synthetic or context.synthetic))
    frame = pd.concat([f for f, _ in gathered], ignore_index=True).sort_values(["key", "person"], kind="stable",
                                                                             ignore_index=True)
    metrics, counts, per_joint = summarize(protocol, frame)
    return frame, metrics, counts, per_joint, any(s for _, s in gathered)


def evaluate(protocol_id: str, shards: str | Path, predictions: str | Path, *, out: str | Path | None = None,
             method: str | None = None, body_models: str | Path | None = None, device: str | None = None,
             batch_size: int = 64, progress: bool = True, command: str | None = None) -> ResultRecord:
    """Evaluate ``predictions`` on the GT ``shards`` under protocol ``protocol_id``; write the record to ``out``."""
    protocol = get_protocol(protocol_id)
    if isinstance(protocol, AvatarProtocol):
        raise EvaluationError(f"protocol {protocol_id} scores rendered images, not predictions: use "
                              f"humanbench.api.evaluate_renders(protocol, shards, renders) or "
                              f"'humanbench eval --protocol {protocol_id} --shards DIR --renders DIR'")
    shards, predictions = Path(shards), Path(predictions)
    manifest = Manifest.load(shards)
    _check_shards(protocol, manifest)
    pred = _load_predictions(predictions, body_models)
    rank, world = _distributed()
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    context = EvalContext(body_models, device=device)
    if isinstance(protocol, MatchingProtocol):
        frame, metrics, counts, synthetic = protocol.evaluate(protocol, manifest, pred, context, rank=rank, world=world,
                                                              gather=_gather, batch_size=batch_size,
                                                              progress=progress and rank == 0)
        per_joint: dict[str, list[float]] = {}
    else:
        frame, metrics, counts, per_joint, synthetic = _evaluate_mesh(protocol, manifest, pred, context, rank, world,
                                                                      batch_size, progress)
    record = ResultRecord(
        method=method or predictions.stem, protocol=protocol.describe(), metrics=metrics, counts=counts,
        per_joint=per_joint, synthetic=synthetic, per_person=frame,
        provenance={
            "humanbench_version": __version__, "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
            "command": command if command is not None else current_command(),
            "shards": {"path": str(shards), "dataset": manifest.dataset, "split": manifest.split,
                       "manifest_sha256": sha256_file(shards / "manifest.json"),
                       "source_fingerprint": manifest.source_fingerprint},
            "predictions": {"path": str(predictions), "sha256": sha256_file(predictions) if predictions.is_file()
                            else fingerprint_files([predictions], root=predictions)},
            "body_models": "synthetic" if context.synthetic else str(context.root or "HUMANBENCH_BODY_MODELS"),
            "index_sets": dict(context.index_sets.sources) if "index_sets" in context.__dict__ else {},
            "device": str(context.device), "world_size": world,
        },
    )
    if out is not None and rank == 0:
        write_record(record, out)
    return record
