"""Run :func:`hgn_pyg.cli.export.main` as ``python -m hgn_pyg.export``."""
import sys

from hgn_pyg.cli.export import main

sys.exit(main())
