"""Build a model (an :class:`~hgn_pyg.models.HGN`) from a ``MODEL`` configuration section and its graphs.

The one place where a model is made from configuration: the training pipeline
(:func:`hgn_pyg.engine.build.build_model`) and checkpoint loading (:meth:`HGN.from_checkpoint`)
both end in :func:`build_model` (through :func:`hgn_pyg.models.hgn.build_hgn`), so every model
option a configuration gains reaches both. The model class is an argument, so this module does not
import :mod:`hgn_pyg.models.hgn` (which imports it).
"""
from __future__ import annotations

import dataclasses
import inspect
import logging
from typing import Any, Dict, Mapping, Optional, Union

from hgn_pyg.errors import ConfigError
from hgn_pyg.graphs.skeleton import skeleton_graph

__all__ = ["build_model", "model_options"]

log = logging.getLogger(__name__)

#: HGN arguments that are graphs or derived data, never configuration values.
_NOT_OPTIONS = ("self", "skeleton", "hierarchy", "joint_assignment")


def model_options(model_cls: type, model_section: Union[Mapping[str, Any], Any]) -> Dict[str, Any]:
    """The entries of a ``MODEL`` section (a mapping or the config dataclass) that are
    ``model_cls`` (:class:`HGN`) constructor arguments; the others (``name``, ``hierarchy_levels``,
    ``weight_path``, ...) are left out."""
    opts = dataclasses.asdict(model_section) if dataclasses.is_dataclass(model_section) else dict(model_section)
    params = inspect.signature(model_cls.__init__).parameters
    out = {k: v for k, v in opts.items() if k in params and k not in _NOT_OPTIONS}
    if "mesh_levels" in out and isinstance(out["mesh_levels"], list):
        out["mesh_levels"] = tuple(out["mesh_levels"])
    return out


def build_model(model_cls: type, model_section: Union[Mapping[str, Any], Any], hierarchy,
                joint_regressor: Optional[Any] = None, skeleton: Union[str, Any] = "h36m"):
    """A ``model_cls`` (:class:`HGN`) as ``model_section`` describes it, on ``hierarchy``.
    Args:
        model_cls: the model class (its constructor takes ``(skeleton, hierarchy, **options)``).
        model_section: the ``MODEL`` section (mapping or :class:`~hgn_pyg.config.ModelConfig`).
        hierarchy: the :class:`~hgn_pyg.graphs.GraphHierarchy` of the body mesh.
        joint_regressor: vertex->joint weights ``[J, V]``; needed for ``fusion: pool``.
        skeleton: joint-set name (see :data:`hgn_pyg.graphs.SKELETONS`) or a skeleton ``Data``.
    """
    kwargs = model_options(model_cls, model_section)
    if kwargs.get("fusion") == "pool":
        if joint_regressor is None:
            raise ConfigError("MODEL.fusion: 'pool' needs a joint regressor (vertex->joint weights [J, V])")
        kwargs["joint_assignment"] = joint_regressor
    graph = skeleton_graph(skeleton) if isinstance(skeleton, str) else skeleton
    return model_cls(graph, hierarchy, **kwargs)
