"""``humanbench demo``: the whole pipeline on built-in synthetic data, end to end.

1. Synthesize a training set with the synthetic world, write, verify and inspect its shards.
2. Write miniature raw copies of 3DPW, AGORA, UBody, EHF, ZJU-MoCap and an in-the-wild clip in
   their exact on-disk layouts and convert each with ``humanbench convert``.
3. Evaluate reference predictors (mean pose on 3DPW; GT plus noise everywhere) on the converted
   miniatures under their mesh protocols, score reference renders (the GT each avatar protocol scores,
   plus noise or blurred) on the ZJU-MoCap miniature, and write result records.
4. Train the reference HMR regressor briefly with 2 processes on the synthetic training set and
   evaluate it on the 3DPW miniature like the mean-pose predictor.
5. From the records alone, write the leaderboard (Markdown and HTML) and a per-joint plot.

Everything is made with the embedded synthetic body models unless ``body_models`` names a real
folder; every number is then marked synthetic.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
from PIL import Image, ImageFilter

from humanbench.baselines.reference import mean_pose_predictions, noisy_gt_predictions
from humanbench.bodymodels import resolve_root
from humanbench.conversion import write_shards
from humanbench.convert import convert
from humanbench.evaluation import evaluate
from humanbench.inspection import InspectReport, inspect_shards
from humanbench.leaderboards import leaderboard
from humanbench.leaderboards.plots import plot
from humanbench.predictions import save_predictions
from humanbench.records import ResultRecord
from humanbench.render_evaluation import evaluate_renders, prepared_gt_images
from humanbench.shards import Manifest, VerifyReport, verify_shards
from humanbench.synthetic.official_files import write_model_folder
from humanbench.synthetic.raw.agora import write_miniature_agora
from humanbench.synthetic.raw.ehf import write_miniature_ehf
from humanbench.synthetic.raw.pw3d import write_miniature_3dpw
from humanbench.synthetic.raw.ubody import write_miniature_ubody
from humanbench.synthetic.raw.wild import CLIP_LAYOUTS, write_miniature_wild
from humanbench.synthetic.raw.zju_mocap import write_miniature_zju
from humanbench.synthetic.world import SyntheticWorld, WorldConfig
from humanbench.training import TrainConfig, run_training

FRAMES_PER_SEQUENCE = 12

MINIATURES: dict[str, tuple[str, Callable[..., object]]] = {
    "3dpw": ("test", lambda root, models: write_miniature_3dpw(root, body_models=models, frames=4)),
    "agora": ("validation-1280", lambda root, models: write_miniature_agora(root, body_models=models)),
    "ubody": ("intra-test", lambda root, models: write_miniature_ubody(root, body_models=models, frames=3)),
    "ehf": ("test", lambda root, models: write_miniature_ehf(root, body_models=models)),
    "zju-mocap": ("neuralbody-test-novel-view",
                  lambda root, models: write_miniature_zju(root, ("CoreView_377",), frames=1, body_models=models)),
    "wild": ("all", lambda root, models: write_miniature_wild(
        root, frames=4, body_models=models, clips={"HumanNeRF": CLIP_LAYOUTS["HumanNeRF"]})),
}
"""Dataset -> (split the demo converts, writer of its miniature raw copy)."""

REFERENCE_PROTOCOLS: dict[str, tuple[str, ...]] = {
    "3dpw-test": ("3dpw/spin", "3dpw/cliff"),
    "agora-validation-1280": ("agora/official", "agora/smplerx-val"),
    "ubody-intra-test": ("ubody/osx",),
    "ehf-test": ("ehf/expose",),
}
"""Converted shard set -> the mesh protocols the reference predictors are evaluated under."""
AGORA_IMAGE_SIZE = (3840, 2160)
RENDER_PROTOCOLS: dict[str, tuple[str, ...]] = {"zju-mocap-neuralbody-test-novel-view": ("zju-mocap/neuralbody",)}
"""Converted shard set -> the avatar protocols the reference renders are scored under."""
OUTPUT_FOLDERS = ("body_models", "shards", "raw", "predictions", "renders", "results", "train", "leaderboard")
"""What the demo writes under ``out``; a re-run replaces them."""


@dataclass
class DemoResult:
    """Where the demo wrote its outputs, what the checks said and how long each stage took."""

    out: Path
    body_model_source: str
    manifests: dict[str, Manifest]
    verify: dict[str, VerifyReport]
    inspect: InspectReport
    records: list[ResultRecord]
    timings: dict[str, float] = field(default_factory=dict)
    leaderboard: list[Path] = field(default_factory=list)

    def to_text(self) -> str:
        """Summary with every output path."""
        synthetic = " (embedded synthetic body models: all numbers are synthetic)" if self.body_model_source == "synthetic" else ""
        lines = [f"humanbench demo finished in {sum(self.timings.values()):.1f} s; body models: "
                 f"{self.body_model_source}{synthetic}", "", "shards (verified):"]
        for name, manifest in self.manifests.items():
            status = "ok" if self.verify[name].ok else "FAILED"
            lines.append(f"  {name:<38} {manifest.total_count:>4} samples  verify {status}  {manifest.root}")
        lines += ["", f"contact sheet: {self.inspect.contact_sheet}", "", "result records:"]
        for record in self.records:
            metrics = ", ".join(f"{k} {v:.1f}" for k, v in list(record.metrics.items())[:4])
            lines.append(f"  {record.method:<10} {record.protocol_id:<18} {metrics}  {record.path}")
        lines += ["", "leaderboard and plot:", *(f"  {path}" for path in self.leaderboard)]
        lines += ["", "stage timings: " + ", ".join(f"{k} {v:.1f} s" for k, v in self.timings.items())]
        return "\n".join(lines)


def world_config(frames: int, seed: int, body_models: Path | None) -> WorldConfig:
    """Split ``frames`` into sequences of :data:`FRAMES_PER_SEQUENCE` frames."""
    per_sequence = min(frames, FRAMES_PER_SEQUENCE)
    return WorldConfig(sequences=max(1, frames // per_sequence), frames=per_sequence, seed=seed,
                       body_models=body_models, split="train")


def config_fingerprint(config: WorldConfig) -> str:
    """sha256 of the world config: the synthetic world's source fingerprint."""
    return hashlib.sha256(json.dumps({k: str(v) for k, v in asdict(config).items()}, sort_keys=True).encode()).hexdigest()


class _Stopwatch:
    def __init__(self) -> None:
        self.timings: dict[str, float] = {}

    def __call__(self, name: str, run: Callable[[], object]) -> object:
        start = time.perf_counter()
        result = run()
        self.timings[name] = time.perf_counter() - start
        return result


def _synthesize(out: Path, frames: int, seed: int, body_models: Path | None, progress: bool) -> Manifest:
    config = world_config(frames, seed, body_models)
    return write_shards(SyntheticWorld(config).samples, out / "shards" / "synthetic-train", total=config.total,
                        dataset=config.dataset, split=config.split, source_fingerprint=config_fingerprint(config),
                        max_count=16, progress=progress, extra={"world": {k: str(v) for k, v in asdict(config).items()}})


def _convert_miniatures(out: Path, body_models: Path, progress: bool) -> dict[str, Manifest]:
    manifests = {}
    for name, (split, write) in MINIATURES.items():
        raw = out / "raw" / name
        write(raw, body_models)
        # The ZJU-MoCap miniature holds one subject of the split's nine: the others are listed as dropped.
        manifests[f"{name}-{split}"] = convert(name, raw, out / "shards" / f"{name}-{split}", split=split,
                                               body_models=body_models, skip_bad=name == "zju-mocap",
                                               progress=progress)
    return manifests


def _evaluate_references(out: Path, manifests: dict[str, Manifest], body_models: Path,
                         progress: bool) -> list[ResultRecord]:
    """Mean-pose (3DPW, from the synthetic training set) and GT+noise predictors under each mesh protocol."""
    shards = {name: m.root for name, m in manifests.items()}
    predictors = {
        ("mean-pose", "3dpw-test"): lambda: mean_pose_predictions(shards["synthetic-train"], shards["3dpw-test"]),
        **{("gt+noise", name): (lambda name=name: noisy_gt_predictions(
            shards[name], scale_joints2d_to=AGORA_IMAGE_SIZE if name.startswith("agora") else None))
           for name in REFERENCE_PROTOCOLS},
    }
    records = []
    for (method, name), predict in predictors.items():
        path = save_predictions(predict(), out / "predictions" / f"{method}-{name}.npz")
        for protocol in REFERENCE_PROTOCOLS[name]:
            records.append(evaluate(protocol, shards[name], path, out=out / "results", method=method,
                                    body_models=body_models, progress=progress))
    return records


def _reference_renders(gt: np.ndarray, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """8-bit renders made from a (H, W, 3) GT image in [0, 1]: ``gt+noise`` (Gaussian, sigma 0.03) and ``gt-blur``
    (Gaussian blur, radius 1 pixel)."""
    image = np.round(255 * gt).astype(np.uint8)
    noisy = np.clip(np.round(255 * (gt + rng.normal(0.0, 0.03, gt.shape))), 0, 255).astype(np.uint8)
    return {"gt+noise": noisy, "gt-blur": np.asarray(Image.fromarray(image).filter(ImageFilter.GaussianBlur(1)))}


def _score_reference_renders(out: Path, manifests: dict[str, Manifest], body_models: Path,
                             progress: bool) -> list[ResultRecord]:
    """Reference renders of the ZJU-MoCap miniature, ``<key>.png`` under ``out/renders/<method>-<protocol>``,
    scored under each avatar protocol of :data:`RENDER_PROTOCOLS`."""
    records = []
    for name, protocols in RENDER_PROTOCOLS.items():
        shards = manifests[name].root
        for protocol in protocols:
            rng = np.random.default_rng(0)
            gt = prepared_gt_images(protocol, shards)
            renders = {key: _reference_renders(image, rng) for key, image in gt.items()}
            for method in ("gt+noise", "gt-blur"):
                folder = out / "renders" / f"{method}-{protocol.replace('/', '-')}"
                folder.mkdir(parents=True, exist_ok=True)
                for key, images in renders.items():
                    Image.fromarray(images[method]).save(folder / f"{key}.png")
                records.append(evaluate_renders(protocol, shards, folder, out=out / "results", method=method,
                                                body_models=body_models, progress=progress))
    return records


def _train_reference(out: Path, manifests: dict[str, Manifest], body_models: Path, progress: bool) -> list[ResultRecord]:
    """Train the HMR regressor for a few seconds in 2 processes; evaluate its final predictions like the mean pose."""
    train, shards = manifests["synthetic-train"].root, manifests["3dpw-test"].root
    config = TrainConfig(method="hmr", shards=[str(train)], out=str(out / "train" / "hmr"), steps=40, batch_size=16,
                         lr=2e-3, warmup_steps=5, eval_shards=str(shards), checkpoint_every=20,
                         body_models=str(body_models), progress=progress, options={"crop_size": 48, "width": 12})
    predictions = Path(run_training(config, nproc=2).record).parent / "predictions.npz"
    return [evaluate(protocol, shards, predictions, out=out / "results", method="hmr", body_models=body_models,
                     progress=progress) for protocol in REFERENCE_PROTOCOLS["3dpw-test"]]


def _write_leaderboard(out: Path, records: list[ResultRecord]) -> list[Path]:
    """The leaderboard of ``out/results`` as Markdown and HTML, and the per-joint plot of the 3dpw/cliff records."""
    folder = out / "leaderboard"
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for fmt in ("md", "html"):
        path = folder / f"leaderboard.{fmt}"
        path.write_text(leaderboard([out / "results"], fmt=fmt), encoding="utf-8")
        written.append(path)
    cliff = [r.path for r in records if r.protocol_id == "3dpw/cliff"]
    return written + plot("per-joint", cliff, out=folder)


def run_demo(out: str | Path = "humanbench-demo", *, body_models: str | Path | None = None, frames: int = 48,
             seed: int = 0, progress: bool = True) -> DemoResult:
    """Run the demo pipeline into ``out`` (see the module docstring); returns what it wrote."""
    out = Path(out)
    for folder in OUTPUT_FOLDERS:
        shutil.rmtree(out / folder, ignore_errors=True)
    watch = _Stopwatch()
    root = resolve_root(body_models)
    models = root.path if root is not None else write_model_folder(out / "body_models")
    manifests = {"synthetic-train": watch("synthesize", lambda: _synthesize(out, frames, seed, models, progress))}
    manifests.update(watch("convert", lambda: _convert_miniatures(out, models, progress)))
    reports = watch("verify", lambda: {name: verify_shards(m.root) for name, m in manifests.items()})
    inspected = watch("inspect", lambda: inspect_shards(manifests["synthetic-train"].root,
                                                        contact_sheet=out / "contact_sheet.png"))
    records = watch("evaluate", lambda: _evaluate_references(out, manifests, models, progress))
    records += watch("render", lambda: _score_reference_renders(out, manifests, models, progress))
    records += watch("train", lambda: _train_reference(out, manifests, models, progress))
    boards = watch("leaderboard", lambda: _write_leaderboard(out, records))
    source = "synthetic" if root is None or root.synthetic else str(root.path)
    return DemoResult(out, source, manifests, reports, inspected, records, watch.timings, boards)
