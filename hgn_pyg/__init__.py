"""hgn_pyg: Hierarchical Graph Networks for 3D human pose estimation in PyTorch Geometric.

The public API at the top::

    from hgn_pyg import HGN, Lifter, load_model

:class:`~hgn_pyg.models.HGN` (the network), :func:`~hgn_pyg.models.load_model` (a model and its
conventions from a checkpoint alone) and :class:`~hgn_pyg.inference.Lifter` (2D keypoints -> 3D
joints) are imported on first use, so ``import hgn_pyg`` stays cheap and lifting never loads the
training stack. The package is layered (graphs -> nn -> models -> data -> engine -> inference ->
cli); see ``tests/test_layering.py``.
"""
import importlib
from typing import Any

__version__ = "0.1.0"

_EXPORTS = {"HGN": "hgn_pyg.models", "load_model": "hgn_pyg.models", "Lifter": "hgn_pyg.inference"}

__all__ = ["__version__", *_EXPORTS]


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'hgn_pyg' has no attribute {name!r}")
