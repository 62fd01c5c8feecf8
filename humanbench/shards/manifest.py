"""The ``manifest.json`` of a shard folder, atomic file writes and source fingerprints.

A shard folder is complete exactly when it holds ``manifest.json``; while a
conversion runs (or after it was killed) the folder holds the resume journal
``_progress.jsonl`` instead.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from humanbench import __version__
from humanbench.shards.tario import ShardError

FORMAT = "humanbench-shards"
MANIFEST_NAME = "manifest.json"
JOURNAL_NAME = "_progress.jsonl"

#: Manifest entries the caller supplies (``ShardWriter(manifest_fields=...)``).
REQUIRED_FIELDS = ("dataset", "split", "schema_version", "source_fingerprint", "command")
#: Caller entries with defaults.
OPTIONAL_FIELDS = ("humanbench_version", "dropped", "extra")

_CHUNK = 1 << 20


class ManifestError(ShardError):
    """A shard folder has no usable ``manifest.json``."""

    def __init__(self, message: str) -> None:
        super().__init__(None, None, message)


@dataclasses.dataclass(frozen=True)
class ShardInfo:
    """One finished shard as recorded in the journal and the manifest."""

    name: str
    count: int
    bytes: int
    sha256: str
    first_key: str
    last_key: str


@dataclasses.dataclass(frozen=True)
class Manifest:
    """Parsed ``manifest.json``; ``root`` is the folder it was loaded from (not serialised)."""

    dataset: str
    split: str
    schema_version: int
    source_fingerprint: str
    humanbench_version: str
    command: str | list[str]
    total_count: int
    shards: tuple[ShardInfo, ...]
    fields: tuple[str, ...]
    dropped: tuple[dict[str, str], ...] = ()
    extra: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    format: str = FORMAT
    root: Path | None = dataclasses.field(default=None, compare=False)

    @classmethod
    def build(
        cls, manifest_fields: Mapping[str, Any], shards: Iterable[ShardInfo], fields: Iterable[str]
    ) -> Manifest:
        """Combine the caller's ``manifest_fields`` with what the writer measured."""
        unknown = set(manifest_fields) - set(REQUIRED_FIELDS) - set(OPTIONAL_FIELDS)
        missing = set(REQUIRED_FIELDS) - set(manifest_fields)
        if unknown or missing:
            raise ValueError(
                f"manifest_fields: missing {sorted(missing)}, unknown {sorted(unknown)}; "
                f"required {list(REQUIRED_FIELDS)}, optional {list(OPTIONAL_FIELDS)}"
            )
        dropped = tuple(dict(d) for d in manifest_fields.get("dropped", ()))
        if any(set(d) != {"item", "reason"} for d in dropped):
            raise ValueError("manifest_fields['dropped'] entries must be {'item': ..., 'reason': ...}")
        shards = tuple(shards)
        return cls(
            dataset=manifest_fields["dataset"],
            split=manifest_fields["split"],
            schema_version=manifest_fields["schema_version"],
            source_fingerprint=manifest_fields["source_fingerprint"],
            humanbench_version=manifest_fields.get("humanbench_version", __version__),
            command=manifest_fields["command"],
            total_count=sum(s.count for s in shards),
            shards=shards,
            fields=tuple(sorted(set(fields))),
            dropped=dropped,
            extra=dict(manifest_fields.get("extra", {})),
        )

    def to_json(self) -> bytes:
        """Canonical serialisation: sorted keys, two-space indent, trailing newline."""
        data = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "root"}
        data["shards"] = [dataclasses.asdict(s) for s in self.shards]
        data["fields"] = list(self.fields)
        data["dropped"] = list(self.dropped)
        return (json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False) + "\n").encode("utf-8")

    def write(self, directory: str | os.PathLike) -> Path:
        """Atomically write ``manifest.json`` into ``directory``."""
        path = Path(directory) / MANIFEST_NAME
        write_atomic(path, self.to_json())
        return path

    @classmethod
    def load(cls, directory: str | os.PathLike) -> Manifest:
        """Load ``manifest.json`` from a shard folder (or the path of the file itself)."""
        path = Path(directory)
        if path.name == MANIFEST_NAME and path.is_file():
            path = path.parent
        file = path / MANIFEST_NAME
        if not file.is_file():
            if (path / JOURNAL_NAME).is_file():
                raise ManifestError(
                    f"{path}: no {MANIFEST_NAME} but a {JOURNAL_NAME} journal: incomplete or not a "
                    "humanbench shard folder; re-run the conversion to resume"
                )
            raise ManifestError(f"{path}: no {MANIFEST_NAME}: not a humanbench shard folder")
        try:
            data = json.loads(file.read_text("utf-8"))
            if data.get("format") != FORMAT:
                raise ValueError(f"format is {data.get('format')!r}, expected {FORMAT!r}")
            data["shards"] = tuple(ShardInfo(**s) for s in data["shards"])
            data["fields"] = tuple(data["fields"])
            data["dropped"] = tuple(data["dropped"])
            manifest = cls(**data, root=path)
        except (ValueError, KeyError, TypeError) as exc:
            raise ManifestError(f"{file}: not a valid humanbench shard manifest ({exc})") from None
        if manifest.total_count != sum(s.count for s in manifest.shards):
            raise ManifestError(f"{file}: total_count does not match the sum of shard counts")
        return manifest

    def shard_path(self, index: int) -> Path:
        """Path of shard ``index`` (requires a manifest loaded from disk)."""
        if self.root is None:
            raise ValueError("manifest has no root folder; use Manifest.load(dir)")
        return self.root / self.shards[index].name


def fsync_dir(directory: str | os.PathLike) -> None:
    """Make renames and creations inside ``directory`` durable."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_atomic(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` via a fsynced temporary file and a rename."""
    tmp = path.with_name(f"{path.name}.tmp-{os.getpid()}")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    fsync_dir(path.parent)


def sha256_file(path: str | os.PathLike) -> str:
    """Hex sha256 of a file, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def fingerprint_files(
    paths: Iterable[str | os.PathLike], root: str | os.PathLike | None = None
) -> str:
    """Hex sha256 over the relative names, sizes and contents of source files.

    Directories are expanded to all files below them.  Names are taken
    relative to ``root`` (default: the common parent folder) and hashed in
    sorted order, so the fingerprint does not depend on where the sources
    live or the order they are listed in.  Contents are streamed.
    """
    files: list[Path] = []
    for p in map(Path, paths):
        files.extend(sorted(q for q in p.rglob("*") if q.is_file()) if p.is_dir() else [p])
    if not files:
        return hashlib.sha256().hexdigest()
    base = Path(root) if root is not None else Path(os.path.commonpath([f.parent for f in files]))
    digest = hashlib.sha256()
    for rel, file in sorted((f.relative_to(base).as_posix(), f) for f in files):
        name = rel.encode("utf-8")
        digest.update(b"%d:%s:%d:" % (len(name), name, file.stat().st_size))
        with open(file, "rb") as f:
            while chunk := f.read(_CHUNK):
                digest.update(chunk)
    return digest.hexdigest()
