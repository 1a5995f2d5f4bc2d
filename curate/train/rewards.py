"""Verifiable rewards with TRL's keyword contract.

A reward function is called as `reward(prompts=..., completions=..., **columns)` and
returns one `float | None` per completion (TRL's `GRPOTrainer` contract): `prompts[i]`
and `completions[i]` are the i-th pair (text, or message lists for chat data, the
completion then being `[{"role": "assistant", "content": ...}]`), and every other
dataset column (`answer`, `tests`, `domain`, ...) arrives as a keyword with one value
per completion, as does `completion_ids`. `None` means "cannot score this one": the
trainer leaves it out of the group statistics and gives it zero advantage.

Built in (`get_reward(name)`):
- `math`: 1.0 when the completion's final number equals the `answer` column (see
  `curate.train.answers`: commas, units, `\\boxed{}`, `####`, fractions; non-numeric
  references go to math-verify), else 0.0; None when the example has no answer.
- `exact`: 1.0 when the completion, whitespace-normalised, equals `answer`.
- `format`: 1.0 when the completion states a final answer in a recognised form
  (`\\boxed{...}`, a `#### N` line, "The answer is N").
- `code`: runs the completion's code with the example's tests (MBPP asserts, or HumanEval's
  `check(candidate)` called on the entry point) in `curate.train.sandbox`; 1.0 when every
  test ran and passed (`curate.train.code_reward`); None when the example has no tests.

`get_reward("module:function")` imports a user function. `CheckedReward` wraps any of
them: it checks one finite number or None per completion, raises a clear error
otherwise, and counts the Nones.
"""

from __future__ import annotations

import importlib
import inspect
import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from curate.errors import BadUsage
from curate.train import answers
from curate.train.reward_contract import RewardError, RewardFunc, completion_text

FORMAT_RE = re.compile(r"(\\boxed\s*\{.+\}|####\s*\S+|answer\s*(?:is|:)\s*\S+)", re.IGNORECASE | re.DOTALL)


def _column(columns: dict, name: str, n: int, reward: str) -> list:
    values = columns.get(name)
    if values is None:
        raise RewardError(f"reward {reward!r} needs the column {name!r}, which this dataset lacks",
                          hint=f"ingest the data with --map {name}=COLUMN, or pick another --reward")
    if len(values) != n:
        raise RewardError(f"column {name!r} has {len(values)} values for {n} completions")
    return list(values)


def math_reward(prompts: Sequence, completions: Sequence, **columns: Any) -> list[float | None]:
    """1.0 when the final answer matches the `answer` column (numeric, else symbolic)."""
    refs = _column(columns, "answer", len(completions), "math")
    return [None if ref is None or not str(ref).strip() else float(answers.is_correct(str(ref), completion_text(c)))
            for c, ref in zip(completions, refs)]


def _normalise(text: str) -> str:
    return " ".join(text.split()).strip().lower()


def exact_reward(prompts: Sequence, completions: Sequence, **columns: Any) -> list[float | None]:
    """1.0 when the whitespace-normalised, case-folded completion equals `answer`."""
    refs = _column(columns, "answer", len(completions), "exact")
    return [None if ref is None else float(_normalise(completion_text(c)) == _normalise(str(ref)))
            for c, ref in zip(completions, refs)]


def format_reward(prompts: Sequence, completions: Sequence, **columns: Any) -> list[float | None]:
    """1.0 when the completion states a final answer as `\\boxed{..}`, `#### N` or "the answer is N"."""
    return [float(bool(FORMAT_RE.search(completion_text(c)))) for c in completions]


def _code_reward() -> RewardFunc:
    from curate.train.code_reward import CodeReward

    return CodeReward()  # a fresh one per use: it counts what it skipped


BUILTINS: dict[str, Callable[[], RewardFunc]] = {"math": lambda: math_reward, "exact": lambda: exact_reward,
                                                 "format": lambda: format_reward, "code": _code_reward}


def get_reward(spec: str) -> RewardFunc:
    """A built-in reward by name (math, exact, format, code) or a user function as `module:function`."""
    spec = spec.strip()
    if spec in BUILTINS:
        return BUILTINS[spec]()
    if ":" not in spec:
        raise BadUsage(f"unknown reward {spec!r}",
                       hint="use one of " + ", ".join(BUILTINS) + ", or module:function for your own")
    module_name, _, attr = spec.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise BadUsage(f"--reward {spec}: cannot import module {module_name!r} ({exc})",
                       hint="make the module importable (on PYTHONPATH, or installed) and name it as "
                            "module:function") from exc
    func = getattr(module, attr, None)
    if not callable(func):
        raise BadUsage(f"--reward {spec}: module {module_name!r} has no function {attr!r}",
                       hint="functions there: " + ", ".join(sorted(n for n, v in vars(module).items()
                                                                     if callable(v) and not n.startswith("_"))))
    return func


def weighted_reward(specs: Sequence[str | RewardFunc], weights: Sequence[float] | None = None) -> RewardFunc:
    """Several rewards as one, combined as GRPO combines them: the weighted sum of the values each
    returned for a completion (None ones left out), None where every reward returned None."""
    funcs = [CheckedReward(get_reward(s), name=s if ":" not in s else "") if isinstance(s, str) else CheckedReward(s)
             for s in specs]
    weights = [1.0] * len(funcs) if weights is None else [float(w) for w in weights]
    if len(weights) != len(funcs):
        raise BadUsage(f"{len(weights)} reward weights for {len(funcs)} rewards",
                       hint="give one --reward-weight per --reward")

    def combined(prompts: Sequence, completions: Sequence, **columns: Any) -> list[float | None]:
        values = [f(prompts, completions, **columns) for f in funcs]
        out: list[float | None] = []
        for per_completion in zip(*values):
            given = [(v, w) for v, w in zip(per_completion, weights) if v is not None]
            out.append(sum(v * w for v, w in given) if given else None)
        return out

    combined.__name__ = "+".join(f"{w:g}*{f.name}" if w != 1 else f.name for f, w in zip(funcs, weights))
    return combined


def reward_spec_name(spec: str | RewardFunc) -> str:
    """How a reward is named in ledger keys: its `--reward` spelling, a built-in's name, or module:qualname."""
    if isinstance(spec, str):
        return spec.strip()
    for name in ("math", "exact", "format"):
        if spec is BUILTINS[name]():
            return name
    module, qualname = getattr(spec, "__module__", None), getattr(spec, "__qualname__", None)
    if module and qualname:
        return f"{module}:{qualname}"
    return getattr(spec, "name", None) or f"{type(spec).__module__}:{type(spec).__qualname__}"


VERIFIABLE = ("math", "exact", "code")  # rewards that check an outcome (the rest shape it)


def outcome_index(specs: Sequence[str | RewardFunc], outcome: str | None = "auto") -> int | None:
    """Which of several rewards decides success (MoPPS counts accuracy, DAPO filters on it): `outcome`
    by name, or ("auto") the first verifiable one; None with one reward (it is the outcome) or when
    no verifiable reward is among them (the weighted sum is used)."""
    names = [reward_spec_name(s) for s in specs]
    if outcome not in (None, "auto"):
        if outcome not in names:
            raise BadUsage(f"outcome reward {outcome!r} is not among the rewards ({', '.join(names)})",
                           hint="name one of the --reward values")
        return names.index(outcome) if len(names) > 1 else None
    if outcome is None or len(names) < 2:
        return None
    return next((i for i, name in enumerate(names) if name in VERIFIABLE), None)


def reward_name(func: RewardFunc) -> str:
    return getattr(func, "__name__", None) or getattr(func, "name", None) or type(func).__name__


def reward_grader(func: RewardFunc) -> str | None:
    """The grader behind a reward, when it depends on what is installed: named in metrics and the ledger,
    so a fallback is never silent (`math` without math-verify compares normalised answer strings)."""
    if func is math_reward:
        return answers.math_grader()
    return getattr(func, "grader", None)


@dataclass
class CheckedReward:
    """A reward function whose every output is checked: one finite number or None per completion."""

    func: RewardFunc
    name: str = ""
    calls: int = 0
    values: int = 0
    nones: int = 0
    grader: str | None = None  # what judges correctness when it can vary (math: math-verify or string-match)

    def __post_init__(self) -> None:
        self.name = self.name or reward_name(self.func)
        self.grader = self.grader or reward_grader(self.func)
        if inspect.isclass(self.func):
            raise BadUsage(f"reward {self.name!r} is a class, not a function", hint="pass an instance or a function")

    def __call__(self, prompts: Sequence, completions: Sequence, **columns: Any) -> list[float | None]:
        out = self.func(prompts=prompts, completions=completions, **columns)
        self.calls += 1
        if out is None or isinstance(out, (str, bytes)) or not hasattr(out, "__len__"):
            raise RewardError(f"reward {self.name!r} returned {type(out).__name__}, not a list",
                              hint="return a list with one float (or None) per completion")
        out = list(out)
        if len(out) != len(completions):
            raise RewardError(f"reward {self.name!r} returned {len(out)} values for {len(completions)} completions",
                              hint="return exactly one float (or None to skip) per completion, in order")
        checked: list[float | None] = []
        for index, value in enumerate(out):
            if value is None:
                checked.append(None)
                continue
            if isinstance(value, bool):
                value = float(value)
            try:
                number = float(value)
            except (TypeError, ValueError):
                raise RewardError(f"reward {self.name!r} returned {value!r} (a {type(value).__name__}) for "
                                  f"completion {index}", hint="rewards must be numbers or None") from None
            checked.append(None if math.isnan(number) else number)
            if math.isinf(number):
                raise RewardError(f"reward {self.name!r} returned {number} for completion {index}",
                                  hint="rewards must be finite; return None to skip a completion")
        self.values += len(checked)
        self.nones += sum(v is None for v in checked)
        return checked


def graders_of(rewards: Sequence[CheckedReward]) -> str | None:
    """The graders behind a run's rewards, as the ledger records them (`math-verify+string-match`)."""
    return "+".join(r.grader for r in rewards if r.grader) or None
