"""``humanbench eval --renders``: rendered test views + GT shards -> a result record under an avatar protocol.

Renders are image files named by sample key (``<key>.png`` / ``.jpg``) in one folder. A first pass over
this process's exact-once slice of the shards checks every sample against the folder (missing renders,
8-bit RGB, the size of the GT the protocol scores, what the protocol needs from the sample); the
problems of all ranks are gathered, so every rank stops with the same message naming counts and first
offenders, extra renders included. The second pass prepares the GT images in batches of equal size as
the protocol's source does (:func:`scored_gt`: undistortion, resampling, background, from
``humanbench.metrics.avatar_gt``), scores them (:func:`score_images`, pure tensor maths on the device)
and gathers the per-image rows across ranks with the mesh driver's helpers, so a ``torchrun`` run
writes the same record as a single process. LPIPS networks are built once per run.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from PIL import Image, UnidentifiedImageError
from torch import Tensor
from tqdm import tqdm

from humanbench import __version__
from humanbench.conversion import current_command
from humanbench.evaluation import EvaluationError, _distributed, _gather
from humanbench.metrics.avatar_gt import DISTORTION_TERMS, prepare_gt, prepared_size
from humanbench.metrics.hmr import SMPL_PARAMS, EvalContext
from humanbench.metrics.image import box_pixel_mask, psnr, ssim_gaussian, ssim_skimage
from humanbench.metrics.lpips_offline import lpips_distance, load_lpips
from humanbench.metrics.masking import (fill_outside, mask_at_box, mask_bbox, padded_bounds, projected_box_mask,
                                        quantize_uint8, ray_box_two_hits)
from humanbench.protocols import AvatarProtocol, get_protocol
from humanbench.protocols.avatar import BoxMask, ImageMetric
from humanbench.records import ResultRecord, write_record
from humanbench.schema import Sample, decode_image, decode_sample
from humanbench.shards import Manifest, iter_encoded
from humanbench.shards.manifest import sha256_file

RENDER_SUFFIXES = (".png", ".jpg", ".jpeg")
DEFAULT_BATCH_SIZE = 8
FIRST_OFFENDERS = 5
BOX_TESTS = {"ray_slab": mask_at_box, "ray_two_hits": ray_box_two_hits, "projected_faces": projected_box_mask}
BREAKDOWNS = (("sequence", "sequence"), ("camera", "camera"), ("frame", "frame"))


class RenderError(EvaluationError):
    """Renders that do not fit the shards: missing, extra, unreadable, not 8-bit RGB, or not of the scored GT's size."""


def index_renders(folder: str | Path) -> dict[str, Path]:
    """Render files of ``folder`` by sample key (the file name without ``.png``/``.jpg``/``.jpeg``)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise RenderError(f"{folder}: not a folder of rendered images")
    renders: dict[str, Path] = {}
    duplicates = []
    for path in sorted(folder.iterdir()):
        if path.is_file() and path.suffix.lower() in RENDER_SUFFIXES and not path.name.startswith("."):
            key = path.name[: -len(path.suffix)]
            if key in renders:
                duplicates.append(key)
            renders[key] = path
    if duplicates:
        raise RenderError(f"{folder}: {len(duplicates)} key(s) with more than one render file, first: "
                          f"{', '.join(duplicates[:FIRST_OFFENDERS])}")
    return renders


def _uses(protocol: AvatarProtocol, region: str) -> bool:
    return any(m.region == region for m in protocol.metrics)


def scored_size(protocol: AvatarProtocol, height: int, width: int) -> tuple[int, int]:
    """(height, width) of the GT ``protocol`` scores for a stored image of ``height`` × ``width``."""
    prep = protocol.preparation
    return (height, width) if prep is None else prepared_size(prep.scale, height, width)


def _sample_problems(protocol: AvatarProtocol, sample: Sample, render: Path | None) -> Iterator[tuple[str, str]]:
    """(kind, offender) for everything that stops ``sample`` from being scored under ``protocol``."""
    key = sample.key
    prep = protocol.preparation
    if render is None:
        yield "samples without a render", key
        return
    try:
        with Image.open(render) as img:
            mode, size = img.mode, img.size
    except (OSError, UnidentifiedImageError) as err:
        yield "unreadable renders", f"{render.name} ({err})"
        return
    if mode != "RGB":
        yield "renders that are not 8-bit RGB", f"{render.name} ({mode})"
    height, width = scored_size(protocol, sample.height, sample.width)
    if size != (width, height):
        yield ("renders of another size than the GT the protocol scores",
               f"{key}: render {size[0]}x{size[1]}, GT {width}x{height}")
    if prep is None and np.any(sample.camera.dist != 0):
        yield "distorted GT images (cam_dist != 0; the protocol scores the stored image, undistorted)", key
    if prep is not None and sample.mask is None:
        yield "samples without the mask the GT preparation needs", key
    if prep is not None and np.any(sample.camera.dist[DISTORTION_TERMS:] != 0):
        yield "distortion beyond k1, k2, p1, p2, k3 (cam_dist terms after the fifth are not modelled)", key
    if _uses(protocol, "mask_bbox") and sample.mask is None:
        yield "samples without the GT mask the protocol crops to", key
    box = protocol.box
    if box is not None:
        if sample.num_people != 1:
            yield "samples without exactly one person (the 3D box needs one)", f"{key} ({sample.num_people})"
        elif box.points == "vertices" and "vertices" not in sample.people:
            yield "samples without stored vertices (the 3D box needs them)", key
        elif box.points != "vertices" and (sample.body_model != "smpl" or "betas" not in sample.people):
            yield "samples without SMPL parameters (the 3D box needs them)", key
        elif box.points == "model_joints_body_frame" and not {"rh", "th"} <= set(sample.people):
            yield "samples without EasyMocap rh/th (the body-frame box needs them)", key


def _check(protocol: AvatarProtocol, manifest: Manifest, renders: dict[str, Path], rank: int, world: int,
           shards: Path, folder: Path) -> None:
    """Check this rank's samples, gather every rank's findings and raise the same :class:`RenderError` on all."""
    keys, problems = [], defaultdict(list)
    for encoded in iter_encoded(manifest, rank=rank, world_size=world, num_workers=1, worker=0):
        sample = decode_sample(encoded)
        keys.append(sample.key)
        for kind, offender in _sample_problems(protocol, sample, renders.get(sample.key)):
            problems[kind].append(offender)
    gathered = _gather((keys, dict(problems)))
    merged: dict[str, list[str]] = defaultdict(list)
    for _, part in gathered:
        for kind, offenders in part.items():
            merged[kind].extend(offenders)
    known = {key for part_keys, _ in gathered for key in part_keys}
    extra = sorted(set(renders) - known)
    if extra:
        merged["renders without a sample in the shards"] = [renders[k].name for k in extra]
    if merged:
        lines = [f"  {kind}: {len(offenders)}, first: {', '.join(sorted(offenders)[:FIRST_OFFENDERS])}"
                 for kind, offenders in merged.items()]
        raise RenderError(f"renders {folder} do not fit shards {shards} ({manifest.dataset}/{manifest.split}) under "
                          f"protocol {protocol.id}:\n" + "\n".join(lines))


def _check_shards(protocol: AvatarProtocol, manifest: Manifest) -> None:
    if manifest.dataset != protocol.dataset or manifest.split != protocol.split:
        raise EvaluationError(f"protocol {protocol.id} scores {protocol.dataset}/{protocol.split} (the converter's "
                              f"split for it: {protocol.gt_preparation}); these shards hold "
                              f"{manifest.dataset}/{manifest.split}")


@dataclass
class _Item:
    """One sample ready to score: ids, render (H',W',3) uint8 or None, stored GT (H,W,3) uint8, stored mask (H,W)
    or None, camera (distortion padded to k1, k2, p1, p2, k3), person 0."""

    key: str
    sequence: str
    camera: str
    frame: int
    render: np.ndarray | None
    gt: np.ndarray
    mask: np.ndarray | None
    K: np.ndarray
    dist: np.ndarray
    R: np.ndarray
    t: np.ndarray
    person: dict[str, np.ndarray]
    gender: str
    synthetic: bool


def _load_item(sample: Sample, render: Path | None) -> _Item:
    pixels = None
    if render is not None:
        with Image.open(render) as img:
            pixels = np.asarray(img)
    mask = None if sample.mask is None else decode_image(sample.mask)
    dist = np.zeros(DISTORTION_TERMS)
    terms = sample.camera.dist[:DISTORTION_TERMS]
    dist[:len(terms)] = terms
    return _Item(sample.key, sample.sequence, sample.camera_name, sample.frame, pixels, decode_image(sample.image), mask,
                 sample.camera.K, dist, sample.camera.R, sample.camera.t, {n: a[0] for n, a in sample.people.items()},
                 sample.genders[0] if sample.genders else "neutral", sample.synthetic)


def scored_gt(protocol: AvatarProtocol, items: list[_Item], device: torch.device | str
              ) -> tuple[Tensor, Tensor | None, Tensor]:
    """The GT images ``protocol`` scores for equally sized items, after its GT preparation (if any).

    Returns:
        (N, 3, h, w) float64 images in [0, 1]; (N, h, w) bool person masks (None when an item has no stored
        mask); (N, 3, 3) intrinsics of those images.
    """
    stack = lambda name: torch.from_numpy(np.stack([getattr(item, name) for item in items])).to(device)  # noqa: E731
    gt = stack("gt").permute(0, 3, 1, 2).contiguous().to(torch.float64)
    K = stack("K").to(torch.float64)
    if protocol.preparation is not None:
        return prepare_gt(protocol.preparation, gt, stack("mask").long(), K, stack("dist").to(torch.float64),
                          protocol.background)
    masks = None if any(item.mask is None for item in items) else stack("mask") != 0
    return gt / 255.0, masks, K


def box_mask_of(box: BoxMask, items: list[_Item], K: Tensor, context: EvalContext, height: int, width: int) -> Tensor:
    """(N, H, W) bool evaluation-time box mask of the items seen by cameras ``K`` (N, 3, 3) at ``height`` × ``width``
    (see :class:`~humanbench.protocols.avatar.BoxMask`)."""
    stack = lambda name: context.tensor(np.stack([item.person[name] for item in items]))  # noqa: E731
    K = context.tensor(K)
    R = context.tensor(np.stack([item.R for item in items]))
    t = context.tensor(np.stack([item.t for item in items]))
    if box.points == "vertices":
        points = stack("vertices")
    else:
        vertices, joints = context.forward("smpl", {n: stack(n) for n in SMPL_PARAMS}, [i.gender for i in items])
        transl = stack("transl")[:, None]
        points = vertices + transl
        if box.points == "model_joints_body_frame":
            from smplx.lbs import batch_rodrigues

            body = batch_rodrigues(stack("rh"))  # body frame -> world
            th = stack("th")
            points = (joints[:, :24] + transl - th[:, None]) @ body
            R, t = R @ body, torch.einsum("nij,nj->ni", R, th) + t
    return BOX_TESTS[box.test](padded_bounds(points, box.padding), K, R, t, height, width)


def _lpips_on_boxes(net: torch.nn.Module, render: Tensor, gt: Tensor, boxes: Tensor, feed: str) -> Tensor:
    """LPIPS of each image's crop; one network call per distinct crop size (padding and pooling make a
    crop's score depend on its exact size, so crops cannot be padded to a common one)."""
    values = torch.empty(len(render), dtype=torch.float32, device=render.device)
    sizes = torch.stack([boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]], dim=1)
    for size in torch.unique(sizes, dim=0):
        index = torch.nonzero((sizes == size).all(dim=1)).flatten()
        crops = [(render[i, :, y0:y1, x0:x1], gt[i, :, y0:y1, x0:x1])
                 for i, (x0, y0, x1, y1) in zip(index.tolist(), boxes[index].tolist())]
        values[index] = lpips_distance(net, torch.stack([c[0] for c in crops]), torch.stack([c[1] for c in crops]),
                                       feed=feed)
    return values


def _metric(metric: ImageMetric, render: Tensor, gt: Tensor, box_mask: Tensor | None, box: Tensor | None,
            nets: dict[str, torch.nn.Module]) -> Tensor:
    if metric.kind == "psnr":
        pixels = box_mask if metric.region == "box_pixels" else None
        if box is not None:
            pixels = box_pixel_mask(box, render.shape[2], render.shape[3])
        return psnr(render, gt, reduction=metric.variant, mask=pixels)
    if metric.region == "box_pixels":
        raise ValueError(f"metric {metric.name}: region 'box_pixels' is defined for PSNR only")
    if metric.kind == "ssim" and metric.variant == "skimage":
        return ssim_skimage(render, gt, data_range=metric.data_range, box=box)
    if metric.kind == "ssim" and metric.variant == "gaussian":  # float32, as the 3DGS code runs it
        return ssim_gaussian(render.float(), gt.float(), box=box).double()
    if metric.kind == "lpips":
        if box is None:
            return lpips_distance(nets[metric.variant], render, gt, feed=metric.lpips_feed)
        return _lpips_on_boxes(nets[metric.variant], render, gt, box, metric.lpips_feed)
    raise ValueError(f"metric {metric.name}: unknown kind/variant {metric.kind}/{metric.variant}")


def score_images(protocol: AvatarProtocol, render: Tensor, gt: Tensor, *, gt_mask: Tensor | None = None,
                 box_mask: Tensor | None = None, nets: dict[str, torch.nn.Module] | None = None) -> dict[str, Tensor]:
    """Every metric of ``protocol`` per image.

    Args:
        render, gt: (N, 3, H, W) images in [0, 1].
        gt_mask: (N, H, W) bool GT person mask (for ``mask_bbox`` regions).
        box_mask: (N, H, W) bool evaluation-time 3D-box mask (for protocols with a ``box``).
        nets: LPIPS networks by backbone name, from :func:`~humanbench.metrics.lpips_offline.load_lpips`.

    Returns:
        metric name -> (N,) values.
    """
    if protocol.box is not None:
        render = fill_outside(render, box_mask, protocol.background)
        if protocol.box.fill == "both":
            gt = fill_outside(gt, box_mask, protocol.background)
    if protocol.quantize:
        render, gt = quantize_uint8(render), quantize_uint8(gt)
    boxes = {}
    if _uses(protocol, "box_bbox"):
        boxes["box_bbox"] = mask_bbox(box_mask, include_last=True)
    if _uses(protocol, "mask_bbox"):
        boxes["mask_bbox"] = mask_bbox(gt_mask, include_last=False)
    return {m.name: _metric(m, render, gt, box_mask, boxes.get(m.region), nets or {}) for m in protocol.metrics}


def _score_items(protocol: AvatarProtocol, items: list[_Item], nets: dict[str, torch.nn.Module],
                 context: EvalContext) -> pd.DataFrame:
    """Per-image rows of one batch of equally sized items."""
    gt, gt_mask, K = scored_gt(protocol, items, context.device)
    height, width = gt.shape[-2:]
    box_mask = None
    if protocol.box is not None:
        box_mask = box_mask_of(protocol.box, items, K, context, height, width)
        empty = [item.key for item, hit in zip(items, box_mask.flatten(1).any(dim=1).tolist()) if not hit]
        if empty:
            raise RenderError(f"protocol {protocol.id}: the 3D box of {len(empty)} sample(s) covers no pixel, "
                              f"first: {', '.join(empty[:FIRST_OFFENDERS])}")
    if _uses(protocol, "mask_bbox"):
        empty = [item.key for item, hit in zip(items, gt_mask.flatten(1).any(dim=1).tolist()) if not hit]
        if empty:
            raise RenderError(f"protocol {protocol.id}: {len(empty)} sample(s) with an empty GT mask, first: "
                              f"{', '.join(empty[:FIRST_OFFENDERS])}")
    render = torch.from_numpy(np.stack([item.render for item in items])).to(context.device)
    # contiguous like the GT: a render equal to its GT then gets bit-equal LPIPS features (LPIPS exactly 0)
    render = render.permute(0, 3, 1, 2).contiguous().to(torch.float64) / 255.0
    with torch.no_grad():
        values = score_images(protocol, render, gt, gt_mask=gt_mask, box_mask=box_mask, nets=nets)
    frame = pd.DataFrame({"key": [i.key for i in items], "sequence": [i.sequence for i in items],
                          "camera": [i.camera for i in items], "frame": [i.frame for i in items]})
    for name, column in values.items():
        frame[name] = column.double().cpu().numpy()
    return frame


def _batches(manifest: Manifest, renders: dict[str, Path] | None, rank: int, world: int, batch_size: int, *,
             desc: str = "", progress: bool = False) -> Iterator[list[_Item]]:
    """This rank's exact-once samples as items (with their renders unless ``renders`` is None), in batches of
    up to ``batch_size`` items with one stored image size."""
    pending: dict[tuple[int, int], list[_Item]] = defaultdict(list)
    stream = iter_encoded(manifest, rank=rank, world_size=world, num_workers=1, worker=0)
    for encoded in tqdm(stream, desc=desc, disable=not progress, unit="image"):
        sample = decode_sample(encoded)
        item = _load_item(sample, None if renders is None else renders[sample.key])
        group = pending[item.gt.shape[:2]]
        group.append(item)
        if len(group) == batch_size:
            yield pending.pop(item.gt.shape[:2])
    yield from pending.values()


def prepared_gt_images(protocol_id: str, shards: str | Path, *, device: str = "cpu",
                       batch_size: int = DEFAULT_BATCH_SIZE) -> dict[str, np.ndarray]:
    """The GT image each sample of ``shards`` is scored against under avatar protocol ``protocol_id``, by key:
    (h, w, 3) float64 in [0, 1], after the protocol's GT preparation and before its evaluation-time box fill
    and quantisation (a render written as this image, rounded to 8 bits, is as close as a file gets)."""
    protocol = get_protocol(protocol_id)
    if not isinstance(protocol, AvatarProtocol):
        raise EvaluationError(f"protocol {protocol_id} scores predictions, not rendered images")
    manifest = Manifest.load(shards)
    _check_shards(protocol, manifest)
    images = {}
    for items in _batches(manifest, None, 0, 1, batch_size):
        gt, _, _ = scored_gt(protocol, items, device)
        images.update({item.key: image.permute(1, 2, 0).cpu().numpy() for item, image in zip(items, gt)})
    return images


def _score_slice(protocol: AvatarProtocol, manifest: Manifest, renders: dict[str, Path], rank: int, world: int,
                 nets: dict[str, torch.nn.Module], context: EvalContext, batch_size: int,
                 progress: bool) -> tuple[pd.DataFrame, bool, list[tuple[str, str]]]:
    """This rank's per-image rows, whether any sample is synthetic, and (file, sha256) of its renders."""
    parts, synthetic, hashes = [], False, []
    for items in _batches(manifest, renders, rank, world, batch_size, desc=protocol.id, progress=progress):
        hashes += [(renders[item.key].name, sha256_file(renders[item.key])) for item in items]
        synthetic |= any(item.synthetic for item in items)
        parts.append(_score_items(protocol, items, nets, context))
    columns = ["key", "sequence", "camera", "frame", *(m.name for m in protocol.metrics)]
    return (pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=columns)), synthetic, hashes


def _finite_mean(values: pd.Series) -> float | None:
    """Mean of the values, or None (JSON null) when one is infinite (PSNR of a render equal to its GT)."""
    mean = float(values.astype(np.float64).mean())
    return mean if np.isfinite(mean) else None


def _infinite(values: pd.Series) -> int:
    """How many of the values are infinite."""
    return int(np.isinf(values.to_numpy(dtype=np.float64)).sum())


def _part_summary(names: list[str], group: pd.DataFrame) -> dict[str, float | None]:
    """One breakdown entry: each metric's mean over the part (None when infinite, with ``<metric>_infinite``
    images) and ``images``, the part's image count."""
    entry: dict[str, float | None] = {}
    for name in names:
        entry[name] = _finite_mean(group[name])
        if infinite := _infinite(group[name]):
            entry[f"{name}_infinite"] = infinite
    entry["images"] = len(group)
    return entry


Breakdowns = dict[str, dict[str, dict[str, float | None]]]
"""kind (sequence, camera, frame) -> part -> metric name or ``images`` -> value."""


def summarize_renders(protocol: AvatarProtocol, frame: pd.DataFrame
                      ) -> tuple[dict[str, float | None], dict[str, int], Breakdowns]:
    """Metrics (mean over images), counts and per-sequence / per-camera / per-frame breakdowns.

    A metric with an infinite per-image value (PSNR of a render identical to its GT) has mean +inf,
    which JSON cannot hold: it is reported as None, with ``counts["<metric>_infinite"]`` images.
    Breakdowns map ``"camera"`` (and ``"sequence"``, ``"frame"``) to each part's entry (:func:`_part_summary`):
    ``breakdowns["camera"]["cam0"] = {"psnr": …, "ssim": …, "images": 2}``.
    """
    names = [m.name for m in protocol.metrics]
    counts = {"images": len(frame), **{f"{label}s": int(frame[column].nunique()) for column, label in BREAKDOWNS}}
    metrics = {}
    for name in names:
        metrics[name] = _finite_mean(frame[name])
        counts[name] = int(frame[name].notna().sum())
        if infinite := _infinite(frame[name]):
            counts[f"{name}_infinite"] = infinite
    breakdowns = {label: {str(value): _part_summary(names, group) for value, group in frame.groupby(column, sort=True)}
                  for column, label in BREAKDOWNS}
    return metrics, counts, breakdowns


def _fingerprint(hashes: list[tuple[str, str]]) -> str:
    """sha256 over the sorted ``name sha256`` lines of the render files."""
    return hashlib.sha256("".join(f"{name} {sha}\n" for name, sha in sorted(hashes)).encode()).hexdigest()


def evaluate_renders(protocol_id: str, shards: str | Path, renders: str | Path, *, out: str | Path | None = None,
                     method: str | None = None, body_models: str | Path | None = None, device: str | None = None,
                     batch_size: int = DEFAULT_BATCH_SIZE, progress: bool = True,
                     command: str | None = None) -> ResultRecord:
    """Score the render folder ``renders`` against GT ``shards`` under avatar protocol ``protocol_id``.

    Writes the record (JSON + per-image parquet) to ``out`` on rank 0 and returns it. ``body_models``
    is used by protocols whose 3D box comes from the SMPL parameters.
    """
    protocol = get_protocol(protocol_id)
    if not isinstance(protocol, AvatarProtocol):
        raise EvaluationError(f"protocol {protocol_id} scores predictions (--pred FILE), not rendered images")
    shards, folder = Path(shards), Path(renders)
    manifest = Manifest.load(shards)
    _check_shards(protocol, manifest)
    index = index_renders(folder)
    rank, world = _distributed()
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    context = EvalContext(body_models, device=device)
    loaded = {m.variant: load_lpips(m.variant, device) for m in protocol.metrics if m.kind == "lpips"}
    _check(protocol, manifest, index, rank, world, shards, folder)
    nets = {name: net for name, (net, _) in loaded.items()}
    gathered = _gather((*_score_slice(protocol, manifest, index, rank, world, nets, context, batch_size,
                                      progress and rank == 0), context.synthetic))
    frame = pd.concat([part for part, *_ in gathered], ignore_index=True).sort_values("key", ignore_index=True)
    metrics, counts, breakdowns = summarize_renders(protocol, frame)
    provenance: dict[str, Any] = {
        "humanbench_version": __version__, "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "command": command if command is not None else current_command(),
        "shards": {"path": str(shards), "dataset": manifest.dataset, "split": manifest.split,
                   "manifest_sha256": sha256_file(shards / "manifest.json"),
                   "source_fingerprint": manifest.source_fingerprint},
        "renders": {"path": str(folder), "files": len(frame),
                    "fingerprint": _fingerprint([h for _, _, hashes, _ in gathered for h in hashes])},
        "lpips": {name: {"file": info.path.name, "sha256": info.sha256, "official": info.official}
                  for name, (_, info) in loaded.items()},
        "device": str(context.device), "world_size": world,
    }
    if protocol.box is not None and protocol.box.points != "vertices":
        provenance["body_models"] = "synthetic" if context.synthetic else str(context.root or "HUMANBENCH_BODY_MODELS")
    record = ResultRecord(method=method or folder.name, protocol=protocol.describe(), metrics=metrics, counts=counts,
                          per_joint={}, breakdowns=breakdowns, provenance=provenance,
                          synthetic=any(s or c for _, s, _, c in gathered), per_person=frame)
    if out is not None and rank == 0:
        write_record(record, out)
    return record


def format_render_record(record: ResultRecord) -> str:
    """The summary ``humanbench eval --renders`` prints: metrics (plain and as tables show them), counts, paths."""
    specs = {m["name"]: m for m in record.protocol["metrics"]}
    lines = [f"{record.method} under {record.protocol_id} v{record.protocol['version']}"
             + (" [synthetic]" if record.synthetic else "")]
    for name, value in record.metrics.items():
        spec = specs[name]
        if value is None:
            text = f"inf ({record.counts[f'{name}_infinite']} image(s) equal to their GT)"
        else:
            text = f"{value:.{spec['decimals']}f}"
            if spec["table_scale"] != 1.0:
                text += f" ({spec['table_name']} {value * spec['table_scale']:.{spec['table_decimals']}f})"
        lines.append(f"  {name}: {text} {spec['unit']}".rstrip() + f" ({record.counts[name]} images)")
    unofficial = [name for name, info in record.provenance.get("lpips", {}).items() if not info["official"]]
    if unofficial:
        lines.append(f"  warning: LPIPS backbone weights {unofficial} are not torchvision's official files "
                     f"(sha256 differs): LPIPS values are not comparable")
    if record.path is not None:
        lines.append(f"  record: {record.path} (+ {record.path.with_suffix('.parquet').name})")
    return "\n".join(lines)
