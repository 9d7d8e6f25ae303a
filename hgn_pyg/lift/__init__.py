"""``python -m hgn_pyg.lift``: the entry point of :mod:`hgn_pyg.cli.lift` (also the console script ``hgn-lift``)."""
from hgn_pyg.cli.lift import main

__all__ = ["main"]
