"""The conversion driver: identical output for any number of workers, resume after a kill, --skip-bad."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from humanbench.cli import main
from humanbench.convert import convert
from humanbench.loaders import CONVERTERS
from humanbench.loaders.base import ConversionError
from tests.toy_converter import ToyConverter, write_toy_dataset

ITEMS = {"alpha": 7, "bravo": 5, "charlie": 9}


@pytest.fixture(autouse=True)
def toy_registered(monkeypatch):
    monkeypatch.setitem(CONVERTERS, "toy", ToyConverter)


def folder_bytes(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def test_workers_do_not_change_the_bytes(tmp_path: Path) -> None:
    raw = write_toy_dataset(tmp_path / "raw", ITEMS)
    one = convert("toy", raw, tmp_path / "one", split="test", workers=1, max_count=4, progress=False, command="x")
    two = convert("toy", raw, tmp_path / "two", split="test", workers=2, max_count=4, progress=False, command="x")
    assert one.total_count == two.total_count == (7 - 3) + (5 - 2) + (9 - 3)
    assert folder_bytes(tmp_path / "one") == folder_bytes(tmp_path / "two")
    assert len(one.dropped) == 8  # one per unit


def test_bad_item_stops_the_run_without_a_manifest(tmp_path: Path) -> None:
    raw = write_toy_dataset(tmp_path / "raw", ITEMS)
    (raw / "test" / "bravo.json").write_text("{\"frames\": 5")  # truncated JSON
    with pytest.raises(ConversionError, match=r"bravo\.json: expected JSON"):
        convert("toy", raw, tmp_path / "out", split="test", progress=False)
    assert not (tmp_path / "out" / "manifest.json").exists()


def test_skip_bad_lists_every_skipped_item(tmp_path: Path, capsys) -> None:
    raw = write_toy_dataset(tmp_path / "raw", ITEMS)
    (raw / "test" / "bravo.json").write_text("{\"frames\": 5")
    assert main(["convert", "toy", "--root", str(raw), "--out", str(tmp_path / "out"), "--split", "test",
                 "--skip-bad"]) == 0
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    reasons = [d for d in manifest["dropped"] if d["item"].startswith("bravo")]
    assert reasons and "bravo.json: expected JSON" in reasons[0]["reason"]
    assert manifest["total_count"] == (7 - 3) + (9 - 3)


def test_unknown_split_and_dataset_are_clear_errors(tmp_path: Path, capsys) -> None:
    raw = write_toy_dataset(tmp_path / "raw", ITEMS)
    assert main(["convert", "toy", "--root", str(raw), "--out", str(tmp_path / "o"), "--split", "val"]) == 2
    assert "unknown split 'val'" in capsys.readouterr().err
    assert main(["convert", "nope", "--root", str(raw), "--out", str(tmp_path / "o"), "--split", "test"]) == 2
    assert "unknown dataset 'nope'" in capsys.readouterr().err


def test_killed_run_resumes_to_identical_output(tmp_path: Path) -> None:
    raw = write_toy_dataset(tmp_path / "raw", ITEMS)
    convert("toy", raw, tmp_path / "clean", split="test", max_count=2, progress=False, command="x")
    script = ("import sys; from humanbench.loaders import CONVERTERS; from tests.toy_converter import ToyConverter; "
              "CONVERTERS['toy'] = ToyConverter; from humanbench.convert import convert; "
              f"convert('toy', {str(raw)!r}, {str(tmp_path / 'resumed')!r}, split='test', max_count=2, progress=False, "
              "command='x')")
    env = {**os.environ, "TOY_KILL_AT_UNIT": "5", "PYTHONPATH": str(Path(__file__).parents[1])}
    killed = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True)
    assert killed.returncode == -9
    assert not (tmp_path / "resumed" / "manifest.json").exists()
    env.pop("TOY_KILL_AT_UNIT")
    subprocess.run([sys.executable, "-c", script], env=env, check=True, capture_output=True)
    assert folder_bytes(tmp_path / "resumed") == folder_bytes(tmp_path / "clean")
