"""`decontaminate`: datatrove's n-gram decontamination, checked against a plain-Python reference and
on planted, lightly re-worded eval questions."""

from __future__ import annotations

import json
import random
import re
import string
import unicodedata

import polars as pl
import pytest

from curate.catalog.ingest import IngestOptions, ingest
from curate.errors import BadInput, BadUsage, NotFound
from curate.selectors.sft.decontaminate import ngrams_expr, words_expr
from curate.selectors.pipeline import run_select
from tests.conftest import shared_file, write_jsonl

# datatrove's TextNormConfig defaults, written out as plain Python (the reference the polars code must match)
MARKS = set(string.punctuation + "—”％１〈、━【「」，】；“《„’∶´．（–？！：～«〉》）。…►»") | \
    {chr(c) for a, b in ((0, 9), (11, 13), (13, 32), (127, 160)) for c in range(a, b)}


def reference_words(text: str) -> list[str]:
    text = re.sub(r"\s+", " ", text.lower().strip())
    text = "".join(c for c in text if c not in MARKS)
    text = "".join(c for c in unicodedata.normalize("NFD", text) if unicodedata.category(c) != "Mn")
    return re.sub(r"\d+", "0", text).strip().split()


def test_word_simplification_matches_the_reference():
    rng = random.Random(0)
    alphabet = string.ascii_letters + string.digits + string.punctuation + " \t\n" + "éàüñçÅ“”—…％１２，。\x07\x85"
    texts = ["Héllo,  World!\tIt's 2024 — a “test”: 3.14 ％ end.", "", "   ", "naïve café 12,345.67 x"]
    texts += ["".join(rng.choice(alphabet) for _ in range(rng.randint(0, 80))) for _ in range(300)]
    got = pl.DataFrame({"t": texts}).select(words_expr(pl.col("t"))).to_series().to_list()
    assert got == [reference_words(t) for t in texts]
    assert got[0] == ["hello", "world", "its", "0", "a", "test", "0", "end"]


def test_ngrams_are_runs_of_n_words():
    frame = pl.DataFrame({"w": [["a", "b", "c", "d"], ["a", "b"], []]})
    assert frame.select(ngrams_expr(pl.col("w"), 3)).to_series().to_list() == [["a b c", "b c d"], [], []]


def reword(text: str, rng: random.Random) -> str:
    """A light re-wording: letter case, punctuation and whitespace only."""
    text = rng.choice([str.lower, str.upper, str.title, str.swapcase])(text)
    text = text.replace(". ", rng.choice(["! ", "; ", ".  ", " . "])).replace(",", rng.choice(["", " ,", ";"]))
    words = text.split(" ")
    for _ in range(3):
        i = rng.randrange(len(words))
        words[i] = words[i] + rng.choice([",", "\n", "\t", "  ", " -"])
    return " ".join(words).rstrip("?.!") + rng.choice(["??", "", " ?", "!"])


def sentences(count: int, rng: random.Random, vocabulary: list[str]) -> list[str]:
    return [" ".join(rng.choice(vocabulary) for _ in range(rng.randint(16, 40))).capitalize() + "?"
            for _ in range(count)]


def _check_planted(ws, tmp_path, eval_rows: list[dict], clean_rows: list[dict], rng: random.Random) -> None:
    from curate.catalog.versions import resolve

    ingest(ws, str(write_jsonl(tmp_path / "eval.jsonl", eval_rows)), IngestOptions(name="evalset"))
    planted = rng.sample(range(len(eval_rows)), 20)
    rows = [dict(r) for r in clean_rows]
    for k, i in enumerate(planted):
        rows.insert(rng.randrange(len(rows)), {"question": reword(eval_rows[i]["question"], rng),
                                               "answer": f"an answer of our own, number {k}", "planted": i})
    ingest(ws, str(write_jsonl(tmp_path / "pool.jsonl", rows)), IngestOptions(name="pool"))
    report = run_select(ws, "pool", "decontaminate", params={"against": "evalset"})
    with ws.catalog() as con:
        drops = con.execute("SELECT id, reason, detail FROM drops WHERE name = 'pool-decontaminate'").fetchall()
    pool = report.source.scan().select("id", pl.col("meta").str.json_path_match("$.planted").alias("p")).collect()
    planted_at = {i: int(p) for i, p in pool.iter_rows() if p is not None}
    dropped = {i for i, _, _ in drops}
    assert set(planted_at) <= dropped, "every planted eval question is dropped"
    false_positives = len(dropped - set(planted_at))
    assert false_positives <= 0.005 * len(clean_rows), f"{false_positives} clean rows flagged"
    assert report.version.rows == len(rows) - len(dropped)
    # the detail names the eval set and the very eval row that was planted
    evals = resolve(ws, "evalset").scan().select("id", "prompt").collect()
    eval_id_of = dict(zip(evals["prompt"].to_list(), evals["id"].to_list()))
    for row_id, reason, detail in drops:
        assert reason == "contaminated" and "evalset@v1 row " in detail
        if row_id in planted_at:
            assert eval_id_of[eval_rows[planted_at[row_id]]["question"]] in detail


def test_planted_eval_questions_are_dropped_and_a_clean_pool_is_not(ws, tmp_path):
    rng = random.Random(7)
    vocabulary = ["".join(rng.choice(string.ascii_lowercase) for _ in range(rng.randint(2, 9))) for _ in range(3000)]
    eval_rows = [{"question": q, "answer": "42"} for q in sentences(100, rng, vocabulary)]
    clean = [{"question": q, "answer": a} for q, a in zip(sentences(2000, rng, vocabulary),
                                                          sentences(2000, rng, vocabulary))]
    _check_planted(ws, tmp_path, eval_rows, clean, rng)


def test_on_gsm8k(ws, tmp_path, shared):
    """200 GSM8K questions as the eval set, the other 7,273 as the pool plus 20 re-worded eval questions."""
    rows = [json.loads(line) for line in shared_file(shared, "data/gsm8k/train.jsonl").read_text().splitlines()]
    _check_planted(ws, tmp_path, rows[:200], rows[200:], random.Random(3))


def test_user_errors(ws, tmp_path):
    ingest(ws, str(write_jsonl(tmp_path / "p.jsonl", [{"question": "one two three", "answer": "x"}])),
           IngestOptions(name="p"))
    ingest(ws, str(write_jsonl(tmp_path / "e.jsonl", [{"question": "too short to match", "answer": "y"}])),
           IngestOptions(name="e"))
    with pytest.raises(BadUsage, match="needs the eval sets"):
        run_select(ws, "p", "decontaminate")
    with pytest.raises(BadUsage, match="is the pool itself"):
        run_select(ws, "p", "decontaminate", params={"against": "p"})
    with pytest.raises(NotFound, match="no dataset named 'nope'"):
        run_select(ws, "p", "decontaminate", params={"against": "e,nope"})
    with pytest.raises(BadInput, match="shorter than 13 words"):
        run_select(ws, "p", "decontaminate", params={"against": "e"})
    assert run_select(ws, "p", "decontaminate", params={"against": "e", "n": "2"}).version.rows == 1
