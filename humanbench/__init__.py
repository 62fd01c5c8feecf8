"""humanbench: convert, evaluate and compare 3D human methods under exact, named protocols.

The Python API mirrors the CLI, one function per command: ``convert``, ``evaluate`` (``eval``
with ``--pred``), ``evaluate_renders`` (``eval`` with ``--renders``), ``train``, ``leaderboard``,
``plot``, ``export_wild``, ``info``, ``inspect``, ``verify`` and ``demo``, all reachable as ``humanbench.<name>``
(loaded lazily from :mod:`humanbench.api` so that importing the package stays cheap).
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

_API = ("convert", "evaluate", "evaluate_renders", "export_wild", "format_record", "info", "format_info", "inspect",
        "verify", "demo", "leaderboard", "plot", "train")


def __getattr__(name: str) -> Any:
    if name in _API:
        from humanbench import api

        return getattr(api, name)
    raise AttributeError(f"module 'humanbench' has no attribute {name!r}")
