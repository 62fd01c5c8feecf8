#!/usr/bin/env bash
# Create (or reuse) humanbench's virtual environment and install the package with its dev extras.
# The environment lives outside the checkout so fresh clones (CI) reuse it:
#   ${HUMANBENCH_VENV:-$HOME/.cache/humanbench/venv-py<major.minor>}
# Sourced by scripts/test.sh and scripts/demo.sh; exports HUMANBENCH_PYTHON.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
python="${PYTHON:-python3}"
pyver="$("$python" -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")')"
venv="${HUMANBENCH_VENV:-$HOME/.cache/humanbench/venv-py$pyver}"
if [ ! -x "$venv/bin/python" ]; then
    echo "humanbench: creating virtual environment $venv" >&2
    "$python" -m venv "$venv"
    "$venv/bin/python" -m pip install --quiet --upgrade pip
fi
# Re-running is cheap when everything is already installed; a changed pyproject installs what is new.
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check -e "$repo[dev]"
export HUMANBENCH_PYTHON="$venv/bin/python"
