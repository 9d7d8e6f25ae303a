"""Smoke tests of the benchmark scripts (smallest configurations; no timing assertions)."""
import csv
import math

import pytest
import torch

from benchmarks import _common as common
from benchmarks import batch_sweep, hgn_speed, sparse_vs_dense
from benchmarks.semgraphconv import SemGraphConvCase


@pytest.fixture(autouse=True)
def _single_thread():
    """Nothing here is timed against a target; one intra-op thread keeps these tests fast on a
    busy shared machine (OpenMP barriers stall when the cores are oversubscribed). Restored after
    each test."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


# ----------------------------------------------------------------------------- agreement check
def test_max_relative_error():
    ref = torch.tensor([[1.0, -2.0], [0.5, 4.0]])
    assert common.max_relative_error(ref, ref) == 0.0
    assert common.max_relative_error(ref + 0.004, ref) == pytest.approx(1e-3, rel=1e-4)
    assert common.max_relative_error(torch.zeros(3), torch.zeros(3)) == 0.0
    assert math.isinf(common.max_relative_error(torch.ones(3), torch.zeros(3)))
    assert math.isinf(common.max_relative_error(torch.tensor([float("nan")]), torch.ones(1)))
    with pytest.raises(common.AgreementError, match="shape"):
        common.max_relative_error(torch.ones(2), torch.ones(3))


def test_check_agreement_catches_a_wrong_mode():
    out = torch.randn(2, 5, 4, generator=torch.Generator().manual_seed(0))
    grad = torch.randn(3, 3, generator=torch.Generator().manual_seed(1))
    results = {"dense": (out, grad), "sparse": (out * (1 + 1e-6), grad)}
    errs = common.check_agreement(results, "dense", rtol=1e-4)
    assert errs["dense"] == 0.0 and errs["sparse"] < 1e-5
    wrong_grad = grad.clone()
    wrong_grad[1, 2] += 0.01 * grad.abs().max()  # output right, one gradient entry wrong
    results["scatter"] = (out, wrong_grad)
    with pytest.raises(common.AgreementError, match=r"scatter vs dense \(tensor 1"):
        common.check_agreement(results, "dense", rtol=1e-4, what="case")


def test_agreement_catches_a_wrong_semgraphconv_kernel():
    """The script's own check on real layers: kernels agree; a layer built with other
    semantics (isolated slots ignored instead of the published uniform attention) is caught."""
    from hgn_pyg.nn import SemGraphConv

    graph = sparse_vs_dense.build_graphs(["level8"])[0]  # has isolated fake slots
    case = SemGraphConvCase(graph, 2, 8, "fwd+bwd", torch.device("cpu"))
    dense, scatter = case.callable("dense")(), case.callable("scatter")()
    common.check_agreement({"dense": dense, "scatter": scatter}, "dense", rtol=1e-4)
    wrong = SemGraphConv(8, 8, graph.edge_index, graph.num_nodes, isolated="zero", mode="sparse")
    wrong.load_state_dict(case._state)
    with torch.no_grad():
        wrong_out = wrong(case.x)
    with pytest.raises(common.AgreementError):
        common.check_agreement({"dense": dense[:1], "wrong": (wrong_out,)}, "dense", rtol=1e-4)


def test_cpu_peak_memory_sees_torch_allocations():
    def alloc():
        a = torch.ones(1024, 1024)  # 4 MiB
        b = a * 2  # another 4 MiB while a is alive
        return float(b.sum())

    _, ms, peak = common.run_with_peak_memory(alloc, torch.device("cpu"))
    assert ms > 0
    assert math.isnan(peak) or 7.9 <= peak <= 9.0


# ----------------------------------------------------------------------------- scripts
def test_sparse_vs_dense_smallest_configuration(tmp_path):
    rows = sparse_vs_dense.main(["--quick", "--graphs", "skeleton,level8", "--batches", "1,2",
                                 "--channels", "8", "--rounds", "1", "--out", str(tmp_path),
                                 "--benchmarks", "semgraphconv,gcn_aggregation"])
    with open(tmp_path / "sparse_vs_dense.csv", newline="") as fh:
        reader = csv.DictReader(fh)
        assert tuple(reader.fieldnames) == (
            "benchmark", "mode", "num_nodes", "batch", "pass", "median_ms",
            "speedup_vs_dense", "peak_mem_mb")
        csv_rows = list(reader)
    n_sgc = len(sparse_vs_dense.available_modes("semgraphconv")[0])
    n_gcn = len(sparse_vs_dense.available_modes("gcn_aggregation")[0])
    assert len(csv_rows) == len(rows) == 2 * 2 * 2 * (n_sgc + n_gcn)
    assert {r["benchmark"] for r in csv_rows} == {"semgraphconv", "gcn_aggregation"}
    # level 8's size depends on the body mesh's coarsening (46 slots for open body 2.0)
    level8 = {g.name: g.num_nodes for g in sparse_vs_dense.build_graphs(["level8"])}["level8"]
    assert {int(r["num_nodes"]) for r in csv_rows} == {17, level8}
    assert {r["pass"] for r in csv_rows} == {"fwd", "fwd+bwd"}
    assert {"dense", "torch.sparse", "scatter", "auto"} <= {r["mode"] for r in csv_rows}
    for r in csv_rows:
        assert float(r["median_ms"]) > 0
        assert float(r["speedup_vs_dense"]) > 0
        if r["mode"] == "dense":
            assert float(r["speedup_vs_dense"]) == 1.0
    assert all(r.max_rel_err <= 1e-4 for r in rows)
    assert (tmp_path / "sparse_vs_dense.png").stat().st_size > 0
    assert "auto vs the best kernel" in (tmp_path / "sparse_vs_dense.md").read_text()


def test_sparse_vs_dense_typed_batches(tmp_path):
    """The typed-edge rows: every mode on each graph and pass; typed and shared agree (checked
    inside the script, relative 1e-4) and the target table is written."""
    rows = sparse_vs_dense.main(["--quick", "--graphs", "skeleton,level8", "--typed-batch", "3",
                                 "--channels", "8", "--rounds", "1", "--out", str(tmp_path),
                                 "--benchmarks", "typed_batches", "--no-plot"])
    modes = sparse_vs_dense.available_modes("typed_batches")[0]
    assert len(rows) == 2 * 2 * len(modes)
    assert {r.mode for r in rows} == set(sparse_vs_dense.TYPED_MODES)
    assert all(r.median_ms > 0 and r.batch == 3 for r in rows)
    checked = [r for r in rows if r.mode in ("typed", "typed_scatter")]
    assert checked and all(r.max_rel_err <= 1e-4 for r in checked)
    assert "typed / GATConv" in (tmp_path / "sparse_vs_dense.md").read_text()


def test_hgn_speed_smallest_configuration(tmp_path):
    res = hgn_speed.main(["--quick", "--batch", "2", "--rounds", "1", "--matmul-size", "256",
                          "--out", str(tmp_path)])
    assert res["max_abs_diff"] <= hgn_speed.ATOL
    assert res["params_hgn"] == res["params_dense"] > 0
    assert res["train_speedup"] > 0 and res["inference_speedup"] > 0
    text = (tmp_path / "hgn_speed.md").read_text()
    assert "Training step speed-up" in text and "GFLOP" in text


def test_hgn_speed_equality_check_catches_different_weights():
    hgn, dense, _, _ = hgn_speed.build_models()
    x = torch.randn(2, 17, 2)
    hgn_speed.check_equal(hgn, dense, x)
    with torch.no_grad():
        dense.gconv_layers_2_1[1].nonlocal1.concat_project[0].weight.mul_(1.5)
    with pytest.raises(common.AgreementError, match="disagree"):
        hgn_speed.check_equal(hgn, dense, x)


def test_hgn_speed_runs_at_a_batch_where_float32_train_mode_drifts(tmp_path):
    """--batch 256 refused before (float32 train-mode difference 1.3e-4 > 1e-4); the float64 check
    on 64 poses passes at 1e-9."""
    hgn, dense, _, _ = hgn_speed.build_models()
    diffs = hgn_speed.check_equal(hgn, dense, torch.randn(256, 17, 2, generator=torch.Generator().manual_seed(3)))
    assert max(diffs.values()) <= hgn_speed.ATOL and not hgn.training


def test_batch_sweep_smallest_configuration(tmp_path):
    try:
        import onnxruntime  # noqa: F401
        extra = ["--onnx", "--exporter", "legacy"]
    except ImportError:
        extra = []
    res = batch_sweep.main(["--batches", "1", "4", "16", "--poses", "4", "--rounds", "1", "--threads", "1",
                            "--out", str(tmp_path), *extra])
    assert {"forward 1", "predict 16", "large_over_16", "batch1_ms"} <= set(res)
    assert all(v > 0 for v in res.values())
    text = (tmp_path / "batch_sweep.md").read_text()
    assert "Fastest batch-1 path" in text and ("onnxruntime 64" in text) == bool(extra)


def test_batch_sweep_compile_rows(tmp_path, monkeypatch):
    """The --compile plumbing (agreement check, rows, ratio lines); torch.compile itself is replaced
    by the identity here (compiling HGN takes minutes; tests/test_nn_compile_export.py compiles it)."""
    seen = []

    def fake_compile(model, **kwargs):
        seen.append(kwargs)
        return model

    monkeypatch.setattr(batch_sweep.torch, "compile", fake_compile)
    res = batch_sweep.main(["--batches", "1", "16", "--poses", "2", "--rounds", "1", "--threads", "1",
                            "--compile", "--out", str(tmp_path)])
    assert seen == [{"fullgraph": True}]
    assert {"compiled 1", "compiled 64", "forward 64", "compiled_over_eager_1", "compiled_over_eager_64"} <= set(res)
    text = (tmp_path / "batch_sweep.md").read_text()
    assert "compiled vs eager at batch 1 and 64: max abs diff 0.0e+00" in text
    assert "compiled / eager at batch 64" in text
