"""Leaderboards, paper tables and plots from records written by the real evaluator on synthetic 3DPW-like shards."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from humanbench.cli import main
from humanbench.conversion import write_shards
from humanbench.evaluation import evaluate
from humanbench.leaderboards import leaderboard, load_results
from humanbench.leaderboards.paper_tables import TEMPLATES
from humanbench.leaderboards.plots import KINDS, LAYOUTS, PlotError, plot
from humanbench.leaderboards.published import load_published
from humanbench.leaderboards.store import StoreError
from humanbench.leaderboards.tables import TableError, build_tables, render_latex, render_markdown
from humanbench.metrics.agora_aggregate import full_body_error, normalized_error
from humanbench.metrics.hmr import LSP14_NAMES, SMPL_KINEMATIC_14_NAMES
from humanbench.predictions import Predictions, save_predictions
from humanbench.records import read_record, write_record
from humanbench.schema import decode_sample
from humanbench.shards import iter_encoded
from humanbench.synthetic.world import SyntheticWorld, WorldConfig

RECORDS = (("3dpw/cliff", "opt@step=0", 0.12), ("3dpw/cliff", "opt@step=10", 0.06), ("3dpw/cliff", "opt@step=20", 0.03),
           ("3dpw/spin", "baseline", 0.08))
"""(protocol, method, noise of the predicted pose): a test-time-optimisation series, and a record of another protocol."""


def pw3d_like_shards(out: Path) -> Path:
    """Three synthetic-world frames dressed as 3DPW test samples (every person campose_valid)."""
    def samples(start: int = 0):
        world = SyntheticWorld(WorldConfig(sequences=1, frames=3, width=64, height=64, dataset="3dpw", split="test",
                                           seed=5))
        for sample in world.samples(start):
            yield dataclasses.replace(sample, flags={"campose_valid": np.ones(sample.num_people, bool)})

    write_shards(samples, out, total=3, dataset="3dpw", split="test", source_fingerprint="test", progress=False)
    return out


def make_records(folder: Path, specs=RECORDS) -> dict[tuple[str, str], Path]:
    """Evaluate GT-plus-noise predictions with the real evaluator; (protocol, method) -> record path."""
    shards = pw3d_like_shards(folder / "shards")
    people = [(s.key, p, {k: v[p] for k, v in s.people.items()})
              for s in map(decode_sample, iter_encoded(shards)) for p in range(s.num_people)]
    stack = lambda name: np.stack([p[2][name] for p in people])  # noqa: E731
    paths = {}
    for i, (protocol, method, noise) in enumerate(specs):
        rng = np.random.default_rng(i)
        pred = Predictions(keys=np.array([p[0] for p in people]), person=np.array([p[1] for p in people]),
                           body_model="smpl", betas=stack("betas"), global_orient=stack("global_orient"),
                           body_pose=stack("body_pose") + rng.normal(scale=noise, size=(len(people), 69)))
        save_predictions(pred, folder / "pred" / f"{i}.npz")
        record = evaluate(protocol, shards, folder / "pred" / f"{i}.npz", out=folder / "results", method=method,
                          progress=False, device="cpu")
        paths[protocol, method] = record.path
    return paths


@pytest.fixture(scope="module")
def records(tmp_path_factory) -> dict[tuple[str, str], Path]:
    return make_records(tmp_path_factory.mktemp("leaderboards"))


@pytest.fixture(scope="module")
def results(records) -> Path:
    return next(iter(records.values())).parent


def test_results_store_is_one_frame_with_one_row_per_method_and_protocol(records, results) -> None:
    frame = load_results(results)
    assert len(frame) == len(RECORDS)
    assert set(zip(frame["protocol"], frame["method"])) == set(records)
    assert (frame["status"] == "reproduced").all() and frame["synthetic"].all()
    assert (frame["protocol_version"] == 1).all() and set(frame["dataset"]) == {"3dpw"}
    row = frame[(frame["protocol"] == "3dpw/cliff") & (frame["method"] == "opt@step=10")].iloc[0]
    record = read_record(records["3dpw/cliff", "opt@step=10"])
    assert row["mpjpe"] == record.metrics["mpjpe"] and row["pve"] == record.metrics["pve"]
    assert row["count_people"] == record.counts["people"] and row["series"] == "opt" and row["step"] == 10
    assert row["predictions_sha256"] == record.provenance["predictions"]["sha256"] and row["humanbench_version"]
    assert pd.isna(frame.loc[frame["protocol"] == "3dpw/spin", "pve"]).all()
    with pytest.raises(StoreError, match="no such file"):
        load_results(results / "missing")


def test_published_numbers_carry_citation_protocol_and_status() -> None:
    published = load_published()
    assert published["citation"].str.len().gt(0).all() and set(published["status"]) == {"reported"}
    assert set(published["protocol"]) == {"unknown", "agora/official"}
    agora = published[published["protocol"] == "agora/official"]
    assert len(agora) == 9 and set(agora["split"]) == {"test"} and (agora["protocol_version"] == 1).all()
    assert set(published.loc[published["dataset"] == "3dpw", "protocol"]) == {"unknown"}
    aios = agora[agora["method"] == "AiOS"].iloc[0]
    assert (aios["f1"], aios["fullbody-NMVE"], aios["body-MVE"]) == (0.94, 97.8, 57.6)


def test_published_agora_rows_obey_the_official_aggregation() -> None:
    """All = round(B + (LH + RH + F)/3, 1) and NMxE = All / F1: true of every row but the one the data flags."""
    agora = load_published().query("protocol == 'agora/official'")
    inconsistent = []
    for _, row in agora.iterrows():
        for kind, norm in (("MVE", "NMVE"), ("MPJPE", "NMJE")):
            parts = (row[f"{p}-{kind}"] for p in ("body", "lhand", "rhand", "face"))
            assert normalized_error(row[f"fullbody-{kind}"], row["f1"]) == row[f"fullbody-{norm}"]
            assert normalized_error(row[f"body-{kind}"], row["f1"]) == row[f"body-{norm}"]
            if full_body_error(*parts) != row[f"fullbody-{kind}"]:
                inconsistent.append((row["method"], kind))
    assert inconsistent == [("SMPLer-X", "MPJPE")]
    assert "inconsistent in the source" in agora.set_index("method").loc["SMPLer-X", "note"]


def test_tables_are_one_per_protocol_with_best_marked_by_direction(results) -> None:
    tables = build_tables(load_results(results, published=True))
    keys = [(t.protocol, t.version, t.dataset, t.split, t.synthetic) for t in tables]
    assert len(keys) == len(set(keys))
    cliff = next(t for t in tables if t.protocol == "3dpw/cliff")
    assert len(cliff.rows) == 3 and set(cliff.rows["protocol"]) == {"3dpw/cliff"}
    best_row = int(cliff.rows["mpjpe"].to_numpy().argmin())
    assert (best_row, "mpjpe") in cliff.best() and sum(m == "mpjpe" for _, m in cliff.best()) == 1
    agora = next(t for t in tables if t.protocol == "agora/official")
    f1_best = {agora.rows.loc[i, "method"] for i, m in agora.best() if m == "f1"}
    assert f1_best == {"Hand4Whole†", "OSX*", "AiOS"}  # higher is better, ties all marked
    assert {agora.rows.loc[i, "method"] for i, m in agora.best() if m == "fullbody-NMVE"} == {"AiOS"}
    unknown = next(t for t in tables if t.protocol == "unknown" and t.dataset == "3dpw")
    assert not unknown.best() and "protocol unknown" in render_markdown([unknown])


def test_versions_and_definitions_are_never_mixed(records, tmp_path) -> None:
    record = read_record(records["3dpw/cliff", "opt@step=0"])
    write_record(record, tmp_path)
    bumped = dataclasses.replace(record, method="bumped", protocol={**record.protocol, "version": 2})
    write_record(bumped, tmp_path)
    tables = build_tables(load_results(tmp_path))
    assert [(t.protocol, t.version, len(t.rows)) for t in tables] == [("3dpw/cliff", 1, 1), ("3dpw/cliff", 2, 1)]
    changed = dataclasses.replace(record, method="changed", protocol={**record.protocol, "person_flag": "valid"})
    write_record(changed, tmp_path)
    with pytest.raises(TableError, match="different definitions"):
        build_tables(load_results(tmp_path))


def test_renderings_are_deterministic_with_printed_digits_and_synthetic_marks(records, results) -> None:
    for fmt in ("md", "tex", "csv"):
        assert leaderboard([results], fmt=fmt) == leaderboard([results], fmt=fmt)
    record = read_record(records["3dpw/cliff", "opt@step=20"])
    md, tex, text = (leaderboard([results], fmt=f) for f in ("md", "tex", "csv"))
    best = min(read_record(p).metrics["mpjpe"] for (proto, _), p in records.items() if proto == "3dpw/cliff")
    assert f"**{best:.1f}**" in md and rf"\textbf{{{best:.1f}}}" in tex
    assert f"{record.metrics['pve']:.1f}" in md and "[synthetic]" in md and "SYNTHETIC DATA" in md
    assert r"\toprule" in tex and r"\bottomrule" in tex and "synthetic" in tex
    csv_rows = pd.read_csv(__import__("io").StringIO(text), dtype=str, keep_default_na=False)
    assert set(csv_rows["synthetic"]) == {"true"} and (csv_rows["mpjpe"].str.count(r"\.\d$") == 1).all()


def test_reported_and_reproduced_rows_are_told_apart(results) -> None:
    frame = load_results(results)
    cliff = frame[frame["protocol"] == "3dpw/cliff"]
    reported = cliff.iloc[[0]].assign(method="Paper method", status="reported", citation="A paper, Table 2", record="")
    table = next(t for t in build_tables(pd.concat([reported, cliff], ignore_index=True)) if t.protocol == "3dpw/cliff")
    md, tex = render_markdown([table]), render_latex([table])
    assert "| Paper method [synthetic] | reported [1] |" in md and "[1] A paper, Table 2" in md
    assert md.count("| reproduced |") == 3
    body = tex.split(r"\midrule", 1)[1]
    assert body.index("reported [1]") < body.index(r"\midrule") < body.index("reproduced")


def test_paper_templates_regenerate_the_published_layouts(results) -> None:
    ubody = leaderboard([], published=True, fmt="tex", template="ubody")
    assert r"\multicolumn{3}{c}{PA-PVE} & \multicolumn{3}{c}{PVE}" in ubody and r"\cmidrule(lr){3-5}" in ubody
    assert "AiOS & reported [1] & 32.5 & 7.3 & 2.8 & 58.6 & 39.0 & 19.6" in ubody
    agora = leaderboard([], published=True, fmt="md", template="agora")
    assert "| Detection F1 ↑ | Detection P ↑ | Detection R ↑ | NMVE All ↓ | NMVE Body ↓ |" in agora
    assert "| AiOS | reported [1] | **0.94** | **0.98** | 0.90 | **97.8** | **61.3** |" in agora
    assert "23.49 | 0.885 | – |" in leaderboard([], published=True, fmt="md", template="zju-mocap")
    cliff = leaderboard([results], fmt="md", template="3dpw", protocol="3dpw/cliff")
    assert "| Method | Status | MPJPE ↓ | PA-MPJPE ↓ | PVE ↓ |" in cliff
    with pytest.raises(TableError, match=r"has no PVE \(metric 'pve'\); its protocol defines mpjpe, pa_mpjpe"):
        leaderboard([results], fmt="md", template="3dpw")
    with pytest.raises(TableError, match="md or tex"):
        leaderboard([results], fmt="csv", template="3dpw", protocol="3dpw/cliff")
    assert set(TEMPLATES) == {"agora", "ubody", "ehf", "3dpw", "zju-mocap"}


def _plot_bytes(tmp: Path, kind: str, paths: list[Path], *args: str) -> dict[str, bytes]:
    assert main(["plot", kind, *map(str, paths), "--out", str(tmp), *args]) == 0
    return {p.name: p.read_bytes() for p in sorted(tmp.iterdir())}


def test_plots_are_png_and_pdf_and_byte_deterministic(records, tmp_path) -> None:
    pair = [records["3dpw/cliff", "opt@step=0"], records["3dpw/cliff", "opt@step=20"]]
    series = [records["3dpw/cliff", f"opt@step={n}"] for n in (20, 0, 10)]
    for kind, paths, args in (("per-joint", pair, ()), ("skeleton", pair, ()), ("cdf", pair, ("--metric", "pve")),
                              ("tto", series, ()), ("tto", pair, ("--steps", "5,7", "--metric", "mpjpe"))):
        first = _plot_bytes(tmp_path / f"{kind}{len(args)}a", kind, paths, *args)
        if not args or kind == "cdf":
            assert first == _plot_bytes(tmp_path / f"{kind}{len(args)}b", kind, paths, *args)
        assert sorted(n.rsplit(".", 1)[1] for n in first) == ["pdf", "png"]
        for name, data in first.items():
            assert data.startswith(b"\x89PNG" if name.endswith(".png") else b"%PDF") and len(data) > 5000
    assert set(KINDS) == {"per-joint", "skeleton", "cdf", "tto", "agora-bins"}


def test_skeleton_layouts_cover_the_protocol_joint_sets() -> None:
    assert set(LSP14_NAMES) <= set(LAYOUTS["lsp14"].points)
    assert set(SMPL_KINEMATIC_14_NAMES) <= set(LAYOUTS["smpl_kinematic14"].points)
    for layout in LAYOUTS.values():
        assert all(a in layout.points and b in layout.points for a, b in layout.bones)


def test_plot_errors_are_clear(records, tmp_path) -> None:
    both = [records["3dpw/cliff", "opt@step=0"], records["3dpw/spin", "baseline"]]
    with pytest.raises(PlotError, match="cannot share a plot"):
        plot("per-joint", both, out=tmp_path)
    with pytest.raises(PlotError, match="carries no step"):
        plot("tto", [records["3dpw/spin", "baseline"]], out=tmp_path)
    with pytest.raises(PlotError, match="need records of agora/official, not 3dpw/spin"):
        plot("agora-bins", [records["3dpw/spin", "baseline"]], out=tmp_path)
    assert main(["plot", "cdf", str(records["3dpw/spin", "baseline"]), "--metric", "pve", "--out", str(tmp_path)]) == 2


def test_agora_bins_from_per_person_occlusion(records, tmp_path) -> None:
    """An agora/official-shaped record (protocol and sidecar columns as that evaluator writes them) made from a real one."""
    base = read_record(records["3dpw/cliff", "opt@step=0"])
    rows = base.per_person.assign(occlusion=np.linspace(0, 79, len(base.per_person)),
                                  **{"body-MVE": base.per_person["pve"]})
    pve = base.protocol["metrics"][-1]
    protocol = {**base.protocol, "id": "agora/official", "metrics": [{**pve, "name": "body-MVE"}]}
    write_record(dataclasses.replace(base, method="m", protocol=protocol, per_person=rows), tmp_path / "with")
    written = plot("agora-bins", [tmp_path / "with"], out=tmp_path / "plots")
    assert [p.suffix for p in written] == [".png", ".pdf"]
    write_record(dataclasses.replace(base, method="m", protocol=protocol, per_person=rows.drop(columns="occlusion")),
                 tmp_path / "without")
    with pytest.raises(PlotError, match="no 'occlusion' column"):
        plot("agora-bins", [tmp_path / "without"], out=tmp_path / "plots")


def test_cli_help_names_every_template_and_plot_kind() -> None:
    from humanbench.cli import build_parser

    commands = next(a for a in build_parser()._actions if hasattr(a, "choices") and a.choices).choices
    template_help = next(a.help for a in commands["leaderboard"]._actions if a.dest == "template")
    kind_help = next(a.help for a in commands["plot"]._actions if a.dest == "kind")
    assert all(name in template_help for name in TEMPLATES) and all(kind in kind_help for kind in KINDS)


def test_cli_leaderboard(results, tmp_path, capsys) -> None:
    out = tmp_path / "board.csv"
    assert main(["leaderboard", str(results), "--format", "csv", "--out", str(out)]) == 0
    assert out.read_text().startswith("table,protocol,protocol_version") and str(out) in capsys.readouterr().out
    assert main(["leaderboard", str(results), "--protocol", "3dpw/spin"]) == 0
    assert "3dpw/cliff" not in capsys.readouterr().out
    assert main(["leaderboard"]) == 2 and "give a results folder" in capsys.readouterr().err
    assert main(["leaderboard", str(results), "--protocol", "nope/none"]) == 2


def test_demo_final_step_writes_the_leaderboard_and_a_per_joint_plot(records, results) -> None:
    """The step ``run_demo`` ends with (the demo itself runs in tests/test_cli.py), on evaluator records."""
    from humanbench.demo import _write_leaderboard

    written = _write_leaderboard(results.parent, [read_record(p) for p in records.values()])
    names = sorted(p.name for p in written)
    assert names == ["leaderboard.html", "leaderboard.md", "per-joint-3dpw-cliff-v1.pdf", "per-joint-3dpw-cliff-v1.png"]
    assert all(p.parent == results.parent / "leaderboard" and p.stat().st_size > 1000 for p in written)
    assert "opt@step=0 [synthetic]" in (results.parent / "leaderboard" / "leaderboard.md").read_text()
