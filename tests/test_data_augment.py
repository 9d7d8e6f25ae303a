"""Detector-like corruption, keypoint dropout and the training input pipeline (hgn_pyg.data.augment).

Statistical checks use 20,000 corrupted copies of one pose; their tolerances (a few per cent of
the expected value) are > 5 standard errors wide, and the draws are seeded.
"""
import numpy as np
import pytest
import torch

from hgn_pyg.config import Config, apply_overrides
from hgn_pyg.data.augment import (
    COCO_SPREADS,
    H36M_SPREADS,
    DetectorNoise,
    KeypointAugmentation,
    box_size,
    drop_keypoints,
    model_input,
)
from hgn_pyg.graphs.skeleton import COCO17, H36M

N = 20_000


def pose(batch=N, seed=0):
    g = torch.Generator().manual_seed(seed)
    one = torch.rand(17, 2, generator=g, dtype=torch.float64) * torch.tensor([0.4, 0.9], dtype=torch.float64)
    return one.expand(batch, 17, 2).clone()


def gen(seed=1):
    return torch.Generator().manual_seed(seed)


def numpy_box(x):
    x = np.asarray(x)
    return (x.max(axis=1) - x.min(axis=1)).max(axis=1)


def test_box_size_matches_numpy_and_ignores_nan():
    x = torch.randn(7, 17, 2, dtype=torch.float64, generator=gen(0))
    np.testing.assert_allclose(box_size(x).numpy(), numpy_box(x.numpy()), rtol=0, atol=1e-12)
    y = x.clone()
    y[0, 3] = float("nan")
    ref = numpy_box(np.delete(x[0].numpy(), 3, axis=0)[None])[0]
    assert box_size(y)[0].item() == pytest.approx(ref, abs=1e-12)
    y[1] = float("nan")
    assert box_size(y)[1].item() == 0.0


def test_gaussian_noise_has_the_joint_specific_spreads():
    x = pose()
    det = DetectorNoise(noise=0.25, outlier_prob=0.0, swap_prob=0.0, missing_prob=0.0)
    out, score = det(x, gen())
    d = (out - x).numpy()
    expected = 0.25 * np.asarray(H36M_SPREADS) * numpy_box(x[:1].numpy())[0]
    np.testing.assert_allclose(d.std(axis=0).mean(-1), expected, rtol=0.03)
    np.testing.assert_allclose(d.mean(axis=0), 0.0, atol=0.05 * expected.max())
    # scores in (0, 1], lower for larger errors
    s = score.numpy()
    assert s.min() > 0 and s.max() <= 1.0
    err = np.linalg.norm(d, axis=-1) / expected
    assert np.corrcoef(err.ravel(), s.ravel())[0, 1] < -0.5


def test_noise_scales_with_the_box():
    x = pose(4000)
    det = DetectorNoise(noise=0.3, outlier_prob=0.0, swap_prob=0.0, missing_prob=0.0)
    small = (det(x, gen(5))[0] - x).std().item()
    big = (det(3 * x, gen(5))[0] - 3 * x).std().item()
    assert big == pytest.approx(3 * small, rel=1e-9)


def test_outliers_are_gross_and_low_scored():
    x = pose()
    det = DetectorNoise(noise=0.0, outlier_prob=1.0, outlier_scale=0.3, swap_prob=0.0, missing_prob=0.0)
    out, score = det(x, gen())
    d = (out - x).numpy()
    assert d.std() == pytest.approx(0.3 * numpy_box(x[:1].numpy())[0], rel=0.03)
    assert score.max().item() < 0.3
    frac = (DetectorNoise(noise=0.1, outlier_prob=0.05, swap_prob=0.0, missing_prob=0.0)(x, gen())[1]
            < 0.3).double().mean().item()
    assert 0.04 < frac < 0.07  # the outliers (plus the rare large ordinary errors)


def test_swaps_exchange_left_and_right_exactly():
    x = pose(50)
    out, score = DetectorNoise(noise=0.0, outlier_prob=0.0, swap_prob=1.0, missing_prob=0.0)(x, gen())
    perm = list(range(17))
    for a, b in H36M.flip_pairs:
        perm[a], perm[b] = b, a
    assert torch.equal(out, x[:, perm])
    assert torch.isfinite(score).all() and (score > 0).all()
    # about swap_prob of the pairs swap, each pair independently
    out, _ = DetectorNoise(noise=0.0, outlier_prob=0.0, swap_prob=0.2, missing_prob=0.0)(pose(), gen())
    left = [a for a, _ in H36M.flip_pairs]
    right = [b for _, b in H36M.flip_pairs]
    swapped = (out[:, left] == pose()[:, right]).all(-1).double().mean(0)
    np.testing.assert_allclose(swapped.numpy(), 0.2, atol=0.015)


def test_missing_joints_are_nan_with_score_zero():
    out, score = DetectorNoise(noise=0.1, missing_prob=0.3)(pose(), gen())
    miss = torch.isnan(out).any(-1)
    assert torch.equal(miss, torch.isnan(out).all(-1))
    assert (score[miss] == 0).all() and (score[~miss] > 0).all()
    assert miss.double().mean().item() == pytest.approx(0.3, abs=0.01)


def test_seeded_and_deterministic():
    x = pose(64)
    det = DetectorNoise()
    a = det(x, gen(7))
    b = det(x, gen(7))
    c = det(x, gen(8))
    assert torch.equal(torch.nan_to_num(a[0], 9.0), torch.nan_to_num(b[0], 9.0)) and torch.equal(a[1], b[1])
    assert not torch.equal(torch.nan_to_num(a[0], 9.0), torch.nan_to_num(c[0], 9.0))


def test_detector_noise_checks_arguments():
    with pytest.raises(ValueError, match="outlier_prob"):
        DetectorNoise(outlier_prob=1.5)
    with pytest.raises(ValueError, match="flip_pairs"):
        DetectorNoise(flip_pairs=((0, 17),))
    with pytest.raises(ValueError, match=r"\[B, K, 2\]"):
        DetectorNoise()(torch.zeros(17, 2))
    with pytest.raises(ValueError, match="spreads"):
        DetectorNoise()(torch.zeros(2, 16, 2))


@pytest.mark.parametrize("k", [1, 2, 3])
def test_drop_exactly_k_distinct_joints(k):
    x = pose(3000)
    out, score = drop_keypoints(x, torch.ones(3000, 17, dtype=x.dtype), k, 1.0, gen(k), exact=True)
    miss = torch.isnan(out).all(-1)
    assert (miss.sum(1) == k).all() and torch.equal(score == 0, miss)
    assert torch.equal(out[~miss], x[~miss])
    # every joint is equally likely to be dropped
    np.testing.assert_allclose(miss.double().mean(0).numpy(), k / 17, atol=0.02)


def test_drop_random_count_and_frame_probability():
    x = pose(6000)
    out, _ = drop_keypoints(x, torch.ones(6000, 17, dtype=x.dtype), 3, 0.5, gen(3))
    n = torch.isnan(out).all(-1).sum(1)
    assert n.max().item() == 3
    assert (n == 0).double().mean().item() == pytest.approx(0.5, abs=0.03)
    counts = torch.bincount(n[n > 0], minlength=4)[1:].double() / (n > 0).sum()
    np.testing.assert_allclose(counts.numpy(), 1 / 3, atol=0.03)
    with pytest.raises(ValueError, match="max_joints"):
        drop_keypoints(x[:2], torch.ones(2, 17), 18)


def parents_fill_reference(x, missing):
    """Independent reference of the fill policy for frames whose root is present: a missing joint
    takes its nearest present ancestor."""
    out = x.clone()
    for b in range(x.shape[0]):
        for j in range(17):
            a = j
            while missing[b, a]:
                a = H36M.parents[a]
            out[b, j] = x[b, a]
    return out


def test_pipeline_dropout_fills_like_inference():
    x = pose(500)
    aug = KeypointAugmentation("h36m", dropout_prob=1.0, max_dropped=3)
    g1, g2 = gen(11), gen(11)
    filled, score = aug(x, None, g1)
    raw, _ = drop_keypoints(x, torch.ones(500, 17, dtype=x.dtype), 3, 1.0, g2)
    missing = torch.isnan(raw).all(-1)
    assert torch.equal(score == 0, missing) and missing.any(1).all()
    assert torch.isfinite(filled).all()
    keep = ~missing[:, 0]  # the root's own fill (mean of the present joints) is checked below
    torch.testing.assert_close(filled[keep], parents_fill_reference(x[keep], missing[keep]), rtol=0, atol=0)
    rootless = missing[:, 0]
    if rootless.any():
        b = int(torch.nonzero(rootless)[0])
        torch.testing.assert_close(filled[b, 0], x[b][~missing[b]].mean(0))


def test_pipeline_inactive_draws_nothing_and_noise_std_is_unchanged():
    x = pose(8).float()
    g = gen(4)
    state = g.get_state()
    out, score = KeypointAugmentation()(x, None, g)
    assert out is x and torch.equal(score, torch.ones(8, 17)) and torch.equal(g.get_state(), state)
    # noise_std alone draws exactly what the trainer drew before the pipeline existed
    out, _ = KeypointAugmentation(noise_std=0.01)(x, None, gen(4))
    torch.testing.assert_close(out, x + 0.01 * torch.randn(x.shape, generator=gen(4)), rtol=0, atol=0)


def test_pipeline_from_config_uses_the_joint_set():
    cfg = apply_overrides(Config(), ["AUG.detector_noise=0.25", "AUG.swap_prob=0.5", "AUG.keypoint_dropout=0.2"])
    aug = KeypointAugmentation.from_config(cfg.AUG, "coco17")
    assert aug.detector.spreads == COCO_SPREADS and tuple(aug.detector.flip_pairs) == COCO17.flip_pairs
    assert aug.dropout_prob == 0.2 and aug.max_dropped == 3
    assert KeypointAugmentation.from_config(Config().AUG).active is False
    x = pose(100).float()
    out, score = aug(x, None, gen())
    assert torch.isfinite(out).all() and out.shape == x.shape and score.shape == (100, 17)


def test_model_input_channels():
    x = torch.randn(4, 17, 2)
    s = torch.rand(4, 17)
    assert model_input(x, s, 2) is x
    y = model_input(x, s, 3)
    assert torch.equal(y[..., :2], x) and torch.equal(y[..., 2], s)
    assert torch.equal(model_input(x, None, 3)[..., 2], torch.ones(4, 17))
    with pytest.raises(ValueError, match="in_channels"):
        model_input(x, s, 4)
