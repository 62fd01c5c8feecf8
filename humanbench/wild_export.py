"""Shards -> the in-the-wild input of HumanNeRF (or MonoHuman): the reverse of ``humanbench.loaders.wild``.

Each sequence of a shard folder becomes one subject folder, the layout HumanNeRF's
``tools/prepare_wild`` reads from ``dataset/wild/<subject>/`` (formats.md §6.1)::

    OUT/<subject>/images/<item_id>.png    the frame (PNG bytes kept, JPEG re-encoded: HumanNeRF lists only .png)
    OUT/<subject>/masks/<item_id>.png     single-channel, 255 on the person, 0 elsewhere
    OUT/<subject>/metadata.json           {item_id: {poses, betas, cam_intrinsics, cam_extrinsics}}

``poses`` is the 72-value SMPL axis-angle (global orientation first), ``betas`` the 10 shape
values; MonoHuman's variant nests them as (1,72) and (1,10). The body is written with zero
translation and the camera-frame translation moved into the extrinsics,
``cam_extrinsics = [[I, transl], [0, 0, 0, 1]]``, as the PARE/VIBE preparation scripts do, so
``loaders/wild.py`` reads the export back to the same camera-frame parameters. Only camera-frame
SMPL samples with a mask and an undistorted pinhole camera can be exported. See docs/datasets/wild.md.
"""

from __future__ import annotations

import io
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import numpy as np
from PIL import Image

from humanbench.errors import HumanbenchError
from humanbench.schema import Sample, decode_image, decode_sample
from humanbench.shards import iter_encoded

VARIANTS = ("humannerf", "monohuman")
NUM_BETAS = 10
_SAFE_NAME = re.compile(r"^[A-Za-z0-9_.-]+$")


class ExportError(HumanbenchError):
    """A shard sample that HumanNeRF's layout cannot hold; the message names the sample and the reason."""


@dataclass(frozen=True)
class ExportedSubject:
    """One written subject folder and how many frames it holds."""

    folder: Path
    frames: int


def _png(pixels: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def subject_name(sample: Sample) -> str:
    """Folder name of a sample's sequence: characters other than letters, digits, ``_.-`` become ``_``."""
    return re.sub(r"[^A-Za-z0-9_.-]", "_", sample.sequence or sample.dataset)


def item_id(sample: Sample) -> str:
    """The frame's file stem: ``extra.item_id`` (kept by the wild converter), else the 6-digit frame number."""
    item = sample.extra.get("item_id")
    item = item if isinstance(item, str) else f"{sample.frame:06d}"
    if not _SAFE_NAME.match(item) or item in (".", ".."):
        raise ExportError(f"sample {sample.key!r}: item id {item!r} is not a plain file name")
    return item


def metadata_entry(sample: Sample, person: int, nested: bool) -> dict[str, Any]:
    """One ``metadata.json`` value for ``person`` of ``sample`` (MonoHuman's (1,N) lists when ``nested``)."""
    where = f"sample {sample.key!r}"
    if sample.body_model != "smpl" or sample.coords != "camera" or "betas" not in sample.people:
        raise ExportError(f"{where}: HumanNeRF needs camera-frame SMPL parameters; the sample has body model "
                          f"{sample.body_model!r}, coords {sample.coords!r}"
                          + ("" if "betas" in sample.people else " and no parameters"))
    if not 0 <= person < sample.num_people:
        raise ExportError(f"{where}: has {sample.num_people} people, no person {person}")
    betas = sample.people["betas"][person]
    if len(betas) < NUM_BETAS or np.any(betas[NUM_BETAS:] != 0):
        raise ExportError(f"{where}: has {len(betas)} betas; HumanNeRF's SMPL takes 10 (more only if zero)")
    if np.any(sample.camera.dist != 0):
        raise ExportError(f"{where}: the image has lens distortion; HumanNeRF assumes an undistorted pinhole camera")
    K = sample.people["person_K"][person] if "person_K" in sample.people else sample.camera.K
    extrinsics = np.eye(4)
    extrinsics[:3, 3] = sample.people["transl"][person]
    poses = np.concatenate([sample.people["global_orient"][person], sample.people["body_pose"][person]]).tolist()
    betas_list = betas[:NUM_BETAS].tolist()
    return {"poses": [poses] if nested else poses, "betas": [betas_list] if nested else betas_list,
            "cam_intrinsics": K.tolist(), "cam_extrinsics": extrinsics.tolist()}


def person_mask(sample: Sample, person: int) -> np.ndarray:
    """(H,W) uint8, 255 on ``person``: any non-zero pixel for one person, else pixels equal to ``person + 1``."""
    if sample.mask is None:
        raise ExportError(f"sample {sample.key!r}: has no mask; HumanNeRF needs masks/<item_id>.png")
    mask = decode_image(sample.mask)
    mask = mask if mask.ndim == 2 else mask[..., 0]
    on = mask != 0 if sample.num_people == 1 else mask == person + 1
    return np.where(on, 255, 0).astype(np.uint8)


def frame_png(sample: Sample) -> bytes:
    """The frame as PNG: the original bytes when it is one, else decoded and re-encoded."""
    return sample.image if sample.image_format == "png" else _png(decode_image(sample.image))


def _samples(shards: str | Path) -> Iterator[Sample]:
    for encoded in iter_encoded(shards, worker=0, num_workers=1):
        yield decode_sample(encoded)


def export_wild(shards: str | Path, out: str | Path, *, variant: str = "humannerf",
                person: int = 0) -> list[ExportedSubject]:
    """Write every sequence of the shard folder ``shards`` as ``out/<subject>/`` for HumanNeRF or MonoHuman.

    ``person`` picks the person of multi-person samples. A subject folder that exists already is an
    error (nothing is overwritten or mixed). Returns the subject folders in the order written.
    """
    if variant not in VARIANTS:
        raise ExportError(f"unknown variant {variant!r}; choose one of {list(VARIANTS)}")
    out = Path(out)
    metadata: dict[Path, dict[str, Any]] = {}
    for sample in _samples(shards):
        folder = out / subject_name(sample)
        if folder not in metadata:
            if folder.exists():
                raise ExportError(f"{folder} exists already; remove it or export elsewhere")
            (folder / "images").mkdir(parents=True)
            (folder / "masks").mkdir()
            metadata[folder] = {}
        item = item_id(sample)
        if item in metadata[folder]:
            raise ExportError(f"sample {sample.key!r}: item id {item!r} twice in subject {folder.name!r}")
        metadata[folder][item] = metadata_entry(sample, person, nested=variant == "monohuman")
        (folder / "images" / f"{item}.png").write_bytes(frame_png(sample))
        (folder / "masks" / f"{item}.png").write_bytes(_png(person_mask(sample, person)))
    for folder, content in metadata.items():
        (folder / "metadata.json").write_text(json.dumps(content))
    return [ExportedSubject(folder, len(content)) for folder, content in metadata.items()]
