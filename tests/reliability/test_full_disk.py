"""A workspace whose device fills up (a 24 MB tmpfs, mounted by the test; skipped where mounting is not
allowed, e.g. CI without root): ingest and select fail with a clear error, the versions committed before
stay intact, nothing partial is visible, and once space is freed the same commands succeed."""

from __future__ import annotations

import json
import os
import subprocess

import pytest

from curate.catalog.integrity import check_workspace
from curate.catalog.workspace import Workspace, is_disk_full
from curate.errors import DiskFull

from .helpers import run

SIZE_MB = 24


@pytest.fixture
def small_disk(tmp_path):
    mount = tmp_path / "disk"
    mount.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={SIZE_MB}m", "tmpfs", str(mount)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def _rows(path, n, offset=0):
    with open(path, "w") as fh:
        for i in range(offset, offset + n):
            fh.write(json.dumps({"prompt": f"q {i} " + f"lorem ipsum dolor sit amet {i} " * 6,
                                 "response": f"a {i}"}) + "\n")
    return path


def _fill(mount, leave_bytes):
    (mount / "ballast").unlink(missing_ok=True)
    stat = os.statvfs(mount)
    free = stat.f_bavail * stat.f_frsize
    with open(mount / "ballast", "wb") as fh:
        fh.write(b"\0" * max(0, free - leave_bytes))


def _state(ws_path):
    report = check_workspace(Workspace.open(ws_path))
    assert report.ok, report.problems
    assert list((ws_path / "shards" / ".staging").iterdir()) == []
    return run("ls", "--quiet", ws=ws_path).stdout.split()


def test_ingest_and_select_on_a_full_disk(small_disk, tmp_path):
    ws = small_disk / "ws"
    run("ingest", str(_rows(tmp_path / "small.jsonl", 400)), "--out", "pool", ws=ws)
    big = _rows(tmp_path / "big.jsonl", 60_000, offset=1000)  # ~15 MB: its shards cannot fit in what is left
    before = _state(ws)
    _fill(small_disk, leave_bytes=2_000_000)
    failed = run("ingest", str(big), "--out", "big", ws=ws, check=1)
    assert "no space left on the device of workspace" in failed.stderr and "free some space" in failed.stderr
    assert "internal error" not in failed.stderr and "Traceback" not in failed.stderr
    assert _state(ws) == before
    _fill(small_disk, leave_bytes=0)
    failed = run("select", "pool", "--strategy", "random", "--budget", "300", "--out", "sel", ws=ws, check=None)
    assert failed.returncode == 1 and "no space left on the device" in failed.stderr, failed.stderr
    assert _state(ws) == before
    (small_disk / "ballast").unlink()
    run("ingest", str(big), "--out", "big", ws=ws)
    run("select", "pool", "--strategy", "random", "--budget", "300", "--out", "sel", ws=ws)
    assert _state(ws) == sorted(before + ["big@v1", "sel@v1"])


def test_what_counts_as_a_full_disk():
    assert is_disk_full(OSError(28, "No space left on device"))
    assert is_disk_full(RuntimeError("parquet: underlying IO error: No space left on device (os error 28)"))
    assert not is_disk_full(OSError(13, "Permission denied"))
    assert issubclass(DiskFull, Exception)
