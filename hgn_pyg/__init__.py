"""hgn_pyg: Hierarchical Graph Networks for 3D human pose estimation in PyTorch Geometric."""

__version__ = "0.1.0"
