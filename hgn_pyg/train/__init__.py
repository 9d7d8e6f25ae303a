"""``python -m hgn_pyg.train``: the entry point of :mod:`hgn_pyg.cli.train` (also the console script ``hgn-train``)."""
from hgn_pyg.cli.train import main

__all__ = ["main"]
