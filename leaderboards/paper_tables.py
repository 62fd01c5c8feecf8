"""Paper-table templates: the column layout of well-known tables, filled from result records.

A template names, in the paper's order, the metric each column shows (by metric name, as the
protocols define them) under the paper's headers and groups, and the dataset(s) it is for.
:func:`apply_template` lays every table of those datasets out that way; the renderers of
:mod:`humanbench.leaderboards.tables` then print it as Markdown or booktabs LaTeX.

A record whose protocol does not define a column's metric is an error naming the record, the
missing metric and the metrics it has: a template never silently prints a dash for a number the
protocol cannot give. Published rows simply lack some values (printed ``–``), and a table of
published numbers with none of the template's metrics is left out.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from humanbench.leaderboards.tables import Column, Table, TableError, with_columns

_AGORA_PARTS = (("fullbody", "All"), ("body", "Body"), ("face", "Face"), ("lhand", "LH"), ("rhand", "RH"))
_WHOLE_BODY = tuple(Column(f"{prefix}_{part}", part.title(), group)
                    for prefix, group in (("pa_pve", "PA-PVE"), ("pve", "PVE")) for part in ("all", "hands", "face"))


@dataclass(frozen=True)
class Template:
    """A paper's table layout: which datasets it is for and its columns in order."""

    name: str
    description: str
    datasets: tuple[str, ...]
    columns: tuple[Column, ...]


TEMPLATES: dict[str, Template] = {t.name: t for t in (
    Template("agora", "AGORA SMPL-X leaderboard (as in AiOS Table 1): F1/P/R | NMVE | NMJE | MVE | MPJPE", ("agora",),
             (Column("f1", "F1", "Detection"), Column("precision", "P", "Detection"), Column("recall", "R", "Detection"),
              *(Column(f"{part}-{kind}", header, kind) for kind, parts in (("NMVE", _AGORA_PARTS[:2]),
                                                                          ("NMJE", _AGORA_PARTS[:2]),
                                                                          ("MVE", _AGORA_PARTS), ("MPJPE", _AGORA_PARTS))
                for part, header in parts))),
    Template("ubody", "UBody (as in AiOS Table 3): PA-PVE All/Hands/Face | PVE All/Hands/Face", ("ubody",), _WHOLE_BODY),
    Template("ehf", "EHF (as in AiOS Table 4): PA-PVE All/Hands/Face | PVE All/Hands/Face", ("ehf",), _WHOLE_BODY),
    Template("3dpw", "3DPW: MPJPE, PA-MPJPE, PVE", ("3dpw",),
             (Column("mpjpe", "MPJPE"), Column("pa_mpjpe", "PA-MPJPE"), Column("pve", "PVE"))),
    Template("zju-mocap", "ZJU-MoCap rendering: PSNR, SSIM, LPIPS* (LPIPS × 1000)", ("zju-mocap",),
             (Column("psnr", "PSNR"), Column("ssim", "SSIM"), Column("lpips", "LPIPS*", scale=1000.0, decimals=2))),
)}
"""Every template by name (``humanbench leaderboard --template NAME``)."""


def get_template(name: str) -> Template:
    """The template called ``name``."""
    if name not in TEMPLATES:
        raise TableError(f"unknown table template {name!r}; templates: {', '.join(TEMPLATES)}")
    return TEMPLATES[name]


def _check_records(table: Table, template: Template) -> None:
    """Every reproduced row's protocol defines every column's metric."""
    for _, row in table.rows[table.rows["status"] == "reproduced"].iterrows():
        defined = [spec["name"] for spec in json.loads(row["metric_specs"])]
        missing = [c for c in template.columns if c.metric not in defined]
        if missing:
            wanted = ", ".join(f"{c.label()} (metric {c.metric!r})" for c in missing)
            raise TableError(f"template {template.name}: record {row['record'] or row['method']!r} (method "
                             f"{row['method']!r}, {table.protocol} v{table.version}) has no {wanted}; its protocol "
                             f"defines {', '.join(defined)}. Use records of a protocol that defines these metrics, "
                             "or the generic table (no --template).")


def apply_template(tables: list[Table], name: str) -> list[Table]:
    """The tables of the template's datasets, laid out in the template's columns."""
    template = get_template(name)
    laid_out = []
    for table in tables:
        if table.dataset not in template.datasets:
            continue
        _check_records(table, template)
        if not any(c.metric in table.rows and table.rows[c.metric].notna().any() for c in template.columns):
            continue
        laid_out.append(with_columns(table, list(template.columns)))
    if not laid_out:
        raise TableError(f"template {name}: no results on {', '.join(template.datasets)} with any of its metrics")
    return laid_out
