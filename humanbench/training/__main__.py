"""``python -m humanbench.training``: one process of a training run (what torchrun or ``--nproc`` starts).

Either the full ``humanbench train`` options (without ``--nproc``; rank 0 prints the summary at
the end), or ``--config FILE`` with a saved :class:`~humanbench.training.config.TrainConfig`, as
the local launcher starts its processes (the launcher prints the summary then).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Sequence

from humanbench.errors import HumanbenchError
from humanbench.training.config import TrainConfig, add_arguments, config_from_args


def main(argv: Sequence[str] | None = None) -> int:
    """Parse the options, train this process's part of the run, return the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    launched = argv[:1] == ["--config"]
    parser = argparse.ArgumentParser(prog="python -m humanbench.training",
                                     description="One process of a humanbench training run; start it with torchrun.")
    if launched:
        parser.add_argument("--config", type=Path, required=True, help="train_config.json of the run")
    else:
        add_arguments(parser)
    args = parser.parse_args(argv)
    from humanbench.training.harness import train

    try:
        config = TrainConfig.from_json(args.config.read_text()) if launched else config_from_args(args)
        result = train(config)
    except HumanbenchError as err:
        print(f"humanbench train: error: {err}", file=sys.stderr)
        return 2
    if not launched and os.environ.get("RANK", "0") == "0":
        print(result.to_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
