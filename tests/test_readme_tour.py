"""README's "A short tour", run as written after a (small) `make demo`.

The commands come from README.md itself, so the tour and this test cannot drift (a renamed flag
is renamed in both). They run in one process, through the same entry point as the `curate`
script, in a fresh folder that plays the repository checkout. `make demo` is stood in for by the demo
at a small size (through its Python API, so no CLI spelling is assumed here), and
$CURATE_PROXY_STEPS (documented in the tour) keeps the proxy models short; every other size is
the README's own.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"


def small_demo(folder: Path) -> None:
    """What `make demo` leaves that the tour uses (the workspace ./curate-ws and its demo files), smaller."""
    from curate.catalog.workspace import Workspace
    from curate.demo.run import run_demo

    run_demo(Workspace.open(folder / "curate-ws"), rows=400, proxy_steps=10, curate=False, loop_rounds=0)


def tour_commands(text: str) -> list[list[str]]:
    """The `curate ...` commands of the first bash block under "## A short tour", continuations joined."""
    section = text[text.index("## A short tour"):]
    block = re.search(r"```bash\n(.*?)```", section, re.S).group(1)
    commands = []
    for line in block.replace("\\\n", " ").splitlines():
        line = line.split("  #")[0].strip()
        if not line or line.startswith("#") or line.startswith("source "):
            continue
        words = shlex.split(line, comments=True)
        assert words[0] == "curate", f"a tour line that is not a curate command: {line}"
        commands.append(words[1:])
    return commands


def test_the_tour_parses_into_commands():
    commands = tour_commands(README.read_text())
    assert len(commands) >= 20
    assert ["ls"] in commands and any(c[:1] == ["loop"] for c in commands)


@pytest.mark.slow
def test_the_readme_tour_runs_as_written(tmp_path, monkeypatch, capsys):
    from curate.cli.app import main

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("CURATE_WORKSPACE", raising=False)
    monkeypatch.setenv("CURATE_PROXY_STEPS", "10")

    def curate(args: list[str]) -> None:
        with pytest.raises(SystemExit) as exit_:
            main(args)
        out = capsys.readouterr()
        assert exit_.value.code == 0, f"curate {shlex.join(args)} failed:\n{out.err[-3000:]}"

    small_demo(tmp_path)
    for args in tour_commands(README.read_text()):
        curate(args)
    assert (tmp_path / "runs" / "loop").is_dir() and (tmp_path / "sft.jsonl").is_file()
