"""The Human3.6M action table: the one home of the action names, their labels and spellings.

Labels are ``0..14`` in the order of :data:`ACTIONS` (docs/published_model.md §4); the Pose2Mesh
annotation files number them ``action_idx = label + ACTION_OFFSET``; Human3.6M / VideoPose3D
sequence names (``"Walking 1"``, ``"TakingPhoto"``) map to labels through :func:`parse_action`.
"""
from __future__ import annotations

import re
from typing import Dict, Optional, Tuple

__all__ = ["ACTIONS", "ACTION_OFFSET", "ACTION_ALIASES", "parse_action"]

#: The 15 Human3.6M actions (docs/published_model.md §4 order); label ``k`` is ``action_idx = k + 2``.
ACTIONS: Tuple[str, ...] = (
    "Directions", "Discussion", "Eating", "Greeting", "Phoning", "Posing", "Purchases", "Sitting",
    "SittingDown", "Smoking", "Photo", "Waiting", "Walking", "WalkDog", "WalkTogether",
)

#: ``action_idx`` of the first action in the annotation files.
ACTION_OFFSET = 2

#: Alternative spellings of action names in the original Human3.6M sequence names.
ACTION_ALIASES: Dict[str, str] = {"TakingPhoto": "Photo", "WalkingDog": "WalkDog",
                                  "WalkingTogether": "WalkTogether"}


def parse_action(name: str) -> Optional[int]:
    """Action label 0..14 of a sequence name like ``"Walking 1"``; ``None`` for unknown names."""
    base = re.sub(r"\s+\d+$", "", str(name).strip())
    base = ACTION_ALIASES.get(base, base)
    try:
        return ACTIONS.index(base)
    except ValueError:
        return None
