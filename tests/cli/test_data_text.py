"""Issue 16.8: data text reaches the console as it is, in every command that prints it."""

from __future__ import annotations

import json

from tests.cli.test_cli import run
from tests.conftest import write_jsonl

CHAT = {"prompt": "<s>[INST] Fix this [/INST]", "response": "def f(x: List[float]) -> Dict[str, int]: ... :smile:",
        "domain": "[bold]code[/bold]"}


def test_show_ingest_and_export_print_markup_like_text_verbatim(tmp_path):
    ws = tmp_path / "ws"
    source = write_jsonl(tmp_path / "chat[1].jsonl", [CHAT, {"prompt": "[/]", "response": "[link=x]y"}])
    ingested = run("ingest", str(source), "--out", "chat", ws=ws).stdout
    assert "chat[1].jsonl" in ingested
    shown = run("show", "chat", "--samples", "2", ws=ws).stdout
    for text in ("[INST] Fix this [/INST]", "List[float]", "Dict[str, int]", ":smile:", "[bold]code[/bold]", "[/]",
                 "[link=x]y"):
        assert text in shown, text
    as_json = json.loads(run("show", "chat", "--json", "--samples", "2", ws=ws).stdout)
    assert as_json["samples"][0]["prompt"] == CHAT["prompt"]
    target = tmp_path / "out[x].jsonl"
    assert run("export", "chat", "--to", str(target), "--quiet", ws=ws).stdout.strip() == str(target)


def test_errors_that_quote_data_print_it_verbatim(tmp_path):
    source = write_jsonl(tmp_path / "rows.jsonl", [CHAT])
    result = run("ingest", str(source), "--map", "prompt=[/INST]", ws=tmp_path / "ws", check=2)
    assert "no column '[/INST]'" in result.stderr and "internal error" not in result.stderr
