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
