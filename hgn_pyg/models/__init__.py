"""HGN models.

* :class:`HGN` / :class:`HGNOutput` -- the three-branch network (docs/published_model.md §3) built from
  :mod:`hgn_pyg.nn` layers; ``HGN.from_official`` loads the published checkpoint.
* :class:`DenseHGN` -- the published dense formulation with the published parameter names
  (reference for tests and benchmarks).
* :mod:`hgn_pyg.models.official` -- the published key mapping and checkpoint checks.
"""
from .dense_reference import DenseHGN
from .hgn import HGN, PUBLISHED_SCHEDULE, FusionStage, HGNOutput, fusion_schedule
from .official import (
    load_official_state_dict,
    official_key_map,
    read_checkpoint,
    to_official_state_dict,
)

__all__ = [
    "HGN",
    "HGNOutput",
    "DenseHGN",
    "FusionStage",
    "fusion_schedule",
    "PUBLISHED_SCHEDULE",
    "read_checkpoint",
    "official_key_map",
    "load_official_state_dict",
    "to_official_state_dict",
]
