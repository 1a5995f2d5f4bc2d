"""Issue 16.10-16.11: seed files as JSON arrays, and every seed-file problem found before anything is generated."""

from __future__ import annotations

import json

import pytest

from curate.errors import BadInput, BadUsage
from curate.synth.runner import SynthJob, synthesize_self_instruct
from curate.synth.self_instruct import SelfInstructConfig
from curate.synth.self_instruct_format import load_seeds
from tests.synth.fakes import ScriptedBackend


def run(ws, seeds, backend, **config):
    settings = SelfInstructConfig(**{"num_instructions": 4, "round_size": 4, **config})
    job = SynthJob(recipe="self-instruct", model=backend.identity.model)
    return synthesize_self_instruct(ws, job, seeds, settings, backend=backend)


def test_a_json_array_of_seed_tasks_is_read_like_json_lines(seed_file, tmp_path):
    rows = [json.loads(line) for line in seed_file.read_text().splitlines()]
    array = tmp_path / "seeds.json"
    array.write_text(json.dumps(rows, indent=2))
    assert load_seeds(array) == load_seeds(seed_file)
    one_line = tmp_path / "seeds-one-line.json"
    one_line.write_text(json.dumps(rows))
    assert load_seeds(one_line) == load_seeds(seed_file)


def test_alpaca_shaped_seeds_have_one_instance_each(tmp_path):
    path = tmp_path / "alpaca.json"
    path.write_text(json.dumps([{"instruction": "Add the numbers.", "input": "2, 3", "output": "5"}]))
    (task,) = load_seeds(path)
    assert task.instruction == "Add the numbers." and [(i.input, i.output) for i in task.instances] == [("2, 3", "5")]


@pytest.mark.parametrize("text, where, got", [
    ('[{"instruction": "ok"}, {"prompt": "no instruction"}]', "item 2", 'no "instruction" key'),
    ('[{"instruction": "ok"}, "a string"]', "item 2", "a JSON str, not an object"),
    ('{"instruction": "ok"}\n[1, 2]\n', "line 2", "a JSON list, not an object"),
])
def test_a_bad_seed_task_names_its_item_or_line(tmp_path, text, where, got):
    path = tmp_path / "seeds.json"
    path.write_text(text)
    with pytest.raises(BadInput) as error:
        load_seeds(path)
    assert f"{path}, {where}: a seed task needs a non-empty \"instruction\" string ({got})" == error.value.message


@pytest.mark.parametrize("problem", ["no instances", "too few tasks"])
def test_a_bad_seed_file_stops_before_any_generation(ws, seed_file, tmp_path, problem):
    rows = [json.loads(line) for line in seed_file.read_text().splitlines()]
    if problem == "no instances":
        rows = [{k: v for k, v in r.items() if k != "instances"} for r in rows]
        config, message = {}, "no seed task has instances"
    else:
        config, message = {"demos": 8, "machine_demos": 0}, "--demos 8 needs at least 8 seed tasks"
        rows = rows[:3]
    bad = tmp_path / "bad-seeds.jsonl"
    bad.write_text("".join(json.dumps(r) + "\n" for r in rows))
    backend = ScriptedBackend()
    with pytest.raises(BadUsage) as error:
        run(ws, bad, backend, **config)
    assert message in error.value.message
    assert backend.calls == []  # not one generation
