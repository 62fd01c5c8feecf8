"""Results tables: one per protocol definition and data, rendered as Markdown, LaTeX (booktabs) or CSV.

:func:`build_tables` splits a results frame (:mod:`humanbench.leaderboards.store`) into
:class:`Table` s, one per (protocol id, version, dataset, split, synthetic): numbers from two
protocols, two versions of one protocol, two splits, or synthetic and real data are never in one
table. Two records that claim the same id and version with different definitions are refused.

In every rendering the best value per column is marked (bold; the direction comes from the metric
spec's ``higher_is_better``; compared at the printed precision, ties all marked), values print the
spec's decimals, reported rows (copied from a publication, with a numbered source) and reproduced
rows (computed by humanbench) are labelled and kept apart, and synthetic rows say so. Tables of
numbers whose protocol is ``unknown`` mark no best value: their rows may not be comparable.

Renderings depend on the frame alone and contain no dates: the same records give the same bytes.
"""

from __future__ import annotations

import csv
import io
import json
import math
import re
from dataclasses import dataclass, field, fields, replace

import pandas as pd

from humanbench.errors import HumanbenchError
from humanbench.leaderboards.published import UNKNOWN
from humanbench.protocols import PROTOCOLS, MetricSpec

DISPLAY_NAMES = {
    "mpjpe": "MPJPE", "pa_mpjpe": "PA-MPJPE", "pve": "PVE", "mpe": "MPE",
    "pa_pve_all": "PA-PVE All", "pa_pve_hands": "PA-PVE Hands", "pa_pve_face": "PA-PVE Face",
    "pve_all": "PVE All", "pve_hands": "PVE Hands", "pve_face": "PVE Face",
    "pa_mpjpe_body": "PA-MPJPE Body", "pa_mpjpe_hands": "PA-MPJPE Hands",
    "f1": "F1", "precision": "P", "recall": "R", "psnr": "PSNR", "ssim": "SSIM", "lpips": "LPIPS",
}
"""Column headers of known metric names; any other metric is headed by its name."""
_AGORA_PART = {"fullbody": "All", "body": "Body", "face": "Face", "lhand": "LH", "rhand": "RH"}
MISSING = "–"
FORMATS = ("md", "tex", "csv")


class TableError(HumanbenchError):
    """Rows that cannot be tabulated together, or a table that asks for what the rows lack."""


def display_name(metric: str) -> str:
    """``PA-MPJPE`` for ``pa_mpjpe``; AGORA's ``fullbody-NMVE`` becomes ``NMVE All``."""
    if metric in DISPLAY_NAMES:
        return DISPLAY_NAMES[metric]
    part, _, kind = metric.partition("-")
    return f"{kind} {_AGORA_PART[part]}" if kind and part in _AGORA_PART else metric


@dataclass(frozen=True)
class Column:
    """One value column: the metric it shows, its header (under an optional group), a display scale and,
    when the printed decimals are not the metric's own (e.g. LPIPS* = LPIPS × 1000 with 2 decimals), those."""

    metric: str
    header: str
    group: str = ""
    scale: float = 1.0
    decimals: int | None = None

    def label(self) -> str:
        """Group and header in one line, e.g. ``PA-PVE All``."""
        return f"{self.group} {self.header}".strip()


@dataclass
class Table:
    """Rows that are comparable: one protocol definition (or ``unknown``), one dataset split, one kind of data."""

    protocol: str
    version: int | None
    dataset: str
    split: str
    synthetic: bool
    title: str
    columns: list[Column]
    specs: dict[str, MetricSpec]
    rows: pd.DataFrame = field(repr=False)

    @property
    def known(self) -> bool:
        """Whether the rows follow a named protocol (only then is a best value marked)."""
        return self.protocol != UNKNOWN

    @property
    def slug(self) -> str:
        """File- and label-safe name, e.g. ``3dpw-cliff-v1-3dpw-test``."""
        version = f"-v{self.version}" if self.version is not None else ""
        name = f"{self.protocol}{version}-{self.dataset}-{self.split}" + ("-synthetic" if self.synthetic else "")
        return re.sub(r"[^A-Za-z0-9.]+", "-", name).strip("-")

    def heading(self) -> str:
        """One-line title: protocol and version, its title, the data."""
        if not self.known:
            return f"{self.dataset}/{self.split}: protocol unknown"
        title = f": {self.title}" if self.title else ""
        return f"{self.protocol} v{self.version}{title} ({self.dataset}/{self.split})"

    def notes(self) -> list[str]:
        """What a reader must know next to the numbers: synthetic data, unknown protocol, marking, units."""
        notes = []
        if self.synthetic:
            notes.append("SYNTHETIC DATA: computed on humanbench's synthetic world; not comparable with any "
                         "result on real data.")
        if self.known:
            notes.append("Best value per column in bold (↓ lower is better, ↑ higher is better), "
                         "compared at the printed precision.")
        else:
            notes.append("Protocol unknown: the sources do not say which evaluation produced these numbers, so "
                         "the rows may not be comparable; no best value is marked.")
        units: dict[str, list[str]] = {}
        for column in self.columns:
            spec = self.specs.get(column.metric)
            if spec is not None and spec.unit:
                unit = spec.unit if column.scale == 1 else f"{spec.unit} ×{column.scale:g}"
                units.setdefault(unit, []).append(column.label())
        if units:
            notes.append("Units: " + "; ".join(f"{', '.join(labels)} in {unit}" for unit, labels in units.items()) + ".")
        return notes

    def arrow(self, column: Column) -> str:
        """``↑`` or ``↓`` from the metric spec ('' when no row defines the metric)."""
        spec = self.specs.get(column.metric)
        return "" if spec is None else ("↑" if spec.higher_is_better else "↓")

    def decimals(self, column: Column) -> int:
        """Printed decimals of a column: its own, else the spec's (fewer when the display scale multiplies)."""
        if column.decimals is not None:
            return column.decimals
        spec = self.specs.get(column.metric)
        return max(0, (spec.decimals if spec else 1) - round(math.log10(column.scale)))

    def cell(self, row: pd.Series, column: Column) -> str:
        """A value as printed, or :data:`MISSING`."""
        value = row.get(column.metric, math.nan)
        if value is None or pd.isna(value):
            return MISSING
        return f"{float(value) * column.scale:.{self.decimals(column)}f}"

    def best(self) -> set[tuple[int, str]]:
        """(row position, metric) of every best value, compared at the printed precision."""
        if not self.known:
            return set()
        marked = set()
        for column in self.columns:
            spec = self.specs.get(column.metric)
            printed = [self.cell(row, column) for _, row in self.rows.iterrows()]
            values = [(i, float(text)) for i, text in enumerate(printed) if text != MISSING]
            if spec is None or len(values) < 2:
                continue
            target = (max if spec.higher_is_better else min)(v for _, v in values)
            marked |= {(i, column.metric) for i, v in values if v == target}
        return marked

    def method_label(self, row: pd.Series) -> str:
        """The method name, with ``[synthetic]`` when the row's numbers are."""
        return f"{row['method']} [synthetic]" if row["synthetic"] else str(row["method"])

    def sources(self) -> list[str]:
        """Citations of the reported rows, numbered in order of appearance."""
        return list(dict.fromkeys(c for c, s in zip(self.rows["citation"], self.rows["status"])
                                  if s == "reported" and isinstance(c, str) and c))

    def status_label(self, row: pd.Series) -> str:
        """``reported [n]`` (n: the row's source) or ``reproduced``."""
        if row["status"] != "reported":
            return str(row["status"])
        return f"reported [{self.sources().index(row['citation']) + 1}]"

    def row_notes(self) -> list[tuple[str, str]]:
        """(method, note) of every row with a note."""
        return [(self.method_label(r), r["note"]) for _, r in self.rows.iterrows()
                if isinstance(r["note"], str) and r["note"]]


_SPEC_FIELDS = tuple(f.name for f in fields(MetricSpec))


def _specs(rows: pd.DataFrame) -> dict[str, dict]:
    """Metric specs (as stored) of a group's rows: reproduced rows' (the protocol's) first, then the published ones'."""
    specs: dict[str, dict] = {}
    for text in pd.concat([rows.loc[rows["status"] == "reproduced", "metric_specs"], rows["metric_specs"]]):
        for spec in json.loads(text):
            specs.setdefault(spec["name"], spec)
    return specs


def _column(spec: dict) -> Column:
    """A metric's generic column; a spec's table hints (``table_name``, ``table_scale``, ``table_decimals``) apply."""
    return Column(spec["name"], spec.get("table_name") or display_name(spec["name"]),
                  scale=float(spec.get("table_scale", 1.0)), decimals=spec.get("table_decimals"))


def _title(rows: pd.DataFrame, protocol: str, version: int | None) -> str:
    titles = [t for t in rows["protocol_title"] if isinstance(t, str) and t]
    if titles:
        return titles[0]
    known = PROTOCOLS.get(protocol)
    same = known is not None and (known.version, known.dataset, known.split) == (version, rows["dataset"].iloc[0],
                                                                                rows["split"].iloc[0])
    return known.title if same else ""


def _check_definitions(rows: pd.DataFrame, protocol: str, version: int | None) -> None:
    hashes = rows.loc[rows["status"] == "reproduced", ["protocol_sha256", "record"]].drop_duplicates("protocol_sha256")
    if len(hashes) > 1:
        raise TableError(f"records claim {protocol} v{version} with different definitions ({', '.join(hashes['record'])}): "
                         "a protocol change that can move a number must bump the version")


def build_tables(frame: pd.DataFrame, *, protocol: str | None = None) -> list[Table]:
    """One :class:`Table` per protocol definition and data (known protocols first); ``protocol`` keeps one id."""
    if protocol is not None:
        frame = frame[frame["protocol"] == protocol]
        if frame.empty:
            raise TableError(f"no results under protocol {protocol!r}")
    tables = []
    keys = ["protocol", "protocol_version", "dataset", "split", "synthetic"]
    for key, rows in frame.groupby(keys, sort=False, dropna=False):
        name, version, dataset, split, synthetic = key
        version = None if pd.isna(version) else int(version)
        _check_definitions(rows, name, version)
        specs = _specs(rows)
        columns = [_column(spec) for m, spec in specs.items() if m in rows and rows[m].notna().any()]
        tables.append(Table(name, version, dataset, split, bool(synthetic), _title(rows, name, version), columns,
                            {m: MetricSpec(**{k: v for k, v in spec.items() if k in _SPEC_FIELDS})
                             for m, spec in specs.items()}, rows.reset_index(drop=True)))
    return sorted(tables, key=lambda t: (not t.known, t.protocol, t.version or 0, t.dataset, t.split, t.synthetic))


def _md_escape(text: str) -> str:
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return re.sub(r"([\\`*_\[\]|])", r"\\\1", text)


def _md_table(table: Table) -> str:
    best = table.best()
    lines = [f"### {_md_escape(table.heading())}", ""]
    header = ["Method", "Status", *(f"{c.label()} {table.arrow(c)}".strip() for c in table.columns)]
    lines += ["| " + " | ".join(map(_md_escape, header)) + " |", "|---|---|" + "--:|" * len(table.columns)]
    for i, row in table.rows.iterrows():
        cells = [table.cell(row, c) for c in table.columns]
        cells = [f"**{v}**" if (i, c.metric) in best else v for v, c in zip(cells, table.columns)]
        method = _md_escape(str(row["method"])) + (" [synthetic]" if row["synthetic"] else "")
        lines.append("| " + " | ".join([method, table.status_label(row), *cells]) + " |")
    lines.append("")
    lines += [_md_escape(n) for n in table.notes()]
    lines += [f"[{n}] {_md_escape(s)}" for n, s in enumerate(table.sources(), start=1)]
    lines += [f"{_md_escape(m)}: {_md_escape(n)}" for m, n in table.row_notes()]
    return _join_md(lines)


def _join_md(lines: list[str]) -> str:
    """Table lines one per line; the notes after it as one paragraph with hard line breaks."""
    end = lines.index("", 2)
    return "\n".join(lines[:end]) + "\n\n" + "  \n".join(lines[end + 1:]) + "\n"


def render_markdown(tables: list[Table]) -> str:
    """All tables as GitHub-flavoured Markdown."""
    return "\n".join(_md_table(t) for t in tables)


_LATEX_SPECIAL = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
                  "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}", "<": r"\textless{}",
                  ">": r"\textgreater{}", "†": r"$^\dagger$", "↓": r"$\downarrow$", "↑": r"$\uparrow$",
                  "×": r"$\times$",
                  "–": "--", "§": r"\S{}"}


def latex_escape(text: str) -> str:
    """``text`` safe in LaTeX body text."""
    return "".join(_LATEX_SPECIAL.get(ch, ch) for ch in text)


def _tex_groups(table: Table) -> list[str]:
    """The group header row and its rules, when any column has a group."""
    if not any(c.group for c in table.columns):
        return []
    cells, rules, start = [" ", " "], [], 3
    for group, size in _runs([c.group for c in table.columns]):
        cells.append(rf"\multicolumn{{{size}}}{{c}}{{{latex_escape(group)}}}" if group else " ")
        if group:
            rules.append(rf"\cmidrule(lr){{{start}-{start + size - 1}}}")
        start += size
    return ["    " + " & ".join(cells) + r" \\", "    " + " ".join(rules)]


def _runs(values: list[str]) -> list[tuple[str, int]]:
    runs: list[tuple[str, int]] = []
    for value in values:
        if runs and runs[-1][0] == value:
            runs[-1] = (value, runs[-1][1] + 1)
        else:
            runs.append((value, 1))
    return runs


def _tex_table(table: Table) -> str:
    best = table.best()
    header = ["Method", "Status", *(f"{c.header if c.group else c.label()} {table.arrow(c)}".strip() for c in table.columns)]
    lines = [f"% humanbench leaderboard: {table.heading()}", r"\begin{table}[t]", r"  \centering",
             rf"  \caption{{{latex_escape(table.heading())}. {latex_escape(' '.join(table.notes()))}}}",
             rf"  \label{{tab:{table.slug}}}", rf"  \begin{{tabular}}{{ll{'r' * len(table.columns)}}}", r"    \toprule",
             *_tex_groups(table), "    " + " & ".join(map(latex_escape, header)) + r" \\", r"    \midrule"]
    previous = None
    for i, row in table.rows.iterrows():
        if previous is not None and row["status"] != previous:
            lines.append(r"    \midrule")
        previous = row["status"]
        cells = [table.cell(row, c) for c in table.columns]
        cells = [rf"\textbf{{{v}}}" if (i, c.metric) in best else latex_escape(v) for v, c in zip(cells, table.columns)]
        lines.append("    " + " & ".join([latex_escape(table.method_label(row)), latex_escape(table.status_label(row)),
                                          *cells]) + r" \\")
    lines += [r"    \bottomrule", r"  \end{tabular}"]
    footer = [f"[{n}] {s}" for n, s in enumerate(table.sources(), start=1)] + [f"{m}: {n}" for m, n in table.row_notes()]
    if footer:
        lines += [r"  \par\smallskip\footnotesize", *(f"  {latex_escape(line)}\\\\" for line in footer)]
    lines.append(r"\end{table}")
    return "\n".join(lines) + "\n"


def render_latex(tables: list[Table]) -> str:
    """All tables as LaTeX ``table`` environments (needs ``\\usepackage{booktabs}``)."""
    return "\n".join(_tex_table(t) for t in tables)


def render_csv(tables: list[Table]) -> str:
    """All tables in one CSV: a row per table row, values as printed, ``best`` listing its best metrics."""
    metrics = list(dict.fromkeys(c.metric for t in tables for c in t.columns))
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["table", "protocol", "protocol_version", "dataset", "split", "synthetic", "method", "status",
                     *metrics, "best", "citation", "note", "record"])
    for table in tables:
        best = table.best()
        for i, row in table.rows.iterrows():
            values = {c.metric: table.cell(row, c) for c in table.columns}
            writer.writerow([table.slug, table.protocol, "" if table.version is None else table.version, table.dataset,
                             table.split, str(table.synthetic).lower(), row["method"], row["status"],
                             *(values.get(m, "").replace(MISSING, "") for m in metrics),
                             ";".join(c.metric for c in table.columns if (i, c.metric) in best),
                             row["citation"] if isinstance(row["citation"], str) else "",
                             row["note"] if isinstance(row["note"], str) else "",
                             row["record"] if isinstance(row["record"], str) else ""])
    return out.getvalue()


RENDERERS = {"md": render_markdown, "tex": render_latex, "csv": render_csv}
"""Text renderers by ``--format`` (``html`` lives in :mod:`humanbench.leaderboards.html`)."""


def with_columns(table: Table, columns: list[Column]) -> Table:
    """The same rows under other columns (paper-table templates)."""
    return replace(table, columns=columns)
