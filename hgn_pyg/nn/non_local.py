"""Graph non-local block (HGN_SPEC §2.3) in separable form."""
from __future__ import annotations

import math
from typing import Dict, Optional

import torch
from torch import Tensor
from torch.nn import BatchNorm1d, Linear, Module, Parameter


class GraphNonLocal(Module):
    r"""Non-local (self-attention-like) block over all nodes of a graph, SPEC §2.3.

    With inner width :math:`C' = C/2`:

    .. math::
        g_i = W_g x_i + b_g,\ \theta_i = W_\theta x_i + b_\theta,\ \phi_j = W_\phi x_j + b_\phi
        \in \mathbb{R}^{C'}, \qquad
        f_{ij} = \tfrac{1}{N}\,\mathrm{ReLU}\big(w^\top [\theta_i ; \phi_j]\big)
               = \tfrac{1}{N}\,\mathrm{ReLU}\big(a_i + b_j\big),\
        a_i = w_\theta^\top \theta_i,\ b_j = w_\phi^\top \phi_j,

    .. math::
        y_i = \sum_j f_{ij}\, g_j, \qquad x'_i = x_i + \mathrm{BN}(W y_i + b_W).

    The concatenation is never materialised: only the ``[B, N, N]`` score matrix is built
    (the published form builds ``[B, C, N, N]``). ``W``'s bias and the BatchNorm's weight and
    bias start at 0, so a fresh block is the identity.

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
        - **input:** ``x [B, N, C]`` or ``[N, C]`` (one graph; BN then sees ``N`` samples).
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
        """Published init: ``g/θ/φ/W`` like ``Conv1d`` defaults, ``concat_project`` like a
        ``Conv2d(2C', 1, 1)`` (bound ``1/sqrt(2C')``), ``W.bias``, ``bn.weight``, ``bn.bias`` = 0."""
        for lin in (self.g, self.theta, self.phi, self.W):
            lin.reset_parameters()  # kaiming_uniform(a=sqrt(5)) == Conv1d(kernel 1) default
        bound = 1.0 / math.sqrt(2 * self.inner_channels)
        torch.nn.init.uniform_(self.concat_project, -bound, bound)
        self.bn.reset_parameters()
        torch.nn.init.zeros_(self.W.bias)
        torch.nn.init.zeros_(self.bn.weight)
        torch.nn.init.zeros_(self.bn.bias)

    def forward(self, x: Tensor) -> Tensor:
        if x.dim() not in (2, 3) or x.size(-1) != self.channels:
            raise ValueError(f"GraphNonLocal: expected x [B, N, {self.channels}] or "
                             f"[N, {self.channels}], got {list(x.shape)}")
        single = x.dim() == 2
        xb = x.unsqueeze(0) if single else x
        N = xb.size(1)
        Ci = self.inner_channels
        g = self.g(xb)                                               # [B, N, C']
        # θ and φ are only read through their dot products with the halves of the concat
        # weight, so fold them into C-vectors: a_i = w_θ·(W_θ x_i + b_θ) = x_i·(W_θᵀ w_θ) + b_θ·w_θ
        w_t, w_p = self.concat_project[:Ci], self.concat_project[Ci:]
        a = xb @ (self.theta.weight.t() @ w_t) + self.theta.bias @ w_t   # [B, N]
        b = xb @ (self.phi.weight.t() @ w_p) + self.phi.bias @ w_p       # [B, N]
        f = torch.relu(a.unsqueeze(2) + b.unsqueeze(1)) / N          # [B, N, N]
        y = torch.bmm(f, g)                                          # [B, N, C']
        z = self.W(y)                                                # [B, N, C]
        # BatchNorm over channels with nodes as samples: [B*N, C] has the same statistics as
        # [B, C, N] and avoids a slow strided (transposed) BatchNorm
        z = self.bn(z.reshape(-1, z.size(-1))).view(z.shape)
        out = xb + z
        return out.squeeze(0) if single else out

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
