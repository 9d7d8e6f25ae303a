"""MPJPE / PA-MPJPE against independent NumPy/SciPy computations."""
import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation

from hgn_pyg.engine.metrics import ACTIONS, MetricAccumulator, format_table, mpjpe, pa_mpjpe, procrustes_align


def reference_pa(pred, gt):
    """Independent PA-MPJPE: SciPy's Kabsch rotation (proper) + closed-form scale, one sample at a time."""
    out = []
    for x, y in zip(pred, gt):
        x0, y0 = x - x.mean(0), y - y.mean(0)
        rot, _ = Rotation.align_vectors(y0, x0)  # rotation taking x0 onto y0 (det +1)
        rx = rot.apply(x0)
        s = (rx * y0).sum() / (rx * rx).sum()
        out.append(np.linalg.norm(s * rx - y0, axis=1).mean() * 1000)
    return np.array(out)


def test_mpjpe_known_value():
    gt = torch.zeros(1, 17, 3)
    pred = torch.zeros(1, 17, 3)
    pred[0, 1:, 0] = 0.01  # every non-root joint 10 mm off after root alignment
    assert torch.allclose(mpjpe(pred, gt), torch.tensor([10.0 * 16 / 17]))
    # a global translation is removed by root alignment
    assert torch.allclose(mpjpe(gt + 0.3, gt), torch.zeros(1), atol=1e-5)


def test_mpjpe_matches_numpy():
    rng = np.random.default_rng(0)
    p, g = rng.normal(size=(5, 17, 3)), rng.normal(size=(5, 17, 3))
    ref = np.array([np.mean(np.linalg.norm((a - a[0]) - (b - b[0]), axis=1)) * 1000 for a, b in zip(p, g)])
    np.testing.assert_allclose(mpjpe(torch.tensor(p), torch.tensor(g)).numpy(), ref, rtol=1e-12)
    e = mpjpe(p, g)  # NumPy in, NumPy float64 out
    assert isinstance(e, np.ndarray) and e.dtype == np.float64
    np.testing.assert_allclose(e, ref, rtol=1e-12)


def test_pa_mpjpe_against_scipy():
    rng = np.random.default_rng(1)
    gt = rng.normal(size=(32, 17, 3)) * 0.3
    pred = gt + rng.normal(size=gt.shape) * 0.05
    # random similarity transform of the prediction: PA must undo it
    R = Rotation.random(32, random_state=2).as_matrix()
    pred = 1.7 * np.einsum("bij,bkj->bki", R, pred) + rng.normal(size=(32, 1, 3))
    ref = reference_pa(pred, gt)
    t = pa_mpjpe(torch.tensor(pred), torch.tensor(gt)).numpy()
    np.testing.assert_allclose(t, ref, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(pa_mpjpe(pred, gt), ref, rtol=1e-6, atol=1e-6)
    # float32 input agrees within tolerance
    t32 = pa_mpjpe(torch.tensor(pred, dtype=torch.float32), torch.tensor(gt, dtype=torch.float32)).numpy()
    np.testing.assert_allclose(t32, ref, rtol=1e-4, atol=1e-3)


def test_pa_exact_similarity_is_zero_and_reflection_not_used():
    rng = np.random.default_rng(3)
    gt = rng.normal(size=(4, 17, 3))
    R = Rotation.random(4, random_state=4).as_matrix()
    pred = 0.5 * np.einsum("bij,bkj->bki", R, gt) + 2.0
    np.testing.assert_allclose(pa_mpjpe(pred, gt), 0, atol=1e-8)
    # a mirrored pose cannot be aligned by a proper rotation: error must stay > 0 and equal the reference
    mirrored = gt * np.array([-1.0, 1.0, 1.0])
    e = pa_mpjpe(torch.tensor(mirrored), torch.tensor(gt)).numpy()
    assert (e > 1.0).all()
    np.testing.assert_allclose(e, reference_pa(mirrored, gt), rtol=1e-6)
    aligned = procrustes_align(torch.tensor(mirrored), torch.tensor(gt))
    assert aligned.shape == (4, 17, 3)


def test_pa_never_worse_than_mpjpe_and_degenerate():
    rng = np.random.default_rng(5)
    gt = torch.tensor(rng.normal(size=(16, 17, 3)))
    pred = torch.tensor(rng.normal(size=(16, 17, 3)))
    assert (pa_mpjpe(pred, gt) <= mpjpe(pred, gt, root=None) + 1e-9).all()
    flat = torch.zeros(2, 17, 3)
    assert torch.isfinite(pa_mpjpe(flat, gt[:2])).all()


def test_shape_errors():
    with pytest.raises(ValueError, match=r"\[B, J, 3\]"):
        mpjpe(torch.zeros(2, 17, 3), torch.zeros(2, 16, 3))


def test_accumulator_per_action_and_table():
    rng = np.random.default_rng(6)
    gt = rng.normal(size=(30, 17, 3))
    pred = gt + rng.normal(size=gt.shape) * 0.02
    actions = np.arange(30) % 3
    acc = MetricAccumulator()
    acc.update(torch.tensor(pred[:10]), torch.tensor(gt[:10]), torch.tensor(actions[:10]))
    acc.update(pred[10:], gt[10:], actions[10:])
    s = acc.summary()
    e = mpjpe(pred, gt)
    assert s["num_samples"] == 30 and len(acc) == 30
    assert s["MPJPE"] == pytest.approx(e.mean())
    assert set(s["per_action"]) == set(ACTIONS[:3])
    assert s["per_action"]["Eating"]["MPJPE"] == pytest.approx(e[actions == 2].mean())
    assert s["per_action"]["Discussion"]["PA-MPJPE"] == pytest.approx(pa_mpjpe(pred, gt)[actions == 1].mean())
    table = format_table(s, baseline=s)
    assert "Directions" in table and "Average" in table and "mean MPJPE" in table
