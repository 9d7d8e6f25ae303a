"""Optimiser and learning-rate schedule of a training run (``TRAIN.optimizer``, ``TRAIN.scheduler``).

A leaf module: :mod:`hgn_pyg.config` validates the names against :data:`OPTIMIZERS` and
:data:`SCHEDULERS`, and the trainer builds them with :func:`make_optimizer` and
:func:`make_scheduler`.
"""
from __future__ import annotations

from typing import Iterable, Sequence

import torch

__all__ = ["OPTIMIZERS", "SCHEDULERS", "make_optimizer", "make_scheduler"]

#: ``TRAIN.optimizer`` and ``TRAIN.scheduler`` values the trainer builds.
OPTIMIZERS = ("adam", "adamw", "sgd")
SCHEDULERS = ("step", "none")


def make_optimizer(name: str, params: Iterable[torch.nn.Parameter], lr: float,
                   weight_decay: float) -> torch.optim.Optimizer:
    """The optimiser ``name`` (one of :data:`OPTIMIZERS`; SGD with momentum 0.9)."""
    if name == "adam":
        return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay)
    if name == "adamw":
        return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=0.9, weight_decay=weight_decay)
    raise ValueError(f"unknown optimizer {name!r}; choose one of {OPTIMIZERS}")


def make_scheduler(name: str, optimizer: torch.optim.Optimizer, lr_step: Sequence[int],
                   lr_factor: float) -> torch.optim.lr_scheduler.MultiStepLR:
    """The schedule ``name`` (one of :data:`SCHEDULERS`): ``step`` multiplies the learning rate by
    ``lr_factor`` at each epoch of ``lr_step``; ``none`` keeps it (a step schedule with no steps, so
    the checkpoint layout is the same)."""
    if name not in SCHEDULERS:
        raise ValueError(f"unknown scheduler {name!r}; choose one of {SCHEDULERS}")
    milestones = list(lr_step) if name == "step" else []
    return torch.optim.lr_scheduler.MultiStepLR(optimizer, milestones=milestones, gamma=lr_factor)
