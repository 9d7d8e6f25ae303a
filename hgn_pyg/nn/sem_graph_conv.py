"""Semantic graph convolution (Zhao et al., CVPR 2019) as a PyG ``MessagePassing`` layer."""
from __future__ import annotations

import math
import warnings
from typing import Dict, Optional, Tuple

import torch
from torch import Tensor
from torch.autograd.function import once_differentiable
from torch.nn import Parameter
from torch_geometric.nn import MessagePassing
from torch_geometric.utils import softmax

from hgn_pyg.errors import GraphError

try:  # optional extension: fast CSR kernels with cached transposes
    import torch_sparse as _torch_sparse
    from torch_sparse import SparseTensor as _SparseTensor
    from torch_sparse.storage import SparseStorage as _SparseStorage
except ImportError:  # pragma: no cover - depends on the environment
    _torch_sparse = None
    _SparseTensor = None
    _SparseStorage = None

MODES = ("auto", "dense", "sparse", "scatter")
ISOLATED = ("zero", "self", "uniform")
SPARSE_BACKENDS = ("auto", "torch", "torch_sparse")

# ``mode="auto"`` rule (see ``choose_mode``): largest graph for which the dense kernel is used,
# by batch size. Calibrated on the 2-core development CPU (CPU time, 128 -> 128 channels,
# forward and forward+backward, mesh-like graphs with ~7 edges per node incl. self loops).
AUTO_DENSE_MAX_NODES_CPU = ((2, 256), (16, 192), (None, 128))  # (max batch, max nodes)
AUTO_DENSE_MAX_NODES_CUDA = 512  # not calibrated (no GPU at hand); dense GEMMs are cheap there


def choose_mode(num_nodes: int, batch_size: int = 1, device_type: str = "cpu") -> str:
    """The kernel ``mode="auto"`` runs for ``batch_size`` graphs of ``num_nodes`` nodes.

    ``"dense"`` (one ``[N, N] @ [N, B*C]`` GEMM) wins on small graphs, where its ``N^2`` work is
    cheap and the sparse kernel's fixed costs dominate; ``"sparse"`` (CSR ``[N, N] @ [N, B*C]``)
    wins above. ``"scatter"`` is never the fastest (it materialises ``[E, B*C]`` messages).

    CPU rule: dense when ``N <= 256`` for ``B <= 2``, ``N <= 192`` for ``B <= 16`` and
    ``N <= 128`` otherwise; sparse above. Measured (1 thread, CPU ms, forward / fwd+bwd,
    ``Cin = Cout = 128``)::

        N     B    dense          sparse         scatter
        96    1    0.18 / 0.89    0.42 / 2.31    0.51 / 2.12
        96    64   7.9  / 24.4    9.5  / 29.8    22.7 / 51.6
        128   64   12.6 / 37.0    15.5 / 32.4    44.2 / 72.6
        192   8    2.4  / 8.4     3.6  / 9.7     6.0  / 16.8
        256   1    0.49 / 2.03    0.57 / 2.53    1.20 / 3.68
        256   8    3.8  / 11.9    3.6  / 9.8     6.8  / 26.7
        430   1    1.20 / 4.58    0.80 / 4.73    1.97 / 6.31
        430   64   61.8 / 149     33.7 / 96.2    113  / 313
        1700  1    19.6 / 48.9    2.7  / 7.9     4.8  / 14.5
        6890  64   --             1131 / 2776    2567 / 6734

    On CUDA dense is used up to ``AUTO_DENSE_MAX_NODES_CUDA`` nodes (an uncalibrated default).
    """
    if device_type == "cuda":
        return "dense" if num_nodes <= AUTO_DENSE_MAX_NODES_CUDA else "sparse"
    for max_batch, max_nodes in AUTO_DENSE_MAX_NODES_CPU:
        if max_batch is None or batch_size <= max_batch:
            return "dense" if num_nodes <= max_nodes else "sparse"
    return "sparse"  # pragma: no cover


class SemGraphConv(MessagePassing):
    r"""Semantic graph convolution with one learnable attention logit per edge.

    For a fixed topology with ``A_ij != 0`` iff there is an edge ``j -> i``:

    .. math::
        h^{(0)} = x W_0,\quad h^{(1)} = x W_1,\quad
        S_{i,:} = \operatorname{softmax}_{j \in \mathcal{N}(i)}(e_{ij}),\quad
        x'_i = S_{ii}\, h^{(0)}_i + \sum_{j \in \mathcal{N}(i),\, j \ne i} S_{ij}\, h^{(1)}_j + b

    where :math:`\mathcal{N}(i)` are the sources of the edges into ``i`` (including ``i`` itself
    only when the graph has a self loop at ``i``; a node without one gives itself weight 0).
    This is SPEC §2.1, i.e. a softmax over the dense logit matrix masked with ``-9e15``.

    A node with no incoming edge is handled according to ``isolated``:

    * ``"zero"`` (default): its output is the bias (no message arrives).
    * ``"self"``: it attends to itself only (output ``h^{(0)}_i + b``).
    * ``"uniform"``: the published behaviour (an all-masked softmax row is uniform): it attends
      with weight ``1/N`` to *all* ``N`` nodes, itself through ``W_0``,
      ``x'_i = (h^{(0)}_i + \sum_{j \ne i} h^{(1)}_j) / N + b``, computed in closed form.

    The layer owns the topology: ``edge_index`` is given at construction, deduplicated and stored
    sorted row-major by ``(target, source)``, so ``edge_logits[k]`` is the logit of the ``k``-th
    nonzero of ``A`` listed row by row (row = target) -- the order of the published ``e[0, k]``.

    Args:
        in_channels (int): input features ``Cin``.
        out_channels (int): output features ``Cout``.
        edge_index (LongTensor): ``[2, E]`` edges ``(source, target)`` of the topology.
        num_nodes (int): number of nodes ``N``.
        bias (bool): learn an additive bias. (default: ``True``)
        isolated (str): ``"zero"``, ``"self"`` or ``"uniform"``, see above. (default: ``"zero"``)
        mode (str): kernel: ``"dense"`` (``N x N`` attention matrix, for tiny graphs),
            ``"sparse"`` (one sparse-dense matmul over ``[N, B*C]``, see ``sparse_backend``),
            ``"scatter"`` (PyG ``propagate`` with :meth:`message`) or ``"auto"`` (see
            :func:`choose_mode`). (default: ``"auto"``)
        sparse_backend (str): the spmm kernel of the sparse mode: ``"torch_sparse"``
            (``torch_sparse.SparseTensor``; needs torch-sparse), ``"torch"`` (``torch.sparse``
            CSR with a sparse backward) or ``"auto"``: ``torch.sparse`` on CPU, where it measured
            1.0-2x faster than torch_sparse at every size (``benchmarks/README.md``), and
            torch_sparse on other devices when it is installed. (default: ``"auto"``)

    Parameters: ``weight [2, Cin, Cout]``, ``edge_logits [E]``, ``bias [Cout]``.

    Shapes:
        - **input:** ``x [N, Cin]``, ``[B, N, Cin]`` or ``[k*N, Cin]`` (a PyG batch of ``k``
          copies of the graph, then ``edge_index`` must be the batch's), optional
          ``edge_index`` (``[2, E']`` tensor, ``torch_sparse.SparseTensor`` or ``torch.sparse``
          adjacency ``adj_t`` with rows = targets) which must describe the constructed topology.
        - **output:** same leading shape as ``x`` with ``Cout`` channels.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        edge_index: Tensor,
        num_nodes: int,
        bias: bool = True,
        isolated: str = "zero",
        mode: str = "auto",
        sparse_backend: str = "auto",
    ) -> None:
        super().__init__(aggr="add", node_dim=-2)
        if mode not in MODES:
            raise ValueError(f"SemGraphConv: mode must be one of {MODES}, got {mode!r}")
        if sparse_backend not in SPARSE_BACKENDS:
            raise ValueError(f"SemGraphConv: sparse_backend must be one of {SPARSE_BACKENDS}, "
                             f"got {sparse_backend!r}")
        if sparse_backend == "torch_sparse" and _SparseStorage is None:
            raise ValueError("SemGraphConv: sparse_backend='torch_sparse' needs torch-sparse "
                             "(pip install --no-build-isolation torch-sparse)")
        self.sparse_backend = sparse_backend
        if isolated not in ISOLATED:
            raise ValueError(f"SemGraphConv: isolated must be one of {ISOLATED}, got {isolated!r}")
        self.in_channels = int(in_channels)
        self.out_channels = int(out_channels)
        self.num_nodes = int(num_nodes)
        self.isolated = isolated
        self.mode = mode

        src, dst = _sorted_unique_edges(edge_index, self.num_nodes)
        N = self.num_nodes
        E = int(src.numel())
        self.num_edges = E
        is_self = src == dst
        off = (~is_self).nonzero().view(-1)
        self_pos = is_self.nonzero().view(-1)
        deg = torch.bincount(dst, minlength=N)
        off_src, off_dst = src[off], dst[off]
        off_rowptr = _rowptr(off_dst, N)
        # transpose structure of the off-diagonal pattern (for torch_sparse's backward)
        csr2csc = (off_src * N + off_dst).argsort()
        colptr = _rowptr(off_src[csr2csc], N)

        def buf(name: str, value: Tensor) -> None:
            self.register_buffer(name, value, persistent=False)

        buf("edge_index", torch.stack([src, dst]))
        buf("_keys", dst * N + src)
        buf("_off_pos", off)
        buf("_off_edge_index", torch.stack([off_src, off_dst]))
        buf("_off_rowptr", off_rowptr)
        buf("_off_colptr", colptr)
        buf("_off_csr2csc", csr2csc)
        buf("_off_t_col", off_dst[csr2csc])
        buf("_self_pos", self_pos)
        buf("_self_nodes", dst[self_pos])
        buf("_isolated_nodes", (deg == 0).nonzero().view(-1))
        buf("_dense_flat", dst * N + src)
        self.num_isolated = int(self._isolated_nodes.numel())
        self.num_self_loops = int(self_pos.numel())

        self.weight = Parameter(torch.empty(2, self.in_channels, self.out_channels))
        self.edge_logits = Parameter(torch.empty(E))
        if bias:
            self.bias = Parameter(torch.empty(self.out_channels))
        else:
            self.register_parameter("bias", None)
        self.reset_parameters()

    # ------------------------------------------------------------------ parameters
    def reset_parameters(self) -> None:
        """Published initialisation: Xavier-uniform (gain 1.414) on ``[2, Cin, Cout]``, logits 1,
        bias ``U(-1/sqrt(Cout), 1/sqrt(Cout))``."""
        super().reset_parameters()
        torch.nn.init.xavier_uniform_(self.weight, gain=1.414)
        torch.nn.init.constant_(self.edge_logits, 1.0)
        if self.bias is not None:
            bound = 1.0 / math.sqrt(self.out_channels)
            torch.nn.init.uniform_(self.bias, -bound, bound)

    @staticmethod
    def convert_official_state_dict(state: Dict[str, Tensor], prefix: str = "") -> Dict[str, Tensor]:
        """Map a published ``SemGraphConv`` state (``W [2, Cin, Cout]``, ``e [1, E]``, ``bias``
        under ``prefix``) to this layer's ``weight``, ``edge_logits [E]``, ``bias``."""
        out = {"weight": state[f"{prefix}W"], "edge_logits": state[f"{prefix}e"].reshape(-1)}
        if f"{prefix}bias" in state:
            out["bias"] = state[f"{prefix}bias"]
        return out

    def __repr__(self) -> str:
        return (f"{self.__class__.__name__}({self.in_channels}, {self.out_channels}, "
                f"nodes={self.num_nodes}, edges={self.num_edges}, mode={self.mode}"
                + (f", sparse_backend={self.sparse_backend}" if self.sparse_backend != "auto" else "")
                + ")")

    # ------------------------------------------------------------------ forward
    def attention(self) -> Tensor:
        """Per-edge attention ``S`` (softmax of ``edge_logits`` over each target's edges), ``[E]``."""
        return softmax(self.edge_logits, self.edge_index[1], num_nodes=self.num_nodes)

    def resolve_mode(self, batch_size: int, device_type: str) -> str:
        """The kernel this layer runs for ``batch_size`` graphs on ``device_type``."""
        if self.mode != "auto":
            return self.mode
        return choose_mode(self.num_nodes, batch_size, device_type)

    def forward(self, x: Tensor, edge_index: Optional[object] = None) -> Tensor:
        N = self.num_nodes
        if x.dim() not in (2, 3) or x.size(-1) != self.in_channels:
            raise ValueError(
                f"SemGraphConv: expected x of shape [N, {self.in_channels}] or "
                f"[B, N, {self.in_channels}] (N={N}), got {list(x.shape)}")
        copies = self._check_topology(edge_index, x.size(-2))
        if x.dim() == 2:
            if copies == 1:
                return self._forward_batched(x.unsqueeze(0)).squeeze(0)
            out = self._forward_batched(x.reshape(copies, N, self.in_channels))
            return out.reshape(copies * N, self.out_channels)
        if copies == 1:
            return self._forward_batched(x)
        B = x.size(0)
        out = self._forward_batched(x.reshape(B * copies, N, self.in_channels))
        return out.reshape(B, copies * N, self.out_channels)

    def _forward_batched(self, x: Tensor) -> Tensor:
        """x ``[B, N, Cin]`` -> ``[B, N, Cout]``; all kernels work on the node-major ``[N, B*C]``."""
        B, N, C = x.size(0), self.num_nodes, self.out_channels
        mode = self.resolve_mode(B, x.device.type)
        xt = x.transpose(0, 1).reshape(N * B, self.in_channels)
        h1 = (xt @ self.weight[1]).reshape(N, B * C)
        # h0 = x W0 only reaches nodes with a self loop and isolated nodes ("self"/"uniform");
        # a graph with neither (a mesh without self loops) skips half of the feature transform
        needs_h0 = (mode == "dense" or self.num_self_loops > 0
                    or (self.num_isolated > 0 and self.isolated != "zero"))
        h0 = (xt @ self.weight[0]).reshape(N, B * C) if needs_h0 else h1
        if mode == "dense":
            out = self._dense_aggregate(h0, h1)
        else:
            alpha = self.attention()
            alpha_off = alpha[self._off_pos]
            if mode == "sparse":
                out = self._sparse_aggregate(alpha_off, h1)
            else:  # scatter: PyG propagate over the off-diagonal edges, message() per edge
                out = self.propagate(self._off_edge_index, x=h1, alpha=alpha_off, size=(N, N))
            if self.num_self_loops > 0:
                diag = torch.zeros(N, dtype=alpha.dtype, device=alpha.device)
                diag = diag.scatter(0, self._self_nodes, alpha[self._self_pos])
                out = out + diag.unsqueeze(-1) * h0
            if self.num_isolated > 0 and self.isolated != "zero":
                iso = self._isolated_nodes
                corr = h0.index_select(0, iso)
                if self.isolated == "uniform":  # (h0_i + sum_{j != i} h1_j) / N in closed form
                    corr = (corr - h1.index_select(0, iso) + h1.sum(0, keepdim=True)) / N
                out = out.index_add(0, iso, corr)
        out = out.reshape(N, B, C).transpose(0, 1).contiguous()  # back to [B, N, C] memory order
        if self.bias is not None:
            out = out + self.bias
        return out

    def _dense_aggregate(self, h0: Tensor, h1: Tensor) -> Tensor:
        """SPEC §2.1 literally: logits masked with -9e15, row softmax, diagonal through h0.

        An all-masked row comes out uniform (``isolated="uniform"``); ``"self"`` gets a zero
        logit on its diagonal (weight 1), ``"zero"`` has its row multiplied by 0.
        """
        N = self.num_nodes
        logits = self.edge_logits
        # -9e15 overflows half precision: build the logits in at least float32
        work = torch.promote_types(logits.dtype, torch.float32)
        L = torch.full((N * N,), -9e15, dtype=work, device=logits.device)
        L = L.scatter(0, self._dense_flat, logits.to(work))
        if self.num_isolated > 0 and self.isolated == "self":
            L = L.index_fill(0, self._isolated_nodes * (N + 1), 0.0)
        S = torch.softmax(L.view(N, N), dim=1).to(h1.dtype)
        if self.num_isolated > 0 and self.isolated == "zero":
            S = S.index_fill(0, self._isolated_nodes, 0.0)
        diag = S.diagonal()
        return (S - torch.diag_embed(diag)) @ h1 + diag.unsqueeze(-1) * h0

    def message(self, x_j: Tensor, alpha: Tensor) -> Tensor:
        """Edge-wise message ``S_ij * h1_j`` of an off-diagonal edge ``j -> i``."""
        return alpha.unsqueeze(-1) * x_j

    def message_and_aggregate(self, adj_t, x: Tensor) -> Tensor:
        """Fused ``sum_j S_ij h1_j`` as one sparse-dense matmul; ``adj_t`` holds the attention
        values (rows = targets). ``x`` is ``[N, F]`` or ``[B, N, C]`` (flattened to ``[N, B*C]``)."""
        if x.dim() == 3:
            B, N, C = x.shape
            flat = x.transpose(0, 1).reshape(N, B * C)
            return self.message_and_aggregate(adj_t, flat).reshape(-1, B, C).transpose(0, 1)
        if _SparseTensor is not None and isinstance(adj_t, _SparseTensor):
            return _torch_sparse.matmul(adj_t, x, reduce="sum")
        return torch.sparse.mm(adj_t, x)

    def _sparse_aggregate(self, values: Tensor, h: Tensor) -> Tensor:
        """``A_off @ h`` for the off-diagonal attention ``values`` and ``h [N, F]``: torch_sparse
        when importable, else ``torch.sparse`` CSR through :class:`_CsrSpmm` (whose backward
        stays sparse, unlike the built-in one that materialises a dense ``N x N`` gradient).
        Under ``torch.compile`` the ``torch.sparse`` kernel is used: torch_sparse's custom
        kernels have no fake-tensor implementation, so Dynamo cannot trace them."""
        N = self.num_nodes
        if self._use_torch_sparse(h.device.type):
            storage = _SparseStorage(
                row=self._off_edge_index[1], rowptr=self._off_rowptr,
                col=self._off_edge_index[0], value=values, sparse_sizes=(N, N),
                colptr=self._off_colptr, csr2csc=self._off_csr2csc,
                is_sorted=True, trust_data=True)
            return _torch_sparse.matmul(_SparseTensor.from_storage(storage), h, reduce="sum")
        return _CsrSpmm.apply(values, h, self._off_rowptr, self._off_edge_index[0],
                              self._off_colptr, self._off_t_col, self._off_csr2csc)

    def _use_torch_sparse(self, device_type: str) -> bool:
        if _SparseStorage is None or torch.compiler.is_compiling():
            return False
        if self.sparse_backend == "auto":
            return device_type != "cpu"
        return self.sparse_backend == "torch_sparse"

    # ------------------------------------------------------------------ topology checks
    def _check_topology(self, edge_index: Optional[object], num_rows: int) -> int:
        """Number of graph copies in ``x`` (1, or k for a PyG batch); raise if inconsistent."""
        N = self.num_nodes
        if edge_index is None or edge_index is self.edge_index:
            if num_rows != N:
                raise ValueError(
                    f"SemGraphConv: x has {num_rows} nodes along dim -2 but the layer was built "
                    f"for num_nodes={N}; for a PyG batch of k copies pass its edge_index "
                    f"(shape [2, k*{self.num_edges}])")
            return 1
        if num_rows % N != 0:
            raise ValueError(
                f"SemGraphConv: x has {num_rows} nodes, not a multiple of num_nodes={N}")
        copies = num_rows // N
        src, dst, desc = _edges_of(edge_index, num_rows)
        expected_nnz = copies * self.num_edges
        if src.numel() < expected_nnz:
            raise GraphError(
                f"SemGraphConv: the given topology ({desc}) has {src.numel()} edges, but "
                f"{copies} cop{'y' if copies == 1 else 'ies'} of the layer's graph have "
                f"{expected_nnz} (num_nodes={N}, edges={self.num_edges})")
        graph = dst // N
        same = bool((graph == src // N).all())
        keys = torch.unique(graph * (N * N) + (dst % N) * N + (src % N)) if same else None
        ref = (self._keys.unsqueeze(0)
               + torch.arange(copies, device=self._keys.device).unsqueeze(1) * (N * N))
        if keys is None or not torch.equal(keys, ref.view(-1).to(keys.device)):
            raise GraphError(
                f"SemGraphConv: the given topology ({desc}, x with {num_rows} nodes) is not "
                f"{'the' if copies == 1 else f'a batch of {copies} copies of the'} graph this "
                f"layer was built for (num_nodes={N}, edges={self.num_edges}, self loops="
                f"{self.num_self_loops}); the layer owns one logit per edge of that graph")
        return copies


def _csr(rowptr: Tensor, col: Tensor, values: Tensor, num_cols: int) -> Tensor:
    with warnings.catch_warnings():  # "Sparse CSR tensor support is in beta state"
        warnings.simplefilter("ignore", UserWarning)
        return torch.sparse_csr_tensor(rowptr, col, values, (rowptr.numel() - 1, num_cols),
                                       check_invariants=False)


class _CsrSpmm(torch.autograd.Function):
    """``out = A @ h`` with ``A`` a CSR matrix of fixed pattern and learnable ``values``.

    Backward: ``dh = A^T @ dout`` (transposed CSR pattern cached by the layer) and
    ``dvalues_k = <dout[row_k], h[col_k]>`` by ``torch.sparse.sampled_addmm`` -- O(E F) work,
    no dense ``N x N``.
    """

    @staticmethod
    def forward(ctx, values, h, rowptr, col, t_rowptr, t_col, csr2csc):
        ctx.save_for_backward(values, h, rowptr, col, t_rowptr, t_col, csr2csc)
        return torch.sparse.mm(_csr(rowptr, col, values, h.size(0)), h)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad):
        values, h, rowptr, col, t_rowptr, t_col, csr2csc = ctx.saved_tensors
        grad = grad.contiguous()
        grad_values = grad_h = None
        if ctx.needs_input_grad[1]:
            grad_h = torch.sparse.mm(_csr(t_rowptr, t_col, values[csr2csc], grad.size(0)), grad)
        if ctx.needs_input_grad[0]:
            pattern = _csr(rowptr, col, torch.zeros_like(values), h.size(0))
            grad_values = torch.sparse.sampled_addmm(pattern, grad, h.t(), beta=0.0).values()
        return grad_values, grad_h, None, None, None, None, None


def _rowptr(sorted_index: Tensor, size: int) -> Tensor:
    ptr = torch.zeros(size + 1, dtype=torch.long, device=sorted_index.device)
    ptr[1:] = torch.bincount(sorted_index, minlength=size).cumsum(0)
    return ptr


def _sorted_unique_edges(edge_index: Tensor, num_nodes: int) -> Tuple[Tensor, Tensor]:
    """(source, target) sorted row-major by (target, source), duplicates removed."""
    if _SparseTensor is not None and isinstance(edge_index, _SparseTensor):
        dst, src, _ = edge_index.coo()
        edge_index = torch.stack([src, dst])
    elif isinstance(edge_index, Tensor) and edge_index.layout != torch.strided:
        edge_index = edge_index.to_sparse_coo().coalesce().indices().flip(0)
    if (not isinstance(edge_index, Tensor) or edge_index.dim() != 2 or edge_index.size(0) != 2
            or edge_index.dtype.is_floating_point or edge_index.is_complex()):
        shape = list(edge_index.shape) if isinstance(edge_index, Tensor) else type(edge_index)
        raise GraphError(f"SemGraphConv: edge_index must be an integer tensor [2, E], got {shape}")
    if num_nodes <= 0:
        raise GraphError(f"SemGraphConv: num_nodes must be positive, got {num_nodes}")
    edge_index = edge_index.detach().to("cpu", torch.long)
    if edge_index.numel() and (edge_index.min() < 0 or edge_index.max() >= num_nodes):
        raise GraphError(
            f"SemGraphConv: edge_index has node ids in [{int(edge_index.min())}, "
            f"{int(edge_index.max())}] outside [0, {num_nodes}) (num_nodes={num_nodes})")
    keys = torch.unique(edge_index[1] * num_nodes + edge_index[0])
    return keys % num_nodes, keys // num_nodes


def _edges_of(adj: object, num_rows: int) -> Tuple[Tensor, Tensor, str]:
    """(source, target, description) of a topology argument given to ``forward``."""
    if _SparseTensor is not None and isinstance(adj, _SparseTensor):
        if adj.sparse_sizes() != (num_rows, num_rows):
            raise ValueError(
                f"SemGraphConv: SparseTensor of size {tuple(adj.sparse_sizes())} does not match "
                f"x with {num_rows} nodes")
        dst, src, _ = adj.coo()
        return src, dst, f"SparseTensor {tuple(adj.sparse_sizes())}"
    if isinstance(adj, Tensor) and adj.layout != torch.strided:
        if tuple(adj.shape[:2]) != (num_rows, num_rows):
            raise ValueError(
                f"SemGraphConv: sparse adjacency of size {tuple(adj.shape)} does not match x "
                f"with {num_rows} nodes")
        dst, src = adj.to_sparse_coo().coalesce().indices()
        return src, dst, f"torch.sparse {tuple(adj.shape)} ({adj.layout})"
    if isinstance(adj, Tensor):
        if adj.dim() != 2 or adj.size(0) != 2 or adj.dtype.is_floating_point:
            raise ValueError(
                f"SemGraphConv: edge_index must be an integer tensor [2, E], got "
                f"{list(adj.shape)} ({adj.dtype})")
        if adj.numel() and (adj.min() < 0 or adj.max() >= num_rows):
            raise ValueError(
                f"SemGraphConv: edge_index {list(adj.shape)} has node ids outside "
                f"[0, {num_rows}) for x with {num_rows} nodes")
        return adj[0].long(), adj[1].long(), f"edge_index {list(adj.shape)}"
    raise ValueError(
        f"SemGraphConv: unsupported topology type {type(adj).__name__}; pass an edge_index "
        f"tensor, a torch_sparse.SparseTensor or a torch.sparse tensor")
