"""`curate rollouts --backend openai` over two stub servers, one killed mid-run: the ledger gets every rollout once."""

from __future__ import annotations

import re

import pytest

from curate.catalog.ledger import read_rollouts
from curate.catalog.workspace import Workspace
from tests.conftest import write_jsonl
from tests.synth.server import FakeOpenAI

ROWS = [{"question": f"What is {i} + {i}?", "answer": f"{i} + {i} = {2 * i}\n#### {2 * i}"} for i in range(1, 17)]


def doubling(body: dict) -> list[str]:
    """Right for the first choice, wrong for the second: every group has mixed rewards."""
    number = int(re.search(r"What is (\d+)", body["messages"][-1]["content"]).group(1))
    return [f"#### {2 * number + choice}" for choice in range(body["n"])]


def curate(capsys, *args: str) -> tuple[int, str, str]:
    from curate.cli.app import main

    with pytest.raises(SystemExit) as exit_info:
        main(list(args))
    captured = capsys.readouterr()
    return exit_info.value.code, captured.out, captured.err


def test_rollouts_from_two_servers_one_killed_record_every_prompt_once(tmp_path, capsys):
    ws = tmp_path / "ws"
    code, _, err = curate(capsys, "ingest", str(write_jsonl(tmp_path / "pool.jsonl", ROWS)), "--name", "pool",
                          "-w", str(ws))
    assert code == 0, err
    doomed = FakeOpenAI(responder=doubling, delay=0.2).start()
    survivor = FakeOpenAI(responder=doubling, delay=0.05).start()

    killer = doomed.kill_when_busy()
    args = ("rollouts", "pool", "--model", "served-model", "--backend", "openai", "--base-url", doomed.url,
            "--base-url", survivor.url, "-k", "2", "--reward", "math", "--concurrency", "2", "--prompts-per-batch", "4", "-w", str(ws))
    try:
        code, out, err = curate(capsys, *args, "--json", "-q")
        killer.join(timeout=10)
        assert code == 0, err
        assert doomed.dead and len(doomed.records) > doomed.answered >= 1  # it died with requests in flight
        asked = len(survivor.records)
        code, again, err = curate(capsys, *args, "-q")  # a rerun: everything is in the ledger already
        assert code == 0, err
        assert again.strip() == "0" and len(survivor.records) == asked
    finally:
        survivor.stop()
        if not doomed.dead:
            doomed.stop()
    rollouts = read_rollouts(Workspace.open(ws))
    assert rollouts.height == 16 * 2
    assert rollouts.select(["prompt_id", "sample_idx"]).n_unique() == 32
    assert set(rollouts["model_key"]) == {"served:served-model#math"}  # never pooled with local weights' keys
    assert sorted(rollouts["reward"].to_list()) == [0.0] * 16 + [1.0] * 16
    assert rollouts["length"].null_count() == 32  # the stub returns no token ids: length unknown, not 0
    assert survivor.answered + doomed.answered == 16  # one answered request per prompt
