"""Learned cross-scale node transfer ("ChannelTrans", docs/published_model.md §2.4)."""
from __future__ import annotations

import math
from typing import Dict

import torch
from torch import Tensor
from torch.nn import Module, Parameter


class NodeTransfer(Module):
    r"""Dense learned mixing from one node set to another (§2.4):

    .. math::
        x'_{b,m,:} = \sum_{n} K_{mn}\, x_{b,n,:} + c_m

    equivalent to the published ``Conv1d(N_in, N_out, kernel_size=1)`` with nodes as channels.

    Args:
        in_nodes (int): ``N_in``; out_nodes (int): ``N_out``; bias (bool): learn ``c``.

    Parameters: ``weight [N_out, N_in]`` (``K``), ``bias [N_out]`` (``c``); initialised like
    ``Conv1d``'s default (both ``U(-1/sqrt(N_in), 1/sqrt(N_in))``).

    Its weights belong to fixed node sets: a PyG batch of ``k`` copies enters as
    ``x.view(k, N_in, C)``; other graphs are refused.

    Shapes:
        - **input:** ``x [B, N_in, C]`` or ``[N_in, C]``.
        - **output:** ``[B, N_out, C]`` or ``[N_out, C]``.
    """

    def __init__(self, in_nodes: int, out_nodes: int, bias: bool = True) -> None:
        super().__init__()
        self.in_nodes = int(in_nodes)
        self.out_nodes = int(out_nodes)
        self.weight = Parameter(torch.empty(self.out_nodes, self.in_nodes))
        if bias:
            self.bias = Parameter(torch.empty(self.out_nodes))
        else:
            self.register_parameter("bias", None)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        # Conv1d default: kaiming_uniform_(a=sqrt(5)) on [N_out, N_in, 1] -> bound 1/sqrt(N_in)
        torch.nn.init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        if self.bias is not None:
            bound = 1.0 / math.sqrt(self.in_nodes)
            torch.nn.init.uniform_(self.bias, -bound, bound)

    def forward(self, x: Tensor) -> Tensor:
        if x.dim() not in (2, 3) or x.size(-2) != self.in_nodes:
            raise ValueError(f"NodeTransfer: expected x [B, {self.in_nodes}, C] or "
                             f"[{self.in_nodes}, C], got {list(x.shape)}; it maps one fixed node "
                             f"set to another, so a PyG batch of k copies goes in as "
                             f"x.view(k, {self.in_nodes}, C)")
        if x.dim() == 3 and self.bias is not None:  # one fused batched GEMM + bias
            return torch.baddbmm(self.bias.view(1, -1, 1).expand(x.size(0), -1, x.size(-1)),
                                 self.weight.expand(x.size(0), -1, -1), x)
        out = torch.matmul(self.weight, x)  # [N_out, N_in] @ [.., N_in, C]
        if self.bias is not None:
            out = out + self.bias.unsqueeze(-1)
        return out

    @staticmethod
    def convert_official_state_dict(state: Dict[str, Tensor], prefix: str = "") -> Dict[str, Tensor]:
        """Map a published ``fc_*`` state (``conv.weight [N_out, N_in, 1]``, ``conv.bias``
        under ``prefix``) to ``weight [N_out, N_in]`` / ``bias``."""
        w = state[f"{prefix}conv.weight"]
        out = {"weight": w.reshape(w.shape[:2])}
        if f"{prefix}conv.bias" in state:
            out["bias"] = state[f"{prefix}conv.bias"]
        return out

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}({self.in_nodes} -> {self.out_nodes} nodes)"
