"""The humanbench CLI: help texts, exit statuses and messages on bad input."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import pytest

from humanbench.cli import build_parser, main


def run_cli(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "humanbench.cli", *args], capture_output=True, text=True, env=env)


def test_every_option_has_help() -> None:
    parser = build_parser()
    subparsers = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    for name, sub in subparsers.choices.items():
        for action in sub._actions:
            if action.dest != "help":
                assert action.help, f"humanbench {name} {action.dest} has no help text"
    for name in subparsers.choices:
        help_text = sub_help(parser, name)
        assert "usage: humanbench " + name in help_text
    assert run_cli("--help").returncode == 0


def sub_help(parser: argparse.ArgumentParser, name: str) -> str:
    import contextlib
    import io

    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer), pytest.raises(SystemExit) as exit_info:
        parser.parse_args([name, "--help"])
    assert exit_info.value.code == 0
    return buffer.getvalue()


@pytest.fixture(scope="module")
def demo_dir(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("demo")
    assert main(["demo", "--out", str(out), "--frames", "12"]) == 0
    return out


def test_demo_writes_verified_shards_and_contact_sheet(demo_dir: Path, capsys) -> None:
    shards = demo_dir / "shards" / "synthetic-train"
    manifest = json.loads((shards / "manifest.json").read_text())
    assert manifest["total_count"] == 12
    assert (demo_dir / "contact_sheet.png").stat().st_size > 1000
    assert main(["verify", str(shards)]) == 0
    assert main(["inspect", str(shards), "--contact-sheet", str(demo_dir / "sheet2.png")]) == 0
    out = capsys.readouterr().out
    assert "joints2d" in out and "samples: 12" in out


def test_verify_names_the_corrupted_shard_and_member(demo_dir: Path, tmp_path: Path) -> None:
    import shutil

    shards = tmp_path / "copy"
    shutil.copytree(demo_dir / "shards" / "synthetic-train", shards)
    shard = sorted(shards.glob("*.tar"))[0]
    data = bytearray(shard.read_bytes())
    data[2000] ^= 0xFF
    shard.write_bytes(bytes(data))
    result = run_cli("verify", str(shards))
    assert result.returncode == 1
    assert shard.name in result.stdout + result.stderr


def test_missing_manifest_is_a_clear_error(tmp_path: Path) -> None:
    result = run_cli("inspect", str(tmp_path))
    assert result.returncode == 2
    assert "manifest" in result.stderr and str(tmp_path) in result.stderr


def test_inspect_reports_a_schema_violation_with_key_and_field(tmp_path: Path) -> None:
    import numpy as np

    from humanbench.schema import encode_sample
    from humanbench.shards import ShardWriter
    from tests.test_schema import make_sample

    sample = make_sample()
    sample.people["body_pose"] = np.zeros((2, 60))
    fields = {"schema_version": "1.0", "dataset": "toy", "split": "test", "source_fingerprint": "x",
              "humanbench_version": "0", "command": "test", "dropped": [], "extra": {}}
    with ShardWriter(tmp_path / "bad", manifest_fields=fields) as writer:
        writer.write(encode_sample(sample, validate=False))
    result = run_cli("inspect", str(tmp_path / "bad"))
    assert result.returncode == 2
    assert "sample 'seq_a-000012': field 'body_pose'" in result.stderr


@pytest.mark.parametrize("problem", ["missing", "truncated", "malicious"])
def test_info_fails_on_bad_body_model_folders(tmp_path: Path, problem: str) -> None:
    import pickle

    root = tmp_path / "models"
    if problem != "missing":
        (root / "smpl").mkdir(parents=True)
        target = root / "smpl" / "SMPL_NEUTRAL.pkl"
        if problem == "truncated":
            target.write_bytes(pickle.dumps({"v_template": list(range(100))}, protocol=2)[:40])
        else:
            marker = tmp_path / "pwned"
            target.write_bytes(b"cos\nsystem\n(S'touch " + str(marker).encode() + b"'\ntR.")
    result = run_cli("info", "--body-models", str(root))
    assert result.returncode != 0
    text = result.stdout + result.stderr
    if problem == "missing":
        assert str(root) in text
    else:
        assert "SMPL_NEUTRAL.pkl" in text and "FAIL" in text
    if problem == "malicious":
        assert "os.system" in text or "posix.system" in text
        assert not (tmp_path / "pwned").exists()
