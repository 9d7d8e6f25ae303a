#!/usr/bin/env bash
# Run the test suite twice: once with torch-scatter/torch-sparse (when installed) and once
# with them hidden (--no-extensions), so both the compiled and the pure-PyTorch paths are tested.
# The extensions are installed by `WITH_EXTENSIONS=1 bash scripts/setup_env.sh`; without them the
# first run tests the pure-PyTorch path only (said below), and REQUIRE_EXTENSIONS=1 (CI) makes
# that an error.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${VENV:-.venv}"
PYTHON="$VENV/bin/python"
[ -x "$PYTHON" ] || PYTHON=python
if "$PYTHON" -c "import torch_scatter, torch_sparse" >/dev/null 2>&1; then
  echo "run_tests: torch-scatter/torch-sparse installed: testing with them, then without (--no-extensions)"
elif [ "${REQUIRE_EXTENSIONS:-0}" = "1" ]; then
  echo "run_tests: REQUIRE_EXTENSIONS=1 but torch-scatter/torch-sparse are not importable by $PYTHON" \
       "(install them: WITH_EXTENSIONS=1 bash scripts/setup_env.sh)" >&2
  exit 2
else
  echo "run_tests: torch-scatter/torch-sparse NOT installed: only the pure-PyTorch paths are tested" \
       "(WITH_EXTENSIONS=1 bash scripts/setup_env.sh installs them)"
fi
"$PYTHON" -m pytest -q -p no:cacheprovider "$@"
"$PYTHON" -m pytest -q -p no:cacheprovider --no-extensions -m "not slow" "$@"
