"""Gap filling: hand-computed gap plans, targeted generation, and the source's own selectors."""

from __future__ import annotations

import json

import pytest

from curate.catalog.ingest import IngestOptions, ingest
from curate.catalog.ledger import Rollout, record_rollouts
from curate.catalog.versions import lineage_of
from curate.errors import BadInput, BadUsage
from curate.synth.gap_fill import GapFillConfig, parse_candidate, request_prompt
from curate.synth.gaps import Group, allocate, plan
from curate.synth.runner import SynthJob, synthesize_gap_fill
from curate.synth.similarity import rouge_l
from tests.conftest import write_jsonl
from tests.synth.fakes import ScriptedBackend
from tests.synth.server import words


@pytest.fixture
def pool(ws, tmp_path):
    """30 rows of domain 'cooking', 6 of 'travel'."""
    rows = [{"prompt": f"How do I cook {words(f'c{i}', 4)}?", "response": f"Slowly, {words(f'r{i}', 6)}.",
             "domain": "cooking"} for i in range(30)]
    rows += [{"prompt": f"Where should I go for {words(f't{i}', 4)}?", "response": f"Try {words(f's{i}', 5)}.",
              "domain": "travel"} for i in range(6)]
    return ingest(ws, str(write_jsonl(tmp_path / "pool.jsonl", rows)), IngestOptions(name="pool")).version


def writer(prompt, n, seed):
    if prompt.startswith(("Below are", "Write one new")):
        return [(f"Plan {words(f'{seed}-{j}', 7)} for a family?", "stop") for j in range(n)]
    return [(f"Answer: {words(f'{seed}-{j}a', 8)}.", "stop") for j in range(n)]


def test_domain_plan_by_hand(ws, pool):
    gaps = plan(ws, pool, "domain", 12)
    assert [(g.name, g.rows, g.target_share, g.deficit, g.allocated) for g in gaps.groups] == \
        [("cooking", 30, 0.5, 0.0, 0), ("travel", 6, 0.5, 18.0, 12)]
    # shares 1:1:2 over cooking, travel and a new domain: deficits 0, 12 - 6 = 6, 24 - 0 = 24;
    # quotas 12 * 6/30 = 2.4 and 9.6: floors 2 and 9, the last row to the larger remainder (0.6)
    gaps = plan(ws, pool, "domain", 12, {"cooking": 1, "travel": 1, "gardening": 2})
    assert {g.name: g.allocated for g in gaps.groups} == {"cooking": 0, "gardening": 10, "travel": 2}


def test_difficulty_plan_from_the_ledger(ws, pool):
    ids = pool.scan().select("id").collect()["id"].to_list()
    rates = [0.0] * 5 + [0.5] + [1.0] * 2  # 8 prompts seen: 5 too hard, 1 learnable, 2 solved
    rollouts = [Rollout(prompt_id=ids[i], model_key="policy", completion="x", length=1, run="r", step=0,
                        sample_idx=j, reward=1.0 if j < rate * 2 else 0.0)
                for i, rate in enumerate(rates) for j in range(2)]
    record_rollouts(ws, rollouts)
    gaps = plan(ws, pool, "difficulty", 4)
    # 8 rows + 4 new, equal shares: target 4 each; deficits 0, 3, 2; quotas 2.4 and 1.6 -> 2 + 0 and 1 + 1
    assert [(g.name, g.rows, g.deficit, g.allocated) for g in gaps.groups] == \
        [("0-0.1", 5, 0.0, 0), ("0.1-0.9", 1, 3.0, 2), ("0.9-1", 2, 2.0, 2)]
    assert gaps.model_key == "policy" and gaps.unprofiled == pool.rows - 8
    result, _ = synthesize_gap_fill(ws, SynthJob(recipe="gap-fill", model="m"), "pool",
                                    GapFillConfig(n=4, by="difficulty", select="none", responses=False, demos=2),
                                    backend=ScriptedBackend(writer, model="m"))
    metas = [json.loads(m)["gap_fill"] for m in result.version.scan().collect()["meta"]]
    assert sorted(m["group"] for m in metas) == ["0.1-0.9", "0.1-0.9", "0.9-1", "0.9-1"]
    for meta in metas:  # the examples shown come from the band being filled
        shown = [ids.index(i) for i in meta["demo_ids"]]
        assert all(rates[i] == (0.5 if meta["group"] == "0.1-0.9" else 1.0) for i in shown)
        assert len(shown) == (1 if meta["group"] == "0.1-0.9" else 2)  # the learnable band has one example


def test_allocation_sums_to_n():
    groups = [Group(f"g{i}", rows, 0.25) for i, rows in enumerate([0, 3, 7, 40])]
    allocate(groups, 50, 17)
    assert sum(g.allocated for g in groups) == 17 and groups[3].allocated == 0


def test_gap_fill_generates_for_the_thin_domain_and_reuses_the_sources_selectors(ws, pool):
    from curate.selectors.pipeline import run_select

    selected = run_select(ws, "pool", "length", budget="50%", out="pool-long").version  # a selection of the pool
    backend = ScriptedBackend(writer)
    result, report = synthesize_gap_fill(ws, SynthJob(recipe="gap-fill", model="scripted-model", name="filled"),
                                         "pool-long", GapFillConfig(n=8), backend=backend)
    candidates = result.version
    assert candidates.ref == "filled-candidates@v1" and report.version.ref == "filled@v1"
    rows = candidates.scan().collect().to_dicts()
    gaps = result.stats["plan"]
    allocated = {g["name"]: g["allocated"] for g in gaps["groups"]}
    assert sum(allocated.values()) == 8 and len(rows) == 8
    assert {r["domain"] for r in rows} == {name for name, a in allocated.items() if a}
    assert all(r["response"].startswith("Answer:") for r in rows)  # the source has responses: so do the new rows
    meta = json.loads(rows[0]["meta"])
    assert meta["gap_fill"]["by"] == "domain" and meta["gap_fill"]["group"] == rows[0]["domain"]
    assert len(meta["gap_fill"]["demo_ids"]) == 4 and meta["synth"]["recipe"] == "gap-fill"
    existing = selected.scan().collect()["prompt"].to_list()
    for row in rows:
        assert max(rouge_l(row["prompt"], p) for p in existing) <= 0.7
    (step,) = lineage_of(ws, report.version)
    assert step["op"] == "select" and step["strategy"] == "length" and step["rows_out"] == 4  # 50% of 8, as before
    assert result.stats["selection"]["output"] == "filled@v1"


def test_select_none_keeps_the_candidates_and_a_rerun_generates_nothing(ws, pool):
    config = GapFillConfig(n=5, select="none", responses=False)
    result, report = synthesize_gap_fill(ws, SynthJob(recipe="gap-fill", model="m"), "pool", config,
                                         backend=ScriptedBackend(writer, model="m"))
    assert report is None and result.version.ref == "pool-gapfill@v1" and result.rows == 5
    assert result.version.scan().collect()["response"].null_count() == 5
    backend = ScriptedBackend(writer, model="m")
    synthesize_gap_fill(ws, SynthJob(recipe="gap-fill", model="m"), "pool", config, backend=backend)
    assert backend.prompts_generated == 0


def test_gap_fill_errors(ws, tmp_path):
    plain = ingest(ws, str(write_jsonl(tmp_path / "p.jsonl", [{"prompt": f"q{i} x y z"} for i in range(4)])),
                   IngestOptions(name="plain")).version
    with pytest.raises(BadInput, match="no domain values"):
        plan(ws, plain, "domain", 3)
    with pytest.raises(BadInput, match="no attempts for the prompts"):
        plan(ws, plain, "difficulty", 3)
    even = ingest(ws, str(write_jsonl(tmp_path / "e.jsonl", [{"prompt": f"q{i} x y", "domain": "ab"[i % 2]}
                                                              for i in range(4)])), IngestOptions(name="even")).version
    assert {g.allocated for g in plan(ws, even, "domain", 2).groups} == {1}
    assert {g.name: g.allocated for g in plan(ws, even, "domain", 2, {"a": 1, "b": 0}).groups} == {"a": 2, "b": 0}
    with pytest.raises(BadUsage, match="weight 0"):
        plan(ws, even, "domain", 2, {"a": 0})
    with pytest.raises(BadUsage, match="not a band"):
        plan(ws, even, "difficulty", 2, {"easy": 1})


def test_request_prompt_and_parse():
    group = Group("travel", 6, 0.5)
    prompt = request_prompt(group, "domain", ["Trip one?", "Trip two?"])
    assert prompt.endswith("Example 1:\nTrip one?\n\nExample 2:\nTrip two?\n\nExample 3:\n")
    assert "in the domain 'travel'" in prompt
    assert request_prompt(group, "domain", []).endswith("Example 1:\n")
    assert parse_candidate("Example 3: Visit Rome in May?") == "Visit Rome in May?"
    assert parse_candidate("  Just a task.  ") == "Just a task."
