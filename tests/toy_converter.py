"""A toy dataset converter for testing the conversion driver (parallelism, resume, --skip-bad).

Raw layout: ``ROOT/<split>/<item>.json`` holding ``{"frames": N}``. Setting the environment variable
``TOY_KILL_AT_UNIT=k`` makes the process SIGKILL itself when it reaches unit k (a hard crash).
"""

from __future__ import annotations

import io
import json
import os
import signal
from pathlib import Path

import numpy as np
from PIL import Image

from humanbench.loaders.base import ConversionError, Converter, Unit, UnitResult
from humanbench.schema import Camera, Sample

FRAMES_PER_UNIT = 3


def tiny_png(value: int) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.full((8, 8, 3), value % 256, np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


def write_toy_dataset(root: Path, items: dict[str, int], split: str = "test") -> Path:
    (root / split).mkdir(parents=True, exist_ok=True)
    for name, frames in items.items():
        (root / split / f"{name}.json").write_text(json.dumps({"frames": frames}))
    return root


class ToyConverter(Converter):
    name = "toy"
    splits = ("train", "test")

    def _frames(self, item: str) -> int:
        path = self.root / self.split / f"{item}.json"
        try:
            return int(json.loads(path.read_text())["frames"])
        except (json.JSONDecodeError, KeyError) as err:
            raise ConversionError(f"{path}: expected JSON with key 'frames' ({err})") from None

    def units(self) -> list[Unit]:
        units = []
        for path in sorted((self.root / self.split).glob("*.json")):
            try:
                frames = self._frames(path.stem)
            except ConversionError:  # reported by convert_unit, so --skip-bad can skip just this item
                frames = FRAMES_PER_UNIT
            units += [Unit(path.stem, s, min(s + FRAMES_PER_UNIT, frames)) for s in range(0, frames, FRAMES_PER_UNIT)]
        return units

    def convert_unit(self, unit: Unit) -> UnitResult:
        kill_at = os.environ.get("TOY_KILL_AT_UNIT")
        if kill_at is not None and self.units().index(unit) == int(kill_at):
            os.kill(os.getpid(), signal.SIGKILL)
        self._frames(unit.item)
        samples = [self._sample(unit.item, frame) for frame in range(unit.start, unit.stop)]
        dropped = [{"item": f"{unit.item}/{unit.start}", "reason": "toy: first frame of every unit is dropped"}]
        return UnitResult(samples[1:], dropped)

    def _sample(self, item: str, frame: int) -> Sample:
        people = {"betas": np.zeros((1, 10)), "global_orient": np.zeros((1, 3)), "body_pose": np.zeros((1, 69)),
                  "transl": np.array([[0.0, 0.0, float(frame)]]), "valid": np.ones(1, bool), "kid": np.zeros(1, bool)}
        return Sample(key=f"{item}-{frame:06d}", dataset="toy", split=self.split, image=tiny_png(frame),
                      image_format="png", width=8, height=8, camera=Camera(K=np.eye(3)), body_model="smpl",
                      coords="camera", people=people, genders=["neutral"], person_ids=["0"], sequence=item, frame=frame)

    def source_files(self) -> list[Path]:
        return sorted((self.root / self.split).glob("*.json"))
