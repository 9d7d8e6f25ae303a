"""SemGraphConv against an independent dense statement of docs/published_model.md §2.1.

Tolerances: float64 against the dense reference, ``atol=rtol=1e-9``; float32 agreement between
the kernels ``dense`` / ``sparse`` / ``scatter`` and between a PyG batch of different graphs and
each graph alone (forward and every gradient), ``atol=rtol=1e-5``.
"""
import importlib.util

import numpy as np
import pytest
import torch
from torch_geometric.data import Batch, Data

from hgn_pyg.errors import GraphError
from hgn_pyg.nn import SemGraphConv, choose_mode

MODES = ("dense", "sparse", "scatter")
F64 = dict(atol=1e-9, rtol=1e-9)
F32 = dict(atol=1e-5, rtol=1e-5)
HAS_TORCH_SPARSE = importlib.util.find_spec("torch_sparse") is not None


def _test_graph():
    """9 nodes, (source, target) pairs, unsorted, directed edges.

    node 0..3: self loops; 4, 5: no self loop; 6: only a self loop; 7, 8: no incoming edge
    (8 has an outgoing one, 7 none at all).
    """
    pairs = [(1, 0), (0, 0), (0, 1), (2, 1), (1, 1), (3, 2), (2, 2), (1, 2), (3, 3),
             (4, 3), (3, 4), (5, 4), (4, 5), (0, 5), (6, 6), (8, 5)]
    return torch.tensor(pairs, dtype=torch.long).t(), 9


def dense_reference(x, weight, logits, bias, edge_index, num_nodes, isolated):
    """§2.1 literally: L = -9e15 off the pattern, L[t_k, s_k] = e_k for column k of edge_index
    (no edge twice), S = softmax_j(L), out_i = S_ii h0_i + sum_{j != i} S_ij h1_j + bias."""
    N = num_nodes
    A = torch.zeros(N, N, dtype=torch.bool)
    A[edge_index[1], edge_index[0]] = True
    L = torch.full((N, N), -9e15, dtype=x.dtype)
    L = L.index_put((edge_index[1], edge_index[0]), logits)
    S = torch.softmax(L, dim=1)
    empty = ~A.any(1)
    if isolated == "zero":
        S = torch.where(empty.unsqueeze(1), torch.zeros_like(S), S)
    elif isolated == "self":
        S = torch.where(empty.unsqueeze(1), torch.eye(N, dtype=x.dtype), S)
    eye = torch.eye(N, dtype=x.dtype)
    h0 = x @ weight[0]
    h1 = x @ weight[1]
    out = (S * eye) @ h0 + (S * (1 - eye)) @ h1
    return out + bias if bias is not None else out


def _make(mode, isolated="uniform", dtype=torch.float64, cin=5, cout=4, seed=0, graph=None):
    ei, N = graph or _test_graph()
    torch.manual_seed(seed)
    conv = SemGraphConv(cin, cout, ei, N, isolated=isolated, mode=mode).to(dtype)
    with torch.no_grad():
        conv.edge_logits.normal_()
        conv.bias.normal_()
    return conv


def _grads(out, tensors, seed=123):
    g = torch.Generator().manual_seed(seed)
    r = torch.randn(out.shape, generator=g, dtype=out.dtype)
    return torch.autograd.grad((out * r).sum(), tensors)


def _check_against_reference(conv, x, ei, N, isolated):
    """Output and the gradients of every parameter and of ``x`` against ``dense_reference``."""
    out = conv(x)
    params = [conv.weight, conv.edge_logits, conv.bias]
    leaves = [p.detach().clone().requires_grad_() for p in params]
    xr = x.detach().clone().requires_grad_()
    ref = dense_reference(xr, *leaves, ei, N, isolated)
    torch.testing.assert_close(out, ref, **F64)
    for got, exp in zip(_grads(out, params + [x]), _grads(ref, leaves + [xr])):
        torch.testing.assert_close(got, exp, **F64)


@pytest.mark.parametrize("isolated", ["uniform", "zero", "self"])
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("batched", [False, True])
def test_against_dense_reference(mode, isolated, batched):
    conv = _make(mode, isolated)
    ei, N = _test_graph()
    x = torch.randn((3, N, 5) if batched else (N, 5), dtype=torch.float64, requires_grad=True)
    _check_against_reference(conv, x, ei, N, isolated)


@pytest.mark.parametrize("isolated", ["uniform", "zero", "self"])
@pytest.mark.parametrize("mode", MODES)
def test_graph_without_self_loops(mode, isolated):
    """No self loop anywhere (the dense kernel then never computes x W_0 unless an isolated node
    needs it), one isolated node; forward and gradients against the dense reference."""
    pairs = [(1, 0), (2, 0), (0, 1), (2, 1), (1, 2), (3, 2), (2, 3), (4, 3)]  # node 4: isolated
    ei, N = torch.tensor(pairs).t(), 5
    conv = _make(mode, isolated, graph=(ei, N))
    x = torch.randn(2, N, 5, dtype=torch.float64, requires_grad=True)
    _check_against_reference(conv, x, ei, N, isolated)


@pytest.mark.parametrize("block", [1, 7, 64, 1 << 16])
def test_edge_dot_blocks(monkeypatch, block):
    """The values gradient of the CSR product, edge by edge in blocks of any size (float64,
    1e-12) against a NumPy statement; no edges gives an empty result."""
    from hgn_pyg.nn import _sem_kernels as K

    monkeypatch.setattr(K, "EDGE_DOT_BLOCK_CPU", block)
    g = torch.Generator().manual_seed(3)
    a, b = torch.randn(11, 6, generator=g, dtype=torch.float64), torch.randn(11, 6, generator=g,
                                                                              dtype=torch.float64)
    row, col = torch.randint(11, (37,), generator=g), torch.randint(11, (37,), generator=g)
    ref = np.einsum("ec,ec->e", a.numpy()[row.numpy()], b.numpy()[col.numpy()])
    torch.testing.assert_close(K.edge_dot(a, b, row, col), torch.from_numpy(ref),
                               atol=1e-12, rtol=1e-12)
    assert K.edge_dot(a, b, row[:0], col[:0]).shape == (0,)


def test_edge_logits_follow_template_columns():
    """Template column k has edge type k; a version-1 state (logits sorted by (target, source),
    the published order) is permuted on load; duplicate template edges are refused."""
    ei, N = _test_graph()
    conv = SemGraphConv(2, 2, ei, N)
    assert conv.num_edges == ei.size(1) == conv.edge_logits.numel()
    assert torch.equal(conv.edge_index, ei)
    A = torch.zeros(N, N, dtype=torch.bool)
    A[ei[1], ei[0]] = True
    rows, cols = A.nonzero().t()  # row-major enumeration of the nonzeros of A
    col_of = {(int(s), int(d)): k for k, (s, d) in enumerate(ei.t())}
    sorted_to_col = torch.tensor([col_of[(int(c), int(r))] for r, c in zip(rows, cols)])
    old = conv.state_dict()
    old["edge_logits"] = torch.arange(ei.size(1), dtype=torch.float32)  # sorted-order logits
    old._metadata[""]["version"] = 1
    conv.load_state_dict(old)
    expect = torch.empty(ei.size(1))
    expect[sorted_to_col] = torch.arange(ei.size(1), dtype=torch.float32)
    assert torch.equal(conv.edge_logits.detach(), expect)
    assert conv.state_dict()._metadata[""]["version"] == 2
    with pytest.raises(GraphError, match=r"appears in columns \[1, 16\]"):
        SemGraphConv(2, 2, torch.cat([ei, ei[:, 1:2]], 1), N)


@pytest.mark.parametrize("isolated", ["uniform", "zero"])
def test_modes_agree_float32(isolated):
    ei, N = _test_graph()
    x = torch.randn(4, N, 5)
    results = []
    for mode in MODES + ("auto",):
        conv = _make(mode, isolated, dtype=torch.float32)
        xx = x.clone().requires_grad_()
        out = conv(xx)
        results.append((out, _grads(out, [conv.weight, conv.edge_logits, conv.bias, xx])))
    for out, grads in results[1:]:
        torch.testing.assert_close(out, results[0][0], **F32)
        for g, g0 in zip(grads, results[0][1]):
            torch.testing.assert_close(g, g0, **F32)


@pytest.mark.parametrize("mode", MODES)
def test_mesh_like_graph_random_logits(mode):
    """A larger graph (grid with diagonals, self loops, fake isolated slots), float32 modes."""
    side, fake = 8, 6
    N = side * side + fake
    pairs = []
    for v in range(side * side):
        r, c = divmod(v, side)
        pairs.append((v, v))
        for u in ([v + 1] if c + 1 < side else []) + ([v + side] if r + 1 < side else []) + (
                [v + side + 1] if c + 1 < side and r + 1 < side else []):
            pairs += [(v, u), (u, v)]
    graph = (torch.tensor(pairs).t(), N)
    conv = _make(mode, "uniform", dtype=torch.float64, cin=6, cout=7, graph=graph)
    x = torch.randn(2, N, 6, dtype=torch.float64, requires_grad=True)
    out = conv(x)
    params = [conv.weight, conv.edge_logits, conv.bias]
    leaves = [p.detach().clone().requires_grad_() for p in params]
    xr = x.detach().clone().requires_grad_()
    ref = dense_reference(xr, *leaves, graph[0], N, "uniform")
    torch.testing.assert_close(out, ref, **F64)
    for got, exp in zip(_grads(out, params + [x]), _grads(ref, leaves + [xr])):
        torch.testing.assert_close(got, exp, **F64)


@pytest.mark.parametrize("mode", MODES)
def test_permutation_equivariance(mode):
    ei, N = _test_graph()
    conv = _make(mode, "uniform")
    perm = torch.randperm(N, generator=torch.Generator().manual_seed(3))  # new id of node i
    conv2 = SemGraphConv(5, 4, perm[ei], N, isolated="uniform", mode=mode).double()
    with torch.no_grad():  # same columns, renamed nodes: the same logits
        conv2.weight.copy_(conv.weight)
        conv2.bias.copy_(conv.bias)
        conv2.edge_logits.copy_(conv.edge_logits)
    x = torch.randn(2, N, 5, dtype=torch.float64)
    x_perm = torch.empty_like(x)
    x_perm[:, perm] = x
    torch.testing.assert_close(conv2(x_perm)[:, perm], conv(x), **F64)


@pytest.mark.parametrize("mode", MODES)
def test_pyg_batch_of_copies(mode):
    ei, N = _test_graph()
    conv = _make(mode, "uniform", dtype=torch.float32)
    xs = [torch.randn(N, 5) for _ in range(3)]
    batch = Batch.from_data_list([Data(x=x, edge_index=ei, num_nodes=N) for x in xs])
    out = conv(batch.x, batch.edge_index)
    assert out.shape == (3 * N, 4)
    torch.testing.assert_close(out, torch.cat([conv(x) for x in xs]), **F32)
    torch.testing.assert_close(out.view(3, N, 4), conv(torch.stack(xs)), **F32)
    # [B, k*N, C] with the batch's topology: B poses of a k-graph batch
    xb = torch.randn(2, 3 * N, 5)
    outb = conv(xb, batch.edge_index)
    assert outb.is_contiguous() and outb.shape == (2, 3 * N, 4)
    torch.testing.assert_close(outb.view(6, N, 4), conv(xb.view(6, N, 5)), **F32)
    with pytest.raises(GraphError, match="copies"):
        conv(batch.x, batch.edge_index[:, 1:].flip(0))


def test_topology_inputs_and_errors():
    ei, N = _test_graph()
    conv = _make("sparse", "uniform")
    x = torch.randn(2, N, 5, dtype=torch.float64)
    ref = conv(x)
    torch.testing.assert_close(conv(x, torch.cat([ei, ei[:, :1]], 1)), ref, **F64)  # duplicate
    torch.testing.assert_close(conv(x, conv.edge_index.flip(1)), ref, **F64)
    values = torch.ones(ei.size(1))
    adj_t = torch.sparse_coo_tensor(ei.flip(0), values, (N, N), check_invariants=True).coalesce()
    torch.testing.assert_close(conv(x, adj_t), ref, **F64)
    torch.testing.assert_close(conv(x, adj_t.to_sparse_csr()), ref, **F64)
    with pytest.raises(GraphError, match="not the graph"):
        conv(x, torch.cat([ei[:, 1:], ei[:, 1:2]], 1))  # drops (1, 0), a duplicate keeps the count
    with pytest.raises(ValueError, match=r"edges"):
        conv(x, ei[:, :3])
    with pytest.raises(ValueError, match="not the graph"):
        conv(x, adj_t.t().coalesce())  # reversed edges: a different (directed) pattern
    with pytest.raises(ValueError, match=r"\[2, 9, 6\]"):
        conv(torch.randn(2, N, 6, dtype=torch.float64))
    with pytest.raises(ValueError, match="num_nodes=9"):
        conv(torch.randn(2 * N, 5, dtype=torch.float64))
    with pytest.raises(ValueError, match="either a template"):
        SemGraphConv(2, 2, ei, N, num_edge_types=4)
    with pytest.raises(ValueError, match="either a template"):
        SemGraphConv(2, 2)
    typed = SemGraphConv(5, 4, num_edge_types=3)
    with pytest.raises(ValueError, match="needs edge_type"):
        typed(x[0], ei)
    with pytest.raises(ValueError, match=r"outside \[0, 3\)"):
        typed(x[0], ei, torch.arange(ei.size(1)))
    with pytest.raises(ValueError, match=r"edge_type must be an integer tensor \[16\]"):
        typed(x[0], ei, torch.zeros(3, dtype=torch.long))
    with pytest.raises(ValueError, match=r"outside \[0, 4\)"):
        typed(x[0, :4], ei, torch.zeros(ei.size(1), dtype=torch.long))
    bad = torch.tensor([[0, 9], [1, 1]])
    with pytest.raises(GraphError, match="outside"):
        SemGraphConv(2, 2, bad, 9)
    with pytest.raises(ValueError, match="mode"):
        SemGraphConv(2, 2, ei, N, mode="fast")


@pytest.mark.skipif(not HAS_TORCH_SPARSE, reason="torch_sparse not installed")
def test_torch_sparse_inputs():
    from torch_sparse import SparseTensor

    ei, N = _test_graph()
    conv = _make("sparse", "uniform")
    x = torch.randn(2, N, 5, dtype=torch.float64, requires_grad=True)
    adj_t = SparseTensor(row=ei[1], col=ei[0], sparse_sizes=(N, N))
    torch.testing.assert_close(conv(x, adj_t), conv(x), **F64)
    conv_ts = SemGraphConv(5, 4, adj_t, N).double()  # topology given as a SparseTensor
    keys = [torch.sort(c.edge_index[1] * N + c.edge_index[0]).values for c in (conv_ts, conv)]
    assert torch.equal(*keys)
    with pytest.raises(ValueError, match="not the graph"):
        conv(x, adj_t.t())
    # the torch_sparse kernel itself against the dense reference, with gradients
    out = conv(x)
    leaves = [p.detach().clone().requires_grad_() for p in (conv.weight, conv.edge_logits, conv.bias)]
    xr = x.detach().clone().requires_grad_()
    ref = dense_reference(xr, *leaves, ei, N, "uniform")
    torch.testing.assert_close(out, ref, **F64)
    for got, exp in zip(_grads(out, [conv.weight, conv.edge_logits, conv.bias, x]),
                        _grads(ref, leaves + [xr])):
        torch.testing.assert_close(got, exp, **F64)


def test_message_and_aggregate_matches_message():
    """PyG conventions: propagate() over edge_index (message) and over a sparse adj_t holding
    the same values (fused message_and_aggregate) agree, for [N, F] and [B, N, C]."""
    ei, N = _test_graph()
    conv = _make("scatter", "uniform")
    alpha = conv.attention().detach()
    src, dst = conv.edge_index
    for h in (torch.randn(N, 6, dtype=torch.float64),):
        unfused = conv.propagate(conv.edge_index, x=h, alpha=alpha, layout=None, acc=None,
                                 size=(N, N))
        adj = torch.sparse_coo_tensor(torch.stack([dst, src]), alpha, (N, N),
                                      check_invariants=True).to_sparse_csr()
        fused = conv.propagate(adj, x=h, alpha=None, layout=None, acc=None)  # alpha lives in adj
        torch.testing.assert_close(fused, unfused, **F64)
        dense = torch.zeros(N, N, dtype=torch.float64).index_put((dst, src), alpha)
        torch.testing.assert_close(unfused, dense @ h, **F64)


def test_reset_parameters_and_repr():
    ei, N = _test_graph()
    torch.manual_seed(0)
    conv = SemGraphConv(64, 32, ei, N, mode="auto")
    assert conv.weight.shape == (2, 64, 32) and conv.edge_logits.shape == (conv.num_edges,)
    assert torch.all(conv.edge_logits == 1)
    assert conv.bias.abs().max() <= 32 ** -0.5
    fan_in, fan_out = 64 * 32, 2 * 32  # torch's fans of a [2, 64, 32] tensor
    bound = 1.414 * (6.0 / (fan_in + fan_out)) ** 0.5
    assert conv.weight.abs().max() <= bound and conv.weight.abs().max() > 0.8 * bound
    with torch.no_grad():
        conv.edge_logits.fill_(3.0)
    conv.reset_parameters()
    assert torch.all(conv.edge_logits == 1)
    assert repr(conv) == f"SemGraphConv(64, 32, nodes=9, edges={conv.num_edges}, mode=auto)"
    assert repr(SemGraphConv(3, 2, num_edge_types=5)) == "SemGraphConv(3, 2, edge_types=5, mode=auto)"
    assert set(conv.state_dict()) == {"weight", "edge_logits", "bias"}
    nb = SemGraphConv(3, 3, ei, N, bias=False)
    assert nb.bias is None and nb(torch.randn(N, 3)).shape == (N, 3)


def test_official_state_dict_conversion():
    ei, N = _test_graph()
    conv = SemGraphConv(3, 2, ei, N)
    official = {"gconv.W": torch.randn(2, 3, 2), "gconv.e": torch.randn(1, conv.num_edges),
                "gconv.bias": torch.randn(2)}
    conv.load_state_dict(SemGraphConv.convert_official_state_dict(official, "gconv."))
    assert torch.equal(conv.edge_logits, official["gconv.e"][0])


def test_auto_rule():
    assert choose_mode(17, 64) == "dense" and choose_mode(96, 1) == "dense"
    assert choose_mode(256, 1) == "dense" and choose_mode(256, 64) == "sparse"
    assert choose_mode(430, 1) == "sparse" and choose_mode(128, 64) == "dense"
    assert choose_mode(6890, 1) == "sparse" and choose_mode(1700, 64) == "sparse"
    conv = SemGraphConv(2, 2, *_test_graph())
    assert conv.resolve_mode(4, "cpu") == choose_mode(9, 4, "cpu")


def test_inside_pyg_sequential():
    from torch_geometric.nn import Sequential

    ei, N = _test_graph()
    torch.manual_seed(0)
    conv1 = SemGraphConv(5, 8, ei, N, mode="scatter", isolated="uniform")
    conv2 = SemGraphConv(8, 3, ei, N, mode="sparse")
    model = Sequential("x, edge_index", [
        (conv1, "x, edge_index -> x"),
        torch.nn.ReLU(),
        (conv2, "x, edge_index -> x"),
    ])
    x = torch.randn(2, N, 5)
    torch.testing.assert_close(model(x, None), conv2(torch.relu(conv1(x))))
    torch.testing.assert_close(model(x[0], ei), conv2(torch.relu(conv1(x[0]))))


@pytest.mark.parametrize("mode", MODES)
def test_torch_compile_smoke(mode):
    """Dynamo tracing + AOT autograd (no C++ codegen, quick); the dense kernel in one graph."""
    ei, N = _test_graph()
    torch._dynamo.reset()
    conv = _make(mode, "uniform", dtype=torch.float32)
    x = torch.randn(2, N, 5, requires_grad=True)
    compiled = torch.compile(conv, backend="aot_eager", fullgraph=mode == "dense")
    out = compiled(x)
    torch.testing.assert_close(out, conv(x), **F32)
    g = torch.autograd.grad(out.sum(), conv.edge_logits)[0]
    torch.testing.assert_close(g, torch.autograd.grad(conv(x).sum(), conv.edge_logits)[0], **F32)


@pytest.mark.slow
def test_torch_compile_inductor():
    ei, N = _test_graph()
    torch._dynamo.reset()
    conv = _make("dense", "uniform", dtype=torch.float32)
    x = torch.randn(2, N, 5)
    torch.testing.assert_close(torch.compile(conv)(x), conv(x), **F32)


def test_device_follows_module():
    ei, N = _test_graph()
    conv = SemGraphConv(3, 2, ei, N)
    assert all(b.device.type == "cpu" for b in conv.buffers())
    if torch.cuda.is_available():  # pragma: no cover - no GPU in CI
        conv = conv.cuda()
        for mode in MODES:
            conv.mode = mode
            assert conv(torch.randn(2, N, 3, device="cuda")).is_cuda


def test_sparse_backends_agree():
    """sparse_backend="torch" and "torch_sparse" give the same output and gradients (1e-5);
    asking for torch_sparse without it installed is a clear error."""
    from hgn_pyg.nn import _sem_kernels as sgc

    ei, N = _test_graph()
    if sgc.SparseStorage is None:
        with pytest.raises(ValueError, match="torch-sparse"):
            SemGraphConv(4, 3, ei, N, mode="sparse", sparse_backend="torch_sparse")
        return
    torch.manual_seed(0)
    a = SemGraphConv(4, 3, ei, N, isolated="uniform", mode="sparse", sparse_backend="torch")
    b = SemGraphConv(4, 3, ei, N, isolated="uniform", mode="sparse", sparse_backend="torch_sparse")
    with torch.no_grad():
        a.edge_logits.normal_()
    b.load_state_dict(a.state_dict())
    x = torch.randn(3, N, 4)
    ya, yb = a(x), b(x)
    torch.testing.assert_close(ya, yb, atol=1e-5, rtol=1e-5)
    ga = torch.autograd.grad(ya.square().sum(), a.edge_logits)[0]
    gb = torch.autograd.grad(yb.square().sum(), b.edge_logits)[0]
    torch.testing.assert_close(ga, gb, atol=1e-5, rtol=1e-5)
    assert "sparse_backend=torch_sparse" in repr(b)
    with pytest.raises(ValueError, match="sparse_backend"):
        SemGraphConv(4, 3, ei, N, sparse_backend="cusparse")


# ---------------------------------------------------------------------- typed edges, any graphs
def _typed_graphs(seed=0, channels=5, dtype=torch.float64):
    """Graphs cut from the test template (node subsets, relabelled and shuffled, edges in random
    order), every edge keeping its template column as its type; the full template first."""
    ei, N = _test_graph()
    g = torch.Generator().manual_seed(seed)
    graphs = []
    for n in (N, 6, 7, 4, 9):
        keep = torch.randperm(N, generator=g)[:n]
        new_id = torch.full((N,), -1, dtype=torch.long)
        new_id[keep] = torch.arange(n)
        mask = (new_id[ei] >= 0).all(0)
        cols = mask.nonzero().view(-1)
        cols = cols[torch.randperm(cols.numel(), generator=g)]
        graphs.append(Data(x=torch.randn(n, channels, generator=g, dtype=dtype),
                           edge_index=new_id[ei[:, cols]], edge_type=cols, num_nodes=n))
    return graphs


def _loader_batch(graphs):
    from torch_geometric.loader import DataLoader

    return next(iter(DataLoader(graphs, batch_size=len(graphs), shuffle=False)))


@pytest.mark.parametrize("isolated", ["uniform", "zero", "self"])
@pytest.mark.parametrize("mode", MODES + ("auto",))
def test_typed_batch_equals_each_graph_alone(mode, isolated):
    """A DataLoader batch of different graphs gives every graph its own output and gradients
    (float32, 1e-5), and each graph matches the dense reference (float64, 1e-9)."""
    torch.manual_seed(0)
    ei, N = _test_graph()
    conv = SemGraphConv(5, 4, num_edge_types=ei.size(1), isolated=isolated, mode=mode)
    with torch.no_grad():
        conv.edge_logits.normal_()
        conv.bias.normal_()
    graphs = _typed_graphs(dtype=torch.float32)
    batch = _loader_batch(graphs)
    x = batch.x.clone().requires_grad_()
    out = conv(x, batch.edge_index, batch.edge_type, batch.batch)
    params = [conv.weight, conv.edge_logits, conv.bias]
    r = torch.randn(out.shape, generator=torch.Generator().manual_seed(1))
    got = torch.autograd.grad((out * r).sum(), params + [x])
    exp_params = [torch.zeros_like(p) for p in params]
    for i, d in enumerate(graphs):
        rows = slice(int(batch.ptr[i]), int(batch.ptr[i + 1]))
        xi = d.x.clone().requires_grad_()
        alone = conv(xi, d.edge_index, d.edge_type)
        torch.testing.assert_close(out[rows], alone, **F32)
        grads = torch.autograd.grad((alone * r[rows]).sum(), params + [xi])
        torch.testing.assert_close(got[-1][rows], grads[-1], **F32)
        exp_params = [a + b for a, b in zip(exp_params, grads[:-1])]
        ref = dense_reference(d.x.double(), conv.weight.double(),
                              conv.edge_logits.double()[d.edge_type], conv.bias.double(),
                              d.edge_index, d.num_nodes, isolated)
        torch.testing.assert_close(alone.double(), ref, atol=1e-5, rtol=1e-5)
    for g_batch, g_sum in zip(got[:-1], exp_params):
        torch.testing.assert_close(g_batch, g_sum, **F32)


@pytest.mark.parametrize("mode", MODES)
def test_typed_float64_against_dense_reference(mode):
    torch.manual_seed(0)
    ei, N = _test_graph()
    conv = SemGraphConv(5, 4, num_edge_types=ei.size(1), isolated="uniform", mode=mode).double()
    with torch.no_grad():
        conv.edge_logits.normal_()
    for d in _typed_graphs(seed=4):
        x = d.x.clone().requires_grad_()
        out = conv(x, d.edge_index, d.edge_type)
        leaves = [p.detach().clone().requires_grad_() for p in conv.parameters()]
        xr = d.x.clone().requires_grad_()
        ref = dense_reference(xr, leaves[0], leaves[1][d.edge_type], leaves[2], d.edge_index,
                              d.num_nodes, "uniform")
        torch.testing.assert_close(out, ref, **F64)
        for got, exp in zip(_grads(out, list(conv.parameters()) + [x]), _grads(ref, leaves + [xr])):
            torch.testing.assert_close(got, exp, **F64)


@pytest.mark.parametrize("mode", MODES)
def test_template_layer_reads_edge_types(mode):
    """A template layer called with edge_type uses the template's logits (column i = type i):
    the same as the fast path on the template, and as a typed layer holding the same weights on
    a batch of cut graphs; [B, N, C] poses on one typed topology work too."""
    ei, N = _test_graph()
    conv = _make(mode, "uniform", dtype=torch.float32)
    x = torch.randn(3, N, 5)
    torch.testing.assert_close(conv(x, ei, torch.arange(ei.size(1))), conv(x), **F32)
    order = (ei[1] * N + ei[0]).argsort()  # edges already sorted by target: no sort needed
    torch.testing.assert_close(conv(x, ei[:, order], order), conv(x), **F32)
    typed = SemGraphConv(5, 4, num_edge_types=ei.size(1), isolated="uniform", mode=mode)
    typed.load_state_dict(conv.state_dict())
    batch = _loader_batch(_typed_graphs(dtype=torch.float32))
    args = (batch.edge_index, batch.edge_type, batch.batch)
    torch.testing.assert_close(conv(batch.x, *args), typed(batch.x, *args), **F32)
    xb = torch.randn(2, batch.num_nodes, 5)
    outb = typed(xb, *args)
    torch.testing.assert_close(outb[1], typed(xb[1], *args), **F32)
