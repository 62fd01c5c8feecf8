"""Webdataset tar shards: deterministic, atomic, resumable writing; exact-once reading; verification.

See ``docs/shards.md``. The unit handled here is an *encoded sample*
(``{"__key__": str, "<field>": bytes}``); :mod:`humanbench.schema` encodes and decodes samples.
"""

from humanbench.shards.manifest import Manifest, ManifestError, ShardInfo, fingerprint_files
from humanbench.shards.reader import ShardDataset, collate, iter_encoded, make_loader
from humanbench.shards.tario import ShardError
from humanbench.shards.verify import VerifyReport, verify_shards
from humanbench.shards.writer import ShardWriter

__all__ = [
    "Manifest", "ManifestError", "ShardDataset", "ShardError", "ShardInfo", "ShardWriter", "VerifyReport",
    "collate", "fingerprint_files", "iter_encoded", "make_loader", "verify_shards",
]
