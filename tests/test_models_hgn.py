"""HGN (sparse PyG layers) against the published dense formulation (DenseHGN).

Graphs: the H3.6M skeleton and the hierarchy of an icosphere with 2,562 vertices coarsened 7 times;
the mesh branches use levels 6 (57 real / 62 slots) and 5 (107 / 124): fake slots in both, like
SMPL's levels 8 and 7 (45/48, 83/96) of a 9-level hierarchy.
Tolerances: eval-mode outputs within 1e-4 (max abs); gradients within 1e-4 abs + 1e-3 rel.
"""
import numpy as np
import pytest
import torch

from hgn_pyg.errors import CheckpointError, ConfigError
from hgn_pyg.graphs import mesh_hierarchy, skeleton_graph
from hgn_pyg.models import HGN, PUBLISHED_SCHEDULE, DenseHGN, HGNOutput, fusion_schedule
from hgn_pyg.models.official import official_key_map

LEVELS = (6, 5)
HIDDEN = 32


def icosphere(subdivisions):
    t = (1 + 5 ** 0.5) / 2
    verts = [(-1, t, 0), (1, t, 0), (-1, -t, 0), (1, -t, 0), (0, -1, t), (0, 1, t), (0, -1, -t),
             (0, 1, -t), (t, 0, -1), (t, 0, 1), (-t, 0, -1), (-t, 0, 1)]
    faces = [(0, 11, 5), (0, 5, 1), (0, 1, 7), (0, 7, 10), (0, 10, 11), (1, 5, 9), (5, 11, 4),
             (11, 10, 2), (10, 7, 6), (7, 1, 8), (3, 9, 4), (3, 4, 2), (3, 2, 6), (3, 6, 8),
             (3, 8, 9), (4, 9, 5), (2, 4, 11), (6, 2, 10), (8, 6, 7), (9, 8, 1)]
    verts = [np.array(v, float) / np.linalg.norm(v) for v in verts]
    for _ in range(subdivisions):
        cache, new = {}, []

        def mid(a, b):
            key = (min(a, b), max(a, b))
            if key not in cache:
                m = verts[a] + verts[b]
                verts.append(m / np.linalg.norm(m))
                cache[key] = len(verts) - 1
            return cache[key]

        for a, b, c in faces:
            ab, bc, ca = mid(a, b), mid(b, c), mid(c, a)
            new += [(a, ab, ca), (b, bc, ab), (c, ca, bc), (ab, bc, ca)]
        faces = new
    return np.array(verts), np.array(faces, dtype=np.int64)


@pytest.fixture(scope="module")
def graphs():
    verts, faces = icosphere(4)
    hierarchy = mesh_hierarchy(faces, len(verts), levels=7)
    return skeleton_graph("h36m"), hierarchy, verts


def randomize_(model, seed=0):
    """Random weights of a sensible scale, nothing trivially zero or one (BN statistics and the
    zero-initialised non-local output included). Works on DenseHGN and HGN alike."""
    gen = torch.Generator().manual_seed(seed)

    def rand(shape, lo, hi):
        return torch.rand(shape, generator=gen) * (hi - lo) + lo

    with torch.no_grad():
        for name, t in model.state_dict().items():
            leaf = name.rsplit(".", 1)[-1]
            if leaf == "num_batches_tracked":
                t.fill_(7)
            elif leaf == "running_var":
                t.copy_(rand(t.shape, 0.5, 1.5))
            elif leaf == "running_mean":
                t.copy_(0.1 * torch.randn(t.shape, generator=gen))
            elif leaf in ("e", "edge_logits"):
                t.copy_(torch.randn(t.shape, generator=gen))
            elif t.dim() == 1:  # biases, BN affine, projection vectors
                is_bn_weight = leaf == "weight"
                t.copy_(rand(t.shape, 0.5, 1.0) if is_bn_weight
                        else 0.2 * torch.randn(t.shape, generator=gen))
            else:  # W [2, Cin, Cout] / conv [out, in, (1, 1)] / linear [out, in]
                fan_in = t.shape[-2] if t.dim() == 3 and t.shape[0] == 2 and leaf != "weight" \
                    else t.shape[1]
                if t.dim() == 3 and leaf == "weight" and t.shape[-1] != 1:  # ours [2, Cin, Cout]
                    fan_in = t.shape[-2]
                t.copy_(torch.randn(t.shape, generator=gen) / float(fan_in) ** 0.5)
    return model


def dense_for(skeleton, hierarchy, levels=LEVELS, hidden=HIDDEN, seed=0):
    return randomize_(DenseHGN.from_graphs(skeleton, hierarchy, levels, hidden_channels=hidden), seed)


def max_diff(out: HGNOutput, ref):
    return max(float((a - b).abs().max()) for a, b in zip((out.joints, *out.meshes), ref))


def test_schedule_is_the_published_one():
    names = [f"{s}_{t}_{st.stage}" for st in PUBLISHED_SCHEDULE for t, srcs in st.updates
             for s in srcs]
    assert names == ["1_2_1", "2_1_2", "1_2_2", "2_1_3", "1_2_3", "1_3_3", "2_3_3",
                     "2_1_4", "3_1_4", "1_2_4", "3_2_4", "1_3_4", "2_3_4",
                     "2_1_5", "3_1_5", "1_2_5", "3_2_5", "1_3_5", "2_3_5"]
    assert len(fusion_schedule(6)) == 7
    with pytest.raises(ConfigError):
        fusion_schedule(1)


def test_official_names_and_shapes(graphs):
    skeleton, hierarchy, _ = graphs
    for lv in LEVELS:  # the fixture has fake (isolated) slots in both mesh branches
        assert hierarchy.num_real[lv] < hierarchy.num_slots[lv]
    dense = DenseHGN.from_graphs(skeleton, hierarchy, LEVELS, hidden_channels=HIDDEN)
    model = HGN(skeleton, hierarchy, mesh_levels=LEVELS, hidden_channels=HIDDEN)
    ref = dense.state_dict()
    ours = model.to_official_state_dict()
    assert list(ours) == list(ref) or sorted(ours) == sorted(ref)
    for key, value in ref.items():
        assert tuple(ours[key].shape) == tuple(value.shape), key
    assert ref["gconv_input.0.gconv.e"].shape == (1, 17 + 32)
    assert ref["gconv_layers_2_1.0.gconv1.gconv.e"].shape[1] == hierarchy.levels[6].edge_index.shape[1]
    assert ref["fc_1_3_3.conv.weight"].shape == (hierarchy.num_slots[5], 17, 1)
    assert "gconv_layers_3_3.1.nonlocal1.concat_project.0.weight" in ref
    assert "gconv_layers_3_2.0.gconv1.gconv.W" not in ref
    # same parameter count (our vectors/matrices hold exactly the published numbers)
    assert sum(p.numel() for p in model.parameters()) == sum(p.numel() for p in dense.parameters())


@pytest.fixture(scope="module")
def eval_reference(graphs):
    """A randomised DenseHGN (eval mode), an input and its outputs (computed once)."""
    skeleton, hierarchy, _ = graphs
    dense = dense_for(skeleton, hierarchy).eval()
    x = torch.randn(3, 17, 2, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        ref = dense(x)
    return dense.state_dict(), x, ref


@pytest.mark.parametrize("mode", ["auto", "dense", "sparse", "scatter"])
def test_from_official_matches_dense_eval(graphs, eval_reference, mode):
    skeleton, hierarchy, _ = graphs
    state, x, ref = eval_reference
    model = HGN.from_official(state, skeleton, hierarchy, mesh_levels=LEVELS, mode=mode).eval()
    assert model.hidden_channels == HIDDEN
    with torch.no_grad():
        out = model(x)
    assert out.joints.shape == (3, 17, 3)
    assert out.meshes[0].shape == (3, hierarchy.num_slots[6], 3)
    assert out.meshes[1].shape == (3, hierarchy.num_slots[5], 3)
    assert max_diff(out, ref) <= 1e-4


def test_from_official_published_width(graphs):
    """C = 128 as published; also reports the parameter count on the test hierarchy."""
    skeleton, hierarchy, _ = graphs
    dense = dense_for(skeleton, hierarchy, hidden=128, seed=3).eval()
    model = HGN.from_official({"model_state_dict": dense.state_dict()}, skeleton, hierarchy,
                              mesh_levels=LEVELS).eval()
    x = torch.randn(2, 17, 2)
    with torch.no_grad():
        assert max_diff(model(x), dense(x)) <= 1e-4
    n = sum(p.numel() for p in model.parameters())
    print(f"HGN parameters (C=128, levels {LEVELS}): {n}")
    assert n == sum(p.numel() for p in dense.parameters())


def _official_grads(model):
    grads = {name: (p.grad if p.grad is not None else torch.zeros_like(p))
             for name, p in model.named_parameters()}
    return {e.official: e.to_official(tuple(grads[k] for k in e.ours))
            for e in official_key_map(model) if all(k in grads for k in e.ours)}


@pytest.fixture(scope="module", params=[torch.float64, torch.float32], ids=["f64", "f32"])
def train_reference(request, graphs):
    """One training-mode forward/backward of a randomised DenseHGN (computed once per dtype)."""
    dtype = request.param
    skeleton, hierarchy, _ = graphs
    dense = dense_for(skeleton, hierarchy, seed=5).to(dtype)
    state = {k: v.clone() for k, v in dense.state_dict().items()}
    dense.train()
    gen = torch.Generator().manual_seed(2)
    x = torch.randn(4, 17, 2, generator=gen, dtype=dtype)
    w = [torch.randn(4, n, 3, generator=gen, dtype=dtype)
         for n in (17, hierarchy.num_slots[6], hierarchy.num_slots[5])]
    ref = dense(x)
    sum((o * wi).sum() for o, wi in zip(ref, w)).backward()
    grads = {n: p.grad.clone() for n, p in dense.named_parameters()}
    return dtype, state, x, w, [r.detach() for r in ref], grads, dense.state_dict()


def _close(a, b, dtype, msg=""):
    """float64 (the strict check): 1e-8 after dividing by the tensor's scale. float32: relative
    Frobenius error <= 1e-3 (train-mode BN divides by the batch deviation, amplifying rounding)."""
    if not b.is_floating_point():
        assert torch.equal(a, b), msg
    elif dtype == torch.float64:
        scale = max(1.0, float(b.abs().max()))
        torch.testing.assert_close(a / scale, b / scale, atol=1e-8, rtol=1e-8, msg=msg or None)
    else:
        err = float((a - b).norm()) / max(float(b.norm()), 1e-6)
        assert err <= 1e-3, f"{msg}: relative error {err:.2e}"


def _before_train_bn(name):
    """Biases that feed a train-mode BatchNorm: their true gradient is exactly 0 (BN removes
    the mean), so float32 only shows rounding noise there."""
    return name.endswith(".gconv.bias") and not name.startswith("gconv_output") \
        or name.endswith("nonlocal1.W.0.bias")


@pytest.mark.parametrize("mode", ["auto", "sparse"])
def test_train_step_gradients_agree(graphs, train_reference, mode):
    """One training-mode forward/backward (BatchNorm on batch statistics): outputs, every
    parameter's gradient (mapped to the published layout) and the BN running statistics agree."""
    skeleton, hierarchy, _ = graphs
    dtype, state, x, w, ref, ref_grads, ref_after = train_reference
    if dtype == torch.float32 and mode != "auto":
        pytest.skip("float32 checked in auto mode only")
    model = HGN.from_official(state, skeleton, hierarchy, mesh_levels=LEVELS,
                              mode=mode).to(dtype).train()
    out = model(x)
    for a, b in zip((out.joints, *out.meshes), ref):
        _close(a.detach(), b, dtype)
    sum((o * wi).sum() for o, wi in zip((out.joints, *out.meshes), w)).backward()
    ours = _official_grads(model)
    assert set(ours) == set(ref_grads)
    scale = max(float(g.abs().max()) for g in ref_grads.values())
    for name, g in ref_grads.items():
        if dtype == torch.float32 and _before_train_bn(name):
            assert float(ours[name].abs().max()) <= 1e-3 * scale, name
            assert float(g.abs().max()) <= 1e-3 * scale, name
        else:
            _close(ours[name], g, dtype, name)
    after = model.to_official_state_dict()  # running statistics updated identically
    for name, t in ref_after.items():
        if "running" in name or "num_batches" in name:
            _close(after[name].to(t.dtype), t, dtype, name)


def test_round_trip(graphs, tmp_path):
    skeleton, hierarchy, _ = graphs
    sd = dense_for(skeleton, hierarchy, seed=9).state_dict()
    prefixed = {f"module.{k}": v for k, v in sd.items()}
    path = tmp_path / "final.pth.tar"
    torch.save({"model_state_dict": prefixed, "epoch": 12}, path)
    model = HGN.from_official(str(path), skeleton, hierarchy, mesh_levels=LEVELS)
    back = model.to_official_state_dict()
    assert list(back) == list(sd)
    for k, v in sd.items():
        assert torch.equal(back[k], v), k
    DenseHGN.from_graphs(skeleton, hierarchy, LEVELS, hidden_channels=HIDDEN).load_state_dict(back)


def test_checkpoint_errors_name_all_keys(graphs):
    skeleton, hierarchy, _ = graphs
    sd = dense_for(skeleton, hierarchy).state_dict()
    bad = dict(sd)
    del bad["gconv_layers_1_2.1.nonlocal1.g.weight"]
    del bad["fc_3_2_5.conv.bias"]
    bad["gconv_layers_2_3.0.gconv2.gconv.W"] = torch.zeros(2, HIDDEN, HIDDEN + 1)
    bad["extra.weight"] = torch.zeros(1)
    with pytest.raises(CheckpointError) as info:
        HGN.from_official(bad, skeleton, hierarchy, mesh_levels=LEVELS)
    msg = str(info.value)
    for key in ("gconv_layers_1_2.1.nonlocal1.g.weight", "fc_3_2_5.conv.bias",
                "gconv_layers_2_3.0.gconv2.gconv.W", "extra.weight"):
        assert key in msg
    assert "\n" not in msg

    # a checkpoint made for other graphs: e lengths and transfer shapes disagree
    other = dense_for(skeleton, hierarchy, levels=(7, 6)).state_dict()
    with pytest.raises(CheckpointError) as info:
        HGN.from_official(other, skeleton, hierarchy, mesh_levels=LEVELS)
    msg = str(info.value)
    assert "gconv_layers_2_1.0.gconv1.gconv.e" in msg and "gconv_output_96.e" in msg
    assert "edge logits" in msg and "mesh level-6 graph" in msg and "mesh_levels" in msg
    assert "fc_1_2_1.conv.weight" in msg

    with pytest.raises(CheckpointError):
        HGN.from_official({"model_state_dict": {"a": 1}}, skeleton, hierarchy)
    with pytest.raises(CheckpointError, match="checkpoint file not found"):
        HGN.from_official("/nonexistent/final.pth.tar", skeleton, hierarchy)


def test_mesh_levels_configurable(graphs):
    """Other mesh levels (here non-adjacent ones, 7 and 5) work end to end."""
    skeleton, hierarchy, _ = graphs
    levels = (7, 5)
    dense = dense_for(skeleton, hierarchy, levels=levels, hidden=8, seed=1).eval()
    model = HGN.from_official(dense.state_dict(), skeleton, hierarchy, mesh_levels=levels).eval()
    assert model.mesh_levels == levels
    x = torch.randn(1, 17, 2)
    with torch.no_grad():
        out = model(x)
        assert max_diff(out, dense(x)) <= 1e-4
    assert out.meshes[0].shape == (1, hierarchy.num_slots[7], 3)
    assert out.meshes[1].shape == (1, hierarchy.num_slots[5], 3)
    real = model.real_meshes(out)
    assert real[0].shape == (1, hierarchy.num_real[7], 3)
    assert real[1].shape == (1, hierarchy.num_real[5], 3)
    assert torch.equal(model.real_slots[1], hierarchy.real_slots(5))
    assert torch.equal(real[1][0], out.meshes[1][0, hierarchy.real_slots(5)])
    with pytest.raises(ConfigError):
        HGN(skeleton, hierarchy, mesh_levels=(9, 8))  # the test hierarchy has 7 levels


def _joint_weights(verts):
    gen = np.random.default_rng(0)
    anchors = verts[gen.choice(len(verts), 17, replace=False)]
    d2 = ((verts[None, :, :] - anchors[:, None, :]) ** 2).sum(-1)
    return np.exp(-d2 / 0.1)


def test_pool_fusion_trains_and_reaches_every_parameter(graphs):
    skeleton, hierarchy, verts = graphs
    model = HGN(skeleton, hierarchy, mesh_levels=LEVELS, hidden_channels=16, fusion="pool",
                joint_assignment=_joint_weights(verts))
    randomize_(model, seed=4)  # the non-local BN starts at 0, which would block its inputs' grads
    assert not any(key.startswith("transfers.") and "weight" in key and v.shape[-1] != 16
                   for key, v in model.state_dict().items())  # Linear(C, C) maps only
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    x = torch.randn(4, 17, 2)
    out = model(x)
    assert out.meshes[0].shape == (4, hierarchy.num_slots[6], 3)
    loss = sum(o.pow(2).mean() for o in (out.joints, *out.meshes))
    loss.backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name
    before = [p.detach().clone() for p in model.parameters()]
    opt.step()
    assert all(not torch.equal(a, p) for a, p in zip(before, model.parameters()))
    with pytest.raises(ConfigError):
        HGN(skeleton, hierarchy, mesh_levels=LEVELS, fusion="pool")


def test_reset_parameters_and_repr(graphs):
    skeleton, hierarchy, _ = graphs
    model = randomize_(HGN(skeleton, hierarchy, mesh_levels=LEVELS, hidden_channels=16))
    model.reset_parameters()
    sd = model.to_official_state_dict()
    assert torch.all(sd["gconv_layers_2_1.0.gconv1.gconv.e"] == 1)
    assert torch.all(sd["gconv_layers_3_4.1.nonlocal1.W.1.weight"] == 0)
    assert torch.all(sd["gconv_layers_3_4.1.nonlocal1.W.0.bias"] == 0)
    text = repr(model)
    assert "HGN(" in text and "level 6" in text and "parameters=" in text
    assert "DenseHGN(" in repr(DenseHGN.from_graphs(skeleton, hierarchy, LEVELS, hidden_channels=8))


def test_single_pose_and_bad_input(graphs):
    skeleton, hierarchy, _ = graphs
    model = HGN(skeleton, hierarchy, mesh_levels=LEVELS, hidden_channels=8).eval()
    out = model(torch.randn(17, 2))
    assert out.joints.shape == (17, 3) and out.meshes[1].shape == (hierarchy.num_slots[5], 3)
    with pytest.raises(ValueError):
        model(torch.randn(2, 16, 2))


@pytest.mark.slow
def test_torch_compile_cpu(graphs):
    """Inductor on CPU (compiling ~60 kernels takes minutes on a busy 2-core machine)."""
    skeleton, hierarchy, _ = graphs
    dense = dense_for(skeleton, hierarchy, hidden=16, seed=2).eval()
    model = HGN.from_official(dense.state_dict(), skeleton, hierarchy, mesh_levels=LEVELS).eval()
    compiled = torch.compile(model, fullgraph=True)
    x = torch.randn(2, 17, 2)
    with torch.no_grad():
        out = compiled(x)
        ref = model(x)
    # fused kernels round differently: 1e-4 relative to the outputs' scale (random weights
    # give outputs of magnitude ~100 here)
    scale = max(1.0, max(float(t.abs().max()) for t in (ref.joints, *ref.meshes)))
    assert max_diff(out, (ref.joints, *ref.meshes)) <= 1e-4 * scale


def test_predict_in_blocks_matches_the_dense_reference(graphs, eval_reference):
    """HGN.predict over 3 poses in blocks of 1 and 2 (and one 2D pose) gives the dense
    formulation's eval outputs (1e-4, as above); the training mode is restored."""
    skeleton, hierarchy, _ = graphs
    state, x, ref = eval_reference
    model = HGN.from_official(state, skeleton, hierarchy, mesh_levels=LEVELS).train()
    for block in (1, 2, None):
        out = model.predict(x, block_size=block)
        assert model.training and out.joints.shape == (3, 17, 3)
        assert max_diff(out, ref) <= 1e-4
    one = model.predict(x[1])
    assert one.joints.shape == (17, 3)
    assert float((one.joints - ref[0][1]).abs().max()) <= 1e-4
    with pytest.raises(ValueError, match="block_size"):
        model.predict(x, block_size=-1)
