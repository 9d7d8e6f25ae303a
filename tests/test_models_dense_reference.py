"""The dense reference (DenseHGN's layers) against docs/published_model.md §2 written out element by element."""
import torch

from hgn_pyg.models.dense_reference import (
    DenseGraphNonLocal,
    DenseHGN,
    DenseSemGraphConv,
    dense_adjacency,
)


def test_dense_sem_graph_conv_follows_spec():
    """docs/published_model.md §2.1 with loops: node 3 has no self loop (weight 0 on itself), node 4 is isolated
    (uniform 1/N over all nodes, itself through W0)."""
    torch.manual_seed(0)
    edges = torch.tensor([[0, 1], [1, 0], [1, 2], [2, 1], [2, 3], [3, 2], [0, 0], [1, 1], [2, 2]]).t()
    adj = dense_adjacency(edges, 5)
    assert adj[4].sum() == 0 and adj[3, 3] == 0
    conv = DenseSemGraphConv(3, 2, adj)
    with torch.no_grad():
        conv.e.normal_()
    x = torch.randn(2, 5, 3)
    out = conv(x)
    nz = [(i, j) for i in range(5) for j in range(5) if adj[i, j] != 0]  # row-major
    logit = {ij: float(conv.e[0, k].detach()) for k, ij in enumerate(nz)}
    for b in range(2):
        for i in range(5):
            row = [logit.get((i, j)) for j in range(5)]
            if all(v is None for v in row):
                s = [1.0 / 5] * 5
            else:
                den = sum(torch.tensor(v).exp() for v in row if v is not None)
                s = [0.0 if v is None else float(torch.tensor(v).exp() / den) for v in row]
            want = conv.bias.clone()
            for j in range(5):
                w = conv.W[0] if j == i else conv.W[1]
                want = want + s[j] * (x[b, j] @ w)
            torch.testing.assert_close(out[b, i], want, atol=1e-5, rtol=1e-5)


def test_dense_non_local_follows_spec():
    torch.manual_seed(1)
    nl = DenseGraphNonLocal(6).eval()
    with torch.no_grad():
        nl.W[1].weight.uniform_(0.5, 1.5)
        nl.W[1].bias.normal_()
        nl.W[1].running_var.uniform_(0.5, 1.5)
    x = torch.randn(2, 6, 4)  # [B, C, N]
    out = nl(x)
    w = nl.concat_project[0].weight.reshape(-1)
    for b in range(2):
        xb = x[b].t()  # [N, C]
        g = xb @ nl.g.weight[:, :, 0].t() + nl.g.bias
        th = xb @ nl.theta.weight[:, :, 0].t() + nl.theta.bias
        ph = xb @ nl.phi.weight[:, :, 0].t() + nl.phi.bias
        f = torch.stack([torch.stack([torch.relu(w @ torch.cat([th[i], ph[j]])) / 4
                                      for j in range(4)]) for i in range(4)])
        y = f @ g
        z = y @ nl.W[0].weight[:, :, 0].t() + nl.W[0].bias
        bn = nl.W[1]
        z = (z - bn.running_mean) / torch.sqrt(bn.running_var + bn.eps) * bn.weight + bn.bias
        torch.testing.assert_close(out[b], (xb + z).t(), atol=1e-5, rtol=1e-5)


def test_dense_hgn_reset_and_identity_non_local():
    bones = torch.tensor([[0, 1], [1, 2]]).t()
    adj = dense_adjacency(torch.cat([bones, bones.flip(0)], 1), 3, add_self_loops=True)
    model = DenseHGN(adj, torch.eye(4), torch.zeros(6, 6), hidden_channels=4)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(1.0)
    model.reset_parameters()
    sd = model.state_dict()
    assert torch.all(sd["gconv_layers_3_4.0.gconv1.gconv.e"] == 1)
    assert torch.all(sd["gconv_layers_1_1.1.nonlocal1.W.1.weight"] == 0)
    assert torch.all(sd["gconv_layers_1_1.0.gconv2.bn.weight"] == 1)
    x = torch.randn(2, 3, 4)
    layer = model.gconv_layers_1_1[1]
    torch.testing.assert_close(layer(x), x)  # a fresh non-local block is the identity
    out = model.eval()(torch.randn(2, 3, 2))
    assert [tuple(o.shape) for o in out] == [(2, 3, 3), (2, 4, 3), (2, 6, 3)]
    assert "DenseHGN(nodes=(3, 4, 6)" in repr(model)
