"""PyG's explainer edge mask on SemGraphConv (every kernel, typed and template paths) and
torch_geometric.explain.Explainer on a SemGraphConv + GraphNonLocal model.

The mask scales the attention of the caller's edges in the caller's order (self loops
included), as GATConv's messages: checked against an independent dense computation (float64,
``atol=rtol=1e-9``) and by zeroing one edge (only its target's row changes: the other rows are
bit-identical in float64, ``atol=rtol=0`` up to 1e-12).
"""
import pytest
import torch
from torch_geometric.data import Batch, Data

from hgn_pyg.nn import GraphNonLocal, SemGraphConv

from test_nn_sem_graph_conv import _loader_batch, _test_graph, _typed_graphs

MODES = ("dense", "sparse", "scatter", "auto")
F64 = dict(atol=1e-9, rtol=1e-9)


def masked_reference(x, weight, logits, bias, edge_index, mask, N):
    """out_i = sum_{e = (j -> i)} m_e S_e h_j + bias, S the softmax of the logits over the edges
    into i, h = x W_0 for a self loop and x W_1 otherwise (isolated="zero"); x [N, C]."""
    out = torch.zeros(N, weight.size(2), dtype=x.dtype)
    src, dst = edge_index
    for i in range(N):
        into = (dst == i).nonzero().view(-1)
        if into.numel() == 0:
            continue
        s = torch.softmax(logits[into], 0)
        for k, e in enumerate(into.tolist()):
            j = int(src[e])
            w = weight[0] if j == i else weight[1]
            out[i] += mask[e] * s[k] * (x[j] @ w)
    return out + bias


def _explain(conv, mask):
    conv.explain, conv._edge_mask, conv._apply_sigmoid = True, mask, False


def _plain(conv):
    conv.explain, conv._edge_mask, conv._apply_sigmoid = None, None, True


def _check_one_edge(run, conv, edge_index, num_edges, rows, edges=(0, 3, 5, 14)):
    """Zeroing edge e changes only the row of e's target (vs the all-ones mask)."""
    _explain(conv, torch.ones(num_edges, dtype=torch.float64))
    full = run()
    _plain(conv)
    torch.testing.assert_close(full, run(), **F64)  # a mask of ones is the plain layer
    for e in edges:
        mask = torch.ones(num_edges, dtype=torch.float64)
        mask[e] = 0.0
        _explain(conv, mask)
        out = run()
        _plain(conv)
        changed = ((out - full).abs() > 1e-12).reshape(-1, rows, out.size(-1)).any(-1).any(0)
        assert changed.nonzero().view(-1).tolist() == [int(edge_index[1, e])], e


@pytest.mark.parametrize("isolated", ["zero", "uniform"])
@pytest.mark.parametrize("mode", MODES)
def test_typed_edge_mask(mode, isolated):
    torch.manual_seed(0)
    ei, N = _test_graph()
    conv = SemGraphConv(5, 4, num_edge_types=ei.size(1), isolated=isolated, mode=mode).double()
    with torch.no_grad():
        conv.edge_logits.normal_()
    b = _loader_batch(_typed_graphs())
    x = b.x
    run = lambda: conv(x, b.edge_index, b.edge_type, b.batch)  # noqa: E731
    _check_one_edge(run, conv, b.edge_index, b.edge_index.size(1), b.num_nodes,
                    edges=(0, 7, 20, b.edge_index.size(1) - 1))
    if isolated == "zero":  # against the dense statement, a random mask
        mask = torch.rand(b.edge_index.size(1), dtype=torch.float64)
        _explain(conv, mask)
        out = run()
        _plain(conv)
        ref = masked_reference(x, conv.weight, conv.edge_logits[b.edge_type], conv.bias,
                               b.edge_index, mask, b.num_nodes)
        torch.testing.assert_close(out, ref, **F64)
        # the mask's gradient reaches every edge (the explainer's hard mask)
        mask.requires_grad_()
        _explain(conv, mask)
        (g,) = torch.autograd.grad(run().square().sum(), mask)
        _plain(conv)
        assert (g != 0).all()


@pytest.mark.parametrize("mode", MODES)
def test_template_edge_mask(mode):
    """A template layer: the mask is over the edges it is called with (its own template
    columns, or a PyG batch of copies in the batch's order)."""
    torch.manual_seed(0)
    ei, N = _test_graph()
    conv = SemGraphConv(5, 4, ei, N, isolated="uniform", mode=mode).double()
    with torch.no_grad():
        conv.edge_logits.normal_()
    x = torch.randn(3, N, 5, dtype=torch.float64)
    _check_one_edge(lambda: conv(x), conv, ei, ei.size(1), N)
    _check_one_edge(lambda: conv(x[0], ei), conv, ei, ei.size(1), N)
    copies = Batch.from_data_list([Data(edge_index=ei, num_nodes=N)] * 3)
    perm = torch.randperm(copies.edge_index.size(1))
    shuffled = copies.edge_index[:, perm]
    xs = x.reshape(-1, 5)
    _check_one_edge(lambda: conv(xs, shuffled), conv, shuffled, shuffled.size(1), 3 * N,
                    edges=(0, 11, 30, 47))
    mask = torch.rand(ei.size(1), dtype=torch.float64)
    conv.isolated = "zero"
    _explain(conv, mask)
    out = conv(x[1], ei)
    _plain(conv)
    ref = masked_reference(x[1], conv.weight, conv.edge_logits, conv.bias, ei, mask, N)
    torch.testing.assert_close(out, ref, **F64)


def test_mask_of_wrong_length_is_an_error():
    ei, N = _test_graph()
    conv = SemGraphConv(5, 4, ei, N)
    _explain(conv, torch.ones(ei.size(1) + 1))
    with pytest.raises(ValueError, match="edge mask has 17 entries for 16 edges"):
        conv(torch.randn(N, 5), ei)


class _Net(torch.nn.Module):
    def __init__(self, num_edge_types, mode):
        super().__init__()
        self.conv1 = SemGraphConv(5, 8, num_edge_types=num_edge_types, mode=mode)
        self.nl = GraphNonLocal(8)
        self.conv2 = SemGraphConv(8, 3, num_edge_types=num_edge_types, mode=mode)

    def forward(self, x, edge_index, edge_type, batch):
        h = torch.relu(self.conv1(x, edge_index, edge_type, batch))
        return self.conv2(self.nl(h, batch), edge_index, edge_type, batch)


@pytest.mark.parametrize("mode", MODES)
def test_explainer_gnnexplainer(mode):
    from torch_geometric.explain import Explainer, GNNExplainer

    torch.manual_seed(0)
    ei, _ = _test_graph()
    model = _Net(ei.size(1), mode).eval()
    b = _loader_batch(_typed_graphs(dtype=torch.float32))
    explainer = Explainer(model, GNNExplainer(epochs=3), explanation_type="model",
                          edge_mask_type="object", node_mask_type="attributes",
                          model_config=dict(mode="regression", task_level="node",
                                            return_type="raw"))
    explanation = explainer(b.x, b.edge_index, edge_type=b.edge_type, batch=b.batch, index=2)
    mask = explanation.edge_mask
    assert mask.shape == (b.edge_index.size(1),) and torch.isfinite(mask).all()
    # edges that cannot reach node 2 in two hops get 0; some edge into node 2 does not
    into2 = b.edge_index[1] == 2
    assert (mask[into2] > 0).any()
    assert explanation.node_mask.shape == b.x.shape
    assert all(not m.explain for m in model.modules() if isinstance(m, SemGraphConv))


def test_explainer_on_template_layers():
    from torch_geometric.explain import Explainer, GNNExplainer

    torch.manual_seed(0)
    ei, N = _test_graph()

    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.conv1 = SemGraphConv(5, 8, ei, N, mode="dense")
            self.conv2 = SemGraphConv(8, 2, ei, N, mode="sparse")

        def forward(self, x, edge_index):
            return self.conv2(torch.relu(self.conv1(x, edge_index)), edge_index)

    explainer = Explainer(Net(), GNNExplainer(epochs=3), explanation_type="model",
                          edge_mask_type="object", node_mask_type=None,
                          model_config=dict(mode="regression", task_level="graph",
                                            return_type="raw"))
    explanation = explainer(torch.randn(N, 5), ei)
    assert explanation.edge_mask.shape == (ei.size(1),)
    assert torch.isfinite(explanation.edge_mask).all()


def test_mask_convention_is_gatconv_s():
    """The same harness on PyG's GATConv (no added self loops) gives the same rule: zeroing an
    edge's mask changes exactly its target's row; so SemGraphConv follows GATConv's convention."""
    from torch_geometric.nn import GATConv

    ei, N = _test_graph()
    torch.manual_seed(0)
    gat = GATConv(5, 4, add_self_loops=False).double()
    x = torch.randn(N, 5, dtype=torch.float64)
    _check_one_edge(lambda: gat(x, ei), gat, ei, ei.size(1), N)
