"""Mesh evaluation under named protocols: numbers against an independent reference, records, errors."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch

from humanbench.bodymodels import load_body_model, load_index_sets
from humanbench.conversion import write_shards
from humanbench.errors import HumanbenchError
from humanbench.evaluation import EvaluationError, evaluate
from humanbench.predictions import Predictions, PredictionError, save_predictions
from humanbench.records import RecordError, read_record
from humanbench.synthetic.world import SyntheticWorld, WorldConfig

H36M_TO_J14 = [6, 5, 4, 1, 2, 3, 16, 15, 14, 11, 12, 13, 8, 10]


def pw3d_like_samples(start: int = 0):
    """Synthetic-world frames dressed as 3DPW test samples (campose_valid: the second person of even frames is off)."""
    world = SyntheticWorld(WorldConfig(sequences=2, frames=3, width=64, height=64, dataset="3dpw", split="test", seed=5))
    for sample in world.samples(start):
        flag = np.ones(sample.num_people, bool)
        if sample.num_people > 1 and sample.frame % 2 == 0:
            flag[1] = False
        yield dataclasses.replace(sample, flags={"campose_valid": flag})


@pytest.fixture(scope="module")
def shards(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("pw3d") / "shards"
    write_shards(pw3d_like_samples, out, total=6, dataset="3dpw", split="test", source_fingerprint="test", progress=False)
    return out


@pytest.fixture(scope="module")
def gt_people(shards):
    from humanbench.schema import decode_sample
    from humanbench.shards import iter_encoded

    people = []
    for encoded in iter_encoded(shards):
        sample = decode_sample(encoded)
        for p in np.flatnonzero(sample.flags["campose_valid"]):
            people.append((sample.key, int(p), sample.genders[p], {k: v[p] for k, v in sample.people.items()}))
    return people


def noisy_predictions(gt_people, scale: float, seed: int = 0) -> Predictions:
    rng = np.random.default_rng(seed)
    stack = lambda name: np.stack([p[3][name] for p in gt_people])  # noqa: E731
    return Predictions(keys=np.array([p[0] for p in gt_people]), person=np.array([p[1] for p in gt_people]),
                       body_model="smpl", betas=stack("betas") + rng.normal(scale=scale, size=(len(gt_people), 10)),
                       global_orient=stack("global_orient") + rng.normal(scale=scale, size=(len(gt_people), 3)),
                       body_pose=stack("body_pose") + rng.normal(scale=scale, size=(len(gt_people), 69)))


def reference_spin(gt_people, pred: Predictions) -> tuple[float, float, np.ndarray]:
    """Independent SPIN computation: one person at a time, numpy regressor, numpy SVD Procrustes."""
    regressor = load_index_sets().J_regressor_h36m
    mpjpe, pa, per_joint = [], [], []
    for i, (_, _, gender, params) in enumerate(gt_people):
        def joints14(gender: str, betas, orient, pose) -> np.ndarray:
            model = load_body_model("smpl", gender, dtype=torch.float64)
            verts = model(betas=torch.tensor(betas[None]), global_orient=torch.tensor(orient[None]),
                          body_pose=torch.tensor(pose[None])).vertices[0].numpy()
            h36m = regressor @ verts
            return h36m[H36M_TO_J14] - h36m[0]

        gt = joints14(gender, params["betas"], params["global_orient"], params["body_pose"])
        pr = joints14("neutral", pred.betas[i], pred.global_orient[i], pred.body_pose[i])
        err = np.sqrt(((pr - gt) ** 2).sum(1))
        mpjpe.append(err.mean())
        per_joint.append(err)
        x, y = pr - pr.mean(0), gt - gt.mean(0)
        u, s, vt = np.linalg.svd(x.T @ y)
        d = np.sign(np.linalg.det(vt.T @ u.T))
        rot = vt.T @ np.diag([1, 1, d]) @ u.T
        scale = np.trace(rot @ x.T @ y) / (x ** 2).sum()
        aligned = scale * x @ rot.T + gt.mean(0)
        pa.append(np.sqrt(((aligned - gt) ** 2).sum(1)).mean())
    return 1000 * np.mean(mpjpe), 1000 * np.mean(pa), 1000 * np.mean(per_joint, axis=0)


def test_3dpw_spin_matches_an_independent_reference(shards, gt_people, tmp_path) -> None:
    pred = noisy_predictions(gt_people, 0.05)
    save_predictions(pred, tmp_path / "noisy.npz")
    record = evaluate("3dpw/spin", shards, tmp_path / "noisy.npz", out=tmp_path / "results", progress=False)
    mpjpe, pa, per_joint = reference_spin(gt_people, pred)
    assert record.counts["people"] == len(gt_people) < sum(1 for _ in range(12))
    assert record.metrics["mpjpe"] == pytest.approx(mpjpe, abs=1e-6)
    assert record.metrics["pa_mpjpe"] == pytest.approx(pa, abs=1e-6)
    np.testing.assert_allclose(record.per_joint["mpjpe"], per_joint, atol=1e-6)
    assert record.synthetic and record.protocol["id"] == "3dpw/spin" and record.protocol["version"] == 1


def test_record_round_trip_and_tampered_sidecar(shards, gt_people, tmp_path) -> None:
    save_predictions(noisy_predictions(gt_people, 0.02), tmp_path / "p.npz")
    record = evaluate("3dpw/cliff", shards, tmp_path / "p.npz", out=tmp_path, method="GT+noise", progress=False)
    back = read_record(record.path)
    assert back.metrics == record.metrics and back.per_person.shape == record.per_person.shape
    assert back.provenance["predictions"]["sha256"] and back.provenance["shards"]["manifest_sha256"]
    assert back.metrics["pve"] > 0
    sidecar = record.path.with_suffix(".parquet")
    sidecar.write_bytes(sidecar.read_bytes()[:-10] + b"0123456789")
    with pytest.raises(RecordError, match="does not match the sha256"):
        read_record(record.path)


def test_missing_predictions_and_wrong_data_are_clear_errors(shards, gt_people, tmp_path) -> None:
    pred = noisy_predictions(gt_people[1:], 0.01)
    save_predictions(pred, tmp_path / "short.npz")
    with pytest.raises(PredictionError, match=r"missing: 1 evaluated \(sample, person\) pair"):
        evaluate("3dpw/spin", shards, tmp_path / "short.npz", progress=False)
    with pytest.raises(PredictionError, match="smplx"):
        save_predictions(noisy_predictions(gt_people, 0.01), tmp_path / "full.npz")
        evaluate("3dpw/smplerx", shards, tmp_path / "full.npz", progress=False)
    with pytest.raises(HumanbenchError, match="unknown protocol"):
        evaluate("3dpw/nope", shards, tmp_path / "full.npz", progress=False)


def test_unknown_keys_and_model_mismatch_name_the_offenders(shards, gt_people, tmp_path) -> None:
    pred = noisy_predictions(gt_people, 0.01)
    pred.keys = pred.keys.copy()
    pred.keys[0] = "not-a-sample"
    save_predictions(pred, tmp_path / "extra.npz")
    with pytest.raises(PredictionError, match=r"extra: 1 prediction.*not-a-sample"):
        evaluate("3dpw/spin", shards, tmp_path / "extra.npz", progress=False)
    save_predictions(noisy_predictions(gt_people, 0.01), tmp_path / "smpl.npz")
    with pytest.raises(PredictionError) as err:
        evaluate("3dpw/smplerx", shards, tmp_path / "smpl.npz", progress=False)
    print(err.value)
    assert "smplx" in str(err.value) and "smpl" in str(err.value)


def test_evaluating_other_shards_is_refused(shards, gt_people, tmp_path) -> None:
    save_predictions(noisy_predictions(gt_people, 0.01), tmp_path / "p.npz")
    other = tmp_path / "other"
    write_shards(pw3d_like_samples, other, total=6, dataset="3dpw", split="train", source_fingerprint="t", progress=False)
    with pytest.raises(EvaluationError, match="3dpw/test; these shards hold 3dpw/train"):
        evaluate("3dpw/spin", other, tmp_path / "p.npz", progress=False)


def test_cli_eval_writes_a_record(shards, gt_people, tmp_path, capsys) -> None:
    from humanbench.cli import main

    save_predictions(noisy_predictions(gt_people, 0.03), tmp_path / "mine.npz")
    code = main(["eval", "--protocol", "3dpw/spin", "--shards", str(shards), "--pred", str(tmp_path / "mine.npz"),
                 "--out", str(tmp_path / "res"), "--method", "Mine"])
    out = capsys.readouterr().out
    assert code == 0 and "Mine under 3dpw/spin v1 [synthetic]" in out and "pa_mpjpe:" in out
    assert (tmp_path / "res" / "Mine__3dpw-spin.json").exists()


DIST_SCRIPT = """
import sys, json, torch.distributed as dist
from humanbench.evaluation import evaluate
dist.init_process_group("gloo")
record = evaluate("3dpw/spin", sys.argv[1], sys.argv[2], out=None, progress=False)
if dist.get_rank() == 0:
    record.per_person.drop(columns=[c for c in record.per_person if c.endswith("per_joint")]).to_json(sys.argv[3])
    json.dump(record.metrics, open(sys.argv[3] + ".metrics", "w"))
dist.destroy_process_group()
"""


@pytest.mark.slow
def test_two_process_torchrun_counts_everyone_once(shards, gt_people, tmp_path) -> None:
    import json
    import subprocess
    import sys

    import pandas as pd

    save_predictions(noisy_predictions(gt_people, 0.04), tmp_path / "p.npz")
    single = evaluate("3dpw/spin", shards, tmp_path / "p.npz", progress=False)
    (tmp_path / "dist.py").write_text(DIST_SCRIPT)
    subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "--master-port", "29531",
                    str(tmp_path / "dist.py"), str(shards), str(tmp_path / "p.npz"), str(tmp_path / "rows.json")],
                   check=True, capture_output=True, timeout=300)
    rows = pd.read_json(tmp_path / "rows.json")
    assert len(rows) == len(gt_people) and not rows.duplicated(["key", "person"]).any()
    metrics = json.loads((tmp_path / "rows.json.metrics").read_text())
    for name, value in single.metrics.items():
        assert metrics[name] == pytest.approx(value, abs=1e-9)


def test_subsampling_keeps_every_kth_person_of_the_global_order() -> None:
    from humanbench.evaluation import _People, _subsample

    count = 7
    order = [(f"scene{i % 2}", 100 - i) for i in range(count)]  # not the key order
    people = _People(np.array([f"k{i}" for i in range(count)]), np.zeros(count, np.int64), ["neutral"] * count,
                     {"betas": np.arange(count)[:, None] * np.ones((1, 10))}, np.zeros((count, 3, 3)),
                     np.zeros((count, 2)), False, {}, order)
    kept = _subsample(people, 3)
    ranked = sorted(range(count), key=lambda i: order[i])
    assert sorted(kept.keys.tolist()) == sorted(f"k{i}" for i in ranked[::3])
    assert kept.arrays["betas"][:, 0].tolist() == [int(k[1:]) for k in kept.keys]


def test_kid_width_betas_are_refused_clearly(shards, gt_people, tmp_path) -> None:
    pred = noisy_predictions(gt_people, 0.01)
    pred.betas = np.concatenate([pred.betas, np.zeros((len(pred.betas), 1))], axis=1)
    save_predictions(pred, tmp_path / "kid.npz")
    with pytest.raises(PredictionError, match="betas: 11 per person, but 3dpw/spin poses predictions with the neutral adult"):
        evaluate("3dpw/spin", shards, tmp_path / "kid.npz", progress=False)
