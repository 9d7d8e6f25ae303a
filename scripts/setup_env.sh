#!/usr/bin/env bash
# Create (or update) the project's virtual environment in .venv and install hgn_pyg
# with its PyG extensions and test tools. CPU build of PyTorch 2.13.0; torch-scatter and
# torch-sparse are compiled from source when pip has no wheel for them (~20 min the
# first time on 2 cores; pip caches the built wheels, so later installs are quick).
#   VENV=path    use another environment folder (default: .venv)
#   NO_EXTENSIONS=1   skip torch-scatter/torch-sparse (hgn_pyg falls back to pure PyTorch)
#   TORCH_INDEX_URL=URL   where torch==2.13.0 comes from (PyTorch's CPU or CUDA wheel index);
#                     default: pip's configured indexes (this project's machines hold a CPU wheel)
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${VENV:-.venv}"
PY="${PYTHON:-python3}"
if [ ! -x "$VENV/bin/python" ]; then
  "$PY" -m venv "$VENV"
fi
. "$VENV/bin/activate"
python -m pip install --quiet --upgrade pip "setuptools>=64" wheel
# Pin torch first so that nothing later resolves an unpinned (CUDA) torch.
python -m pip install --quiet "torch==2.13.0" ${TORCH_INDEX_URL:+--index-url "$TORCH_INDEX_URL"}
if [ "${NO_EXTENSIONS:-0}" = "1" ]; then
  python -m pip install --quiet -e ".[dev]"
else
  MAX_JOBS="${MAX_JOBS:-2}" python -m pip install --quiet --no-build-isolation -e ".[sparse,dev]"
fi
python - <<'PY'
import torch, torch_geometric
try:
    import torch_scatter, torch_sparse  # noqa: F401
    ext = "with torch-scatter/torch-sparse"
except ImportError:
    ext = "without torch-scatter/torch-sparse (pure-PyTorch fallback)"
print(f"hgn_pyg environment ready: torch {torch.__version__}, torch_geometric {torch_geometric.__version__}, {ext}")
PY
