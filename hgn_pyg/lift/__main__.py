"""Run :func:`hgn_pyg.cli.lift.main` as ``python -m hgn_pyg.lift``."""
import sys

from hgn_pyg.cli.lift import main

sys.exit(main())
