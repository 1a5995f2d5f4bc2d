"""Catalog test fixtures.

`ws` overrides the top-level fixture of the same name with an equivalent but cheaper one:
a fresh workspace copied from one opened once per session (`Workspace.open` costs tens of
milliseconds of DuckDB DDL, and most catalog tests start from an empty workspace).
`Workspace.open` itself is exercised in test_workspace_lock.py.
"""

from __future__ import annotations

import shutil

import pytest

from curate.catalog.workspace import Workspace


@pytest.fixture(scope="session")
def _empty_workspace(tmp_path_factory):
    return Workspace.open(tmp_path_factory.mktemp("template") / "ws").root


@pytest.fixture
def ws(tmp_path, _empty_workspace):
    root = (tmp_path / "ws").resolve()
    shutil.copytree(_empty_workspace, root)
    return Workspace(root)
