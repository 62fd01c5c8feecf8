"""Plots from result records alone (matplotlib, PNG and PDF, byte-deterministic).

Kinds (``humanbench plot KIND RECORDS...``):

- ``per-joint``: mean error per joint, one bar per method (the per-joint analysis of Meta-HMR on
  3DPW), from the records' ``per_joint`` means.
- ``skeleton``: the same errors drawn on a 2D layout of the protocol's joints (:data:`LAYOUTS`:
  LSP-14 for ``3dpw/spin``/``3dpw/cliff``, the SMPL kinematic 14 for ``3dpw/smplerx``).
- ``cdf``: the fraction of people whose error is at most x, per method, from the sidecars.
- ``tto``: error against test-time-optimisation step. A record's step is the ``N`` of a method
  named ``X@step=N`` (one line per series ``X``), or the ``steps`` given in record order.
- ``agora-bins``: mean per-person error in AGORA's official occlusion bins (and orientation bins
  when the sidecar has ``orientation``), from ``agora/official`` sidecars with an ``occlusion``
  column (percent); rows without a finite error (misses) are left out.

All records of one plot must share protocol id, version, dataset, split and kind of data
(synthetic or real). Figures are built on :class:`matplotlib.figure.Figure` (no pyplot state)
and saved without dates or software versions, so the same records give the same bytes.
"""

from __future__ import annotations

import io
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import pandas as pd
from matplotlib import rc_context
from matplotlib.cm import ScalarMappable
from matplotlib.colors import Normalize
from matplotlib.figure import Figure

from humanbench.errors import HumanbenchError
from humanbench.leaderboards.store import load_records, split_step
from humanbench.leaderboards.tables import display_name
from humanbench.metrics.agora_aggregate import OCCLUSION_BIN_EDGES, ORIENTATION_BIN_EDGES
from humanbench.records import ResultRecord

RC = {"font.size": 9, "axes.titlesize": 10, "figure.dpi": 100, "savefig.dpi": 100, "svg.hashsalt": "humanbench",
      "pdf.compression": 6, "path.simplify": True}
"""Fixed matplotlib settings for every plot (a user's matplotlibrc does not change the bytes)."""
METADATA = {"png": {"Software": None}, "pdf": {"Creator": None, "Producer": None, "CreationDate": None}}
"""Metadata entries removed from saved files (they would carry versions and dates)."""
FORMATS = ("png", "pdf")


class PlotError(HumanbenchError):
    """Records that cannot be drawn as asked (mixed protocols, missing data)."""


@dataclass(frozen=True)
class SkeletonLayout:
    """Front-view 2D positions of named joints (the person's right on the viewer's left) and their bones."""

    points: dict[str, tuple[float, float]]
    bones: tuple[tuple[str, str], ...]


_ARMS_LEGS = tuple((f"{s}_{a}", f"{s}_{b}") for s in ("r", "l")
                   for a, b in (("shoulder", "elbow"), ("elbow", "wrist"), ("hip", "knee"), ("knee", "ankle"),
                                ("shoulder", "hip")))
LAYOUTS: dict[str, SkeletonLayout] = {
    "lsp14": SkeletonLayout(
        {"head_top": (0.0, 1.75), "neck": (0.0, 1.5), "r_shoulder": (-0.2, 1.45), "l_shoulder": (0.2, 1.45),
         "r_elbow": (-0.3, 1.15), "l_elbow": (0.3, 1.15), "r_wrist": (-0.36, 0.85), "l_wrist": (0.36, 0.85),
         "r_hip": (-0.12, 0.95), "l_hip": (0.12, 0.95), "r_knee": (-0.14, 0.5), "l_knee": (0.14, 0.5),
         "r_ankle": (-0.15, 0.06), "l_ankle": (0.15, 0.06)},
        (("head_top", "neck"), ("neck", "r_shoulder"), ("neck", "l_shoulder"), ("r_hip", "l_hip"), *_ARMS_LEGS)),
    "smpl_kinematic14": SkeletonLayout(
        {"head": (0.0, 1.62), "neck": (0.0, 1.47), "r_shoulder": (-0.18, 1.4), "l_shoulder": (0.18, 1.4),
         "r_elbow": (-0.28, 1.12), "l_elbow": (0.28, 1.12), "r_wrist": (-0.34, 0.85), "l_wrist": (0.34, 0.85),
         "r_hip": (-0.09, 0.92), "l_hip": (0.09, 0.92), "r_knee": (-0.11, 0.5), "l_knee": (0.11, 0.5),
         "r_ankle": (-0.12, 0.08), "l_ankle": (0.12, 0.08)},
        (("head", "neck"), ("neck", "r_shoulder"), ("neck", "l_shoulder"), ("r_hip", "l_hip"), *_ARMS_LEGS)),
}
"""Skeleton layouts by name; a protocol's joints are drawn on the first layout that has them all."""


def layout_for(joint_names: Sequence[str]) -> SkeletonLayout:
    """The layout that places every one of ``joint_names``."""
    for layout in LAYOUTS.values():
        if set(joint_names) <= set(layout.points):
            return layout
    raise PlotError(f"no skeleton layout for the joints {list(joint_names)}; layouts exist for {', '.join(LAYOUTS)}")


def _plain(text: str) -> str:
    """``text`` shown literally by matplotlib (a ``$`` would start mathtext)."""
    return text.replace("$", r"\$")


def _key(record: ResultRecord) -> tuple:
    p = record.protocol
    return p["id"], p["version"], p["dataset"], p["split"], record.synthetic


def _common(records: Sequence[ResultRecord]) -> ResultRecord:
    """The first record, after checking that all of them are comparable."""
    if not records:
        raise PlotError("no result records to plot")
    keys = {_key(r) for r in records}
    if len(keys) > 1:
        listed = "; ".join(f"{k[0]} v{k[1]} on {k[2]}/{k[3]}" + (" (synthetic)" if k[4] else "") for k in sorted(keys))
        raise PlotError(f"records of different protocols, versions, data or synthetic/real cannot share a plot: {listed}")
    return records[0]


def _spec(record: ResultRecord, metric: str) -> dict:
    for spec in record.protocol["metrics"]:
        if spec["name"] == metric:
            return spec
    names = ", ".join(s["name"] for s in record.protocol["metrics"])
    raise PlotError(f"protocol {record.protocol_id} has no metric {metric!r}; it defines {names}")


def _axis_label(spec: dict, scale_note: str = "") -> str:
    unit = f" [{spec['unit']}]" if spec["unit"] else ""
    return f"{display_name(spec['name'])}{unit}{scale_note}"


def _title(record: ResultRecord, what: str) -> str:
    p = record.protocol
    synthetic = " — SYNTHETIC DATA" if record.synthetic else ""
    return f"{what}: {p['id']} v{p['version']} ({p['dataset']}/{p['split']}){synthetic}"


def _per_joint_metric(records: Sequence[ResultRecord], metric: str | None) -> str:
    first = _common(records)
    metric = metric or next((s["name"] for s in first.protocol["metrics"] if s["name"] in first.per_joint), None)
    if metric is None:
        raise PlotError(f"records of {first.protocol_id} have no per-joint errors")
    _spec(first, metric)
    for record in records:
        if metric not in record.per_joint:
            raise PlotError(f"record {record.path or record.method}: no per-joint {metric!r}")
    return metric


def per_joint_figure(records: Sequence[ResultRecord], metric: str | None = None) -> Figure:
    """Grouped bars: mean error per joint (x) for each method."""
    metric = _per_joint_metric(records, metric)
    first = records[0]
    joints = first.protocol["joint_names"]
    fig = Figure(figsize=(max(6.0, 0.45 * len(joints) + 1.5), 3.6), layout="constrained")
    ax = fig.add_subplot()
    width = 0.8 / len(records)
    x = np.arange(len(joints))
    for i, record in enumerate(records):
        ax.bar(x + (i - (len(records) - 1) / 2) * width, record.per_joint[metric], width, label=_plain(record.method))
    ax.set_xticks(x, joints, rotation=45, ha="right")
    ax.set_ylabel(_axis_label(_spec(first, metric)))
    ax.set_title(_title(first, f"Per-joint {display_name(metric)}"))
    ax.legend(fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    return fig


def skeleton_figure(records: Sequence[ResultRecord], metric: str | None = None) -> Figure:
    """Per-joint errors as coloured joints on a 2D skeleton, one panel per method, one colour scale."""
    metric = _per_joint_metric(records, metric)
    first = records[0]
    joints = first.protocol["joint_names"]
    layout = layout_for(joints)
    columns = min(4, len(records))
    rows = math.ceil(len(records) / columns)
    fig = Figure(figsize=(2.4 * columns + 1.0, 3.6 * rows + 0.4), layout="constrained")
    norm = Normalize(0.0, max(max(r.per_joint[metric]) for r in records))
    axes = fig.subplots(rows, columns, squeeze=False)
    for ax, record in zip(axes.flat, records):
        for a, b in layout.bones:
            ax.plot(*zip(layout.points[a], layout.points[b]), color="0.75", linewidth=2, zorder=1)
        xy = np.array([layout.points[j] for j in joints])
        errors = np.asarray(record.per_joint[metric])
        ax.scatter(xy[:, 0], xy[:, 1], c=errors, cmap="viridis", norm=norm, s=120, edgecolors="black", zorder=2)
        for (px, py), value in zip(xy, errors):
            ax.annotate(f"{value:.0f}", (px, py), xytext=(7, 0), textcoords="offset points", fontsize=7, va="center")
        ax.set_title(_plain(record.method), fontsize=9)
        ax.set_aspect("equal")
        ax.set_xlim(-0.6, 0.6)
        ax.axis("off")
    for ax in axes.flat[len(records):]:
        ax.axis("off")
    fig.colorbar(ScalarMappable(norm, "viridis"), ax=axes, shrink=0.7, label=_axis_label(_spec(first, metric)))
    fig.suptitle(_title(first, f"{display_name(metric)} per joint"), fontsize=9)
    return fig


def _sidecar_column(record: ResultRecord, column: str, why: str) -> np.ndarray:
    if column not in record.per_person.columns:
        raise PlotError(f"record {record.path or record.method}: its per-person sidecar has no {column!r} column "
                        f"({why}); it has {', '.join(map(str, record.per_person.columns))}")
    return record.per_person[column].to_numpy(dtype=np.float64)


def cdf_figure(records: Sequence[ResultRecord], metric: str | None = None) -> Figure:
    """Empirical CDF of the per-person error, one line per method."""
    first = _common(records)
    metric = metric or first.protocol["metrics"][0]["name"]
    spec = _spec(first, metric)
    fig = Figure(figsize=(5.5, 3.8), layout="constrained")
    ax = fig.add_subplot()
    for record in records:
        values = _sidecar_column(record, metric, "the CDF is drawn from per-person errors")
        values = np.sort(values[np.isfinite(values)])
        fraction = np.arange(len(values) + 1) / max(len(values), 1)
        ax.step(np.concatenate([values[:1], values]), fraction, where="post",
                label=f"{_plain(record.method)} (n={len(values)})")
    ax.set_xlabel(_axis_label(spec))
    ax.set_ylabel("fraction of people with a value ≤ x")
    ax.set_ylim(0, 1.02)
    ax.set_title(_title(first, f"{display_name(metric)} CDF"))
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return fig


def record_steps(records: Sequence[ResultRecord], steps: Sequence[int] | None = None) -> list[tuple[str, int]]:
    """(series, step) of each record: from ``steps`` (in record order) or from ``X@step=N`` method names."""
    if steps is not None:
        if len(steps) != len(records):
            raise PlotError(f"{len(steps)} steps given for {len(records)} records")
        return [(split_step(r.method)[0], int(s)) for r, s in zip(records, steps)]
    out = []
    for record in records:
        series, step = split_step(record.method)
        if step is None:
            raise PlotError(f"record {record.path or record.method}: method {record.method!r} carries no step; "
                            "name methods X@step=N or pass --steps")
        out.append((series, step))
    return out


def tto_figure(records: Sequence[ResultRecord], metric: str | None = None,
               steps: Sequence[int] | None = None) -> Figure:
    """Error against test-time-optimisation step: one panel per metric, one line per series."""
    first = _common(records)
    metrics = [metric] if metric else [s["name"] for s in first.protocol["metrics"]]
    frame = pd.DataFrame([{"series": s, "step": n, **r.metrics} for r, (s, n) in zip(records, record_steps(records, steps))])
    if frame.duplicated(["series", "step"]).any():
        raise PlotError("two records for the same series and step")
    fig = Figure(figsize=(3.6 * len(metrics) + 0.6, 3.4), layout="constrained")
    for ax, name in zip(fig.subplots(1, len(metrics), squeeze=False).flat, metrics):
        spec = _spec(first, name)
        for series, part in frame.sort_values(["series", "step"]).groupby("series", sort=True):
            ax.plot(part["step"], part[name], marker="o", label=_plain(series))
        ax.set_xlabel("test-time optimisation step")
        ax.set_ylabel(_axis_label(spec))
        ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.suptitle(_title(first, "Error against optimisation step"), fontsize=9)
    return fig


def _bin_labels(edges: Sequence[float], unit: str) -> list[str]:
    return [f"{max(lo, 0):g}–{hi:g}{unit}" for lo, hi in zip(edges[:-1], edges[1:])]


def agora_bins_figure(records: Sequence[ResultRecord], metric: str | None = None) -> Figure:
    """Mean per-person error per official occlusion bin (and orientation bin), bars per method."""
    first = _common(records)
    if first.protocol_id != "agora/official":
        raise PlotError(f"AGORA bins need records of agora/official, not {first.protocol_id}")
    metric = metric or "body-MVE"
    spec = _spec(first, metric)
    panels = [("occlusion", OCCLUSION_BIN_EDGES, "%")]
    if all("orientation" in r.per_person.columns for r in records):
        panels.append(("orientation", ORIENTATION_BIN_EDGES, "°"))
    fig = Figure(figsize=(6.0 * len(panels), 3.6), layout="constrained")
    width = 0.8 / len(records)
    for ax, (column, edges, unit) in zip(fig.subplots(1, len(panels), squeeze=False).flat, panels):
        x = np.arange(len(edges) - 1)
        for i, record in enumerate(records):
            errors = _sidecar_column(record, metric, "the bins average per-person errors")
            values = _sidecar_column(record, column, f"AGORA's {column} bins are per person")
            kept = np.isfinite(errors)
            means = pd.Series(errors[kept]).groupby(pd.cut(values[kept], list(edges)), observed=False).mean()
            ax.bar(x + (i - (len(records) - 1) / 2) * width, means.to_numpy(), width, label=_plain(record.method))
        ax.set_xticks(x, _bin_labels(edges, unit), rotation=30, ha="right")
        ax.set_xlabel(f"{column} (official bins)")
        ax.set_ylabel(_axis_label(spec))
        ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=8)
    fig.suptitle(_title(first, f"{display_name(metric)} by AGORA bin"), fontsize=9)
    return fig


KINDS: dict[str, Callable[..., Figure]] = {
    "per-joint": per_joint_figure, "skeleton": skeleton_figure, "cdf": cdf_figure, "tto": tto_figure,
    "agora-bins": agora_bins_figure,
}
"""Figure builders by ``humanbench plot`` kind."""
NEEDS_SIDECAR = ("cdf", "agora-bins")


def figure_bytes(fig: Figure, fmt: str) -> bytes:
    """The figure encoded as ``png`` or ``pdf`` without dates or versions."""
    buffer = io.BytesIO()
    with rc_context(RC):
        fig.savefig(buffer, format=fmt, metadata=METADATA[fmt])
    return buffer.getvalue()


def build_figure(kind: str, records: Sequence[ResultRecord], *, metric: str | None = None,
                 steps: Sequence[int] | None = None) -> Figure:
    """The ``kind`` figure of ``records`` under the fixed settings :data:`RC`."""
    if kind not in KINDS:
        raise PlotError(f"unknown plot kind {kind!r}; kinds: {', '.join(KINDS)}")
    if steps is not None and kind != "tto":
        raise PlotError("steps apply to the tto plot only")
    with rc_context(RC):
        return KINDS[kind](records, metric, steps) if kind == "tto" else KINDS[kind](records, metric)


def plot(kind: str, paths: Sequence[str | Path], *, out: str | Path = ".", metric: str | None = None,
         steps: Sequence[int] | None = None) -> list[Path]:
    """Draw ``kind`` from the records under ``paths`` into ``out`` as PNG and PDF; returns the two paths."""
    records = load_records(paths, per_person=kind in NEEDS_SIDECAR)
    fig = build_figure(kind, records, metric=metric, steps=steps)
    p = records[0].protocol
    stem = re.sub(r"[^A-Za-z0-9.]+", "-", f"{kind}-{p['id']}-v{p['version']}" + (f"-{metric}" if metric else ""))
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for fmt in FORMATS:
        path = out / f"{stem}.{fmt}"
        path.write_bytes(figure_bytes(fig, fmt))
        written.append(path)
    return written
