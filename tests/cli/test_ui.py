"""Console output: data printed as it is (never as Rich markup), and progress with rate and ETA,
as a live bar on a terminal and as plain lines in a redirected log."""

from __future__ import annotations

import io

import pytest
from rich.console import Console

from curate.cli import ui

TRICKY = ["[/INST]", "List[float]", "[bold]x[/bold]", ":smile:", "[link=http://x]y[/link]", "\\[escaped]"]


def rendered(renderable) -> str:
    console = Console(file=io.StringIO(), width=200, color_system=None)
    console.print(renderable)
    return console.file.getvalue()


def test_tables_and_key_values_print_data_as_it_is():
    text = rendered(ui.table("title [/x]", ["col [b]"], [[t] for t in TRICKY]))
    text += rendered(ui.key_values("kv [/y]", {t: t for t in TRICKY}))
    for value in TRICKY + ["title [/x]", "col [b]", "kv [/y]"]:
        assert value in text, value


def test_the_consoles_never_read_markup_or_emoji_codes(capsys):
    ui.out.print("a [/INST] b :smile: c")
    ui.note("warning", "List[float] is [red]fine[/red]")
    ui.say("[/x] done")
    captured = capsys.readouterr()
    assert "a [/INST] b :smile: c" in captured.out
    assert "warning: List[float] is [red]fine[/red]" in captured.err
    assert "• [/x] done" in captured.err


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def plain(total=None, unit="rows", interval=10.0, min_gap=1.0):
    stream, clock = io.StringIO(), Clock()
    return ui.PlainProgress("scoring [x]", total, unit, stream=stream, clock=clock, interval=interval,
                            min_gap=min_gap), stream, clock


def lines(stream: io.StringIO) -> list[str]:
    return stream.getvalue().splitlines()


def test_plain_progress_prints_every_ten_percent_with_rate_and_eta():
    progress, stream, clock = plain(total=1000)
    for done in range(50, 1001, 50):  # 50 rows a second
        clock.now += 1.0
        progress.update(done)
    progress.finish()
    got = lines(stream)
    assert len(got) == 10  # one line per 10% step; the last one is the final count, not repeated
    assert got[0] == "scoring [x]: 100/1,000 rows (10%), 50.0 rows/s, elapsed 0:02, ETA 0:18"
    assert got[-1] == "scoring [x]: 1,000/1,000 rows (100%), 50.0 rows/s, elapsed 0:20, ETA 0:00"


def test_plain_progress_prints_every_interval_when_steps_are_far_apart():
    progress, stream, clock = plain(total=None, unit="steps")
    for done in range(1, 31):  # unknown total: no 10% steps, a line every 10 seconds
        clock.now += 1.0
        progress.update(done)
    assert lines(stream) == [f"scoring [x]: {n} steps, 1.0 steps/s, elapsed 0:{n:02d}" for n in (10, 20, 30)]


def test_plain_progress_is_quiet_for_quick_stages_and_restarts_for_a_new_total():
    progress, stream, clock = plain(total=10)
    for done in range(1, 11):  # ten 10% steps within a tenth of a second: below min_gap
        clock.now += 0.01
        progress.update(done)
    assert lines(stream) == []
    clock.now += 2.0
    progress.update(1, total=4, description="fisher")  # a new stage; the first one ends quietly (short)
    clock.now += 2.0
    progress.update(2)
    clock.now += 2.0
    progress.update(3)
    progress.finish()  # 3 of 4 was printed as a 10% step: no second line
    assert lines(stream) == ["fisher: 1/4 rows (25%), 0.50 rows/s, elapsed 0:02, ETA 0:06",
                             "fisher: 2/4 rows (50%), 0.50 rows/s, elapsed 0:04, ETA 0:04",
                             "fisher: 3/4 rows (75%), 0.50 rows/s, elapsed 0:06, ETA 0:02"]


def test_plain_progress_ends_a_stage_with_its_final_count():
    progress, stream, clock = plain(total=100)
    clock.now += 5.0
    progress.update(50)
    clock.now += 0.5
    progress.update(100)  # a 10% step, but only half a second after the last line
    clock.now += 30.0  # idle time after the stage is not its time
    progress.finish()
    assert lines(stream) == ["scoring [x]: 50/100 rows (50%), 10.0 rows/s, elapsed 0:05, ETA 0:05",
                             "scoring [x]: 100/100 rows (100%), 18.2 rows/s, elapsed 0:06, ETA 0:00"]


def test_a_redirected_log_gets_plain_lines_while_the_command_runs(tmp_path, capfd, monkeypatch, tiny_model_dir):
    """The non-terminal path end to end: `curate select` with stderr captured (not a tty)."""
    from curate.cli.app import main
    from tests.conftest import write_jsonl

    monkeypatch.setattr(ui, "PLAIN_INTERVAL", 0.0)
    monkeypatch.setattr(ui, "PLAIN_MIN_GAP", 0.0)
    rows = [{"prompt": f"What is {i} + 1?" + " and more" * (i % 7) * 30, "response": f"{i + 1}"} for i in range(40)]
    source = write_jsonl(tmp_path / "pool.jsonl", rows)
    ws = str(tmp_path / "ws")
    for argv in (["ingest", str(source), "--out", "pool", "-w", ws],
                 ["select", "pool", "-s", "perplexity", "-b", "5", "--model", str(tiny_model_dir), "-w", ws]):
        with pytest.raises(SystemExit) as exit_:
            main(argv)
        assert exit_.value.code == 0
    err = capfd.readouterr().err.splitlines()
    assert any(line.startswith("ingesting ") and "40 rows" in line for line in err), err
    scoring = [line for line in err if line.startswith("perplexity: ")]
    assert len(scoring) >= 2, err  # a line per model batch here (no minimum gap), not one at the end
    assert scoring[-1].startswith("perplexity: 40/40 rows (100%), ") and "rows/s" in scoring[-1]
    assert "ETA" in scoring[0]


def test_the_live_bar_shows_count_rate_and_eta():
    console = Console(file=io.StringIO(), width=200, force_terminal=True, color_system=None)
    live = ui._LiveProgress("scoring [/INST]", None, "rows", console=console)
    live.update(5)
    before = rendered(live.bar.make_tasks_table(live.bar.tasks))
    assert "5 rows" in before and "/?" not in before and "[/INST]" in before
    live.update(30, total=300, description="perplexity")
    live.update(60)
    after = rendered(live.bar.make_tasks_table(live.bar.tasks))
    assert "60/300 rows" in after and "rows/s" in after and "ETA" in after and "perplexity" in after
