"""Two processes on one workspace: a clear "workspace busy" naming the holder, or a short wait; never corruption."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import threading
import time

import pytest

from curate.catalog.versions import list_versions
from curate.catalog.workspace import ENV_LOCK_TIMEOUT, Workspace
from curate.errors import BadUsage, WorkspaceBusy

from ._helpers import catalog_state, ingest_rows, version_dirs

HOLDER = textwrap.dedent("""
    import sys
    from curate.catalog.workspace import Workspace

    ws = Workspace.open(sys.argv[1])
    with ws.catalog():
        print("locked", flush=True)
        sys.stdin.readline()  # hold the lock until the test closes our stdin
    print("released", flush=True)
""")


def test_second_open_file_in_same_process_is_refused_naming_the_holder(ws):
    other = Workspace(ws.root, lock_timeout=0.3)
    with ws.catalog():
        started = time.monotonic()
        with pytest.raises(WorkspaceBusy) as info, other.catalog():
            pass
        waited = time.monotonic() - started
    assert 0.25 <= waited < 5  # it waited for lock_timeout, then gave up
    assert f"busy (pid {os.getpid()}, command " in info.value.message and str(ws.root) in info.value.message
    assert ENV_LOCK_TIMEOUT in info.value.hint and "--wait SECONDS" in info.value.hint
    with other.catalog() as con:  # released: it works now
        assert con.execute("SELECT count(*) FROM datasets").fetchone() == (0,)


def test_another_process_holding_the_lock_is_named_and_then_released(ws, tmp_path):
    proc = subprocess.Popen([sys.executable, "-c", HOLDER, str(ws.root)], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path)
    try:
        line = proc.stdout.readline()
        assert line.strip() == "locked", proc.stderr.read()
        busy = Workspace(ws.root, lock_timeout=0.5)
        with pytest.raises(WorkspaceBusy) as info, busy.catalog():
            pass
        assert f"busy (pid {proc.pid}, command " in info.value.message
        assert "CURATE_LOCK_TIMEOUT" in info.value.hint
        with pytest.raises(WorkspaceBusy):
            list_versions(busy)
        proc.stdin.close()
        assert proc.wait(timeout=30) == 0
        assert proc.stdout.read().strip() == "released"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=30)
    with Workspace(ws.root, lock_timeout=2).catalog() as con:
        assert con.execute("SELECT count(*) FROM datasets").fetchone() == (0,)


def test_a_short_hold_makes_the_second_caller_wait_not_fail(ws):
    held = threading.Event()
    release_after = 0.4

    def hold() -> None:
        with ws.catalog():
            held.set()
            time.sleep(release_after)

    thread = threading.Thread(target=hold)
    thread.start()
    assert held.wait(timeout=10)
    started = time.monotonic()
    with Workspace(ws.root, lock_timeout=20).catalog() as con:
        waited = time.monotonic() - started
        assert con.execute("SELECT 1").fetchone() == (1,)
    thread.join(timeout=10)
    assert waited >= release_after / 2


def test_ingest_into_a_busy_workspace_fails_cleanly(ws, tmp_path):
    ingest_rows(ws, tmp_path, [{"prompt": "old"}], name="d")
    before = (catalog_state(ws), version_dirs(ws))
    busy = Workspace(ws.root, lock_timeout=0.3)
    with ws.catalog(), pytest.raises(WorkspaceBusy):
        ingest_rows(busy, tmp_path, [{"prompt": "new"}], name="d")
    assert (catalog_state(ws), version_dirs(ws)) == before
    assert list(ws.staging_root.iterdir()) == []


def test_lock_timeout_comes_from_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv(ENV_LOCK_TIMEOUT, "0.25")
    assert Workspace(tmp_path).lock_timeout == 0.25
    assert Workspace.open(tmp_path / "ws", lock_timeout=3).lock_timeout == 3


def test_workspace_path_that_is_a_file_is_bad_usage(tmp_path):
    path = tmp_path / "not-a-folder"
    path.write_text("x")
    with pytest.raises(BadUsage, match="is a file, not a folder"):
        Workspace.open(path)


def test_workspace_open_creates_the_layout_and_is_idempotent(tmp_path, monkeypatch):
    monkeypatch.setenv("CURATE_WORKSPACE", str(tmp_path / "from-env"))
    ws = Workspace.open()
    assert ws.root == (tmp_path / "from-env").resolve()
    assert ws.db_path.is_file() and ws.staging_root.is_dir() and ws.models_dir.is_dir()
    again = Workspace.open(ws.root)
    with again.catalog() as con:
        assert con.execute("SELECT value FROM catalog_info WHERE key = 'schema_version'").fetchall() == [("1",)]
