"""Result records: one JSON file per (method, protocol) plus a parquet sidecar of per-person errors.

A record holds everything needed to regenerate tables and plots without re-running anything:
the protocol definition (id, version, every choice), the metrics, counts, per-joint means,
per-part breakdowns (per camera, frame, sequence of the avatar protocols), provenance (humanbench
version, hashes of the shard manifest and the predictions, body-model source, date, command) and
the per-person errors in ``<record>.parquet``.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from humanbench.errors import HumanbenchError
from humanbench.shards.manifest import sha256_file

RECORD_FORMAT = "humanbench-result"
RECORD_VERSION = 1


class RecordError(HumanbenchError):
    """A result record that cannot be read (missing sidecar, hash mismatch, wrong format)."""


@dataclass
class ResultRecord:
    """What one evaluation produced. ``metrics`` are in the protocol's units (mm for mesh errors).

    ``breakdowns[kind][part]`` maps a metric name (and ``images``, the part's count) to its value over that
    part, e.g. ``breakdowns["camera"]["Camera_B2"]["psnr"]``; empty when the protocol has none. Records
    written before the field existed load with it empty.
    """

    method: str
    protocol: dict[str, Any]
    metrics: dict[str, float]
    counts: dict[str, int]
    per_joint: dict[str, list[float]]
    provenance: dict[str, Any]
    synthetic: bool
    breakdowns: dict[str, dict[str, dict[str, float | None]]] = field(default_factory=dict)
    per_person: pd.DataFrame = field(repr=False, default_factory=pd.DataFrame)
    path: Path | None = None

    @property
    def protocol_id(self) -> str:
        """The protocol's id, e.g. ``3dpw/spin``."""
        return self.protocol["id"]

    def file_stem(self) -> str:
        """``<method>__<protocol id>`` with characters unsafe in file names replaced."""
        return re.sub(r"[^A-Za-z0-9_.-]+", "-", f"{self.method}__{self.protocol_id.replace('/', '-')}")

    def to_json(self, sidecar: dict[str, Any]) -> bytes:
        """The JSON document (sorted keys, indented), referring to its per-person sidecar."""
        body = {
            "format": RECORD_FORMAT, "format_version": RECORD_VERSION, "method": self.method,
            "protocol": self.protocol, "metrics": self.metrics, "counts": self.counts, "per_joint": self.per_joint,
            "breakdowns": self.breakdowns, "provenance": self.provenance, "synthetic": self.synthetic,
            "per_person": sidecar,
        }
        return (json.dumps(body, indent=1, sort_keys=True, allow_nan=False) + "\n").encode()


def _replace_atomically(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def write_record(record: ResultRecord, folder: str | Path) -> Path:
    """Write ``<stem>.parquet`` then ``<stem>.json`` into ``folder`` (each atomically); returns the JSON path."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    stem = record.file_stem()
    sidecar = folder / f"{stem}.parquet"
    tmp = sidecar.with_name(f".{sidecar.name}.tmp{os.getpid()}")
    record.per_person.to_parquet(tmp, index=False)
    os.replace(tmp, sidecar)
    path = folder / f"{stem}.json"
    _replace_atomically(path, record.to_json({"file": sidecar.name, "sha256": sha256_file(sidecar),
                                               "rows": len(record.per_person)}))
    record.path = path
    return path


def read_record(path: str | Path, *, per_person: bool = True) -> ResultRecord:
    """Load a record (and, by default, its sidecar, checking the sidecar's sha256)."""
    path = Path(path)
    try:
        body = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise RecordError(f"{path}: not a readable result record ({err})") from None
    if body.get("format") != RECORD_FORMAT or body.get("format_version") != RECORD_VERSION:
        raise RecordError(f"{path}: expected format {RECORD_FORMAT!r} version {RECORD_VERSION}, "
                          f"got {body.get('format')!r} version {body.get('format_version')!r}")
    frame = pd.DataFrame()
    if per_person:
        sidecar = path.with_name(body["per_person"]["file"])
        if not sidecar.exists():
            raise RecordError(f"{path}: per-person sidecar {sidecar.name} is missing")
        if sha256_file(sidecar) != body["per_person"]["sha256"]:
            raise RecordError(f"{path}: sidecar {sidecar.name} does not match the sha256 in the record")
        frame = pd.read_parquet(sidecar)
    return ResultRecord(method=body["method"], protocol=body["protocol"], metrics=body["metrics"], counts=body["counts"],
                        per_joint=body["per_joint"], provenance=body["provenance"], synthetic=body["synthetic"],
                        breakdowns=body.get("breakdowns", {}), per_person=frame, path=path)
