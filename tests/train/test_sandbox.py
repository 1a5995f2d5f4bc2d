"""Code rewards run hostile programs safely: each attack ends as reward 0 and the host is unharmed."""

from __future__ import annotations

import os
import socket
import time

import pytest

from curate.train.code_reward import CodeReward
from curate.train.sandbox import Limits, run_many, run_python

psutil = pytest.importorskip("psutil")
LIMITS = Limits(cpu_seconds=1, wall_seconds=4, memory_mb=256, output_bytes=1 << 14)
TESTS = "assert solve() == 42"


def reward_of(code: str) -> float | None:
    program = f"```python\n{code}\ndef solve():\n    return 42\n```"
    return CodeReward(limits=LIMITS)(["p"], [program], tests=[TESTS])[0]


def _children() -> set[int]:
    return {p.pid for p in psutil.Process().children(recursive=True)}


@pytest.fixture
def host():
    """Processes and threads of this test before the attack; checks nothing is left afterwards."""
    before = _children()
    yield
    deadline = time.monotonic() + 5
    while _children() - before and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _children() - before == set(), "the sandbox left processes behind"


def test_a_correct_program_passes(host):
    assert reward_of("") == 1.0


def test_fork_bomb(host):
    assert reward_of("import os\nwhile True:\n    os.fork()") == 0.0
    assert reward_of("import subprocess, sys\nwhile True:\n    subprocess.Popen([sys.executable, '-c', '0'])") == 0.0
    assert reward_of("import multiprocessing\nwhile True:\n    multiprocessing.Process(target=print).start()") == 0.0


def test_infinite_loop(host):
    start = time.monotonic()
    assert reward_of("while True:\n    pass") == 0.0
    assert reward_of("import time\ntime.sleep(60)") == 0.0  # idle: stopped by the wall clock
    assert time.monotonic() - start < 3 * LIMITS.wall_seconds


def test_ten_gigabyte_allocation(host):
    assert reward_of("x = bytearray(10 * 1024 ** 3)") == 0.0
    assert run_python("x = bytearray(10 * 1024 ** 3)", LIMITS).status == "memory"
    assert psutil.Process().memory_info().rss < 2 * 1024 ** 3


def test_reading_files_outside_the_temp_dir(host, tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("s3cret")
    assert reward_of(f"assert open({str(secret)!r}).read() == 's3cret'") == 0.0
    assert reward_of("assert open('/etc/hostname').read()") == 0.0
    assert reward_of(f"import os\nassert os.listdir({str(tmp_path)!r})") == 0.0
    assert reward_of(f"import os\nos.symlink({str(secret)!r}, 'link')\nassert open('link').read()") == 0.0
    result = run_python(f"print(open({str(secret)!r}).read())", LIMITS)
    assert "s3cret" not in result.stdout and "PermissionError" in result.stderr
    assert secret.read_text() == "s3cret"


def test_writing_outside_and_deleting_host_files(host, tmp_path):
    target = tmp_path / "keep.txt"
    target.write_text("keep")
    assert reward_of(f"open({str(target)!r}, 'w').write('gone')") == 0.0
    assert reward_of(f"import os\nos.remove({str(target)!r})") == 0.0
    assert target.read_text() == "keep"
    assert reward_of("open('scratch.txt', 'w').write('ok')\nassert open('scratch.txt').read() == 'ok'") == 1.0


def test_no_network(host):
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    port = server.getsockname()[1]
    try:
        assert reward_of(f"import socket\nsocket.create_connection(('127.0.0.1', {port}), timeout=1)") == 0.0
        assert reward_of("import urllib.request\nurllib.request.urlopen('http://example.com', timeout=1)") == 0.0
    finally:
        server.close()


def test_output_flood_and_limit_escape(host):
    assert reward_of("while True:\n    print('x' * 10000)") == 0.0
    assert run_python("print('x' * 10 ** 7)", LIMITS).status == "output_limit"
    assert reward_of("import resource\nresource.setrlimit(resource.RLIMIT_AS, (-1, -1))") == 0.0
    assert reward_of("import ctypes") == 0.0


def test_environment_is_scrubbed(host, monkeypatch):
    monkeypatch.setenv("CURATE_TEST_SECRET", "hunter2")
    result = run_python("import os\nprint(sorted(os.environ))\nprint(os.getcwd())", LIMITS)
    assert result.passed
    assert "CURATE_TEST_SECRET" not in result.stdout and "hunter2" not in result.stdout
    assert "curate-sandbox-" in result.stdout  # it runs in its own temp folder, removed afterwards
    folder = result.stdout.strip().splitlines()[-1]
    assert not os.path.exists(folder)


def test_run_many_keeps_order():
    results = run_many(["print(1)", "raise SystemExit(3)", "print(3)"], LIMITS, workers=2)
    assert [r.status for r in results] == ["ok", "error", "ok"]
    assert [r.stdout.strip() for r in results] == ["1", "", "3"]


# Issue 15's attack table (docs/training.md, "The sandbox, attacked"): each attack as a completion
# scored by the code reward; the reward is 0 and CodeReward records why.
ATTACKS = {
    "fork bomb": ("import os\nwhile True:\n    os.fork()", {"blocked"}),
    "infinite loop": ("while True:\n    pass", {"cpu_limit", "timeout"}),
    "10 GB allocation": ("x = bytearray(10 * 1024 ** 3)", {"memory"}),
    "deep recursion": ("def f(n):\n    return f(n + 1)\nf(0)", {"recursion"}),
    "deep recursion, limit raised": ("import sys\nsys.setrecursionlimit(10 ** 7)\ndef f(n):\n    return f(n + 1)\nf(0)",
                                     {"crashed", "timeout", "cpu_limit", "memory", "recursion"}),
    "read outside its temp dir": ("open('/etc/passwd').read()", {"blocked"}),
    "write outside its temp dir": ("open('/tmp/curate-sandbox-escape.txt', 'w').write('x')", {"blocked"}),
    "read the parent's /proc": ("import os\nopen(f'/proc/{os.getppid()}/environ').read()", {"blocked"}),
    "list the parent's /proc": ("import os\nos.listdir(f'/proc/{os.getppid()}')", {"blocked"}),
    "signal the parent": ("import os, signal\nos.kill(os.getppid(), signal.SIGTERM)", {"blocked"}),
    "signal the parent's group": ("import os, signal\nos.killpg(os.getpgid(os.getppid()), signal.SIGTERM)",
                                  {"blocked"}),
    "huge stdout": ("while True:\n    print('x' * 10000)", {"output_limit", "timeout", "cpu_limit"}),
    "exit 0 before the tests": ("raise SystemExit(0)", {"no_token"}),
}


@pytest.mark.parametrize("attack", list(ATTACKS))
def test_attack_is_contained_with_its_reason(host, attack):
    code, reasons = ATTACKS[attack]
    reward = CodeReward(limits=LIMITS)
    program = f"```python\n{code}\ndef solve():\n    return 42\n```"
    assert reward(["p"], [program], tests=[TESTS]) == [0.0]
    assert reward.reasons[0] in reasons, (attack, reward.reasons)
    assert sum(reward.outcomes.values()) == 1 and not os.path.exists("/tmp/curate-sandbox-escape.txt")


def test_socket_to_a_local_listener_never_connects(host):
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    server.settimeout(0.5)
    port = server.getsockname()[1]
    try:
        reward = CodeReward(limits=LIMITS)
        code = f"import socket\ns = socket.socket()\ns.connect(('127.0.0.1', {port}))\ns.sendall(b'leak')"
        assert reward(["p"], [f"```python\n{code}\n```"], tests=[TESTS]) == [0.0]
        assert reward.reasons == ["blocked"]
        with pytest.raises(socket.timeout):
            server.accept()  # nothing ever connected
    finally:
        server.close()


def test_an_api_key_of_the_parent_is_not_visible(host, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-parent-secret")
    code = "import os\nprint(os.environ.get('OPENAI_API_KEY'))\nprint(open('/proc/self/environ', 'rb').read())"
    result = run_python(code, LIMITS)
    assert "sk-test-parent-secret" not in result.stdout + result.stderr
    assert "None" in result.stdout
