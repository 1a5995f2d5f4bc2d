"""Packed SFT rows: best-fit-decreasing bins, and a packed forward equal to one example at a time."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from curate.errors import BadUsage
from curate.lm.batching import pack_bins
from curate.train.sft import SFTConfig, train_sft

ROWS = [{"prompt": f"What is {i} + {i}?", "response": f"{i} + {i} = {2 * i}\n#### {2 * i}"} for i in range(1, 13)]


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def brute_force_bfd(lengths: list[int], capacity: int, seed: int) -> list[list[int]]:
    """Best-fit decreasing by scanning every open bin (ties: the bin most recently left with that space)."""
    tiebreak = np.random.default_rng(seed).permutation(len(lengths))
    order = sorted(range(len(lengths)), key=lambda i: (-lengths[i], tiebreak[i]))
    bins: list[list[int]] = []
    space: list[int] = []
    stamp: list[int] = []
    for clock, index in enumerate(order):
        fits = [b for b in range(len(bins)) if space[b] >= lengths[index] > 0 and lengths[index] <= capacity]
        if fits:
            best = min(fits, key=lambda b: (space[b], -stamp[b]))
            bins[best].append(index)
            space[best] -= lengths[index]
            stamp[best] = clock
        else:
            bins.append([index])
            space.append(max(0, capacity - lengths[index]))
            stamp.append(clock)
    return bins


@pytest.mark.parametrize("seed,capacity", [(0, 64), (1, 100), (2, 257)])
def test_pack_bins_is_best_fit_decreasing(seed, capacity):
    rng = np.random.default_rng(seed)
    lengths = [int(x) for x in rng.integers(1, 80, size=300)] + [capacity + 5, capacity]  # one too long, one exact
    bins = pack_bins(lengths, capacity, seed)
    assert bins == brute_force_bfd(lengths, capacity, seed)
    assert sorted(i for b in bins for i in b) == list(range(len(lengths)))
    assert all(sum(lengths[i] for i in b) <= capacity for b in bins if len(b) > 1)
    assert [len(lengths) - 2] in bins  # the over-long item is alone
    lower_bound = sum(min(x, capacity) for x in lengths) / capacity
    assert len(bins) <= lower_bound * 1.1 + 2  # BFD is near-optimal on such items


def test_pack_bins_by_hand():
    assert pack_bins([5, 3, 4, 2, 6], 10) == [[4, 2], [0, 1, 3]]  # 6+4 fills the first bin, 5+3+2 the second
    assert pack_bins([], 10) == []


def _items(seed: int = 0) -> list[tuple[list[int], list[int]]]:
    gen = torch.Generator().manual_seed(seed)
    shapes = [(5, 7), (12, 3), (1, 20), (30, 9), (3, 1)]
    return [([1] + torch.randint(3, 250, (p - 1,), generator=gen).tolist() if p > 1 else [1],
             torch.randint(3, 250, (r,), generator=gen).tolist()) for p, r in shapes]


def _grads(model) -> dict[str, torch.Tensor]:
    return {n: p.grad.detach().clone() for n, p in model.named_parameters() if p.grad is not None}


def test_packed_losses_and_gradients_equal_one_example_at_a_time(tiny_model_dir):
    from curate.lm.loading import load
    from curate.train.logprobs import response_logprobs
    from curate.train.packing import BOUNDS_KEYWORD, packed_attention, packed_response_logprobs

    lm = load(str(tiny_model_dir), dtype="float32", device="cpu")
    model, items = lm.model, _items()
    model.train()
    weights = [torch.rand(len(r), generator=torch.Generator().manual_seed(i)).round() for i, (_, r) in enumerate(items)]

    alone_losses = []
    for (prompt, response), w in zip(items, weights):
        logps = response_logprobs(model, [(prompt, response)], 0, lm.device)[0]
        loss = -(logps * w).sum()
        loss.backward()
        alone_losses.append(loss.item())
    alone = _grads(model)
    model.zero_grad(set_to_none=True)

    packed = packed_response_logprobs(model, items, lm.device)
    packed_losses = [-(logps * w).sum() for logps, w in zip(packed, weights)]
    torch.stack(packed_losses).sum().backward()
    together = _grads(model)
    model.zero_grad(set_to_none=True)

    assert [x.item() for x in packed_losses] == pytest.approx(alone_losses, abs=1e-5)
    assert alone.keys() == together.keys() and len(alone) > 5
    for name in alone:
        torch.testing.assert_close(together[name], alone[name], rtol=1e-4, atol=1e-6)
    assert model.config._attn_implementation == "sdpa"  # restored after the packed forward

    # The check can fail: one causal span over the whole row (no boundaries) changes every later example.
    ids = torch.tensor([[t for p, r in items for t in (*p, *r)]])
    positions = torch.cat([torch.arange(len(p) + len(r)) for p, r in items])[None]
    with torch.no_grad(), packed_attention(model):
        run = lambda bounds: model.model(input_ids=ids, position_ids=positions, **{BOUNDS_KEYWORD: bounds})  # noqa: E731
        separate = run(tuple(np.cumsum([0] + [len(p) + len(r) for p, r in items]).tolist())).last_hidden_state
        leaky = run((0, ids.shape[1])).last_hidden_state
    first = len(items[0][0]) + len(items[0][1])
    torch.testing.assert_close(leaky[:, :first], separate[:, :first])  # the first example sees nothing earlier
    assert (leaky[:, first:] - separate[:, first:]).abs().max() > 1e-3


@pytest.mark.parametrize("kind", ["nll", "dft"])
def test_packed_step_loss_equals_padded_with_token_masks(tiny_model_dir, kind):
    from curate.lm.loading import load
    from curate.lm.templates import encode_pair
    from curate.train.data import encode_sft
    from curate.train.sft import _step_loss

    lm = load(str(tiny_model_dir), dtype="float32", device="cpu")
    rows = [dict(r) for r in ROWS[:5]]
    for row in rows[::2]:
        n = len(encode_pair(row["prompt"], row["response"], lm.tokenizer).response_ids)
        row["token_mask"] = [int(i % 3 != 0) for i in range(n)]
    examples, counts = encode_sft(rows, lm.tokenizer)
    assert counts["masked_tokens"] > 0
    kept = int(sum(sum(e.weights) for e in examples))
    packed, packed_nll = _step_loss(lm.model, examples, kind, kept, 0, lm.device, packed=True)
    padded, padded_nll = _step_loss(lm.model, examples, kind, kept, 0, lm.device, packed=False)
    assert packed.item() == pytest.approx(padded.item(), abs=1e-6)
    assert packed_nll == pytest.approx(padded_nll, abs=1e-4)


def test_sliding_window_layers_keep_their_window_inside_each_example(tmp_path):
    from transformers import MistralConfig, MistralForCausalLM

    from curate.train.logprobs import response_logprobs
    from curate.train.packing import packed_response_logprobs, supports_packing

    torch.manual_seed(0)
    config = MistralConfig(vocab_size=256, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                           num_attention_heads=4, num_key_value_heads=2, sliding_window=4,
                           max_position_embeddings=128)
    model = MistralForCausalLM(config).eval()
    assert supports_packing(model)
    items = _items(1)
    with torch.no_grad():
        alone = [response_logprobs(model, [item], 0, torch.device("cpu"))[0] for item in items]
        packed = packed_response_logprobs(model, items, torch.device("cpu"))
    for a, b in zip(alone, packed):
        torch.testing.assert_close(b, a, rtol=1e-5, atol=1e-5)


def test_models_that_cannot_pack_are_detected(tiny_model_dir):
    from transformers import AutoModelForCausalLM

    from curate.train.packing import supports_packing

    eager = AutoModelForCausalLM.from_pretrained(str(tiny_model_dir), attn_implementation="eager")
    assert not supports_packing(eager)
    sdpa = AutoModelForCausalLM.from_pretrained(str(tiny_model_dir))
    assert supports_packing(sdpa)


def test_training_packs_by_default_and_pads_on_request(tiny_model_dir, tmp_path):
    fast = dict(steps=4, lr=5e-3, batch_tokens=256, warmup=1, save_every=0)
    packed = train_sft(str(tiny_model_dir), ROWS, tmp_path / "packed", SFTConfig(**fast))
    padded = train_sft(str(tiny_model_dir), ROWS, tmp_path / "padded", SFTConfig(**fast, packing=False))
    assert packed["packing"] is True and padded["packing"] is False
    assert packed["micro_batches"] <= padded["micro_batches"]
    lines = [json.loads(line) for line in (tmp_path / "packed" / "metrics.jsonl").read_text().splitlines()]
    assert all(line["padding"] == 0.0 and 0 < line["input_tokens"] <= 256 for line in lines)
    with pytest.raises(BadUsage, match="packing"):
        train_sft(str(tiny_model_dir), ROWS, tmp_path / "padded", SFTConfig(**{**fast, "steps": 6}), resume=True)


def test_a_fully_masked_micro_batch_adds_nothing(tiny_model_dir):
    from curate.lm.loading import load
    from curate.train.data import SFTExample
    from curate.train.sft import _step_loss

    lm = load(str(tiny_model_dir), dtype="float32", device="cpu")
    batch = [SFTExample([1, 5, 6, 7, 2], 2, [0.0, 0.0, 0.0]), SFTExample([1, 9, 2], 1, [0.0, 0.0])]
    loss, nll = _step_loss(lm.model, batch, "nll", 4, 0, lm.device)
    loss.backward()
    assert loss.item() == 0.0 and nll == 0.0
    assert all(p.grad is None or not p.grad.any() for p in lm.model.parameters())
