"""Deterministic, atomic, resumable writer of tar shards.

Samples arrive as encoded dicts ``{"__key__": key, "<field>": bytes, ...}``
with strictly increasing keys.  Each sample becomes the members
``key.<field>`` (fields in sorted order) of the current shard; a shard closes
when the next sample would push it past ``max_count`` samples or
``max_bytes`` bytes.  Finished shards are fsynced, renamed into place and
recorded in the journal ``_progress.jsonl``; closing the writer writes
``manifest.json`` and removes the journal.
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import json
import os
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from types import TracebackType
from typing import Any, BinaryIO

from humanbench.errors import HumanbenchError
from humanbench.shards.manifest import (
    JOURNAL_NAME,
    MANIFEST_NAME,
    Manifest,
    ShardInfo,
    fsync_dir,
    sha256_file,
    write_atomic,
)
from humanbench.shards.tario import END_OF_ARCHIVE, member_header, padding_for

KEY_RE = re.compile(r"[a-z0-9_-]+")
FIELD_RE = re.compile(r"[a-z0-9_-]+(?:\.[a-z0-9_-]+)*")
_TMP_RE = re.compile(r"\.tmp-\d+$")
_JOURNAL_VERSION = 1
#: manifest_fields entries that identify the input; a journal from a run with
#: other values cannot be resumed.
_IDENTITY_FIELDS = ("dataset", "split", "schema_version", "source_fingerprint")


class ShardWriterError(HumanbenchError, ValueError):
    """Samples or folder state the writer refuses: bad or unsorted keys, a folder it cannot resume."""


def _journal_line(info: ShardInfo, fields: Iterable[str]) -> bytes:
    entry = {"shard": dataclasses.asdict(info), "fields": sorted(fields)}
    return json.dumps(entry, sort_keys=True).encode() + b"\n"


class ShardWriter:
    """Write encoded samples into ``out_dir`` as deterministic tar shards.

    Use as a context manager.  Leaving the ``with`` block normally finishes
    the last shard and writes ``manifest.json``; leaving it with an exception
    deletes the partial shard and keeps the journal so a re-run resumes.

    On a re-run after a crash, shards recorded in the journal whose file still
    has the journalled size and sha256 are kept untouched; ``resume_count``
    tells how many leading samples they hold.  The caller may either skip
    generating those samples or pass them again: samples whose key is not
    after the last finished key are discarded.  ``manifest_fields`` stays a
    public dict that may be updated (``extra``, ``dropped``) before closing;
    for a byte-identical manifest after a resume it must end up the same as in
    an uninterrupted run.
    """

    def __init__(
        self,
        out_dir: str | os.PathLike,
        *,
        pattern: str = "shard-{index:06d}.tar",
        max_count: int = 10_000,
        max_bytes: int = 256 * 2**20,
        manifest_fields: Mapping[str, Any],
    ) -> None:
        if max_count < 1 or max_bytes < 1:
            raise ValueError("max_count and max_bytes must be positive")
        names = {pattern.format(index=i) for i in range(3)}
        if len(names) != 3 or any("/" in n or n in (MANIFEST_NAME, JOURNAL_NAME) for n in names):
            raise ValueError(f"pattern {pattern!r} must give a distinct plain file name per index")
        self.out_dir = Path(out_dir)
        self.pattern = pattern
        self.max_count = max_count
        self.max_bytes = max_bytes
        self.manifest_fields = copy.deepcopy(dict(manifest_fields))
        Manifest.build(self.manifest_fields, (), ())  # validate the keys early
        self.out_dir.mkdir(parents=True, exist_ok=True)
        if (self.out_dir / MANIFEST_NAME).exists():
            raise ShardWriterError(
                f"{self.out_dir} already holds a complete conversion ({MANIFEST_NAME}); "
                "delete the folder to convert again"
            )
        for stale in self.out_dir.iterdir():
            if _TMP_RE.search(stale.name):
                stale.unlink()
        self._settings = {
            "journal": _JOURNAL_VERSION,
            "pattern": pattern,
            "max_count": max_count,
            "max_bytes": max_bytes,
            **{k: self.manifest_fields[k] for k in _IDENTITY_FIELDS},
        }
        self._done: list[ShardInfo] = []
        self._fields: set[str] = set()
        self._resume_journal()
        self.resume_count = sum(s.count for s in self._done)
        self._resume_last_key = self._done[-1].last_key if self._done else None
        self._skipped = 0
        self._prev_key: str | None = None
        self._checked_fields: set[str] = set()
        self._file: BinaryIO | None = None
        self._closed = False

    # -- journal ---------------------------------------------------------

    @property
    def _journal_path(self) -> Path:
        return self.out_dir / JOURNAL_NAME

    def _resume_journal(self) -> None:
        """Keep the journalled shards that are intact; rewrite the journal to match."""
        entries: list[dict[str, Any]] = []
        if self._journal_path.exists():
            lines = self._journal_path.read_bytes().split(b"\n")
            try:
                header = json.loads(lines[0])
            except ValueError:
                lines = []  # unreadable journal: start over
            else:
                if header != self._settings:
                    raise ShardWriterError(
                        f"{self._journal_path} was written by a run with other settings or input "
                        f"({header}); re-run with the same settings or delete {self.out_dir}"
                    )
            for line in lines[1:]:
                try:
                    entries.append(json.loads(line))
                except ValueError:
                    break  # torn last line of a killed run
        for entry in entries:
            info = ShardInfo(**entry["shard"])
            path = self.out_dir / info.name
            if info.name != self.pattern.format(index=len(self._done)):
                break
            if not path.is_file() or path.stat().st_size != info.bytes or sha256_file(path) != info.sha256:
                break
            self._done.append(info)
            self._fields.update(entry["fields"])
        body = json.dumps(self._settings, sort_keys=True).encode() + b"\n"
        body += b"".join(_journal_line(s, e["fields"]) for s, e in zip(self._done, entries))
        write_atomic(self._journal_path, body)
        self._journal = open(self._journal_path, "ab")

    def _append_journal(self, info: ShardInfo, fields: set[str]) -> None:
        self._journal.write(_journal_line(info, fields))
        self._journal.flush()
        os.fsync(self._journal.fileno())

    # -- samples ---------------------------------------------------------

    def _check(self, sample: Mapping[str, Any]) -> str:
        """Validate one encoded sample and the key order; return its key."""
        key = sample.get("__key__")
        if not isinstance(key, str) or not KEY_RE.fullmatch(key):
            raise ShardWriterError(f"bad sample key {key!r}: use lowercase letters, digits, '_' and '-' only")
        if self._prev_key is not None and key <= self._prev_key:
            what = "duplicate key" if key == self._prev_key else "keys out of order"
            raise ShardWriterError(f"{what}: {key!r} after {self._prev_key!r}; keys must be unique and sorted")
        if len(sample) < 2:
            raise ShardWriterError(f"sample {key!r} has no fields")
        for name, value in sample.items():
            if name == "__key__":
                continue
            if name not in self._checked_fields:
                if not FIELD_RE.fullmatch(name):
                    raise ShardWriterError(f"bad field name {name!r} in sample {key!r}")
                self._checked_fields.add(name)
            if not isinstance(value, (bytes, bytearray)):
                raise TypeError(f"field {key}.{name} is {type(value).__name__}, expected bytes")
        self._prev_key = key
        return key

    def write(self, sample: Mapping[str, Any]) -> None:
        """Append one encoded sample (or discard it if a finished shard already holds it)."""
        if self._closed:
            raise ValueError("ShardWriter is closed")
        key = self._check(sample)
        if self._resume_last_key is not None and key <= self._resume_last_key:
            self._skipped += 1
            return
        if 0 < self._skipped != self.resume_count:
            raise ShardWriterError(
                f"input differs from the journalled run: {self._skipped} samples up to "
                f"{self._resume_last_key!r}, journal has {self.resume_count}"
            )
        self._resume_last_key = None
        members = []
        size = 0
        for name in sorted(sample):
            if name != "__key__":
                data = sample[name]
                chunks = (member_header(f"{key}.{name}", len(data)), data, padding_for(len(data)))
                members.append(chunks)
                size += sum(map(len, chunks))
        if self._file is not None and (
            self._count >= self.max_count or self._bytes + size + len(END_OF_ARCHIVE) > self.max_bytes
        ):
            self._finish_shard()
        if self._file is None:
            self._open_shard(key)
        for chunks in members:
            for chunk in chunks:
                self._file.write(chunk)
                self._hash.update(chunk)
        self._count += 1
        self._bytes += size
        self._last_key = key
        self._shard_fields.update(n for n in sample if n != "__key__")

    # -- shards ----------------------------------------------------------

    def _open_shard(self, first_key: str) -> None:
        self._name = self.pattern.format(index=len(self._done))
        self._tmp = self.out_dir / f"{self._name}.tmp-{os.getpid()}"
        self._file = open(self._tmp, "wb", buffering=1 << 20)
        self._hash = hashlib.sha256()
        self._count = 0
        self._bytes = 0
        self._first_key = first_key
        self._shard_fields: set[str] = set()

    def _finish_shard(self) -> None:
        assert self._file is not None
        self._file.write(END_OF_ARCHIVE)
        self._hash.update(END_OF_ARCHIVE)
        self._file.flush()
        os.fsync(self._file.fileno())
        self._file.close()
        self._file = None
        os.replace(self._tmp, self.out_dir / self._name)
        fsync_dir(self.out_dir)
        info = ShardInfo(
            name=self._name,
            count=self._count,
            bytes=self._bytes + len(END_OF_ARCHIVE),
            sha256=self._hash.hexdigest(),
            first_key=self._first_key,
            last_key=self._last_key,
        )
        self._append_journal(info, self._shard_fields)
        self._done.append(info)
        self._fields |= self._shard_fields

    def close(self) -> Manifest:
        """Finish the last shard, write ``manifest.json`` and remove the journal."""
        if self._closed:
            raise ValueError("ShardWriter is closed")
        if self._resume_last_key is not None and self._skipped not in (0, self.resume_count):
            raise ShardWriterError(
                f"input differs from the journalled run: it ended after {self._skipped} samples, "
                f"journal has {self.resume_count}"
            )
        if self._file is not None:
            self._finish_shard()
        manifest = Manifest.build(self.manifest_fields, self._done, self._fields)
        manifest.write(self.out_dir)
        self._closed = True
        self._journal.close()
        self._journal_path.unlink()
        fsync_dir(self.out_dir)
        return dataclasses.replace(manifest, root=self.out_dir)

    def abort(self) -> None:
        """Drop the unfinished shard; keep finished shards and the journal for a resume."""
        if self._closed:
            return
        self._closed = True
        if self._file is not None:
            self._file.close()
            self._file = None
            self._tmp.unlink(missing_ok=True)
        self._journal.close()

    def __enter__(self) -> ShardWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()
