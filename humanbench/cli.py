"""The ``humanbench`` command line: a thin argparse layer over :mod:`humanbench.api`.

Every command is a function of the Python API; this module only parses options, prints
reports and turns failures into a message on stderr and a non-zero exit status. The API (and
with it torch) is imported only when a command runs, so ``--help`` answers at once.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Callable, Sequence

from humanbench import __version__
from humanbench.errors import HumanbenchError
from humanbench.training.config import add_arguments as add_train_arguments

BODY_MODELS_HELP = (
    "folder with SMPL/SMPL-X files in the smplx layout (smpl/SMPL_NEUTRAL.pkl, smplx/SMPLX_NEUTRAL.npz, ...); "
    "default: $HUMANBENCH_BODY_MODELS, else the embedded synthetic models (results are then marked synthetic)"
)


def _cmd_info(args: argparse.Namespace) -> int:
    from humanbench import api

    reports = api.info(body_models=args.body_models)
    print(api.format_info(reports))
    return 0 if all(r.ok for r in reports) else 1


def _cmd_inspect(args: argparse.Namespace) -> int:
    from humanbench import api

    report = api.inspect(args.shards, contact_sheet=args.contact_sheet, num_images=args.num_images, max_samples=args.max_samples)
    print(report.to_text())
    return 0


def _cmd_verify(args: argparse.Namespace) -> int:
    from humanbench import api

    report = api.verify(args.shards, deep=not args.quick)
    print(report)
    return 0 if report.ok else 1


def _cmd_convert(args: argparse.Namespace) -> int:
    from humanbench import api

    manifest = api.convert(args.dataset, args.root, args.out, split=args.split, workers=args.workers,
                           skip_bad=args.skip_bad, body_models=args.body_models, max_count=args.max_count)
    print(f"{args.out}: {manifest.total_count} samples in {len(manifest.shards)} shard(s); "
          f"{len(manifest.dropped)} item(s) dropped" + (" (listed in manifest.json)" if manifest.dropped else ""))
    return 0


def _cmd_eval(args: argparse.Namespace) -> int:
    from humanbench import api

    if (args.pred is None) == (args.renders is None):
        raise HumanbenchError("give exactly one of --pred FILE (mesh protocols: predictions) or --renders DIR "
                              "(avatar protocols: rendered images named <sample key>.png/.jpg)")
    if args.renders is not None:
        from humanbench.render_evaluation import DEFAULT_BATCH_SIZE, evaluate_renders, format_render_record

        record = evaluate_renders(args.protocol, args.shards, args.renders, out=args.out, method=args.method,
                                  body_models=args.body_models, device=args.device,
                                  batch_size=args.batch_size or DEFAULT_BATCH_SIZE)
        print(format_render_record(record))
        return 0
    from humanbench.protocols import AvatarProtocol, get_protocol

    if isinstance(get_protocol(args.protocol), AvatarProtocol):
        raise HumanbenchError(f"protocol {args.protocol} scores rendered images: give --renders DIR, not --pred")
    record = api.evaluate(args.protocol, args.shards, args.pred, out=args.out, method=args.method,
                          body_models=args.body_models, device=args.device, batch_size=args.batch_size or 64)
    print(api.format_record(record))
    return 0


def _cmd_train(args: argparse.Namespace) -> int:
    from humanbench import api
    from humanbench.training.config import config_from_args

    result = api.train(config_from_args(args), nproc=args.nproc)
    print(result.to_text())
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    from humanbench import api

    result = api.demo(out=args.out, body_models=args.body_models, frames=args.frames, seed=args.seed)
    print(result.to_text())
    return 0


def _cmd_leaderboard(args: argparse.Namespace) -> int:
    from humanbench import api

    text = api.leaderboard(args.results, protocol=args.protocol, published=args.published, fmt=args.format,
                           template=args.template)
    if args.out is None:
        sys.stdout.write(text)
    else:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text, encoding="utf-8")
        print(args.out)
    return 0


def _cmd_plot(args: argparse.Namespace) -> int:
    from humanbench import api

    steps = None if args.steps is None else [int(s) for s in args.steps.split(",")]
    for path in api.plot(args.kind, args.records, out=args.out, metric=args.metric, steps=steps):
        print(path)
    return 0


def _cmd_export_wild(args: argparse.Namespace) -> int:
    from humanbench import api

    for subject in api.export_wild(args.shards, args.out, variant=args.variant, person=args.person):
        print(f"{subject.folder}: {subject.frames} frames")
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The full ``humanbench`` parser with one sub-command per API function."""
    parser = argparse.ArgumentParser(
        prog="humanbench",
        description="Convert 3D-human datasets to shards, evaluate methods under exact named protocols, and report.",
    )
    parser.add_argument("--version", action="version", version=f"humanbench {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    info = sub.add_parser("info", help="load every body model found and report kind, gender, sizes and problems",
                          description="Load every SMPL/SMPL-X model, kid template and evaluation index set found in the "
                                      "body-model folder and report each; exits 1 if any file is broken or refused.")
    info.add_argument("--body-models", type=Path, default=None, metavar="DIR", help=BODY_MODELS_HELP)
    info.set_defaults(func=_cmd_info)

    inspect = sub.add_parser("inspect", help="counts, fields, value ranges and a contact sheet of a shard folder",
                             description="Stream a shard folder and print sample/person counts, every field with its "
                                         "shape and value range, and write a contact-sheet PNG with 2D joints drawn.")
    inspect.add_argument("shards", type=Path, metavar="DIR", help="shard folder (with manifest.json)")
    inspect.add_argument("--contact-sheet", type=Path, default=None, metavar="PNG",
                         help="where to write the contact sheet (default: DIR/contact_sheet.png)")
    inspect.add_argument("--num-images", type=int, default=16, metavar="N", help="images on the contact sheet (default 16)")
    inspect.add_argument("--max-samples", type=int, default=None, metavar="N",
                         help="stop the statistics after N samples (default: all)")
    inspect.set_defaults(func=_cmd_inspect)

    verify = sub.add_parser("verify", help="check a shard folder against its manifest (counts, sizes, sha256, members)",
                            description="Check that every shard named in manifest.json exists, has the recorded size, "
                                        "sha256 and sample count, and parses member by member; exits 1 on any problem.")
    verify.add_argument("shards", type=Path, metavar="DIR", help="shard folder (with manifest.json)")
    verify.add_argument("--quick", action="store_true", help="check sizes and hashes only, do not parse members")
    verify.set_defaults(func=_cmd_verify)

    convert = sub.add_parser("convert", help="convert a raw dataset, as downloaded, into shards",
                             description="Read a dataset in its original on-disk layout and write webdataset shards "
                                         "plus manifest.json. A killed run resumes where it stopped when re-run.")
    convert.add_argument("dataset", metavar="NAME", help="dataset name (see docs/datasets/)")
    convert.add_argument("--root", type=Path, required=True, metavar="RAW", help="folder of the dataset as downloaded")
    convert.add_argument("--out", type=Path, required=True, metavar="DIR", help="output shard folder")
    convert.add_argument("--split", required=True, help="split to convert (e.g. train, validation, test)")
    convert.add_argument("--workers", type=int, default=1, metavar="N", help="worker processes (default 1)")
    convert.add_argument("--skip-bad", action="store_true",
                         help="skip unreadable items, listing each with its reason in the manifest, instead of stopping")
    convert.add_argument("--max-count", type=int, default=1000, metavar="N", help="samples per shard (default 1000)")
    convert.add_argument("--body-models", type=Path, default=None, metavar="DIR", help=BODY_MODELS_HELP)
    convert.set_defaults(func=_cmd_convert)

    evaluate = sub.add_parser("eval", help="evaluate predictions on GT shards under a named protocol",
                              description="Score a method's predictions against converted GT shards under one named, "
                                          "versioned protocol and write a result record (JSON + per-person parquet). "
                                          "Runs under torchrun too: every sample is counted exactly once.")
    evaluate.add_argument("--protocol", required=True, metavar="ID",
                          help="protocol id, e.g. 3dpw/spin (see docs/protocols.md for the list)")
    evaluate.add_argument("--shards", type=Path, required=True, metavar="DIR", help="GT shard folder (with manifest.json)")
    evaluate.add_argument("--pred", type=Path, default=None, metavar="FILE",
                          help="predictions for mesh protocols: an .npz or .parquet file (docs/predictions.md), or an AGORA-kit "
                               "folder / .zip of <img>_personId_<k>.pkl files")
    evaluate.add_argument("--renders", type=Path, default=None, metavar="DIR",
                          help="folder of rendered images named <sample key>.png/.jpg; avatar protocols "
                               "(zju-mocap/*, neuman/hugs)")
    evaluate.add_argument("--out", type=Path, default=Path("results"), metavar="DIR",
                          help="folder for the result record (default ./results)")
    evaluate.add_argument("--method", default=None, help="method name in the record (default: the predictions file stem)")
    evaluate.add_argument("--body-models", type=Path, default=None, metavar="DIR", help=BODY_MODELS_HELP)
    evaluate.add_argument("--device", default=None, help="torch device (default: cuda when available, else cpu)")
    evaluate.add_argument("--batch-size", type=int, default=None, metavar="N",
                          help="people per batch (default 64), or images per batch with --renders (default 8)")
    evaluate.set_defaults(func=_cmd_eval)

    train = sub.add_parser("train", help="train a method on shards with the shared DDP harness",
                           description="Train a method (e.g. the reference HMR regressor) on shard folders in one or "
                                       "more processes, evaluating it under a protocol. A run found in --out resumes "
                                       "from its newest checkpoint. See docs/training.md.")
    add_train_arguments(train)
    train.add_argument("--nproc", type=int, default=1, metavar="N",
                       help="local processes to start (default 1); with torchrun, start 'python -m humanbench.training' instead")
    train.set_defaults(func=_cmd_train)

    export = sub.add_parser("export-wild", help="write HumanNeRF / MonoHuman input folders from shards",
                            description="Write <subject>/images, <subject>/masks and metadata.json in the layout "
                                        "HumanNeRF (or MonoHuman) reads, one subject per sequence of the shards, so "
                                        "upstream code can train on humanbench data.")
    export.add_argument("shards", type=Path, metavar="DIR", help="shard folder (e.g. a converted wild clip)")
    export.add_argument("--out", type=Path, required=True, metavar="DIR", help="folder to write the subjects into")
    export.add_argument("--variant", choices=("humannerf", "monohuman"), default="humannerf",
                        help="metadata.json flavour: HumanNeRF's flat poses or MonoHuman's nested ones (default humannerf)")
    export.add_argument("--person", type=int, default=0, metavar="P",
                        help="which person of multi-person samples to export (default 0)")
    export.set_defaults(func=_cmd_export_wild)

    demo = sub.add_parser("demo", help="run the pipeline on the built-in synthetic world and print where outputs are",
                          description="Synthesize a small dataset with the body model, render it, write shards, "
                                      "verify and inspect them.")
    demo.add_argument("--out", type=Path, default=Path("humanbench-demo"), metavar="DIR",
                      help="output folder (default ./humanbench-demo)")
    demo.add_argument("--body-models", type=Path, default=None, metavar="DIR", help=BODY_MODELS_HELP)
    demo.add_argument("--frames", type=int, default=48, metavar="N", help="frames to synthesize (default 48)")
    demo.add_argument("--seed", type=int, default=0, help="random seed of the synthetic world (default 0)")
    demo.set_defaults(func=_cmd_demo)

    board = sub.add_parser("leaderboard", help="tables from result records, one per protocol (md, tex, csv, html)",
                           description="Tabulate result records, one table per protocol id, version and data split "
                                       "(never mixed), best value per column marked, reported and reproduced rows "
                                       "told apart, synthetic results marked. See docs/leaderboards.md.")
    board.add_argument("results", nargs="*", type=Path, metavar="RESULTS",
                       help="folders of result records (searched recursively) or record .json files")
    board.add_argument("--protocol", default=None, metavar="ID", help="only this protocol id (e.g. 3dpw/cliff)")
    board.add_argument("--published", action="store_true",
                       help="add the published numbers shipped with humanbench (each with its citation)")
    board.add_argument("--format", choices=("md", "tex", "csv", "html"), default="md",
                       help="md (default), tex (booktabs), csv or html (one self-contained, sortable page)")
    board.add_argument("--template", default=None, metavar="NAME",
                       help="lay the tables out as a paper table (md or tex): agora (AiOS Table 1 columns), ubody and "
                            "ehf (PA-PVE | PVE, each All/Hands/Face), 3dpw (MPJPE, PA-MPJPE, PVE), zju-mocap "
                            "(PSNR, SSIM, LPIPS*)")
    board.add_argument("--out", type=Path, default=None, metavar="FILE", help="write to FILE (default: stdout)")
    board.set_defaults(func=_cmd_leaderboard)

    plot = sub.add_parser("plot", help="plots from result records (PNG and PDF)",
                          description="Draw a plot from result records alone; all records must share protocol, "
                                      "version and data. See docs/leaderboards.md.")
    plot.add_argument("kind", metavar="KIND", help="per-joint, skeleton, cdf, tto (error against optimisation step) "
                                                   "or agora-bins")
    plot.add_argument("records", nargs="+", type=Path, metavar="RECORDS",
                      help="record .json files or folders of records, in the order to draw them")
    plot.add_argument("--out", type=Path, default=Path("."), metavar="DIR", help="output folder (default .)")
    plot.add_argument("--metric", default=None, help="metric to draw (default: the protocol's first; tto: all)")
    plot.add_argument("--steps", default=None, metavar="N,N,...",
                      help="tto: optimisation step of each record, in order (default: from methods named X@step=N)")
    plot.set_defaults(func=_cmd_plot)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``humanbench`` console script."""
    args = build_parser().parse_args(argv)
    func: Callable[[argparse.Namespace], int] = args.func
    try:
        return func(args)
    except HumanbenchError as err:
        print(f"humanbench {args.command}: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
