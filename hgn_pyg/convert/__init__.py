"""``python -m hgn_pyg.convert``: the entry point of :mod:`hgn_pyg.cli.convert` (also the console script ``hgn-convert``)."""
from hgn_pyg.cli.convert import main

__all__ = ["main"]
