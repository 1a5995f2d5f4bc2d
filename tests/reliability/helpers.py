"""Helpers of the reliability tests (not a test module): the CLI as a subprocess, a lock holder."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

# Takes the catalog lock like any curate command, says so, and holds it until its stdin closes
# (or for argv[2] seconds when given).
HOLDER = textwrap.dedent("""
    import sys, time
    from curate.catalog.workspace import Workspace

    ws = Workspace.open(sys.argv[1])
    with ws.catalog():
        print("locked", flush=True)
        if len(sys.argv) > 2:
            time.sleep(float(sys.argv[2]))
        else:
            sys.stdin.readline()
    print("released", flush=True)
""")


def curate_command(*args: str, ws: Path | None = None) -> list[str]:
    return [sys.executable, "-m", "curate.cli.app", *args, *(["--workspace", str(ws)] if ws is not None else [])]


def env(**extra: str) -> dict[str, str]:
    out = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}
    return {**out, **extra}


def run(*args: str, ws: Path | None = None, check: int | None = 0, timeout: float = 300,
        **extra_env: str) -> subprocess.CompletedProcess:
    result = subprocess.run(curate_command(*args, ws=ws), capture_output=True, text=True, timeout=timeout,
                            env=env(**extra_env), cwd=REPO)
    if check is not None:
        assert result.returncode == check, f"exit {result.returncode}\n{result.stdout}\n{result.stderr}"
    return result


def start(*args: str, ws: Path | None = None, log: Path | None = None, **extra_env: str) -> subprocess.Popen:
    out = open(log, "wb") if log else subprocess.PIPE
    return subprocess.Popen(curate_command(*args, ws=ws), stdout=out, stderr=subprocess.STDOUT if log else
                            subprocess.PIPE, stdin=subprocess.DEVNULL, env=env(**extra_env), cwd=REPO)


def hold_lock(ws: Path, seconds: float | None = None) -> subprocess.Popen:
    """A process holding the workspace's catalog lock (it printed "locked" when this returns)."""
    proc = subprocess.Popen([sys.executable, "-c", HOLDER, str(ws), *([str(seconds)] if seconds else [])],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=env())
    line = proc.stdout.readline()
    assert line.strip() == "locked", proc.stderr.read()
    return proc
