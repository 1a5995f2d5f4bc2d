"""Fuzzed command-line values: budgets, `--param`, `--map`, refs (`a@v99`), names with spaces, slashes
and `@`. The promise: every command line ends in a result or a user error (CurateError or a
click usage error); never another exception. Commands run in-process on a small workspace, with
strategies that need no model (random, length, dedup), so thousands of them fit in minutes.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from hypothesis import strategies as st

from curate.errors import CurateError

PIECES = ("a", "pool", "pool@v1", "pool@v99", "@", "@v", "v0", "@latest", "/", "..", " ", "x y", "a/b", "\\", "%",
          "1", "0", "-1", "1e3", "0.5", "1.0", "nan", "inf", "=", ".", "fisher.", "dim", "😀", "\x00", "'", '"', ",",
          "messages[0].content", "[", "]", "1" * 30, "--budget", "-")
VALUE = st.one_of(st.lists(st.sampled_from(PIECES), max_size=5).map("".join), st.text(max_size=12))


@dataclass
class CliOutcome:
    kind: str  # ok | user_error | usage_error | bug
    detail: str = ""


def command_lines() -> st.SearchStrategy[list[str]]:
    """One command line of a value-parsing command, every value drawn from the hostile pieces above."""
    ref = st.one_of(st.sampled_from(["pool", "pool@v1", "pool@latest", "pool@2"]), VALUE)
    budget = st.one_of(st.sampled_from(["5", "0.5", "10%", "1.0", "1"]), VALUE)
    select = st.builds(lambda r, s, b, p, o: ["select", r, "--strategy", s, "--budget", b,
                                              *[x for v in p for x in ("--param", v)], *(["--out", o] if o else [])],
                       ref, st.sampled_from(["random", "length", "dedup", "random,length"]) | VALUE, budget,
                       st.lists(VALUE, max_size=2), st.none() | VALUE)
    show = st.builds(lambda c, r: [c, r], st.sampled_from(["show", "ls"]), ref)
    export = st.builds(lambda r, o: ["export", r, o], ref, VALUE)
    ingest = st.builds(lambda n, m: ["ingest", "{pool}", "--name", n, *[x for v in m for x in ("--map", v)]],
                       VALUE, st.lists(VALUE, max_size=2))
    return st.one_of(select, select, show, export, ingest)


def make_pool(folder: Path) -> Path:
    path = folder / "pool.jsonl"
    path.write_text("".join(json.dumps({"prompt": f"q{i} " * (i % 7 + 1), "response": f"a{i}"}) + "\n"
                            for i in range(20)))
    return path


def run_command_line(args: list[str], ws: Path, pool: Path, out: Path) -> CliOutcome:
    """Run one command line in-process, as `curate.cli.app.main` does, classifying how it ended."""
    from curate.cli.app import ABORTS, CLICK_ERRORS, EXITS, app

    args = [a.replace("{pool}", str(pool)) for a in args]
    if args[0] == "export":  # keep exports inside the scratch folder
        args[2] = str(out / (args[2].replace("/", "_").replace("\x00", "_")[:40] or "x"))
    try:
        app(args=[*args, "--workspace", str(ws), "--wait", "30"], prog_name="curate", standalone_mode=False)
    except CurateError as exc:
        return CliOutcome("user_error", exc.message)
    except CLICK_ERRORS as exc:
        return CliOutcome("usage_error", str(exc))
    except (*EXITS, *ABORTS, SystemExit):
        return CliOutcome("ok")
    except Exception as exc:  # noqa: BLE001 - what the fuzzing looks for
        import traceback

        return CliOutcome("bug", f"{args!r}: {type(exc).__name__}: {exc}\n{traceback.format_exc()[-1200:]}")
    return CliOutcome("ok")
