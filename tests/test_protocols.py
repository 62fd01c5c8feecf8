"""Protocol definitions are complete, documented and serialisable."""

from __future__ import annotations

import json
from pathlib import Path

from humanbench.protocols import PROTOCOLS

DOC = (Path(__file__).parents[1] / "docs" / "protocols.md").read_text()


def test_every_protocol_is_documented_and_serialisable() -> None:
    for protocol_id, protocol in PROTOCOLS.items():
        assert f"`{protocol_id}` (v{protocol.version})" in DOC
        description = json.loads(json.dumps(protocol.describe()))
        assert description["id"] == protocol_id and description["metrics"] and description["sources"]
        assert protocol.traps
