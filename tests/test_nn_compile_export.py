"""SemGraphConv and GraphNonLocal under torch.compile(fullgraph=True), torch.export and the legacy
ONNX exporter, against the eager layers.

Tolerances: float32 forward and gradients against eager, ``atol=rtol=1e-5`` (the traced typed
path sums the same terms in another order); ONNX Runtime against eager, ``atol=1e-5``.
"""
import importlib.util

import pytest
import torch

from hgn_pyg.nn import GraphNonLocal, SemGraphConv, choose_mode

from test_nn_sem_graph_conv import _loader_batch, _test_graph, _typed_graphs

F32 = dict(atol=1e-5, rtol=1e-5)
MODES = ("dense", "sparse", "scatter", "auto")


def _typed(mode, isolated="uniform", seed=0):
    ei, _ = _test_graph()
    torch.manual_seed(seed)
    conv = SemGraphConv(5, 4, num_edge_types=ei.size(1), isolated=isolated, mode=mode)
    with torch.no_grad():
        conv.edge_logits.normal_()
        conv.bias.normal_()
    return conv


def _template(mode, isolated="uniform", seed=0):
    ei, N = _test_graph()
    torch.manual_seed(seed)
    conv = SemGraphConv(5, 4, ei, N, isolated=isolated, mode=mode)
    with torch.no_grad():
        conv.edge_logits.normal_()
    return conv


def _grads(out, inputs, seed=1):
    r = torch.randn(out.shape, generator=torch.Generator().manual_seed(seed))
    return torch.autograd.grad((out * r).sum(), inputs)


@pytest.mark.parametrize("isolated", ["uniform", "self", "zero"])
@pytest.mark.parametrize("mode", MODES)
def test_compile_fullgraph_typed(mode, isolated):
    """No graph break on the typed path (fullgraph=True raises on one); output and every
    gradient equal eager, with and without batch, for a DataLoader batch of different graphs."""
    torch._dynamo.reset()
    conv = _typed(mode, isolated)
    b = _loader_batch(_typed_graphs(dtype=torch.float32))
    compiled = torch.compile(conv, fullgraph=True, backend="aot_eager")
    params = list(conv.parameters())
    for batch in (b.batch, None):
        x = b.x.clone().requires_grad_()
        out, ref = compiled(x, b.edge_index, b.edge_type, batch), conv(x, b.edge_index,
                                                                          b.edge_type, batch)
        torch.testing.assert_close(out, ref, **F32)
        for g, e in zip(_grads(out, params + [x]), _grads(ref, params + [x])):
            torch.testing.assert_close(g, e, **F32)
    # [B, N, C] on one typed topology
    x3 = torch.randn(2, b.num_nodes, 5)
    torch.testing.assert_close(compiled(x3, b.edge_index, b.edge_type, b.batch),
                               conv(x3, b.edge_index, b.edge_type, b.batch), **F32)


@pytest.mark.parametrize("mode", MODES)
def test_compile_fullgraph_template(mode):
    """The template path, [B, N, C] and a PyG batch of copies, in one graph; equal to eager."""
    from torch_geometric.data import Batch, Data

    torch._dynamo.reset()
    conv = _template(mode)
    ei, N = _test_graph()
    compiled = torch.compile(conv, fullgraph=True, backend="aot_eager")
    x = torch.randn(3, N, 5, requires_grad=True)
    out, ref = compiled(x), conv(x)
    torch.testing.assert_close(out, ref, **F32)
    params = list(conv.parameters())
    for g, e in zip(_grads(out, params + [x]), _grads(ref, params + [x])):
        torch.testing.assert_close(g, e, **F32)
    copies = Batch.from_data_list([Data(edge_index=ei, num_nodes=N)] * 3)
    torch.testing.assert_close(compiled(x.detach().reshape(-1, 5), copies.edge_index),
                               conv(x.detach()).reshape(-1, 4), **F32)


@pytest.mark.slow
def test_compile_inductor_typed():
    torch._dynamo.reset()
    conv = _typed("auto")
    b = _loader_batch(_typed_graphs(dtype=torch.float32))
    args = (b.x, b.edge_index, b.edge_type, b.batch)
    torch.testing.assert_close(torch.compile(conv, fullgraph=True)(*args), conv(*args), **F32)


def test_export_typed_layer_dynamic_graph():
    """torch.export of a typed layer with a dynamic number of nodes and edges; the exported
    program run on another batch of graphs equals eager."""
    from torch.export import Dim

    conv = _typed("auto")
    graphs = _typed_graphs(dtype=torch.float32)
    b = _loader_batch(graphs)
    nodes, edges = Dim("nodes", min=2), Dim("edges", min=2)
    ep = torch.export.export(conv, (b.x, b.edge_index, b.edge_type, b.batch), dynamic_shapes=(
        {0: nodes}, {1: edges}, {0: edges}, {0: nodes}))
    other = _loader_batch(_typed_graphs(seed=3, dtype=torch.float32)[1:4])
    args = (other.x, other.edge_index, other.edge_type, other.batch)
    assert other.num_nodes != b.num_nodes
    torch.testing.assert_close(ep.module()(*args), conv(*args), **F32)


@pytest.mark.parametrize("mode", ["auto", "dense", "sparse"])
def test_export_template_dynamic_batch(mode):
    """A template layer exports with a dynamic batch dimension (mode="auto" reads the batch
    size only for 128 < N <= 256) and runs at other batch sizes."""
    from torch.export import Dim

    conv = _template(mode)
    _, N = _test_graph()
    ep = torch.export.export(conv, (torch.randn(4, N, 5),),
                             dynamic_shapes=({0: Dim("B", min=1)},))
    for B in (1, 7, 40):
        x = torch.randn(B, N, 5)
        torch.testing.assert_close(ep.module()(x), conv(x), **F32)


def test_auto_mode_reads_batch_only_between_thresholds():
    for n in (17, 96, 128):
        assert {choose_mode(n, b) for b in (1, 3, 17, 4096, None)} == {"dense"}
    for n in (257, 1000):
        assert {choose_mode(n, b) for b in (1, 3, 17, 4096, None)} == {"sparse"}
    assert choose_mode(200, 1) == "dense" and choose_mode(200, None) == "sparse"


def test_export_graph_non_local_with_batch():
    """GraphNonLocal with a PyG batch exports (no host read of batch.max()) with dynamic nodes;
    the program equals the eager (padded) block on another batch, in eval mode."""
    from torch.export import Dim

    torch.manual_seed(0)
    nl = GraphNonLocal(6)
    with torch.no_grad():
        for p in nl.parameters():
            p.normal_()
        nl.bn.running_var.uniform_(0.5, 2.0)
    nl.eval()
    batch = torch.tensor([0, 0, 0, 1, 1, 2, 2, 2, 2])
    x = torch.randn(batch.numel(), 6)
    nodes = Dim("nodes", min=2)
    ep = torch.export.export(nl, (x, batch), dynamic_shapes=({0: nodes}, {0: nodes}))
    batch2 = torch.tensor([0, 1, 1, 1, 1, 2, 3, 3, 3, 3, 3, 4])
    x2 = torch.randn(batch2.numel(), 6)
    torch.testing.assert_close(ep.module()(x2, batch2), nl(x2, batch2), **F32)
    # and the same in a compiled model, with gradients
    torch._dynamo.reset()
    nl.train()
    x2.requires_grad_()
    out = torch.compile(nl, fullgraph=True, backend="aot_eager")(x2, batch2)
    ref = nl(x2, batch2)
    torch.testing.assert_close(out, ref, **F32)
    params = list(nl.parameters())
    for g, e in zip(_grads(out, params + [x2]), _grads(ref, params + [x2])):
        torch.testing.assert_close(g, e, **F32)


@pytest.mark.skipif(importlib.util.find_spec("onnx") is None, reason="onnx not installed")
def test_legacy_onnx_export_template_dense(tmp_path):
    """The legacy (TorchScript) ONNX exporter takes the dense kernel (no aten::diag_embed);
    ONNX Runtime, where installed, gives the eager output."""
    conv = _template("dense").eval()
    _, N = _test_graph()
    x = torch.randn(2, N, 5)
    path = tmp_path / "conv.onnx"
    torch.onnx.export(conv, (x,), str(path), dynamo=False, input_names=["x"],
                      dynamic_axes={"x": {0: "B"}})
    if importlib.util.find_spec("onnxruntime") is None:
        return
    import onnxruntime

    sess = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    x = torch.randn(5, N, 5)
    got = torch.from_numpy(sess.run(None, {"x": x.numpy()})[0])
    torch.testing.assert_close(got, conv(x).detach().contiguous(), atol=1e-5, rtol=1e-5)


def test_hgn_compiles_fullgraph_and_exports_with_dynamic_batch():
    """The layers inside HGN (the test hierarchy) trace as one graph, and torch.export with a
    dynamic batch runs at other batch sizes equal to eager (eval mode, 1e-5)."""
    from torch.export import Dim

    from hgn_pyg.models import HGN
    from test_models_hgn import HIDDEN, LEVELS, icosphere, mesh_hierarchy, skeleton_graph

    verts, faces = icosphere(4)
    model = HGN(skeleton_graph("h36m"), mesh_hierarchy(faces, len(verts), levels=7),
                mesh_levels=LEVELS, hidden_channels=HIDDEN).eval()
    x = torch.randn(4, 17, 2)
    torch._dynamo.reset()
    explained = torch._dynamo.explain(model)(x)
    assert explained.graph_break_count == 0, explained.break_reasons
    ep = torch.export.export(model, (x,), dynamic_shapes=({0: Dim("B", min=1)},))
    for B in (1, 33):
        xx = torch.randn(B, 17, 2)
        got, ref = ep.module()(xx), model(xx)
        for a, b in zip((got.joints, *got.meshes), (ref.joints, *ref.meshes)):
            torch.testing.assert_close(a, b, **F32)
