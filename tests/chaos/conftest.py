"""The FULL chaos run is long: it runs only under `make test-chaos` (``-m chaos``) or with
ALIGNBOT_CHAOS=1, never in a plain `make test` / `pytest`."""

from __future__ import annotations

import os

import pytest


def pytest_collection_modifyitems(config, items):
    wanted = "chaos" in (config.getoption("-m") or "") or os.environ.get("ALIGNBOT_CHAOS") == "1"
    if wanted:
        return
    skip = pytest.mark.skip(reason="long chaos run: `make test-chaos` or ALIGNBOT_CHAOS=1")
    for item in items:
        if item.get_closest_marker("chaos"):
            item.add_marker(skip)
