"""Command-line tools (``python -m hgn_pyg.<tool>`` and the ``hgn-*`` console scripts)."""
