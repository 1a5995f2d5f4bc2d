"""Final answers of math completions: extraction, numeric parsing and comparison.

GSM8K-style grading (Cobbe et al. 2021) compares the final number of a solution with
the reference. Completions write that number in many ways, so extraction looks, in
order, for the last `\\boxed{...}` (balanced braces, MATH/DeepSeek style), the text
after the last `####` (GSM8K), a closing "the answer is X" / "Answer: X", and else the
last number in the text. A number may carry thousands separators (`1,234`), a
currency sign, a percent sign, trailing units or words (`18 dollars`, `9 (apples)`), a
sign, a decimal part, or be a fraction (`3/4`, `\\frac{3}{4}`, `\\dfrac{3}{4}`). Two numbers
are equal when they agree to a relative 1e-6. A reference counts as a number by the rule
of `curate.catalog.gold` (the one ingest uses to normalise gold answers), so `9 (apples)`
and `9` grade alike.

Answers that are not numbers (`\\frac{\\sqrt{3}}{2}`, `x^2+1`) are compared
symbolically with math-verify (Hugging Face) when it is installed, and as normalised
strings otherwise.
"""

from __future__ import annotations

import math
import re
import threading
from fractions import Fraction

from curate.catalog.gold import normalise_gold

NUMBER = r"-?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?|-?\.\d+"
NUMBER_RE = re.compile(rf"(?<![\w.])(?:{NUMBER})(?:\s*/\s*(?:{NUMBER}))?")
FRAC_RE = re.compile(r"\\[dt]?frac\s*\{\s*(-?[\d.,]+)\s*\}\s*\{\s*(-?[\d.,]+)\s*\}")
ANSWER_IS_RE = re.compile(r"(?:answer\s*(?:is|:|=)|final answer\s*(?:is|:)?)\s*(.+)", re.IGNORECASE)
LATEX_NOISE = re.compile(r"\\(?:left|right|!|,|;|:|quad|qquad|displaystyle|text\{[^}]*\}|mathrm\{[^}]*\})|\$")
TOLERANCE = 1e-6


def last_boxed(text: str) -> str | None:
    """Content of the last `\\boxed{...}` or `\\fbox{...}`, braces balanced; None if there is none."""
    start = max(text.rfind("\\boxed"), text.rfind("\\fbox"))
    if start < 0:
        return None
    brace = text.find("{", start)
    if brace < 0:
        rest = text[start + len("\\boxed"):].strip()
        return rest.split()[0] if rest else None
    depth = 0
    for i in range(brace, len(text)):
        if text[i] == "{":
            depth += 1
        elif text[i] == "}":
            depth -= 1
            if depth == 0:
                return text[brace + 1:i]
    return None


def final_answer_text(text: str) -> str | None:
    """The part of a completion that states its final answer (see the module docstring)."""
    boxed = last_boxed(text)
    if boxed is not None:
        return boxed
    if "####" in text:
        tail = text.rsplit("####", 1)[1].strip()
        return tail.splitlines()[0] if tail else None
    matches = list(ANSWER_IS_RE.finditer(text))
    if matches:
        return matches[-1].group(1).strip().splitlines()[0] if matches[-1].group(1).strip() else None
    return None


def _to_fraction(token: str) -> Fraction | None:
    token = token.replace(",", "").replace(" ", "")
    try:
        if "/" in token:
            top, bottom = token.split("/", 1)
            denominator = Fraction(bottom)
            return None if denominator == 0 else Fraction(top) / denominator
        return Fraction(token)
    except (ValueError, ZeroDivisionError):
        return None


def parse_number(text: str | None, last: bool = False) -> Fraction | None:
    """The first (or last) number in `text`, as an exact fraction; None if there is none."""
    if text is None:
        return None
    text = FRAC_RE.sub(lambda m: f"{m.group(1)}/{m.group(2)}", text)
    text = LATEX_NOISE.sub("", text).replace("−", "-")
    matches = NUMBER_RE.findall(text)
    if not matches:
        return None
    return _to_fraction(matches[-1] if last else matches[0])


def extract_number(completion: str) -> Fraction | None:
    """The completion's final numeric answer: from its stated answer, else its last number."""
    stated = final_answer_text(completion)
    if stated is not None:
        return parse_number(stated)
    return parse_number(completion, last=True)


def numbers_equal(a: Fraction | float, b: Fraction | float, tolerance: float = TOLERANCE) -> bool:
    a, b = float(a), float(b)
    if math.isnan(a) or math.isnan(b):
        return False
    return abs(a - b) <= tolerance * max(1.0, abs(b))


def reference_number(answer: str) -> Fraction | None:
    """The reference as a number when it is one number, decorated or not (`1,200`, `$12.50`, `9 (apples)`,
    `5 cm`, `\\frac{3}{4}`; `curate.catalog.gold` says what counts); None otherwise (`x^2`, `2 pi`)."""
    text = answer.strip()
    if "####" in text:
        text = text.rsplit("####", 1)[1].strip()
    boxed = last_boxed(text)
    text = boxed if boxed is not None else text
    cleaned = LATEX_NOISE.sub("", FRAC_RE.sub(lambda m: f"{m.group(1)}/{m.group(2)}", text))
    number = normalise_gold(cleaned)  # one number, maybe with a currency sign, %, or a unit
    return None if number is None else _to_fraction(number)


def _normalise(text: str) -> str:
    return re.sub(r"\s+", "", LATEX_NOISE.sub("", text)).rstrip(".").lower()


MATH_VERIFY = "math-verify"
FALLBACK_GRADER = "string-match"  # math-verify absent: normalised final-answer strings compared
SYMBOLIC_TAIL = 4000  # characters of a completion math-verify reads off the main thread (it has no timeout there)


def math_grader() -> str:
    """The grader of non-numeric references: `math-verify`, or `string-match` when it is not installed."""
    try:
        import math_verify  # noqa: F401
    except ImportError:
        return FALLBACK_GRADER
    return MATH_VERIFY


def symbolic_equal(reference: str, completion: str) -> bool:
    """math-verify's verdict when installed, else equality of normalised final-answer strings.

    math-verify's timeouts use `signal.alarm`, which works only in the main thread: elsewhere (a
    reward called from worker threads) it runs without them, on the completion's last
    `SYMBOLIC_TAIL` characters so that the work stays bounded."""
    try:
        from math_verify import parse, verify
    except ImportError:
        stated = final_answer_text(completion)
        return stated is not None and _normalise(stated) == _normalise(reference)
    main = threading.current_thread() is threading.main_thread()
    limits = {} if main else {"parsing_timeout": None}
    gold = parse(reference if "$" in reference or "\\boxed" in reference else f"${reference}$", **limits)
    stated = last_boxed(completion)
    predicted = parse(f"$\\boxed{{{stated}}}$" if stated is not None else
                      (completion if main else completion[-SYMBOLIC_TAIL:]), **limits)
    return bool(gold) and bool(predicted) and bool(verify(gold, predicted, **({} if main else
                                                                              {"timeout_seconds": None})))


def is_correct(reference: str, completion: str) -> bool:
    """Does `completion` reach the reference answer? Numeric when the reference is a number."""
    number = reference_number(reference)
    if number is not None:
        predicted = extract_number(completion)
        return predicted is not None and numbers_equal(predicted, number)
    return symbolic_equal(reference, completion)
