"""The demo's synthetic pool: arithmetic word problems with the faults of a scraped SFT pool.

Problems are in GSM8K's layout (question, step-by-step answer ending in `#### N`) over five
domains and three difficulty levels (one, two or three operations on numbers up to 20, 100
and 1,000). Planted in the rows, each marked in `planted` so the demo can count what every
selection kept (docs/decisions.md, "The demo's pool", says why these kinds and rates):

- `wrong_answer`: a fluent solution with a wrong result: one step's result is off by a
  small slip, carried through the later steps to the final line; or right steps and a
  wrong final line (half each);
- `garbled`: the words of the steps shuffled and a random final number;
- `truncated`: the response cut off after 20-60% of its characters (no final line);
- `off_task`: another problem's solution (a misaligned pair), or text from no math
  problem at all: a refusal, boilerplate, an unrelated recipe (half each);
- exact duplicates (the whole row again) and near-duplicates (`near_duplicate`: the question
  with its case, spacing or punctuation changed, the same answer and fault).
"""

from __future__ import annotations

import random

DOMAINS = {
    "shopping": ("apples", "buys", "sells"),
    "cooking": ("cookies", "bakes", "eats"),
    "garden": ("flowers", "plants", "picks"),
    "sports": ("points", "scores", "loses"),
    "library": ("books", "borrows", "returns"),
}
NAMES = ("Ava", "Ben", "Chen", "Dara", "Eli", "Fatima", "Gus", "Hana", "Ivan", "Jade", "Kofi", "Lena")
LIMITS = {1: 20, 2: 100, 3: 1000}
# Share of the unique problems that get each fault; 30% in all (web-scale SFT pools carry 20-40%).
FAULTS = {"wrong_answer": 0.10, "garbled": 0.05, "truncated": 0.07, "off_task": 0.08}
UNRELATED = (
    "I'm sorry, but I can't help with that request.",
    "Click here to subscribe to our newsletter and get {n}% off your first order!",
    "Preheat the oven to {n} degrees. Mix the flour, sugar and butter until smooth.",
    "This page was last edited {n} days ago. All rights reserved.",
    "Great question! There are many ways to think about this, and it really depends on the situation.",
    "Top {n} travel destinations for the summer: beaches, mountains and historic cities.",
)


def _problem(rng: random.Random, domain: str, difficulty: int) -> tuple[str, list[tuple[int, str, int]]]:
    """The question and its operations (left operand, operator, right operand), in order."""
    thing, gain, loss = DOMAINS[domain]
    name = rng.choice(NAMES)
    limit = LIMITS[difficulty]
    value = rng.randint(2, limit)
    sentences = [f"{name} has {value} {thing}."]
    ops: list[tuple[int, str, int]] = []
    for _ in range(difficulty):
        op = rng.choice(("add", "sub", "mul") if value < limit else ("add", "sub"))
        if op == "add":
            b = rng.randint(1, limit)
            sentences.append(f"Then {name} {gain} {b} more {thing}.")
            ops.append((value, "+", b))
        elif op == "sub" and value > 1:
            b = rng.randint(1, value - 1)
            sentences.append(f"Then {name} {loss} {b} {thing}.")
            ops.append((value, "-", b))
        else:
            b = rng.randint(2, 4)
            sentences.append(f"Then the number of {thing} becomes {b} times as many.")
            ops.append((value, "*", b))
        value = _apply(*ops[-1])
    sentences.append(f"How many {thing} does {name} have now?")
    return " ".join(sentences), ops


def _apply(a: int, op: str, b: int) -> int:
    return a + b if op == "+" else a - b if op == "-" else a * b


def _solution(ops: list[tuple[int, str, int]], slip: tuple[int, int] | None = None) -> tuple[str, int]:
    """The step lines and final line; `slip` = (step, delta) adds delta to that step's result
    and carries the wrong value on, as a careless solver would."""
    lines, value = [], ops[0][0]
    for step, (_, op, b) in enumerate(ops):
        result = _apply(value, op, b) + (slip[1] if slip and slip[0] == step else 0)
        lines.append(f"{value} {op} {b} = {result}")
        value = result
    return "\n".join(lines) + f"\n#### {value}", value


def _wrong_answer(rng: random.Random, ops: list[tuple[int, str, int]], value: int) -> str:
    if rng.random() < 0.5:
        delta = rng.choice([-1, 1]) * rng.randint(1, 3) * rng.choice([1, 1, 10])
        return _solution(ops, (rng.randrange(len(ops)), delta))[0]
    wrong = value + rng.choice([-1, 1]) * rng.randint(1, max(2, value // 3))
    return _solution(ops)[0].rsplit("\n", 1)[0] + f"\n#### {wrong}"


def _garbled(rng: random.Random, response: str) -> str:
    """The words of the steps in a new order (never the original one) and a random final number."""
    original = response.rsplit("\n", 1)[0].split()
    words = list(original)
    rng.shuffle(words)
    if words == original:
        words = words[1:] + words[:1]
    return " ".join(words) + f"\n#### {rng.randint(0, 999)}"


def _truncated(rng: random.Random, response: str) -> str:
    return response[: max(1, int(len(response) * rng.uniform(0.2, 0.6)))].rstrip() or response[:1]


def _unrelated(rng: random.Random) -> str:
    return rng.choice(UNRELATED).format(n=rng.randint(2, 99))


def _near_copy(rng: random.Random, question: str) -> str:
    """The same question after a surface edit: letter case, whitespace or punctuation."""
    edit = rng.choice(("lower", "spaces", "punct"))
    if edit == "lower":
        return question.lower()
    if edit == "spaces":
        return question.replace(". ", ".  ", 1).replace(" ", "  ", 1) + " "
    return question.replace(".", "", 1).replace("?", " ?")


def _fault(rng: random.Random, faults: dict[str, float]) -> str | None:
    draw, edge = rng.random(), 0.0
    for kind, rate in faults.items():
        edge += rate
        if draw < edge:
            return kind
    return None


def make_pool(rows: int, seed: int = 0, duplicate_rate: float = 0.05, near_duplicate_rate: float = 0.03,
              faults: dict[str, float] | None = None, difficulties: tuple[int, ...] = (1, 2, 3)) -> list[dict]:
    """`rows` problems in GSM8K layout with domain, difficulty, the true answer and what was
    planted: `planted` is the fault (`faults`: kind -> share of the unique problems, default
    `FAULTS`) or None, and `near_duplicate` marks the edited copies (which keep their
    original's fault)."""
    faults = FAULTS if faults is None else faults
    unknown = set(faults) - set(FAULTS)
    if unknown or sum(faults.values()) > 1:
        raise ValueError(f"faults are {', '.join(FAULTS)} with rates summing to at most 1, got {faults}")
    rng = random.Random(seed)
    pool: list[dict] = []
    unique = round(rows / (1 + duplicate_rate + near_duplicate_rate))
    for _ in range(unique):
        domain = rng.choice(sorted(DOMAINS))
        difficulty = rng.choice(difficulties)
        question, ops = _problem(rng, domain, difficulty)
        response, value = _solution(ops)
        pool.append({"question": question, "answer": response, "domain": domain, "difficulty": difficulty,
                     "planted": _fault(rng, faults), "near_duplicate": False, "true_answer": str(value)})
    for row in pool:  # a second pass, so an off-task row can take another problem's clean solution
        kind = row["planted"]
        if kind == "wrong_answer":
            row["answer"] = _wrong_answer(rng, _parse_ops(row["answer"]), int(row["true_answer"]))
        elif kind == "garbled":
            row["answer"] = _garbled(rng, row["answer"])
        elif kind == "truncated":
            row["answer"] = _truncated(rng, row["answer"])
        elif kind == "off_task":
            other = rng.choice(pool)
            swapped = other is not row and other["planted"] is None and other["true_answer"] != row["true_answer"]
            row["answer"] = other["answer"] if swapped and rng.random() < 0.5 else _unrelated(rng)
    near = round(unique * near_duplicate_rate)
    for row in rng.sample(pool, near):  # a copy whose question differs only in case, spacing or punctuation
        copy = dict(row, question=_near_copy(rng, row["question"]), near_duplicate=True)
        pool.insert(rng.randrange(len(pool) + 1), copy)
    for row in rng.sample(pool, rows - unique - near):
        pool.insert(rng.randrange(len(pool) + 1), dict(row))  # an exact copy, meta included
    return pool


def _parse_ops(response: str) -> list[tuple[int, str, int]]:
    """The operations of a clean solution, read back from its step lines."""
    ops = []
    for line in response.split("\n")[:-1]:
        left, op, right, _, _ = line.split(" ")
        ops.append((int(left), op, int(right)))
    return ops


def fresh_problems(count: int, seed: int, exclude: set[str], draw: int,
                   difficulties: tuple[int, ...] = (1, 2, 3)) -> list[dict]:
    """Up to `count` clean problems (nothing planted) of `draw` made with `seed`, of the given
    difficulties, none of whose questions is in `exclude`: held-out problems and fresh prompts."""
    rows = make_pool(draw, seed=seed, duplicate_rate=0.0, near_duplicate_rate=0.0, faults={})
    return [r for r in rows if r["difficulty"] in difficulties and r["question"] not in exclude][:count]
