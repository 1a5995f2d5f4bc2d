"""The report's RL, token-mask and comparison sections, and run folders, against hand-made inputs."""

from __future__ import annotations

import json
import math
import shutil
import subprocess

import numpy as np
import polars as pl
import pytest

from curate.catalog.selections import commit_selection
from curate.catalog.versions import Lineage, resolve
from curate.errors import BadUsage
from curate.report.build import write_report
from curate.catalog.comparisons import Cell, save_cell
from curate.report.comparisons import comparisons_section
from curate.report.rl import ledger_section
from curate.report.tokens import token_section
from tests.report.helpers import selected


def _cell(key: str, strategy: str, seed: int, value: float | None) -> Cell:
    return Cell(cell_key=key, name="cmp", pool="pool@v1", pool_hash="p", eval="held@v1", eval_hash="e",
                strategy=strategy, seed=seed, base_model="base", base_hash="b", scorer_model="proxy",
                recipe_hash="r", recipe={}, metric="loss", value=value,
                status="selected" if value is None else "done")


def test_comparisons_none_then_read_from_hand_made_cells(ws, tmp_path):
    made = selected(ws, tmp_path)
    pool = resolve(ws, "pool@v1")
    assert comparisons_section(ws, pool) == []  # no comparison yet: the section is left out, nothing fails
    cells = [("random", 0, 0.50), ("random", 1, 0.40), ("random", 2, 0.45),
             ("fisher", 0, 0.60), ("fisher", 1, 0.44), ("fisher", 2, 0.55), ("fisher", 3, None)]
    for i, (strategy, seed, value) in enumerate(cells):
        save_cell(ws, _cell(f"k{i}", strategy, seed, value))
    (entry,) = comparisons_section(ws, pool)
    assert (entry["name"], entry["metric"], entry["eval"]) == ("cmp", "loss", "held@v1")
    arms = {a["strategy"]: a for a in entry["arms"]}
    assert arms["random"]["n"] == 3 and arms["random"]["mean"] == pytest.approx(0.45)
    assert arms["random"]["sd"] == pytest.approx(0.05)  # deviations 0.05, -0.05, 0: sqrt(0.005 / 2)
    half = 4.302653 * 0.05 / math.sqrt(3)  # t(0.975, df=2) * sd / sqrt(n)
    assert (arms["random"]["lo"], arms["random"]["hi"]) == (pytest.approx(0.45 - half), pytest.approx(0.45 + half))
    assert arms["fisher"]["seeds"] == [0, 1, 2]  # the unfinished cell is not counted
    paired = arms["fisher"]["vs_random"]
    assert paired["n"] == 3 and paired["mean"] == pytest.approx((0.10 + 0.04 + 0.10) / 3)
    assert "vs_random" not in arms["random"]
    files = write_report(ws, "pool@v1", tmp_path / "r.html")
    assert "Comparisons (curate compare)" in files.html.read_text()
    assert comparisons_section(ws, resolve(ws, made.version.ref)) == []


def test_ledger_pass_rate_histogram(ws, tmp_path):
    selected(ws, tmp_path)
    pool = resolve(ws, "pool@v1")
    ids = pool.scan().select("id").collect()["id"].to_list()
    rates = [(8, 0), (8, 8), (8, 4), (8, 1), (4, 4)]  # attempts, successes for the first 5 prompts
    with ws.transaction() as con:
        for prompt_id, (attempts, successes) in zip(ids, rates):
            con.execute("INSERT INTO prompt_stats VALUES (?, 'm1', ?, ?, ?, ?, NULL, NULL, 1, 1, NULL, NULL, ?, NULL)",
                        [prompt_id, attempts, successes, successes, successes, int(successes in (0, attempts))])
        con.execute("INSERT INTO prompt_stats VALUES ('elsewhere', 'm1', 8, 8, 8, 8, NULL, NULL, 1, 1, NULL, NULL, 0, "
                    "NULL)")
    (entry,) = ledger_section(ws, pool)
    assert entry["model_key"] == "m1" and entry["prompts_seen"] == 5 and entry["prompts_unseen"] == len(ids) - 5
    assert entry["rollouts"] == 36 and entry["all_right"] == 2 and entry["all_wrong"] == 1
    assert entry["mean_pass_rate"] == pytest.approx((0 + 1 + 0.5 + 0.125 + 1) / 5)
    assert entry["histogram"]["prompts"] == [1, 1, 0, 0, 0, 1, 0, 0, 0, 2]


def test_token_masks_are_shown_token_by_token(ws, tmp_path, tiny_model_dir):
    from transformers import AutoTokenizer

    from curate.lm.templates import encode_pair

    selected(ws, tmp_path)
    pool = resolve(ws, "pool@v1")
    rows = pool.scan().head(4).collect()
    tokenizer = AutoTokenizer.from_pretrained(str(tiny_model_dir))
    masks = [[int(j % 3 != 0) for j in range(len(encode_pair(p, r, tokenizer).response_ids))]
             for p, r in zip(rows["prompt"], rows["response"])]
    step = Lineage(op="select", inputs=[pool.ref], strategy="token-clean", model_id=str(tiny_model_dir),
                   params={"template": "auto"}, rows_in=4, rows_out=4)
    version = commit_selection(ws, pool, "cleaned", pl.DataFrame({"id": rows["id"], "rank": range(4)}), [step],
                               strategy="token-clean", budget=None, params={},
                               extra=pl.DataFrame({"id": rows["id"], "token_mask": masks},
                                                  schema={"id": pl.String, "token_mask": pl.List(pl.UInt8)}))
    section = token_section(version, [{"strategy": "token-clean", "model_id": str(tiny_model_dir),
                                       "params": {"template": "auto"}}], rows=2)
    assert section["tokens"] == sum(map(len, masks)) and section["tokens_kept"] == sum(map(sum, masks))
    assert section["note"] is None and len(section["examples"]) == 2
    first = section["examples"][0]["tokens"]
    assert [kept for _, kept in first] == masks[0]
    assert "".join(text for text, _ in first[:-1]) == rows["response"][0] and first[-1][0] == "</s>"
    moved = tmp_path / "gone"
    gone = token_section(version, [{"strategy": "token-clean", "model_id": str(moved), "params": {}}])
    assert gone["examples"] == [] and "could not load the tokenizer" in gone["note"]


def _loop_folder(folder):
    rounds = [{"round": r, "strategy": "thompson", "prompts": 4, "rollouts": 32, "train_reward": 0.2 * r,
               "eval_reward": 0.1 * r, "frac_reward_zero_std": 0.5 / r, "all_right_share": 0.1, "all_wrong_share": 0.3,
               "seconds": 1.0} for r in (1, 2)]
    folder.mkdir()
    (folder / "loop.json").write_text(json.dumps({"config": {"strategy": "thompson", "rounds": 2}, "dataset": "p@v1",
                                                   "reward": "math", "model_key": "k", "eval_before": 0.05,
                                                   "rounds": rounds, "rollouts": 64}))
    for r in (1, 2):
        grpo = folder / f"round-{r:03d}" / "grpo"
        grpo.mkdir(parents=True)
        grpo.joinpath("metrics.jsonl").write_text("".join(json.dumps({"step": s, "reward": 0.1 * s + r,
                                                                      "reward_std": 0.2}) + "\n" for s in (1, 2)))
    return folder


def test_loop_run_folder(tmp_path):
    folder = _loop_folder(tmp_path / "loop")
    files = write_report(None, str(folder))
    data = json.loads(files.json.read_text())
    assert files.html == folder / "report.html" and data["kind"] == "loop"
    assert [r["eval_reward"] for r in data["rounds"]] == [0.1, 0.2] and data["eval_before"] == 0.05
    assert [s["global_step"] for s in data["steps"]] == [1, 2, 3, 4]
    assert [s["reward"] for s in data["steps"]] == pytest.approx([1.1, 1.2, 2.1, 2.2])
    html = files.html.read_text()
    assert "reward per round" in html and "zero-variance share" in html and "rollouts per round" in html


def test_train_run_folder_and_bad_targets(tmp_path):
    folder = tmp_path / "sft"
    folder.mkdir()
    (folder / "metrics.jsonl").write_text("".join(json.dumps({"step": s, "loss": 3.0 / s, "lr": 1e-3}) + "\n"
                                                  for s in (1, 2, 3)))
    data = json.loads(write_report(None, str(folder), tmp_path / "sft.html").json.read_text())
    assert data["kind"] == "train" and data["metrics"] == ["loss", "lr"] and data["steps"][2]["loss"] == 1.0
    with pytest.raises(BadUsage, match="neither a dataset nor a run folder"):
        write_report(None, str(tmp_path))
    with pytest.raises(BadUsage, match="must end in .html"):
        write_report(None, str(folder), tmp_path / "report.pdf")
    (folder / "metrics.jsonl").write_text('{"step": 1}\n{broken\n')
    with pytest.raises(BadUsage, match=r"metrics.jsonl:2"):
        write_report(None, str(folder))


@pytest.mark.skipif(shutil.which("chromium") is None, reason="headless chromium is not installed")
def test_the_page_renders_in_headless_chromium(ws, tmp_path):
    made = selected(ws, tmp_path)
    files = write_report(ws, made.version.ref, tmp_path / "r.html")
    shot = tmp_path / "r.png"
    subprocess.run(["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                    "--window-size=1280,2000", f"--screenshot={shot}", files.html.as_uri()],
                   capture_output=True, timeout=120, check=True)
    png = shot.read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 20_000  # a page with charts, not a blank one
    width, height = np.frombuffer(png[16:24], dtype=">u4")
    assert (width, height) == (1280, 2000)
