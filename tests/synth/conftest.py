"""Fixtures for synthesis tests: a fake OpenAI server, a scripted backend, a seed file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.synth.server import FakeOpenAI


@pytest.fixture
def openai_server():
    server = FakeOpenAI().start()
    yield server
    server.stop()


@pytest.fixture
def seed_file(tmp_path) -> Path:
    return write_seed_tasks(tmp_path / "seeds.jsonl")


def write_seed_tasks(path: Path) -> Path:
    """Twelve seed tasks in self-instruct's format (four classification tasks)."""
    topics = ["a healthy breakfast", "a weekend trip", "saving money", "learning a language", "a job interview",
              "a birthday party", "a rainy day", "a small garden"]
    rows = [{"id": f"seed_task_{i}", "name": f"task_{i}", "instruction": f"Give three tips about {topic}.",
             "instances": [{"input": "", "output": f"1. Plan ahead for {topic}. 2. Ask a friend. 3. Keep notes."}],
             "is_classification": False} for i, topic in enumerate(topics)]
    labels = [("Is this review positive or negative?", "The food was great.", "Positive"),
              ("Classify the sentence as a question or a statement.", "Where is the station?", "Question"),
              ("Tell whether the number is odd or even.", "17", "Odd"),
              ("Decide if the email is spam.", "You won a free cruise, click here!", "Spam")]
    rows += [{"id": f"seed_task_{8 + i}", "instruction": instr, "instances": [{"input": inp, "output": out}],
              "is_classification": True} for i, (instr, inp, out) in enumerate(labels)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path
