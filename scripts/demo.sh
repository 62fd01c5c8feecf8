#!/usr/bin/env bash
# Set up (or reuse) the environment and run `humanbench demo` on the built-in synthetic data.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$repo/scripts/setup.sh"
exec "$(dirname "$HUMANBENCH_PYTHON")/humanbench" demo "$@"
