"""Several commands on one workspace: they wait (saying so) or fail fast per --wait, a killed holder's
lock is cleared, and 8 parallel writers leave a catalog whose every promise holds."""

from __future__ import annotations

import json
import signal
import threading
import time
from pathlib import Path

import pytest

from curate.catalog.export import export_version
from curate.catalog.integrity import check_version, check_workspace
from curate.catalog.versions import list_versions
from curate.catalog.workspace import ENV_LOCK_TIMEOUT, Workspace, command_line
from curate.errors import BadUsage
from tests.conftest import write_jsonl

from .helpers import hold_lock, run, start

pytestmark = pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")


def _pool(path: Path, n: int = 30, offset: int = 0) -> Path:
    return write_jsonl(path, [{"question": f"What is {i} + {i}?", "answer": f"#### {2 * i}"}
                              for i in range(offset, offset + n)])


def test_wait_0_fails_fast_naming_the_holders_pid_and_command(tmp_path):
    ws = tmp_path / "ws"
    run("ingest", str(_pool(tmp_path / "pool.jsonl")), "--out", "pool", ws=ws)
    before = run("ls", "--quiet", ws=ws).stdout
    holder = hold_lock(ws)
    try:
        started = time.monotonic()
        result = run("ingest", str(_pool(tmp_path / "more.jsonl", offset=100)), "--out", "pool", "--wait", "0",
                     ws=ws, check=1)
        assert time.monotonic() - started < 30  # the import, not a wait
        assert f"busy (pid {holder.pid}, command " in result.stderr
        assert "--wait SECONDS" in result.stderr and "Traceback" not in result.stderr
    finally:
        holder.stdin.close()
        holder.wait(timeout=30)
    assert run("ls", "--quiet", ws=ws).stdout == before
    assert list((ws / "shards" / ".staging").iterdir()) == []


def test_a_waiting_command_says_so_and_then_runs(tmp_path):
    ws = tmp_path / "ws"
    run("ingest", str(_pool(tmp_path / "pool.jsonl")), "--out", "pool", ws=ws)
    holder = hold_lock(ws)  # held until released below, however slow the machine is
    waiter = start("ls", "--quiet", "--wait", "120", ws=ws)
    try:
        notice = waiter.stderr.readline().decode()  # blocks until the waiter says it waits (after 1 s)
    finally:
        holder.stdin.close()
        holder.wait(timeout=30)
    out, err = waiter.communicate(timeout=120)
    assert waiter.returncode == 0 and out.decode().split() == ["pool@v1"]
    text = " ".join((notice + err.decode()).split())
    assert f"waiting for workspace {ws.resolve()}: busy (pid {holder.pid}, command " in text
    assert "giving up after 120s (--wait)" in text


def test_a_killed_holders_lock_is_detected_and_cleared(tmp_path):
    ws = tmp_path / "ws"
    run("ingest", str(_pool(tmp_path / "pool.jsonl")), "--out", "pool", ws=ws)
    holder = hold_lock(ws)
    holder.send_signal(signal.SIGKILL)
    holder.wait(timeout=30)
    assert (ws / ".lock.owner").exists()  # what the killed holder left behind
    result = run("ls", "--quiet", "--wait", "0", ws=ws)
    assert result.stdout.split() == ["pool@v1"]
    assert f"cleared a stale lock on {ws.resolve()}: pid {holder.pid}" in result.stderr
    assert not (ws / ".lock.owner").exists()
    assert run("ls", "--quiet", ws=ws).stderr == ""  # told once: the next command finds nothing stale


def test_the_lock_timeout_setting_is_checked(tmp_path, monkeypatch):
    monkeypatch.setenv(ENV_LOCK_TIMEOUT, "soon")
    with pytest.raises(BadUsage, match="CURATE_LOCK_TIMEOUT is 'soon'"):
        Workspace.open(tmp_path / "ws")
    monkeypatch.delenv(ENV_LOCK_TIMEOUT)
    with pytest.raises(BadUsage, match="0 or more seconds"):
        Workspace.open(tmp_path / "ws", lock_timeout=-1)
    result = run("ls", "--wait", "-1", ws=tmp_path / "ws", check=2)
    assert "--wait" in result.stderr


def test_the_command_named_in_the_lock_hides_secrets():
    argv = ["/venv/bin/curate", "synth", "seeds", "--api-key", "sk-secret", "--model", "m", "--x"]
    assert command_line(argv) == "curate synth seeds --api-key *** --model ..."
    assert command_line(["/venv/bin/curate", "synth", "--api-key=sk-secret"]) == "curate synth --api-key=***"
    assert command_line(["/usr/bin/python3", "-m", "curate.cli.app", "ls"]) == "curate ls"


def _reader(ws: Workspace, stop: threading.Event, seen: dict, problems: list, out: Path) -> None:
    """What `ls`, `show` and `export` read, over and over while the writers commit."""
    while not stop.is_set():
        for version in list_versions(ws):
            seen[version.ref] = version.rows
            problems += check_version(version)
            target = out / f"{version.name}-{version.version}.jsonl"
            export_version(version, target, overwrite=True)
            lines = len(target.read_text().splitlines())
            if lines != version.rows:
                problems.append(f"{version.ref}: export wrote {lines} rows, the catalog lists {version.rows}")
        time.sleep(0.05)


@pytest.mark.slow
def test_eight_parallel_writers_and_readers(tmp_path, tiny_model_dir):
    ws_path = tmp_path / "ws"
    run("ingest", str(_pool(tmp_path / "pool.jsonl", n=12)), "--out", "pool", ws=ws_path)
    ws = Workspace.open(ws_path)
    writers = [
        *[("ingest", str(_pool(tmp_path / f"part{i}.jsonl", offset=1000 * (i + 1))), "--out", "parts")
          for i in range(3)],
        *[("select", "pool", "--strategy", "random", "--budget", "5", "--seed", str(i), "--out", "picked")
          for i in range(3)],
        *[("rollouts", "pool", "--model", str(tiny_model_dir), "-k", "2", "--max-completion-length", "4",
           "--model-key", "tiny") for _ in range(2)],
    ]
    assert len(writers) == 8
    stop, seen, problems = threading.Event(), {}, []
    exports = tmp_path / "exports"
    exports.mkdir()
    reader = threading.Thread(target=_reader, args=(ws, stop, seen, problems, exports), daemon=True)
    reader.start()
    procs = [start(*args, ws=ws_path, log=tmp_path / f"writer{i}.log") for i, args in enumerate(writers)]
    cli_readers = []
    try:
        while any(p.poll() is None for p in procs):
            cli_readers.append(run("ls", "--quiet", ws=ws_path, check=None))
            time.sleep(0.2)
        codes = [p.wait(timeout=600) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
        stop.set()
        reader.join(timeout=60)
    logs = [(tmp_path / f"writer{i}.log").read_text() for i in range(8)]
    assert codes == [0] * 8, "\n".join(logs)
    assert problems == []
    assert all(r.returncode == 0 and "Traceback" not in r.stderr for r in cli_readers)

    refs = [v.ref for v in list_versions(ws)]
    assert refs == ["parts@v1", "parts@v2", "parts@v3", "picked@v1", "picked@v2", "picked@v3", "pool@v1"]
    assert set(seen) <= set(refs)
    report = check_workspace(ws)
    assert report.problems == []
    # The two identical rollouts runs wrote the same ids: the ledger holds one copy of each.
    assert report.rollouts == 12 * 2
    summaries = [json.loads(run("show", ref, "--json", ws=ws_path).stdout)["rows"] for ref in refs[:3]]
    assert summaries == [30, 30, 30]
