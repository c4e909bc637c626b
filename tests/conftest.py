"""Shared test options. Tests under tests/live/ need a real LM Studio or an accelerator: run with --live."""

import os
from pathlib import Path

import pytest

# Scripts run as subprocesses import `tunixhack` from this checkout, whatever the environment's editable install
# points at (another worktree's, say): the tests test the code beside them.
ROOT = str(Path(__file__).resolve().parent.parent)
os.environ["PYTHONPATH"] = os.pathsep.join([ROOT, *filter(None, [os.environ.get("PYTHONPATH")])])


def pytest_addoption(parser):
    parser.addoption("--live", action="store_true", help="run tests/live/ (real LM Studio or accelerator)")


def pytest_collection_modifyitems(config, items):
    if config.getoption("--live"):
        return
    skip = pytest.mark.skip(reason="needs --live (a real LM Studio or an accelerator)")
    for item in items:
        if "/live/" in str(item.fspath) or item.get_closest_marker("live"):
            item.add_marker(skip)
