"""hgn_pyg.data.camera.normalize_pixels: the one input normalisation (docs/published_model.md §4),
checked against the formula written out per coordinate (exact in float64)."""
import numpy as np
import torch

from hgn_pyg.data.camera import normalize_pixels


def _by_hand(uv, w, h):
    out = np.empty_like(uv, dtype=np.float64)
    out[..., 0] = uv[..., 0] / w * 2 - 1
    out[..., 1] = uv[..., 1] / w * 2 - h / w
    return out


def test_scalar_and_per_sample_sizes_numpy_and_torch():
    rng = np.random.default_rng(0)
    uv = rng.uniform(0, 1000, (5, 17, 2))
    w, h = rng.uniform(500, 1500, 5), rng.uniform(500, 1500, 5)
    per_sample = normalize_pixels(uv, w, h)
    assert per_sample.dtype == np.float64 and per_sample.shape == uv.shape
    for i in range(5):
        expect = _by_hand(uv[i], w[i], h[i])
        np.testing.assert_array_equal(per_sample[i], expect)
        np.testing.assert_array_equal(normalize_pixels(uv[i], float(w[i]), float(h[i])), expect)
    t = normalize_pixels(torch.from_numpy(uv), torch.from_numpy(w), torch.from_numpy(h))
    assert isinstance(t, torch.Tensor) and t.dtype == torch.float64
    np.testing.assert_allclose(t.numpy(), per_sample, rtol=0, atol=1e-12)
    # the image centre maps to (0, 0) and the left edge to u = -1
    centre = normalize_pixels(np.array([[[500.0, 300.0], [0.0, 300.0]]]), 1000, 600)
    np.testing.assert_allclose(centre[0], [[0.0, 0.0], [-1.0, 0.0]], atol=1e-15)
