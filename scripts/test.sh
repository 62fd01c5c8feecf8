#!/usr/bin/env bash
# Set up (or reuse) the environment and run the whole test suite. Exits non-zero when a test fails.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$repo/scripts/setup.sh"
cd "$repo"
workers="$("$HUMANBENCH_PYTHON" -c 'import os; print(min(4, os.cpu_count() or 1))')"
exec "$HUMANBENCH_PYTHON" -m pytest -n "$workers" --durations=15 "$@"
