"""The published recipe's reporting and data rules (docs/published_model.md §4, §9):
the three test means, the best-epoch rule, the empty-box rule. References are written out here
with NumPy / plain Python, independent of the code under test (tolerance 1e-9 mm)."""
from types import SimpleNamespace

import math

import numpy as np
import pytest
import torch

from hgn_pyg.data.human36m import bbox_is_empty
from hgn_pyg.engine.metrics import ACTIONS, MetricAccumulator, format_table
from hgn_pyg.engine.trainer import BEST_RULE, Trainer


def test_sample_action_and_batch_means():
    rng = np.random.default_rng(0)
    acc = MetricAccumulator()
    preds, gts, acts, batch_errs = [], [], [], []
    for size in (5, 7, 3):  # uneven batches: the three means differ
        gt = rng.normal(size=(size, 17, 3))
        pred = gt + rng.normal(scale=0.05, size=(size, 17, 3))
        act = rng.integers(0, 4, size=size)  # 4 of the 15 actions present
        acc.update(torch.tensor(pred), torch.tensor(gt), torch.tensor(act))
        preds.append(pred), gts.append(gt), acts.append(act)
        p0, g0 = pred - pred[:, :1], gt - gt[:, :1]
        batch_errs.append(np.linalg.norm(p0 - g0, axis=-1).mean(-1) * 1000)
    e = np.concatenate(batch_errs)
    a = np.concatenate(acts)
    s = acc.summary()
    assert s["MPJPE"] == pytest.approx(e.mean(), abs=1e-9)
    per = {k: e[a == k].mean() for k in np.unique(a)}
    assert s["MPJPE_action_mean"] == pytest.approx(np.mean(list(per.values())), abs=1e-9)
    assert s["MPJPE_batch_mean"] == pytest.approx(np.mean([b.mean() for b in batch_errs]), abs=1e-9)
    assert s["num_actions"] == len(per) and set(s["per_action"]) == {ACTIONS[k] for k in per}
    pa_means = [s["per_action"][ACTIONS[k]]["PA-MPJPE"] for k in per]
    assert s["PA-MPJPE_action_mean"] == pytest.approx(np.mean(pa_means), abs=1e-9)
    assert len({round(s[k], 6) for k in ("MPJPE", "MPJPE_action_mean", "MPJPE_batch_mean")}) == 3
    table = format_table(s, baseline=s)
    assert "Average" in table and "Action mean" in table and "37.32" in table


def pick_best(errors):
    """The published loop, literally: is_best only from epoch 1 on, against every earlier error."""
    history, best = [], None
    for epoch, err in enumerate(errors):
        if epoch > 0 and err < min(history):
            best = epoch
        history.append(err)
    return best


@pytest.mark.parametrize("errors", [[5.0, 6.0, 4.0, 4.0, 3.0], [3.0, 4.0, 5.0], [9.0], [2.0, 1.0],
                                    [5.0, 5.0, 5.0], [7.0, 3.0, 3.0, 2.5, 2.6]])
def test_best_epoch_rule_is_the_published_one(errors):
    state = SimpleNamespace(min_metric=math.inf, best_metric=math.inf, best_epoch=-1, best_eval=None)
    for epoch, err in enumerate(errors):
        Trainer._update_best(state, epoch, {"MPJPE_batch_mean": err, "MPJPE": err + 0.5})
    want = pick_best(errors)
    assert state.best_epoch == (-1 if want is None else want)
    assert (state.best_eval is None) == (want is None)
    if want is not None:
        assert state.best_metric == errors[want] and state.best_eval["MPJPE"] == errors[want] + 0.5
    assert "epoch 0" in BEST_RULE and "MPJPE_batch_mean" in BEST_RULE


@pytest.mark.parametrize("box,empty", [
    ([10, 10, 100, 200], False),
    ([-50, -50, 100, 200], False),      # partly outside the image: kept (no clipping)
    ([5000, 5000, 100, 200], False),    # wholly outside the image: kept (no clipping)
    ([10, 10, 0.5, 200], True),         # narrower than one pixel: dropped
    ([10, 10, 200, 0.99], True),
    ([10, 10, 1, 1], False),
    ([10, 10, 0, 0], True),
    ([10, 10, -3, -4], True),           # w·h > 0 but negative sizes
])
def test_empty_box_rule(box, empty):
    assert bbox_is_empty(np.asarray(box, dtype=float), 1000.0, 1002.0) is empty
