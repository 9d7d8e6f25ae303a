"""examples/pyg_lifting.py and the edge_type convention between PoseGraphDataset and the layers.

The agreement test compares a typed SemGraphConv on a DataLoader batch of PoseGraphDataset
samples with an independent dense statement of the layer (softmax over each target's incoming
edges of its own graph, W0 for the self loop, W1 otherwise) and with a template-built layer on the
whole skeletons; tolerance 1e-5 (float32 sums of 17 terms).
"""
import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch_geometric.loader import DataLoader

from hgn_pyg.data import PoseGraphDataset, RandomJointDropout, skeleton_template
from hgn_pyg.nn import GraphNonLocal, SemGraphConv

from test_data_fixtures import write_h36m

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "examples" / "pyg_lifting.py"


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    return write_h36m(tmp_path_factory.mktemp("ex_h36m"), subjects=[1, 9], frames=6)


def _dense_sem(conv, x, edge_index, edge_type, num_nodes):
    """Independent dense statement for one graph: A[i, j] = softmax_j(e[type(j->i)])."""
    logits = torch.full((num_nodes, num_nodes), float("-inf"))
    logits[edge_index[1], edge_index[0]] = conv.edge_logits[edge_type]
    att = torch.softmax(logits, dim=1)
    att = torch.nan_to_num(att, nan=0.0)
    diag = torch.diagonal(att)
    w0, w1 = conv.weight[0], conv.weight[1]
    off = att - torch.diag(diag)
    out = diag[:, None] * (x @ w0) + off @ (x @ w1)
    return out + conv.bias if conv.bias is not None else out


def test_typed_layer_on_mixed_batches_matches_dense_and_template(root):
    torch.manual_seed(0)
    t = skeleton_template()
    typed = SemGraphConv(2, 8, num_edge_types=t.num_edges)
    with torch.no_grad():
        typed.edge_logits.normal_()
        if typed.bias is not None:
            typed.bias.normal_()
    drop = RandomJointDropout(0.3, generator=torch.Generator().manual_seed(0))
    ds = PoseGraphDataset(root, "test", subjects=[9], subsample=2, transform=drop)
    batch = next(iter(DataLoader(ds, batch_size=16)))
    assert len(set(batch.ptr.diff().tolist())) > 1                 # really mixed topologies
    x = batch.x.clone().requires_grad_()
    out = typed(x, batch.edge_index, batch.edge_type)
    out.square().sum().backward()
    for g in range(batch.num_graphs):
        lo, hi = int(batch.ptr[g]), int(batch.ptr[g + 1])
        sel = (batch.edge_index[1] >= lo) & (batch.edge_index[1] < hi)
        xg = batch.x[lo:hi].clone().requires_grad_()
        ref = _dense_sem(typed, xg, batch.edge_index[:, sel] - lo, batch.edge_type[sel], hi - lo)
        torch.testing.assert_close(out[lo:hi], ref, atol=1e-5, rtol=1e-5)
        ref.square().sum().backward()
        torch.testing.assert_close(x.grad[lo:hi], xg.grad, atol=1e-5, rtol=1e-5)

    # the template layer with the same parameters gives the same numbers on whole skeletons
    template = SemGraphConv(2, 8, t.edge_index, t.num_nodes)
    template.load_state_dict(typed.state_dict())
    full = next(iter(DataLoader(PoseGraphDataset(root, "test", subjects=[9], subsample=2),
                                batch_size=16)))
    a = typed(full.x, full.edge_index, full.edge_type)
    b = template(full.x.view(full.num_graphs, 17, 2)).reshape(-1, 8)
    torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)


def test_graph_non_local_attends_within_each_dataset_graph(root):
    torch.manual_seed(1)
    drop = RandomJointDropout(0.3, generator=torch.Generator().manual_seed(2))
    batch = next(iter(DataLoader(PoseGraphDataset(root, "test", subjects=[9], subsample=2,
                                                  transform=drop), batch_size=8)))
    gnl = GraphNonLocal(4)
    with torch.no_grad():
        for p in gnl.parameters():
            p.normal_()
    gnl.eval()  # its BatchNorm: running statistics, so one graph alone is comparable
    h = torch.randn(batch.num_nodes, 4)
    out = gnl(h, batch.batch)
    for g in range(batch.num_graphs):
        lo, hi = int(batch.ptr[g]), int(batch.ptr[g + 1])
        torch.testing.assert_close(out[lo:hi], gnl(h[lo:hi][None])[0], atol=1e-5, rtol=1e-5)


def _load_example():
    spec = importlib.util.spec_from_file_location("pyg_lifting", EXAMPLE)
    mod = importlib.util.module_from_spec(spec)
    # importable by its name, as when the script runs: PyG's Sequential compiles its forward into a
    # module that does `from pyg_lifting import *`, and silently falls back to the class-level
    # forward (which the last compiled Sequential overwrote) when that import fails
    sys.modules["pyg_lifting"] = mod
    spec.loader.exec_module(mod)
    return mod


def test_example_model_on_a_mixed_batch(root):
    ex = _load_example()
    t = skeleton_template()
    model = ex.build_model(16, t.num_edges).eval()
    drop = RandomJointDropout(0.3, generator=torch.Generator().manual_seed(0))
    batch = next(iter(DataLoader(PoseGraphDataset(root, "test", subjects=[9], subsample=2,
                                                  transform=drop), batch_size=6)))
    out = model(batch.x, batch.joint, batch.edge_index, batch.edge_type, batch.batch)
    assert out.shape == (batch.num_nodes, 3)
    # per graph exactly as that graph alone
    for g in range(batch.num_graphs):
        one = batch.get_example(g)
        alone = model(one.x, one.joint, one.edge_index, one.edge_type,
                      torch.zeros(one.num_nodes, dtype=torch.long))
        lo, hi = int(batch.ptr[g]), int(batch.ptr[g + 1])
        torch.testing.assert_close(out[lo:hi], alone, atol=1e-5, rtol=1e-5)


@pytest.mark.slow
def test_example_quick_run_learns(tmp_path):
    """The --quick run end to end (generates its data): it must beat the mean-pose baseline."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    proc = subprocess.run([sys.executable, str(EXAMPLE), "--quick", "--root", str(tmp_path / "d"),
                           "--threads", "1"],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-2000:]
    last = proc.stdout.strip().splitlines()[-1]
    assert last.startswith("MPJPE ") and "mean-pose baseline" in last, proc.stdout[-2000:]
    mpjpe = float(last.split()[1])
    baseline = float(last.split("mean-pose baseline ")[1].split()[0])
    assert mpjpe < 0.8 * baseline, last
    assert (tmp_path / "d" / "processed").is_dir()
