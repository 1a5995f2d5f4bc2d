"""The code reward on both test styles: HumanEval's `check(candidate)` + entry point, and MBPP's asserts.

Regression for issue 16 item 1: `check` was never called, so any completion that merely
ran (`return 'garbage'`) scored 1.0. The example is written here in HumanEval's shape.
"""

from __future__ import annotations

import json

import pytest

from curate.train.code_reward import CodeReward, RewardWarning, assemble, entry_point_of
from curate.train.rewards import get_reward
from curate.train.sandbox import Limits

FAST = Limits(cpu_seconds=2, wall_seconds=5, memory_mb=256)

PROMPT = '''from typing import List


def below_zero(operations: List[int]) -> bool:
    """Deposits and withdrawals on an account that starts at zero: is the balance ever negative?
    >>> below_zero([1, 2, 3])
    False
    >>> below_zero([1, 2, -4, 5])
    True
    """
'''
CANONICAL = '''    balance = 0
    for op in operations:
        balance += op
        if balance < 0:
            return True
    return False
'''
TEST = '''

METADATA = {"author": "curate tests", "dataset": "test"}


def check(candidate):
    assert candidate([]) is False
    assert candidate([1, 2, -3, 1, 2, -3]) is False
    assert candidate([1, 2, -4, 5, 6]) is True
    assert candidate([1, -1, 2, -2, 5, -5, 4, -5]) is True
'''
ROW = {"task_id": "Test/0", "prompt": PROMPT, "canonical_solution": CANONICAL, "test": TEST,
       "entry_point": "below_zero"}
WRONG = ["    return 'garbage'\n", "    return not True\n",
         "Once upon a time a little account went below zero, and the bank was sad about it."]


def _score(completions, entry_point="below_zero", **extra):
    n = len(completions)
    columns = {"tests": [TEST] * n, **extra}
    if entry_point is not None:
        columns["entry_point"] = [entry_point] * n
    return CodeReward(limits=FAST)([PROMPT] * n, completions, **columns)


def test_humaneval_canonical_passes_and_the_three_wrong_solutions_fail():
    assert _score([CANONICAL, *WRONG]) == [1.0, 0.0, 0.0, 0.0]


def test_humaneval_completion_may_be_a_body_or_a_whole_function():
    full = "Here it is:\n```python\ndef below_zero(operations):\n    total = 0\n    for op in operations:\n" \
           "        total += op\n        if total < 0:\n            return True\n    return False\n```"
    unindented_body = "balance = 0\nfor op in operations:\n    balance += op\n    if balance < 0:\n" \
                      "        return True\nreturn False"
    echoed = PROMPT + CANONICAL  # a model that repeats the signature before the body
    assert _score([full, unindented_body, echoed, "return 'garbage'"]) == [1.0, 1.0, 1.0, 0.0]


def test_exiting_before_the_tests_run_is_not_a_pass():
    hacks = ["    import sys\n    sys.exit(0)\n", "```python\nraise SystemExit(0)\n```",
             "```python\nimport os\nos._exit(0)\n```"]
    assert _score(hacks) == [0.0, 0.0, 0.0]
    mbpp = CodeReward(limits=FAST)(["p"], ["```python\nimport sys\nsys.exit(0)\n```"], tests=["assert f(1) == 2"])
    assert mbpp == [0.0]


def test_entry_point_from_meta_as_ingest_keeps_it():
    meta = json.dumps({"task_id": "Test/0", "entry_point": "below_zero"})
    assert _score([CANONICAL, WRONG[0]], entry_point=None, meta=[meta, meta]) == [1.0, 0.0]
    assert entry_point_of(None, {"entry_point": " f "}) == "f"
    assert entry_point_of(None, "not json") is None


def test_check_without_entry_point_is_none_with_a_warning_never_a_pass():
    reward = CodeReward(limits=FAST)
    with pytest.warns(RewardWarning, match="2 of 2 completions have a HumanEval-style"):
        assert reward([PROMPT] * 2, [CANONICAL, WRONG[0]], tests=[TEST] * 2) == [None, None]
    assert assemble(PROMPT, CANONICAL, TEST, None) is None
    baked = TEST + "\ncheck(below_zero)\n"  # tests that call check themselves need no entry point
    assert reward([PROMPT] * 2, [PROMPT + CANONICAL, PROMPT + WRONG[1]], tests=[baked] * 2) == [1.0, 0.0]


def test_mbpp_asserts_as_text_or_list_and_rows_without_tests_warn_with_the_count():
    good = "```python\ndef add(a, b):\n    return a + b\n```"
    bad = "```python\ndef add(a, b):\n    return a - b\n```"
    asserts = ["assert add(1, 2) == 3", "assert add(-1, 1) == 0"]
    reward = get_reward("code")
    reward.limits = FAST
    with pytest.warns(RewardWarning, match="2 of 4 completions have no tests"):
        out = reward(["p"] * 4, [good, bad, good, bad], tests=["\n".join(asserts), asserts, None, "  "])
    assert out == [1.0, 0.0, None, None]
    assert reward.skipped["no tests"] == 2
    assert get_reward("code") is not reward  # each use counts for itself


def test_a_raw_test_column_is_read_when_there_is_no_tests_column():
    out = CodeReward(limits=FAST)([PROMPT] * 2, [CANONICAL, WRONG[1]], test=[TEST] * 2,
                                  entry_point=["below_zero"] * 2)
    assert out == [1.0, 0.0]


def test_humaneval_rows_ingested_then_scored_through_the_training_columns(ws, tmp_path):
    """Ingest keeps entry_point in meta; the rows trainers read carry meta to the reward."""
    from curate.catalog.ingest import IngestOptions, ingest
    from curate.train.data import PROMPT_COLUMNS, iter_rows
    from tests.conftest import write_jsonl

    version = ingest(ws, str(write_jsonl(tmp_path / "he.jsonl", [ROW])), IngestOptions(name="he")).version
    (row,) = list(iter_rows(version, PROMPT_COLUMNS))
    completions = [row["response"], *WRONG]
    columns = {k: [row[k]] * len(completions) for k in row if k != "prompt"}
    reward = CodeReward(limits=FAST)
    assert reward([row["prompt"]] * len(completions), completions, **columns) == [1.0, 0.0, 0.0, 0.0]
