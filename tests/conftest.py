"""Shared pytest configuration.

``--no-extensions`` hides torch-scatter and torch-sparse from the whole test
session (before torch_geometric is imported), so the pure-PyTorch fallback
paths of PyG and of hgn_pyg are exercised even on a machine that has the
extensions installed. CI runs the suite both ways.
"""
import sys

_BLOCKED = ("torch_scatter", "torch_sparse", "torch_cluster", "torch_spline_conv", "pyg_lib")


def pytest_addoption(parser):
    parser.addoption(
        "--no-extensions",
        action="store_true",
        default=False,
        help="hide torch-scatter/torch-sparse to test the pure-PyTorch paths",
    )


def pytest_configure(config):
    if config.getoption("--no-extensions"):
        if any(name.split(".")[0] in _BLOCKED for name in sys.modules):
            raise RuntimeError("--no-extensions must be applied before the extensions are imported")
        # A ``None`` entry makes ``import x`` raise ImportError and makes
        # ``importlib.util.find_spec(x)`` return None, which is how PyG probes.
        for name in _BLOCKED:
            sys.modules[name] = None


import os
import random

import pytest


@pytest.fixture(autouse=True)
def _unseeded_python_random():
    """Give every test a fresh Python ``random`` state from the OS.

    ``torch_geometric.nn.Sequential`` names the module it generates for its ``forward`` with
    ``random.randrange`` of the global state and reuses any module of that name already imported.
    Tests seed ``random`` identically (``seed_everything(0)``), so two Sequentials with different
    signatures built after the same seed in one session got the same name, and the second silently
    ran the first's ``forward``. Tests that need Python's ``random`` seed it themselves.
    """
    random.seed(os.urandom(16))
    yield
