"""A crash leaves either the old state or the new one: never half a version.

The SIGKILL test is deterministic: the ingest reads a FIFO, so the test decides how much
input exists, waits until the killed process has really written a shard into its staging
folder, and kills it while it blocks waiting for the rest.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from curate.catalog import versions
from curate.catalog.versions import list_versions, resolve
from curate.catalog.workspace import Workspace
from curate.errors import NotFound

from ._helpers import (
    catalog_state,
    ingest_file,
    ingest_rows,
    rows_of,
    version_dirs,
    write_lines,
)

pytestmark = pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs POSIX FIFOs and flock")

LINE_BYTES = 120             # every generated line is exactly this long, newline included
FIRST_BLOCK = 32 << 20       # readers.BLOCK_BYTES: the subprocess reads 32 MiB before it parses anything
SHARD_ROWS = 250_000         # ShardWriter.rows_per_shard: the first Parquet file appears after this many rows


def _pool_bytes(rows: int) -> bytes:
    lines = []
    for i in range(rows):
        head = f'{{"prompt": "question {i:07d} ", "response": "answer"}}'
        pad = LINE_BYTES - 1 - len(head)
        lines.append(f'{{"prompt": "question {i:07d} {"x" * pad}", "response": "answer"}}')
    data = "\n".join(lines).encode() + b"\n"
    assert len(data) == rows * LINE_BYTES
    return data


def _open_fifo_for_writing(fifo: Path, proc: subprocess.Popen, timeout: float) -> int:
    """Open the write end once the subprocess has opened the read end (never blocks forever)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            fd = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
        except OSError:  # ENXIO: no reader yet
            if proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"ingest never opened the FIFO (exit code {proc.poll()})") from None
            time.sleep(0.05)
            continue
        os.set_blocking(fd, True)
        return fd


def _write_all(fd: int, data: bytes, errors: list) -> None:
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
    except OSError as exc:  # EPIPE if the reader died early
        errors.append(exc)


def test_sigkill_midway_leaves_the_catalog_as_it_was(tmp_path):
    ws = Workspace.open(tmp_path / "ws")
    small = ingest_rows(ws, tmp_path, [{"prompt": f"p{i}", "response": "r"} for i in range(5)], name="small").version
    small_rows = rows_of(small)
    before = catalog_state(ws)
    before_dirs = version_dirs(ws)

    rows = (FIRST_BLOCK // LINE_BYTES) + 20_000  # one full 32 MiB block (> 250k rows) and a bit of the next
    assert FIRST_BLOCK // LINE_BYTES > SHARD_ROWS
    data = _pool_bytes(rows)
    fifo = tmp_path / "pool.jsonl"
    os.mkfifo(fifo)
    log = (tmp_path / "ingest.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "curate.cli.app", "ingest", str(fifo), "--out", "big", "-w", str(ws.root), "--quiet"],
        stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, cwd=tmp_path,
    )
    fd = -1
    try:
        fd = _open_fifo_for_writing(fifo, proc, timeout=60)
        errors: list = []
        writer = threading.Thread(target=_write_all, args=(fd, data, errors), daemon=True)
        writer.start()
        deadline = time.monotonic() + 90
        shard = None
        while shard is None:
            assert proc.poll() is None, f"ingest ended early: {(tmp_path / 'ingest.log').read_text()[-2000:]}"
            assert time.monotonic() < deadline, "no shard appeared in the staging folder"
            shard = next(iter(ws.staging_root.glob("*/part-*.parquet")), None)
            time.sleep(0.02)
        writer.join(timeout=60)
        assert not writer.is_alive() and not errors
        assert proc.poll() is None  # still alive: blocked on the FIFO, waiting for the rest of the input
        os.kill(proc.pid, signal.SIGKILL)
        assert proc.wait(timeout=30) == -signal.SIGKILL
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=30)
        if fd >= 0:
            os.close(fd)
        log.close()

    dead = [p for p in ws.staging_root.iterdir()]
    assert dead and any(p.glob("part-*.parquet") for p in dead)  # the crash really happened midway

    reopened = Workspace.open(ws.root, lock_timeout=5)  # the lock died with the process
    assert catalog_state(reopened) == before
    assert version_dirs(reopened) == before_dirs
    assert not (reopened.shards_dir / "big").exists()
    with pytest.raises(NotFound):
        resolve(reopened, "big")
    assert rows_of(resolve(reopened, "small@v1")) == small_rows

    normal = write_lines(tmp_path / "normal.jsonl", ['{"prompt": "after the crash"}'])
    report = ingest_file(reopened, normal, name="big")
    assert report.version.ref == "big@v1"
    assert [r["prompt"] for r in rows_of(report.version)] == ["after the crash"]
    assert not any(p.exists() for p in dead)  # the dead writer's staging folder was collected at commit
    assert list(reopened.staging_root.iterdir()) == []
    assert [v.ref for v in list_versions(reopened)] == ["big@v1", "small@v1"]


def test_version_folder_without_catalog_row_is_removed_at_next_commit(ws, tmp_path):
    kept = ingest_rows(ws, tmp_path, [{"prompt": "kept"}], name="kept").version
    orphan = ws.shards_dir / "x" / "v1"
    orphan.mkdir(parents=True)
    (orphan / "part-00000.parquet").write_bytes(b"not even parquet")
    stray_version = ws.shards_dir / "kept" / "v9"
    stray_version.mkdir()
    assert [v.ref for v in list_versions(ws)] == ["kept@v1"]
    with pytest.raises(NotFound):
        resolve(ws, "x")

    report = ingest_rows(ws, tmp_path, [{"prompt": "fresh"}], name="y")
    assert not orphan.exists() and not orphan.parent.exists()
    assert not stray_version.exists()
    assert kept.path.is_dir() and rows_of(kept)[0]["prompt"] == "kept"
    assert [v.ref for v in list_versions(ws)] == ["kept@v1", "y@v1"]
    assert report.version.ref == "y@v1"


def test_orphan_folder_does_not_block_the_same_name(ws, tmp_path):
    orphan = ws.shards_dir / "x" / "v1"
    orphan.mkdir(parents=True)
    (orphan / "part-00000.parquet").write_bytes(b"junk from a crash between rename and commit")
    version = ingest_rows(ws, tmp_path, [{"prompt": "real"}], name="x").version
    assert version.ref == "x@v1"
    assert [f.name for f in version.files()] == ["part-00000.parquet"]
    assert rows_of(version)[0]["prompt"] == "real"


def test_live_writers_staging_folder_survives_garbage_collection(ws, tmp_path):
    with ws.staging("other-writer") as live:
        (live / "part-00000.parquet").write_bytes(b"in progress")
        ingest_rows(ws, tmp_path, [{"prompt": "a"}], name="a")  # commits, so collects garbage
        assert (live / "part-00000.parquet").exists()
    assert not live.exists()  # the writer's own exit removes it


def test_staging_folder_not_yet_locked_is_kept_only_while_young(ws, tmp_path):
    young = ws.staging_root / "ingest-young"
    young.mkdir()
    old = ws.staging_root / "ingest-old"
    old.mkdir()
    an_hour_ago = time.time() - 3600
    os.utime(old, (an_hour_ago, an_hour_ago))
    ingest_rows(ws, tmp_path, [{"prompt": "a"}], name="a")
    assert young.exists()
    assert not old.exists()


def test_failure_during_commit_rolls_back_everything(ws, tmp_path, monkeypatch):
    ingest_rows(ws, tmp_path, [{"prompt": "before"}], name="d")
    before = catalog_state(ws)
    before_dirs = version_dirs(ws)

    def broken(*args, **kwargs):
        raise RuntimeError("disk full while writing lineage")

    monkeypatch.setattr(versions, "_insert_lineage", broken)
    with pytest.raises(RuntimeError, match="disk full"):
        ingest_rows(ws, tmp_path, [{"prompt": "after"}], name="d")
    assert catalog_state(ws) == before
    assert version_dirs(ws) == before_dirs
    assert list(ws.staging_root.iterdir()) == []
    monkeypatch.undo()
    assert ingest_rows(ws, tmp_path, [{"prompt": "after"}], name="d").version.ref == "d@v2"
