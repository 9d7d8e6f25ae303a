"""classic_argsort must reproduce numpy<=1.23's default argsort (introsort) tie order exactly.

The reference is numpy itself in a subprocess with its SIMD sorts disabled
(``NPY_DISABLE_CPU_FEATURES``), which falls back to the classic introsort; plus hand-checked
expectations that hold without any numpy reference.
"""
import functools
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from hgn_pyg.errors import GraphError
from hgn_pyg.graphs import classic_argsort
from hgn_pyg.graphs.coarsening import _introsort_indices

# np.argsort(np.zeros(17)) with the classic introsort, worked out by hand:
# n=17 -> pr-pl=16 > 15 -> one partition. pm=8, median-of-3 swaps nothing (all equal), the pivot
# index 8 is parked at slot 15; the scans stop on every element (equal keys), so slots (1,14),
# (2,13), ..., (7,8) are swapped pairwise; then pi=8 and slot 8 <-> slot 15 (pivot back).
# Both halves (8 elements each) are then insertion-sorted, which keeps equal keys in place.
ZEROS17 = [0, 14, 13, 12, 11, 10, 9, 15, 8, 6, 5, 4, 3, 2, 1, 7, 16]


def test_hand_checked_small_cases():
    # <= 16 elements: pure insertion sort = stable
    a = np.array([3.0, 1.0, 3.0, 1.0, 2.0])
    assert classic_argsort(a).tolist() == [1, 3, 4, 0, 2]
    assert classic_argsort(np.zeros(16)).tolist() == list(range(16))
    assert classic_argsort(np.zeros(17)).tolist() == ZEROS17
    assert classic_argsort([]).tolist() == []
    assert classic_argsort([5.0]).tolist() == [0]
    out = classic_argsort(np.arange(10.0)[::-1])
    assert out.dtype == np.int64 and out.tolist() == list(range(9, -1, -1))


def test_is_a_sorting_permutation():
    rng = np.random.default_rng(0)
    for n in [0, 1, 2, 15, 16, 17, 18, 100, 1000]:
        a = rng.integers(0, 4, size=n).astype(np.float64)
        r = classic_argsort(a)
        assert sorted(r.tolist()) == list(range(n))
        assert np.all(np.diff(a[r]) >= 0)


def test_int_and_float_inputs_agree():
    rng = np.random.default_rng(1)
    a = rng.integers(0, 6, size=500)
    assert np.array_equal(classic_argsort(a), classic_argsort(a.astype(np.float64)))


def test_nan_sorts_last_and_bad_input():
    a = np.array([np.nan, 1.0, np.nan, 0.0] * 10)
    r = classic_argsort(a)
    assert np.all(np.isnan(a[r[-20:]])) and not np.any(np.isnan(a[r[:20]]))
    with pytest.raises(GraphError):
        classic_argsort(np.zeros((2, 2)))


def _antiqsort(n):
    """McIlroy's adversary ("A killer adversary for quicksort"), played against our introsort.

    Keys start as 'gas' (larger than every solid key); a comparison of two gas keys freezes one
    (the current pivot candidate) to the next solid value. The resulting input drives the
    median-of-3 quicksort to its depth budget and so into the heapsort fallback.
    """
    gas = n
    val = [gas] * n
    st = {"nsolid": 0, "cand": 0}

    @functools.total_ordering
    class Key:
        __slots__ = ("i",)

        def __init__(self, i):
            self.i = i

        def __eq__(self, other):
            return val[self.i] == val[other.i]

        def __lt__(self, other):
            x, y = self.i, other.i
            if val[x] == gas and val[y] == gas:
                z = x if x == st["cand"] else y
                val[z] = st["nsolid"]
                st["nsolid"] += 1
            if val[x] == gas:
                st["cand"] = x
            elif val[y] == gas:
                st["cand"] = y
            return val[x] < val[y]

    _introsort_indices([Key(i) for i in range(n)])
    return np.array(val, dtype=np.float64)


def _adversarial_with_ties(n, m):
    # keys frozen late (>= n // 2, i.e. while heapsorting) are folded onto m tied values; the
    # quicksort phase only compared early-frozen keys with others, so it is unchanged
    a = _antiqsort(n)
    late = a >= n // 2
    a[late] = n // 2 + (a[late] - n // 2) % m
    return a


def test_adversary_reaches_heapsort():
    for n in (100, 1000, 3000):
        for m in (1, 3):
            stats = {}
            classic_argsort(_adversarial_with_ties(n, m), _stats=stats)
            assert stats["heapsort"] >= 1
    stats = {}
    classic_argsort(np.random.default_rng(0).integers(0, 5, 5000).astype(float), _stats=stats)
    assert stats["heapsort"] == 0


def _test_arrays():
    rng = np.random.default_rng(12345)
    arrays = []
    for n in list(range(1, 70)) + [100, 127, 128, 129, 255, 256, 257, 1000, 2047, 2048, 4999, 5000]:
        for k in (1, 2, 3, 5, 12):
            arrays.append(rng.integers(0, k, size=n).astype(np.float64))
    for n in (16, 17, 18, 33, 34, 500, 5000):
        base = np.arange(n, dtype=np.float64) // 3
        arrays += [base, base[::-1].copy(), np.concatenate([base, base[::-1]])]  # sorted/reverse/organ pipe
        arrays.append(np.tile([2.0, 1.0, 0.0, 1.0], n // 4 + 1)[:n])
    for n in (100, 1000, 3000, 5000):
        for m in (1, 2, 5):
            arrays.append(_adversarial_with_ties(n, m))
    # degree-like data (mesh vertex valences) and special floats
    arrays.append(rng.choice([3.0, 4.0, 5.0, 6.0, 6.0, 6.0, 7.0], size=4000))
    arrays.append(np.array([0.0, -0.0] * 20 + [np.nan, 1.0, -1.0] * 10))
    arrays.append(np.where(rng.random(300) < 0.2, np.nan, rng.integers(0, 3, 300).astype(float)))
    return arrays


_CHILD = r"""
import json, sys
import numpy as np
arrs = np.load(sys.argv[1])
check = np.argsort(np.zeros(17)).tolist()
out = {k: np.argsort(arrs[k]) for k in arrs.files}
np.savez(sys.argv[2], **out)
print(json.dumps({"zeros17": check, "numpy": np.__version__}))
"""


def _classic_numpy_env():
    env = dict(os.environ)
    major, minor = (int(x) for x in np.__version__.split(".")[:2])
    if (major, minor) >= (2, 4):
        env["NPY_DISABLE_CPU_FEATURES"] = "X86_V3 X86_V4"
    elif (major, minor) >= (1, 25):
        env["NPY_DISABLE_CPU_FEATURES"] = "AVX512_SKX AVX512_ICL AVX512_SPR AVX2"
    return env


def test_matches_classic_numpy_in_subprocess(tmp_path):
    arrays = _test_arrays()
    src = tmp_path / "in.npz"
    dst = tmp_path / "out.npz"
    np.savez(src, **{f"a{i}": a for i, a in enumerate(arrays)})
    proc = subprocess.run(
        [sys.executable, "-c", _CHILD, str(src), str(dst)],
        env=_classic_numpy_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    if proc.returncode != 0:
        pytest.skip(f"numpy with SIMD sorts disabled is unavailable here: {proc.stderr.strip()[-300:]}")
    info = json.loads(proc.stdout.strip().splitlines()[-1])
    if info["zeros17"] != ZEROS17:
        pytest.skip(f"numpy {info['numpy']} does not fall back to the classic introsort on this CPU")
    ref = np.load(dst)
    bad = [i for i, a in enumerate(arrays) if not np.array_equal(classic_argsort(a), ref[f"a{i}"])]
    sizes = [len(arrays[i]) for i in bad[:10]]
    assert not bad, f"{len(bad)} of {len(arrays)} arrays differ, e.g. sizes {sizes}"


def test_classic_argsort_wide_unsigned_integers_keep_their_order():
    # uint64 values beyond int64 must not wrap around when turned into sort keys
    a = np.array([2**63 + 5, 1, 2**63 + 1, 1], dtype=np.uint64)
    order = classic_argsort(a)
    assert a[order].tolist() == sorted(a.tolist())
