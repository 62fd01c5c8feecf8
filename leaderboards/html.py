"""The leaderboard as one self-contained static HTML page.

Everything is inline: the CSS, a small sorting script and the per-joint plots (base64 PNG). A
Content-Security-Policy allows only that inline style and script (by their sha256) and ``data:``
images, so the page makes no network request and no other script runs, even one smuggled into a
record. Every text taken from records or published data is HTML-escaped as well.

Each table is sortable: clicking a column header sorts its rows by that column (numbers as
numbers, missing values last), a second click reverses the order.
"""

from __future__ import annotations

import base64
import hashlib
from html import escape
from typing import Sequence

from humanbench.leaderboards.plots import PlotError, build_figure, figure_bytes
from humanbench.leaderboards.tables import MISSING, Table
from humanbench.records import ResultRecord

STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 80em; color: #222; }
table { border-collapse: collapse; margin: 0.5em 0; font-size: 0.9em; }
th, td { padding: 0.25em 0.6em; border-bottom: 1px solid #ddd; }
th { cursor: pointer; background: #f3f3f3; user-select: none; }
th[aria-sort=ascending]::after { content: " \\25B2"; }
th[aria-sort=descending]::after { content: " \\25BC"; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
td.best { font-weight: bold; }
tr.reported td { color: #555; font-style: italic; }
.badge { font-size: 0.75em; padding: 0 0.4em; border-radius: 0.3em; background: #eee; }
.synthetic { background: #ffe08a; }
.warning { background: #fff4cc; padding: 0.4em 0.8em; border-left: 4px solid #e0a800; }
.notes { font-size: 0.85em; color: #444; }
img { max-width: 100%; }
"""

SCRIPT = """
function sortTable(th) {
  const table = th.closest("table");
  const column = Array.from(th.parentNode.children).indexOf(th);
  const descending = th.getAttribute("aria-sort") === "ascending";
  const key = (row) => {
    const cell = row.children[column];
    return cell.dataset.value === undefined ? cell.textContent : Number(cell.dataset.value);
  };
  const rows = Array.from(table.tBodies[0].rows);
  rows.sort((a, b) => {
    const x = key(a), y = key(b);
    if (typeof x === "number" && typeof y === "number") {
      if (Number.isNaN(x) !== Number.isNaN(y)) return Number.isNaN(x) ? 1 : -1;
      return descending ? y - x : x - y;
    }
    return descending ? String(y).localeCompare(String(x)) : String(x).localeCompare(String(y));
  });
  rows.forEach((row) => table.tBodies[0].appendChild(row));
  table.querySelectorAll("th").forEach((h) => h.removeAttribute("aria-sort"));
  th.setAttribute("aria-sort", descending ? "descending" : "ascending");
}
document.querySelectorAll("table.leaderboard th").forEach((th) => th.addEventListener("click", () => sortTable(th)));
"""


def _csp_hash(text: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode()).digest()).decode() + "'"


def _table_html(table: Table) -> str:
    best = table.best()
    header = "".join(f"<th scope=\"col\">{escape(label)}</th>" for label in
                     ["Method", "Status", *(f"{c.label()} {table.arrow(c)}".strip() for c in table.columns)])
    body = []
    for i, row in table.rows.iterrows():
        synthetic = " <span class=\"badge synthetic\">synthetic</span>" if row["synthetic"] else ""
        cells = [f"<td class=\"method\">{escape(str(row['method']))}{synthetic}</td>",
                 f"<td>{escape(table.status_label(row))}</td>"]
        for column in table.columns:
            text = table.cell(row, column)
            value = "NaN" if text == MISSING else text.replace("inf", "Infinity")  # as JavaScript's Number reads it
            kind = "num best" if (i, column.metric) in best else "num"
            cells.append(f"<td class=\"{kind}\" data-value=\"{value}\">{escape(text)}</td>")
        body.append(f"<tr class=\"{escape(str(row['status']))}\">{''.join(cells)}</tr>")
    notes = [f"<p class=\"warning\">{escape(n)}</p>" if n.startswith(("SYNTHETIC", "Protocol unknown")) else
             f"<p class=\"notes\">{escape(n)}</p>" for n in table.notes()]
    sources = "".join(f"<li>[{n}] {escape(s)}</li>" for n, s in enumerate(table.sources(), start=1))
    row_notes = "".join(f"<li>{escape(m)}: {escape(n)}</li>" for m, n in table.row_notes())
    return "\n".join([
        f"<section id=\"{escape(table.slug)}\">", f"<h2>{escape(table.heading())}</h2>", *notes,
        f"<table class=\"leaderboard\"><thead><tr>{header}</tr></thead><tbody>", *body, "</tbody></table>",
        f"<ol class=\"notes\">{sources}</ol>" if sources else "",
        f"<ul class=\"notes\">{row_notes}</ul>" if row_notes else "",
    ])


def _plot_html(table: Table, records: Sequence[ResultRecord]) -> str:
    """The per-joint plot of the table's records, as an inline PNG ('' when they have no per-joint errors)."""
    mine = [r for r in records if (r.protocol_id, r.protocol["version"], r.protocol["dataset"], r.protocol["split"],
                                   r.synthetic) == (table.protocol, table.version, table.dataset, table.split,
                                                    table.synthetic)]
    if not mine:
        return ""
    try:
        png = figure_bytes(build_figure("per-joint", mine), "png")
    except PlotError:
        return ""
    data = base64.b64encode(png).decode()
    return f"<img alt=\"per-joint errors, {escape(table.heading())}\" src=\"data:image/png;base64,{data}\">"


def render_html(tables: Sequence[Table], records: Sequence[ResultRecord] = (), *,
                title: str = "humanbench leaderboard") -> str:
    """The page: every table (sortable) followed by its per-joint plot when its records have one."""
    csp = (f"default-src 'none'; img-src data:; style-src {_csp_hash(STYLE)}; script-src {_csp_hash(SCRIPT)}; "
           "base-uri 'none'; form-action 'none'")
    sections = [_table_html(t) + "\n" + _plot_html(t, records) for t in tables]
    return "\n".join([
        "<!DOCTYPE html>", "<html lang=\"en\"><head><meta charset=\"utf-8\">",
        f"<meta http-equiv=\"Content-Security-Policy\" content=\"{csp}\">",
        f"<title>{escape(title)}</title><style>{STYLE}</style></head><body>", f"<h1>{escape(title)}</h1>",
        "<p class=\"notes\">Generated by humanbench from result records alone. Reported rows (in italics) are copied from "
        "publications; reproduced rows were computed by humanbench. Click a column header to sort.</p>",
        *sections, f"<script>{SCRIPT}</script>", "</body></html>", ""])
