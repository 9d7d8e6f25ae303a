"""Lift 2D joints to 3D with a small PyG model built from torch_geometric.nn pieces and hgn_pyg's
SemGraphConv and GraphNonLocal, trained with a plain PyG DataLoader on PoseGraphDataset.

Every training sample loses each joint with probability ``--drop`` (RandomJointDropout, the
pelvis kept), so every batch mixes skeletons of different sizes and topologies; the remaining
edges keep their ``edge_type`` (the template column they came from), so the typed SemGraphConv
gives each bone and each self loop its own learnt weight whatever the graph. The test split is
evaluated on complete skeletons (MPJPE / PA-MPJPE, as ``hgn_pyg.test`` reports them) and on
skeletons with joints dropped (MPJPE over the joints that remain).

    python examples/pyg_lifting.py --quick          # < 2 minutes on 2 CPU cores
    python examples/pyg_lifting.py --root datasets/synthetic --epochs 20
    python examples/pyg_lifting.py --root datasets/Human36M --epochs 30 --hidden 128

With no data at ``--root`` (default ``datasets/synthetic_example``) a synthetic Human3.6M-format
set is generated there first (``hgn_pyg.data.synthetic``; ``--frames`` frames per sequence).
"""
from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

import torch
from torch import nn
from torch_geometric.loader import DataLoader
from torch_geometric.nn import BatchNorm, Linear, Sequential, global_mean_pool
from torch_geometric.utils import scatter

from hgn_pyg.data import PoseGraphDataset, RandomJointDropout, skeleton_template
from hgn_pyg.engine.metrics import mpjpe, pa_mpjpe
from hgn_pyg.nn import GraphNonLocal, SemGraphConv

log = logging.getLogger("pyg_lifting")


def block(channels: int, num_edge_types: int):
    """Typed SemGraphConv -> BatchNorm -> ReLU, as a PyG Sequential piece."""
    return [
        (SemGraphConv(channels, channels, num_edge_types=num_edge_types),
         "x, edge_index, edge_type -> x"),
        (BatchNorm(channels), "x -> x"),
        nn.ReLU(inplace=True),
    ]


def build_model(hidden: int, num_edge_types: int, num_joints: int = 17, num_blocks: int = 2,
                joint_channels: int = 16) -> nn.Module:
    """2D joints ``x [ΣN, 2]`` (+ which joint each node is, ``joint [ΣN]``) -> 3D joints
    ``[ΣN, 3]`` on any batch of skeleton graphs."""
    k = num_edge_types
    layers = [
        (nn.Embedding(num_joints, joint_channels), "joint -> j"),
        (lambda x, j: torch.cat([x, j], dim=-1), "x, j -> x"),
        (SemGraphConv(2 + joint_channels, hidden, num_edge_types=k), "x, edge_index, edge_type -> x"),
        (BatchNorm(hidden), "x -> x"),
        nn.ReLU(inplace=True),
    ]
    for b in range(num_blocks):
        # a residual pair of graph convolutions, then attention within each graph of the batch
        layers.append((nn.Identity(), f"x -> skip{b}"))
        layers += block(hidden, k) + block(hidden, k)
        layers.append((lambda x, skip: x + skip, f"x, skip{b} -> x"))
        # context from the whole skeleton: attention within each graph, then its mean feature
        layers.append((GraphNonLocal(hidden), "x, batch -> x"))
        layers.append((global_mean_pool, "x, batch -> g"))
        layers.append((Linear(hidden, hidden), "g -> g"))
        layers.append((lambda x, g, batch: x + g[batch], "x, g, batch -> x"))
    layers.append((SemGraphConv(hidden, 3, num_edge_types=k), "x, edge_index, edge_type -> x"))
    return Sequential("x, joint, edge_index, edge_type, batch", layers)


def ensure_data(root: Path, frames: int, subjects) -> None:
    """Generate the synthetic set at ``root`` when it holds no annotations."""
    if (root / "annotations").is_dir():
        return
    from hgn_pyg.data import synthetic

    log.info("generating a synthetic Human3.6M-format set in %s (%d frames per sequence)", root, frames)
    synthetic.generate(root, frames=frames, subjects=subjects)


@torch.no_grad()
def evaluate(model: nn.Module, loader: DataLoader, full: bool) -> dict:
    """Mean errors in mm over the samples of ``loader``; ``full``: complete 17-joint skeletons."""
    model.eval()
    sums = {"MPJPE": 0.0, "PA-MPJPE": 0.0} if full else {"MPJPE": 0.0}
    count = 0
    for batch in loader:
        pred = model(batch.x, batch.joint, batch.edge_index, batch.edge_type, batch.batch)
        if full:
            p, y = pred.view(batch.num_graphs, -1, 3), batch.y.view(batch.num_graphs, -1, 3)
            sums["MPJPE"] += float(mpjpe(p, y).sum())
            sums["PA-MPJPE"] += float(pa_mpjpe(p, y).sum())
        else:  # per graph: the mean error of the joints it still has (no re-rooting)
            err = (pred - batch.y).norm(dim=-1) * 1000.0
            sums["MPJPE"] += float(scatter(err, batch.batch, dim=0, reduce="mean").sum())
        count += batch.num_graphs
    return {k: v / count for k, v in sums.items()}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--root", type=Path, default=Path("datasets/synthetic_example"),
                    help="Human3.6M-layout data root (generated when missing)")
    ap.add_argument("--quick", action="store_true",
                    help="subjects 1, 5 / 9 with 20 frames per sequence (every frame for training, every 5th for testing), 64 channels, 10 epochs: about 45 s of CPU time")
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--hidden", type=int, default=128)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--drop", type=float, default=0.1, help="joint dropout probability (training)")
    ap.add_argument("--frames", type=int, default=50, help="frames per sequence when generating")
    ap.add_argument("--train-subjects", type=int, nargs="+", default=[1, 5, 6, 7, 8])
    ap.add_argument("--test-subjects", type=int, nargs="+", default=[9, 11])
    ap.add_argument("--threads", type=int, default=1,
                    help="torch threads (1 avoids OpenMP stalls on a busy machine)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    if args.quick:
        args.epochs, args.hidden, args.frames = min(args.epochs, 10), min(args.hidden, 64), 20
        args.train_subjects, args.test_subjects = [1, 5], [9]
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stdout)
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    start = time.time()

    ensure_data(args.root, args.frames, sorted(set(args.train_subjects + args.test_subjects)))
    drop = RandomJointDropout(args.drop, generator=torch.Generator().manual_seed(args.seed))
    train = PoseGraphDataset(args.root, "train", subjects=args.train_subjects, subsample=1 if args.quick else None,
                             transform=drop)
    test = PoseGraphDataset(args.root, "test", subjects=args.test_subjects, subsample=5 if args.quick else None)
    test_dropped = PoseGraphDataset(args.root, "test", subjects=args.test_subjects,
                                    subsample=5 if args.quick else None,
                                    transform=RandomJointDropout(args.drop,
                                                                 generator=torch.Generator().manual_seed(1)))
    log.info("%d training graphs, %d test graphs (%.1f s)", len(train), len(test), time.time() - start)

    template = skeleton_template()
    model = build_model(args.hidden, num_edge_types=template.num_edges)
    opt = torch.optim.Adam(model.parameters(), lr=args.lr)
    train_loader = DataLoader(train, batch_size=args.batch_size, shuffle=True,
                              generator=torch.Generator().manual_seed(args.seed))
    test_loader = DataLoader(test, batch_size=256)
    # the mean-pose baseline: predict the mean training pose for every test sample
    mean_pose = train.y.view(-1, 17, 3).mean(0)
    test_y = test.y.view(-1, 17, 3)
    baseline = float(mpjpe(mean_pose.expand_as(test_y), test_y).mean())

    for epoch in range(args.epochs):
        model.train()
        total, n = 0.0, 0
        for batch in train_loader:
            pred = model(batch.x, batch.joint, batch.edge_index, batch.edge_type, batch.batch)
            loss = nn.functional.mse_loss(pred, batch.y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            total, n = total + loss.item() * batch.num_graphs, n + batch.num_graphs
        res = evaluate(model, test_loader, full=True)
        log.info("epoch %d: train loss %.5f, test MPJPE %.1f mm, PA-MPJPE %.1f mm (%.0f s)",
                 epoch, total / n, res["MPJPE"], res["PA-MPJPE"], time.time() - start)
    full = evaluate(model, test_loader, full=True)
    dropped = evaluate(model, DataLoader(test_dropped, batch_size=256), full=False)
    print(f"MPJPE {full['MPJPE']:.1f} mm, PA-MPJPE {full['PA-MPJPE']:.1f} mm on {len(test)} complete "
          f"test skeletons (mean-pose baseline {baseline:.1f} mm); MPJPE {dropped['MPJPE']:.1f} mm "
          f"with joints dropped (p={args.drop}); {time.time() - start:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
