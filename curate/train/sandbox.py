"""Run untrusted Python (model-written code and its unit tests) in a separate, limited process.

Code rewards execute what a policy wrote, so the program gets its own process and several
independent fences, each enough to stop the common accidents and attacks on its own:

- **Process and time.** A fresh interpreter (`python -I -S -B`: no user site, no
  site-packages, no environment variables read, no bytecode written) in its own session;
  the parent kills the whole process group at the wall-time limit and again after exit.
- **Kernel limits** (`setrlimit`, set by the child before any untrusted line runs, soft =
  hard so they cannot be raised): CPU seconds, address space (memory), size of any file
  written (stdout and stderr are files too, so this caps the output), open files, no core
  dumps, and a process count.
- **Privileges and network.** Run as root, the child enters a new network namespace (no
  interfaces but a down loopback) and drops to `nobody` (when `nobody` can read the
  standard library); otherwise it tries an unprivileged user + network namespace. Either
  is best effort; the guard below always runs.
- **An audit hook** (PEP 578), installed before the untrusted code is compiled, refuses
  process creation (fork, exec, spawn, system, subprocess), signals to other processes,
  sockets, ctypes, raising resource limits, links, and any file access outside the
  private temp folder except reading the standard library.
- **A scrubbed environment**: PATH, LANG and HOME/TMPDIR pointing at the temp folder only;
  the working directory is that folder, deleted afterwards.

Python's documentation is clear that audit hooks alone are not a sandbox; here they sit
on top of the kernel limits, the namespace and the unprivileged user. For adversarial
workloads at scale use a container or VM runner as well.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from curate.errors import CurateError

NOBODY = 65534


@dataclass(frozen=True)
class Limits:
    cpu_seconds: int = 5
    wall_seconds: float = 10.0
    memory_mb: int = 512
    output_bytes: int = 1 << 16  # stdout and stderr each, and any file the program writes
    open_files: int = 64
    processes: int = 64  # RLIMIT_NPROC, enforced once the child runs as `nobody`


@dataclass
class RunResult:
    # ok | error | timeout | cpu_limit | memory | output_limit | blocked (a fence refused an operation) |
    # recursion (RecursionError) | crashed (killed by a signal, e.g. a C stack overflow)
    status: str
    returncode: int | None
    stdout: str
    stderr: str
    seconds: float

    @property
    def passed(self) -> bool:
        return self.status == "ok"


# The child's first code. It reads the program, fences itself in, then runs the program.
HARNESS = r"""
import os, resource, sys
work, cpu, memory, fsize, nofile, nproc, drop = sys.argv[1], *map(int, sys.argv[2:8])
os.chdir(work)
with open("solution.py", encoding="utf-8") as fh:
    source = fh.read()
try:
    import ctypes
    libc = ctypes.CDLL(None, use_errno=True)
    libc.unshare(0x40000000 if os.geteuid() == 0 else 0x50000000)  # CLONE_NEWNET (| CLONE_NEWUSER)
except Exception:
    pass
for name in [m for m in sys.modules if m == "ctypes" or m.startswith(("ctypes.", "_ctypes"))]:
    del sys.modules[name]
for kind, value in ((resource.RLIMIT_CPU, cpu), (resource.RLIMIT_AS, memory), (resource.RLIMIT_FSIZE, fsize),
                    (resource.RLIMIT_NOFILE, nofile), (resource.RLIMIT_CORE, 0)):
    resource.setrlimit(kind, (value, value))
if os.geteuid() == 0 and drop:
    os.setgroups([])
    os.setgid(65534)
    os.setuid(65534)
if hasattr(resource, "RLIMIT_NPROC"):
    resource.setrlimit(resource.RLIMIT_NPROC, (nproc, nproc))
WORK = os.path.realpath(work)
READ = (os.path.realpath(os.path.dirname(os.__file__)), "/dev/null", "/dev/urandom")
BLOCKED = {"os.fork", "os.forkpty", "os.posix_spawn", "os.posix_spawnp", "os.exec", "os.spawn", "os.system",
           "os.kill", "os.killpg", "subprocess.Popen", "pty.spawn", "socket.__new__", "socket.connect",
           "socket.bind", "socket.getaddrinfo", "socket.gethostbyname", "ctypes.dlopen", "ctypes.dlsym",
           "ctypes.cdata", "resource.setrlimit", "resource.prlimit", "os.symlink", "os.link", "os.chroot",
           "os.setxattr", "os.chown", "os.chflags", "sys.remote_exec"}
NO_IMPORT = {"ctypes", "_ctypes", "_posixsubprocess", "_xxsubinterpreters", "_winapi"}
PATH_EVENTS = {"os.listdir", "os.scandir", "os.chdir", "os.remove", "os.rename", "os.rmdir", "os.mkdir",
               "os.chmod", "os.truncate", "os.utime", "shutil.rmtree", "shutil.copyfile", "shutil.move",
               "glob.glob", "os.walk"}
WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_TRUNC

def inside(path, root):
    return path == root or path.startswith(root.rstrip("/") + "/")

def allowed(path, write):
    if isinstance(path, int) or path is None:
        return True
    real = os.path.realpath(os.fsdecode(path))
    return inside(real, WORK) or (not write and any(inside(real, root) for root in READ))

def guard(event, args):
    if event in BLOCKED:
        raise PermissionError(f"sandbox: {event} is not allowed")
    if event == "import" and str(args[0]).split(".")[0] in NO_IMPORT:
        raise ImportError(f"sandbox: import of {args[0]} is not allowed")
    if event == "open":
        path, mode, flags = args
        if isinstance(flags, int) and flags >= 0:
            write = bool(flags & WRITE_FLAGS)
        else:
            write = any(c in str(mode) for c in "wax+")
        if not allowed(path, write):
            raise PermissionError(f"sandbox: cannot open {path!r}")
    elif event in PATH_EVENTS:
        write = event not in ("os.listdir", "os.scandir", "os.chdir", "glob.glob", "os.walk")
        for path in args[:2] if event in ("os.rename", "shutil.copyfile", "shutil.move") else args[:1]:
            if isinstance(path, (str, bytes, os.PathLike)) and not allowed(path, write):
                raise PermissionError(f"sandbox: {event} on {path!r} is not allowed")

code = compile(source, "solution.py", "exec")
del source
sys.addaudithook(guard)
exec(code, {"__name__": "__main__", "__builtins__": __builtins__})
"""


def _nobody_can_run_python() -> bool:
    """Whether `nobody` can read the standard library (it cannot when Python lives under /root)."""
    stdlib = os.path.realpath(os.path.dirname(os.__file__))
    path = "/"
    for part in stdlib.strip("/").split("/"):
        path = os.path.join(path, part)
        try:
            if not os.stat(path).st_mode & 0o001:
                return False
        except OSError:
            return False
    return bool(os.stat(stdlib).st_mode & 0o004)


def _check_platform() -> None:
    if os.name != "posix":
        raise CurateError("code rewards need a POSIX system (Linux or macOS) to sandbox the programs",
                          hint="run code-reward training on Linux, or use another --reward")


def _scrubbed_env(work: str) -> dict[str, str]:
    return {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8", "HOME": work, "TMPDIR": work}


def _kill_group(pid: int) -> None:
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def _read(path: str, limit: int) -> str:
    try:
        with open(path, "rb") as fh:
            return fh.read(limit).decode("utf-8", errors="replace")
    except OSError:
        return ""


def _status(returncode: int, stderr: str, timed_out: bool) -> str:
    if timed_out:
        return "timeout"
    if returncode == 0:
        return "ok"
    if returncode in (-signal.SIGXCPU, -signal.SIGKILL):
        return "cpu_limit"
    if returncode == -signal.SIGXFSZ or "File too large" in stderr:
        return "output_limit"
    if "MemoryError" in stderr:
        return "memory"
    if "sandbox: " in stderr or "PermissionError" in stderr:  # the audit hook, or the kernel, said no
        return "blocked"
    if "RecursionError" in stderr:
        return "recursion"
    if returncode < 0:
        return "crashed"
    return "error"


def run_python(source: str, limits: Limits = Limits()) -> RunResult:
    """Run `source` as a Python program inside the fences described above; never raises for what it does."""
    _check_platform()
    work = tempfile.mkdtemp(prefix="curate-sandbox-")
    start = time.perf_counter()
    try:
        os.chmod(work, 0o700)
        with open(os.path.join(work, "solution.py"), "w", encoding="utf-8") as fh:
            fh.write(source)
        drop = os.geteuid() == 0 and _nobody_can_run_python()
        if drop:
            os.chown(work, NOBODY, NOBODY)
            os.chown(os.path.join(work, "solution.py"), NOBODY, NOBODY)
        out_path, err_path = os.path.join(work, ".stdout"), os.path.join(work, ".stderr")
        command = [sys.executable, "-I", "-S", "-B", "-c", HARNESS, work, str(int(limits.cpu_seconds)),
                   str(limits.memory_mb << 20), str(limits.output_bytes), str(limits.open_files),
                   str(limits.processes), str(int(drop))]
        with open(out_path, "wb") as out, open(err_path, "wb") as err:
            process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=out, stderr=err, cwd=work,
                                       env=_scrubbed_env(work), start_new_session=True, close_fds=True)
            timed_out = False
            try:
                process.wait(timeout=limits.wall_seconds)
            except subprocess.TimeoutExpired:
                timed_out = True
                _kill_group(process.pid)
                process.wait()
            _kill_group(process.pid)  # anything the program left behind in its session
        stdout, stderr = _read(out_path, limits.output_bytes), _read(err_path, limits.output_bytes)
        return RunResult(_status(process.returncode, stderr, timed_out), None if timed_out else process.returncode,
                         stdout, stderr, round(time.perf_counter() - start, 3))
    finally:
        shutil.rmtree(work, ignore_errors=True)


def run_many(sources: Sequence[str], limits: Limits = Limits(), workers: int | None = None) -> list[RunResult]:
    """`run_python` over many programs, a few at a time (default: one per CPU core), in input order."""
    if not sources:
        return []
    workers = max(1, min(len(sources), workers or os.cpu_count() or 1))
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="curate-sandbox") as pool:
        return list(pool.map(lambda source: run_python(source, limits), sources))
