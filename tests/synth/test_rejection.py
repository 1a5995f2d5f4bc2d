"""The rejection recipe (RFT/STaR): accepted/attempted per prompt in the ledger and in the output."""

from __future__ import annotations

import json
import re

import pytest

from curate.catalog.ingest import IngestOptions, ingest
from curate.catalog.ledger import read_rollouts, read_stats
from curate.synth.rejection import RejectionConfig, path_signature
from curate.synth.runner import SynthJob, synthesize_rejection
from tests.conftest import shared_file, write_jsonl
from tests.synth.fakes import ScriptedBackend
from tests.synth.server import FakeOpenAI

K = 4


@pytest.fixture
def sums(ws, tmp_path):
    rows = [{"question": f"What is {i} + {i + 1}?", "answer": f"{i} + {i + 1} = {2 * i + 1}\n#### {2 * i + 1}"}
            for i in range(1, 9)]
    return ingest(ws, str(write_jsonl(tmp_path / "sums.jsonl", rows)), IngestOptions(name="sums")).version


def solver(prompt, n, seed):
    """Question i gets i % 5 correct samples (two of them the same computation), the rest wrong."""
    a, b = map(int, re.findall(r"\d+", prompt)[:2])
    hinted = "Hint" in prompt
    good = n if hinted else int(a) % 5
    out = []
    for j in range(n):
        if j < good:
            text = f"{a} + {b} = {a + b}\n#### {a + b}" if j % 2 == 0 else f"{b} + {a} = {a + b}\n#### {a + b}"
            if j == 2:
                text = f"First, {a} + {b} = {a + b}. So\n#### {a + b}"  # the same equation as sample 0
        else:
            text = f"I think it is {a * b + 100}.\n#### {a * b + 100}"
        out.append((text, "stop"))
    return out


# Ledger keys: the generator's hash, then the verifier and the accept threshold (default math, 1.0).
def run(ws, source, backend, **config):
    settings = RejectionConfig(**{"k": K, **config})
    return synthesize_rejection(ws, SynthJob(recipe="rejection", model=backend.identity.model), source.ref, settings,
                                backend=backend)


def test_accepted_and_attempted_per_prompt_in_ledger_and_output(ws, sums):
    backend = ScriptedBackend(solver)
    result = run(ws, sums, backend)
    expected = {f"What is {i} + {i + 1}?": min(i % 5, K) for i in range(1, 9)}
    ids = dict(zip(sums.scan().collect()["prompt"].to_list(), sums.scan().collect()["id"].to_list()))
    stats = read_stats(ws, model_key="hash-scripted-model#math;pass>=1")
    by_id = {r["prompt_id"]: r for r in stats.to_dicts()}
    for question, accepted in expected.items():
        row = by_id[ids[question]]
        assert (row["attempts"], row["successes"]) == (K, accepted)
    rows = result.version.scan().collect().to_dicts()
    for row in rows:
        record = json.loads(row["meta"])["rejection"]
        assert record["accepted"] == expected[row["prompt"]] and record["attempted"] == K
        assert record["source"] == "sums@v1" and record["model_key"] == "hash-scripted-model#math;pass>=1"
        assert row["answer"] == str(int(re.findall(r"\d+", row["prompt"])[0]) * 2 + 1)
    # RFT dedup: correct samples compute a + b or b + a, so at most two distinct paths per prompt are kept
    kept = {q: min(a, 2) for q, a in expected.items()}
    assert len(rows) == sum(kept.values()) == result.stats["kept"]
    totals = result.stats
    assert (totals["attempted"], totals["accepted"], totals["prompts"]) == (8 * K, sum(expected.values()), 8)
    assert totals["prompts_with_accepted"] == sum(1 for a in expected.values() if a)
    with ws.catalog() as con:
        drops = dict(con.execute("SELECT reason, count(*) FROM drops WHERE name = ? GROUP BY reason",
                                 [result.version.name]).fetchall())
        no_accept = con.execute("SELECT detail FROM drops WHERE reason = 'no_accepted_sample'").fetchall()
    assert drops == {"no_accepted_sample": 1, "duplicate_path": sum(a - min(a, 2) for a in expected.values())}
    assert no_accept == [(f"0/{K} accepted ({K} scored)",)]
    assert len(read_rollouts(ws, model_key="hash-scripted-model#math;pass>=1")) == 8 * K


def test_a_rerun_generates_nothing_and_counts_nothing_twice(ws, sums):
    run(ws, sums, ScriptedBackend(solver))
    before = read_stats(ws).sort("prompt_id")
    backend = ScriptedBackend(solver)
    again = run(ws, sums, backend)
    assert backend.prompts_generated == 0 and again.stats["ledger_new_rollouts"] == 0
    assert read_stats(ws).sort("prompt_id").drop("last_seen").equals(before.drop("last_seen"))


def test_star_rationalization_keeps_hinted_solutions_under_the_original_prompt(ws, sums):
    result = run(ws, sums, ScriptedBackend(solver), rationalize=True, dedup="exact")
    rows = result.version.scan().collect().to_dicts()
    hinted = [r for r in rows if json.loads(r["meta"])["rejection"]["rationalized"]]
    assert {r["prompt"] for r in hinted} == {"What is 5 + 6?"}  # the one prompt with 0 accepted
    assert len(hinted) == 3 == result.stats["rationalized_kept"]  # samples 1 and 3 are the same text
    assert json.loads(hinted[0]["meta"])["synth"]["prompt_template"] == "rejection/hinted"
    stats = {r["prompt_id"]: r for r in read_stats(ws).to_dicts()}
    assert sum(r["successes"] for r in stats.values()) == result.stats["accepted"]  # hints are not in the ledger


def test_limit_samples_prompts_with_the_seed(ws, sums):
    first = run(ws, sums, ScriptedBackend(solver), limit=3)
    assert first.stats["prompts"] == 3
    prompts = {json.loads(m)["rejection"]["source_id"] for m in first.version.scan().collect()["meta"]}
    second = run(ws, sums, ScriptedBackend(solver), limit=3)
    assert {json.loads(m)["rejection"]["source_id"] for m in second.version.scan().collect()["meta"]} == prompts


def test_nothing_accepted_is_an_empty_version_that_records_the_attempts(ws, sums):
    from curate.catalog.summary import summarize

    backend = ScriptedBackend(lambda p, n, s: [("no idea", "length")] * n, model="clueless")
    result = run(ws, sums, backend)
    assert result.rows == 0 and result.drop_counts == {"no_accepted_sample": 8}
    assert result.stats["attempted"] == 8 * K and result.stats["accepted"] == 0
    summary = summarize(ws, result.version)  # what `curate show` reads works on the empty version
    assert summary.non_null["prompt"] == 0 and summary.drops == {"no_accepted_sample": 8}
    assert set(result.version.columns) == {"id", "prompt", "response", "answer", "tests", "domain", "meta"}
    stats = read_stats(ws, model_key="hash-clueless#math;pass>=1")
    assert stats.height == 8 and stats["attempts"].to_list() == [K] * 8 and stats["successes"].sum() == 0


def test_equation_signatures():
    assert path_signature("a <<3+4=7>> b <<7*2=14>>", "equations") == "eq:3+4=7|7*2=14"
    assert path_signature("so 3 + 4 = 7 and then", "equations") == path_signature("3+4=7 yes", "equations")
    assert path_signature("No equations Here", "equations") == "text:no equations here"
    assert path_signature("A  b", "exact") != path_signature("A b", "exact") == "exact:A b"


def test_gsm8k_prompts_with_the_math_reward_over_http(ws, shared, capsys):
    """Real GSM8K train prompts, the `math` reward, and a server that answers half the samples correctly."""
    from curate.cli.app import main

    source = shared_file(shared, "data/gsm8k/train.jsonl")
    lines = source.read_text().splitlines()[:30]
    answers = {json.loads(line)["question"]: json.loads(line)["answer"].split("####")[-1].strip() for line in lines}
    subset = ws.root.parent / "gsm8k-30.jsonl"
    subset.write_text("\n".join(lines) + "\n")
    ingest(ws, str(subset), IngestOptions(name="gsm8k"))

    def answer(body):
        question = body["prompt"]
        out = []
        for choice in range(body["n"]):
            right = (body["seed"] + choice) % 2 == 0
            value = answers[question].replace(",", "") if right else "-1"
            out.append(f"Let me think step by step. The answer is {value}.\n#### {value}")
        return out

    server = FakeOpenAI(responder=answer).start()
    try:
        with pytest.raises(SystemExit) as exited:
            main(["synth", "rejection", "gsm8k", "--model", "served-math",
                  "--backend", "openai", "--base-url", server.url, "--endpoint", "completions", "-G", "4",
                  "-n", "20", "--reward", "math", "--dedup", "exact", "--workspace", str(ws.root), "--quiet"])
        assert exited.value.code == 0, capsys.readouterr().err
    finally:
        server.stop()
    ref = capsys.readouterr().out.strip()
    assert ref == "gsm8k-rejection@v1"
    expected = {}
    for record in server.records:
        body = record.body
        expected[body["prompt"]] = sum((body["seed"] + c) % 2 == 0 for c in range(body["n"]))
    assert len(expected) == 20
    stats = read_stats(ws)
    assert stats.height == 20 and set(stats["attempts"].to_list()) == {4}
    prompts = ws_prompts(ws)
    assert {prompts[r["prompt_id"]]: r["successes"] for r in stats.to_dicts()} == expected
    from curate.catalog.versions import lineage_of, resolve

    (step,) = lineage_of(ws, resolve(ws, ref))
    assert step["params"]["totals"]["accepted"] == sum(expected.values()) == 40
    assert resolve(ws, ref).rows == 20  # a prompt's correct samples are the same text here: one row each
    assert step["params"]["totals"]["attempted"] == 80 and step["params"]["config"]["reward"] == "math"


def ws_prompts(ws) -> dict[str, str]:
    from curate.catalog.versions import resolve

    frame = resolve(ws, "gsm8k").scan().select("id", "prompt").collect()
    return dict(zip(frame["id"].to_list(), frame["prompt"].to_list()))


def test_a_non_commercial_source_warns_and_its_license_is_carried(ws, tmp_path):
    rows = [{"question": "What is 1 + 2?", "answer": "#### 3"}]
    source = ingest(ws, str(write_jsonl(tmp_path / "nc.jsonl", rows)),
                    IngestOptions(name="nc", license="CC BY-NC 4.0")).version
    messages: list[str] = []
    result = synthesize_rejection(ws, SynthJob(recipe="rejection", model="m"), source.ref, RejectionConfig(k=2),
                                  warn=messages.append, backend=ScriptedBackend(solver, model="m"))
    assert any("the source data is under CC BY-NC 4.0" in m for m in messages)
    assert result.version.license == "source: CC BY-NC 4.0; generator: unknown"
