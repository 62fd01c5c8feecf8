"""Check a shard folder against its manifest."""

from __future__ import annotations

import dataclasses
import hashlib
import mmap
import os
from pathlib import Path

from humanbench.shards.manifest import Manifest, ManifestError, ShardInfo
from humanbench.shards.tario import ShardError, iter_members, split_name


@dataclasses.dataclass(frozen=True)
class Problem:
    """One thing wrong with a shard folder; ``shard``/``member`` name where, when known."""

    shard: str | None
    member: str | None
    message: str

    def __str__(self) -> str:
        return str(ShardError(self.shard, self.member, self.message))


@dataclasses.dataclass
class VerifyReport:
    """Outcome of :func:`verify_shards`."""

    directory: Path
    deep: bool
    shards_checked: int = 0
    total_count: int = 0
    problems: list[Problem] = dataclasses.field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def __str__(self) -> str:
        mode = "deep" if self.deep else "shallow"
        head = (f"{self.directory}: {self.shards_checked} shards, {self.total_count} samples, "
                f"{mode} check: {'OK' if self.ok else f'{len(self.problems)} problem(s)'}")
        return "\n".join([head, *(f"  {p}" for p in self.problems)])


def _check_members(buf: mmap.mmap | bytes, info: ShardInfo, problems: list[Problem]) -> set[str]:
    """Parse every member; compare sample count and key range with ``info``; return field names."""
    fields: set[str] = set()
    count = 0
    first = key = None
    sample_fields: set[str] = set()
    try:
        for name, _, _ in iter_members(buf, info.name):
            member_key, field = split_name(name)
            if member_key != key:
                if key is None:
                    first = member_key
                elif member_key <= key:
                    problems.append(Problem(info.name, name, f"key {member_key!r} not after {key!r}"))
                key, count, sample_fields = member_key, count + 1, set()
            if not field or field in sample_fields:
                problems.append(Problem(info.name, name, "missing or duplicate field suffix"))
            sample_fields.add(field)
            fields.add(field)
    except ShardError as exc:
        problems.append(Problem(info.name, exc.member, exc.message))
        return fields
    if count != info.count:
        problems.append(Problem(info.name, None, f"holds {count} samples, manifest says {info.count}"))
    if (first, key) != (info.first_key, info.last_key):
        problems.append(Problem(info.name, None, f"key range {first!r}..{key!r}, manifest says "
                                                 f"{info.first_key!r}..{info.last_key!r}"))
    return fields


def _check_shard(path: Path, info: ShardInfo, deep: bool, problems: list[Problem]) -> set[str] | None:
    """Check one shard file; return its field names when deep-parsed."""
    if not path.is_file():
        problems.append(Problem(info.name, None, "shard file is missing"))
        return None
    size = path.stat().st_size
    if size != info.bytes:
        problems.append(Problem(info.name, None, f"size {size} bytes, manifest says {info.bytes}"))
    if not deep or size == 0:
        return None
    with open(path, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as buf:
        if hashlib.sha256(buf).hexdigest() != info.sha256:
            problems.append(Problem(info.name, None, "sha256 differs from the manifest (content corrupted)"))
        return _check_members(buf, info, problems)


def verify_shards(directory: str | os.PathLike, *, deep: bool = True) -> VerifyReport:
    """Check manifest presence, each shard's existence and size and, if ``deep``, its sha256,
    member headers, sample count and key range; also key order across shards and field names.
    """
    report = VerifyReport(Path(directory), deep)
    try:
        manifest = Manifest.load(directory)
    except ManifestError as exc:
        report.problems.append(Problem(None, None, exc.message))
        return report
    report.total_count = manifest.total_count
    seen: set[str] = set()
    all_parsed = True
    for i, info in enumerate(manifest.shards):
        if i and manifest.shards[i - 1].last_key >= info.first_key:
            report.problems.append(Problem(info.name, None, "first key not after the previous shard's last key"))
        fields = _check_shard(manifest.shard_path(i), info, deep, report.problems)
        all_parsed = all_parsed and fields is not None
        seen |= fields or set()
        report.shards_checked += 1
    if deep and all_parsed and sorted(seen) != list(manifest.fields):
        message = f"fields {sorted(seen)} differ from manifest {list(manifest.fields)}"
        report.problems.append(Problem(None, None, message))
    return report
