"""The demo pool: what is planted, at what rates, and in what shape."""

from __future__ import annotations

import collections
import re

import pytest

from curate.demo.pool import FAULTS, UNRELATED, fresh_problems, make_pool

STEP = re.compile(r"^(-?\d+) ([-+*]) (\d+) = (-?\d+)$")


def _final(answer: str) -> str | None:
    match = re.search(r"#### (-?\d+)$", answer)
    return match.group(1) if match else None


def _steps_are_right(answer: str) -> bool:
    lines = answer.split("\n")
    for line in lines[:-1]:
        a, op, b, result = STEP.match(line).groups()
        if eval(f"{a} {op} {b}") != int(result):  # noqa: S307 (our own arithmetic lines)
            return False
    return True


def test_faults_are_planted_at_their_rates_and_the_size_is_kept():
    pool = make_pool(6000, seed=3)
    unique = [r for r in {(r["question"], r["answer"]): r for r in pool}.values() if not r["near_duplicate"]]
    counts = collections.Counter(r["planted"] for r in unique)
    assert len(pool) == 6000
    for kind, rate in FAULTS.items():  # binomial: 4 sd of ~5,560 draws is under 1.7 points
        assert abs(counts[kind] / len(unique) - rate) < 0.017, (kind, counts[kind] / len(unique))
    assert abs(counts[None] / len(unique) - (1 - sum(FAULTS.values()))) < 0.025


def test_each_fault_has_its_shape():
    pool = [r for r in make_pool(3000, seed=1, difficulties=(1,)) if not r["near_duplicate"]]
    by_kind = collections.defaultdict(list)
    for row in pool:
        by_kind[row["planted"]].append(row)
    for row in by_kind[None]:  # clean: right steps, right final number
        assert _steps_are_right(row["answer"]) and _final(row["answer"]) == row["true_answer"]
    for row in by_kind["wrong_answer"]:  # fluent, but the final number is wrong
        assert all(STEP.match(line) for line in row["answer"].split("\n")[:-1])
        assert _final(row["answer"]) not in (None, row["true_answer"])
    for row in by_kind["garbled"]:  # the clean steps' words in another order, then some final number
        steps, clean = row["answer"].rsplit("\n", 1)[0], _clean_answer(row).rsplit("\n", 1)[0]
        assert steps != clean and sorted(steps.split()) == sorted(clean.split()) and _final(row["answer"])
    for row in by_kind["truncated"]:
        assert _final(row["answer"]) is None and 0 < len(row["answer"]) < 0.65 * len(_clean_answer(row))
    unrelated = {template.split("{")[0] for template in UNRELATED}
    off = by_kind["off_task"]
    swapped = [r for r in off if _final(r["answer"]) is not None]
    other = [r for r in off if _final(r["answer"]) is None]
    assert swapped and other and all(_final(r["answer"]) != r["true_answer"] for r in swapped)
    assert all(any(r["answer"].startswith(u) for u in unrelated) for r in other)


def _clean_answer(row: dict) -> str:
    """The solution a clean row of this question would have (rebuilt from the question's numbers)."""
    numbers = [int(n) for n in re.findall(r"\d+", row["question"])]
    a, b = numbers[0], numbers[1]
    if "times as many" in row["question"]:
        return f"{a} * {b} = {a * b}\n#### {a * b}"
    op = "+" if " more " in row["question"] else "-"
    result = a + b if op == "+" else a - b
    return f"{a} {op} {b} = {result}\n#### {result}"


def test_a_wrong_answer_slip_is_carried_to_the_final_line():
    pool = [r for r in make_pool(4000, seed=2, difficulties=(3,)) if r["planted"] == "wrong_answer"]
    carried = [r for r in pool if _steps_consistent(r["answer"]) and not _steps_are_right(r["answer"])]
    assert carried  # the slip kind: one step off, every later step starts from the wrong value


def _steps_consistent(answer: str) -> bool:
    """Each step starts from the previous step's result, and the final line repeats the last."""
    lines = answer.split("\n")
    results = [STEP.match(line).group(4) for line in lines[:-1]]
    starts = [STEP.match(line).group(1) for line in lines[1:-1]]
    return starts == results[:-1] and _final(answer) == results[-1]


def test_near_duplicates_keep_their_originals_answer_and_fault():
    pool = make_pool(1000, seed=4)
    originals = {(r["answer"], r["planted"]) for r in pool if not r["near_duplicate"]}
    copies = [r for r in pool if r["near_duplicate"]]
    distinct = {(r["question"], r["answer"]) for r in copies}  # an exact copy may copy a near-duplicate too
    assert len(distinct) == round(round(1000 / 1.08) * 0.03)
    assert all((r["answer"], r["planted"]) in originals for r in copies)


def test_difficulties_and_fresh_problems():
    pool = make_pool(300, seed=0, difficulties=(1,))
    assert {r["difficulty"] for r in pool} == {1}
    fresh = fresh_problems(50, 7, {r["question"] for r in pool}, draw=400, difficulties=(1,))
    assert len(fresh) == 50 and all(r["planted"] is None and r["difficulty"] == 1 for r in fresh)
    assert not {r["question"] for r in fresh} & {r["question"] for r in pool}


def test_bad_fault_settings_are_refused():
    with pytest.raises(ValueError, match="faults"):
        make_pool(10, faults={"typo": 0.1})
    with pytest.raises(ValueError, match="faults"):
        make_pool(10, faults={"garbled": 0.7, "truncated": 0.5})
