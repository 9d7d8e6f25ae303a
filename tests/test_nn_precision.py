"""float16 / bfloat16 forward and backward on CPU through every kernel of SemGraphConv (typed
and template paths) and GraphNonLocal, against the same layer in float32.

Tolerance: the relative error ``||half - f32|| / ||f32||`` of the output and of every gradient
(input, weight, edge logits, bias) at most 1e-2 for float16 and 4e-2 for bfloat16 (8 mantissa
bits: rounding unit 3.9e-3, a few roundings per output).
"""
import pytest
import torch

from hgn_pyg.nn import GraphConvBlock, GraphNonLocal, SemGraphConv

from test_nn_sem_graph_conv import _loader_batch, _test_graph, _typed_graphs

TOL = {torch.float16: 1e-2, torch.bfloat16: 4e-2}


def _rel(a, b):
    return float((a.float() - b).norm() / b.norm().clamp_min(1e-12))


def _compare(make, x, args, dtype):
    torch.manual_seed(0)
    ref = make()
    with torch.no_grad():
        for p in ref.parameters():
            if p.dim() == 1 and p.numel() > 1:
                p.normal_(0, 0.5)
    half = make()
    half.load_state_dict(ref.state_dict())
    # eval: in train mode BatchNorm makes the gradient of the bias before it exactly 0 (nothing
    # to compare but rounding noise)
    ref.eval()
    half = half.to(dtype).eval()
    xf = x.clone().requires_grad_()
    xh = x.to(dtype).requires_grad_()
    out_f, out_h = ref(xf, *args), half(xh, *args)
    assert out_h.dtype == dtype
    assert _rel(out_h, out_f.detach()) < TOL[dtype]
    r = torch.randn(out_f.shape, generator=torch.Generator().manual_seed(1))
    gf = torch.autograd.grad((out_f * r).sum(), [xf, *ref.parameters()])
    gh = torch.autograd.grad((out_h.float() * r).sum(), [xh, *half.parameters()])
    for a, b in zip(gh, gf):
        assert a.dtype == dtype
        assert _rel(a, b) < TOL[dtype]


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
@pytest.mark.parametrize("mode", ["dense", "sparse", "scatter", "auto"])
def test_half_precision_every_path(mode, dtype):
    ei, N = _test_graph()
    b = _loader_batch(_typed_graphs(dtype=torch.float32))
    typed = lambda: SemGraphConv(5, 4, num_edge_types=ei.size(1), isolated="uniform",  # noqa
                                 mode=mode)
    _compare(typed, b.x, (b.edge_index, b.edge_type, b.batch), dtype)
    _compare(typed, b.x, (b.edge_index, b.edge_type), dtype)
    template = lambda: SemGraphConv(5, 4, ei, N, isolated="uniform", mode=mode)  # noqa: E731
    _compare(template, torch.randn(3, N, 5), (), dtype)
    block = lambda: GraphConvBlock(5, 4, ei, N, mode=mode)  # noqa: E731
    _compare(block, torch.randn(3, N, 5), (), dtype)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_non_local(dtype):
    b = _loader_batch(_typed_graphs(dtype=torch.float32))
    _compare(lambda: GraphNonLocal(6), torch.randn(b.num_nodes, 6), (b.batch,), dtype)
    _compare(lambda: GraphNonLocal(6), torch.randn(2, 9, 6), (), dtype)
