"""Graph non-local block (docs/published_model.md §2.3) in separable form."""
from __future__ import annotations

import math
from typing import Dict, Optional

import torch
from torch import Tensor
from torch.nn import BatchNorm1d, Linear, Module, Parameter
from torch_geometric.utils import to_dense_batch


class GraphNonLocal(Module):
    r"""Non-local (self-attention-like) block over all nodes of a graph, ``docs/published_model.md``
    §2.3.

    With inner width :math:`C' = C/2` and :math:`N` the number of nodes of the graph:

    .. math::
        g_i = W_g x_i + b_g,\ \theta_i = W_\theta x_i + b_\theta,\ \phi_j = W_\phi x_j + b_\phi
        \in \mathbb{R}^{C'}, \qquad
        f_{ij} = \tfrac{1}{N}\,\mathrm{ReLU}\big(w^\top [\theta_i ; \phi_j]\big)
               = \tfrac{1}{N}\,\mathrm{ReLU}\big(a_i + b_j\big),\
        a_i = w_\theta^\top \theta_i,\ b_j = w_\phi^\top \phi_j,

    .. math::
        y_i = \sum_j f_{ij}\, g_j, \qquad x'_i = x_i + \mathrm{BN}(W y_i + b_W).

    The concatenation is never materialised: only the ``[B, N, N]`` score matrix is built
    (the published form builds ``[B, C, N, N]``). A PyG batch (``x [ΣN, C]`` with ``batch``)
    attends within each graph only (padded to ``[B, N_max, N_max]`` scores); BatchNorm statistics
    are taken over all nodes of the batch, as in any PyG model with BatchNorm.

    Initialisation as published: ``kaiming_normal_`` (fan-in, gain :math:`\sqrt{2}`) on ``g``,
    ``θ``, ``φ``, ``concat_project`` and ``W``, their biases 0, BatchNorm weight and bias 0 (a
    fresh block is the identity).

    Args:
        channels (int): ``C``.
        inner_channels (int, optional): ``C'`` (default ``C // 2``).

    Parameters and the published (Conv, kernel 1) layout they load from
    (:meth:`convert_official_state_dict` does it):

    ==================================  =========================================
    here                                published ``nonlocal1.*``
    ==================================  =========================================
    ``g / theta / phi .weight [C', C]``  ``g / theta / phi .weight [C', C, 1]``
    ``g / theta / phi .bias [C']``       same
    ``concat_project [2C']`` (θ first)   ``concat_project.0.weight [1, 2C', 1, 1]``
    ``W.weight [C, C'] / W.bias [C]``    ``W.0.weight [C, C', 1] / W.0.bias``
    ``bn.*`` (BatchNorm1d(C))            ``W.1.*``
    ==================================  =========================================

    Shapes:
        - **input:** ``x [B, N, C]``, ``[N, C]`` (one graph) or ``[ΣN, C]`` with
          ``batch [ΣN]`` (graph of each node, a PyG batch of graphs of any sizes).
        - **output:** same as the input.
    """

    def __init__(self, channels: int, inner_channels: Optional[int] = None) -> None:
        super().__init__()
        self.channels = int(channels)
        self.inner_channels = int(inner_channels) if inner_channels else max(1, self.channels // 2)
        C, Ci = self.channels, self.inner_channels
        self.g = Linear(C, Ci)
        self.theta = Linear(C, Ci)
        self.phi = Linear(C, Ci)
        self.concat_project = Parameter(torch.empty(2 * Ci))
        self.W = Linear(Ci, C)
        self.bn = BatchNorm1d(C)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Published init: ``kaiming_normal_`` on ``g/θ/φ/concat_project/W`` weights (as the
        Conv weights ``[C_out, C_in, 1]`` they load from: fan-in = ``C_in``), biases 0, ``bn``
        weight and bias 0."""
        for lin in (self.g, self.theta, self.phi, self.W):
            torch.nn.init.kaiming_normal_(lin.weight)
            torch.nn.init.zeros_(lin.bias)
        with torch.no_grad():  # a Conv2d(2C', 1, 1) weight [1, 2C', 1, 1]: fan-in 2C'
            torch.nn.init.kaiming_normal_(self.concat_project.view(1, -1))
        self.bn.reset_parameters()
        torch.nn.init.zeros_(self.bn.weight)
        torch.nn.init.zeros_(self.bn.bias)

    def forward(self, x: Tensor, batch: Optional[Tensor] = None) -> Tensor:
        if x.dim() not in (2, 3) or x.size(-1) != self.channels:
            raise ValueError(f"GraphNonLocal: expected x [B, N, {self.channels}] or "
                             f"[N, {self.channels}], got {list(x.shape)}")
        if batch is not None:
            if x.dim() != 2 or batch.shape != x.shape[:1]:
                raise ValueError(f"GraphNonLocal: batch must be [N] for x [N, C], got batch "
                                 f"{list(batch.shape)} and x {list(x.shape)}")
            if torch.compiler.is_compiling():
                return self._forward_traced(x, batch)
            if x.size(0) == 0:
                return x.clone()
            if x.size(0) > 1 and bool((batch[1:] < batch[:-1]).any()):
                raise ValueError("GraphNonLocal: batch must be sorted (the nodes of each graph "
                                 "in one block, graphs in increasing order, as a PyG Batch "
                                 "gives them); sort x and batch by batch first")
            xb, mask = to_dense_batch(x, batch)                          # [B, N_max, C]
            count = mask.sum(1).view(-1, 1, 1)                            # nodes per graph
        else:
            xb, mask, count = (x.unsqueeze(0) if x.dim() == 2 else x), None, x.size(-2)
        # θ and φ are only read through their dot products with the halves of the concat
        # weight, so fold them into C-vectors: a_i = w_θ·(W_θ x_i + b_θ) = x_i·(W_θᵀ w_θ) + b_θ·w_θ
        g, a, b = self._scores(xb)                                        # [B, N, C'], [B, N]
        Ci = self.inner_channels
        if mask is not None:  # padded nodes j send nothing: ReLU(a_i - inf) = 0
            b = b.masked_fill(~mask, float("-inf"))
        f = torch.relu(a.unsqueeze(2) + b.unsqueeze(1))                  # [B, N, N]
        y = torch.bmm(f, g).div_(count)  # [B, N, C']: the 1/n of f applied to the smaller product
        y = y[mask] if mask is not None else y.reshape(-1, Ci)            # [nodes, C']
        # BatchNorm over channels with nodes as samples: [B*N, C] has the statistics of [B, C, N]
        # and avoids a slow strided (transposed) BatchNorm
        z = self.bn(self.W(y))  # fresh, and BatchNorm's backward does not read it: add in place
        if x.is_contiguous():
            return z.add_(x.view(-1, self.channels)).view(x.shape)
        return x + z.view(x.shape)

    def _scores(self, x: Tensor):
        """``g``, ``a``, ``b`` of the separable form for ``x [..., C]``."""
        Ci = self.inner_channels
        w_t, w_p = self.concat_project[:Ci], self.concat_project[Ci:]
        a = x @ (self.theta.weight.t() @ w_t) + self.theta.bias @ w_t
        b = x @ (self.phi.weight.t() @ w_p) + self.phi.bias @ w_p
        return self.g(x), a, b

    def _forward_traced(self, x: Tensor, batch: Tensor) -> Tensor:
        """A PyG batch without padding and without reading ``batch`` on the host (for
        ``torch.compile`` / ``torch.export``): one ``[ΣN, ΣN]`` score matrix masked to pairs of
        the same graph (any order of ``batch``). Quadratic in all nodes: for tracing only."""
        g, a, b = self._scores(x)
        same = batch.unsqueeze(1) == batch.unsqueeze(0)                   # [ΣN, ΣN]
        f = torch.relu(a.unsqueeze(1) + b.unsqueeze(0)) * same.to(x.dtype)
        count = x.new_zeros(x.size(0)).index_add(0, batch, torch.ones_like(a)).index_select(0, batch)
        y = (f @ g) / count.unsqueeze(-1)
        return x + self.bn(self.W(y))

    @staticmethod
    def convert_official_state_dict(state: Dict[str, Tensor], prefix: str = "") -> Dict[str, Tensor]:
        """Map a published ``GraphNonLocal`` state (keys under ``prefix``, Conv shapes) to this
        module's keys and shapes (see the table above). Unrelated keys are dropped."""
        out: Dict[str, Tensor] = {}
        for name in ("g", "theta", "phi"):
            out[f"{name}.weight"] = state[f"{prefix}{name}.weight"].reshape(
                state[f"{prefix}{name}.weight"].shape[:2])
            out[f"{name}.bias"] = state[f"{prefix}{name}.bias"]
        out["concat_project"] = state[f"{prefix}concat_project.0.weight"].reshape(-1)
        w = state[f"{prefix}W.0.weight"]
        out["W.weight"] = w.reshape(w.shape[:2])
        out["W.bias"] = state[f"{prefix}W.0.bias"]
        for key in ("weight", "bias", "running_mean", "running_var", "num_batches_tracked"):
            if f"{prefix}W.1.{key}" in state:
                out[f"bn.{key}"] = state[f"{prefix}W.1.{key}"]
        return out

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}({self.channels}, inner={self.inner_channels})"
