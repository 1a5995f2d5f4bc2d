"""The self-instruct recipe end to end on a scripted backend: rows, filters, provenance, determinism, resume."""

from __future__ import annotations

import json

import pytest

from curate.catalog.versions import lineage_of
from curate.synth.runner import SynthJob, synthesize_self_instruct
from curate.synth.self_instruct import SelfInstructConfig
from curate.synth.similarity import rouge_l
from curate.synth.writer import NothingSynthesized
from tests.synth.fakes import ScriptedBackend
from tests.synth.server import words


def run(ws, seed_file, backend, seed=0, name=None, **config):
    settings = SelfInstructConfig(**{"num_instructions": 12, "round_size": 4, **config})
    job = SynthJob(recipe="self-instruct", model=backend.identity.model, seed=seed, name=name)
    return synthesize_self_instruct(ws, job, seed_file, settings, backend=backend)


def timeless(version) -> list[tuple]:
    """The rows with the generation time taken out of their provenance (it is when, not what)."""
    out = []
    for row in version.scan().collect().to_dicts():
        meta = json.loads(row["meta"])
        meta["synth"].pop("generated_at")
        out.append((row["id"], row["prompt"], row["response"], json.dumps(meta, sort_keys=True)))
    return out


def drops(ws, version):
    with ws.catalog() as con:
        return con.execute("SELECT reason, detail FROM drops WHERE name = ? AND version = ?",
                           [version.name, version.version]).fetchall()


def test_rows_carry_full_provenance(ws, seed_file):
    backend = ScriptedBackend()
    result = run(ws, seed_file, backend)
    version = result.version
    rows = version.scan().collect().to_dicts()
    assert result.stats["instructions_kept"] == 12 and len(rows) == result.rows >= 12
    meta = json.loads(rows[0]["meta"])
    synth = meta["synth"]
    assert synth["recipe"] == "self-instruct" and synth["run"].startswith("synth-self-instruct-")
    assert synth["generator"] == {"backend": "scripted", "model": "scripted-model", "model_hash": "hash-scripted-model",
                                  "revision": None, "template": "raw", "endpoint": None, "base_url": None}
    assert synth["sampling"]["instructions"]["temperature"] == 0.7 and synth["sampling"]["instructions"]["top_p"] == 0.5
    assert synth["sampling"]["instances"]["temperature"] == 0.0 and synth["seed"] == 0
    assert synth["prompt_template"] == "self-instruct/instances-input-first" and synth["generated_at"].endswith("Z")
    assert meta["self_instruct"]["instruction"] in rows[0]["prompt"]
    assert rows[0]["response"]
    (step,) = lineage_of(ws, version)
    assert (step["op"], step["strategy"], step["model_id"], step["model_hash"], step["seed"]) == \
        ("synth", "self-instruct", "scripted-model", "hash-scripted-model", 0)
    params = step["params"]
    assert params["generator"]["model"] == "scripted-model" and params["config"]["rouge_threshold"] == 0.7
    assert params["stats"]["classification"] == {"yes": 0, "no": 12, "unparsed": 0}
    assert version.license == "source: unknown; generator: unknown"


def test_kept_instructions_are_not_near_duplicates_of_the_pool(ws, seed_file):
    result = run(ws, seed_file, ScriptedBackend(), num_instructions=20)
    metas = [json.loads(m) for m in result.version.scan().select("meta").collect()["meta"]]
    instructions = list(dict.fromkeys(m["self_instruct"]["instruction"] for m in metas))
    seeds = [json.loads(line)["instruction"] for line in seed_file.read_text().splitlines()]
    for i, text in enumerate(instructions):
        for other in seeds + instructions[:i]:
            assert rouge_l(text, other) <= 0.7
    assert all(m["self_instruct"]["max_rouge_l"] <= 0.7 for m in metas)


def test_filters_are_recorded_as_drops(ws, seed_file):
    def respond(prompt, n, seed):
        if prompt.endswith("."):  # instruction requests: a duplicate of a seed, a bad one, a fine one
            text = (f" Give three tips about a healthy breakfast.\n10. Draw a picture of a cat.\n"
                    f"11. Invent a story about {words(str(seed), 6)}\n12. Cut off")
            return [(text, "length")]
        return [("Example 1\nInput: q\nOutput: ok\nExample 2\nInput: q\nOutput: other", "stop")]

    with pytest.raises(NothingSynthesized, match="same_input_different_output"):
        run(ws, seed_file, ScriptedBackend(respond), num_instructions=3, classify=False)
    reasons = {"rouge_l_near_duplicate", "unsuitable_for_text_model", "truncated"}

    def respond_ok(prompt, n, seed):
        if prompt.endswith("."):
            return respond(prompt, n, seed)
        return [("Example 1\nInput: q\nOutput: ok", "stop")]

    result = run(ws, seed_file, ScriptedBackend(respond_ok, model="other"), num_instructions=3, classify=False,
                 name="ok")
    found = drops(ws, result.version)
    assert reasons <= {r for r, _ in found}
    assert any("ROUGE-L 1.000 > 0.7 with: Give three tips about a healthy breakfast." in d for _, d in found)
    # three responses are read (the third completes the 3 instructions: its cut item is not examined)
    assert result.version.rows == 3 and result.drop_counts["truncated"] == 2
    assert result.stats["unused_candidates"] == 1 and "unused_responses" not in result.stats


def test_same_seed_same_dataset_and_a_rerun_generates_nothing(ws, seed_file, tmp_path):
    from curate.catalog.workspace import Workspace

    first = run(ws, seed_file, ScriptedBackend(), name="a")
    backend = ScriptedBackend()
    again = run(ws, seed_file, backend, name="b")
    assert backend.prompts_generated == 0 and again.cache_hits == again.prompts_requested > 0
    assert again.version.content_hash == first.version.content_hash  # same rows, same generation times
    other_ws = Workspace.open(tmp_path / "other")
    fresh = run(other_ws, seed_file, ScriptedBackend(), name="a")
    assert timeless(fresh.version) == timeless(first.version)
    different = run(other_ws, seed_file, ScriptedBackend(), seed=1, name="c")
    assert [r[0] for r in timeless(different.version)] != [r[0] for r in timeless(first.version)]


def test_an_interrupted_run_resumes_from_the_cache(ws, seed_file, tmp_path):
    from curate.catalog.workspace import Workspace

    class Dying(ScriptedBackend):
        def generate(self, prompts, n, sampling):
            if self.prompts_generated >= 10:
                raise KeyboardInterrupt
            return super().generate(prompts, n, sampling)

    dying = Dying(chunk=2)
    with pytest.raises(KeyboardInterrupt):
        run(ws, seed_file, dying, name="r")
    done = [p for call in dying.calls for p in call]
    backend = ScriptedBackend(chunk=2)
    resumed = run(ws, seed_file, backend, name="r")
    again = [p for call in backend.calls for p in call]
    assert len(done) == 10 and not set(done) & set(again)
    assert resumed.cache_hits == 10 and resumed.generated == len(again)
    uninterrupted = run(Workspace.open(tmp_path / "clean"), seed_file, ScriptedBackend(chunk=2), name="u")
    assert timeless(uninterrupted.version) == timeless(resumed.version)


def test_the_request_budget_bounds_a_hopeless_model(ws, seed_file):
    messages = []
    backend = ScriptedBackend(lambda prompt, n, seed: [("x", "stop")])
    job = SynthJob(recipe="self-instruct", model="m")
    with pytest.raises(NothingSynthesized):
        synthesize_self_instruct(ws, job, seed_file, SelfInstructConfig(num_instructions=5, max_requests=7),
                                 warn=messages.append, backend=backend)
    assert backend.prompts_generated == 7 and "kept 0 of the 5 instructions" in messages[0]


def test_seed_license_is_recorded_and_non_commercial_seeds_warn(ws, seed_file):
    messages = []
    job = SynthJob(recipe="self-instruct", model="m", source_license="cc-by-nc-4.0", generator_license="apache-2.0")
    result = synthesize_self_instruct(ws, job, seed_file, SelfInstructConfig(num_instructions=3, round_size=4),
                                      warn=messages.append, backend=ScriptedBackend(model="m"))
    assert result.version.license == "source: cc-by-nc-4.0; generator: apache-2.0 (permissive)"
    assert len(messages) == 1 and "the source data is under CC BY-NC 4.0" in messages[0]
