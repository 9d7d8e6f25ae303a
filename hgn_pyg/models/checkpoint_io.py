"""Reading checkpoint files: the one reader of checkpoints in hgn_pyg (ours, the published
``final.pth.tar``, anything a user points a tool at), and the helpers every checkpoint layout
shares (the ``module.`` prefix of DataParallel, telling the published layout from ours, the
state dict inside a file).

A leaf of :mod:`hgn_pyg.models`: the published key map (:mod:`~hgn_pyg.models.official`), the
self-describing checkpoints (:mod:`~hgn_pyg.models.checkpoint`) and the training resume state
(:mod:`hgn_pyg.engine.training_state`) read files through :func:`load_checkpoint_file`.
"""
from __future__ import annotations

import os
import re
import zipfile
from collections import OrderedDict
from typing import Mapping, Optional

import numpy as np
import torch
from torch import Tensor

from hgn_pyg.errors import CheckpointError

__all__ = ["load_checkpoint_file", "strip_module_prefix", "is_official_checkpoint", "read_checkpoint"]


def _numpy_safe_globals():
    """The NumPy classes a training script's checkpoint may hold next to the weights (NumPy
    scalars such as a best error or an epoch): reconstructors of arrays, scalars and dtypes only.
    Files written with NumPy 1.x (the published environment) name ``numpy.core.*``, NumPy 2 names
    ``numpy._core.*``; both spellings map to the installed module."""
    core = getattr(np, "_core", None) or getattr(np, "core")
    safe = [np.dtype, np.ndarray, core.multiarray.scalar, core.multiarray._reconstruct]
    safe += [type(np.dtype(t)) for t in (np.float64, np.float32, np.float16, np.int64, np.int32,
                                         np.int16, np.int8, np.uint8, np.bool_)]
    for name in ("scalar", "_reconstruct"):
        for mod in ("numpy.core.multiarray", "numpy._core.multiarray"):
            safe.append((getattr(core.multiarray, name), f"{mod}.{name}"))
    return safe


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:200] if text else type(exc).__name__


def _refused_global(exc: BaseException) -> Optional[str]:
    """The global that ``torch.load(weights_only=True)`` refused, if that is what ``exc`` says."""
    m = re.search(r"(?:Unsupported global|GLOBAL)[:\s]+(?:GLOBAL\s+)?([\w.]+)", str(exc))
    return m.group(1) if m else None


def load_checkpoint_file(path, map_location=None) -> dict:
    """Read a checkpoint file: the one reader of checkpoints in hgn_pyg (ours, the published
    ``final.pth.tar``, anything a user points a tool at).

    ``torch.load(weights_only=True)`` admits tensors and plain Python values only, plus the NumPy
    scalar/array reconstructors a published training script stores (:func:`_numpy_safe_globals`);
    nothing in the file can run code.

    Raises:
        CheckpointError: one line naming the file: not found, not a PyTorch checkpoint at all,
            truncated, holding a class that is refused (named), or not a dict at the top level.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise CheckpointError(f"{path}: checkpoint file not found")
    try:
        with open(path, "rb") as fh:
            head = fh.read(4)
    except OSError as exc:
        raise CheckpointError(f"{path}: cannot read the checkpoint ({_first_line(exc)})") from None
    is_zip = zipfile.is_zipfile(path)
    if not is_zip and not head.startswith(b"\x80"):  # neither torch's zip nor a legacy pickle
        raise CheckpointError(f"{path}: not a PyTorch checkpoint (neither a torch.save zip archive "
                              "nor a pickle stream)")
    if is_zip:
        try:
            with zipfile.ZipFile(path) as zf:
                if not any(n.endswith("data.pkl") for n in zf.namelist()):
                    raise CheckpointError(f"{path}: not a PyTorch checkpoint (a zip archive without "
                                          "the data.pkl of torch.save)")
        except zipfile.BadZipFile as exc:
            raise CheckpointError(f"{path}: truncated or corrupt checkpoint ({_first_line(exc)})") from None
    try:
        with torch.serialization.safe_globals(_numpy_safe_globals()):
            obj = torch.load(path, map_location=map_location or "cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - torch raises many types for bad files
        refused = _refused_global(exc)
        if refused:
            raise CheckpointError(f"{path}: refused to load {refused} (a checkpoint may hold only "
                                  "tensors, plain Python values and NumPy scalars)") from None
        if isinstance(exc, (EOFError, RuntimeError)) or "EOF" in str(exc) or "zip" in str(exc).lower():
            raise CheckpointError(f"{path}: truncated or corrupt checkpoint ({type(exc).__name__}: "
                                  f"{_first_line(exc).split('. ')[0]})") from None
        raise CheckpointError(f"{path}: not a readable PyTorch checkpoint ({type(exc).__name__}: "
                              f"{_first_line(exc).split('. ')[0]})") from None
    if not isinstance(obj, dict):
        raise CheckpointError(f"{path}: expected a dict at the top of the checkpoint, got {type(obj).__name__}")
    return obj


def strip_module_prefix(state: Mapping, source: str = "checkpoint") -> "OrderedDict":
    """``state`` with the ``module.`` prefix of (Distributed)DataParallel removed from every key
    that has it; two keys that become equal raise :class:`CheckpointError`."""
    out: "OrderedDict" = OrderedDict()
    for key, value in state.items():
        key = str(key)
        short = key[len("module."):] if key.startswith("module.") else key
        if short in out:
            raise CheckpointError(f"{source}: key {short!r} appears with and without the 'module.' prefix")
        out[short] = value
    return out


def is_official_checkpoint(ckpt: Mapping) -> bool:
    """True for the published layout: ``model_state_dict`` with the published parameter names."""
    sd = ckpt.get("model_state_dict") if isinstance(ckpt, Mapping) else None
    if not isinstance(sd, Mapping):
        return False
    keys = [k[7:] if str(k).startswith("module.") else str(k) for k in sd]
    return any(k.startswith("gconv_input.") for k in keys) and any(k.startswith("gconv_output") for k in keys)


def read_checkpoint(checkpoint, source: Optional[str] = None) -> "OrderedDict[str, Tensor]":
    """The model state dict inside ``checkpoint``, keys without a ``module.`` prefix.

    Args:
        checkpoint: a path (``final.pth.tar``), a loaded checkpoint dict holding
            ``model_state_dict`` (or ``state_dict``, or ours: ``model``), or a bare state dict.
        source: name used in error messages (default: the path, or ``"checkpoint"``).

    Raises:
        CheckpointError: unreadable file, no state dict inside, or non-tensor entries.
    """
    if isinstance(checkpoint, (str, os.PathLike)):
        source = source or os.fspath(checkpoint)
        checkpoint = load_checkpoint_file(checkpoint)
    source = source or "checkpoint"
    if not isinstance(checkpoint, Mapping):
        raise CheckpointError(f"{source}: expected a dict, got {type(checkpoint).__name__}")
    state = checkpoint
    for key in ("model_state_dict", "state_dict", "model"):
        if key in checkpoint and isinstance(checkpoint[key], Mapping):
            state = checkpoint[key]
            break
    bad = [str(k) for k, v in state.items() if not isinstance(v, Tensor)]
    if bad or not state:
        keys = ", ".join(sorted(map(str, checkpoint.keys()))[:20])
        what = (f"non-tensor entries {', '.join(bad[:20])}" if bad else "no entries")
        raise CheckpointError(
            f"{source}: not a model state dict ({what}); top-level keys: {keys or 'none'}")
    return strip_module_prefix(state, source)
