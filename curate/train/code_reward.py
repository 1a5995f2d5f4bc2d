"""The `code` reward: run a completion's code against the example's unit tests in the sandbox.

Two test styles, both as text in the `tests` column (a raw `test` column is read when there
is no `tests`, and a list of asserts is joined one per line):
- **MBPP**: asserts that call the function by name; they run after the code.
- **HumanEval** (Chen et al. 2021): a `def check(candidate)` that nothing calls, plus the
  row's entry point (an `entry_point` column, or `entry_point` in the row's `meta`, where
  ingest keeps it): `check(<entry point>)` is appended, as the HumanEval harness does. A test
  that defines `check` without calling it, on a row with no entry point, cannot be scored:
  None, never a pass.

The program is assembled as:
1. `code`: the completion's last fenced code block (a python one when there is one), else
   its whole text;
2. for a row with an entry point whose prompt itself defines it (the signature and
   docstring), the prompt comes first: a completion may then be the function's body (the
   HumanEval harness runs prompt + completion; a body written without indentation is
   indented by four spaces) or a whole function (its definition replaces the prompt's,
   whose imports and helper functions stay available);
3. the tests, then `check(<entry point>)` when they define `check` and do not call it;
4. a last line that prints a random token. The reward is 1.0 only when the program exits
   with status 0 *and* printed that token, so code that calls `exit(0)` before the tests
   get to run scores 0.0.

Rows without tests get None. The first call that meets such rows warns with their count
(`RewardWarning`); `skipped` counts every one by reason. Every program run is counted in
`outcomes` by the sandbox's status (`passed`, `failed`, `timeout`, `memory`, `blocked`,
`recursion`, `crashed`, `no_token` for a program that exited 0 before its tests ran, ...), and
`reasons` holds the last call's status per completion, so a reward of 0 always has a reason.
"""

from __future__ import annotations

import json
import os
import re
import textwrap
import warnings
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from curate.train.reward_contract import RewardError, completion_text
from curate.train.sandbox import Limits, RunResult, run_many

FENCE_RE = re.compile(r"```[ \t]*([\w+-]*)[^\n]*\n(.*?)```", re.DOTALL)
DEFINES_CHECK = re.compile(r"^def\s+check\s*\(", re.MULTILINE)
CALLS_CHECK = re.compile(r"^check\s*\(", re.MULTILINE)
NO_TESTS = "no tests"
NO_ENTRY_POINT = "check() without an entry point"


class RewardWarning(UserWarning):
    """Completions a reward could not score (their reward is None), with the count."""


def extract_code(text: str) -> str:
    """The last fenced code block (a python one when there is one), else the whole text."""
    blocks = FENCE_RE.findall(text)
    if not blocks:
        return text
    python = [body for lang, body in blocks if lang.lower() in ("python", "py", "python3")]
    return (python or [body for _, body in blocks])[-1]


def _defines(code: str, name: str) -> bool:
    return re.search(rf"^(?:async\s+)?def\s+{re.escape(name)}\s*\(", code, re.MULTILINE) is not None


def _prompt_text(prompt: Any) -> str:
    """A text prompt, or the content of the last user message of a chat prompt."""
    if isinstance(prompt, list):
        users = [m.get("content") or "" for m in prompt if isinstance(m, dict) and m.get("role") == "user"]
        return users[-1] if users else ""
    return prompt if isinstance(prompt, str) else ""


def tests_text(tests: Any) -> str | None:
    """Tests as program text: a list of asserts becomes one per line; empty means none."""
    if isinstance(tests, (list, tuple)):
        tests = "\n".join(str(t) for t in tests if t is not None)
    if tests is None or not str(tests).strip():
        return None
    return str(tests)


def entry_point_of(entry_point: Any, meta: Any) -> str | None:
    """The row's entry point: its `entry_point` column, else `entry_point` in its meta (JSON text or dict)."""
    if isinstance(entry_point, str) and entry_point.strip():
        return entry_point.strip()
    if isinstance(meta, str):
        try:
            meta = json.loads(meta)
        except ValueError:
            return None
    value = meta.get("entry_point") if isinstance(meta, dict) else None
    return value.strip() if isinstance(value, str) and value.strip() else None


def assemble(prompt: Any, completion: str, tests: str, entry_point: str | None) -> str | None:
    """The program that scores one completion (rules in the module docstring, the token line aside);
    None when the tests cannot be run as given (HumanEval `check` and no entry point)."""
    code = extract_code(completion).rstrip()
    needs_call = DEFINES_CHECK.search(tests) is not None and CALLS_CHECK.search(tests) is None
    if needs_call and entry_point is None:
        return None
    parts = []
    head = _prompt_text(prompt)
    if entry_point is not None and _defines(head, entry_point):
        if not _defines(code, entry_point) and code.strip() and not code.lstrip("\n")[:1].isspace():
            code = textwrap.indent(code, "    ")
        parts.append(head.rstrip("\n"))
    parts += [code, tests.rstrip()]
    if needs_call:
        parts.append(f"check({entry_point})")
    return "\n\n".join(parts) + "\n"


@dataclass
class CodeReward:
    """Runs each completion's code plus the example's tests in the sandbox (TRL's keyword contract)."""

    limits: Limits = field(default_factory=Limits)
    workers: int | None = None
    name: str = "code"
    skipped: Counter = field(default_factory=Counter)
    outcomes: Counter = field(default_factory=Counter)  # sandbox status of every program run, over all calls
    reasons: list[str | None] = field(default_factory=list)  # the last call's status per completion

    def __call__(self, prompts: Sequence, completions: Sequence, **columns: Any) -> list[float | None]:
        n = len(completions)
        tests = columns.get("tests", columns.get("test"))
        if tests is None:
            raise RewardError("reward 'code' needs the column 'tests', which this dataset lacks",
                              hint="ingest the data with --map tests=COLUMN, or pick another --reward")
        entry_points = [None] * n if columns.get("entry_point") is None else columns["entry_point"]
        metas = [None] * n if columns.get("meta") is None else columns["meta"]
        if not len(tests) == len(entry_points) == len(metas) == len(prompts) == n:
            raise RewardError(f"reward 'code' got {n} completions but {len(tests)} tests, {len(prompts)} prompts")
        token = os.urandom(16).hex()
        programs, slots, skipped = [], [], Counter()
        for i, completion in enumerate(completions):
            test = tests_text(tests[i])
            if test is None:
                skipped[NO_TESTS] += 1
                continue
            program = assemble(prompts[i], completion_text(completion), test, entry_point_of(entry_points[i], metas[i]))
            if program is None:
                skipped[NO_ENTRY_POINT] += 1
                continue
            programs.append(program + f"\nprint({token!r})\n")
            slots.append(i)
        self._warn(skipped, n)
        out: list[float | None] = [None] * n
        self.reasons = [None] * n
        for i, result in zip(slots, run_many(programs, self.limits, self.workers)):
            out[i] = 1.0 if result.passed and token in result.stdout else 0.0
            self.reasons[i] = _reason(result, token)
            self.outcomes[self.reasons[i]] += 1
        return out

    def _warn(self, skipped: Counter, n: int) -> None:
        for reason, count in skipped.items():
            if not self.skipped[reason]:
                detail = ("have no tests" if reason == NO_TESTS else
                          "have a HumanEval-style check(candidate) test but no entry_point (column or meta)")
                warnings.warn(f"code reward: {count} of {n} completions {detail}; their reward is None "
                              "(later calls count them in CodeReward.skipped without warning)", RewardWarning,
                              stacklevel=3)
            self.skipped[reason] += count


def _reason(result: RunResult, token: str) -> str:
    """Why a program earned what it did: passed, failed (an assertion or another error), or the sandbox's status."""
    if result.passed:
        return "passed" if token in result.stdout else "no_token"
    if result.status == "error":
        return "failed"
    return result.status
