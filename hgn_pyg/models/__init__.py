"""HGN models.

* :class:`HGN` / :class:`HGNOutput` -- the three-branch network (docs/published_model.md §3) built from
  :mod:`hgn_pyg.nn` layers; ``HGN.from_official`` loads the published checkpoint,
  ``HGN.from_checkpoint`` / :func:`load_model` one of ours (:mod:`hgn_pyg.models.checkpoint`).
* :class:`DenseHGN` -- the published dense formulation with the published parameter names
  (reference for tests and benchmarks).
* :mod:`hgn_pyg.models.official` -- the published key mapping and checkpoint checks;
  :mod:`hgn_pyg.models.checkpoint_io` -- the one reader of checkpoint files.

Inside the package the imports point one way: ``checkpoint_io`` and ``official`` (leaves) <-
``factory`` / ``checkpoint`` (the model class is an argument) <- ``hgn`` (binds them to
:class:`HGN`: :func:`build_hgn`, :func:`hgn_options`, :func:`load_model`).
"""
from .checkpoint_io import load_checkpoint_file, read_checkpoint
from .dense_reference import DenseHGN
from .hgn import HGN, PUBLISHED_SCHEDULE, FusionStage, HGNOutput, build_hgn, fusion_schedule, hgn_options, load_model
from .official import load_official_state_dict, official_key_map, to_official_state_dict

__all__ = [
    "HGN",
    "HGNOutput",
    "DenseHGN",
    "FusionStage",
    "fusion_schedule",
    "PUBLISHED_SCHEDULE",
    "build_hgn",
    "hgn_options",
    "load_model",
    "load_checkpoint_file",
    "read_checkpoint",
    "official_key_map",
    "load_official_state_dict",
    "to_official_state_dict",
]
