"""Fuzzed ingest at volume: >= 10,000 hostile input files, plus fuzzed command-line values.

Inputs come from the Hypothesis strategies in tests/reliability/fuzzing.py (JSONL, JSON arrays,
CSV/TSV, Parquet, random bytes, empty files; nested and mixed-type JSON, nulls, integers past
64 bits, NaN, emoji, RTL, combining marks, NUL and lone surrogates, BOMs, CRLF, ragged CSV rows,
open quotes, cut and bit-flipped files, gzip, wrong `--map` fields) and a few huge single fields
(`--huge-mb`, 50 MB by default) in every format. Each is ingested into a workspace and checked:
either a committed version whose rows come back unchanged through export (JSON lines and
Parquet) and whose shards match their hashes, or a CurateError naming the file; never a
traceback, a half-written version, a staging folder or a held lock. A fresh workspace is
used every 500 inputs so the catalog's size does not slow the run down.

Then command lines with fuzzed values (budgets, --param, --map, refs such as a@v99, names with
spaces, slashes and @) run in-process (tests/reliability/cli_fuzzing.py): a result or a user
error, never another exception.

Prints one JSON line per part and a summary; the CI share is tests/reliability/test_fuzz_ingest.py.

    python benchmarks/fuzz_ingest.py                       # 10,000 files, 2,000 command lines
    python benchmarks/fuzz_ingest.py --cases 500 --cli-cases 100 --huge-mb 5
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from hypothesis import HealthCheck, given, seed, settings  # noqa: E402

from tests.reliability.cli_fuzzing import command_lines, make_pool, run_command_line  # noqa: E402
from tests.reliability.fuzzing import Tally, cases, fresh_name, huge_field_cases, run_case, workspace  # noqa: E402

PER_WORKSPACE = 500


def fuzz_files(root: Path, count: int, fixed_seed: int, report) -> Tally:
    tally = Tally()
    counter = itertools.count()
    started = time.perf_counter()

    @seed(fixed_seed)
    @settings(max_examples=count, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    @given(cases())
    def one(case):
        index = next(counter)
        ws = workspace(root / f"ws{index // PER_WORKSPACE}")
        outcome = run_case(ws, case, fresh_name(index), root / "in")
        tally.add(case, outcome)
        if outcome.problems:  # at once, so a long run shows what it found as it goes
            report({"part": "files", "failure": repr(case)[:600], "problems": [p[:900] for p in outcome.problems]})
        if tally.cases % 1000 == 0:
            report({"part": "files", "progress": tally.cases, "seconds": round(time.perf_counter() - started, 1),
                    "failures": len(tally.failures)})

    one()
    return tally


def fuzz_huge(root: Path, megabytes: int) -> Tally:
    tally = Tally()
    ws = workspace(root / "huge")
    for index, case in enumerate(huge_field_cases(megabytes)):
        tally.add(case, run_case(ws, case, f"huge{index}", root / "in"))
    return tally


def fuzz_cli(root: Path, count: int, fixed_seed: int) -> tuple[Counter, list[str]]:
    folder = root / "cli"
    (folder / "out").mkdir(parents=True)
    pool = make_pool(folder)
    from curate.cli.app import app

    app(args=["ingest", str(pool), "--name", "pool", "--workspace", str(folder / "ws")], prog_name="curate",
        standalone_mode=False)
    kinds, bugs = Counter(), []

    @seed(fixed_seed)
    @settings(max_examples=count, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    @given(command_lines())
    def one(args):
        outcome = run_command_line(args, folder / "ws", pool, folder / "out")
        kinds[outcome.kind] += 1
        if outcome.kind == "bug":
            bugs.append(outcome.detail)

    one()
    return kinds, bugs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=10_000)
    parser.add_argument("--cli-cases", type=int, default=2_000)
    parser.add_argument("--huge-mb", type=int, default=50)
    parser.add_argument("--seed", type=int, default=15)
    args = parser.parse_args()
    results = os.fdopen(os.dup(1), "w", buffering=1)  # curate's own output goes to /dev/null
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)

    def report(payload: dict) -> None:
        print(json.dumps(payload), file=results)

    with tempfile.TemporaryDirectory(prefix="curate-fuzz-") as tmp:
        root = Path(tmp)
        started = time.perf_counter()
        tally = fuzz_files(root, args.cases, args.seed, report)
        report({"part": "files", "cases": tally.cases, "outcomes": dict(tally.kinds), "by_format": dict(tally.recipes),
                "errors_naming_line_row_or_item": tally.located, "failures": len(tally.failures),
                "tracebacks": tally.kinds["traceback"], "seconds": round(time.perf_counter() - started, 1),
                "seed": args.seed})
        report({"part": "files", "error_shapes": dict(tally.errors.most_common(40))})
        started = time.perf_counter()
        huge = fuzz_huge(root, args.huge_mb)
        report({"part": "huge_fields", "megabytes": args.huge_mb, "cases": huge.cases, "outcomes": dict(huge.kinds),
                "failures": [p for _, o in huge.failures for p in o.problems][:10],
                "seconds": round(time.perf_counter() - started, 1)})
        started = time.perf_counter()
        kinds, bugs = fuzz_cli(root, args.cli_cases, args.seed)
        report({"part": "cli_values", "cases": sum(kinds.values()), "outcomes": dict(kinds), "failures": len(bugs),
                "first_failures": [b[:600] for b in bugs[:10]], "seconds": round(time.perf_counter() - started, 1)})
        total = tally.cases + huge.cases + sum(kinds.values())
        report({"summary": "fuzz_ingest", "inputs": total, "tracebacks": tally.kinds["traceback"] +
                huge.kinds["traceback"] + kinds["bug"], "broken_promises": len(tally.failures) + len(huge.failures)
                + len(bugs)})


if __name__ == "__main__":
    main()
