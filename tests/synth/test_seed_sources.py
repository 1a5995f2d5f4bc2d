"""`--seeds`: a seed file, any file `curate ingest` reads (Alpaca-shaped CSV/Parquet, ShareGPT...), or NAME@vN."""

from __future__ import annotations

import json

import polars as pl
import pytest

from curate.catalog.ingest import IngestOptions, ingest
from curate.catalog.versions import lineage_of
from curate.errors import BadInput
from curate.synth.runner import SynthJob, synthesize_self_instruct
from curate.synth.seed_sources import resolve_seeds
from curate.synth.self_instruct import SelfInstructConfig
from curate.synth.self_instruct_format import Instance
from tests.conftest import write_jsonl
from tests.synth.fakes import ScriptedBackend

ALPACA = [{"instruction": f"Give three tips about {topic}.", "input": "", "output": f"1. Plan {topic}. 2. Ask. 3. Note."}
          for topic in ("breakfast", "a trip", "saving", "a language", "an interview", "a party", "rain", "a garden")]
ALPACA += [{"instruction": "Is this review positive or negative?", "input": "The food was great.", "output": "Positive"}]


def test_alpaca_csv_and_parquet_go_through_ingest(tmp_path):
    csv = tmp_path / "seeds.csv"
    pl.DataFrame(ALPACA).write_csv(csv)
    parquet = tmp_path / "seeds.parquet"
    pl.DataFrame(ALPACA).write_parquet(parquet)
    for path in (csv, parquet):
        source = resolve_seeds(None, path)
        assert len(source.tasks) == len(ALPACA) and source.inputs == [str(path.resolve())]
        first, last = source.tasks[0], source.tasks[-1]
        assert first.instruction == ALPACA[0]["instruction"] and first.instances == (Instance("", ALPACA[0]["output"]),)
        # ingest's Alpaca shape puts a non-empty input after the instruction
        assert last.instruction == "Is this review positive or negative?\n\nThe food was great."
        assert last.instances == (Instance("", "Positive"),)


def test_sharegpt_json_goes_through_ingest_and_self_instruct_json_to_load_seeds(tmp_path, seed_file):
    chats = [{"conversations": [{"from": "human", "value": f"Explain {w}."}, {"from": "gpt", "value": f"{w} is..."}]}
             for w in ("rain", "tides")]
    path = tmp_path / "chats.json"
    path.write_text(json.dumps(chats))
    tasks = resolve_seeds(None, path).tasks
    assert [t.instruction for t in tasks] == ["Explain rain.", "Explain tides."]
    assert tasks[1].instances == (Instance("", "tides is..."),)
    paper = resolve_seeds(None, seed_file).tasks  # the paper's format keeps its classification flags
    assert len(paper) == 12 and paper[-1].is_classification is True
    assert paper[-1].instances == (Instance("You won a free cruise, click here!", "Spam"),)
    assert [t.is_classification for t in paper].count(True) == 4


def test_a_catalog_version_as_seeds(ws, tmp_path):
    version = ingest(ws, str(write_jsonl(tmp_path / "alpaca.jsonl", ALPACA)),
                     IngestOptions(name="alpaca", license="CC-BY-NC-4.0")).version
    source = resolve_seeds(ws, "alpaca@v1")
    assert source.inputs == ["alpaca@v1", version.content_hash] and source.license == "CC-BY-NC-4.0"
    assert [t.instruction for t in source.tasks][:2] == [ALPACA[0]["instruction"], ALPACA[1]["instruction"]]
    assert resolve_seeds(ws, "alpaca").inputs[0] == "alpaca@v1"
    with pytest.raises(BadInput, match="no such file, and no dataset of that name"):
        resolve_seeds(ws, "nothing-here")


def test_self_instruct_runs_from_alpaca_seeds_in_the_catalog(ws, tmp_path):
    """What failed before with "no seed task has instances": Alpaca rows as seeds, here from the catalog."""
    ingest(ws, str(write_jsonl(tmp_path / "alpaca.jsonl", ALPACA)), IngestOptions(name="alpaca", license="MIT"))
    backend = ScriptedBackend()
    job = SynthJob(recipe="self-instruct", model=backend.identity.model, seed=0)
    result = synthesize_self_instruct(ws, job, "alpaca@v1", SelfInstructConfig(num_instructions=4, round_size=4),
                                      backend=backend)
    assert result.rows >= 4
    (step,) = lineage_of(ws, result.version)
    assert step["inputs"][0] == "alpaca@v1" and result.version.license.startswith("source: MIT")
