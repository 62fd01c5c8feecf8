"""Published numbers (``published.csv``), as data, in the shape of the results store.

One CSV line per published value: dataset, split, the humanbench protocol the number follows
(``unknown`` unless its source says which evaluation produced it; a number that follows a
protocol names its ``protocol_version``), method, metric, the value exactly as printed, unit,
direction, ``status`` (``reported``: copied from a publication) and the ``citation`` (required on
every line), plus a free ``note``. The values are seeded from ``reference/protocols.md`` §8; see
``docs/leaderboards.md`` for how to add one.

The printed digits are kept: a metric's decimals are the most digits any of its values prints, so
tables show them as the source does.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from humanbench.errors import HumanbenchError

PUBLISHED_CSV = Path(__file__).with_name("published.csv")
COLUMNS = ("dataset", "split", "protocol", "protocol_version", "method", "metric", "value", "unit", "higher_is_better",
           "status", "citation", "note")
UNKNOWN = "unknown"
"""Protocol of a number whose source does not say which evaluation produced it."""

_ROW_KEY = ["dataset", "split", "protocol", "protocol_version", "method"]


class PublishedDataError(HumanbenchError):
    """A malformed line in the published-numbers file."""


def _decimals(printed: str) -> int:
    return len(printed.split(".", 1)[1]) if "." in printed else 0


def _check(table: pd.DataFrame, path: Path) -> None:
    """Every line complete and consistent; raises naming the line (1-based, header = line 1)."""
    for line, row in zip(range(2, len(table) + 2), table.itertuples(index=False)):
        where = f"{path}:{line}"
        if not row.citation.strip():
            raise PublishedDataError(f"{where}: every published number needs a citation")
        if row.status not in ("reported", "reproduced"):
            raise PublishedDataError(f"{where}: status must be 'reported' or 'reproduced', not {row.status!r}")
        if (row.protocol == UNKNOWN) != (row.protocol_version == ""):
            raise PublishedDataError(f"{where}: a known protocol needs its protocol_version; 'unknown' has none")
        if row.higher_is_better not in ("true", "false"):
            raise PublishedDataError(f"{where}: higher_is_better must be 'true' or 'false'")
        try:
            float(row.value)
        except ValueError:
            raise PublishedDataError(f"{where}: value {row.value!r} is not a number") from None
    duplicated = table.duplicated([*_ROW_KEY, "metric"])
    if duplicated.any():
        raise PublishedDataError(f"{path}:{int(duplicated.to_numpy().argmax()) + 2}: duplicate value")


def _specs(values: pd.DataFrame) -> str:
    """Metric specs (JSON, in first-appearance order) with the decimals as printed."""
    specs = [{"name": name, "unit": group["unit"].iloc[0], "higher_is_better": group["higher_is_better"].iloc[0] == "true",
              "decimals": max(map(_decimals, group["value"])), "description": ""}
             for name, group in values.groupby("metric", sort=False)]
    return json.dumps(specs, sort_keys=True)


def load_published(path: str | Path = PUBLISHED_CSV) -> pd.DataFrame:
    """Published numbers, one row per (method, protocol, dataset, split), columns as :mod:`.store`."""
    path = Path(path)
    table = pd.read_csv(path, dtype=str, keep_default_na=False)
    if tuple(table.columns) != COLUMNS:
        raise PublishedDataError(f"{path}: expected the columns {', '.join(COLUMNS)}")
    _check(table, path)
    table["_row"] = range(len(table))
    rows = []
    for keys, group in table.groupby(["dataset", "split", "protocol", "protocol_version"], sort=False):
        specs = _specs(group)
        for method, values in group.groupby("method", sort=False):
            rows.append({
                "method": method, "series": method, "step": None, "status": values["status"].iloc[0],
                "protocol": keys[2], "protocol_version": int(keys[3]) if keys[3] else None, "protocol_title": "",
                "dataset": keys[0], "split": keys[1], "synthetic": False, "metric_specs": specs, "protocol_sha256": "",
                "citation": "; ".join(dict.fromkeys(values["citation"])),
                "note": "; ".join(dict.fromkeys(n for n in values["note"] if n)),
                "record": "", "_row": values["_row"].iloc[0],
                **{m: float(v) for m, v in zip(values["metric"], values["value"])},
            })
    return pd.DataFrame(rows).sort_values("_row", kind="stable").drop(columns="_row").reset_index(drop=True)
