"""Helpers shared by the benchmark scripts (timing, peak memory, agreement checks, tables).

Nothing here changes global state on import; the scripts call :func:`set_threads` themselves.

Measurement rules used by every script:

* **Time**: wall clock (``time.perf_counter``) around one call, with
  ``torch.cuda.synchronize()`` before and after on CUDA; a few warm-up calls first; the
  reported figure is the median over the timed calls (at least ``min_repeats``, more while the
  time budget lasts).
* **Peak memory**: the largest amount of tensor memory allocated *on top of what was live
  before the call*, during one call. CUDA: ``torch.cuda.max_memory_allocated`` after
  ``reset_peak_memory_stats``. CPU: the PyTorch profiler records every allocation and free
  of the CPU allocator (``profile_memory=True``); the allocations are replayed in time order and
  the running sum's maximum is the peak (``tracemalloc`` and RSS do not see torch's allocator
  reliably). Allocator caching and fragmentation are not included.
"""
from __future__ import annotations

import contextlib
import csv
import math
import os
import platform
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, Iterable, Iterator, List, Mapping, Optional, Sequence, Tuple

import torch
from torch import Tensor

CSV_COLUMNS = ("benchmark", "mode", "num_nodes", "batch", "pass", "median_ms",
               "speedup_vs_dense", "peak_mem_mb")


class AgreementError(AssertionError):
    """Two implementations that must compute the same thing do not (raised before timing)."""


# ----------------------------------------------------------------------------- environment
def set_threads(threads: Optional[int]) -> int:
    """Set intra-op threads for this benchmark process (``None``: leave torch's default)."""
    if threads is not None:
        if threads < 1:
            raise ValueError(f"--threads must be >= 1, got {threads}")
        torch.set_num_threads(int(threads))
    return torch.get_num_threads()


def resolve_device(name: str) -> torch.device:
    """``"cpu"`` or ``"cuda"``; a clear error when CUDA is asked for but absent."""
    if name not in ("cpu", "cuda"):
        raise ValueError(f"--device must be cpu or cuda, got {name!r}")
    if name == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("--device cuda: torch.cuda.is_available() is False on this machine")
    return torch.device(name)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def load_average() -> str:
    try:
        return " ".join(f"{v:.2f}" for v in os.getloadavg())
    except OSError:  # pragma: no cover - not on Linux
        return "n/a"


def machine_info(device: torch.device) -> Dict[str, str]:
    """What the numbers were measured on (printed above every table)."""
    cpu = platform.processor() or "unknown CPU"
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:  # pragma: no cover
        pass
    info = {
        "cpu": cpu,
        "cores (os.cpu_count)": str(os.cpu_count()),
        "torch threads": str(torch.get_num_threads()),
        "torch": torch.__version__,
        "device": str(device),
        "load average (1/5/15 min)": load_average(),
    }
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
    try:
        import torch_geometric
        info["torch_geometric"] = torch_geometric.__version__
    except ImportError:  # pragma: no cover
        pass
    info["torch_sparse"] = _version_of("torch_sparse")
    info["torch_scatter"] = _version_of("torch_scatter")
    return info


def _version_of(module: str) -> str:
    try:
        mod = __import__(module)
    except ImportError:
        return "not installed"
    return getattr(mod, "__version__", "installed")


def has_torch_sparse() -> bool:
    try:
        import torch_sparse  # noqa: F401
    except ImportError:
        return False
    return True


# ----------------------------------------------------------------------------- timing
@dataclass
class Timing:
    median_ms: float
    repeats: int
    samples_ms: List[float]


def time_call(fn: Callable[[], object], device: torch.device, warmup: int = 2,
              min_repeats: int = 5, max_repeats: int = 200, budget_s: float = 1.0,
              first_ms: Optional[float] = None, slow_ms: float = math.inf) -> Timing:
    """Median wall time of ``fn()`` in milliseconds.

    ``warmup`` untimed calls, then timed calls until ``min_repeats`` are done and either
    ``budget_s`` seconds have been spent or ``max_repeats`` calls were made. If the caller already
    ran ``fn`` once and it took ``first_ms >= slow_ms`` (a call so long that warm-up effects are
    negligible), that single call is the measurement and ``fn`` is not run again.
    """
    if first_ms is not None and first_ms >= slow_ms:
        return Timing(first_ms, 1, [first_ms])
    for _ in range(warmup):
        fn()
    sync(device)
    samples: List[float] = []
    start = time.perf_counter()
    while True:
        sync(device)
        t0 = time.perf_counter()
        fn()
        sync(device)
        samples.append((time.perf_counter() - t0) * 1e3)
        n = len(samples)
        if n >= max_repeats or (n >= min_repeats and time.perf_counter() - start >= budget_s):
            break
    return Timing(statistics.median(samples), len(samples), samples)


def time_interleaved(fns: Mapping[str, Callable[[], object]], device: torch.device,
                     warmup: int = 2, min_rounds: int = 3, max_rounds: int = 1000,
                     budget_s: float = 1.0,
                     calls_per_round: Optional[Mapping[str, int]] = None) -> Dict[str, Timing]:
    """Median per-call times of several functions measured in alternating rounds.

    On a shared machine the background load drifts; alternating ``A, B, A, B, ...`` gives all
    functions the same conditions, so their *ratios* are trustworthy even when absolute times
    move. In each round function ``k`` is called ``calls_per_round[k]`` times (default 1), every
    call timed on its own; rounds continue until ``min_rounds`` are done and ``budget_s`` is
    spent, or ``max_rounds`` is reached.
    """
    calls = {k: max(1, int((calls_per_round or {}).get(k, 1))) for k in fns}
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    sync(device)
    samples: Dict[str, List[float]] = {k: [] for k in fns}
    start = time.perf_counter()
    rounds = 0
    while True:
        for name, fn in fns.items():
            for _ in range(calls[name]):
                sync(device)
                t0 = time.perf_counter()
                fn()
                sync(device)
                samples[name].append((time.perf_counter() - t0) * 1e3)
        rounds += 1
        if rounds >= max_rounds or (rounds >= min_rounds
                                    and time.perf_counter() - start >= budget_s):
            break
    return {k: Timing(statistics.median(v), len(v), v) for k, v in samples.items()}


# ----------------------------------------------------------------------------- memory
def run_with_peak_memory(fn: Callable[[], object], device: torch.device
                         ) -> Tuple[object, float, float]:
    """Run ``fn()`` once; return ``(result, wall_ms, peak_mb)``.

    ``peak_mb`` is the peak of tensor memory allocated during the call beyond what was live
    before it (see the module docstring); ``nan`` when it cannot be measured.
    """
    if device.type == "cuda":
        sync(device)
        torch.cuda.reset_peak_memory_stats(device)
        base = torch.cuda.memory_allocated(device)
        t0 = time.perf_counter()
        out = fn()
        sync(device)
        ms = (time.perf_counter() - t0) * 1e3
        peak = (torch.cuda.max_memory_allocated(device) - base) / 2**20
        return out, ms, peak
    from torch.profiler import ProfilerActivity, profile

    prof = profile(activities=[ProfilerActivity.CPU], profile_memory=True)
    with _quiet_stderr():  # the profiler's C++ side prints a line on every start / stop
        prof.start()
    try:
        t0 = time.perf_counter()
        out = fn()
        ms = (time.perf_counter() - t0) * 1e3
    finally:
        with _quiet_stderr():
            prof.stop()
    return out, ms, _cpu_peak_from_profile(prof)


@contextlib.contextmanager
def _quiet_stderr() -> Iterator[None]:
    """Silence file descriptor 2 (C++ writes included) for the duration of the block."""
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError):  # pragma: no cover - no real fd 2 (embedded interpreters)
        yield
        return
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def _cpu_peak_from_profile(prof) -> float:
    """Replay the profiler's allocation records in time order; max of the running sum (MiB)."""
    try:
        roots = prof.profiler.kineto_results.experimental_event_tree()
    except Exception:  # pragma: no cover - profiler internals differ in this torch version
        return math.nan
    allocs: List[Tuple[int, int]] = []
    stack = list(roots)
    while stack:
        node = stack.pop()
        stack.extend(node.children)
        fields = node.extra_fields
        if type(fields).__name__ == "_ExtraFields_Allocation":
            if getattr(fields, "device", None) is not None and fields.device.type != "cpu":
                continue
            allocs.append((node.start_time_ns, int(fields.alloc_size)))
    if not allocs:
        return math.nan if not roots else 0.0
    allocs.sort(key=lambda t: t[0])
    cur = peak = 0
    for _, size in allocs:
        cur += size
        peak = max(peak, cur)
    return peak / 2**20


# ----------------------------------------------------------------------------- agreement
def max_relative_error(value: Tensor, reference: Tensor) -> float:
    """``max|value - reference| / max|reference|`` (0 when both are 0)."""
    value = value.detach().cpu()
    reference = reference.detach().cpu()
    if not (value.dtype == reference.dtype == torch.float32):  # float32 diffs are exact enough
        value, reference = value.double(), reference.double()
    if value.shape != reference.shape:
        raise AgreementError(f"shape {tuple(value.shape)} != reference {tuple(reference.shape)}")
    if value.numel() == 0:
        return 0.0
    scale = float(reference.abs().max())
    diff = float((value - reference).abs().max())
    if not math.isfinite(diff):
        return math.inf
    if scale == 0.0:
        return 0.0 if diff == 0.0 else math.inf
    return diff / scale


def check_agreement(results: Mapping[str, Sequence[Tensor]], reference: str,
                    rtol: float = 1e-4, what: str = "") -> Dict[str, float]:
    """Every entry of ``results`` (mode -> tensors: output, gradients, ...) must match the
    ``reference`` entry tensor by tensor within ``rtol`` (see :func:`max_relative_error`).

    Returns the worst relative error per mode; raises :class:`AgreementError` naming the modes,
    tensors and errors at fault.
    """
    if reference not in results:
        raise KeyError(f"reference mode {reference!r} not among {list(results)}")
    ref = list(results[reference])
    worst: Dict[str, float] = {}
    failures: List[str] = []
    for mode, tensors in results.items():
        tensors = list(tensors)
        if len(tensors) != len(ref):
            raise AgreementError(f"{what}: mode {mode!r} returned {len(tensors)} tensors, "
                                 f"reference {reference!r} {len(ref)}")
        errs = [max_relative_error(t, r) for t, r in zip(tensors, ref)]
        worst[mode] = max(errs) if errs else 0.0
        bad = [f"tensor {i}: {e:.3g}" for i, e in enumerate(errs) if not e <= rtol]
        if bad:
            failures.append(f"{mode} vs {reference} ({', '.join(bad)})")
    if failures:
        raise AgreementError(f"{what}: modes disagree beyond relative {rtol:g}: "
                             + "; ".join(failures))
    return worst


# ----------------------------------------------------------------------------- machine rate
def matmul_gflops(device: torch.device, n: int = 2048, repeats: int = 5) -> float:
    """Measured float32 ``n x n @ n x n`` rate (GFLOP/s, median of ``repeats``): the machine's
    practical peak for dense linear algebra, to read the other figures against."""
    a = torch.randn(n, n, device=device)
    b = torch.randn(n, n, device=device)
    t = time_call(lambda: a @ b, device, warmup=1, min_repeats=repeats, max_repeats=repeats,
                  budget_s=0.0)
    return 2.0 * n ** 3 / (t.median_ms * 1e-3) / 1e9


# ----------------------------------------------------------------------------- output
def fmt(value: Optional[float], digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if isinstance(value, float):
        if value == 0:
            return "0"
        if abs(value) >= 100:
            return f"{value:.0f}"
        return f"{value:.{digits}g}"
    return str(value)


def write_csv(rows: Iterable[Mapping[str, object]], path: Path,
              columns: Sequence[str] = CSV_COLUMNS) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(columns), extrasaction="ignore")
        writer.writeheader()
        for row in rows:
            writer.writerow({k: _csv_value(row.get(k)) for k in columns})


def _csv_value(value: object) -> object:
    if value is None:
        return ""
    if isinstance(value, float):
        return "" if math.isnan(value) else f"{value:.6g}"
    return value


def markdown_table(header: Sequence[str], rows: Iterable[Sequence[object]]) -> str:
    lines = ["| " + " | ".join(header) + " |",
             "|" + "|".join("---" if i == 0 else "---:" for i in range(len(header))) + "|"]
    for row in rows:
        lines.append("| " + " | ".join(fmt(v) if isinstance(v, float) else str(v) for v in row)
                     + " |")
    return "\n".join(lines)


# ----------------------------------------------------------------------------- graphs
def embedded_body_graphs(levels: int = 9):
    """``(skeleton Data, GraphHierarchy)`` of the embedded open body model (built on first use)."""
    from hgn_pyg.data.body_model import default_body_model_path, load_body_model
    from hgn_pyg.graphs import mesh_hierarchy, skeleton_graph

    body = load_body_model(default_body_model_path())
    hierarchy = mesh_hierarchy(body.faces, body.num_vertices, levels=levels)
    return skeleton_graph("h36m"), hierarchy
