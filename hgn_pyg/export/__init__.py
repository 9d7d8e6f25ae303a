"""``python -m hgn_pyg.export``: the entry point of :mod:`hgn_pyg.cli.export` (also the console script ``hgn-export``)."""
from hgn_pyg.cli.export import main

__all__ = ["main"]
