"""``python -m hgn_pyg.export``: see :mod:`hgn_pyg.cli.export`."""
import sys

from hgn_pyg.cli.export import build_parser, main

__all__ = ["main", "build_parser"]

if __name__ == "__main__":
    sys.exit(main())
