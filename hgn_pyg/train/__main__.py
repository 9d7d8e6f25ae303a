"""Run :func:`hgn_pyg.cli.train.main` as ``python -m hgn_pyg.train``."""
import sys

from hgn_pyg.cli.train import main

sys.exit(main())
