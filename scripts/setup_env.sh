#!/usr/bin/env bash
# Create (or update) the project's virtual environment in .venv and install hgn_pyg with its
# test tools. CPU build of PyTorch 2.13.0 by default.
#
# torch-scatter/torch-sparse (PyG's compiled extensions) are optional. pip has no wheel for
# them here, so installing them means compiling both from source (about 24 minutes on 2 cores
# the first time). On CPU hgn_pyg does not need them: its sparse kernel runs torch.sparse there,
# measured 1.0-2x faster than torch_sparse (benchmarks/README.md). So by default they are
# installed only where a CUDA GPU is present (where torch_sparse is the default kernel):
#   WITH_EXTENSIONS=auto   (default) install them when `nvidia-smi -L` lists a GPU
#   WITH_EXTENSIONS=1      always install them (the test command and CI do: both paths tested)
#   WITH_EXTENSIONS=0      never (NO_EXTENSIONS=1 is the same, kept for old instructions)
#   VENV=path              another environment folder (default: .venv)
#   TORCH_INDEX_URL=URL    where torch==2.13.0 comes from (PyTorch's CPU or CUDA wheel index);
#                          default: pip's configured indexes (this project's machines hold a CPU wheel)
#   MAX_JOBS=n             compiler jobs when building the extensions (default 2)
#   SETUP_DRY_RUN=1        print the extensions decision and stop (changes nothing; for tests)
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${VENV:-.venv}"
PY="${PYTHON:-python3}"

WITH_EXTENSIONS="${WITH_EXTENSIONS:-auto}"
if [ "${NO_EXTENSIONS:-0}" = "1" ]; then
  WITH_EXTENSIONS=0
fi
case "$WITH_EXTENSIONS" in
  auto)
    if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L 2>/dev/null | grep -q '^GPU'; then
      WITH_EXTENSIONS=1
      echo "setup_env: CUDA GPU found: installing torch-scatter/torch-sparse (WITH_EXTENSIONS=0 skips them)"
    else
      WITH_EXTENSIONS=0
      echo "setup_env: no CUDA GPU: skipping torch-scatter/torch-sparse (not needed on CPU; WITH_EXTENSIONS=1 installs them)"
    fi
    ;;
  0|1) ;;
  *) echo "setup_env: WITH_EXTENSIONS must be auto, 0 or 1, got '$WITH_EXTENSIONS'" >&2; exit 2 ;;
esac
if [ "${SETUP_DRY_RUN:-0}" = "1" ]; then
  echo "setup_env: dry run: WITH_EXTENSIONS=$WITH_EXTENSIONS"
  exit 0
fi

if [ ! -x "$VENV/bin/python" ]; then
  "$PY" -m venv "$VENV"
fi
. "$VENV/bin/activate"
python -m pip install --quiet --upgrade pip "setuptools>=64" wheel
# Pin torch first so that nothing later resolves an unpinned (CUDA) torch.
python -m pip install --quiet "torch==2.13.0" ${TORCH_INDEX_URL:+--index-url "$TORCH_INDEX_URL"}
if [ "$WITH_EXTENSIONS" = "1" ]; then
  # --no-build-isolation: the extensions compile against the torch installed above.
  MAX_JOBS="${MAX_JOBS:-2}" python -m pip install --quiet --no-build-isolation -e ".[sparse,dev,onnx]"
else
  python -m pip install --quiet -e ".[dev,onnx]"
fi
python - <<'PY'
import torch, torch_geometric
try:
    import torch_scatter, torch_sparse  # noqa: F401
    ext = "with torch-scatter/torch-sparse"
except ImportError:
    ext = "without torch-scatter/torch-sparse (pure-PyTorch paths; on CPU these are hgn_pyg's defaults anyway)"
print(f"hgn_pyg environment ready: torch {torch.__version__}, torch_geometric {torch_geometric.__version__}, {ext}")
PY
