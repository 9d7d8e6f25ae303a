"""``python -m hgn_pyg.test``: the entry point of :mod:`hgn_pyg.cli.evaluate` (also the console script ``hgn-test``)."""
from hgn_pyg.cli.evaluate import main

__all__ = ["main"]
