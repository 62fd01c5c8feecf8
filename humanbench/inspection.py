"""``humanbench inspect``: stream a shard folder into counts, per-field statistics and a contact sheet."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image, ImageDraw

from humanbench.schema import Sample, decode_image, decode_sample, validate_sample
from humanbench.shards import Manifest, iter_encoded

PERSON_COLOURS = [(230, 57, 70), (29, 140, 214), (46, 196, 102), (250, 180, 20), (160, 80, 220), (240, 110, 180)]
THUMB_SIZE = 256


@dataclass
class _FieldStats:
    """Running min/max/mean and the set of shapes of one array field (streaming, O(1) memory)."""

    dtype: str
    shapes: Counter = field(default_factory=Counter)
    count: int = 0
    total: float = 0.0
    low: float = np.inf
    high: float = -np.inf

    def update(self, arr: np.ndarray, per_person: bool) -> None:
        shape = ("P", *arr.shape[1:]) if per_person else arr.shape
        self.shapes["(" + ",".join(map(str, shape)) + ("," if len(shape) == 1 else "") + ")"] += 1
        if arr.size == 0:
            return
        values = arr.astype(np.float64, copy=False)
        self.count += values.size
        self.total += float(values.sum())
        self.low = min(self.low, float(values.min()))
        self.high = max(self.high, float(values.max()))


@dataclass
class InspectReport:
    """What ``humanbench inspect`` found: counts, a per-field DataFrame and the contact-sheet path."""

    folder: Path
    manifest: Manifest
    counts: dict[str, int]
    categories: dict[str, dict[str, int]]
    fields: pd.DataFrame
    contact_sheet: Path | None

    def to_text(self) -> str:
        """Human-readable report for the terminal."""
        lines = [f"{self.folder}: dataset {self.manifest.dataset!r} split {self.manifest.split!r}, "
                 f"schema {self.manifest.schema_version}, {len(self.manifest.shards)} shard(s)"]
        lines += [f"  {name}: {value}" for name, value in self.counts.items()]
        for name, values in self.categories.items():
            lines.append(f"  {name}: " + ", ".join(f"{k}={v}" for k, v in sorted(values.items())))
        with pd.option_context("display.width", 160, "display.max_columns", 10, "display.float_format", "{:.4g}".format):
            lines += ["", self.fields.to_string()]
        if self.contact_sheet is not None:
            lines += ["", f"contact sheet: {self.contact_sheet}"]
        return "\n".join(lines)


def _draw_people(image: Image.Image, sample: Sample, scale: float) -> None:
    """Draw every person's 2D joints (confidence > 0) and box, one colour per person."""
    draw = ImageDraw.Draw(image)
    joints = sample.people.get("joints2d")
    boxes = sample.people.get("bbox")
    radius = max(1.5, 2.0 * scale * max(sample.width, sample.height) / THUMB_SIZE)
    for person in range(sample.num_people):
        colour = PERSON_COLOURS[person % len(PERSON_COLOURS)]
        if boxes is not None:
            draw.rectangle([float(v) * scale for v in boxes[person]], outline=colour, width=1)
        if joints is not None:
            for x, y, conf in joints[person]:
                if conf > 0:
                    cx, cy = x * scale, y * scale
                    draw.ellipse([cx - radius, cy - radius, cx + radius, cy + radius], fill=colour)


def _thumbnail(sample: Sample) -> Image.Image:
    """(THUMB_SIZE-fitted) RGB thumbnail with mask tint and joints drawn, captioned with the key."""
    rgb = Image.fromarray(decode_image(sample.image)).convert("RGB")
    if sample.mask is not None:
        mask = decode_image(sample.mask) > 0
        tinted = np.asarray(rgb).copy()
        tinted[mask] = (0.6 * tinted[mask] + 0.4 * np.array([255, 255, 0])).astype(np.uint8)
        rgb = Image.fromarray(tinted)
    scale = THUMB_SIZE / max(sample.width, sample.height)
    thumb = rgb.resize((max(1, round(sample.width * scale)), max(1, round(sample.height * scale))), Image.BILINEAR)
    _draw_people(thumb, sample, scale)
    ImageDraw.Draw(thumb).text((3, 3), sample.key, fill=(255, 255, 255))
    return thumb


def write_contact_sheet(samples: list[Sample], path: Path) -> Path:
    """Tile thumbnails of ``samples`` into one PNG grid and write it atomically."""
    cols = max(1, int(np.ceil(np.sqrt(len(samples)))))
    rows = max(1, int(np.ceil(len(samples) / cols)))
    sheet = Image.new("RGB", (cols * THUMB_SIZE, rows * THUMB_SIZE), (32, 32, 32))
    for i, sample in enumerate(samples):
        thumb = _thumbnail(sample)
        sheet.paste(thumb, ((i % cols) * THUMB_SIZE, (i // cols) * THUMB_SIZE))
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    sheet.save(tmp, format="PNG")
    tmp.replace(path)
    return path


def inspect_shards(folder: str | Path, *, contact_sheet: str | Path | None = None, num_images: int = 16,
                   max_samples: int | None = None) -> InspectReport:
    """Stream ``folder`` once: counts, per-field statistics, and a contact sheet of ``num_images`` samples.

    Every sample is validated against the schema; the first violation raises
    :class:`~humanbench.schema.SchemaError` naming the sample key and the field.
    The contact-sheet samples are spread evenly over the folder. ``contact_sheet`` defaults to
    ``folder/contact_sheet.png``; pass ``num_images=0`` to skip it.
    """
    folder = Path(folder)
    manifest = Manifest.load(folder)
    total = manifest.total_count if max_samples is None else min(manifest.total_count, max_samples)
    picks = set(np.linspace(0, max(total - 1, 0), min(num_images, total)).round().astype(int).tolist()) if num_images else set()
    stats: dict[str, _FieldStats] = {}
    categories: dict[str, Counter] = {name: Counter() for name in ("body_model", "gender", "image_size", "sequence")}
    counts = Counter()
    chosen: list[Sample] = []
    for index, encoded in enumerate(iter_encoded(folder)):
        if index >= total:
            break
        sample = decode_sample(encoded)
        validate_sample(sample)
        counts["samples"] += 1
        counts["people"] += sample.num_people
        counts["valid people"] += int(sample.people["valid"].sum())
        counts["with mask"] += sample.mask is not None
        counts["synthetic"] += sample.synthetic
        categories["body_model"][sample.body_model] += 1
        categories["gender"].update(sample.genders)
        categories["image_size"][f"{sample.width}x{sample.height}"] += 1
        categories["sequence"][sample.sequence or "-"] += 1
        person_arrays = {**sample.people, **{f"flag_{k}": v for k, v in sample.flags.items()}}
        camera_arrays = {"cam_K": sample.camera.K, "cam_R": sample.camera.R, "cam_t": sample.camera.t, "cam_dist": sample.camera.dist}
        for arrays, per_person in ((person_arrays, True), (camera_arrays, False)):
            for name, arr in arrays.items():
                stats.setdefault(name, _FieldStats(str(arr.dtype))).update(arr, per_person)
        if index in picks:
            chosen.append(sample)
    if len(categories["sequence"]) > 12:
        categories["sequence"] = Counter({f"{len(categories['sequence'])} sequences": counts["samples"]})
    table = pd.DataFrame(
        [{"field": name, "dtype": s.dtype,
          "shape": " | ".join(sorted(s.shapes)),
          "min": s.low if s.count else np.nan, "max": s.high if s.count else np.nan,
          "mean": s.total / s.count if s.count else np.nan} for name, s in sorted(stats.items())]
    ).set_index("field") if stats else pd.DataFrame()
    sheet_path = None
    if chosen:
        sheet_path = write_contact_sheet(chosen, Path(contact_sheet) if contact_sheet else folder / "contact_sheet.png")
    return InspectReport(folder, manifest, dict(counts), {k: dict(v) for k, v in categories.items()}, table, sheet_path)
