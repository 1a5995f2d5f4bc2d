"""Rows two versions share, by id and by normalised prompt (the compare leakage check)."""

from __future__ import annotations

from curate.catalog.overlap import shared_rows
from tests.catalog._helpers import ingest_rows


def test_counts_rows_shared_by_id_and_by_normalised_prompt(ws, tmp_path):
    pool = ingest_rows(ws, tmp_path, [{"prompt": f"What is {i} + {i}?", "response": str(2 * i)} for i in range(10)],
                       name="pool").version
    held = ingest_rows(ws, tmp_path, [
        {"prompt": "What is 1 + 1?", "response": "2"},  # the same row: same id and prompt
        {"prompt": "  what IS 2 +\n 2?  ", "response": "four"},  # another response, same prompt once normalised
        {"prompt": "What is 2 + 3?", "response": "5"},  # new
        {"prompt": "What is 11 + 11?", "response": "22"},  # new
    ], name="held").version
    overlap = shared_rows(held, pool)
    assert (overlap.by_id, overlap.by_prompt, overlap.rows) == (1, 2, 2)
    assert sorted(overlap.examples) == ["what is 1 + 1?", "what is 2 + 2?"]
    assert shared_rows(pool, held).rows == 2  # symmetric here: each of those pool rows has its twin
    fresh = ingest_rows(ws, tmp_path, [{"prompt": "What is 5 + 6?", "response": "11"}], name="fresh").version
    assert not shared_rows(fresh, pool) and shared_rows(fresh, pool).rows == 0


def test_message_prompts_compare_by_role_and_content(ws, tmp_path):
    def chat(question: str, answer: str) -> dict:
        return {"messages": [{"role": "user", "content": question}, {"role": "assistant", "content": answer}]}

    pool = ingest_rows(ws, tmp_path, [chat("Name a colour.", "Red"), chat("Name a fruit.", "Pear")],
                       name="pool").version
    held = ingest_rows(ws, tmp_path, [chat("name a  COLOUR.", "Blue"), chat("Name a tree.", "Oak")],
                       name="held").version
    assert pool.prompt_type == "messages"
    overlap = shared_rows(held, pool)
    assert (overlap.by_id, overlap.by_prompt, overlap.rows) == (0, 1, 1)
    assert overlap.examples == ["user: name a colour."]
