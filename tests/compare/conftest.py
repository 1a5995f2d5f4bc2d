"""One torch thread for every comparison test: the tiny models train fastest that way on a shared 2-core machine."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True, scope="module")
def _one_thread_for_every_module(one_thread):
    yield
