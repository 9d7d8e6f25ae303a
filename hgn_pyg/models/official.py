"""Published-checkpoint compatibility: key mapping, checks, loading and export.

The published HGN checkpoint (``final.pth.tar``, docs/published_model.md §6) names its tensors after the published
module tree (``gconv_input.0.gconv.W``, ``gconv_layers_2_3.1.nonlocal1.theta.weight``,
``fc_1_3_4.conv.weight``, ...). :func:`official_key_map` lists, for an :class:`~hgn_pyg.models.HGN`
built with ``fusion="official"``, every published key with the parameter(s) of ours it becomes
and the reshaping in both directions:

==================================================  ==============================================
published                                           ours
==================================================  ==============================================
SemGraphConv ``W [2, Cin, Cout]``                   ``weight [2, Cin, Cout]``
SemGraphConv ``e [1, nnz]``                         ``edge_logits [nnz]`` (same row-major order)
SemGraphConv ``bias``                               ``bias``
``bn.{weight,bias,running_*,num_batches_tracked}``  the block's BatchNorm
non-local ``g/theta/phi`` Conv1d ``[C/2, C, 1]``    ``Linear [C/2, C]``
non-local ``concat_project.0.weight [1, C, 1, 1]``  ``concat_project [C]`` (θ half first)
non-local ``W.0`` Conv1d ``[C, C/2, 1]``, ``W.1``   ``Linear [C, C/2]`` and its BatchNorm
transfer ``fc_*.conv`` Conv1d ``[Nout, Nin, 1]``    :class:`NodeTransfer` ``weight [Nout, Nin]``
==================================================  ==============================================

:func:`load_official_state_dict` checks the whole checkpoint first (missing and unexpected keys,
shapes, ``e`` lengths against the graphs' edge counts) and raises one
:class:`~hgn_pyg.errors.CheckpointError` naming every offending key.
"""
from __future__ import annotations

import logging
import os
from collections import OrderedDict
from dataclasses import dataclass
from typing import Callable, Dict, List, Mapping, Optional, Tuple

from torch import Tensor, nn

from hgn_pyg.errors import CheckpointError
from hgn_pyg.models.checkpoint_io import read_checkpoint

__all__ = [
    "infer_official_channels",
    "official_key_map",
    "load_official_state_dict",
    "to_official_state_dict",
    "KeyMapEntry",
]

log = logging.getLogger(__name__)

_BRANCH_HEAD = {1: "gconv_output", 2: "gconv_output_48", 3: "gconv_output_96"}


def infer_official_channels(state: Mapping[str, Tensor]) -> Dict[str, int]:
    """``in_channels``, ``hidden_channels``, ``out_channels`` and ``num_layers`` of a published
    state dict (whatever of them can be read from it)."""
    out: Dict[str, int] = {}
    w_in = state.get("gconv_input.0.gconv.W")
    if isinstance(w_in, Tensor) and w_in.dim() == 3:
        out["in_channels"] = int(w_in.shape[1])
        out["hidden_channels"] = int(w_in.shape[2])
    w_out = state.get("gconv_output.W")
    if isinstance(w_out, Tensor) and w_out.dim() == 3:
        out["out_channels"] = int(w_out.shape[2])
    layers = []
    for key in state:
        if key.startswith("gconv_layers_1_"):
            tail = key[len("gconv_layers_1_"):].split(".", 1)[0]
            if tail.isdigit():
                layers.append(int(tail))
    if layers:
        out["num_layers"] = max(layers)
    return out


# ---------------------------------------------------------------------- the key map
@dataclass(frozen=True)
class KeyMapEntry:
    """One published tensor and the tensor(s) of ours it corresponds to.

    ``to_ours(t)`` gives flat-or-shaped tensors for ``ours`` (reshaped to our shapes on load);
    ``to_official(ts)`` builds the published tensor from ours. ``graph`` describes the graph whose
    size the tensor's shape depends on (for error messages). ``optional`` keys (BatchNorm's
    ``num_batches_tracked``) may be absent from a checkpoint.
    """

    official: str
    ours: Tuple[str, ...]
    to_ours: Callable[[Tensor], Tuple[Tensor, ...]]
    to_official: Callable[[Tuple[Tensor, ...]], Tensor]
    kind: str = "tensor"
    graph: Optional[str] = None
    optional: bool = False


def _same(t: Tensor) -> Tuple[Tensor, ...]:
    return (t,)


def _first(ts: Tuple[Tensor, ...]) -> Tensor:
    return ts[0]


def _squeeze_k1(t: Tensor) -> Tuple[Tensor, ...]:
    return (t.reshape(t.shape[0], -1),)


def _unsqueeze_k1(ts: Tuple[Tensor, ...]) -> Tensor:
    return ts[0].reshape(ts[0].shape[0], -1).unsqueeze(-1)


def _flat(t: Tensor) -> Tuple[Tensor, ...]:
    return (t.reshape(-1),)


def _row(ts: Tuple[Tensor, ...]) -> Tensor:
    return ts[0].reshape(1, -1)


def _as_conv2d(ts: Tuple[Tensor, ...]) -> Tensor:
    return ts[0].reshape(1, -1, 1, 1)


class _Builder:
    """Collects :class:`KeyMapEntry` objects while walking a model."""

    def __init__(self, model: nn.Module):
        self.names = {id(m): name for name, m in model.named_modules()}
        self.entries: List[KeyMapEntry] = []

    def qual(self, module: nn.Module, attr: str) -> str:
        base = self.names[id(module)]
        return f"{base}.{attr}" if base else attr

    def add(self, official: str, module: nn.Module, attrs, to_ours, to_official, **kw) -> None:
        attrs = (attrs,) if isinstance(attrs, str) else tuple(attrs)
        self.entries.append(KeyMapEntry(official, tuple(self.qual(module, a) for a in attrs),
                                        to_ours, to_official, **kw))

    # -- components ------------------------------------------------------
    def sem_conv(self, prefix: str, conv: nn.Module, graph: str) -> None:
        self.add(f"{prefix}.W", conv, "weight", _same, _first, kind="W")
        self.add(f"{prefix}.e", conv, "edge_logits", _flat, _row, kind="e", graph=graph)
        if getattr(conv, "bias", None) is not None:
            self.add(f"{prefix}.bias", conv, "bias", _same, _first)

    def batch_norm(self, prefix: str, bn: nn.Module) -> None:
        for attr in ("weight", "bias", "running_mean", "running_var"):
            if getattr(bn, attr, None) is not None:
                self.add(f"{prefix}.{attr}", bn, attr, _same, _first)
        if getattr(bn, "num_batches_tracked", None) is not None:
            self.add(f"{prefix}.num_batches_tracked", bn, "num_batches_tracked", _same, _first,
                     optional=True)

    def conv_block(self, prefix: str, block: nn.Module, graph: str) -> None:
        """GraphConvBlock (``gconv``, ``bn``) ↔ published ``_GraphConv`` (``gconv``, ``bn``)."""
        self.sem_conv(f"{prefix}.gconv", block.gconv, graph)
        self.batch_norm(f"{prefix}.bn", block.bn)

    def residual_block(self, prefix: str, block: nn.Module, graph: str) -> None:
        """ResidualGraphConvBlock ↔ published ``_ResGraphConv`` (``gconv1``, ``gconv2``)."""
        self.conv_block(f"{prefix}.gconv1", block.gconv1, graph)
        self.conv_block(f"{prefix}.gconv2", block.gconv2, graph)

    def non_local(self, prefix: str, nl: nn.Module) -> None:
        """GraphNonLocal (Linear ``g/theta/phi/W``, vector ``concat_project``, ``bn``) ↔
        published ``GraphNonLocal`` (Conv1d ``g/theta/phi``, Conv2d ``concat_project.0``,
        ``W.0`` Conv1d, ``W.1`` BatchNorm1d)."""
        for name in ("g", "theta", "phi"):
            lin = getattr(nl, name)
            self.add(f"{prefix}.{name}.weight", lin, "weight", _squeeze_k1, _unsqueeze_k1)
            self.add(f"{prefix}.{name}.bias", lin, "bias", _same, _first)
        self.add(f"{prefix}.concat_project.0.weight", nl, "concat_project", _flat, _as_conv2d)
        self.add(f"{prefix}.W.0.weight", nl.W, "weight", _squeeze_k1, _unsqueeze_k1)
        self.add(f"{prefix}.W.0.bias", nl.W, "bias", _same, _first)
        self.batch_norm(f"{prefix}.W.1", nl.bn)

    def transfer(self, prefix: str, module: nn.Module, graph: str) -> None:
        self.add(f"{prefix}.conv.weight", module, "weight", _squeeze_k1, _unsqueeze_k1,
                 kind="fc", graph=graph)
        self.add(f"{prefix}.conv.bias", module, "bias", _same, _first, kind="fc", graph=graph)


def _graph_names(model) -> Dict[int, str]:
    lv = model.mesh_levels
    return {
        1: f"skeleton graph (branch 1, {model.num_nodes[1]} joints with self loops)",
        2: f"mesh level-{lv[0]} graph (branch 2, {model.num_nodes[2]} slots)",
        3: f"mesh level-{lv[1]} graph (branch 3, {model.num_nodes[3]} slots)",
    }


def official_key_map(model) -> List[KeyMapEntry]:
    """Every published key of ``model`` (an :class:`HGN` with ``fusion="official"``), in the
    published module order, with the parameter(s) of ours it maps to."""
    if getattr(model, "fusion", None) != "official":
        raise CheckpointError(
            f"the published checkpoint format needs an HGN with fusion='official', "
            f"not fusion={getattr(model, 'fusion', None)!r}")
    if len(getattr(model, "mesh_levels", ())) != 2:
        raise CheckpointError(
            f"the published checkpoint format has exactly two mesh branches; this HGN has "
            f"mesh_levels={tuple(model.mesh_levels)} (save it with its own state_dict instead)")
    if getattr(model, "input_map", None) is not None:
        raise CheckpointError("the published checkpoint format has no input node map: this HGN reads "
                              f"{model.input_nodes} keypoints of another set (input_nodes)")
    graphs = _graph_names(model)
    b = _Builder(model)
    b.conv_block("gconv_input.0", model.input_block, graphs[1])

    def layer_order(item):
        branch, k = (int(p) for p in item[0].split("_"))
        return branch, k

    for key, layer in sorted(model.layers.items(), key=layer_order):  # published order
        branch = int(key.split("_")[0])
        prefix = f"gconv_layers_{key}"
        b.residual_block(f"{prefix}.0", layer.residual, graphs[branch])
        b.non_local(f"{prefix}.1.nonlocal1", layer.non_local)
    for key, module in model.transfers.items():
        src, tgt, _stage = (int(p) for p in key.split("_"))
        b.transfer(f"fc_{key}", module, f"{src}->{tgt}")
    for branch, head in zip((1, 2, 3), model.heads):
        b.sem_conv(_BRANCH_HEAD[branch], head, graphs[branch])
    return b.entries


# ---------------------------------------------------------------------- load / export
def _shape(t) -> List[int]:
    return list(t.shape)


def _checkpoint_nodes(state: Mapping[str, Tensor]) -> str:
    """Node counts of the three branches as the checkpoint's first transfer maps imply."""
    sizes = {}
    for key, dim, branch in (("fc_2_1_2.conv.weight", 0, 1), ("fc_1_2_1.conv.weight", 0, 2),
                             ("fc_1_3_3.conv.weight", 0, 3)):
        t = state.get(key)
        if isinstance(t, Tensor) and t.dim() >= 1:
            sizes[branch] = int(t.shape[dim])
    return "/".join(str(sizes.get(b, "?")) for b in (1, 2, 3)) + " nodes"


def _model_nodes(model) -> str:
    return "/".join(str(model.num_nodes[b]) for b in (1, 2, 3)) + " nodes"


def load_official_state_dict(model, checkpoint, source: Optional[str] = None) -> None:
    """Check a published checkpoint against ``model`` and copy its weights in.

    Raises:
        CheckpointError: naming every missing key, unexpected key and shape mismatch at once
            (with the graph whose size disagrees for ``e`` logits and transfer maps).
    """
    state = read_checkpoint(checkpoint, source)
    source = source or (os.fspath(checkpoint) if isinstance(checkpoint, (str, os.PathLike))
                        else "checkpoint")
    ours = model.state_dict()
    entries = official_key_map(model)
    expected = {e.official: e for e in entries}

    missing = [k for k, e in expected.items() if k not in state and not e.optional]
    unexpected = [k for k in state if k not in expected]
    mismatched: List[str] = []
    logits: Dict[Tuple[str, int, int], List[str]] = {}  # (graph, got, want) -> keys
    transfers: List[str] = []
    for key, e in expected.items():
        if key not in state:
            continue
        want = tuple(e.to_official(tuple(ours[k] for k in e.ours)).shape)
        got = tuple(state[key].shape)
        if got == want:
            continue
        if e.kind == "e" and len(got) == 2 and got[0] == 1:
            logits.setdefault((e.graph, got[1], want[1]), []).append(key)
        elif e.kind == "fc":
            transfers.append(key)
        else:
            mismatched.append(f"{key} is {list(got)}, the model needs {list(want)}")
    if missing or unexpected or mismatched or logits or transfers:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing key(s): {', '.join(missing)}")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected key(s): {', '.join(unexpected)}")
        if mismatched:
            parts.append(f"{len(mismatched)} shape mismatch(es): {'; '.join(mismatched)}")
        for (graph, got, want), keys in logits.items():
            parts.append(f"the {graph} has {want} edges but {len(keys)} edge-logit tensor(s) "
                         f"have {got} edge logits: {', '.join(keys)}")
        if transfers:
            parts.append(f"{len(transfers)} transfer-map tensor(s) are sized for other node "
                         f"counts (checkpoint {_checkpoint_nodes(state)}, this model "
                         f"{_model_nodes(model)}): {', '.join(transfers)}")
        msg = f"{source} does not match the HGN model: " + " | ".join(parts)
        if logits or transfers:
            msg += (" | the graphs built from the mesh differ from the checkpoint's: is the mesh "
                    "the neutral SMPL model, and are the coarsening levels (published: 9) and "
                    f"mesh_levels (published: (8, 7); here {tuple(model.mesh_levels)}) right?")
        raise CheckpointError(msg)

    new_state = OrderedDict()
    for e in entries:
        if e.official not in state:  # optional and absent: keep ours
            continue
        values = e.to_ours(state[e.official])
        for name, value in zip(e.ours, values):
            target = ours[name]
            new_state[name] = value.detach().reshape(target.shape).to(target.dtype).clone()
    uncovered = [k for k in ours if k not in new_state and not k.endswith("num_batches_tracked")]
    if uncovered:  # a key-map bug, not a user error
        raise RuntimeError(f"official key map leaves model keys unset: {uncovered}")
    model.load_state_dict(new_state, strict=False)
    log.info("loaded %d published tensors from %s", len(state), source)


def to_official_state_dict(model) -> "OrderedDict[str, Tensor]":
    """``model``'s weights under the published names and shapes (CPU copies)."""
    ours = model.state_dict()
    out: "OrderedDict[str, Tensor]" = OrderedDict()
    for e in official_key_map(model):
        out[e.official] = e.to_official(tuple(ours[k] for k in e.ours)).detach().cpu().clone()
    return out
