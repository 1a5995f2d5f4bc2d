"""Numeric gold answers with units or separators are normalised at ingest; originals stay in meta.

Regression for issue 16 item 3 (ASDiv-style answers such as `9 (apples)` scored 0 against
their own numbers); the rows are written here in ASDiv's shape.
"""

from __future__ import annotations

import polars as pl
import pytest

from curate.catalog.gold import add_json_field, normalise_answers, normalise_gold, normalise_gold_expr

from ._helpers import ingest_rows, metas_of, rows_of

CASES = [  # (gold as written, normalised; None = left as it is)
    ("9 (apples)", "9"), ("5 cm", "5"), ("3/4", "3/4"), ("1,200", "1200"), ("$12.50", "12.50"),
    ("72", "72"), ("-3 degrees", "-3"), ("\u22123", "-3"), ("50%", "50"), ("12 square feet", "12"),
    ("60 km/h", "60"), ("0.5 (hours).", "0.5"), ("3 / 4 cup", "3/4"), ("7 m", "7"), ("45 °C", "45"),
    ("2 pi", None), ("3 x", None), ("25 (pens); 15 (pencils)", None), ("2:3", None),
    ("\\frac{\\sqrt{3}}{2}", None), ("1 200", None), ("4 (hours) 30 (minutes)", None), ("Paris", None),
    ("", None), ("1.5 million", None), ("2 dozen eggs", None), ("3 (thousand)", None), ("5 (x)", "5"),
]


@pytest.mark.parametrize(("gold", "number"), CASES)
def test_python_and_polars_normalise_alike(gold, number):
    assert normalise_gold(gold) == number
    column = pl.DataFrame({"a": [gold]}).select(normalise_gold_expr(pl.col("a")))["a"][0]
    assert column == (number if number is not None else gold)


def test_add_json_field_splices_only_where_there_is_a_value():
    frame = pl.DataFrame({"meta": ["{}", '{"a":1}', '{"a":1}'], "v": ["x", "y\"z", None]})
    out = frame.select(add_json_field(pl.col("meta"), "k", pl.col("v")))["meta"].to_list()
    assert out == ['{"k":"x"}', '{"a":1,"k":"y\\"z"}', '{"a":1}']


def test_asdiv_shaped_answers_are_normalised_and_the_originals_kept_in_meta(ws, tmp_path):
    rows = [{"question": "Seven apples and two more. How many apples?", "answer": "9 (apples)", "grade": 1},
            {"question": "A rope of 8 cm loses 3 cm. How long is it?", "answer": "5 cm", "grade": 2},
            {"question": "How much is 1,000 and 200?", "answer": "1,200", "grade": 3},
            {"question": "Two notes of $6.25?", "answer": "$12.50", "grade": 3},
            {"question": "What share is left?", "answer": "3/4", "grade": 4},
            {"question": "How many pens and pencils?", "answer": "25 (pens); 15 (pencils)", "grade": 4}]
    report = ingest_rows(ws, tmp_path, rows)
    stored = rows_of(report.version)
    assert [r["answer"] for r in stored] == ["9", "5", "1200", "12.50", "3/4", "25 (pens); 15 (pencils)"]
    metas = metas_of(report.version)
    assert [m.get("answer_original") for m in metas] == ["9 (apples)", "5 cm", "1,200", "$12.50", None, None]
    assert [m["grade"] for m in metas] == [1, 2, 3, 3, 4, 4]
    assert report.answers_normalised == 4


def test_a_meta_key_that_is_taken_is_not_overwritten():
    frame = pl.DataFrame({"answer": ["9 (apples)"], "meta": ['{"answer_original":"kept"}']})
    out, count = normalise_answers(frame)
    assert count == 1 and out["answer"][0] == "9"
    assert out["meta"][0] == '{"answer_original":"kept","answer_original_":"9 (apples)"}'


def test_gsm8k_answers_are_untouched(ws, tmp_path):
    rows = [{"question": "q", "answer": "2 + 2 = 4\n#### 1,004"}]
    report = ingest_rows(ws, tmp_path, rows)
    assert rows_of(report.version)[0]["answer"] == "1004" and report.answers_normalised == 0
    assert metas_of(report.version) == [{}]


def test_humaneval_shape_keeps_the_entry_point_in_meta(ws, tmp_path):
    row = {"task_id": "Test/0", "prompt": "def inc(x: int) -> int:\n    \"\"\"x + 1\"\"\"\n",
           "canonical_solution": "    return x + 1\n", "test": "def check(candidate):\n    assert candidate(1) == 2\n",
           "entry_point": "inc"}
    report = ingest_rows(ws, tmp_path, [row])
    assert report.shape == "humaneval"
    stored = rows_of(report.version)[0]
    assert (stored["prompt"], stored["response"], stored["tests"]) == (row["prompt"], row["canonical_solution"],
                                                                       row["test"])
    assert metas_of(report.version) == [{"task_id": "Test/0", "entry_point": "inc"}]


def test_a_grpo_export_of_humaneval_rows_carries_the_entry_point_for_the_code_reward(ws, tmp_path):
    from curate.catalog.export import export_version
    from curate.train.code_reward import CodeReward

    row = {"task_id": "Test/0", "prompt": "def inc(x: int) -> int:\n    \"\"\"x + 1\"\"\"\n",
           "canonical_solution": "    return x + 1\n", "test": "def check(candidate):\n    assert candidate(1) == 2\n",
           "entry_point": "inc"}
    report = ingest_rows(ws, tmp_path, [row])
    export_version(report.version, tmp_path / "grpo.parquet", columns="prompt")
    exported = pl.read_parquet(tmp_path / "grpo.parquet").to_dicts()[0]
    assert exported["entry_point"] == "inc"
    columns = {k: [v] for k, v in exported.items() if k != "prompt"}  # what TRL hands a reward function
    assert CodeReward()([exported["prompt"]], ["    return x + 1\n"], **columns) == [1.0]
    assert CodeReward()([exported["prompt"]], ["    return 'garbage'\n"], **columns) == [0.0]
    plain = ingest_rows(ws, tmp_path, [{"prompt": "p", "response": "r"}], name="plain", filename="plain.jsonl")
    export_version(plain.version, tmp_path / "plain.parquet", columns="prompt")
    assert "entry_point" not in pl.read_parquet(tmp_path / "plain.parquet").columns  # only where rows have one
