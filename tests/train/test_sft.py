"""SFT: loss on response tokens only, token masks, checkpoints and exact resume, LoRA, catalog versions."""

from __future__ import annotations

import json

import polars as pl
import pytest
import torch

from curate.errors import BadInput, BadUsage
from curate.train.sft import SFTConfig, train_sft
from tests.conftest import write_jsonl

ROWS = [{"prompt": f"What is {i} + {i}?", "response": f"{i} + {i} = {2 * i}\n#### {2 * i}"} for i in range(1, 13)]
FAST = dict(lr=5e-3, batch_tokens=512, warmup=1, save_every=0)


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


def _weights(folder) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(str(folder / "model.safetensors"))


def test_loss_covers_response_tokens_only_and_honours_the_token_mask(tiny_model_dir):
    from curate.lm.loading import load
    from curate.lm.scoring import token_logprobs
    from curate.lm.templates import encode_pair
    from curate.train.data import encode_sft
    from curate.train.sft import _step_loss

    lm = load(str(tiny_model_dir), dtype="float32", device="cpu")
    rows = [dict(ROWS[0]), dict(ROWS[1])]
    n_resp = len(encode_pair(rows[1]["prompt"], rows[1]["response"], lm.tokenizer).response_ids)
    rows[1]["token_mask"] = [1, 0] * (n_resp // 2) + [1] * (n_resp % 2)
    examples, counts = encode_sft(rows, lm.tokenizer)
    assert counts["masked_tokens"] == n_resp // 2
    kept = sum(sum(e.weights) for e in examples)
    loss, nll = _step_loss(lm.model, examples, "nll", int(kept), 0, lm.device)
    # independent reference: the scoring module's per-token log-probs of the response tokens
    reference = list(token_logprobs(lm, [encode_pair(r["prompt"], r["response"], lm.tokenizer) for r in rows]))
    weights = [1.0] * len(reference[0]) + [float(m) for m in rows[1]["token_mask"]]
    expected = -sum(float(lp) * w for lp, w in zip(list(reference[0]) + list(reference[1]), weights)) / kept
    assert loss.item() == pytest.approx(expected, abs=1e-5)
    assert nll / kept == pytest.approx(expected, abs=1e-5)
    dft, _ = _step_loss(lm.model, examples, "dft", int(kept), 0, lm.device)
    assert dft.item() < loss.item()  # every token's loss is scaled by its probability (< 1)


def test_a_token_mask_of_the_wrong_length_is_a_clear_error(tiny_model_dir, tmp_path):
    rows = [dict(ROWS[0], token_mask=[1, 1, 0])]
    with pytest.raises(BadInput, match="token_mask .* 3 entries"):
        train_sft(str(tiny_model_dir), rows, tmp_path / "out", SFTConfig(steps=1, **FAST))


def test_trains_saves_a_loadable_folder_and_logs_metrics(tiny_model_dir, tmp_path):
    from curate.lm.loading import load

    out = tmp_path / "sft"
    rows = ROWS + [{"prompt": "no answer here", "response": None}]
    seen = []
    stats = train_sft(str(tiny_model_dir), rows, out, SFTConfig(steps=12, **FAST),
                      progress=lambda step, metrics: seen.append((step, metrics["loss"])))
    assert [s for s, _ in seen] == list(range(1, 13))
    assert stats["skipped_no_response"] == 1 and stats["examples"] == 12 and stats["steps"] == 12
    assert stats["final_loss"] < stats["first_loss"] - 0.5  # it learns the 12 examples
    assert {"final_loss", "steps", "tokens", "seconds"} <= set(stats)
    lines = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [line["step"] for line in lines] == list(range(1, 13))
    assert {"loss", "nll", "learning_rate", "grad_norm", "tokens_per_second"} <= set(lines[0])
    lm = load(str(out), dtype="float32", device="cpu")
    assert lm.tokenizer.eos_token_id == 2
    assert (out / "checkpoint" / "state.json").exists()
    state = json.loads((out / "checkpoint" / "state.json").read_text())
    assert state["step"] == 12 and state["config"]["lr"] == FAST["lr"]


class Stop(Exception):
    pass


def test_resume_continues_exactly(tiny_model_dir, tmp_path):
    config = SFTConfig(steps=6, lr=5e-3, batch_tokens=256, grad_accum=2, warmup=1, save_every=3)
    straight = tmp_path / "straight"
    train_sft(str(tiny_model_dir), ROWS, straight, config)

    broken = tmp_path / "broken"

    def crash(step, metrics):
        if step == 4:
            raise Stop

    with pytest.raises(Stop):
        train_sft(str(tiny_model_dir), ROWS, broken, config, progress=crash)
    assert json.loads((broken / "checkpoint" / "state.json").read_text())["step"] == 3
    with pytest.raises(BadUsage, match="--resume"):
        train_sft(str(tiny_model_dir), ROWS, broken, config)
    with pytest.raises(BadUsage, match="seed"):
        train_sft(str(tiny_model_dir), ROWS, broken, SFTConfig(**{**config.__dict__, "seed": 1}), resume=True)
    stats = train_sft(str(tiny_model_dir), ROWS, broken, config, resume=True)
    assert stats["resumed_from"] == 3
    a, b = _weights(straight), _weights(broken)
    assert a.keys() == b.keys()
    for name in a:
        torch.testing.assert_close(a[name], b[name], rtol=0, atol=0)
    steps = [json.loads(line)["step"] for line in (broken / "metrics.jsonl").read_text().splitlines()]
    assert steps == [1, 2, 3, 4, 5, 6]
    with pytest.raises(BadUsage, match="no checkpoint"):
        train_sft(str(tiny_model_dir), ROWS, tmp_path / "fresh", config, resume=True)


def test_lora_trains_adapters_and_merges_them(tiny_model_dir, tmp_path):
    pytest.importorskip("peft")
    out = tmp_path / "lora"
    stats = train_sft(str(tiny_model_dir), ROWS, out, SFTConfig(steps=3, lora=True, lora_r=4, lora_alpha=8, **FAST))
    assert (out / "adapter" / "adapter_config.json").exists()
    merged, base = _weights(out), _weights(tiny_model_dir)
    assert merged.keys() == base.keys()  # a plain model folder: adapters merged in
    changed = [n for n in base if not torch.equal(merged[n], base[n])]
    assert changed and all("proj" in n for n in changed)  # only the adapted linear layers moved
    assert stats["steps"] == 3


def test_trains_from_catalog_versions_including_a_masked_selection(tiny_model_dir, tmp_path, ws):
    from curate.catalog.ingest import IngestOptions, ingest
    from curate.catalog.versions import Lineage, ShardWriter, commit_version
    from curate.lm.loading import load
    from curate.lm.templates import encode_pair

    source = write_jsonl(tmp_path / "pool.jsonl", [{"question": r["prompt"], "answer": r["response"]} for r in ROWS])
    version = ingest(ws, str(source), IngestOptions(name="pool")).version
    stats = train_sft(str(tiny_model_dir), version, tmp_path / "a", SFTConfig(steps=2, **FAST))
    assert stats["examples"] == len(ROWS) and stats["data"] == "pool@v1"

    tokenizer = load(str(tiny_model_dir), dtype="float32", device="cpu").tokenizer
    frame = version.scan().collect()
    masks = [[0] + [1] * (len(encode_pair(p, r, tokenizer).response_ids) - 1)
             for p, r in zip(frame["prompt"], frame["response"])]
    frame = frame.with_columns(pl.Series("token_mask", masks, dtype=pl.List(pl.UInt8)))
    with ws.staging("selection") as folder:
        writer = ShardWriter(folder)
        writer.write(frame)
        selection = commit_version(ws, "pool-clean", writer.close(), [Lineage(op="clean", inputs=[version.ref])],
                                   prompt_type="text")
    stats = train_sft(str(tiny_model_dir), selection, tmp_path / "b", SFTConfig(steps=2, **FAST))
    assert stats["masked_tokens"] == len(ROWS) and stats["data"] == "pool-clean@v1"


@pytest.mark.parametrize("field,value,message", [
    ("steps", 0, "steps must be >= 1"), ("loss", "mse", "unknown loss"), ("lr", -1.0, "lr must be a positive"),
    ("template", "jinja", "unknown template"), ("lr_schedule", "step", "unknown lr schedule"),
])
def test_bad_config_names_the_field(field, value, message, tiny_model_dir, tmp_path):
    with pytest.raises(BadUsage, match=message):
        train_sft(str(tiny_model_dir), ROWS, tmp_path / "x", SFTConfig(**{**FAST, field: value}))
