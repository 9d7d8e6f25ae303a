"""HGN with any number of mesh levels (docs/published_model.md §10).

The schedule is checked against the rule as the docs state it, re-derived here independently, and
the forward pass against a literal execution of that rule with the model's own sub-modules (so a
wrong order, a missing update or a wrong source would show). Graphs: the icosphere hierarchy of
test_models_hgn.py (7 levels; fake slots at every level used). Tolerance: 1e-6 (float32, the
same operations in the same order).
"""
import pytest
import torch

from hgn_pyg.config import Config, apply_overrides
from hgn_pyg.engine.losses import HGNLoss
from hgn_pyg.errors import CheckpointError, ConfigError
from hgn_pyg.graphs import mesh_hierarchy, skeleton_graph
from hgn_pyg.models import HGN, PUBLISHED_SCHEDULE, fusion_schedule
from hgn_pyg.models.hgn import branch_birth_layer, min_num_layers

from test_models_hgn import _joint_weights, icosphere, randomize_


@pytest.fixture(scope="module")
def graphs():
    verts, faces = icosphere(4)
    return skeleton_graph("h36m"), mesh_hierarchy(faces, len(verts), levels=7), verts


def documented_schedule(num_layers, num_mesh):
    """docs/published_model.md §10 in words -> [(stage, after_layer, [(target, sources)])]."""
    birth = {}  # branch 2 after the input block, branch b >= 3 after layer b - 1
    for b in range(2, num_mesh + 2):
        birth[b] = 0 if b == 2 else b - 1
    out = []
    for k in range(num_layers + 1):
        alive = sorted(b for b in [1, *birth] if b == 1 or birth[b] < k)
        ups = []
        if k >= 1 and len(alive) > 1:
            for t in alive:
                ups.append((t, tuple(s for s in alive if s != t)))
        born = [b for b, at in birth.items() if at == k]
        for b in born:
            ups.append((b, tuple(alive)))
        if k >= 1 or ups:
            out.append((k + 1, k, ups))
    return out


@pytest.mark.parametrize("num_mesh,num_layers", [(0, 1), (0, 4), (1, 1), (1, 4), (2, 3), (2, 4), (2, 6),
                                                 (3, 4), (4, 5), (4, 7)])
def test_schedule_follows_the_documented_rule(num_mesh, num_layers):
    got = [(st.stage, st.after_layer, list(st.updates)) for st in fusion_schedule(num_layers, num_mesh)]
    assert got == documented_schedule(num_layers, num_mesh)


def test_published_case_and_minimum_depth():
    assert fusion_schedule(4, 2) == PUBLISHED_SCHEDULE == fusion_schedule(4)
    assert [branch_birth_layer(b) for b in (2, 3, 4, 5)] == [0, 2, 3, 4]
    assert [min_num_layers(m) for m in range(5)] == [1, 1, 3, 4, 5]
    for m in range(5):
        with pytest.raises(ConfigError, match=f">= {min_num_layers(m)}"):
            fusion_schedule(min_num_layers(m) - 1, m)


def run_documented(model, x):
    """The forward pass executed literally from the documented rule with the model's modules."""
    h = {1: model.input_block(x)}
    for stage, k, updates in documented_schedule(model.num_layers, len(model.mesh_levels)):
        if k >= 1:
            for b in sorted(h):
                h[b] = model.layers[f"{b}_{k}"](h[b])
        for t, sources in updates:
            acc = h.get(t)
            for s in sources:
                y = model.transfers[f"{s}_{t}_{stage}"](h[s])
                acc = y if acc is None else acc + y
            h[t] = acc
    return [model.heads[b - 1](h[b]) for b in sorted(h)]


@pytest.mark.parametrize("levels,layers,fusion", [((), 4, "official"), ((6,), 4, "official"),
                                                  ((6, 5, 4), 4, "official"), ((6, 5, 4, 3), 5, "official"),
                                                  ((6, 5, 4, 3), 5, "pool"), ((), 3, "pool")])
def test_forward_equals_documented_schedule(graphs, levels, layers, fusion):
    skeleton, hierarchy, verts = graphs
    kw = dict(joint_assignment=_joint_weights(verts)) if fusion == "pool" else {}
    model = randomize_(HGN(skeleton, hierarchy, mesh_levels=levels, num_layers=layers, hidden_channels=8,
                           fusion=fusion, **kw), seed=5).eval()
    x = torch.randn(3, 17, 2, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        out = model(x)
        ref = run_documented(model, x)
    assert len(out.meshes) == len(levels)
    for lv, mesh in zip(levels, out.meshes):
        assert mesh.shape == (3, hierarchy.num_slots[lv], 3)
    for a, b in zip((out.joints, *out.meshes), ref):
        assert torch.allclose(a, b, atol=1e-6, rtol=0)
    assert [r.shape[1] for r in model.real_meshes(out)] == [hierarchy.num_real[lv] for lv in levels]
    # every layer of every branch exists exactly where the rule puts it
    expected = {f"{b}_{k}" for b in range(1, len(levels) + 2) for k in range(1, layers + 1)
                if b == 1 or k > branch_birth_layer(b)}
    assert set(model.layers.keys()) == expected


def test_skeleton_only_is_a_semgcn_with_non_local(graphs):
    skeleton, hierarchy, _ = graphs
    model = HGN(skeleton, None, mesh_levels=(), hidden_channels=16)
    assert len(model.transfers) == 0 and len(model.heads) == 1 and len(model.layers) == 4
    out = model(torch.randn(2, 17, 2))
    assert out.meshes == () and out.joints.shape == (2, 17, 3)
    assert "mesh_" not in repr(model)
    with pytest.raises(CheckpointError, match="exactly two mesh branches"):
        model.to_official_state_dict()


def test_four_mesh_levels_train_every_parameter(graphs):
    skeleton, hierarchy, _ = graphs
    levels = (6, 5, 4, 3)
    model = randomize_(HGN(skeleton, hierarchy, mesh_levels=levels, num_layers=5, hidden_channels=8), seed=3)
    loss_fn = HGNLoss.from_hierarchy(hierarchy, levels, mesh_weights=[1.0, 0.5, 2.0, 1.0])
    out = model(torch.randn(4, 17, 2))
    gts = [torch.randn(4, hierarchy.num_real[lv], 3) for lv in levels]
    total, parts = loss_fn(out.joints, out.meshes, torch.randn(4, 17, 3), gts)
    total.backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name
    assert set(parts) == {"joints", "mesh0", "mesh1", "mesh2", "mesh3"}
    manual = 100 * parts["joints"] + parts["mesh0"] + 0.5 * parts["mesh1"] + 2 * parts["mesh2"] + parts["mesh3"]
    assert torch.allclose(total.detach(), manual)


def test_bad_level_lists(graphs):
    skeleton, hierarchy, _ = graphs
    with pytest.raises(ConfigError, match="coarse to fine"):
        HGN(skeleton, hierarchy, mesh_levels=(5, 6))
    with pytest.raises(ConfigError, match="coarse to fine"):
        HGN(skeleton, hierarchy, mesh_levels=(6, 6))
    with pytest.raises(ConfigError, match=">= 5"):
        HGN(skeleton, hierarchy, mesh_levels=(6, 5, 4, 3), num_layers=4)


def test_config_mesh_levels_and_weights():
    cfg = apply_overrides(Config(), ["MODEL.mesh_levels=[8, 7, 6, 5]", "MODEL.num_layers=5"])
    assert cfg.MODEL.mesh_levels == [8, 7, 6, 5] and cfg.TRAIN.mesh_loss_weights is None
    cfg = apply_overrides(Config(), ["MODEL.mesh_levels=[]", "MODEL.num_layers=2"])
    assert cfg.MODEL.mesh_levels == []
    with pytest.raises(ConfigError, match="MODEL.num_layers.*at least 5"):
        apply_overrides(Config(), ["MODEL.mesh_levels=[8, 7, 6, 5]"])
    with pytest.raises(ConfigError, match="TRAIN.mesh_loss_weights.*3 non-negative"):
        apply_overrides(Config(), ["MODEL.mesh_levels=[8, 7, 6]", "TRAIN.mesh_loss_weights=[1, 1]"])
    with pytest.raises(ConfigError, match="MODEL.mesh_levels"):
        apply_overrides(Config(), ["MODEL.mesh_levels=[7, 8]"])
