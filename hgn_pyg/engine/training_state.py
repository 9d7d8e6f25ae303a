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
import math
import os
import random
import time
from pathlib import Path
from typing import Any, Dict, Optional, Union

import numpy as np
import torch

from hgn_pyg.errors import CheckpointError
from hgn_pyg.io import atomic_write
# the checkpoint reader and the published-layout rules live with the model (one home)
from hgn_pyg.models.checkpoint_io import is_official_checkpoint, load_checkpoint_file, strip_module_prefix

__all__ = [
    "save_checkpoint",
    "load_checkpoint",
    "capture_rng_state",
    "restore_rng_state",
    "is_official_checkpoint",
    "strip_module_prefix",
    "check_training_fields",
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

    The file is read by :func:`hgn_pyg.models.official.load_checkpoint_file` (the one
    checkpoint reader: ``torch.load(weights_only=True)``, no code runs) and raises
    :class:`CheckpointError` naming the file when it is missing, not a PyTorch checkpoint,
    truncated or not a dict of tensors/plain values.
    """
    return load_checkpoint_file(path, map_location=map_location)


def _is_int(v: Any) -> bool:
    return isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_))


def _is_real(v: Any) -> bool:
    return isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, (bool, np.bool_))


def check_training_fields(state: Dict[str, Any], path: str = "checkpoint") -> None:
    """Check the types of the training fields of one of our checkpoints (those present):
    ``epoch``/``best_epoch`` integers, ``best_metric`` a number (not NaN), ``history`` a list of
    dicts, ``mean_pose`` a finite ``[J, 3]`` tensor or None, ``model``/``optimizer``/``scheduler``/
    ``rng``/``config`` dicts. Raises :class:`CheckpointError` naming the field and what it holds."""
    def bad(key: str, want: str) -> CheckpointError:
        v = state[key]
        shown = (f"tensor {list(v.shape)} {v.dtype}" if isinstance(v, torch.Tensor)
                 else f"{type(v).__name__} {v!r}"[:80])
        return CheckpointError(f"{path}: field {key!r} must be {want}, got {shown}")

    for key in ("epoch", "best_epoch"):
        if key in state and not _is_int(state[key]):
            raise bad(key, "an integer")
    if "best_metric" in state and (not _is_real(state["best_metric"]) or math.isnan(float(state["best_metric"]))):
        raise bad("best_metric", "a number")
    if "history" in state and state["history"] is not None and (
            not isinstance(state["history"], list) or not all(isinstance(h, dict) for h in state["history"])):
        raise bad("history", "a list of per-epoch dicts")
    for key in ("model", "optimizer", "scheduler", "rng", "config"):
        if key in state and not isinstance(state[key], dict):
            raise bad(key, "a dict")
    mp = state.get("mean_pose")
    if mp is not None and (not isinstance(mp, torch.Tensor) or mp.dim() != 2 or mp.shape[-1] != 3
                           or not mp.is_floating_point() or not bool(torch.isfinite(mp).all())):
        raise bad("mean_pose", "a finite float tensor [J, 3] or None")


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
