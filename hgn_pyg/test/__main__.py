"""Run :func:`hgn_pyg.cli.evaluate.main` as ``python -m hgn_pyg.test``."""
import sys

from hgn_pyg.cli.evaluate import main

sys.exit(main())
