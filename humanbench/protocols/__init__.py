"""Named, versioned evaluation protocols (frozen data; see ``docs/protocols.md``).

``get_protocol("3dpw/spin")`` returns the definition; ``PROTOCOLS`` lists every one.
"""

from __future__ import annotations

from humanbench.errors import HumanbenchError
from humanbench.protocols.agora import AGORA_OFFICIAL, AGORA_SMPLERX_VAL, MatchingProtocol
from humanbench.protocols.avatar import AVATAR_PROTOCOLS, AvatarProtocol, BoxMask, ImageMetric
from humanbench.protocols.base import MeshProtocol, MetricSpec, Trap
from humanbench.protocols.mesh import EHF_EXPOSE, PW3D_CLIFF, PW3D_SMPLERX, PW3D_SPIN, UBODY_OSX

PROTOCOLS: dict[str, MeshProtocol | AvatarProtocol | MatchingProtocol] = {
    p.id: p for p in (PW3D_CLIFF, PW3D_SMPLERX, PW3D_SPIN, EHF_EXPOSE, UBODY_OSX, *AVATAR_PROTOCOLS, AGORA_OFFICIAL,
                      AGORA_SMPLERX_VAL)}


class UnknownProtocolError(HumanbenchError):
    """A protocol id humanbench does not define."""


def get_protocol(protocol_id: str) -> MeshProtocol | AvatarProtocol | MatchingProtocol:
    """The protocol registered as ``protocol_id``."""
    if protocol_id not in PROTOCOLS:
        raise UnknownProtocolError(f"unknown protocol {protocol_id!r}; humanbench defines {sorted(PROTOCOLS)}")
    return PROTOCOLS[protocol_id]


__all__ = ["PROTOCOLS", "AvatarProtocol", "BoxMask", "ImageMetric", "MatchingProtocol", "MeshProtocol", "MetricSpec",
           "Trap", "UnknownProtocolError", "get_protocol"]
