"""Cached small models (proxy, token cleaning's references) are published by one rename."""

from __future__ import annotations

from pathlib import Path

from curate.train.model_cache import is_built, publish


def _built(root: Path, name: str, text: str) -> Path:
    folder = root / name
    folder.mkdir()
    (folder / "weights").write_text(text)
    (folder / "done.json").write_text("{}")
    return folder


def test_a_finished_model_is_renamed_into_place(tmp_path):
    built = _built(tmp_path, "staging", "new")
    target = tmp_path / "models" / "m"
    target.parent.mkdir()
    assert not is_built(target, "done.json")
    assert publish(built, target, "done.json") is True
    assert (target / "weights").read_text() == "new" and not built.exists() and is_built(target, "done.json")


def test_the_first_finished_model_wins_a_race(tmp_path):
    first = _built(tmp_path, "first", "first")
    target = tmp_path / "m"
    publish(first, target, "done.json")
    second = _built(tmp_path, "second", "second")
    assert publish(second, target, "done.json") is False
    assert (target / "weights").read_text() == "first" and second.exists()  # the caller's staging cleanup removes it


def test_an_unfinished_leftover_is_replaced(tmp_path):
    target = tmp_path / "m"
    target.mkdir()
    (target / "weights").write_text("half")  # a crash before the marker was written
    built = _built(tmp_path, "staging", "whole")
    assert publish(built, target, "done.json") is True
    assert (target / "weights").read_text() == "whole"
