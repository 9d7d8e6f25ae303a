#!/usr/bin/env bash
# Run the test suite twice: once with torch-scatter/torch-sparse (when installed) and once
# with them hidden (--no-extensions), so both the compiled and the pure-PyTorch paths are tested.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${VENV:-.venv}"
PYTHON="$VENV/bin/python"
[ -x "$PYTHON" ] || PYTHON=python
"$PYTHON" -m pytest -q -p no:cacheprovider "$@"
"$PYTHON" -m pytest -q -p no:cacheprovider --no-extensions -m "not slow" "$@"
