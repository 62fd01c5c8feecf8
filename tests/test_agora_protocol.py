"""AGORA protocols end to end on the converted miniature: agora/official (matching, counts derived by hand, equal to
metrics.agora.evaluate on independently posed arrays, torchrun, AGORA-kit folders) and agora/smplerx-val (against a
per-person numpy reference)."""

from __future__ import annotations

import fcntl
import json
import pickle
import subprocess
import sys
import zipfile
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation

from humanbench.bodymodels import BodyModel, load_body_model, load_index_sets
from humanbench.cli import main
from humanbench.convert import convert
from humanbench.evaluation import EvaluationError, evaluate
from humanbench.loaders.agora import model_gender
from humanbench.metrics.agora import AgoraImage, VertexSets, evaluate_images
from humanbench.metrics.agora import evaluate as agora_evaluate
from humanbench.metrics.agora_aggregate import SMPLX_PARTS
from humanbench.predictions import Predictions, PredictionError, save_predictions
from humanbench.protocols import PROTOCOLS
from humanbench.schema import decode_sample
from humanbench.shards import iter_encoded
from humanbench.synthetic.official_files import write_model_folder
from humanbench.synthetic.raw.agora import write_miniature_agora

PARAMS = ("betas", "global_orient", "body_pose", "transl", "left_hand_pose", "right_hand_pose", "jaw_pose",
          "leye_pose", "reye_pose", "expression")
POSES = PARAMS[1:3] + PARAMS[4:9]
FLOWERS, CONSTRUCTION, ARCHVIZ = ("ag_validationset_renderpeople_bfh_flowers_5_15_00000",
                                  "ag_validationset_humanalloy_body_construction_5_15_00001",
                                  "ag_validationset_3dpeople_bfh_archviz_5_10_cam02_00002")


@dataclass
class Person:
    """One GT person of the converted validation split, with the miniature's own 4K joints."""

    key: str
    index: int
    gender: str  # body-model gender recorded by the converter
    kid: bool
    valid: bool
    occlusion: float
    params: dict[str, np.ndarray]
    joints2d_4k: np.ndarray  # (127,2) the dataframe's gt_joints_2d
    joints3d: np.ndarray  # (127,3) the dataframe's gt_joints_3d


@dataclass
class Agora:
    """Body models, converted shards of both validation image sets and a train split, the GT people."""

    root: Path

    @property
    def models(self) -> Path:
        return self.root / "models"

    def shards(self, split: str = "validation-1280") -> Path:
        return self.root / split

    def people(self) -> list[Person]:
        truth = np.load(self.root / "truth.npz")
        people = []
        for encoded in iter_encoded(self.shards()):
            sample = decode_sample(encoded)
            for p in range(sample.num_people):
                people.append(Person(sample.key, p, sample.genders[p], bool(sample.people["kid"][p]),
                                     bool(sample.people["valid"][p]), float(sample.people["occlusion"][p]),
                                     {n: sample.people[n][p] for n in PARAMS}, truth[f"{sample.key}/joints2d"][p],
                                     truth[f"{sample.key}/joints3d"][p]))
        return people


def _build(root: Path) -> None:
    models = write_model_folder(root / "models")
    miniature = write_miniature_agora(root / "raw", body_models=models)
    np.savez(root / "truth.npz", **{f"{key}/{name}": getattr(t, name)["smplx"] for key, t in miniature.images.items()
                                    for name in ("joints2d", "joints3d")})
    for split in ("validation-1280", "validation-3840", "train-1280"):
        convert("agora", root / "raw", root / split, split=split, body_models=models, progress=False)


@pytest.fixture(scope="module")
def agora(tmp_path_factory, worker_id) -> Agora:
    """Built once per session (xdist workers share it under a file lock)."""
    base = tmp_path_factory.getbasetemp()
    root = (base if worker_id == "master" else base.parent) / "agora-protocol"
    root.mkdir(exist_ok=True)
    with open(root / "lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (root / "train-1280" / "manifest.json").exists():
            _build(root)
    return Agora(root)


@pytest.fixture(scope="module")
def people(agora) -> list[Person]:
    return agora.people()


def find(people: list[Person], key: str, index: int) -> Person:
    return next(p for p in people if p.key == key and p.index == index)


def detections(chosen: list[tuple[Person, int]], noise: float = 0.0, seed: int = 0) -> Predictions:
    """Predictions copying the chosen GT people (detection index given), 2D joints exact, poses plus noise."""
    rng = np.random.default_rng(seed)
    params = {n: np.stack([p.params[n] for p, _ in chosen]) for n in PARAMS}
    for name in POSES:
        params[name] = params[name] + rng.normal(scale=noise, size=params[name].shape)
    return Predictions(keys=np.array([p.key for p, _ in chosen]), person=np.array([d for _, d in chosen]),
                       body_model="smplx", gender=np.array([p.gender for p, _ in chosen]),
                       kid=np.array([p.kid for p, _ in chosen]), joints2d=np.stack([p.joints2d_4k for p, _ in chosen]),
                       **params)


def hand_built(people: list[Person], noise: float = 0.02) -> Predictions:
    """The detection set of :func:`test_hand_built_detections_give_the_hand_derived_counts`."""
    far = Person(**{**vars(find(people, ARCHVIZ, 0)), "joints2d_4k": find(people, ARCHVIZ, 0).joints2d_4k + [6000, 0]})
    chosen = [(find(people, FLOWERS, 0), 0), (find(people, FLOWERS, 1), 1), (find(people, FLOWERS, 2), 2),
              (find(people, CONSTRUCTION, 0), 0),
              (find(people, ARCHVIZ, 0), 0), (find(people, ARCHVIZ, 1), 1), (far, 10)]
    return detections(chosen, noise)


def run(agora: Agora, pred: Predictions | Path, tmp_path: Path, protocol: str = "agora/official",
        split: str = "validation-1280"):
    path = pred if isinstance(pred, Path) else save_predictions(pred, tmp_path / "pred.npz")
    return evaluate(protocol, agora.shards(split), path, body_models=agora.models, progress=False, out=tmp_path / "res")


# --------------------------------------------------------------------------- agora/official


def test_gt_as_prediction_scores_f1_one_and_zero_errors(agora, people, tmp_path) -> None:
    record = run(agora, detections([(p, p.index) for p in people if p.valid]), tmp_path)
    protocol = PROTOCOLS["agora/official"]
    assert list(record.metrics) == [m.name for m in protocol.metrics]  # every official value (kids present)
    assert record.metrics["f1"] == record.metrics["precision"] == record.metrics["recall"] == 1.0
    assert all(record.metrics[m.name] == 0.0 for m in protocol.metrics if m.unit == "mm")
    assert (record.counts["TP"], record.counts["FP"], record.counts["FN"], record.counts["people"]) == (6, 0, 0, 6)
    assert record.counts["images"] == 3 and record.counts["kid_people"] == 2
    rows = record.per_person
    assert (rows["status"] == "matched").all() and (rows["person"] == rows["detection"]).all()
    assert np.abs(rows[list(SMPLX_PARTS)].to_numpy()).max() < 1e-9
    assert record.synthetic and record.protocol["level"] == "image"


def test_hand_built_detections_give_the_hand_derived_counts(agora, people, tmp_path) -> None:
    """Valid GT people: flowers 2 (Tom is 95 % occluded: invalid), construction 2, archviz 2 -> 6, kids 2.

    - flowers: detections on Tom (0), the kid Mia (1), Amaya (2). The zero-cost pair (0, Tom) comes first: the
      IoU passes, Tom is invalid, so he is consumed and detection 0 stays free; Mia and Amaya match; every GT
      person is consumed, matching stops: detection 0 is a false positive.
    - construction: one detection, on Sara; after it matches, #matched >= #detections stops the loop; the kid
      Leo is a miss.
    - archviz: Eric (0), Amaya (1) and detection 10 far to the right (IoU 0 with everyone): a false positive.

    TP 5, FP 2, FN 1: precision 5/7 = 0.71, recall 5/6 = 0.83, F1 = 5 / (5 + 3/2) = 0.77. Kids: 2, 1 matched,
    with all 2 FPs: precision 1/3 = 0.33, recall 0.5, F1 = 1 / (1 + 3/2) = 0.4.
    """
    record = run(agora, hand_built(people), tmp_path)
    counts = record.counts
    assert (counts["people"], counts["TP"], counts["FP"], counts["FN"]) == (6, 5, 2, 1)
    assert (counts["kid_people"], counts["kid_TP"], counts["kid_FN"], counts["detections"]) == (2, 1, 1, 7)
    metrics = record.metrics
    assert (metrics["precision"], metrics["recall"], metrics["f1"]) == (0.71, 0.83, 0.77)
    assert (metrics["kid_precision"], metrics["kid_recall"], metrics["kid_f1"]) == (0.33, 0.5, 0.4)
    assert metrics["body-NMVE"] == float(np.round(metrics["body-MVE"] / 0.77, 1))
    rows = record.per_person
    status = rows.groupby("key")["status"].apply(sorted).to_dict()
    assert status == {FLOWERS: ["false_positive", "matched", "matched"], CONSTRUCTION: ["matched", "miss"],
                      ARCHVIZ: ["false_positive", "matched", "matched"]}
    false_positives = rows[rows["status"] == "false_positive"]
    assert false_positives["detection"].tolist() == [10, 0] and (false_positives["person"] == -1).all()
    miss = rows[rows["status"] == "miss"].iloc[0]
    assert (miss["person"], bool(miss["kid"]), miss["occlusion"]) == (1, True, 55.0) and np.isnan(miss["body-MVE"])
    matched = rows[rows["status"] == "matched"]
    assert len(matched) == 5 and (matched[list(SMPLX_PARTS)] > 0).all().all()
    assert counts["body-MVE"] == 5 and counts["lhand-MVE"] == 6 and counts["kid-body-MVE"] == 1


@lru_cache(maxsize=None)
def reference_model(gender: str, kid: bool, root: Path) -> BodyModel:
    return load_body_model("smplx", gender, root=root, age="kid" if kid else "adult", dtype=torch.float64)


def reference_mesh(gender: str, kid: bool, params: dict[str, np.ndarray], root: Path) -> tuple[np.ndarray, np.ndarray]:
    """One person posed on its own, camera frame with translation: joints (127,3), vertices (V,3)."""
    model = reference_model(gender, kid, root)
    inputs = {n: torch.as_tensor(v[None], dtype=torch.float64) for n, v in params.items()}
    inputs["betas"] = inputs["betas"][:, :11 if kid else 10]
    out = model(**inputs)
    return out.joints[0].numpy(), out.vertices[0].numpy()


def reference_images(agora: Agora, people: list[Person], pred: Predictions) -> list[AgoraImage]:
    """The kit's per-image inputs built without the driver: the miniature's own gt_joints_2d, every person and
    detection posed one at a time with translation, detections in the kit's file-name order."""
    images = []
    for key in sorted({p.key for p in people}):
        gts = [p for p in people if p.key == key]
        gt = [reference_mesh(p.gender, p.kid, p.params, agora.models) for p in gts]
        rows = sorted(np.flatnonzero(pred.keys == key), key=lambda i: str(pred.person[i]))
        preds = [reference_mesh(model_gender("smplx", str(pred.gender[i]), bool(pred.kid[i])), bool(pred.kid[i]),
                                {n: getattr(pred, n)[i] for n in PARAMS}, agora.models) for i in rows]
        images.append(AgoraImage(
            gt_joints2d=np.stack([p.joints2d_4k for p in gts]), gt_joints3d=np.stack([j for j, _ in gt]),
            gt_verts=np.stack([v for _, v in gt]), is_valid=np.array([p.valid for p in gts]),
            occlusion=np.array([p.occlusion for p in gts]), kid=np.array([p.kid for p in gts]),
            orientation=np.zeros(len(gts)), pred_joints2d=pred.joints2d[np.array(rows, dtype=int)],
            pred_joints3d=np.stack([j for j, _ in preds]) if preds else np.zeros((0, 127, 3)),
            pred_verts=np.stack([v for _, v in preds]) if preds else np.zeros((0, 10475, 3))))
    return images


@pytest.mark.parametrize("drop", [None, CONSTRUCTION])
def test_official_equals_metrics_agora_on_independently_posed_arrays(agora, people, tmp_path, drop) -> None:
    pred = hand_built(people)
    if drop:  # an image without any prediction: all its valid people are misses, its hands/faces do not count
        keep = pred.keys != drop
        pred = Predictions(**{n: (a[keep] if isinstance(a, np.ndarray) else a) for n, a in vars(pred).items()})
    record = run(agora, pred, tmp_path)
    sets = load_index_sets(agora.models)
    vertex_sets = VertexSets(sets.body_verts_smplx, sets.mano_left_vertex_ids, sets.mano_right_vertex_ids,
                             sets.flame_vertex_ids)
    images = reference_images(agora, people, pred)
    assert all(np.abs(im.gt_joints3d - np.stack([p.joints3d for p in people if p.key == key])).max() < 1e-6
               for im, key in zip(images, sorted({p.key for p in people})))
    summary = agora_evaluate(images, vertex_sets)
    assert record.metrics == pytest.approx({k: v for k, v in summary.metrics.items() if np.isfinite(v)}, abs=1e-9)
    assert (record.counts["TP"], record.counts["FP"], record.counts["FN"]) == (summary.tp, summary.fp, summary.fn)
    matched = record.per_person[record.per_person["status"] == "matched"].sort_values(["key", "person"])
    mve = [1000 * v for im in evaluate_images(images, vertex_sets) for v in im.errors["body-MVE"][im.matched]]
    np.testing.assert_allclose(matched["body-MVE"], mve, rtol=0, atol=1e-6)


DIST_SCRIPT = """
import sys, json, torch.distributed as dist
from humanbench.evaluation import evaluate
dist.init_process_group("gloo")
record = evaluate("agora/official", sys.argv[1], sys.argv[2], body_models=sys.argv[3], out=None, progress=False)
if dist.get_rank() == 0:
    record.per_person.to_json(sys.argv[4])
    json.dump({"metrics": record.metrics, "counts": record.counts}, open(sys.argv[4] + ".summary", "w"))
dist.destroy_process_group()
"""


@pytest.mark.slow
def test_two_process_torchrun_equals_one_process(agora, people, tmp_path) -> None:
    import pandas as pd

    single = run(agora, hand_built(people), tmp_path)
    (tmp_path / "dist.py").write_text(DIST_SCRIPT)
    subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "--master-port", "29547",
                    str(tmp_path / "dist.py"), str(agora.shards()), str(tmp_path / "pred.npz"), str(agora.models),
                    str(tmp_path / "rows.json")], check=True, capture_output=True, timeout=300)
    summary = json.loads((tmp_path / "rows.json.summary").read_text())
    assert summary["metrics"] == single.metrics and summary["counts"] == single.counts
    rows = pd.read_json(tmp_path / "rows.json")
    assert len(rows) == len(single.per_person) == 8
    np.testing.assert_allclose(rows[list(SMPLX_PARTS)].to_numpy(dtype=float),
                               single.per_person[list(SMPLX_PARTS)].to_numpy(dtype=float), atol=1e-9)


def kit_folder(agora: Agora, pred: Predictions, folder: Path, variant: str) -> Path:
    """The detections as AGORA-kit pickles: 'meshes' (verts + allSmplJoints3d, posed with translation) or
    'rotmats' (params as rotation matrices, gender, kid_flag; the kit adds no hand mean to those)."""
    folder.mkdir(parents=True)
    for i, key in enumerate(pred.keys):
        params = {n: getattr(pred, n)[i] for n in PARAMS}
        content = {"joints": pred.joints2d[i][None], "gender": str(pred.gender[i]), "kid_flag": bool(pred.kid[i])}
        if variant == "meshes":
            joints, verts = reference_mesh(model_gender("smplx", str(pred.gender[i]), bool(pred.kid[i])),
                                           bool(pred.kid[i]), params, agora.models)
            content.update(verts=verts, allSmplJoints3d=joints[None])
        else:
            betas = params["betas"][:11 if pred.kid[i] else 10]
            rotations = {n: Rotation.from_rotvec(params[n].reshape(-1, 3)).as_matrix()[None] for n in POSES}
            content.update(pose2rot=False, num_betas=len(betas),
                           params={**rotations, "betas": betas[None], "transl": params["transl"][None],
                                   "expression": params["expression"][None]})
        (folder / f"{key}_personId_{pred.person[i]}.pkl").write_bytes(pickle.dumps(content, protocol=2))
    return folder


@pytest.mark.parametrize("variant", ["meshes", "rotmats"])
def test_agora_kit_folders_evaluate_end_to_end(agora, people, tmp_path, variant, capsys) -> None:
    pred = hand_built(people)
    expected = run(agora, pred, tmp_path)
    folder = kit_folder(agora, pred, tmp_path / "kit" / "predictions", variant)
    record = run(agora, folder.parent, tmp_path)
    assert record.metrics == pytest.approx(expected.metrics, abs=1e-9) and record.counts == expected.counts
    archive = tmp_path / "predictions.zip"
    with zipfile.ZipFile(archive, "w") as zipped:
        for file in sorted(folder.iterdir()):
            zipped.write(file, f"predictions/{file.name}")
    code = main(["eval", "--protocol", "agora/official", "--shards", str(agora.shards()), "--pred", str(archive),
                 "--body-models", str(agora.models), "--out", str(tmp_path / "cli"), "--method", "Kit"])
    out = capsys.readouterr().out
    assert code == 0 and "Kit under agora/official v1 [synthetic]" in out and "f1: 0.77  (6 people)" in out
    saved = json.loads((tmp_path / "cli" / "Kit__agora-official.json").read_text())
    assert saved["metrics"] == pytest.approx(expected.metrics, abs=1e-9)
    assert len(saved["provenance"]["predictions"]["sha256"]) == 64


def test_predictions_the_matching_cannot_use_are_refused(agora, people, tmp_path) -> None:
    pred = hand_built(people)
    pred.joints2d = pred.joints2d[:, :20]
    with pytest.raises(PredictionError, match=r"joints2d: 20 joints per detection; the matching needs >= 24"):
        run(agora, pred, tmp_path)
    pred.joints2d = None
    with pytest.raises(PredictionError, match=r"the protocol needs \['joints2d'\]"):
        run(agora, pred, tmp_path)


def test_both_validation_image_sets_are_accepted_and_other_splits_refused(agora, people, tmp_path) -> None:
    pred = hand_built(people)
    low = run(agora, pred, tmp_path)
    assert run(agora, pred, tmp_path, split="validation-3840").metrics == low.metrics
    with pytest.raises(EvaluationError, match="agora/validation-1280 or validation-3840; these shards hold "
                                              "agora/train-1280"):
        run(agora, pred, tmp_path, split="train-1280")


# --------------------------------------------------------------------------- agora/smplerx-val


def procrustes(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """x (K,3) aligned onto y by rotation, isotropic scale and translation (reflection fixed)."""
    x0, y0 = x - x.mean(0), y - y.mean(0)
    u, _, vt = np.linalg.svd(x0.T @ y0)
    rotation = vt.T @ np.diag([1, 1, np.sign(np.linalg.det(vt.T @ u.T))]) @ u.T
    scale = np.trace(rotation @ x0.T @ y0) / (x0 ** 2).sum()
    return scale * x0 @ rotation.T + y.mean(0)


def reference_smplerx(agora: Agora, valid: list[Person], pred: dict[str, np.ndarray]) -> dict[str, float]:
    """SMPLer-X's AGORA evaluate, one person at a time in numpy (metres -> mm)."""
    sets = load_index_sets(agora.models)
    regressor = reference_model("neutral", False, agora.models).smplx_model.J_regressor.numpy()
    hands, face = (sets.mano_left_vertex_ids, sets.mano_right_vertex_ids), sets.flame_vertex_ids
    error = lambda a, b: 1000 * np.sqrt(((a - b) ** 2).sum(1)).mean()  # noqa: E731
    values: dict[str, list[float]] = {}
    for i, person in enumerate(valid):
        gt = reference_mesh(person.gender, person.kid, person.params, agora.models)[1]
        out = reference_mesh("neutral", False, {n: a[i] for n, a in pred.items()}, agora.models)[1]
        jg, jo = regressor @ gt, regressor @ out
        moved = lambda ids, joint: out[ids] - jo[joint] + jg[joint]  # noqa: E731
        everything = np.arange(len(gt))
        person_values = {
            "pve_all": error(moved(everything, 0), gt), "pa_pve_all": error(procrustes(out, gt), gt),
            "pve_hands": np.mean([error(moved(ids, w), gt[ids]) for ids, w in zip(hands, (20, 21))]),
            "pa_pve_hands": np.mean([error(procrustes(out[ids], gt[ids]), gt[ids]) for ids in hands]),
            "pve_face": error(moved(face, 12), gt[face]),
            "pa_pve_face": error(procrustes(out[face], gt[face]), gt[face]),
        }
        for name, value in person_values.items():
            values.setdefault(name, []).append(value)
    return {name: float(np.mean(v)) for name, v in values.items()}


def test_smplerx_val_matches_a_per_person_numpy_reference(agora, people, tmp_path) -> None:
    valid = [p for p in people if p.valid]
    rng = np.random.default_rng(3)
    params = {n: np.stack([p.params[n] for p in valid]) for n in PARAMS}
    params["betas"] = params["betas"][:, :10] + rng.normal(scale=0.3, size=(len(valid), 10))
    for name in POSES:
        params[name] = params[name] + rng.normal(scale=0.05, size=params[name].shape)
    pred = Predictions(keys=np.array([p.key for p in valid]), person=np.array([p.index for p in valid]),
                       body_model="smplx", **params)
    record = run(agora, pred, tmp_path, "agora/smplerx-val", split="validation-3840")
    assert record.counts["people"] == 6 and sorted(record.metrics) == sorted(reference_smplerx(agora, valid, params))
    assert record.metrics == pytest.approx(reference_smplerx(agora, valid, params), abs=1e-6)
    assert record.protocol["accepted_splits"] == ["validation-1280", "validation-3840"]
