"""The train and test CLIs with other mesh-level lists than the published one (real tiny training
subprocesses on the synthetic set of ``configs/hgn_test.yaml``; ``slow``)."""
import csv
import json
from pathlib import Path

import pytest

from test_cli_train import base_args, cli, data, listing, new_exp  # noqa: F401  (``data`` is a fixture)

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("levels,layers,fusion", [([8, 7, 6, 5], 5, "official"), ([], 4, "official"),
                                                  ([8, 7, 6], 4, "pool")])
def test_train_and_test_any_mesh_levels(data, tmp_path, levels, layers, fusion):  # noqa: F811
    out = tmp_path / "runs"
    sets = [f"MODEL.mesh_levels={levels}", f"MODEL.num_layers={layers}", f"MODEL.fusion={fusion}",
            "TRAIN.end_epoch=2", "TRAIN.max_train_samples=64", "TEST.max_samples=32", "TEST.vis=true",
            "TEST.vis_samples=1"]
    args = base_args(data, out)
    for s in sets:
        args += ["--set", s]
    before = listing(out)
    cli("hgn_pyg.train", args, cwd=tmp_path)
    exp = new_exp(out, before)
    res = json.loads((exp / "results.json").read_text())
    assert res["last"]["epoch"] == 1 and res["last"]["num_samples"] == 32
    for key in ("MPJPE", "PA-MPJPE", "MPJPE_action_mean", "PA-MPJPE_action_mean", "MPJPE_batch_mean"):
        assert res["last"][key] > 0 and res[key] == res["last"][key]
    assert res["best_rule"].startswith("published")
    rows = list(csv.DictReader(open(exp / "graph" / "metrics.csv")))
    mesh_cols = [c for c in rows[0] if c.startswith("train_mesh")]
    assert mesh_cols == [f"train_mesh{k}_mse" for k in range(max(len(levels), 2))]
    for k in range(len(levels)):
        assert float(rows[-1][f"train_mesh{k}_mse"]) > 0
    for lv in levels:
        assert (exp / "vis" / f"mesh_000_level{lv}.obj").is_file()

    proc = cli("hgn_pyg.test", args + ["--checkpoint", str(exp / "checkpoint" / "last.pth.tar"),
                                       "--out", str(tmp_path / "eval")], cwd=tmp_path)
    assert "Action mean" in proc.stdout and "37.32" in proc.stdout
    ev = json.loads((tmp_path / "eval" / "results.json").read_text())
    assert ev["epoch"] == 1 and ev["MPJPE"] == pytest.approx(res["MPJPE"], abs=1e-6)
    assert ev["selected_as_best"] == (res["best_epoch"] == 1)


def test_too_few_layers_is_one_line_exit_2(data, tmp_path):  # noqa: F811
    args = base_args(data, tmp_path / "runs") + ["--set", "MODEL.mesh_levels=[8, 7, 6, 5]"]
    proc = cli("hgn_pyg.train", args, cwd=tmp_path, check=False)
    assert proc.returncode == 2
    assert "MODEL.num_layers" in proc.stderr and "at least 5" in proc.stderr
    assert "Traceback" not in proc.stderr and not (tmp_path / "runs").exists()
