"""Tests of the shard layer: writer, manifest, reader, verify."""

from __future__ import annotations

import json
import random
import subprocess
import sys
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch

from humanbench.shards.manifest import (
    JOURNAL_NAME,
    MANIFEST_NAME,
    Manifest,
    ManifestError,
    fingerprint_files,
)
from humanbench.shards.reader import ShardDataset, collate, iter_encoded, make_loader
from humanbench.shards.tario import ShardError
from humanbench.shards.verify import verify_shards
from humanbench.shards.writer import ShardWriter, ShardWriterError

FIELDS = {
    "dataset": "toy",
    "split": "test",
    "schema_version": 1,
    "source_fingerprint": "0" * 64,
    "command": "pytest",
}


def make_samples(n: int, seed: int = 0) -> list[dict]:
    """``n`` encoded samples with sorted keys and pseudo-random payloads of varied size."""
    out = []
    for i in range(n):
        rng = random.Random(f"{seed}:{i}")
        out.append({
            "__key__": f"k{i:05d}",
            "json": json.dumps({"i": i}).encode(),
            "bin": rng.randbytes(rng.randrange(0, 3000)),
            "mask.png": rng.randbytes(100),
        })
    return out


def write(out: Path, samples: list[dict], **kwargs) -> Manifest:
    with ShardWriter(out, manifest_fields=FIELDS, **kwargs) as writer:
        for sample in samples:
            writer.write(sample)
    return Manifest.load(out)


def tree(directory: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(directory.iterdir())}


def stamps(directory: Path) -> dict[str, tuple[int, int]]:
    return {p.name: (p.stat().st_ino, p.stat().st_mtime_ns) for p in directory.glob("*.tar")}


def keys_of(samples) -> list[str]:
    return [s["__key__"] for s in samples]


@pytest.fixture(scope="module")
def toy(tmp_path_factory) -> Path:
    """23 samples in 5 shards (5, 5, 5, 5, 3)."""
    out = tmp_path_factory.mktemp("toy")
    write(out, make_samples(23), max_count=5)
    return out


@pytest.fixture(scope="module")
def one_shard(tmp_path_factory) -> Path:
    """7 samples in a single shard."""
    out = tmp_path_factory.mktemp("one")
    write(out, make_samples(7))
    return out


# -- writer ------------------------------------------------------------------


def test_roundtrip_and_tar_metadata(toy):
    samples = make_samples(23)
    assert list(iter_encoded(toy)) == samples
    manifest = Manifest.load(toy)
    assert manifest.total_count == 23 and manifest.fields == ("bin", "json", "mask.png")
    with tarfile.open(toy / manifest.shards[0].name) as tar:
        members = tar.getmembers()
    assert [m.name for m in members[:3]] == ["k00000.bin", "k00000.json", "k00000.mask.png"]
    assert {(m.mtime, m.uid, m.gid, m.uname, m.gname, m.mode) for m in members} == {(0, 0, 0, "", "", 0o444)}


def test_deterministic(tmp_path):
    samples = make_samples(40)
    write(tmp_path / "a", samples, max_count=7)
    write(tmp_path / "b", samples, max_count=7)
    assert tree(tmp_path / "a") == tree(tmp_path / "b")
    assert JOURNAL_NAME not in tree(tmp_path / "a")


def test_long_member_names_roundtrip(tmp_path):
    sample = {"__key__": "k" * 90, "field.with.a.long.suffix": b"abc", "json": b"{}"}
    write(tmp_path, [sample])
    assert list(iter_encoded(tmp_path)) == [sample]
    with tarfile.open(next(tmp_path.glob("*.tar"))) as tar:
        assert sorted(tar.getnames()) == sorted(f"{'k' * 90}.{f}" for f in sample if f != "__key__")


def test_rollover_by_count(tmp_path):
    manifest = write(tmp_path, make_samples(10), max_count=3)
    assert [s.count for s in manifest.shards] == [3, 3, 3, 1]
    assert [s.name for s in manifest.shards] == [f"shard-{i:06d}.tar" for i in range(4)]


def test_rollover_by_bytes(tmp_path):
    # Each sample: 3 members of 512-byte header + payload padded to 512.
    samples = [{"__key__": f"k{i}", "a": bytes(500), "b": bytes(10), "c": bytes(10)} for i in range(5)]
    big = {"__key__": "k5", "a": bytes(10_000), "b": b"", "c": b""}
    manifest = write(tmp_path, samples + [big], max_bytes=2 * 3072 + 1024)
    assert [s.count for s in manifest.shards] == [2, 2, 1, 1]
    assert [s.bytes for s in manifest.shards[:3]] == [7168, 7168, 4096]
    assert manifest.shards[3].bytes > 7168  # an over-size sample gets a shard of its own
    assert all((tmp_path / s.name).stat().st_size == s.bytes for s in manifest.shards)


def test_exception_mid_shard_leaves_no_complete_looking_shard(tmp_path):
    with pytest.raises(RuntimeError):
        with ShardWriter(tmp_path, max_count=4, manifest_fields=FIELDS) as writer:
            for sample in make_samples(6):
                writer.write(sample)
            raise RuntimeError("converter crashed")
    assert sorted(p.name for p in tmp_path.iterdir()) == [JOURNAL_NAME, "shard-000000.tar"]
    with pytest.raises(ManifestError, match="re-run the conversion to resume"):
        Manifest.load(tmp_path)
    with tarfile.open(tmp_path / "shard-000000.tar") as tar:
        assert len(tar.getnames()) == 4 * 3


def test_writer_refuses_complete_folder(toy):
    with pytest.raises(ShardWriterError, match="complete conversion"):
        ShardWriter(toy, manifest_fields=FIELDS)


@pytest.mark.parametrize(
    "keys, message",
    [
        (["a", "c", "b"], "keys out of order: 'b' after 'c'"),
        (["a", "b", "b"], "duplicate key: 'b' after 'b'"),
        (["a", "B"], "bad sample key 'B'"),
        (["a", "x.y"], "bad sample key 'x.y'"),
    ],
)
def test_bad_keys_rejected_with_keys_named(tmp_path, keys, message):
    with pytest.raises(ValueError, match=message):
        with ShardWriter(tmp_path, manifest_fields=FIELDS) as writer:
            for key in keys:
                writer.write({"__key__": key, "json": b"{}"})
    assert not (tmp_path / MANIFEST_NAME).exists()


def test_bad_fields_rejected(tmp_path):
    with ShardWriter(tmp_path, manifest_fields=FIELDS) as writer:
        with pytest.raises(TypeError, match="field a.json is str"):
            writer.write({"__key__": "a", "json": "{}"})
        with pytest.raises(ValueError, match="bad field name '.png'"):
            writer.write({"__key__": "a", ".png": b""})
    with pytest.raises(ValueError, match=r"missing \['source_fingerprint'\]"):
        ShardWriter(tmp_path / "x", manifest_fields={k: v for k, v in FIELDS.items() if k != "source_fingerprint"})


def test_manifest_fields_from_caller(tmp_path):
    fields = {**FIELDS, "dropped": [{"item": "img_7", "reason": "no person"}], "extra": {"b": 2, "a": 1}}
    with ShardWriter(tmp_path, manifest_fields=fields) as writer:
        writer.write(make_samples(1)[0])
        writer.manifest_fields["extra"]["people"] = 1
    data = json.loads((tmp_path / MANIFEST_NAME).read_text())
    assert data["format"] == "humanbench-shards" and data["dataset"] == "toy"
    assert data["dropped"] == fields["dropped"] and data["extra"] == {"a": 1, "b": 2, "people": 1}
    assert set(data) == {
        "format", "schema_version", "dataset", "split", "source_fingerprint", "humanbench_version",
        "command", "total_count", "shards", "fields", "dropped", "extra",
    }


# -- resume ------------------------------------------------------------------

_KILLED_RUN = """
import os, sys
sys.path.insert(0, {tests!r})
from test_shards import FIELDS, make_samples
from humanbench.shards.writer import ShardWriter, ShardWriterError
with ShardWriter({out!r}, max_count=5, manifest_fields=FIELDS) as writer:
    for i, sample in enumerate(make_samples({n})):
        if i == {kill_at}:
            os.kill(os.getpid(), 9)
        writer.write(sample)
"""


def killed_run(out: Path, n: int, kill_at: int) -> None:
    code = _KILLED_RUN.format(tests=str(Path(__file__).parent), out=str(out), n=n, kill_at=kill_at)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True)
    assert proc.returncode == -9, proc.stderr.decode()


@pytest.mark.parametrize("skip_generation", [False, True])
def test_resume_after_sigkill_is_byte_identical(tmp_path, skip_generation):
    samples = make_samples(33)
    write(tmp_path / "ref", samples, max_count=5)
    out = tmp_path / "run"
    killed_run(out, 33, kill_at=17)
    assert not (out / MANIFEST_NAME).exists()
    assert any(".tmp-" in p.name for p in out.iterdir())  # the partial shard never got its name
    finished = stamps(out)
    assert sorted(finished) == ["shard-000000.tar", "shard-000001.tar", "shard-000002.tar"]
    with ShardWriter(out, max_count=5, manifest_fields=FIELDS) as writer:
        assert writer.resume_count == 15
        for sample in samples[writer.resume_count if skip_generation else 0 :]:
            writer.write(sample)
    assert tree(out) == tree(tmp_path / "ref")
    assert {k: v for k, v in stamps(out).items() if k in finished} == finished


def test_resume_rewrites_from_a_damaged_shard(tmp_path):
    samples = make_samples(33)
    write(tmp_path / "ref", samples, max_count=5)
    out = tmp_path / "run"
    killed_run(out, 33, kill_at=22)
    before = stamps(out)
    damaged = out / "shard-000002.tar"
    data = bytearray(damaged.read_bytes())
    data[700] ^= 1
    damaged.write_bytes(bytes(data))
    with ShardWriter(out, max_count=5, manifest_fields=FIELDS) as writer:
        assert writer.resume_count == 10
        for sample in samples:
            writer.write(sample)
    assert tree(out) == tree(tmp_path / "ref")
    after = stamps(out)
    assert [after[f"shard-00000{i}.tar"] == before[f"shard-00000{i}.tar"] for i in range(3)] == [True, True, False]


def test_resume_rejects_other_settings_or_input(tmp_path):
    killed_run(tmp_path, 33, kill_at=12)
    with pytest.raises(ValueError, match="other settings"):
        ShardWriter(tmp_path, max_count=6, manifest_fields=FIELDS)
    with pytest.raises(ValueError, match="other settings"):
        ShardWriter(tmp_path, max_count=5, manifest_fields={**FIELDS, "source_fingerprint": "1" * 64})
    writer = ShardWriter(tmp_path, max_count=5, manifest_fields=FIELDS)
    with pytest.raises(ValueError, match="input differs"):
        for sample in make_samples(33)[1:]:
            writer.write(sample)
    writer.abort()


# -- reader: evaluation split -----------------------------------------------


def eval_slices(directory: Path, world_size: int, num_workers: int) -> list[list[str]]:
    return [
        keys_of(iter_encoded(directory, rank=r, world_size=world_size, worker=w, num_workers=num_workers))
        for r in range(world_size)
        for w in range(num_workers)
    ]


@pytest.mark.parametrize("world_size", [1, 2, 3, 4])
@pytest.mark.parametrize("loader_workers", [0, 1, 2, 3])
@pytest.mark.parametrize("fixture", ["toy", "one_shard"])
def test_eval_split_exactly_once(request, fixture, world_size, loader_workers):
    directory = request.getfixturevalue(fixture)
    everything = keys_of(iter_encoded(directory))
    slices = eval_slices(directory, world_size, max(loader_workers, 1))
    assert [k for s in slices for k in s] == everything  # contiguous, ordered, no gaps or repeats
    sizes = [len(s) for s in slices]
    assert max(sizes) - min(sizes) <= 1
    for rank in range(world_size):
        dataset = ShardDataset(directory, dict, rank=rank, world_size=world_size)
        per_rank = slices[rank * max(loader_workers, 1) : (rank + 1) * max(loader_workers, 1)]
        assert len(dataset) == sum(len(s) for s in per_rank)


@pytest.mark.parametrize("world_size, num_workers", [(7, 1), (1, 7), (2, 4), (3, 3)])
def test_eval_split_more_slices_than_shards_or_samples(one_shard, world_size, num_workers):
    slices = eval_slices(one_shard, world_size, num_workers)
    assert [k for s in slices for k in s] == [f"k{i:05d}" for i in range(7)]
    assert max(map(len, slices)) - min(map(len, slices)) <= 1


# -- reader: training shuffle -----------------------------------------------


def train_keys(directory: Path, world_size: int, num_workers: int, seed: int, epoch: int) -> list[list[str]]:
    return [
        [
            k
            for w in range(num_workers)
            for k in keys_of(iter_encoded(directory, rank=r, world_size=world_size, worker=w,
                                          num_workers=num_workers, shuffle=True, seed=seed, epoch=epoch,
                                          buffer_size=4))
        ]
        for r in range(world_size)
    ]


def test_training_shuffle_deterministic_balanced_and_epoch_dependent(toy):
    everything = set(keys_of(iter_encoded(toy)))
    first = train_keys(toy, 3, 2, seed=1, epoch=0)
    assert first == train_keys(toy, 3, 2, seed=1, epoch=0)
    assert first != train_keys(toy, 3, 2, seed=1, epoch=1)
    assert first != train_keys(toy, 3, 2, seed=2, epoch=0)
    for epoch in range(4):
        per_rank = train_keys(toy, 3, 2, seed=1, epoch=epoch)
        assert [len(r) for r in per_rank] == [23 // 3] * 3
        flat = [k for r in per_rank for k in r]
        assert len(set(flat)) == len(flat) and set(flat) <= everything
    assert train_keys(toy, 1, 1, seed=0, epoch=0)[0] != sorted(everything)
    assert sorted(train_keys(toy, 1, 1, seed=0, epoch=0)[0]) == sorted(everything)


# -- torch glue --------------------------------------------------------------


def decode_toy(sample: dict) -> dict:
    return {
        "key": sample["__key__"],
        "i": json.loads(sample["json"])["i"],
        "mask": np.frombuffer(sample["mask.png"], np.uint8),
        "bin": np.frombuffer(sample["bin"], np.uint8),
    }


def test_dataloader_two_workers_each_sample_once(toy):
    dataset = ShardDataset(toy, decode_toy)
    loader = make_loader(dataset, batch_size=4, num_workers=2)
    batches = list(loader)
    keys = [k for b in batches for k in b["key"]]
    assert sorted(keys) == [f"k{i:05d}" for i in range(23)] and len(dataset) == 23
    assert batches[0]["mask"].shape == (4, 100) and batches[0]["mask"].dtype == torch.uint8
    assert isinstance(batches[0]["bin"], list) and batches[0]["i"].dtype == torch.int64


def test_dataloader_training_epochs(toy):
    dataset = ShardDataset(toy, decode_toy, rank=1, world_size=2, shuffle=True, buffer_size=3)
    loader = make_loader(dataset, batch_size=5, num_workers=2)
    epochs = []
    for epoch in range(2):
        dataset.set_epoch(epoch)
        epochs.append([k for b in loader for k in b["key"]])
    assert [len(e) for e in epochs] == [11, 11] == [len(dataset)] * 2
    assert epochs[0] != epochs[1]


def test_collate():
    batch = [{"a": np.zeros((2, 3), np.float32), "s": "x", "n": 1.5, "r": np.zeros(i + 1)} for i in range(3)]
    out = collate(batch)
    assert out["a"].shape == (3, 2, 3) and out["a"].dtype == torch.float32
    assert out["s"] == ["x"] * 3 and out["n"].tolist() == [1.5] * 3 and isinstance(out["r"], list)


# -- corruption and verify ---------------------------------------------------


def copy_of(src: Path, dst: Path) -> Path:
    dst.mkdir()
    for p in src.iterdir():
        (dst / p.name).write_bytes(p.read_bytes())
    return dst


def member_offsets(shard: Path) -> dict[str, tuple[int, int]]:
    with tarfile.open(shard) as tar:
        return {m.name: (m.offset, m.offset_data) for m in tar.getmembers()}


def test_truncated_shard_names_shard_and_member(toy, tmp_path):
    directory = copy_of(toy, tmp_path / "d")
    shard = directory / "shard-000001.tar"
    _, data_at = member_offsets(shard)["k00007.bin"]
    shard.write_bytes(shard.read_bytes()[: data_at + 10])
    with pytest.raises(ShardError, match=r"shard-000001\.tar.*member k00007\.bin.*truncated"):
        list(iter_encoded(directory))
    report = verify_shards(directory)
    assert not report.ok
    assert any(p.shard == "shard-000001.tar" and p.member == "k00007.bin" for p in report.problems)
    assert "shard-000001.tar" in str(report) and "k00007.bin" in str(report)


def test_flipped_header_byte_names_shard_and_member(toy, tmp_path):
    directory = copy_of(toy, tmp_path / "d")
    shard = directory / "shard-000003.tar"
    header_at, _ = member_offsets(shard)["k00016.json"]
    data = bytearray(shard.read_bytes())
    data[header_at + 101] ^= 0x01  # inside the mode field
    shard.write_bytes(bytes(data))
    with pytest.raises(ShardError, match=r"shard-000003\.tar.*member k00016\.json.*checksum"):
        list(iter_encoded(directory, rank=1, world_size=2))
    problems = verify_shards(directory).problems
    assert {(p.shard, p.member) for p in problems} == {("shard-000003.tar", None), ("shard-000003.tar", "k00016.json")}


def test_flipped_payload_byte_found_by_verify(toy, tmp_path):
    directory = copy_of(toy, tmp_path / "d")
    shard = directory / "shard-000000.tar"
    _, data_at = member_offsets(shard)["k00002.json"]
    data = bytearray(shard.read_bytes())
    data[data_at] ^= 0xFF
    shard.write_bytes(bytes(data))
    report = verify_shards(directory)
    assert [(p.shard, "sha256" in p.message) for p in report.problems] == [("shard-000000.tar", True)]
    assert verify_shards(directory, deep=False).ok  # size and presence only


def test_verify_ok_missing_shard_and_missing_manifest(toy, tmp_path):
    assert verify_shards(toy).ok and verify_shards(toy, deep=False).ok
    directory = copy_of(toy, tmp_path / "d")
    (directory / "shard-000004.tar").unlink()
    assert [(p.shard, p.message) for p in verify_shards(directory, deep=False).problems] == [
        ("shard-000004.tar", "shard file is missing")
    ]
    with pytest.raises(ShardError, match="shard-000004.tar.*missing"):
        list(iter_encoded(directory))
    (directory / MANIFEST_NAME).unlink()
    with pytest.raises(ManifestError, match="not a humanbench shard folder"):
        Manifest.load(directory)
    with pytest.raises(ManifestError):
        ShardDataset(directory, dict)
    assert not verify_shards(directory).ok


def test_fingerprint_files(tmp_path):
    (tmp_path / "src" / "sub").mkdir(parents=True)
    a, b = tmp_path / "src" / "a.txt", tmp_path / "src" / "sub" / "b.txt"
    a.write_bytes(b"alpha")
    b.write_bytes(b"beta")
    fp = fingerprint_files([a, b])
    assert fp == fingerprint_files([b, a]) == fingerprint_files([tmp_path / "src"])
    assert len(fp) == 64
    b.write_bytes(b"betb")
    assert fingerprint_files([a, b]) != fp
    b.write_bytes(b"beta")
    b.rename(tmp_path / "src" / "sub" / "c.txt")
    assert fingerprint_files([tmp_path / "src"]) != fp
