"""A fork server for kill campaigns: imports curate (torch, transformers) once, then forks one child
per command, so a command killed at a random moment costs its own run, not an interpreter start-up.

The child is a real process running `curate.cli.app.main(argv)`; SIGKILL ends it as it would end
`curate` started from a shell. The parent never runs a tensor operation (OpenMP's threads do not
survive a fork), and stays single-threaded: it forks on `spawn`, reaps on `wait`.

Protocol (one JSON object a line, on stdin and stdout):
  {"spawn": [argv...], "env": {...}, "log": PATH} -> {"pid": N}
  {"wait": N}                                     -> {"status": exit code, or -signal}
"""

from __future__ import annotations

import json
import os
import sys


def _child(argv: list[str], env: dict[str, str], log: str) -> None:
    os.setsid()
    fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.environ.update(env)
    sys.stdout = open(1, "w", buffering=1, closefd=False)
    sys.stderr = open(2, "w", buffering=1, closefd=False)
    from curate.cli.app import main

    code = 1
    try:
        main(argv)
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
    os._exit(code)


def serve() -> None:
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    import torch  # noqa: F401 - the point: import once, fork many times
    import transformers  # noqa: F401

    import curate.cli.app  # noqa: F401

    out = sys.stdout
    out.write(json.dumps({"ready": os.getpid()}) + "\n")
    out.flush()
    for line in sys.stdin:
        request = json.loads(line)
        if "spawn" in request:
            pid = os.fork()
            if pid == 0:
                _child(request["spawn"], request.get("env", {}), request["log"])
            reply = {"pid": pid}
        else:
            _, status = os.waitpid(request["wait"], 0)
            reply = {"status": os.waitstatus_to_exitcode(status)}
        out.write(json.dumps(reply) + "\n")
        out.flush()


if __name__ == "__main__":
    serve()
