"""The `hf` generation backend: order, seeding, greedy decoding, finish reasons and stop strings."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from curate.lm import byte_tokenizer
from curate.lm.byte_tokenizer import EOS, PAD
from curate.lm.generation import Completion, HFBackend, SamplingParams, _cut_at_stop
from curate.lm.loading import LM

PROMPTS = ["a much longer prompt than the others, with several clauses, to force left padding",
           "hi", [{"role": "user", "content": "chat prompt"}], "mid-length prompt", "?"]


def texts(groups: list[list[Completion]]) -> list[list[list[int]]]:
    return [[c.token_ids for c in group] for group in groups]


def biased_lm(lm: LM, token: int) -> LM:
    """The tiny model with an LM head that always prefers `token` (a bias dominates zero weights)."""
    import copy

    model = copy.deepcopy(lm.model)
    head = torch.nn.Linear(model.config.hidden_size, model.config.vocab_size, bias=True)
    with torch.no_grad():
        head.weight.zero_()
        head.bias.zero_()
        head.bias[token] = 20.0
    model.lm_head = head
    model.config.tie_word_embeddings = False
    return LM(model, lm.tokenizer, f"biased-{token}", "biased", lm.device)


def test_n_completions_per_prompt_in_prompt_order(tiny_lm):
    backend = HFBackend(tiny_lm, batch_size=4)  # n=2 -> 2 prompts per batch -> 3 batches
    out = backend.generate(PROMPTS, 2, SamplingParams(temperature=1.0, max_new_tokens=6, seed=0))
    assert len(out) == len(PROMPTS)
    for index, (prompt, group) in enumerate(zip(PROMPTS, out)):
        assert len(group) == 2
        for sample, completion in enumerate(group):
            assert completion.prompt_index == index
            assert completion.sample_index == sample
            assert completion.prompt_ids == backend.encode(prompt)
            assert 1 <= len(completion.token_ids) <= 6
            assert completion.finish_reason in ("stop", "length")
    assert backend.encode("hi") == byte_tokenizer.byte_ids("hi\n")
    assert backend.encode(PROMPTS[2]) == byte_tokenizer.byte_ids("User: chat prompt\nAssistant: ")


def test_empty_prompt_list(tiny_lm):
    assert HFBackend(tiny_lm).generate([], 3, SamplingParams(max_new_tokens=4)) == []


def test_same_seed_same_completions_other_seed_other_completions(tiny_lm):
    backend = HFBackend(tiny_lm, batch_size=16)
    sampling = SamplingParams(temperature=1.0, max_new_tokens=8, seed=123)
    first = backend.generate(PROMPTS[:2], 8, sampling)
    again = backend.generate(PROMPTS[:2], 8, sampling)
    other = backend.generate(PROMPTS[:2], 8, SamplingParams(temperature=1.0, max_new_tokens=8, seed=124))
    assert texts(first) == texts(again)
    assert [[c.text for c in g] for g in first] == [[c.text for c in g] for g in again]
    assert texts(first) != texts(other)
    # samples of one prompt differ from each other (near-uniform model, 8 tokens each)
    assert len({tuple(ids) for ids in texts(first)[0]}) == 8


def test_generation_leaves_the_global_rng_alone(tiny_lm):
    torch.manual_seed(7)
    expected = torch.rand(3)
    torch.manual_seed(7)
    HFBackend(tiny_lm).generate(["x"], 2, SamplingParams(temperature=1.0, max_new_tokens=4, seed=99))
    assert torch.equal(torch.rand(3), expected)


def test_top_k_zero_means_no_cut_and_top_k_cuts(tiny_lm):
    backend = HFBackend(tiny_lm, batch_size=400)
    free = backend.generate(["hello"], 400, SamplingParams(temperature=1.0, max_new_tokens=1, seed=1))[0]
    cut = backend.generate(["hello"], 400, SamplingParams(temperature=1.0, top_k=5, max_new_tokens=1, seed=1))[0]
    first_free = {c.token_ids[0] for c in free if c.token_ids}
    first_cut = {c.token_ids[0] for c in cut if c.token_ids}
    assert len(first_free) > 100  # no hidden default top-k (transformers' default would be 50)
    assert len(first_cut) <= 5


def manual_greedy(lm: LM, ids: list[int], steps: int) -> list[int]:
    out: list[int] = []
    with torch.no_grad():
        for _ in range(steps):
            token = int(lm.model(torch.tensor([ids + out])).logits[0, -1].argmax())
            out.append(token)
            if token == EOS:
                break
    return out


def test_greedy_is_deterministic_and_equals_a_manual_greedy_loop(sharp_lm):
    backend = HFBackend(sharp_lm, batch_size=8)
    greedy = SamplingParams(temperature=0, max_new_tokens=10, seed=0)
    out = backend.generate(PROMPTS, 1, greedy)
    assert texts(out) == texts(backend.generate(PROMPTS, 1, SamplingParams(temperature=0, max_new_tokens=10, seed=5)))
    for prompt, (completion,) in zip(PROMPTS, out):
        expected = manual_greedy(sharp_lm, backend.encode(prompt), 10)
        assert completion.token_ids == expected
        # the same prompt alone (no padding) gives the same tokens
        assert backend.generate([prompt], 1, greedy)[0][0].token_ids == expected
    assert len({tuple(ids) for (ids,) in texts(out)}) == len(PROMPTS)  # the model is not degenerate


def test_greedy_with_several_samples_is_refused(tiny_lm):
    with pytest.raises(ValueError, match="greedy"):
        HFBackend(tiny_lm).generate(["x"], 2, SamplingParams(temperature=0, max_new_tokens=2))


def test_finish_reason_length_when_the_budget_is_hit(tiny_lm):
    out = HFBackend(tiny_lm).generate(PROMPTS, 4, SamplingParams(temperature=1.0, max_new_tokens=5, seed=3))
    completions = [c for group in out for c in group]
    for completion in completions:
        if EOS in completion.token_ids:
            assert completion.finish_reason == "stop"
            assert completion.token_ids.index(EOS) == len(completion.token_ids) - 1  # cut right after EOS
        else:
            assert completion.finish_reason == "length" and completion.truncated
    assert any(c.finish_reason == "length" and len(c.token_ids) == 5 for c in completions)


def test_finish_reason_stop_when_eos_is_produced(tiny_lm):
    backend = HFBackend(biased_lm(tiny_lm, EOS), batch_size=4)
    for sampling in (SamplingParams(temperature=0, max_new_tokens=8), SamplingParams(temperature=1.0, max_new_tokens=8)):
        for completion in [c for group in backend.generate(PROMPTS, 1, sampling) for c in group]:
            assert completion.finish_reason == "stop" and not completion.truncated
            assert completion.token_ids == [EOS]
            assert completion.text == ""


def test_eos_in_a_batch_does_not_leak_padding(tiny_lm):
    """A sequence that ends early is padded by generate; the completion stops at its EOS."""
    sampling = SamplingParams(temperature=1.0, max_new_tokens=12, seed=11)
    out = HFBackend(tiny_lm, batch_size=200).generate(["z"], 200, sampling)[0]
    stopped = [c for c in out if c.finish_reason == "stop"]
    running = [c for c in out if c.finish_reason == "length"]
    assert stopped and running  # some end early while others run to the budget in the same batch
    for completion in stopped:
        assert completion.token_ids[-1] == EOS and EOS not in completion.token_ids[:-1]
        assert len(completion.token_ids) <= 12


def test_stop_strings_cut_the_text(tiny_lm):
    backend = HFBackend(tiny_lm)
    sampling = SamplingParams(temperature=1.0, max_new_tokens=40, seed=21)
    (plain,) = backend.generate(["stop here"], 1, sampling)[0]
    candidates = [ch for ch in plain.text[3:] if ch.isascii() and ch.isalnum()]
    assert candidates, plain.text
    stop = candidates[0]
    (cut,) = backend.generate(["stop here"], 1, SamplingParams(temperature=1.0, max_new_tokens=40, seed=21,
                                                              stop=(stop, "never-occurs")))[0]
    assert cut.text == plain.text[: plain.text.index(stop)]
    assert stop not in cut.text
    assert cut.finish_reason == "stop"


def test_stop_early_ends_the_tokens_at_the_stop_string(tiny_lm):
    """With stop_early, generation itself stops at the stop string: the tokens end with it."""
    sampling = SamplingParams(temperature=1.0, max_new_tokens=40, seed=21)
    (plain,) = HFBackend(tiny_lm).generate(["stop here"], 1, sampling)[0]
    stop = [ch for ch in plain.text[3:] if ch.isascii() and ch.isalnum()][0]
    early = HFBackend(tiny_lm, stop_early=True)
    (cut,) = early.generate(["stop here"], 1, replace(sampling, stop=(stop,)))[0]
    assert cut.text == plain.text[: plain.text.index(stop)]
    assert cut.finish_reason == "stop"
    decoded = byte_tokenizer.build().decode(cut.token_ids, skip_special_tokens=True)
    assert decoded == cut.text + stop
    assert len(cut.token_ids) < len(plain.token_ids)


def test_stop_token_ids_end_a_sequence_like_eos(tiny_lm):
    stop_token = byte_tokenizer.OFFSET + ord("!")
    backend = HFBackend(biased_lm(tiny_lm, stop_token), stop_token_ids=[stop_token])
    for completion in [c for group in backend.generate(PROMPTS, 1, SamplingParams(temperature=0, max_new_tokens=6))
                       for c in group]:
        assert completion.token_ids == [stop_token]
        assert completion.finish_reason == "stop" and completion.text == ""
    # without the option the same token is ordinary text
    (plain,) = HFBackend(biased_lm(tiny_lm, stop_token)).generate(["x"], 1, SamplingParams(temperature=0,
                                                                                            max_new_tokens=3))[0]
    assert plain.text == "!!!" and plain.finish_reason == "length"


def test_raw_template_feeds_the_prompt_as_it_is(tiny_lm):
    raw = HFBackend(tiny_lm, template="raw")
    assert raw.encode("Once upon") == byte_tokenizer.byte_ids("Once upon")
    assert raw.encode([{"role": "user", "content": "hi"}]) == byte_tokenizer.byte_ids("User: hi\nAssistant: ")


def test_cut_at_stop():
    assert _cut_at_stop("abc STOP def END", ["END", "STOP"]) == ("abc ", True)
    assert _cut_at_stop("abc", ["x", ""]) == ("abc", False)
    assert _cut_at_stop("abc", []) == ("abc", False)


# --- known bugs -------------------------------------------------------------------------------


def test_stop_strings_cut_the_token_ids_too(tiny_lm):
    backend = HFBackend(tiny_lm)
    (plain,) = backend.generate(["stop here"], 1, SamplingParams(temperature=1.0, max_new_tokens=40, seed=21))[0]
    stop = [ch for ch in plain.text[3:] if ch.isascii() and ch.isalnum()][0]
    (cut,) = backend.generate(["stop here"], 1, SamplingParams(temperature=1.0, max_new_tokens=40, seed=21,
                                                              stop=(stop,)))[0]
    assert cut.text == plain.text[: plain.text.index(stop)]
    decoded = byte_tokenizer.build().decode(cut.token_ids, skip_special_tokens=True)
    # At most the text plus the stop string itself (as vLLM returns), never what came after it.
    assert len(decoded) <= len(cut.text) + len(stop)


def test_sampled_pad_tokens_are_kept(tiny_lm):
    backend = HFBackend(biased_lm(tiny_lm, PAD))
    (completion,) = backend.generate(["x"], 1, SamplingParams(temperature=0, max_new_tokens=5))[0]
    assert completion.finish_reason == "length"
    assert completion.token_ids == [PAD] * 5


def _embedded_shapes(lm: LM) -> list[tuple[int, ...]]:
    shapes: list[tuple[int, ...]] = []
    lm.model.get_input_embeddings().register_forward_hook(lambda _m, args, _out: shapes.append(tuple(args[0].shape)))
    return shapes


@pytest.mark.parametrize("n", [2, 5])
def test_shared_prompt_prefill_gives_the_completions_of_n_copies(tiny_lm, n):
    """Each prompt is run once for its n samples, and the samples are those of `generate(num_return_sequences=n)`
    (same seed: same tokens), with left padding of prompts of different lengths in one batch."""
    import copy

    prompts = [p for p in PROMPTS if p != "?"]  # every prompt longer than one token
    sampling = SamplingParams(temperature=1.0, max_new_tokens=7, seed=11)
    shared_lm = replace(tiny_lm, model=copy.deepcopy(tiny_lm.model))
    shapes = _embedded_shapes(shared_lm)
    shared = HFBackend(shared_lm, batch_size=64).generate(prompts, n, sampling)
    copies = HFBackend(tiny_lm, batch_size=64, share_prompt=False).generate(prompts, n, sampling)
    assert texts(shared) == texts(copies)
    width = max(len(HFBackend(tiny_lm).encode(p)) for p in prompts)
    assert shapes[0] == (len(prompts), width - 1)  # the prefill: one row per prompt, not per sample
    assert all(shape[0] == len(prompts) * n and shape[1] == 1 for shape in shapes[1:])  # then one token a step


def test_one_token_prompt_falls_back_to_copies(tiny_lm):
    """A prompt of one token has nothing to cache before its last token: the batch is generated as before."""
    sampling = SamplingParams(temperature=1.0, max_new_tokens=4, seed=2)
    one = HFBackend(tiny_lm, template="raw")
    assert len(one.encode("")) == 1  # the BOS alone
    assert texts(one.generate(["", "hi"], 3, sampling)) == texts(
        HFBackend(tiny_lm, template="raw", share_prompt=False).generate(["", "hi"], 3, sampling))


def test_shared_prompt_prefill_through_a_lora_wrapper(tiny_lm):
    """GRPO with --lora generates through a peft wrapper: the shared prefill gives the same samples there."""
    import copy

    peft = pytest.importorskip("peft")
    config = peft.LoraConfig(r=4, lora_alpha=8, target_modules="all-linear", init_lora_weights=False)
    wrapped = replace(tiny_lm, model=peft.get_peft_model(copy.deepcopy(tiny_lm.model), config))
    sampling = SamplingParams(temperature=1.0, max_new_tokens=6, seed=5)
    prompts = ["first prompt", "a second, longer prompt"]
    shared = HFBackend(wrapped).generate(prompts, 3, sampling)
    assert texts(shared) == texts(HFBackend(wrapped, share_prompt=False).generate(prompts, 3, sampling))
    assert texts(shared) != texts(HFBackend(tiny_lm).generate(prompts, 3, sampling))  # the adapters are in use


def test_shared_prompt_prefill_on_a_model_without_position_ids(tiny_lm):
    """ALiBi models (Bloom) take no position ids; their shared prefill gives the samples of n copies too."""
    from transformers import BloomConfig, BloomForCausalLM

    torch.manual_seed(0)
    bloom = BloomForCausalLM(BloomConfig(n_layer=2, hidden_size=32, n_head=4, vocab_size=len(tiny_lm.tokenizer),
                                         bos_token_id=byte_tokenizer.BOS, eos_token_id=EOS, pad_token_id=PAD)).eval()
    lm = LM(bloom, tiny_lm.tokenizer, "tiny-bloom", "tiny-bloom", tiny_lm.device)
    sampling = SamplingParams(temperature=1.0, max_new_tokens=6, seed=4)
    prompts = ["short", "a much longer prompt, padded on the left of the short one"]
    shared = HFBackend(lm).generate(prompts, 3, sampling)
    assert texts(shared) == texts(HFBackend(lm, share_prompt=False).generate(prompts, 3, sampling))
