"""Shared test options. Tests under tests/live/ need a real LM Studio or an accelerator: run with --live."""

import pytest


def pytest_addoption(parser):
    parser.addoption("--live", action="store_true", help="run tests/live/ (real LM Studio or accelerator)")


def pytest_collection_modifyitems(config, items):
    if config.getoption("--live"):
        return
    skip = pytest.mark.skip(reason="needs --live (a real LM Studio or an accelerator)")
    for item in items:
        if "/live/" in str(item.fspath) or item.get_closest_marker("live"):
            item.add_marker(skip)
