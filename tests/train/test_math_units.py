"""The math reward on gold answers written with units, words, separators or as fractions.

Regression for issue 16 item 3: ASDiv-style references such as `9 (apples)` scored 0.0
even against their own number. Both paths are checked: with math-verify installed and
with it hidden (the fallback).
"""

from __future__ import annotations

import sys

import pytest

from curate.train import answers
from curate.train.rewards import math_reward

# (reference as a dataset writes it, a right completion, a wrong completion)
UNITS = [
    ("9 (apples)", "She has 7 + 2 = 9 apples.\n#### 9", "#### 8"),
    ("5 cm", "The rope is \\boxed{5} cm long.", "The rope is \\boxed{6} cm long."),
    ("3/4", "The answer is 0.75", "The answer is 0.7"),
    ("3/4", "\\boxed{\\frac{3}{4}}", "\\boxed{\\frac{4}{3}}"),
    ("1,200", "In total 1200 people.", "In total 1,300 people."),
    ("$12.50", "The answer is $12.5.", "The answer is $125."),
    ("0.5 (hours)", "It takes 1/2 hour, so #### 0.5", "#### 5"),
    ("-3 degrees", "The answer is -3 degrees", "The answer is 3 degrees"),
    ("9", "The answer is 9 (apples).", "The answer is 19 (apples)."),
]


@pytest.fixture(params=["math-verify", "fallback"])
def verifier(request, monkeypatch):
    if request.param == "fallback":
        monkeypatch.setitem(sys.modules, "math_verify", None)  # `import math_verify` now raises ImportError
    else:
        pytest.importorskip("math_verify")
    return request.param


@pytest.mark.parametrize(("reference", "right", "wrong"), UNITS)
def test_units_in_the_answer_score_the_number(verifier, reference, right, wrong):
    assert math_reward(["q", "q"], [right, wrong], answer=[reference, reference]) == [1.0, 0.0]


def test_symbolic_references_use_math_verify_or_the_string_fallback(verifier):
    reference = "\\frac{\\sqrt{3}}{2}"
    assert answers.reference_number(reference) is None
    assert math_reward(["q"] * 2, ["\\boxed{\\frac{\\sqrt{3}}{2}}", "\\boxed{\\frac{\\sqrt{2}}{2}}"],
                       answer=[reference] * 2) == [1.0, 0.0]
    assert answers.reference_number("2 pi") is None  # a symbol, not a unit


def test_the_fallback_really_runs_without_math_verify(monkeypatch):
    monkeypatch.setitem(sys.modules, "math_verify", None)
    with pytest.raises(ImportError):
        import math_verify  # noqa: F401
    assert answers.symbolic_equal("x^2+1", "so \\boxed{x^2 + 1}")
    assert not answers.symbolic_equal("x^2+1", "so \\boxed{x^2 + 2}")
