"""``humanbench demo``: the pipeline on the built-in synthetic world, end to end, in well under a minute."""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from humanbench.conversion import write_shards
from humanbench.inspection import InspectReport, inspect_shards
from humanbench.shards import Manifest, VerifyReport, verify_shards
from humanbench.synthetic.world import SyntheticWorld, WorldConfig

FRAMES_PER_SEQUENCE = 12


@dataclass
class DemoResult:
    """Where the demo wrote its outputs and what the checks said."""

    out: Path
    shards: Path
    manifest: Manifest
    verify: VerifyReport
    inspect: InspectReport
    body_model_source: str
    seconds: float

    def to_text(self) -> str:
        """Summary with every output path."""
        synthetic = " (embedded synthetic body model: numbers are synthetic)" if self.body_model_source == "synthetic" else ""
        return "\n".join([
            f"humanbench demo finished in {self.seconds:.1f} s; body model: {self.body_model_source}{synthetic}",
            f"  shards:        {self.shards} ({self.manifest.total_count} samples in {len(self.manifest.shards)} shards)",
            f"  manifest:      {self.shards / 'manifest.json'}",
            f"  verify:        {'ok' if self.verify.ok else 'FAILED'}",
            f"  contact sheet: {self.inspect.contact_sheet}",
            "", self.inspect.to_text(),
        ])


def world_config(frames: int, seed: int, body_models: Path | None) -> WorldConfig:
    """Split ``frames`` into sequences of :data:`FRAMES_PER_SEQUENCE` frames."""
    per_sequence = min(frames, FRAMES_PER_SEQUENCE)
    return WorldConfig(sequences=max(1, frames // per_sequence), frames=per_sequence, seed=seed,
                       body_models=body_models, split="train")


def config_fingerprint(config: WorldConfig) -> str:
    """sha256 of the world config: the synthetic world's source fingerprint."""
    data = {k: str(v) for k, v in asdict(config).items()}
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()


def run_demo(out: str | Path = "humanbench-demo", *, body_models: str | Path | None = None, frames: int = 48,
             seed: int = 0, progress: bool = True) -> DemoResult:
    """Synthesize ``frames`` images, write + verify + inspect their shards under ``out``."""
    started = time.perf_counter()
    out = Path(out)
    config = world_config(frames, seed, Path(body_models) if body_models else None)
    world = SyntheticWorld(config)
    shards = out / "shards" / f"{config.dataset}-{config.split}"
    manifest = write_shards(world.samples, shards, total=config.total, dataset=config.dataset, split=config.split,
                            source_fingerprint=config_fingerprint(config), max_count=16, progress=progress,
                            extra={"world": {k: str(v) for k, v in asdict(config).items()}})
    report = verify_shards(shards)
    inspected = inspect_shards(shards, contact_sheet=out / "contact_sheet.png")
    source = str(world.model("neutral").source)
    return DemoResult(out, shards, manifest, report, inspected, source, time.perf_counter() - started)
