"""Run :func:`hgn_pyg.cli.convert.main` as ``python -m hgn_pyg.convert``."""
import sys

from hgn_pyg.cli.convert import main

sys.exit(main())
