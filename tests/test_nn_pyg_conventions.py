"""SemGraphConv the way PyG's own conv tests use a layer (test_gat_conv / test_rgcn_conv style):
bipartite ``(x_src, x_dst)`` input with ``size=``, ``to_hetero``, typed ``adj_t`` with edge types
as values, ``EdgeIndex`` input, ``reset_parameters``; and the clear errors of issue 19.

Tolerances: float64 against the independent per-node statement, ``atol=rtol=1e-9``; float32
agreement between input formats, ``atol=rtol=1e-6``.
"""
import importlib.util

import pytest
import torch

from hgn_pyg.nn import GraphNonLocal, SemGraphConv

from test_nn_sem_graph_conv import _loader_batch, _test_graph, _typed_graphs

F64 = dict(atol=1e-9, rtol=1e-9)
F32 = dict(atol=1e-6, rtol=1e-6)
MODES = ("dense", "sparse", "scatter", "auto")


def bipartite_reference(x_src, x_dst, weight, logits, bias, edge_index, isolated):
    """out_i = sum_{e = (j -> i)} softmax_i(logits)_e x_src_j W_1 (+ x_dst_i W_0 for a target
    without edges under isolated="self") + bias."""
    src, dst = edge_index
    out = torch.zeros(x_dst.size(0), weight.size(2), dtype=x_dst.dtype)
    for i in range(x_dst.size(0)):
        into = (dst == i).nonzero().view(-1)
        if into.numel() == 0:
            if isolated == "self":
                out[i] = x_dst[i] @ weight[0]
            continue
        s = torch.softmax(logits[into], 0)
        for k, e in enumerate(into.tolist()):
            out[i] += s[k] * (x_src[int(src[e])] @ weight[1])
    return out + bias


def _bipartite_graph(seed=0, n_src=7, n_dst=5, num_edges=14, types=6):
    g = torch.Generator().manual_seed(seed)
    ei = torch.stack([torch.randint(n_src, (num_edges,), generator=g),
                      torch.randint(n_dst - 1, (num_edges,), generator=g)])  # target 4 isolated
    keys = torch.unique(ei[1] * n_src + ei[0])
    ei = torch.stack([keys % n_src, keys // n_src])[:, torch.randperm(keys.numel(), generator=g)]
    et = torch.randint(types, (ei.size(1),), generator=g)
    return ei, et, n_src, n_dst, types


@pytest.mark.parametrize("isolated", ["zero", "self"])
@pytest.mark.parametrize("mode", MODES)
def test_bipartite_against_reference(mode, isolated):
    ei, et, n_src, n_dst, K = _bipartite_graph()
    torch.manual_seed(0)
    conv = SemGraphConv(3, 4, num_edge_types=K, isolated=isolated, mode=mode).double()
    with torch.no_grad():
        conv.edge_logits.normal_()
    x_src = torch.randn(n_src, 3, dtype=torch.float64, requires_grad=True)
    x_dst = torch.randn(n_dst, 3, dtype=torch.float64, requires_grad=True)
    out = conv((x_src, x_dst), ei, et, size=(n_src, n_dst))
    assert out.shape == (n_dst, 4)
    leaves = [p.detach().clone().requires_grad_() for p in conv.parameters()]
    xs, xd = (t.detach().clone().requires_grad_() for t in (x_src, x_dst))
    ref = bipartite_reference(xs, xd, leaves[0], leaves[1][et], leaves[2], ei, isolated)
    torch.testing.assert_close(out, ref, **F64)
    r = torch.randn(out.shape, dtype=torch.float64)
    got = torch.autograd.grad((out * r).sum(), [x_src, x_dst, *conv.parameters()])
    exp = torch.autograd.grad((ref * r).sum(), [xs, xd, *leaves], allow_unused=True)
    for a, b in zip(got, exp):
        torch.testing.assert_close(a, torch.zeros_like(a) if b is None else b, **F64)
    # [B, N, C] pairs, and the typed adj_t of the bipartite graph
    xb = (torch.randn(2, n_src, 3, dtype=torch.float64), torch.randn(2, n_dst, 3, dtype=torch.float64))
    torch.testing.assert_close(conv(xb, ei, et)[1], conv((xb[0][1], xb[1][1]), ei, et), **F64)
    from torch_geometric.utils import to_torch_csr_tensor

    adj_t = to_torch_csr_tensor(ei.flip(0), et, size=(n_dst, n_src))
    torch.testing.assert_close(conv((x_src, x_dst), adj_t), out, **F64)


def test_bipartite_errors():
    ei, et, n_src, n_dst, K = _bipartite_graph()
    conv = SemGraphConv(3, 4, num_edge_types=K, isolated="zero")
    x = (torch.randn(n_src, 3), torch.randn(n_dst, 3))
    with pytest.raises(ValueError, match=r"size=\(7, 6\) does not match"):
        conv(x, ei, et, size=(n_src, n_dst + 1))
    with pytest.raises(ValueError, match="sources >= 7 or targets >= 3"):
        conv((x[0], x[1][:3]), ei, et)
    with pytest.raises(ValueError, match="isolated="):
        SemGraphConv(3, 4, num_edge_types=K, isolated="uniform")(x, ei, et)
    with pytest.raises(ValueError, match="needs x = \\(x_src, x_dst\\)"):
        conv(x[0], ei, et, size=(n_src, n_dst))


def test_to_hetero_trains_one_step():
    from torch_geometric.data import HeteroData
    from torch_geometric.nn import to_hetero

    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.conv1 = SemGraphConv(4, 8, num_edge_types=6, isolated="self")
            self.conv2 = SemGraphConv(8, 3, num_edge_types=6, isolated="self")

        def forward(self, x, edge_index, edge_type):
            return self.conv2(torch.relu(self.conv1(x, edge_index, edge_type)), edge_index,
                              edge_type)

    g = torch.Generator().manual_seed(0)
    data = HeteroData()
    data["joint"].x = torch.randn(17, 4, generator=g)
    data["vertex"].x = torch.randn(30, 4, generator=g)
    for rel, (s, d, ns, nd) in {("joint", "bone", "joint"): (0, 0, 17, 17),
                                ("vertex", "near", "joint"): (0, 0, 30, 17),
                                ("joint", "skin", "vertex"): (0, 0, 17, 30)}.items():
        e = 40
        data[rel].edge_index = torch.stack([torch.randint(ns, (e,), generator=g),
                                            torch.randint(nd, (e,), generator=g)])
        data[rel].edge_type = torch.randint(6, (e,), generator=g)
    torch.manual_seed(0)
    model = to_hetero(Net(), data.metadata(), aggr="sum")
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    out = model(data.x_dict, data.edge_index_dict, data.edge_type_dict)
    assert out["joint"].shape == (17, 3) and out["vertex"].shape == (30, 3)
    loss = sum(o.square().mean() for o in out.values())
    loss.backward()
    grads = [p.grad for p in model.parameters()]
    assert all(gr is not None and torch.isfinite(gr).all() for gr in grads)
    before = [p.detach().clone() for p in model.parameters()]
    opt.step()
    assert any(not torch.equal(a, p) for a, p in zip(before, model.parameters()))
    # the hetero output is the sum over relations of the per-relation layers, bipartite or not
    conv1 = model.conv1
    key = "vertex__near__joint"
    rel = ("vertex", "near", "joint")
    x = data.x_dict
    assert key in conv1 and rel in data.edge_types
    hooked = {}
    handle = conv1[key].register_forward_hook(lambda m, a, o: hooked.setdefault("out", o))
    with torch.no_grad():
        model(data.x_dict, data.edge_index_dict, data.edge_type_dict)
    handle.remove()
    torch.testing.assert_close(
        hooked["out"], conv1[key]((x["vertex"], x["joint"]), data[rel].edge_index,
                                  data[rel].edge_type), **F32)


@pytest.mark.parametrize("mode", MODES)
def test_typed_adj_t_as_rgcn_takes_it(mode):
    """``conv(x, to_torch_csr_tensor(ei, et, size=(N, N)).t())`` (and a SparseTensor where
    torch_sparse is installed) equals the edge_index call, output and gradients."""
    from torch_geometric.utils import to_torch_csr_tensor

    ei, _ = _test_graph()
    torch.manual_seed(0)
    conv = SemGraphConv(5, 4, num_edge_types=ei.size(1), isolated="uniform", mode=mode)
    with torch.no_grad():
        conv.edge_logits.normal_()
    b = _loader_batch(_typed_graphs(dtype=torch.float32))
    N = b.num_nodes
    x = b.x.clone().requires_grad_()
    ref = conv(x, b.edge_index, b.edge_type)
    gref = torch.autograd.grad(ref.square().sum(), [x, conv.edge_logits])
    adj_t = to_torch_csr_tensor(b.edge_index, b.edge_type, size=(N, N)).t()
    inputs = [adj_t, to_torch_csr_tensor(b.edge_index.flip(0), b.edge_type, size=(N, N))]
    if importlib.util.find_spec("torch_sparse") is not None:  # pragma: no cover - optional
        from torch_sparse import SparseTensor

        inputs.append(SparseTensor(row=b.edge_index[1], col=b.edge_index[0], value=b.edge_type,
                                   sparse_sizes=(N, N)))
    for adj in inputs:
        out = conv(x, adj)
        torch.testing.assert_close(out, ref, **F32)
        for a, e in zip(torch.autograd.grad(out.square().sum(), [x, conv.edge_logits]), gref):
            torch.testing.assert_close(a, e, **F32)


def test_edge_index_input_and_reset_parameters():
    """PyG's EdgeIndex equals a plain tensor; reset_parameters restores the initial state
    (logits 1, the same weights under the same seed); repr shows the sizes."""
    from torch_geometric import EdgeIndex

    ei, N = _test_graph()
    b = _loader_batch(_typed_graphs(dtype=torch.float32))
    torch.manual_seed(0)
    conv = SemGraphConv(5, 4, num_edge_types=ei.size(1), isolated="uniform")
    state = {k: v.clone() for k, v in conv.state_dict().items()}
    with torch.no_grad():
        conv.edge_logits.normal_()
    edge = EdgeIndex(b.edge_index, sparse_size=(b.num_nodes, b.num_nodes))
    torch.testing.assert_close(conv(b.x, edge, b.edge_type, b.batch),
                               conv(b.x, b.edge_index, b.edge_type, b.batch), **F32)
    torch.manual_seed(0)
    conv.reset_parameters()
    for k, v in conv.state_dict().items():
        assert torch.equal(v, state[k]), k
    assert repr(conv) == f"SemGraphConv(5, 4, edge_types={ei.size(1)}, mode=auto)"


def test_clear_errors():
    ei, N = _test_graph()
    conv = SemGraphConv(5, 4, num_edge_types=ei.size(1))
    with pytest.raises(ValueError, match="torch.float32"):
        conv(torch.randn(N, 5), ei, torch.zeros(ei.size(1)))
    nl = GraphNonLocal(6)
    empty = nl(torch.randn(0, 6), torch.zeros(0, dtype=torch.long))
    assert empty.shape == (0, 6)
    with pytest.raises(ValueError, match="sort"):
        nl(torch.randn(5, 6), torch.tensor([0, 1, 0, 1, 1]))
