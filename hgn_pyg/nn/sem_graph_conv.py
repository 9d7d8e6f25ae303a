"""Semantic graph convolution (Zhao et al., CVPR 2019) as a PyG ``MessagePassing`` layer."""
from __future__ import annotations

import math
from typing import Dict, Optional, Tuple, Union

import torch
from torch import Tensor
from torch.nn import Parameter
from torch_geometric.nn import MessagePassing
from torch_geometric.utils import spmm

from . import _sem_kernels as K
from ._sem_kernels import ISOLATED, MODES, SPARSE_BACKENDS, EdgeLayout, choose_mode

HALF = (torch.float16, torch.bfloat16)

__all__ = ["SemGraphConv", "choose_mode", "MODES", "ISOLATED", "SPARSE_BACKENDS"]


class SemGraphConv(MessagePassing):
    r"""Semantic graph convolution: one learnable logit per edge type, softmax over the incoming
    edges of every node (``docs/published_model.md`` §2.1).

    With edge ``j -> i`` of type :math:`t_{ji}` and learnable logits :math:`e \in \mathbb{R}^K`:

    .. math::
        S_{ji} = \frac{\exp e_{t_{ji}}}{\sum_{k \to i} \exp e_{t_{ki}}},\qquad
        x'_i = \sum_{j \to i,\ j = i} S_{ji}\, x_i W_0
             + \sum_{j \to i,\ j \ne i} S_{ji}\, x_j W_1 + b

    The softmax runs over the edges into ``i`` of ``i``'s own graph; a self loop is an ordinary
    edge with its own type whose message goes through :math:`W_0`, every other edge through
    :math:`W_1` (a node without a self loop gives itself weight 0).

    Two ways to build it:

    * **template** ``SemGraphConv(Cin, Cout, edge_index, num_nodes)``: column ``i`` of
      ``edge_index`` has edge type ``i`` (no edge twice). The fast shared-topology path:
      ``forward(x)`` with ``x [N, C]`` / ``[B, N, C]`` or ``forward(x, edge_index)`` with a PyG
      batch of copies of the template; other graphs with ``forward(x, edge_index, edge_type)``.
    * **typed** ``SemGraphConv(Cin, Cout, num_edge_types=K)``:
      ``forward(x, edge_index, edge_type, batch=None)`` on any graphs, e.g. a PyG ``DataLoader``
      batch of skeletons with joints removed, each edge keeping the type of its template edge.

    A node without incoming edges gets, by ``isolated``: ``"zero"`` only the bias; ``"self"``
    :math:`x_i W_0 + b`; ``"uniform"`` the published behaviour (an all-masked softmax row):
    weight :math:`1/n` on each of the :math:`n` nodes of its graph, itself through :math:`W_0`.

    Args:
        in_channels (int): input features ``Cin``.
        out_channels (int): output features ``Cout``.
        edge_index (LongTensor, optional): ``[2, E]`` template edges ``(source, target)`` (also a
            ``torch_sparse.SparseTensor`` or ``torch.sparse`` ``adj_t``, typed in row-major order).
        num_nodes (int, optional): template nodes ``N``.
        num_edge_types (int, optional): ``K`` for a typed layer (a template has ``K = E``).
        bias (bool): learn an additive bias. (default: ``True``)
        isolated (str): ``"zero"``, ``"self"`` or ``"uniform"``. (default: ``"zero"``)
        mode (str): kernel of the off-diagonal sum: ``"dense"`` (``[N, N]`` GEMM), ``"sparse"``
            (CSR spmm through :meth:`message_and_aggregate`), ``"scatter"`` (:meth:`message`) or
            ``"auto"`` (template: :func:`choose_mode`; typed: sparse). (default: ``"auto"``)
        sparse_backend (str): spmm of the sparse mode: ``"torch"`` (``torch.sparse`` CSR, sparse
            backward), ``"torch_sparse"`` or ``"auto"`` (torch on CPU, torch_sparse elsewhere
            when installed). (default: ``"auto"``)

    Parameters: ``weight [2, Cin, Cout]`` (:math:`W_0, W_1`), ``edge_logits [K]``, ``bias``.

    PyG conventions (``docs/pyg_layers_general.md``): the explainer's edge mask scales the
    attention of the caller's edges (every kernel); ``x = (x_src, x_dst)`` is a bipartite call
    (every edge a message through :math:`W_1`, :math:`W_0` on ``x_dst`` for targets without
    edges under ``isolated="self"``), so ``to_hetero`` works; a sparse ``adj_t`` with integer
    values is typed edges (as ``RGCNConv`` takes them); under ``torch.compile`` /
    ``torch.export`` the typed path runs a kernel without data-dependent shapes.

    Shapes:
        - **input:** ``x [N, Cin]`` or ``[B, N, Cin]`` (or a pair ``(x_src, x_dst)``),
          ``edge_index [2, E]`` (optional for a template; also an ``adj_t``),
          ``edge_type [E]`` (required for a typed layer), ``batch [N]`` (optional,
          only read by ``isolated="uniform"``; ``None``: one graph), ``size`` ``(N_src, N_dst)``
          (optional, checked against a bipartite ``x``).
        - **output:** ``x'`` with ``Cout`` channels, same leading shape as ``x`` (for ``[B, N, C]``
          a node-major view of ``[N, B, Cout]`` memory, which the next layer reads without a
          copy; ``.contiguous()`` where batch-major memory matters).
    """

    _version = 2  # edge_logits follow the template's columns (version 1: sorted (target, source))

    def __init__(self, in_channels: int, out_channels: int, edge_index=None,
                 num_nodes: Optional[int] = None, *, num_edge_types: Optional[int] = None,
                 bias: bool = True, isolated: str = "zero", mode: str = "auto",
                 sparse_backend: str = "auto") -> None:
        super().__init__(aggr="add", node_dim=-2)
        for name, value, allowed in (("mode", mode, MODES), ("isolated", isolated, ISOLATED),
                                     ("sparse_backend", sparse_backend, SPARSE_BACKENDS)):
            if value not in allowed:
                raise ValueError(f"SemGraphConv: {name} must be one of {allowed}, got {value!r}")
        if sparse_backend == "torch_sparse" and K.SparseStorage is None:
            raise ValueError("SemGraphConv: sparse_backend='torch_sparse' needs torch-sparse "
                             "(pip install --no-build-isolation torch-sparse)")
        self.in_channels, self.out_channels = int(in_channels), int(out_channels)
        self.isolated, self.mode, self.sparse_backend = isolated, mode, sparse_backend
        if (edge_index is None) == (num_edge_types is None) or (edge_index is None) != (
                num_nodes is None):
            raise ValueError("SemGraphConv: give either a template (edge_index and num_nodes) or "
                             f"num_edge_types, got edge_index={'set' if edge_index is not None else None}, "
                             f"num_nodes={num_nodes}, num_edge_types={num_edge_types}")
        self.num_nodes = None if num_nodes is None else int(num_nodes)
        if edge_index is not None:
            template, buffers = K.template_buffers(edge_index, self.num_nodes)
            self.register_buffer("edge_index", template, persistent=False)
            for name, value in buffers.items():
                self.register_buffer(f"_{name}", value, persistent=False)
            num_edge_types = template.size(1)
        elif int(num_edge_types) <= 0:
            raise ValueError(f"SemGraphConv: num_edge_types must be positive, got {num_edge_types}")
        self.num_edge_types = self.num_edges = int(num_edge_types)
        self.weight = Parameter(torch.empty(2, self.in_channels, self.out_channels))
        self.edge_logits = Parameter(torch.empty(self.num_edge_types))
        self.bias = Parameter(torch.empty(self.out_channels)) if bias else None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Published initialisation: Xavier-uniform (gain 1.414) on ``[2, Cin, Cout]``, logits 1,
        bias ``U(-1/sqrt(Cout), 1/sqrt(Cout))``."""
        super().reset_parameters()
        torch.nn.init.xavier_uniform_(self.weight, gain=1.414)
        torch.nn.init.constant_(self.edge_logits, 1.0)
        if self.bias is not None:
            bound = 1.0 / math.sqrt(self.out_channels)
            torch.nn.init.uniform_(self.bias, -bound, bound)

    def attention(self) -> Tensor:
        """Template attention ``S`` per template edge (column order), ``[E]``."""
        return K.edge_softmax(self.edge_logits, self.edge_index[1], self.num_nodes)

    def resolve_mode(self, batch_size: int, device_type: str) -> str:
        """The kernel the template path runs for ``batch_size`` copies on ``device_type`` (a
        symbolic batch size, while exporting with a dynamic batch, takes the large-batch rule)."""
        if self.mode != "auto":
            return self.mode
        if isinstance(batch_size, torch.SymInt):
            batch_size = None
        return choose_mode(self.num_nodes, batch_size, device_type)

    def forward(self, x: Union[Tensor, Tuple[Tensor, Tensor]], edge_index=None,
                edge_type: Optional[Tensor] = None, batch: Optional[Tensor] = None,
                size: Optional[Tuple[int, int]] = None) -> Tensor:
        if isinstance(x, (tuple, list)):
            return self._bipartite(x, edge_index, edge_type, batch, size)
        if size is not None and tuple(size) != (x.size(-2), x.size(-2)):
            raise ValueError(f"SemGraphConv: size={tuple(size)} needs x = (x_src, x_dst); one x "
                             f"has {x.size(-2)} nodes for sources and targets")
        if x.dim() not in (2, 3) or x.size(-1) != self.in_channels:
            raise ValueError(f"SemGraphConv: expected x [N, {self.in_channels}] or "
                             f"[B, N, {self.in_channels}], got {list(x.shape)}")
        rows = x.size(-2)
        if edge_type is None and self.num_nodes is None and K.is_typed_adjacency(edge_index):
            edge_index, edge_type = K.typed_edges(edge_index, rows)  # adj_t valued by type
        if edge_type is None and self.num_nodes is not None and self.explain:
            # the explainer's mask is over the caller's edges: run them as typed edges
            edge_index, edge_type, batch = self._template_edges(edge_index, rows, batch)
        if edge_type is not None or self.num_nodes is None:
            return self._typed(x, edge_index, edge_type, batch)
        N = self.num_nodes
        if torch.compiler.is_compiling():  # topology checks read values: not while tracing
            torch._check(rows % N == 0, lambda: "SemGraphConv: x rows not a multiple of num_nodes")
        elif edge_index is None or edge_index is self.edge_index:
            if rows != N:
                raise ValueError(
                    f"SemGraphConv: x has {rows} nodes along dim -2 but the layer was built "
                    f"for num_nodes={N}; for a PyG batch of copies pass its edge_index, for "
                    f"other graphs edge_index and edge_type")
        else:
            K.count_copies(self.edge_index, N, edge_index, rows)
        xb = x.reshape(-1, N, self.in_channels)  # copies of the template, [B', N, C]
        mode = self.resolve_mode(xb.size(0), x.device.type)
        if mode == "sparse" and torch.compiler.is_compiling():
            mode = "scatter"  # Dynamo does not trace torch.sparse construction: index_add
        if mode == "dense":
            out = self._dense(xb.transpose(0, 1))
        else:
            layout = EdgeLayout(N, *(getattr(self, f"_{f}") for f in EdgeLayout._fields[1:]))
            logits = self.edge_logits if self._perm is None else self.edge_logits[self._perm]
            out = self._convolve(xb.transpose(0, 1), layout, logits, mode, None)
        return out.transpose(0, 1).reshape(*x.shape[:-1], self.out_channels)

    def _bipartite(self, x, edge_index, edge_type: Optional[Tensor], batch: Optional[Tensor],
                   size: Optional[Tuple[int, int]]) -> Tensor:
        """``x = (x_src, x_dst)``: edges ``j -> i`` from ``x_src``'s nodes to ``x_dst``'s, every
        one a message ``S_ji x_src_j W_1`` (no edge is a self loop: the node sets differ);
        ``x_dst`` enters through :math:`W_0` by the ``isolated`` rule (``"self"``). Computed as
        the typed path on the graph of both node sets (sources first), whose target rows are
        returned; ``size = (N_src, N_dst)`` is checked against them."""
        if len(x) != 2 or not all(isinstance(t, Tensor) for t in x):
            raise ValueError("SemGraphConv: a bipartite x must be a pair (x_src, x_dst) of tensors")
        x_src, x_dst = x
        n_src, n_dst = x_src.size(-2), x_dst.size(-2)
        if x_src.shape[:-2] != x_dst.shape[:-2] or x_src.size(-1) != x_dst.size(-1):
            raise ValueError(f"SemGraphConv: x_src {list(x_src.shape)} and x_dst "
                             f"{list(x_dst.shape)} must share the batch and channel dimensions")
        if size is not None and tuple(size) != (n_src, n_dst):
            raise ValueError(f"SemGraphConv: size={tuple(size)} does not match x_src with "
                             f"{n_src} and x_dst with {n_dst} nodes")
        if self.isolated == "uniform" or batch is not None:
            raise ValueError("SemGraphConv: a bipartite call (x_src, x_dst) takes isolated="
                             "'zero' or 'self' and no batch (no graph of x_dst's own to average)")
        if edge_type is None and K.is_typed_adjacency(edge_index):
            edge_index, edge_type = K.typed_edges(edge_index, (n_dst, n_src))
        if edge_type is None:
            raise ValueError("SemGraphConv: a bipartite call needs edge_type (or a typed adj_t)")
        K.check_edge_index(edge_index, max(n_src, n_dst))
        src, dst = edge_index[0].long(), edge_index[1].long()
        if not torch.compiler.is_compiling() and src.numel():
            if int(src.max()) >= n_src or int(dst.max()) >= n_dst:
                raise ValueError(f"SemGraphConv: edge_index has sources >= {n_src} or targets "
                                 f">= {n_dst} (x_src, x_dst nodes)")
        both = torch.stack([src, dst + n_src])  # one graph: sources first, no self loop
        out = self._typed(torch.cat([x_src, x_dst], dim=-2), both, edge_type, None)
        return out.narrow(-2, n_src, n_dst)

    def _typed(self, x: Tensor, edge_index, edge_type: Tensor, batch: Optional[Tensor]) -> Tensor:
        """The typed path: edges ``edge_index`` of types ``edge_type`` on the rows of ``x``."""
        rows = x.size(-2)
        xt = x.unsqueeze(1) if x.dim() == 2 else x.transpose(0, 1)   # node-major [N, B, C]
        if torch.compiler.is_compiling():  # no data-dependent shapes, no host synchronisation
            K.check_edge_index(edge_index, rows)
            K.check_edge_type(edge_index, edge_type, self.num_edge_types)
            out = self._convolve_traced(xt, edge_index, edge_type.long(), batch)
        else:
            layout, types, perm = K.typed_layout(edge_index, edge_type, rows, self.num_edge_types,
                                                 transpose=torch.is_grad_enabled())
            logits = self.edge_logits.index_select(0, types)
            mask = self._explain_mask(edge_type.numel())
            if mask is not None and perm is not None:
                mask = mask.index_select(0, perm)
            mode = "sparse" if self.mode == "auto" else self.mode
            out = self._convolve(xt, layout, logits, mode, batch, mask)
        return out.squeeze(1) if x.dim() == 2 else out.transpose(0, 1)

    def _convolve_traced(self, xt: Tensor, edge_index: Tensor, edge_type: Tensor,
                         batch: Optional[Tensor]) -> Tensor:
        """:meth:`_convolve` for ``torch.compile`` / ``torch.export`` (:func:`traced_conv`)."""
        N, B, C = xt.size(0), xt.size(1), self.out_channels
        src, dst = edge_index[0].long(), edge_index[1].long()
        alpha = K.edge_softmax(self.edge_logits.index_select(0, edge_type), dst, N)
        mask = self._explain_mask(edge_type.numel())
        if mask is not None:
            alpha = alpha * mask
        x2 = xt.reshape(N * B, self.in_channels)
        h0, h1 = (x2 @ self.weight[0]).view(N, B * C), (x2 @ self.weight[1]).view(N, B * C)
        out = K.traced_conv(alpha, src, dst, h0, h1, self.isolated, batch)
        out = out.view(N, B, C)
        return out if self.bias is None else out + self.bias

    def _template_edges(self, edge_index, rows: int, batch: Optional[Tensor]):
        """``(edge_index, edge_type, batch)`` of the template (or of the given batch of its
        copies) as typed edges, each edge of the type of its template column."""
        N = self.num_nodes
        if edge_index is None or edge_index is self.edge_index:
            return self.edge_index, torch.arange(self.num_edges, device=self.edge_index.device), batch
        K.count_copies(self.edge_index, N, edge_index, rows)
        edge_index = K.edge_index_of(edge_index, rows)
        column = torch.full((N * N,), -1, dtype=torch.long, device=edge_index.device)
        column[self._flat.to(edge_index.device)] = torch.arange(self.num_edges,
                                                                device=edge_index.device)
        types = column[(edge_index[1] % N) * N + edge_index[0] % N]
        if batch is None:
            batch = torch.arange(rows, device=edge_index.device) // N
        return edge_index, types, batch

    def _explain_mask(self, num_edges: int) -> Optional[Tensor]:
        """PyG's explainer mask over the caller's ``num_edges`` edges (``None`` unless
        ``self.explain``); sigmoid applied as ``self._apply_sigmoid`` says. This layer adds no
        self loops (the caller's self loops are edges), so ``_loop_mask`` is never needed."""
        if not self.explain:
            return None
        mask = self._edge_mask
        if mask is None:
            raise ValueError("SemGraphConv: explain is set but no _edge_mask was given")
        if mask.numel() != num_edges:
            raise ValueError(f"SemGraphConv: the edge mask has {mask.numel()} entries for "
                             f"{num_edges} edges (the caller's edges, self loops included)")
        return mask.sigmoid() if self._apply_sigmoid else mask

    def _convolve(self, xt: Tensor, layout: EdgeLayout, logits: Tensor, mode: str,
                  batch: Optional[Tensor], mask: Optional[Tensor] = None) -> Tensor:
        """Node-major ``xt [N, B, Cin]`` -> ``[N, B, Cout]``; kernels see ``[N, B*C]``;
        ``mask`` (the explainer's, in the layout's edge order) scales the attention."""
        N, B, C = xt.size(0), xt.size(1), self.out_channels
        if mode == "sparse" and xt.device.type == "cpu" and xt.dtype in HALF:
            mode = "scatter"  # torch has no half-precision CSR product on CPU
        xt = xt.reshape(N * B, self.in_channels)
        alpha = K.edge_softmax(logits, layout.dst, N)
        if mask is not None:
            alpha = alpha * mask.to(alpha.dtype)
        h1 = (xt @ self.weight[1]).view(N, B * C)
        # h0 = x W0 only reaches self loops and isolated nodes: skip it when there are none
        h0 = (xt @ self.weight[0]).view(N, B * C) if K.reads_diagonal(
            layout.self_pos, layout.isolated, self.isolated) else None
        off = alpha.index_select(0, layout.off_pos)
        uniform_in_dense = mode == "dense" and batch is None and self.isolated == "uniform"
        # the diagonal term S_ii x_i W_0 (and the closed-form uniform rows) first; the products
        # accumulate into it (one fresh [N, B*C] tensor instead of three)
        acc = None if h0 is None else K.diagonal_term(alpha, h0, h1, layout, self.isolated, batch,
                                                      uniform_in_out=uniform_in_dense)
        if mode == "dense":  # uniform rows of one graph go into the dense matrix itself
            out = K.dense_spmm(layout, off, h1, layout.isolated if uniform_in_dense else None, acc)
        elif mode == "sparse" and self.explain:  # propagate does not fuse while explaining
            out = K.csr_spmm(off, h1, layout, acc)
        else:  # "scatter": message() per edge; "sparse": message_and_aggregate() on adj_t
            adj = (torch.stack([layout.col, layout.off_dst]) if mode == "scatter" else
                   K.sparse_adjacency(layout, off, self._use_torch_sparse(xt.device.type)))
            # (a torch.sparse adj_t carries detached values; message_and_aggregate reads alpha)
            out = self.propagate(adj, x=h1, alpha=off, layout=layout, acc=acc, size=(N, N))
        return self._add_bias(out.view(N, B, C))

    def _dense(self, xt: Tensor) -> Tensor:
        """The template's dense kernel (the published formulation), ``xt [N, B, Cin]`` ->
        ``[N, B, Cout]``."""
        N, B = xt.size(0), xt.size(1)
        S = K.dense_attention(self.edge_logits, self._flat, N, self._isolated, self.isolated)
        diagonal = K.reads_diagonal(self._self_pos, self._isolated, self.isolated)
        bias = None if self.bias is None else self.bias.repeat(B)  # the [N, B*C] columns
        out = K.dense_conv(xt.reshape(N * B, self.in_channels), self.weight, S.to(xt.dtype),
                           diagonal, bias)
        return out.view(N, B, self.out_channels)

    def _add_bias(self, out: Tensor) -> Tensor:
        if self.bias is None:
            return out
        # out of place under autograd: an in-place add on this view costs a CopySlices backward
        return out + self.bias if out.requires_grad else out.add_(self.bias)

    def explain_message(self, inputs: Tensor, dim_size: Optional[int]) -> Tensor:
        """The explainer's edge mask already scales the attention of the caller's edges (in
        :meth:`forward`, every kernel): messages pass unchanged."""
        return inputs

    def message(self, x_j: Tensor, alpha: Tensor) -> Tensor:
        """Edge-wise message ``S_ji * h1_j`` of an off-diagonal edge ``j -> i``."""
        return alpha.unsqueeze(-1) * x_j

    def message_and_aggregate(self, adj_t, x: Tensor, alpha: Optional[Tensor] = None,
                              layout: Optional[EdgeLayout] = None,
                              acc: Optional[Tensor] = None) -> Tensor:
        """Fused ``acc + sum_j S_ji h1_j`` over ``adj_t`` (rows = targets, values = attention).
        With the layer's ``layout`` a ``torch.sparse`` CSR runs :class:`CsrSpmm` on ``alpha``
        (the values with their autograd history; the sparse tensor's own backward would be
        dense), accumulating into ``acc`` in place."""
        if layout is not None and alpha is not None and isinstance(adj_t, Tensor):
            return K.csr_spmm(alpha, x, layout, acc, matrix=adj_t)
        out = spmm(adj_t, x, reduce="sum")
        return out if acc is None else out.add_(acc)

    def aggregate(self, inputs: Tensor, index: Tensor, ptr: Optional[Tensor] = None,
                  dim_size: Optional[int] = None, acc: Optional[Tensor] = None) -> Tensor:
        """PyG's sum of the messages per target (the ``"scatter"`` kernel), plus ``acc``."""
        out = super().aggregate(inputs, index, ptr, dim_size)
        return out if acc is None else out.add_(acc)

    def _use_torch_sparse(self, device_type: str) -> bool:
        if K.SparseStorage is None:
            return False
        if self.sparse_backend == "auto":
            return device_type != "cpu"
        return self.sparse_backend == "torch_sparse"

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, *args, **kwargs):
        # version-1 states hold the template logits sorted by (target, source)
        key = prefix + "edge_logits"
        if (local_metadata.get("version") == 1 and self.num_nodes is not None
                and self._perm is not None and key in state_dict):
            state_dict[key] = state_dict[key][self._perm.argsort().to(state_dict[key].device)]
        super()._load_from_state_dict(state_dict, prefix, local_metadata, *args, **kwargs)

    @staticmethod
    def convert_official_state_dict(state: Dict[str, Tensor], prefix: str = "") -> Dict[str, Tensor]:
        """Map a published ``SemGraphConv`` state (``W [2, Cin, Cout]``, ``e [1, E]`` in row-major
        ``(target, source)`` order, ``bias``) to ``weight``, ``edge_logits``, ``bias`` (a template
        whose columns are in that order, as HGN's)."""
        out = {"weight": state[f"{prefix}W"], "edge_logits": state[f"{prefix}e"].reshape(-1)}
        if f"{prefix}bias" in state:
            out["bias"] = state[f"{prefix}bias"]
        return out

    def __repr__(self) -> str:
        graph = (f"edge_types={self.num_edge_types}" if self.num_nodes is None
                 else f"nodes={self.num_nodes}, edges={self.num_edges}")
        backend = f", sparse_backend={self.sparse_backend}" if self.sparse_backend != "auto" else ""
        return (f"{self.__class__.__name__}({self.in_channels}, {self.out_channels}, {graph}, "
                f"mode={self.mode}{backend})")
