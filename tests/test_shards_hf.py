"""Shards load with Hugging Face ``datasets``' generic ``webdataset`` builder (offline)."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
from PIL import Image

from humanbench.shards.writer import ShardWriter

datasets = pytest.importorskip("datasets")

FIELDS = {"dataset": "toy", "split": "test", "schema_version": 1, "source_fingerprint": "0" * 64, "command": "pytest"}


def _image_bytes(image: Image.Image, fmt: str) -> bytes:
    buf = io.BytesIO()
    image.save(buf, fmt)
    return buf.getvalue()


def _arrays(i: int) -> dict[str, np.ndarray]:
    return {
        "pose": np.arange(72, dtype=np.float32) * i,
        "betas": np.full(10, i, dtype=np.float64),
        "joints": np.arange(72, dtype=np.float32).reshape(24, 3) + i,
    }


def _sample(i: int) -> dict:
    rng = np.random.default_rng(i)
    npz = io.BytesIO()
    np.savez(npz, **_arrays(i))
    return {
        "__key__": f"sample_{i:04d}",
        "json": json.dumps({"index": i, "subject": f"s{i % 3}"}).encode(),
        "jpg": _image_bytes(Image.fromarray(rng.integers(0, 255, (24, 40, 3), np.uint8)), "JPEG"),
        "mask.png": _image_bytes(Image.fromarray(rng.integers(0, 2, (24, 40), np.uint8) * 255), "PNG"),
        "npz": npz.getvalue(),
    }


def test_load_dataset_webdataset(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf_home"))
    monkeypatch.setattr(datasets.config, "HF_DATASETS_OFFLINE", True)
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)
    samples = [_sample(i) for i in range(7)]
    with ShardWriter(tmp_path / "shards", max_count=3, manifest_fields=FIELDS) as writer:
        for sample in samples:
            writer.write(sample)
    files = sorted(str(p) for p in (tmp_path / "shards").glob("*.tar"))
    assert len(files) == 3

    ds = datasets.load_dataset(
        "webdataset", data_files={"test": files}, split="test", cache_dir=str(tmp_path / "hf_cache")
    )
    assert len(ds) == len(samples)
    assert ds["__key__"] == [s["__key__"] for s in samples]
    for i, row in enumerate(ds):
        assert row["json"] == {"index": i, "subject": f"s{i % 3}"}
        assert row["jpg"].size == (40, 24) and row["jpg"].mode == "RGB"
        assert row["mask.png"].size == (40, 24)
        assert np.array_equal(np.asarray(row["mask.png"]), np.asarray(Image.open(io.BytesIO(samples[i]["mask.png"]))))
        for name, expected in _arrays(i).items():
            assert np.array_equal(np.asarray(row["npz"][name], dtype=expected.dtype), expected)
