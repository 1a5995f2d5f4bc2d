"""Built-in rewards, the TRL keyword contract, the validation wrapper, and `module:function` rewards."""

from __future__ import annotations

import math

import pytest

from curate.errors import BadUsage
from curate.train import answers
from curate.train.code_reward import CodeReward, RewardWarning, extract_code
from curate.train.rewards import (CheckedReward, RewardError, exact_reward,
                                  format_reward, get_reward, math_reward)
from curate.train.sandbox import Limits

# (reference, completion): cases where GSM8K-style grading and math-verify must agree.
CROSS_CHECK = [
    ("72", "Natalia sold 48+24 = 72 clips.\n#### 72"),
    ("72", "The answer is \\boxed{72}."),
    ("1000", "She has 1,000 dollars. \\boxed{1,000}"),
    ("1000", "So the total is $1,000."),
    ("1,000", "The total is 1000."),
    ("0.75", "\\boxed{\\frac{3}{4}}"),
    ("3/4", "The answer is 0.75"),
    ("18", "Janet makes $18 every day.\n#### 18"),
    ("18", "#### 18 dollars"),
    ("18", "The answer is 17."),
    ("-5", "The temperature is -5 degrees. \\boxed{-5}"),
    ("5", "I have 5 apples and 3 pears so \\boxed{8}"),
    ("12", "It takes 12 minutes"),
    ("2.5", "\\boxed{2.50}"),
    ("\\frac{\\sqrt{3}}{2}", "\\boxed{\\frac{\\sqrt{3}}{2}}"),
    ("\\frac{\\sqrt{3}}{2}", "\\boxed{\\frac{\\sqrt{2}}{2}}"),
    ("100", "#### 99"),
    ("7", "no number here"),
    ("8", "5 + 3 = 8"),
    ("0.5", "\\boxed{\\dfrac{1}{2}}"),
]


@pytest.mark.parametrize("reference,completion", CROSS_CHECK)
def test_math_grading_agrees_with_math_verify(reference, completion):
    math_verify = pytest.importorskip("math_verify")
    gold = math_verify.parse(f"${reference}$" if "\\" in reference else reference)
    expected = bool(math_verify.verify(gold, math_verify.parse(completion)))
    assert answers.is_correct(reference, completion) == expected
    assert math_reward(["q"], [completion], answer=[reference]) == [float(expected)]


def test_gsm8k_marker_and_boxed_take_precedence_over_later_numbers():
    assert answers.is_correct("72", "#### 72\nThat took 3 steps.")
    assert answers.is_correct("72", "\\boxed{72} because 9 * 8 = 72, not 71")
    assert answers.extract_number("We need \\boxed{\\frac{6}{8}} of it") == answers.parse_number("3/4")
    assert answers.extract_number("Answer: $1,234.50 total") == answers.parse_number("1234.5")
    assert answers.extract_number("nothing") is None
    assert answers.reference_number("#### 1,250") == 1250
    assert answers.reference_number("x^2 + 1") is None


def test_math_reward_contract():
    out = math_reward(prompts=["a", "b", "c"], completions=["#### 4", "#### 5", "#### 6"], answer=["4", None, "7"],
                      tests=[None] * 3, completion_ids=[[1]] * 3)
    assert out == [1.0, None, 0.0]
    chat = [[{"role": "assistant", "content": "The answer is 4"}]]
    assert math_reward([[{"role": "user", "content": "2+2?"}]], chat, answer=["4"]) == [1.0]
    with pytest.raises(RewardError, match="answer"):
        math_reward(["a"], ["1"])


def test_exact_and_format_rewards():
    assert exact_reward(["q"] * 3, ["Paris", "  paris \n", "Lyon"], answer=["Paris"] * 3) == [1.0, 1.0, 0.0]
    assert format_reward(["q"] * 4, ["so #### 5", "\\boxed{3}", "The answer is 4", "I think 5"]) == [1.0, 1.0, 1.0, 0.0]


def test_checked_reward_validates_and_counts_nones():
    checked = CheckedReward(lambda prompts, completions, **kw: [1, True, None, float("nan")], name="mine")
    assert checked(["p"] * 4, ["c"] * 4) == [1.0, 1.0, None, None]
    assert (checked.calls, checked.values, checked.nones) == (1, 4, 2)
    with pytest.raises(RewardError, match="returned 1 values for 2 completions"):
        CheckedReward(lambda prompts, completions, **kw: [1.0])(["p"] * 2, ["c"] * 2)
    with pytest.raises(RewardError, match="'yes'"):
        CheckedReward(lambda prompts, completions, **kw: ["yes"])(["p"], ["c"])
    with pytest.raises(RewardError, match="not a list"):
        CheckedReward(lambda prompts, completions, **kw: 1.0)(["p"], ["c"])
    with pytest.raises(RewardError, match="finite"):
        CheckedReward(lambda prompts, completions, **kw: [math.inf])(["p"], ["c"])


def length_reward(prompts, completions, **kwargs):
    """A user reward, loaded by `get_reward("tests.train.test_rewards:length_reward")`."""
    return [float(len(c)) for c in completions]


def test_get_reward_resolves_builtins_and_user_functions():
    assert get_reward("math") is math_reward
    assert get_reward("tests.train.test_rewards:length_reward") is length_reward
    with pytest.raises(BadUsage, match="unknown reward"):
        get_reward("nope")
    with pytest.raises(BadUsage, match="no function 'missing'"):
        get_reward("tests.train.test_rewards:missing")
    with pytest.raises(BadUsage, match="cannot import"):
        get_reward("no_such_module_xyz:f")


FAST = Limits(cpu_seconds=2, wall_seconds=5, memory_mb=256)


def test_code_reward_runs_the_tests():
    reward = CodeReward(limits=FAST)
    good = "Here you go:\n```python\ndef add(a, b):\n    return a + b\n```"
    bad = "```python\ndef add(a, b):\n    return a - b\n```"
    tests = "assert add(1, 2) == 3\nassert add(0, 0) == 0"
    with pytest.warns(RewardWarning, match="1 of 3 completions have no tests"):
        assert reward(["p"] * 3, [good, bad, good], tests=[tests, tests, None]) == [1.0, 0.0, None]


def test_extract_code_prefers_the_last_python_block():
    text = "```text\nnot code\n```\n```python\nx = 1\n```\n```py\nx = 2\n```"
    assert extract_code(text).strip() == "x = 2"
    assert extract_code("def f(): pass") == "def f(): pass"
