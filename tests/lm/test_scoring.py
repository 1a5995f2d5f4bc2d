"""Batched scoring equals one-at-a-time scoring and a brute-force forward pass, under padding.

Acceptance: per-token log-probs and last-layer hidden states from length-bucketed,
right-padded batches match unbatched results within 1e-5 in float32.
"""

from __future__ import annotations

import json
import numpy as np
import pytest
import torch

from curate.lm.batching import pack
from curate.lm.scoring import hidden_states, token_logprobs
from curate.lm.templates import Encoded, encode_pairs
from tests.conftest import shared_file

TOL = 1e-5
# A real model over sequences of ~450 tokens: batched and one-at-a-time kernels sum in different orders,
# and float32 rounding drifts past 1e-5 under some thread schedules (measured up to 1.3e-5).
REAL_MODEL_TOL = 5e-5
POOLS = (None, "mean", "last")


def varied_pairs():
    """Prompts and responses of very different lengths (1 to ~700 tokens), text and chat, one without a response."""
    prompts = [
        "Hi",
        "x",
        "Explain, in detail, why the sky is blue and sunsets are red. " * 6,
        [{"role": "system", "content": "You are terse."}, {"role": "user", "content": "2+2?"}],
        "Translate to French: the cat sleeps on the warm windowsill all afternoon.",
        "Write a poem " + "about the sea and its many moods, " * 10,
        "Q",
        "Summarise: " + "Lorem ipsum dolor sit amet, consectetur adipiscing elit. " * 4,
        "No response here",
        "ünïcödé prompt — 数学 😀",
    ]
    responses = [
        "Hello!",
        "y" * 300,
        "Rayleigh scattering.",
        "4",
        "Le chat dort sur le rebord de la fenêtre chaud tout l'après-midi.",
        "Waves",
        "A " * 150,
        "Lorem ipsum.",
        None,
        "réponse: 4 ✓",
    ]
    return prompts, responses


@pytest.fixture(scope="module")
def tiny_items(tiny_lm) -> list[Encoded]:
    prompts, responses = varied_pairs()
    return encode_pairs(prompts, responses, tiny_lm.tokenizer)


def reference_logprobs(lm, item: Encoded) -> np.ndarray:
    """What a user would write: the full forward, log-softmax, gathered at the response positions."""
    with torch.no_grad():
        ids = torch.tensor([item.input_ids])
        logprobs = lm.model(ids).logits.float().log_softmax(-1)[0]
        start = len(item.prompt_ids) - 1
        targets = torch.tensor(item.response_ids, dtype=torch.long)
        picked = logprobs[start:start + len(item.response_ids)].gather(-1, targets[:, None]).squeeze(-1)
    return picked.numpy()


def brute_force(lm, item: Encoded) -> tuple[np.ndarray, torch.Tensor]:
    """One plain forward: response log-probs from `model(ids).logits` and the last (post-norm) hidden states."""
    with torch.no_grad():
        out = lm.model(torch.tensor([item.input_ids]), output_hidden_states=True)
        logprobs = out.logits.float().log_softmax(-1)[0]
        start = len(item.prompt_ids) - 1
        targets = torch.tensor(item.response_ids, dtype=torch.long)
        picked = logprobs[start:start + len(item.response_ids)].gather(-1, targets[:, None]).squeeze(-1)
    return picked.numpy(), out.hidden_states[-1][0].float()


def full_hidden(lm, item: Encoded) -> torch.Tensor:
    """Post-norm last-layer states of the whole sequence, from the plain unbatched forward."""
    with torch.no_grad():
        return lm.model.model(torch.tensor([item.input_ids])).last_hidden_state[0].float()


def reference_hidden(lm, item: Encoded, positions: str, pool: str | None, states=None) -> np.ndarray:
    states = full_hidden(lm, item) if states is None else states
    if positions == "response":
        start = len(item.prompt_ids) - 1
        states = states[start:start + len(item.response_ids)]
    if pool == "mean":
        states = states.mean(0) if len(states) else torch.zeros(states.shape[-1])
    elif pool == "last":
        states = states[-1] if len(states) else torch.zeros(states.shape[-1])
    return states.numpy()


def assert_close_lists(got: list[np.ndarray], want: list[np.ndarray], tol: float = TOL) -> float:
    assert len(got) == len(want)
    worst = 0.0
    for index, (a, b) in enumerate(zip(got, want)):
        assert a.shape == b.shape, f"item {index}: shape {a.shape} != {b.shape}"
        assert a.dtype == np.float32
        assert np.isfinite(a).all()
        if a.size:  # float32 log-probs of -20 carry ~2e-6 of rounding per op: scale past magnitude 1
            worst = max(worst, float((np.abs(a - b) / np.maximum(1.0, np.abs(b))).max()))
    assert worst <= tol, f"max scaled diff {worst:g} > {tol:g}"
    return worst


def batches_are_padded(items: list[Encoded], budget: int) -> bool:
    """At least one batch mixes items of different lengths, so it is really padded."""
    lengths = [len(item) for item in items]
    return any(len({lengths[i] for i in batch}) > 1 for batch in pack(lengths, budget))


def test_tiny_items_are_padded_in_batches(tiny_items):
    lengths = [len(item) for item in tiny_items]
    assert max(lengths) > 20 * min(lengths)
    assert batches_are_padded(tiny_items, 2048)
    assert any(len(batch) > 2 for batch in pack(lengths, 2048))


@pytest.mark.parametrize("budget,window", [(2048, 4096), (100_000, 4096), (1024, 3)])
def test_token_logprobs_batched_equals_unbatched_and_brute_force(tiny_lm, tiny_items, budget, window):
    batched = list(token_logprobs(tiny_lm, tiny_items, token_budget=budget, window=window))
    single = [next(token_logprobs(tiny_lm, [item])) for item in tiny_items]
    brute = [reference_logprobs(tiny_lm, item) for item in tiny_items]
    for item, lp in zip(tiny_items, batched):
        assert lp.shape == (len(item.response_ids),)
        assert (lp <= 0).all()
    assert_close_lists(batched, single)
    assert_close_lists(batched, brute)
    assert batched[8].size == 0  # the None response


@pytest.mark.parametrize("positions", ["response", "all"])
@pytest.mark.parametrize("pool", POOLS)
def test_hidden_states_batched_equals_unbatched_and_brute_force(tiny_lm, tiny_items, positions, pool):
    batched = list(hidden_states(tiny_lm, tiny_items, positions=positions, pool=pool, token_budget=2048))
    single = [next(hidden_states(tiny_lm, [item], positions=positions, pool=pool)) for item in tiny_items]
    brute = [reference_hidden(tiny_lm, item, positions, pool) for item in tiny_items]
    d = tiny_lm.model.config.hidden_size
    for item, states in zip(tiny_items, batched):
        rows = len(item.response_ids) if positions == "response" else len(item)
        assert states.shape == ((d,) if pool else (rows, d))
    assert_close_lists(batched, single)
    assert_close_lists(batched, brute)


def test_hidden_states_are_pre_logit(tiny_lm, tiny_items):
    """The response hidden states, through the LM head, give the scored log-probs."""
    item = tiny_items[4]
    states = next(hidden_states(tiny_lm, [item], positions="response"))
    with torch.no_grad():
        logits = tiny_lm.model.lm_head(torch.from_numpy(states)).log_softmax(-1)
    picked = logits.gather(-1, torch.tensor(item.response_ids)[:, None]).squeeze(-1).numpy()
    np.testing.assert_allclose(picked, next(token_logprobs(tiny_lm, [item])), atol=TOL)


def test_bad_positions_or_pool_are_rejected(tiny_lm, tiny_items):
    with pytest.raises(ValueError, match="positions"):
        hidden_states(tiny_lm, tiny_items, positions="prompt")
    with pytest.raises(ValueError, match="pool"):
        hidden_states(tiny_lm, tiny_items, pool="max")


def test_all_empty_responses_give_empty_arrays(tiny_lm):
    items = encode_pairs(["one", "two two"], [None, None], tiny_lm.tokenizer)
    out = list(token_logprobs(tiny_lm, items))
    assert [a.shape for a in out] == [(0,), (0,)]
    pooled = list(hidden_states(tiny_lm, items, pool="mean"))
    assert all(p.shape == (32,) and not p.any() for p in pooled)


def test_scoring_streams_a_generator_window_by_window(tiny_lm, tiny_items):
    pulled = []

    def source():
        for _ in range(5):
            for item in tiny_items:
                pulled.append(item)
                yield item

    results = token_logprobs(tiny_lm, source(), token_budget=2048, window=4)
    assert pulled == []  # lazy: nothing is read before the first result is asked for
    first = next(results)
    assert len(pulled) == 4
    np.testing.assert_allclose(first, reference_logprobs(tiny_lm, tiny_items[0]), atol=TOL)
    assert len(list(results)) == 5 * len(tiny_items) - 1


def test_stories260k_gsm8k_batched_equals_unbatched_and_brute_force(shared):
    """The acceptance check on a real model: 16 GSM8K question/answer pairs with stories260K."""
    from curate.lm.loading import load

    lm = load(str(shared_file(shared, "models/stories260K")), dtype="float32", device="cpu")
    rows = []
    with open(shared_file(shared, "data/gsm8k/train.jsonl")) as fh:
        for line in fh:
            rows.append(json.loads(line))
            if len(rows) == 16:
                break
    # Very different lengths: the first 8 pairs whole, the next 8 with a short answer.
    prompts = [r["question"] for r in rows]
    responses = [r["answer"] if i < 8 else r["answer"].split("####")[-1].strip() for i, r in enumerate(rows)]
    items = encode_pairs(prompts, responses, lm.tokenizer)
    assert all(item.response_ids[-1] == lm.tokenizer.eos_token_id for item in items)
    lengths = [len(item) for item in items]
    budget = 2 * max(lengths) + 1
    assert batches_are_padded(items, budget)

    batched = list(token_logprobs(lm, items, token_budget=budget))
    single = [next(token_logprobs(lm, [item])) for item in items]
    brute, full = zip(*(brute_force(lm, item) for item in items))
    assert_close_lists(batched, single, REAL_MODEL_TOL)
    assert_close_lists(batched, list(brute), REAL_MODEL_TOL)
    assert sum(a.size for a in batched) == sum(len(item.response_ids) for item in items)
    assert all((a <= 0).all() for a in batched)

    np.testing.assert_allclose(full[0].numpy(), full_hidden(lm, items[0]).numpy(), atol=TOL)  # post-norm states
    got = list(hidden_states(lm, items, positions="all", token_budget=budget))
    one = [next(hidden_states(lm, [item], positions="all")) for item in items]
    assert_close_lists(got, one, REAL_MODEL_TOL)
    assert_close_lists(got, [f.numpy() for f in full], REAL_MODEL_TOL)
    for positions in ("response", "all"):
        for pool in POOLS:
            got = list(hidden_states(lm, items, positions=positions, pool=pool, token_budget=budget))
            ref = [reference_hidden(lm, item, positions, pool, f) for item, f in zip(items, full)]
            assert_close_lists(got, ref, REAL_MODEL_TOL)


def save_tiny(folder, config_class: str, **extra):
    """A random 2-layer model of another architecture, with the byte tokenizer."""
    import transformers

    from curate.lm import byte_tokenizer

    torch.manual_seed(0)
    config = getattr(transformers, config_class)(
        vocab_size=byte_tokenizer.VOCAB_SIZE, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, head_dim=8, max_position_embeddings=512,
        bos_token_id=1, eos_token_id=2, pad_token_id=0, initializer_range=0.5, **extra)
    model_class = getattr(transformers, config_class.replace("Config", "ForCausalLM"))
    model_class(config).save_pretrained(str(folder))
    byte_tokenizer.save(folder)
    return folder


# Architectures whose logits are transformed after the LM head (scale, soft-cap).
ARCHITECTURES = [
    pytest.param("GemmaConfig", {}, id="gemma"),
    pytest.param("Gemma2Config", {"final_logit_softcapping": 5.0}, id="gemma2-softcap"),
    pytest.param("CohereConfig", {"logit_scale": 0.25}, id="cohere-logit-scale"),
    pytest.param("GraniteConfig", {"logits_scaling": 8.0}, id="granite-logits-scaling"),
]


@pytest.mark.parametrize("config_class,extra", ARCHITECTURES)
def test_token_logprobs_match_the_models_own_logits_across_architectures(tmp_path, config_class, extra):
    from curate.lm.loading import load

    lm = load(str(save_tiny(tmp_path / config_class, config_class, **extra)), dtype="float32", device="cpu")
    prompts, responses = varied_pairs()
    items = encode_pairs(prompts[:6], responses[:6], lm.tokenizer)
    batched = list(token_logprobs(lm, items, token_budget=2048))
    assert_close_lists(batched, [reference_logprobs(lm, item) for item in items], tol=1e-4)
