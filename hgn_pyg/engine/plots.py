"""Training curves: ``metrics.csv`` and the loss / error PNGs of an experiment's ``graph/`` folder."""
from __future__ import annotations

import csv
import io
import logging
from pathlib import Path
from typing import Dict, List, Sequence

from hgn_pyg.io import atomic_write, atomic_write_text

__all__ = ["CSV_COLUMNS", "write_metrics_csv", "plot_history"]

log = logging.getLogger(__name__)

#: Columns of ``graph/metrics.csv`` (one row per epoch); models with more than two mesh levels
#: add ``train_mesh2_mse``, ... after ``train_mesh1_mse``.
CSV_COLUMNS = ["epoch", "lr", "train_loss", "train_joints_mse", "train_mesh0_mse", "train_mesh1_mse",
               "train_mpjpe", "test_mpjpe", "test_pa_mpjpe", "test_mpjpe_action_mean", "test_mpjpe_batch_mean",
               "train_time_s", "epoch_time_s"]


def _columns(history: Sequence[Dict[str, float]]) -> List[str]:
    extra = sorted({k for row in history for k in row
                    if k.startswith("train_mesh") and k.endswith("_mse") and k not in CSV_COLUMNS},
                   key=lambda k: int(k[len("train_mesh"):-len("_mse")]))
    at = CSV_COLUMNS.index("train_mesh1_mse") + 1
    return CSV_COLUMNS[:at] + extra + CSV_COLUMNS[at:]


def write_metrics_csv(history: Sequence[Dict[str, float]], path: Path) -> None:
    """Write one row per epoch of ``history`` (missing values left empty)."""
    columns = _columns(history)
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=columns, extrasaction="ignore", lineterminator="\n")
    w.writeheader()
    for row in history:
        w.writerow({k: ("" if row.get(k) is None else row.get(k)) for k in columns})
    atomic_write_text(path, buf.getvalue())


def plot_history(history: Sequence[Dict[str, float]], folder: Path) -> List[Path]:
    """``loss.png`` (training loss) and ``error.png`` (train / test MPJPE, test PA-MPJPE) in ``folder``."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    if not history:
        return []
    ep = [r["epoch"] for r in history]

    def series(key):
        xs = [e for e, r in zip(ep, history) if r.get(key) is not None]
        ys = [r[key] for r in history if r.get(key) is not None]
        return xs, ys

    def figure(name: str, ylabel: str, curves, log_y: bool, left: float) -> Path:
        fig, ax = plt.subplots(figsize=(6, 4))
        for key, label in curves:
            xs, ys = series(key)
            if xs:
                ax.plot(xs, ys, marker="o", label=label)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel("epoch")
        ax.set_ylabel(ylabel)
        if log_y:
            ax.set_yscale("log")
        ax.grid(True, alpha=0.3)
        ax.legend()
        fig.subplots_adjust(left=left, bottom=0.13, right=0.97, top=0.95)
        try:  # atomically, replacing (never following) a link at the path
            return atomic_write(folder / name, lambda fh: fig.savefig(fh, dpi=90, format="png"))
        finally:
            plt.close(fig)

    return [figure("loss.png", "loss", (("train_loss", "train loss"),), True, 0.15),
            figure("error.png", "error (mm)", (("train_mpjpe", "train MPJPE"), ("test_mpjpe", "test MPJPE"),
                                              ("test_pa_mpjpe", "test PA-MPJPE")), False, 0.13)]
