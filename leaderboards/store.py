"""The results store: a folder of result records (+ parquet sidecars) as one pandas DataFrame.

:func:`load_results` gives one row per (method, protocol) with the protocol id, version, title,
dataset and split, every metric (one column per metric name, in the protocol's units), the counts
(``count_<name>``), the synthetic flag, the provenance fields and ``status`` = ``reproduced``
(computed by humanbench from predictions). With ``published=True`` the numbers of
:mod:`humanbench.leaderboards.published` are appended in the same shape (``status`` =
``reported``, a ``citation`` on every row).

Each row also carries its metric specs (``metric_specs``, JSON: name, unit, higher_is_better,
decimals) and a hash of its protocol definition (``protocol_sha256``), so tables are built from the
frame alone and can refuse to put two different definitions under one id and version.

A method named ``X@step=N`` is step ``N`` of the series ``X`` (test-time optimisation); the
frame splits it into ``series`` and ``step``.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from pathlib import Path
from typing import Iterable

import pandas as pd

from humanbench.errors import HumanbenchError
from humanbench.records import RECORD_FORMAT, ResultRecord, read_record

STEP_PATTERN = re.compile(r"^(?P<series>.+)@step=(?P<step>\d+)$")
"""``<series>@step=<N>``: a record of step N of a test-time-optimisation series."""

KEY_COLUMNS = ("protocol", "protocol_version", "dataset", "split", "synthetic")
"""What makes two rows comparable: the same protocol definition on the same data."""

LEADING_COLUMNS = ("method", "series", "step", "status", "protocol", "protocol_version", "protocol_title", "dataset",
                   "split", "synthetic", "metric_specs", "protocol_sha256")
TRAILING_COLUMNS = ("citation", "note", "record", "humanbench_version", "date", "command", "predictions_sha256",
                    "manifest_sha256", "source_fingerprint", "body_models", "device", "world_size")


class StoreError(HumanbenchError):
    """Records that cannot form one results table (none found, duplicates, clashing names)."""


def split_step(method: str) -> tuple[str, int | None]:
    """``("X", 10)`` for ``"X@step=10"``; ``(method, None)`` for a method without a step."""
    match = STEP_PATTERN.match(method)
    return (match["series"], int(match["step"])) if match else (method, None)


def _is_record(path: Path) -> bool:
    """Whether ``path`` is a JSON file that declares itself a humanbench result record."""
    try:
        head = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return False
    return isinstance(head, dict) and head.get("format") == RECORD_FORMAT


def find_records(paths: Iterable[str | Path]) -> list[Path]:
    """Record files named in ``paths``: files as given, folders searched recursively (sorted)."""
    found: list[Path] = []
    for path in map(Path, paths):
        if path.is_dir():
            found += [p for p in sorted(path.rglob("*.json")) if _is_record(p)]
        elif path.is_file():
            found.append(path)
        else:
            raise StoreError(f"{path}: no such file or folder")
    return found


def load_records(paths: Iterable[str | Path], *, per_person: bool = False) -> list[ResultRecord]:
    """Read every record under ``paths`` (with the sidecar, sha256-checked, when ``per_person``)."""
    return [read_record(p, per_person=per_person) for p in find_records(paths)]


def protocol_hash(definition: dict) -> str:
    """sha256 of a protocol definition (canonical JSON): equal definitions, equal hashes."""
    return hashlib.sha256(json.dumps(definition, sort_keys=True).encode()).hexdigest()


def _record_row(record: ResultRecord) -> dict:
    protocol, provenance = record.protocol, record.provenance
    series, step = split_step(record.method)
    row = {
        "method": record.method, "series": series, "step": step, "status": "reproduced",
        "protocol": protocol["id"], "protocol_version": int(protocol["version"]),
        "protocol_title": protocol.get("title", ""), "dataset": protocol["dataset"], "split": protocol["split"],
        "synthetic": bool(record.synthetic), "metric_specs": json.dumps(protocol["metrics"], sort_keys=True),
        "protocol_sha256": protocol_hash(protocol),
        "citation": "", "note": "", "record": str(record.path or ""),
        "humanbench_version": provenance.get("humanbench_version", ""), "date": provenance.get("date", ""),
        "command": provenance.get("command", ""),
        "predictions_sha256": provenance.get("predictions", {}).get("sha256", ""),
        "manifest_sha256": provenance.get("shards", {}).get("manifest_sha256", ""),
        "source_fingerprint": provenance.get("shards", {}).get("source_fingerprint", ""),
        "body_models": provenance.get("body_models", ""), "device": provenance.get("device", ""),
        "world_size": provenance.get("world_size"),
    }
    clash = (set(record.metrics) | {f"count_{k}" for k in record.counts}) & set(row)
    if clash:
        raise StoreError(f"{record.path}: metric or count names {sorted(clash)} clash with the table's own columns")
    # JSON has no inf: a metric infinite for some images (PSNR of a render equal to its GT) is null in the record
    row.update({name: math.inf if value is None and record.counts.get(f"{name}_infinite") else value
                for name, value in record.metrics.items()})
    row.update({f"count_{name}": value for name, value in record.counts.items()})
    return row


def _check_unique(frame: pd.DataFrame) -> None:
    """One row per (method, protocol definition, data, status)."""
    key = ["method", *KEY_COLUMNS, "status"]
    duplicated = frame[frame.duplicated(key, keep=False)]
    if not duplicated.empty:
        first = duplicated.iloc[0]
        same = duplicated[(duplicated[key] == first[key]).all(axis=1)]
        sources = ", ".join(same["record"].where(same["record"] != "", same["citation"]))
        raise StoreError(f"{len(same)} rows for method {first['method']!r} under {first['protocol']} "
                         f"v{first['protocol_version']} on {first['dataset']}/{first['split']}: {sources}")


def results_frame(records: Iterable[ResultRecord], *, published: bool = False) -> pd.DataFrame:
    """The results table of ``records`` (plus the published numbers when ``published``), sorted by protocol."""
    frames = [pd.DataFrame([_record_row(r) for r in records])]
    if published:
        from humanbench.leaderboards.published import load_published

        frames.insert(0, load_published())
    frames = [f for f in frames if not f.empty]
    if not frames:
        raise StoreError("no result records found (and no published numbers asked for)")
    frame = pd.concat(frames, ignore_index=True)
    frame["step"] = frame["step"].astype("Int64")
    frame["protocol_version"] = frame["protocol_version"].astype("Int64")
    _check_unique(frame)
    middle = [c for c in frame.columns if c not in LEADING_COLUMNS + TRAILING_COLUMNS]
    frame = frame.reindex(columns=[*LEADING_COLUMNS, *middle, *TRAILING_COLUMNS])
    reproduced = frame["status"] == "reproduced"
    order = frame.assign(_reproduced=reproduced, _series=frame["series"].where(reproduced, ""),
                         _step=frame["step"].where(reproduced), _method=frame["method"].where(reproduced, ""))
    order = order.sort_values(["protocol", "protocol_version", "dataset", "split", "synthetic", "_reproduced", "_series",
                               "_step", "_method"], kind="stable", na_position="first")
    return frame.loc[order.index].reset_index(drop=True)


def load_results(*paths: str | Path, published: bool = False) -> pd.DataFrame:
    """Every record under ``paths`` (folders or record files) as a DataFrame; see the module docstring.

    Published rows keep the order of the publication's table; reproduced rows follow them, by series,
    step and method.
    """
    return results_frame(load_records(paths), published=published)
