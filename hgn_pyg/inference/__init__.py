"""Inference: deployable (exported) lifters; :mod:`hgn_pyg.inference.export`."""
