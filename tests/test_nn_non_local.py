"""GraphNonLocal against the published-style naive formulation written from
docs/published_model.md §2.3 (1x1 convolutions and the explicit [B, 2C', N, N] concatenation),
float64, atol=rtol=1e-9; a PyG batch against each graph alone, float32, atol=rtol=1e-5."""
import pytest
import torch
import torch.nn.functional as F

from hgn_pyg.nn import GraphNonLocal

TOL = dict(atol=1e-9, rtol=1e-9)


def naive_non_local(x, p, bn_state, training):
    """x [B, N, C]; p: published-layout tensors (Conv1d/Conv2d weights with kernel dims)."""
    xc = x.transpose(1, 2)                                            # [B, C, N]
    B, C, N = xc.shape
    g = F.conv1d(xc, p["g.weight"], p["g.bias"]).transpose(1, 2)       # [B, N, C']
    theta = F.conv1d(xc, p["theta.weight"], p["theta.bias"])          # [B, C', N]
    phi = F.conv1d(xc, p["phi.weight"], p["phi.bias"])                # [B, C', N]
    Ci = theta.size(1)
    cat = torch.cat([theta.unsqueeze(3).expand(B, Ci, N, N),          # theta_i along dim 2
                     phi.unsqueeze(2).expand(B, Ci, N, N)], dim=1)    # phi_j along dim 3
    f = F.relu(F.conv2d(cat, p["concat_project.0.weight"])).squeeze(1) / N  # [B, N, N]
    y = (f @ g).transpose(1, 2)                                       # [B, C', N]
    z = F.conv1d(y, p["W.0.weight"], p["W.0.bias"])                   # [B, C, N]
    z = F.batch_norm(z, bn_state["running_mean"], bn_state["running_var"], p["W.1.weight"],
                     p["W.1.bias"], training=training, momentum=0.1, eps=1e-5)
    return x + z.transpose(1, 2)


def _official_params(C, Ci, seed=0):
    g = torch.Generator().manual_seed(seed)
    r = lambda *s: torch.randn(*s, generator=g, dtype=torch.float64)  # noqa: E731
    return {"g.weight": r(Ci, C, 1), "g.bias": r(Ci), "theta.weight": r(Ci, C, 1),
            "theta.bias": r(Ci), "phi.weight": r(Ci, C, 1), "phi.bias": r(Ci),
            "concat_project.0.weight": r(1, 2 * Ci, 1, 1), "W.0.weight": r(C, Ci, 1),
            "W.0.bias": r(C), "W.1.weight": r(C), "W.1.bias": r(C),
            "W.1.running_mean": r(C), "W.1.running_var": r(C).abs() + 0.5,
            "W.1.num_batches_tracked": torch.tensor(3)}


@pytest.mark.parametrize("training", [True, False])
def test_against_naive_concat(training):
    C, Ci, N = 6, 3, 7
    official = _official_params(C, Ci)
    block = GraphNonLocal(C).double()
    block.load_state_dict(GraphNonLocal.convert_official_state_dict(
        {f"nonlocal1.{k}": v for k, v in official.items()}, prefix="nonlocal1."))
    block.train(training)
    leaves = {k: v.clone().requires_grad_(v.is_floating_point() and "running" not in k)
              for k, v in official.items()}
    bn_state = {"running_mean": official["W.1.running_mean"].clone(),
                "running_var": official["W.1.running_var"].clone()}
    x = torch.randn(4, N, C, dtype=torch.float64, requires_grad=True)
    xr = x.detach().clone().requires_grad_()
    out = block(x)
    ref = naive_non_local(xr, leaves, bn_state, training)
    torch.testing.assert_close(out, ref, **TOL)
    torch.testing.assert_close(block.bn.running_mean, bn_state["running_mean"], **TOL)
    r = torch.randn_like(out)
    (out * r).sum().backward()
    (ref * r).sum().backward()
    torch.testing.assert_close(x.grad, xr.grad, **TOL)
    pairs = {"g.weight": "g.weight", "theta.weight": "theta.weight", "phi.bias": "phi.bias",
             "concat_project": "concat_project.0.weight", "W.weight": "W.0.weight",
             "W.bias": "W.0.bias", "bn.weight": "W.1.weight", "bn.bias": "W.1.bias"}
    params = dict(block.named_parameters())
    for mine, theirs in pairs.items():
        torch.testing.assert_close(params[mine].grad.reshape(-1),
                                   leaves[theirs].grad.reshape(-1), **TOL)


def test_single_graph_input_and_no_big_tensor():
    block = GraphNonLocal(8).double()
    with torch.no_grad():
        block.bn.weight.normal_()
    block.eval()
    x = torch.randn(5, 8, dtype=torch.float64)
    torch.testing.assert_close(block(x), block(x.unsqueeze(0)).squeeze(0), **TOL)
    # the separable form only creates [B, N, N] scores: check the largest saved tensor
    sizes = []
    with torch.autograd.graph.saved_tensors_hooks(lambda t: sizes.append(t.numel()) or t,
                                                  lambda t: t):
        block.train()(torch.randn(2, 30, 8, dtype=torch.float64, requires_grad=True))
    assert max(sizes) <= 2 * 30 * 30


def test_init_is_identity_and_repr():
    torch.manual_seed(0)
    block = GraphNonLocal(16)
    assert block.inner_channels == 8 and block.concat_project.shape == (16,)
    x = torch.randn(3, 10, 16)
    torch.testing.assert_close(block(x), x)
    assert torch.all(block.W.bias == 0) and torch.all(block.bn.weight == 0)
    assert repr(block) == "GraphNonLocal(16, inner=8)"
    with pytest.raises(ValueError, match=r"\[3, 10, 7\]"):
        block(torch.randn(3, 10, 7))


def test_fresh_init_follows_published_rule():
    """kaiming_normal_ (fan-in of the published Conv weights, gain sqrt(2)) on g/theta/phi,
    concat_project and W; zero biases; BN weight and bias 0. Sample statistics of a wide block:
    std within 5 % (15 % for the 512-long concat_project), mean within 5 standard errors,
    kurtosis of a normal (3, not the 1.8 of the former uniform init)."""
    torch.manual_seed(0)
    C = 512
    block = GraphNonLocal(C)
    Ci = block.inner_channels
    cases = [(block.g.weight, C, 0.05), (block.theta.weight, C, 0.05), (block.phi.weight, C, 0.05),
             (block.W.weight, Ci, 0.05), (block.concat_project, 2 * Ci, 0.15)]
    for w, fan_in, tol in cases:
        v = w.detach().double().reshape(-1)
        std = (2.0 / fan_in) ** 0.5
        assert abs(v.std().item() / std - 1) < tol, (tuple(w.shape), v.std().item(), std)
        assert abs(v.mean().item()) < 5 * std / v.numel() ** 0.5
        if v.numel() > 10000:
            kurt = (((v - v.mean()) / v.std()) ** 4).mean().item()
            assert 2.8 < kurt < 3.2, kurt
    for bias in (block.g.bias, block.theta.bias, block.phi.bias, block.W.bias, block.bn.weight,
                 block.bn.bias):
        assert torch.all(bias == 0)
    with torch.no_grad():
        block.g.weight.fill_(1.0)
        block.W.bias.fill_(1.0)
    block.reset_parameters()  # resets in place
    assert torch.all(block.W.bias == 0) and block.g.weight.std() < 0.2


def test_pyg_batch_attends_within_each_graph():
    """x [ΣN, C] + batch (graphs of 3, 7 and 5 nodes) gives each graph the output and gradients
    it gets alone (eval mode: BatchNorm in training mode pools statistics over the batch);
    changing one graph's features leaves the others unchanged."""
    from torch_geometric.data import Batch, Data

    torch.manual_seed(0)
    block = GraphNonLocal(6)
    with torch.no_grad():
        block.bn.weight.normal_()
        block.bn.bias.normal_()
        block.W.bias.normal_()
    block.eval()
    xs = [torch.randn(n, 6) for n in (3, 7, 5)]
    batch = Batch.from_data_list([Data(x=x) for x in xs])
    x = batch.x.clone().requires_grad_()
    out = block(x, batch.batch)
    r = torch.randn(out.shape)
    params = list(block.parameters())
    got = torch.autograd.grad((out * r).sum(), params + [x])
    summed = [torch.zeros_like(p) for p in params]
    for i, xi in enumerate(xs):
        rows = slice(int(batch.ptr[i]), int(batch.ptr[i + 1]))
        xi = xi.clone().requires_grad_()
        alone = block(xi)
        torch.testing.assert_close(out[rows], alone, atol=1e-5, rtol=1e-5)
        grads = torch.autograd.grad((alone * r[rows]).sum(), params + [xi])
        torch.testing.assert_close(got[-1][rows], grads[-1], atol=1e-5, rtol=1e-5)
        summed = [a + b for a, b in zip(summed, grads[:-1])]
    for a, b in zip(got[:-1], summed):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)
    x2 = batch.x.clone()
    x2[batch.batch == 1] += 100.0
    torch.testing.assert_close(block(x2, batch.batch)[batch.batch != 1], out[batch.batch != 1].detach())
    with pytest.raises(ValueError, match="batch must be"):
        block(batch.x.unsqueeze(0), batch.batch)
