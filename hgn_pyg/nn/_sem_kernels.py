"""Kernels and topology helpers of :class:`~hgn_pyg.nn.SemGraphConv` (private).

An :class:`EdgeLayout` is a graph's edges sorted by ``(target, source)`` and split into self loops
and off-diagonal edges; the off-diagonal edges are kept as CSR (rows = targets) together with the
transposed pattern that the backward pass needs. The off-diagonal sum ``sum_{j != i} S_ij h_j``
runs as one dense ``[N, N]`` GEMM (:func:`dense_spmm`; for a template graph the whole
attention matrix comes from one masked row softmax, :func:`dense_attention`), as a CSR product
whose backward stays sparse (:class:`CsrSpmm`) or through torch_sparse
(:func:`sparse_adjacency`).
"""
from __future__ import annotations

import warnings
from typing import Dict, NamedTuple, Optional, Tuple

import torch
from torch import Tensor
from torch.autograd.function import once_differentiable

from hgn_pyg.errors import GraphError

try:  # optional extension: CSR kernels with cached transposes
    import torch_sparse
    from torch_sparse import SparseTensor
    from torch_sparse.storage import SparseStorage
except ImportError:  # pragma: no cover - depends on the environment
    torch_sparse = SparseTensor = SparseStorage = None

MODES = ("auto", "dense", "sparse", "scatter")
ISOLATED = ("zero", "self", "uniform")
SPARSE_BACKENDS = ("auto", "torch", "torch_sparse")

# ``mode="auto"`` on a template graph: the largest graph run densely, by batch size. Calibrated on
# the 2-core development CPU (benchmarks/README.md: the semgraphconv tables and "auto vs the
# best kernel"); CUDA is not calibrated.
AUTO_DENSE_MAX_NODES_CPU = ((2, 256), (16, 192), (None, 128))  # (max batch, max nodes)
AUTO_DENSE_MAX_NODES_CUDA = 512


def choose_mode(num_nodes: int, batch_size: Optional[int] = 1, device_type: str = "cpu") -> str:
    """The kernel ``mode="auto"`` runs for ``batch_size`` copies of a ``num_nodes`` template.

    ``"dense"`` (one ``[N, N] @ [N, B*C]`` GEMM) wins on small graphs; ``"sparse"`` (CSR) above.
    On CPU: dense when ``N <= 256`` for ``B <= 2``, ``N <= 192`` for ``B <= 16``, ``N <= 128``
    otherwise (measurements in ``benchmarks/README.md``); on CUDA up to 512 nodes (uncalibrated).
    ``"scatter"`` (``[E, B*C]`` messages) is never the fastest. The batch size is only read for
    ``128 < N <= 256`` (so a traced model with a symbolic batch needs no guard on it elsewhere);
    ``batch_size=None`` (a symbolic batch while exporting) takes the large-batch rule.
    """
    if device_type == "cuda":
        return "dense" if num_nodes <= AUTO_DENSE_MAX_NODES_CUDA else "sparse"
    limits = [n for _, n in AUTO_DENSE_MAX_NODES_CPU]
    if num_nodes <= min(limits):
        return "dense"
    if num_nodes > max(limits):
        return "sparse"
    for max_batch, max_nodes in AUTO_DENSE_MAX_NODES_CPU:
        if max_batch is None or (batch_size is not None and batch_size <= max_batch):
            return "dense" if num_nodes <= max_nodes else "sparse"
    return "sparse"  # pragma: no cover


class EdgeLayout(NamedTuple):
    """Edges sorted by ``(target, source)``, split for the kernels (``E`` edges, ``E'`` of them
    off the diagonal, ``N`` nodes)."""

    num_nodes: int
    dst: Tensor         # [E] target of every sorted edge (the softmax index)
    off_pos: Tensor     # [E'] positions of the off-diagonal edges among the sorted edges
    rowptr: Tensor      # [N + 1] CSR row pointer of the off-diagonal edges (rows = targets)
    col: Tensor         # [E'] their sources
    off_dst: Tensor     # [E'] their targets
    colptr: Tensor      # [N + 1] row pointer of the transposed pattern
    t_col: Tensor       # [E'] targets in transposed (source-major) order
    csr2csc: Tensor     # [E'] off-diagonal position of each transposed entry
    self_pos: Tensor    # positions of the self loops among the sorted edges
    self_nodes: Tensor  # their nodes
    isolated: Tensor    # nodes without any incoming edge


def edge_layout(src: Tensor, dst: Tensor, num_nodes: int, transpose: bool = True) -> EdgeLayout:
    """The layout of edges ``src -> dst`` sorted by ``dst``; ``transpose=False`` leaves the
    transposed pattern (only read by the backward pass) empty."""
    N = int(num_nodes)
    is_self = src == dst
    off = (~is_self).nonzero().view(-1)
    self_pos = is_self.nonzero().view(-1)
    off_src, off_dst = src[off], dst[off]
    if transpose:
        csr2csc = (off_src * N + off_dst).argsort()
        colptr, t_col = _rowptr(off_src[csr2csc], N), off_dst[csr2csc]
    else:
        csr2csc = t_col = off.new_empty(0)
        colptr = off.new_empty(0)
    isolated = (torch.bincount(dst, minlength=N) == 0).nonzero().view(-1)
    return EdgeLayout(N, dst, off, _rowptr(off_dst, N), off_src, off_dst, colptr, t_col, csr2csc,
                      self_pos, dst[self_pos], isolated)


def sort_edges(edge_index: Tensor, num_nodes: int, by_source: bool = True):
    """``(perm, src, dst)``: the edges sorted by ``(target, source)`` (stable), or by target
    alone with ``by_source=False`` (``perm`` is ``None`` when they already are)."""
    src, dst = edge_index[0], edge_index[1]
    if not by_source:
        if dst.numel() < 2 or bool((dst[1:] >= dst[:-1]).all()):
            return None, src, dst
        perm = dst.argsort(stable=True)
    else:
        perm = (dst * num_nodes + src).argsort(stable=True)
    return perm, src[perm], dst[perm]


def _rowptr(sorted_index: Tensor, size: int) -> Tensor:
    ptr = torch.zeros(size + 1, dtype=torch.long, device=sorted_index.device)
    ptr[1:] = torch.bincount(sorted_index, minlength=size).cumsum(0)
    return ptr


def edge_softmax(logits: Tensor, dst: Tensor, num_nodes: int) -> Tensor:
    """Softmax of ``logits [E]`` over the edges of each target ``dst`` (as
    ``torch_geometric.utils.softmax``, in half its operations: measured 51 vs 114 us at 3,136
    edges). The per-target maximum is subtracted detached; every denominator is >= 1."""
    top = logits.new_zeros(num_nodes).scatter_reduce_(0, dst, logits.detach(), "amax",
                                                      include_self=False)
    e = (logits - top.index_select(0, dst)).exp()
    return e / e.new_zeros(num_nodes).index_add_(0, dst, e).index_select(0, dst)


MASKED_LOGIT = -9e15  # the published mask of a non-edge (docs/published_model.md §2.1)


def reads_diagonal(self_pos: Tensor, isolated_nodes: Tensor, isolated: str) -> bool:
    """Whether any node reads itself (a self loop, or an isolated node under ``"self"`` /
    ``"uniform"``): only then is ``x W_0`` computed."""
    return self_pos.numel() > 0 or (isolated_nodes.numel() > 0 and isolated != "zero")


def dense_attention(logits: Tensor, flat: Tensor, num_nodes: int, isolated_nodes: Tensor,
                    isolated: str) -> Tensor:
    """The whole attention matrix ``S [N, N]`` (rows = targets, self weights on the diagonal)
    as published: ``logits`` scattered to the positions ``flat = target * N + source`` of a
    matrix masked with :data:`MASKED_LOGIT`, then one row softmax. A row without edges comes
    out uniform (``"uniform"``), 1 on its diagonal (``"self"``) or 0 (``"zero"``). No position
    may appear twice in ``flat`` (a template graph)."""
    N = num_nodes
    work = torch.promote_types(logits.dtype, torch.float32)  # -9e15 overflows half precision
    L = torch.full((N * N,), MASKED_LOGIT, dtype=work, device=logits.device)
    L = L.scatter(0, flat, logits.to(work))
    if isolated_nodes.numel() > 0 and isolated == "self":
        L = L.index_fill(0, isolated_nodes * (N + 1), 0.0)
    S = torch.softmax(L.view(N, N), dim=1)
    if isolated_nodes.numel() > 0 and isolated == "zero":
        S = S.index_fill(0, isolated_nodes, 0.0)
    return S


def dense_conv(x: Tensor, weight: Tensor, S: Tensor, diagonal: bool = True,
               bias: Optional[Tensor] = None) -> Tensor:
    """``S_ii x_i W_0 + sum_{j != i} S_ij x_j W_1 + bias`` for node-major ``x [N * B, Cin]`` and
    the attention matrix ``S [N, N]``, as ``[N, B * Cout]`` (``bias [B * Cout]``: the per-channel
    bias repeated per copy); ``diagonal=False`` when ``S`` has a zero diagonal (``x W_0`` is
    then never computed). One fused ``addmm``, no separate bias pass."""
    N = S.size(0)
    h1 = (x @ weight[1]).view(N, -1)
    if not diagonal:
        return S @ h1 if bias is None else torch.addmm(bias, S, h1)
    diag = S.diagonal()
    term = diag.unsqueeze(-1) * (x @ weight[0]).view(N, -1)
    if bias is not None:  # in place on the fresh product (its backward reads only its inputs)
        term.add_(bias)
    # S with a zero diagonal (masked_fill, not diag_embed: the legacy ONNX exporter lacks it;
    # the mask from arange, not a bool eye: ONNX Runtime has no boolean EyeLike)
    ids = torch.arange(N, device=S.device)
    return torch.addmm(term, S.masked_fill(ids.unsqueeze(1) == ids, 0.0), h1)


def dense_spmm(layout: EdgeLayout, values: Tensor, h: Tensor,
               uniform_rows: Optional[Tensor] = None, acc: Optional[Tensor] = None) -> Tensor:
    """``acc + S_off @ h`` with ``S_off`` built as a dense ``[N, N]`` matrix (duplicate edges
    add); ``uniform_rows`` (nodes without incoming edges) get ``1/N`` off the diagonal."""
    N = layout.num_nodes
    flat = layout.off_dst * N + layout.col
    S = h.new_zeros(N * N).index_add(0, flat, values.to(h.dtype))
    if uniform_rows is not None:
        S = S.view(N, N).index_fill(0, uniform_rows, 1.0 / N).view(-1)
        S = S.index_fill(0, uniform_rows * (N + 1), 0.0)
    return S.view(N, N) @ h if acc is None else torch.addmm(acc, S.view(N, N), h)


def diagonal_term(alpha: Tensor, h0: Tensor, h1: Tensor, layout: EdgeLayout, isolated: str,
                  batch: Optional[Tensor], uniform_in_out: bool) -> Tensor:
    """``S_ii h0_i`` per node: ``S_ii`` is the self-loop attention, and for a node without
    incoming edges 1 (``"self"``) or ``1/n`` (``"uniform"``, ``n`` the nodes of its graph, whose
    other nodes then add ``h1_j / n``: here, unless the off-diagonal product does it,
    ``uniform_in_out``)."""
    N = layout.num_nodes
    diag = alpha.new_zeros(N).index_add(0, layout.self_nodes, alpha.index_select(0, layout.self_pos))
    iso, rest = layout.isolated, None
    if iso.numel() > 0 and isolated != "zero":
        if isolated == "self":
            weight = torch.ones_like(iso, dtype=alpha.dtype)
        elif batch is None:
            weight = torch.full_like(iso, 1.0 / N, dtype=alpha.dtype)
            if not uniform_in_out:  # sum_{j != i} h1_j / N in closed form
                rest = (h1.sum(0, keepdim=True) - h1.index_select(0, iso)) / N
        else:  # uniform over i's own graph: sum_{j in g(i), j != i} h1_j / n_g
            g = batch.index_select(0, iso)
            count = torch.bincount(batch).index_select(0, g).to(alpha.dtype)
            total = h1.new_zeros(int(batch.max()) + 1, h1.size(1)).index_add(0, batch, h1)
            rest = (total.index_select(0, g) - h1.index_select(0, iso)) / count.to(
                h1.dtype).unsqueeze(-1)
            weight = 1.0 / count
        diag = diag.index_add(0, iso, weight)
    # (not addcmul: its backward multiplies h0 by the scalar ``value`` once more)
    term = diag.to(h0.dtype).unsqueeze(-1) * h0
    return term if rest is None else term.index_add_(0, iso, rest)


def traced_conv(alpha: Tensor, src: Tensor, dst: Tensor, h0: Tensor, h1: Tensor, isolated: str,
                batch: Optional[Tensor]) -> Tensor:
    """``S_ii h0_i + sum_{j != i} S_ji h1_j`` over the edges ``src -> dst`` in any order, with
    the rule ``isolated`` for nodes without incoming edges, as :class:`EdgeLayout`'s kernels
    compute it but with no data-dependent shape and no host synchronisation (every edge is
    gathered and summed with a 0/1 self-loop mask instead of being split off): the typed path
    under ``torch.compile`` / ``torch.export``. ``h0, h1 [N, F]``; ``alpha [E]``."""
    N = h1.size(0)
    is_self = src == dst
    diag = alpha.new_zeros(N).index_add(0, dst, alpha.masked_fill(~is_self, 0.0))
    off = alpha.masked_fill(is_self, 0.0).to(h1.dtype)
    out = h1.new_zeros(h1.shape).index_add(0, dst, h1.index_select(0, src) * off.unsqueeze(-1))
    if isolated != "zero":
        iso = alpha.new_zeros(N).index_add(0, dst, torch.ones_like(alpha)) == 0
        if isolated == "self":
            diag = diag + iso.to(diag.dtype)
        else:  # uniform over the node's graph (graph ids < N: no count of graphs needed)
            if batch is None:
                n = torch.full_like(diag, N)
                total = h1.sum(0, keepdim=True)
            else:
                n = diag.new_zeros(N).index_add(0, batch, torch.ones_like(diag)).index_select(0, batch)
                total = h1.new_zeros(h1.shape).index_add(0, batch, h1).index_select(0, batch)
            w = iso.to(diag.dtype) / n
            diag = diag + w
            out = out + (total - h1) * w.to(h1.dtype).unsqueeze(-1)
    return out + diag.to(h0.dtype).unsqueeze(-1) * h0


def sparse_adjacency(layout: EdgeLayout, values: Tensor, use_torch_sparse: bool):
    """The off-diagonal attention as ``adj_t`` (rows = targets): a torch_sparse ``SparseTensor``
    with the layout's cached transpose (differentiable values), or a ``torch.sparse`` CSR tensor
    with detached values (:func:`csr_spmm` takes the values with their history)."""
    N = layout.num_nodes
    if use_torch_sparse:
        storage = SparseStorage(row=layout.off_dst, rowptr=layout.rowptr, col=layout.col,
                                value=values, sparse_sizes=(N, N), colptr=layout.colptr,
                                csr2csc=layout.csr2csc, is_sorted=True, trust_data=True)
        return SparseTensor.from_storage(storage)
    return _csr(layout.rowptr, layout.col, values.detach(), N)


def csr_spmm(values: Tensor, h: Tensor, layout: EdgeLayout, acc: Optional[Tensor] = None,
             matrix: Optional[Tensor] = None) -> Tensor:
    """``acc + A @ h`` for the CSR matrix of ``layout``'s off-diagonal pattern holding
    ``values``, through :class:`CsrSpmm` (gradients for the values and ``h`` without a dense
    ``N x N``). ``acc``, a fresh tensor no backward reads, is updated in place; ``matrix``: ``A``
    already built (:func:`sparse_adjacency`, detached ``values``)."""
    return CsrSpmm.apply(values, h, layout.rowptr, layout.col, layout.off_dst, layout.colptr,
                         layout.t_col, layout.csr2csc, acc, matrix)


def _csr(rowptr: Tensor, col: Tensor, values: Tensor, num_cols: int) -> Tensor:
    with warnings.catch_warnings():  # "Sparse CSR tensor support is in beta state"
        warnings.simplefilter("ignore", UserWarning)
        return torch.sparse_csr_tensor(rowptr, col, values, (rowptr.numel() - 1, num_cols),
                                       check_invariants=False)


class CsrSpmm(torch.autograd.Function):
    """``out = acc + A @ h`` (``acc`` optional, updated in place) with ``A`` a CSR matrix of
    fixed pattern and learnable ``values``.

    Backward: ``dh = A^T @ dout`` (the cached transposed pattern) and
    ``dvalues_k = <dout[row_k], h[col_k]>`` gathered edge by edge (:func:`edge_dot`): O(E F)
    work, where torch's own CSR backward materialises a dense ``N x N`` gradient and
    ``torch.sparse.sampled_addmm`` runs a dense GEMM on CPU.
    """

    @staticmethod
    def forward(ctx, values, h, rowptr, col, row, t_rowptr, t_col, csr2csc, acc=None, A=None):
        ctx.save_for_backward(values, h, col, row, t_rowptr, t_col, csr2csc)
        A = _csr(rowptr, col, values, h.size(0)) if A is None else A
        if acc is None:
            return torch.sparse.mm(A, h)
        ctx.mark_dirty(acc)  # in place: no zero-filled result and no copy of it
        return acc.addmm_(A, h)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad):
        values, h, col, row, t_rowptr, t_col, csr2csc = ctx.saved_tensors
        grad = grad.contiguous()
        grad_values = grad_h = None
        if ctx.needs_input_grad[1]:
            grad_h = torch.sparse.mm(_csr(t_rowptr, t_col, values[csr2csc], grad.size(0)), grad)
        if ctx.needs_input_grad[0]:
            grad_values = edge_dot(grad, h, row, col)
        grad_acc = grad if ctx.needs_input_grad[8] else None
        return grad_values, grad_h, None, None, None, None, None, None, grad_acc, None


# Gathered elements per block of edge_dot. On CPU small blocks stay in cache and reuse the
# allocator's memory: at 31k edges x 128 channels, blocks of 2^16 elements ran 4.8 ms against
# 45 ms for one [E, F] gather (docs/results.md, "Second pass"); elsewhere one
# block of up to 2^24.
EDGE_DOT_BLOCK_CPU = 1 << 16
EDGE_DOT_BLOCK = 1 << 24


def edge_dot(a: Tensor, b: Tensor, row: Tensor, col: Tensor) -> Tensor:
    """``<a[row_k], b[col_k]>`` for every edge ``k``, in blocks of edges of bounded size."""
    E, F = row.numel(), a.size(1)
    out = a.new_empty(E)
    block = EDGE_DOT_BLOCK_CPU if a.device.type == "cpu" else EDGE_DOT_BLOCK
    step = max(1, block // max(1, F))
    for s in range(0, E, step):
        gathered = a.index_select(0, row[s:s + step]).mul_(b.index_select(0, col[s:s + step]))
        torch.sum(gathered, 1, out=out[s:s + step])
    return out


# ---------------------------------------------------------------------- topology arguments
def template_edges(edge_index, num_nodes: int) -> Tensor:
    """A template's ``[2, E]`` edges (CPU, long), validated: ids in range, no edge twice."""
    if SparseTensor is not None and isinstance(edge_index, SparseTensor):
        dst, src, _ = edge_index.coo()
        edge_index = torch.stack([src, dst])
    elif isinstance(edge_index, Tensor) and edge_index.layout != torch.strided:
        edge_index = edge_index.to_sparse_coo().coalesce().indices().flip(0)
    if (not isinstance(edge_index, Tensor) or edge_index.dim() != 2 or edge_index.size(0) != 2
            or edge_index.dtype.is_floating_point or edge_index.is_complex()):
        shape = list(edge_index.shape) if isinstance(edge_index, Tensor) else type(edge_index)
        raise GraphError(f"SemGraphConv: edge_index must be an integer tensor [2, E], got {shape}")
    if num_nodes is None or num_nodes <= 0:
        raise GraphError(f"SemGraphConv: num_nodes must be positive, got {num_nodes}")
    edge_index = edge_index.detach().to("cpu", torch.long)
    if edge_index.numel() and (edge_index.min() < 0 or edge_index.max() >= num_nodes):
        raise GraphError(
            f"SemGraphConv: edge_index has node ids in [{int(edge_index.min())}, "
            f"{int(edge_index.max())}] outside [0, {num_nodes}) (num_nodes={num_nodes})")
    keys = edge_index[1] * num_nodes + edge_index[0]
    uniq, counts = torch.unique(keys, return_counts=True)
    if bool((counts > 1).any()):
        k = int(uniq[counts > 1][0])
        cols = (keys == k).nonzero().view(-1).tolist()
        raise GraphError(
            f"SemGraphConv: edge ({k % num_nodes} -> {k // num_nodes}) appears in columns {cols} "
            f"of the template edge_index; every column is its own edge type, so list each edge "
            f"once (torch_geometric.utils.coalesce)")
    return edge_index


def template_buffers(edge_index, num_nodes: int) -> Tuple[Tensor, Dict[str, Optional[Tensor]]]:
    """A template's validated ``[2, E]`` edges and the tensors its layer keeps: ``perm`` (template
    column of each edge in ``(target, source)`` order; ``None`` when the columns already are in
    that order, as HGN's), ``flat`` (``target * N + source`` per column: the dense kernel's
    positions) and the :class:`EdgeLayout` fields."""
    template = template_edges(edge_index, num_nodes)
    perm, src, dst = sort_edges(template, num_nodes)
    buffers: Dict[str, Optional[Tensor]] = {
        "perm": None if torch.equal(perm, torch.arange(perm.numel())) else perm,
        "flat": template[1] * num_nodes + template[0]}
    buffers.update(zip(EdgeLayout._fields[1:], edge_layout(src, dst, num_nodes)[1:]))
    return template, buffers


def check_edge_type(edge_index: Tensor, edge_type, num_edge_types: int) -> None:
    """Raise ValueError unless ``edge_type`` is an integer ``[E]`` tensor for the ``E`` columns
    of ``edge_index`` with values in ``[0, num_edge_types)`` (the range is not checked while
    compiling or exporting: it would need the values on the host)."""
    if edge_type is None:
        raise ValueError("SemGraphConv: a typed layer (num_edge_types) needs edge_type [E]")
    if not isinstance(edge_type, Tensor):
        raise ValueError(f"SemGraphConv: edge_type must be an integer tensor [E], got "
                         f"{type(edge_type).__name__}")
    if edge_type.dtype.is_floating_point or edge_type.is_complex() or edge_type.dtype == torch.bool:
        raise ValueError(f"SemGraphConv: edge_type must be an integer tensor (torch.long), got "
                         f"dtype {edge_type.dtype}")
    if edge_type.shape != edge_index.shape[1:]:
        raise ValueError(f"SemGraphConv: edge_type must be an integer tensor "
                         f"[{edge_index.size(1)}], got {list(edge_type.shape)}")
    if (not torch.compiler.is_compiling() and edge_type.numel()
            and not _in_range(edge_type, num_edge_types)):
        raise ValueError(f"SemGraphConv: edge_type holds values in [{int(edge_type.min())}, "
                         f"{int(edge_type.max())}] outside [0, {num_edge_types})")


def typed_layout(edge_index, edge_type, num_nodes: int, num_edge_types: int,
                 transpose: bool = True) -> Tuple[EdgeLayout, Tensor, Optional[Tensor]]:
    """The layout of typed edges, their types in the layout's order and the permutation from
    the caller's columns to that order (``None``: already in it), validated (``transpose`` as
    in :func:`edge_layout`)."""
    check_edge_index(edge_index, num_nodes)
    check_edge_type(edge_index, edge_type, num_edge_types)
    perm, src, dst = sort_edges(edge_index.long(), num_nodes, by_source=False)
    if perm is not None:
        edge_type = edge_type.index_select(0, perm)
    return edge_layout(src, dst, num_nodes, transpose=transpose), edge_type.long(), perm


def count_copies(template: Tensor, N: int, adj, num_rows: int) -> int:
    """How many copies of ``template`` (``[2, E]`` on ``N`` nodes) the topology ``adj`` given with
    ``num_rows`` nodes is (1, or ``k`` for a PyG batch of ``k`` copies); raise if it is not."""
    E = template.size(1)
    if num_rows % N != 0:
        raise ValueError(f"SemGraphConv: x has {num_rows} nodes, not a multiple of num_nodes={N}")
    copies = num_rows // N
    src, dst, desc = _edges_of(adj, num_rows)
    if src.numel() < copies * E:
        raise GraphError(
            f"SemGraphConv: the given topology ({desc}) has {src.numel()} edges, but {copies} "
            f"cop{'y' if copies == 1 else 'ies'} of the layer's graph have {copies * E} "
            f"(num_nodes={N}, edges={E}); for graphs of other shapes pass edge_type")
    graph = dst // N
    keys = (torch.unique(graph * (N * N) + (dst % N) * N + (src % N))
            if bool((graph == src // N).all()) else None)
    own = torch.sort(template[1] * N + template[0]).values.to(src.device)
    ref = own.unsqueeze(0) + torch.arange(copies, device=src.device).unsqueeze(1) * (N * N)
    if keys is None or not torch.equal(keys, ref.view(-1)):
        raise GraphError(
            f"SemGraphConv: the given topology ({desc}, x with {num_rows} nodes) is not "
            f"{'the' if copies == 1 else f'a batch of {copies} copies of the'} graph this layer "
            f"was built for (num_nodes={N}, edges={E}); for other graphs pass edge_type")
    return copies


def _edges_of(adj, num_rows) -> Tuple[Tensor, Tensor, str]:
    """(source, target, description) of a topology argument given to ``forward``;
    ``num_rows``: ``N`` (square) or ``(targets, sources)`` of an ``adj_t``."""
    shape = (num_rows, num_rows) if isinstance(num_rows, int) else tuple(num_rows)
    if SparseTensor is not None and isinstance(adj, SparseTensor):
        if adj.sparse_sizes() != shape:
            raise ValueError(f"SemGraphConv: SparseTensor of size {tuple(adj.sparse_sizes())} "
                             f"does not match x with {num_rows} nodes")
        dst, src, _ = adj.coo()
        return src, dst, f"SparseTensor {tuple(adj.sparse_sizes())}"
    if isinstance(adj, Tensor) and adj.layout != torch.strided:
        if tuple(adj.shape[:2]) != shape:
            raise ValueError(f"SemGraphConv: sparse adjacency of size {tuple(adj.shape)} does "
                             f"not match x with {num_rows} nodes")
        dst, src = adj.to_sparse_coo().coalesce().indices()
        return src, dst, f"torch.sparse {tuple(adj.shape)} ({adj.layout})"
    check_edge_index(adj, max(shape))
    return adj[0].long(), adj[1].long(), f"edge_index {list(adj.shape)}"


def is_typed_adjacency(adj) -> bool:
    """Whether ``adj`` is a sparse ``adj_t`` whose values are integer edge types (as
    ``RGCNConv`` takes them)."""
    if SparseTensor is not None and isinstance(adj, SparseTensor):
        value = adj.storage.value()
        return value is not None and not value.dtype.is_floating_point
    return (isinstance(adj, Tensor) and adj.layout != torch.strided
            and not adj.dtype.is_floating_point and adj.dtype != torch.bool)


def typed_edges(adj, num_rows) -> Tuple[Tensor, Tensor]:
    """``(edge_index [2, E], edge_type [E])`` of a typed ``adj_t`` (rows = targets, values =
    edge types), in its row-major order; ``num_rows``: ``N`` or ``(targets, sources)``."""
    src, dst, _ = _edges_of(adj, num_rows)
    if SparseTensor is not None and isinstance(adj, SparseTensor):
        types = adj.storage.value()
    else:
        types = adj.to_sparse_coo().coalesce().values()
    return torch.stack([src, dst]), types


def edge_index_of(adj, num_rows: int) -> Tensor:
    """``[2, E]`` (source, target) of any topology argument (edge_index, ``adj_t``)."""
    src, dst, _ = _edges_of(adj, num_rows)
    return torch.stack([src, dst])


def _in_range(index: Tensor, size: int) -> bool:
    """All of ``index`` in ``[0, size)`` (one reduction, one synchronisation)."""
    lo, hi = torch.aminmax(index)
    return bool((lo >= 0) & (hi < size))


def check_edge_index(edge_index, num_rows: int) -> None:
    """Raise ValueError unless ``edge_index`` is an integer ``[2, E]`` tensor on ``num_rows``
    nodes."""
    if (not isinstance(edge_index, Tensor) or edge_index.dim() != 2 or edge_index.size(0) != 2
            or edge_index.dtype.is_floating_point):
        what = (f"{list(edge_index.shape)} ({edge_index.dtype})" if isinstance(edge_index, Tensor)
                else type(edge_index).__name__)
        raise ValueError(f"SemGraphConv: edge_index must be an integer tensor [2, E], got {what}")
    if (not torch.compiler.is_compiling() and edge_index.numel()
            and not _in_range(edge_index, num_rows)):
        raise ValueError(f"SemGraphConv: edge_index {list(edge_index.shape)} has node ids "
                         f"outside [0, {num_rows}) for x with {num_rows} nodes")
