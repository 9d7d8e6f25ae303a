"""Crash-safe checkpoints and the random-number state needed for exact resumption.

:func:`save_checkpoint` writes to a temporary file in the target folder, flushes
and ``fsync``\\ s it, then ``os.replace``\\ s it over the destination (and syncs the
folder), so a process killed at any moment leaves either the previous complete
checkpoint or the new complete one — never a truncated file.

A checkpoint of ours is a dict::

    {"format": "hgn_pyg", "version": 1, "epoch": int, "model": state_dict,
     "optimizer": ..., "scheduler": ..., "best_metric": float, "best_epoch": int,
     "rng": capture_rng_state(...), "config": Config.to_dict(), "history": [...],
     "mean_pose": Tensor [17, 3] (train mean pose, the baseline), ...}

Everything in it is loadable with ``torch.load(weights_only=True)``: the NumPy
and Python RNG states are stored as tensors / plain tuples.

Test hook: when the environment variable ``HGN_PYG_TEST_CKPT_SLEEP`` holds a number
of seconds, :func:`save_checkpoint` sleeps that long between writing the temporary
file and replacing an *existing* destination (used by the tests to kill a run in the
middle of overwriting its last checkpoint).
"""
from __future__ import annotations

import logging
import os
import random
import time
from pathlib import Path
from typing import Any, Dict, Optional, Union

import numpy as np
import torch

from hgn_pyg.errors import CheckpointError
from hgn_pyg.io import atomic_write

__all__ = [
    "save_checkpoint",
    "load_checkpoint",
    "capture_rng_state",
    "restore_rng_state",
    "is_official_checkpoint",
    "strip_module_prefix",
]

log = logging.getLogger(__name__)

PathLike = Union[str, os.PathLike]
_SLEEP_ENV = "HGN_PYG_TEST_CKPT_SLEEP"


def save_checkpoint(state: Dict[str, Any], path: PathLike) -> Path:
    """Atomically write ``state`` (``torch.save``) to ``path``; returns the path.

    The temporary file lives in the same folder (``.<name>.tmp-XXXX``) so the final
    ``os.replace`` is atomic on POSIX file systems.
    """
    path = Path(path)

    def test_hook() -> None:
        delay = os.environ.get(_SLEEP_ENV)
        if delay and path.exists():
            log.debug("test hook: sleeping %s s before replacing %s", delay, path)
            time.sleep(float(delay))

    return atomic_write(path, lambda fh: torch.save(state, fh), before_replace=test_hook,
                        sync_dir=True)


def load_checkpoint(path: PathLike, map_location: Union[str, torch.device] = "cpu") -> Dict[str, Any]:
    """Load a checkpoint written by :func:`save_checkpoint` (or a published one).

    Uses ``torch.load(weights_only=True)``: no arbitrary code is run.  Raises
    :class:`CheckpointError` naming the file when it is missing, truncated or not a
    dict of tensors/plain values.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: checkpoint file not found")
    try:
        obj = torch.load(str(path), map_location=map_location, weights_only=True)
    except Exception as exc:  # torch raises many types for corrupt files
        msg = str(exc).strip().splitlines()[0] if str(exc).strip() else exc.__class__.__name__
        raise CheckpointError(f"{path}: cannot read checkpoint ({exc.__class__.__name__}: {msg[:200]})") from None
    if not isinstance(obj, dict):
        raise CheckpointError(f"{path}: expected a dict in the checkpoint, got {type(obj).__name__}")
    return obj


def is_official_checkpoint(ckpt: Dict[str, Any]) -> bool:
    """True for the published layout: ``model_state_dict`` with the published parameter names."""
    sd = ckpt.get("model_state_dict")
    if not isinstance(sd, dict):
        return False
    keys = [k[7:] if k.startswith("module.") else k for k in sd]
    return any(k.startswith("gconv_input.") for k in keys) and any(k.startswith("gconv_output") for k in keys)


def strip_module_prefix(state_dict: Dict[str, Any]) -> Dict[str, Any]:
    """Remove a ``module.`` prefix (DataParallel / DDP) from every key."""
    if all(k.startswith("module.") for k in state_dict):
        return {k[7:]: v for k, v in state_dict.items()}
    return dict(state_dict)


def capture_rng_state(generators: Optional[Dict[str, torch.Generator]] = None) -> Dict[str, Any]:
    """The state of Python's, NumPy's and torch's (CPU and CUDA) global RNGs, plus named generators.

    Stored as tensors / plain tuples only, so ``torch.load(weights_only=True)`` reads it back.
    """
    version, pystate, gauss = random.getstate()
    name, keys, pos, has_gauss, cached = np.random.get_state()
    state: Dict[str, Any] = {
        "python": (int(version), torch.tensor(pystate, dtype=torch.int64), gauss),
        "numpy": (str(name), torch.from_numpy(np.asarray(keys, dtype=np.int64)), int(pos), int(has_gauss),
                  float(cached)),
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "generators": {k: g.get_state() for k, g in (generators or {}).items()},
    }
    return state


def restore_rng_state(state: Dict[str, Any], generators: Optional[Dict[str, torch.Generator]] = None) -> None:
    """Inverse of :func:`capture_rng_state` (named generators are restored in place)."""
    try:
        version, pystate, gauss = state["python"]
        random.setstate((int(version), tuple(int(v) for v in pystate.tolist()), gauss))
        name, keys, pos, has_gauss, cached = state["numpy"]
        np.random.set_state((name, keys.numpy().astype(np.uint32), int(pos), int(has_gauss), float(cached)))
        torch.set_rng_state(state["torch"].cpu())
        cuda = state.get("cuda") or []
        if cuda and torch.cuda.is_available() and len(cuda) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all([c.cpu() for c in cuda])
        for k, g in (generators or {}).items():
            if k in state.get("generators", {}):
                g.set_state(state["generators"][k].cpu())
    except (KeyError, TypeError, ValueError, RuntimeError) as exc:
        raise CheckpointError(f"checkpoint RNG state is malformed ({exc.__class__.__name__}: {exc})") from None
