"""The training harness and the reference HMR regressor: schedules, mixtures, checkpoints, plug-ins,
a killed-and-resumed 2-process run against an uninterrupted one, and HMR against the mean pose."""

from __future__ import annotations

import dataclasses
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from humanbench.baselines.reference import mean_pose_predictions
from humanbench.cli import main
from humanbench.conversion import write_shards
from humanbench.evaluation import evaluate
from humanbench.predictions import save_predictions
from humanbench.schema import decode_sample
from humanbench.shards import ShardDataset
from humanbench.synthetic.world import SyntheticWorld, WorldConfig
from humanbench.training import Method, MixtureStream, TrainConfig, TrainingError, load_method, run_training
from humanbench.training.checkpoint import latest_checkpoint, load_checkpoint, rng_state, save_checkpoint, set_rng_state
from humanbench.training.schedule import lr_factor

SMALL_HMR = ["--set", "crop_size=32", "--set", "width=8", "--set", "hidden=64"]


def _world_shards(out: Path, config: WorldConfig, as_3dpw_test: bool) -> Path:
    """Write the synthetic world ``config`` to ``out``; as 3DPW test shards, people flagged campose_valid when valid."""
    world = SyntheticWorld(config)

    def source(start: int):
        for sample in world.samples(start):
            yield dataclasses.replace(sample, flags={"campose_valid": sample.people["valid"].copy()}) if as_3dpw_test else sample

    write_shards(source, out, total=config.total, dataset=config.dataset, split=config.split, source_fingerprint="test",
                 max_count=8, progress=False)
    return out


@pytest.fixture(scope="module")
def shards(tmp_path_factory) -> tuple[Path, Path]:
    """Training shards (one frame per synthetic person, so many people) and a held-out 3DPW-style test split."""
    root = tmp_path_factory.mktemp("training")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # CI runs test files side by side on two cores
    try:
        train = _world_shards(root / "train", WorldConfig(sequences=160, frames=1, width=96, height=96, seed=11), False)
        test = _world_shards(root / "test", WorldConfig(sequences=48, frames=1, width=96, height=96, seed=12,
                                                        dataset="3dpw", split="test"), True)
    finally:
        torch.set_num_threads(threads)
    return train, test


def test_schedule_warms_up_then_follows_a_cosine() -> None:
    factors = [lr_factor(s, total=100, warmup=10, kind="cosine", min_ratio=0.1) for s in range(101)]
    assert factors[0] == pytest.approx(0.1) and factors[9] == pytest.approx(1.0)
    assert factors[55] == pytest.approx(0.55) and factors[100] == pytest.approx(0.1)
    assert all(a >= b for a, b in zip(factors[9:], factors[10:]))
    assert lr_factor(70, total=100, warmup=10, kind="constant", min_ratio=0.1) == 1.0


def test_6d_rotations_follow_the_spin_column_convention() -> None:
    from humanbench.baselines.hmr.geometry import axis_angle_to_rotmat, rot6d_to_rotmat, rotmat_to_rot6d

    rotmats = torch.tensor(axis_angle_to_rotmat(np.random.default_rng(0).normal(size=(5, 3))), dtype=torch.float32)
    assert torch.allclose(rot6d_to_rotmat(rotmat_to_rot6d(rotmats)), rotmats, atol=1e-6)
    assert torch.equal(rotmat_to_rot6d(rotmats)[:, :2], rotmats[:, 0, :2])  # (3, 2) row-major: first row of both columns
    noisy = rot6d_to_rotmat(torch.randn(7, 6))
    assert torch.allclose(noisy @ noisy.transpose(1, 2), torch.eye(3).expand(7, 3, 3), atol=1e-5)
    assert torch.allclose(torch.linalg.det(noisy), torch.ones(7), atol=1e-5)


def _origin(sample, rng) -> str:
    return f"{sample.dataset}:{sample.key}"


def test_mixture_draws_by_weight_and_resumes_mid_stream(shards) -> None:
    train, test = shards
    datasets = [ShardDataset(train, decode_sample, shuffle=True, seed=3), ShardDataset(test, decode_sample, shuffle=True)]
    stream = MixtureStream(datasets, _origin, weights=[1.0, 3.0], seed=3, batch_size=4)
    drawn = [item for _, item in zip(range(400), stream)]
    assert 0.65 < np.mean([item.startswith("3dpw:") for item in drawn]) < 0.85
    from_train = [item for item in drawn if item.startswith("synthetic:")]
    assert len(set(from_train[:160])) == min(160, len(from_train))  # one epoch visits every training sample once
    assert len({item for item in drawn if item.startswith("3dpw:")}) == 48  # the small set is revisited epoch after epoch
    for workers in (0, 2):
        loader = lambda: torch.utils.data.DataLoader(stream, batch_size=4, num_workers=workers, collate_fn=list)  # noqa: E731
        stream.start_at(0)
        full = [batch for _, batch in zip(range(12), loader())]
        stream.start_at(5)
        resumed = [batch for _, batch in zip(range(7), loader())]
        assert resumed == full[5:], f"workers={workers}"


def test_checkpoints_are_atomic_point_at_the_latest_and_restore_rngs(tmp_path) -> None:
    state = {"step": 1, "rng": rng_state(), "model": {"w": torch.arange(3.0)}}
    first = torch.rand(3), np.random.rand(2), __import__("random").random()
    for step in (4, 8, 12):
        save_checkpoint(tmp_path, step, {**state, "step": step}, keep=2)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["latest", "step-00000008.pt", "step-00000012.pt"]
    assert latest_checkpoint(tmp_path).name == "step-00000012.pt"
    (tmp_path / "latest").unlink()
    (tmp_path / ".step-00000016.pt.tmp123").write_bytes(b"partial")  # what a killed writer leaves behind
    loaded = load_checkpoint(latest_checkpoint(tmp_path))
    assert loaded["step"] == 12 and torch.equal(loaded["model"]["w"], torch.arange(3.0))
    set_rng_state(loaded["rng"])
    again = torch.rand(3), np.random.rand(2), __import__("random").random()
    assert torch.equal(first[0], again[0]) and np.array_equal(first[1], again[1]) and first[2] == again[2]
    (tmp_path / "step-00000020.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(TrainingError, match="not a readable checkpoint"):
        load_checkpoint(latest_checkpoint(tmp_path))


class InnerUpdateToy(Method):
    """Meta-HMR's shape of step: a functional inner update of the head, the outer loss on the adapted weights."""

    name = "inner-update-toy"
    parallel = "allreduce"
    default_options = {"inner_lr": 0.1}

    def build_model(self, config: TrainConfig) -> nn.Module:
        return nn.ModuleDict({"backbone": nn.Linear(3, 8), "head": nn.Linear(8, 1)})

    def train_transform(self, sample, rng):
        return {"x": sample.people["transl"][0].astype(np.float32), "y": np.float32(sample.people["betas"][0, 0])}

    def training_step(self, model, batch, ctx):
        head = dict(ctx.module["head"].named_parameters())
        features = torch.tanh(ctx.module["backbone"](batch["x"]))

        def head_loss(params, target):
            return ((torch.func.functional_call(ctx.module["head"], params, (features,))[:, 0] - target) ** 2).mean()

        inner = head_loss(head, torch.zeros_like(batch["y"]))  # the auxiliary (self-supervised) objective
        grads = torch.autograd.grad(inner, list(head.values()), create_graph=True)
        adapted = {k: p - self.options["inner_lr"] * g for (k, p), g in zip(head.items(), grads)}
        return {"loss": head_loss(adapted, batch["y"]), "inner": inner.detach()}


def test_a_method_with_a_functional_inner_update_trains(shards, tmp_path) -> None:
    train, _ = shards
    config = TrainConfig(method="tests.test_training:InnerUpdateToy", shards=[str(train)], out=str(tmp_path), steps=6,
                         batch_size=8, accumulate=2, log_every=3, threads=1, progress=False)
    result = run_training(config)
    assert result.steps == 6 and set(result.losses) >= {"loss", "inner", "lr"}
    state = load_checkpoint(result.checkpoint)
    assert state["step"] == 6 and torch.isfinite(state["model"]["head.weight"]).all()
    assert (tmp_path / "train.csv").read_text().splitlines()[0].startswith("step,loss,inner,lr,epoch")


def test_method_errors_name_what_to_fix(tmp_path) -> None:
    with pytest.raises(TrainingError, match="unknown method 'nope'"):
        load_method("nope")
    with pytest.raises(TrainingError, match=r"no option\(s\) \['widht'\]"):
        load_method("hmr", {"widht": 8})
    method = load_method("hmr", {"backbone_weights": str(tmp_path / "resnet.pth")})
    with pytest.raises(TrainingError, match=r"backbone weights not found at .*resnet.pth: place a state dict"):
        method.build_model(TrainConfig(method="hmr", shards=["x"], out=str(tmp_path)))
    with pytest.raises(TrainingError, match="eval_every needs eval_shards"):
        TrainConfig(method="hmr", shards=["x"], out=str(tmp_path), eval_every=5)


def _train_args(train: Path, test: Path, out: Path) -> list[str]:
    return ["train", "hmr", "--shards", str(train), "--out", str(out), "--steps", "24", "--batch-size", "4",
            "--checkpoint-every", "4", "--log-every", "2", "--eval-shards", str(test),
            "--workers", "1", "--nproc", "2", "--no-progress", "--set", "dropout=0.1", *SMALL_HMR]


@pytest.mark.slow
def test_two_processes_killed_after_a_checkpoint_resume_to_the_same_weights(shards, tmp_path, capsys) -> None:
    train, test = shards
    assert main(_train_args(train, test, tmp_path / "straight")) == 0
    killed = tmp_path / "killed"
    run = subprocess.Popen([sys.executable, "-m", "humanbench.cli", *_train_args(train, test, killed)],
                           start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 300
    while not (killed / "checkpoints" / "latest").exists() and run.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    os.killpg(run.pid, signal.SIGKILL)  # the launcher and both ranks
    run.wait()
    assert not (killed / "checkpoints" / "step-00000024.pt").exists(), "the run finished before it could be killed"
    capsys.readouterr()
    assert main(_train_args(train, test, killed)) == 0
    printed = capsys.readouterr().out
    assert "resumed from step" in printed and "2 process(es)" in printed
    straight = load_checkpoint(tmp_path / "straight" / "checkpoints" / "step-00000024.pt")
    resumed = load_checkpoint(killed / "checkpoints" / "step-00000024.pt")
    for name, value in straight["model"].items():
        assert torch.allclose(value.float(), resumed["model"][name].float(), rtol=0, atol=1e-7), name
    assert (tmp_path / "straight" / "train.csv").read_text() == (killed / "train.csv").read_text()
    assert (tmp_path / "straight" / "eval.csv").read_text() == (killed / "eval.csv").read_text()


@pytest.mark.slow
def test_hmr_regressor_beats_the_mean_pose_on_a_held_out_split(shards, tmp_path) -> None:
    train, test = shards
    config = TrainConfig(method="hmr", shards=[str(train)], out=str(tmp_path / "hmr"), steps=150, batch_size=32,
                         lr=1e-3, warmup_steps=10, eval_shards=str(test), threads=1, progress=False,
                         options={"crop_size": 48, "width": 12})
    result = run_training(config)
    save_predictions(mean_pose_predictions(train, test), tmp_path / "mean.npz")
    mean_pose = evaluate("3dpw/spin", test, tmp_path / "mean.npz", progress=False).metrics
    print(f"3dpw/spin on held-out synthetic: HMR {result.metrics}, mean pose {mean_pose}")
    assert result.metrics["mpjpe"] < 0.9 * mean_pose["mpjpe"]
    assert result.metrics["pa_mpjpe"] < 1.2 * mean_pose["pa_mpjpe"]  # the articulated pose is no worse than a guess
