"""GraphConvBlock, ResidualGraphConvBlock and NodeTransfer against direct statements of
docs/published_model.md §2.2 / §2.4 (float64, atol=rtol=1e-9)."""
import pytest
import torch
import torch.nn.functional as F
from torch_geometric.nn import Sequential

from hgn_pyg.nn import GraphConvBlock, GraphNonLocal, NodeTransfer, ResidualGraphConvBlock

TOL = dict(atol=1e-9, rtol=1e-9)
# skeleton-like graph: a path 0-1-2-3 plus a branch 1-4, both directions, self loops
PAIRS = [(0, 1), (1, 2), (2, 3), (1, 4)]
EI = torch.tensor(PAIRS + [(b, a) for a, b in PAIRS] + [(i, i) for i in range(5)]).t()
N = 5


def _ref_block(block, x):
    """relu(BN_channels(conv(x))) with the conv taken as a black box (tested on its own)."""
    h = block.gconv(x)
    bn = block.bn
    z = F.batch_norm(h.transpose(1, 2), bn.running_mean.clone(), bn.running_var.clone(),
                     bn.weight, bn.bias, training=block.training, momentum=bn.momentum,
                     eps=bn.eps)
    return F.relu(z.transpose(1, 2))


@pytest.mark.parametrize("training", [True, False])
def test_graph_conv_block(training):
    torch.manual_seed(0)
    block = GraphConvBlock(3, 6, EI, N, isolated="uniform").double().train(training)
    with torch.no_grad():
        block.bn.weight.normal_()
        block.bn.bias.normal_()
        block.bn.running_var.uniform_(0.5, 2)
    x = torch.randn(4, N, 3, dtype=torch.float64)
    ref = _ref_block(block, x)
    torch.testing.assert_close(block(x), ref, **TOL)
    # [N, C]: BatchNorm1d sees the N nodes as samples
    out2 = block.eval()(x[0])
    torch.testing.assert_close(out2, _ref_block(block, x[:1])[0], **TOL)


def test_graph_conv_block_dropout_order():
    torch.manual_seed(0)
    block = GraphConvBlock(3, 8, EI, N, dropout=0.5).double().train()
    x = torch.randn(2, N, 3, dtype=torch.float64)
    torch.manual_seed(7)
    out = block(x)
    h = block.gconv(x)
    bn = F.batch_norm(h.transpose(1, 2), None, None, block.bn.weight, block.bn.bias,
                      training=True).transpose(1, 2)
    # dropout draws its mask in memory order: node-major [N, B, C], as SemGraphConv's output
    bn = bn.transpose(0, 1).contiguous().transpose(0, 1)
    torch.manual_seed(7)
    ref = F.relu(F.dropout(F.relu(bn), 0.5, training=True))
    torch.testing.assert_close(out, ref, **TOL)
    assert "dropout=0.5" in repr(block)


def test_residual_block_and_names():
    torch.manual_seed(0)
    res = ResidualGraphConvBlock(4, 4, EI, N, mode="sparse").double()
    x = torch.randn(3, N, 4, dtype=torch.float64, requires_grad=True)
    out = res(x)
    torch.testing.assert_close(out, x + res.gconv2(res.gconv1(x)), **TOL)
    out.sum().backward()
    assert x.grad is not None and res.gconv1.gconv.edge_logits.grad is not None
    names = set(res.state_dict())
    assert {"gconv1.gconv.weight", "gconv1.gconv.edge_logits", "gconv1.bn.running_mean",
            "gconv2.gconv.bias"} <= names
    assert repr(res) == "ResidualGraphConvBlock(4, hidden=4, nodes=5)"


def test_blocks_in_pyg_sequential():
    torch.manual_seed(0)
    model = Sequential("x", [
        (GraphConvBlock(2, 8, EI, N), "x -> x"),
        (ResidualGraphConvBlock(8, 8, EI, N), "x -> x"),
        (GraphNonLocal(8), "x -> x"),
        (NodeTransfer(N, 3), "x -> x"),
    ]).eval()
    x = torch.randn(2, N, 2)
    out = model(x)
    assert out.shape == (2, 3, 8)
    m = list(model.children())
    torch.testing.assert_close(out, m[3](m[2](m[1](m[0](x)))))


def test_node_transfer_against_loop():
    torch.manual_seed(0)
    t = NodeTransfer(5, 3).double()
    x = torch.randn(2, 5, 4, dtype=torch.float64, requires_grad=True)
    out = t(x)
    ref = torch.zeros(2, 3, 4, dtype=torch.float64)
    for b in range(2):
        for m in range(3):
            ref[b, m] = sum(t.weight[m, n] * x[b, n] for n in range(5)) + t.bias[m]
    torch.testing.assert_close(out, ref, **TOL)
    # gradient against the published Conv1d(N_in, N_out, 1) form
    w = t.weight.detach().unsqueeze(-1).requires_grad_()
    bias = t.bias.detach().clone().requires_grad_()
    xr = x.detach().clone().requires_grad_()
    conv = F.conv1d(xr, w, bias)
    r = torch.randn_like(out)
    (out * r).sum().backward()
    (conv * r).sum().backward()
    torch.testing.assert_close(t.weight.grad, w.grad[..., 0], **TOL)
    torch.testing.assert_close(t.bias.grad, bias.grad, **TOL)
    torch.testing.assert_close(x.grad, xr.grad, **TOL)
    torch.testing.assert_close(t(x[0]), out[0], **TOL)


def test_node_transfer_init_conversion_repr():
    torch.manual_seed(0)
    t = NodeTransfer(16, 4)
    assert t.weight.shape == (4, 16) and t.bias.shape == (4,)
    assert t.weight.abs().max() <= 0.25 and t.bias.abs().max() <= 0.25
    state = {"fc_1_2_1.conv.weight": torch.randn(4, 16, 1), "fc_1_2_1.conv.bias": torch.randn(4)}
    t.load_state_dict(NodeTransfer.convert_official_state_dict(state, "fc_1_2_1."))
    assert torch.equal(t.weight, state["fc_1_2_1.conv.weight"][..., 0])
    assert repr(t) == "NodeTransfer(16 -> 4 nodes)"
    with pytest.raises(ValueError, match=r"\[2, 15, 3\]"):
        t(torch.randn(2, 15, 3))


def test_typed_residual_block_on_pyg_batch_equals_each_graph():
    """ResidualGraphConvBlock (two conv + BN + ReLU) built typed, on a DataLoader batch of
    different graphs (eval mode: BN with running statistics), per graph exactly as alone
    (float32, 1e-5, forward and gradients)."""
    from torch_geometric.data import Data
    from torch_geometric.loader import DataLoader

    torch.manual_seed(0)
    block = ResidualGraphConvBlock(4, 6, num_edge_types=EI.size(1), isolated="uniform")
    with torch.no_grad():
        for bn in (block.gconv1.bn, block.gconv2.bn):
            bn.weight.normal_()
            bn.running_var.uniform_(0.5, 2)
    block.eval()
    cols = [torch.arange(EI.size(1)), (EI != 4).all(0).nonzero().view(-1),
            (EI < 3).all(0).nonzero().view(-1)]
    graphs = [Data(x=torch.randn(n, 4), edge_index=EI[:, c], edge_type=c, num_nodes=n)
              for n, c in zip((5, 4, 3), cols)]
    b = next(iter(DataLoader(graphs, batch_size=3)))
    x = b.x.clone().requires_grad_()
    out = block(x, b.edge_index, b.edge_type, b.batch)
    r = torch.randn(out.shape)
    got = torch.autograd.grad((out * r).sum(), [x, block.gconv1.gconv.edge_logits])
    g_logits = torch.zeros_like(block.gconv1.gconv.edge_logits)
    for i, d in enumerate(graphs):
        rows = slice(int(b.ptr[i]), int(b.ptr[i + 1]))
        xi = d.x.clone().requires_grad_()
        alone = block(xi, d.edge_index, d.edge_type)
        torch.testing.assert_close(out[rows], alone, atol=1e-5, rtol=1e-5)
        gx, gl = torch.autograd.grad((alone * r[rows]).sum(), [xi, block.gconv1.gconv.edge_logits])
        torch.testing.assert_close(got[0][rows], gx, atol=1e-5, rtol=1e-5)
        g_logits += gl
    torch.testing.assert_close(got[1], g_logits, atol=1e-5, rtol=1e-5)
    assert "edge_types=13" in repr(block)


def test_graph_conv_block_backward_in_eval_mode():
    """Gradients through a block in eval mode (e.g. for attributions): the in-place ReLU on
    BatchNorm's output must not invalidate anything autograd saved, with and without dropout."""
    for dropout in (None, 0.5):
        torch.manual_seed(0)
        block = GraphConvBlock(3, 8, EI, N, dropout=dropout).double().eval()
        x = torch.randn(2, N, 3, dtype=torch.float64, requires_grad=True)
        out = block(x)
        (gx,) = torch.autograd.grad(out.square().sum(), x)
        h = block.gconv(x)
        ref = F.relu(F.batch_norm(h.transpose(1, 2), block.bn.running_mean, block.bn.running_var,
                                  block.bn.weight, block.bn.bias).transpose(1, 2))
        (gref,) = torch.autograd.grad(ref.square().sum(), x)
        torch.testing.assert_close(out, ref, **TOL)
        torch.testing.assert_close(gx, gref, **TOL)
