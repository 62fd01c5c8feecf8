"""Leaderboards, paper tables and plots, regenerated from result records alone.

- :mod:`.store`: a folder of records -> one pandas DataFrame (:func:`load_results`).
- :mod:`.published`: published numbers as data (``published.csv``), each with its citation.
- :mod:`.tables`: one table per protocol definition and data, as Markdown, LaTeX or CSV.
- :mod:`.paper_tables`: the column layouts of well-known paper tables.
- :mod:`.html`: a self-contained, sortable HTML page.
- :mod:`.plots`: per-joint bars, skeleton, CDF, error against optimisation step, AGORA bins.

:func:`leaderboard` is what ``humanbench leaderboard`` prints.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from humanbench.leaderboards.store import StoreError, load_records, load_results, results_frame
from humanbench.leaderboards.tables import FORMATS, RENDERERS, TableError, build_tables

LEADERBOARD_FORMATS = (*FORMATS, "html")


def leaderboard(paths: Sequence[str | Path], *, protocol: str | None = None, published: bool = False,
                fmt: str = "md", template: str | None = None) -> str:
    """The leaderboard of the records under ``paths`` (plus published numbers) as ``md``, ``tex``, ``csv`` or ``html``.

    ``template`` lays the tables out as a paper table (:data:`~.paper_tables.TEMPLATES`; md and tex).
    """
    if fmt not in LEADERBOARD_FORMATS:
        raise TableError(f"unknown format {fmt!r}; formats: {', '.join(LEADERBOARD_FORMATS)}")
    if not paths and not published:
        raise StoreError("give a results folder or record files, or ask for the published numbers")
    records = load_records(paths)
    tables = build_tables(results_frame(records, published=published), protocol=protocol)
    if template is not None:
        if fmt not in ("md", "tex"):
            raise TableError("paper-table templates render as md or tex")
        from humanbench.leaderboards.paper_tables import apply_template

        tables = apply_template(tables, template)
    if fmt == "html":
        from humanbench.leaderboards.html import render_html

        return render_html(tables, records)
    return RENDERERS[fmt](tables)


__all__ = ["LEADERBOARD_FORMATS", "StoreError", "TableError", "build_tables", "leaderboard", "load_records",
           "load_results", "results_frame"]
