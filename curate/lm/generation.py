"""Generation backends behind one protocol: `generate(prompts, n, sampling) -> completions`.

`hf` runs transformers' `generate` in left-padded batches with the KV cache. For n > 1
samples per prompt, `generate(num_return_sequences=n)` would copy each prompt n times before
the prefill and run it n times; here the prompts (but their last token) are run once, their
cache is repeated n times, and `generate` continues from it: for prompts of P tokens and
completions of C, the prefill costs P instead of n*P per prompt (GRPO's G samples of one
prompt are the common case). Other backends (vLLM, OpenAI-compatible servers) implement the
same protocol elsewhere.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import torch

from curate.lm.loading import LM
from curate.lm.parts import cache_keyword, decoder_of, takes
from curate.lm.templates import Prompt, prompt_token_ids


@dataclass(frozen=True)
class SamplingParams:
    temperature: float = 1.0  # 0 means greedy
    top_p: float = 1.0
    top_k: int = 0  # 0: no top-k cut
    max_new_tokens: int = 256
    seed: int = 0
    stop: tuple[str, ...] = ()


@dataclass
class Completion:
    text: str
    token_ids: list[int]
    finish_reason: str  # "stop" (EOS or a stop string) or "length"
    prompt_index: int = 0
    sample_index: int = 0
    prompt_ids: list[int] = field(default_factory=list)

    @property
    def truncated(self) -> bool:
        return self.finish_reason == "length"


class GenerationBackend(Protocol):
    name: str

    def generate(self, prompts: Sequence[Prompt], n: int, sampling: SamplingParams) -> list[list[Completion]]:
        """`n` completions for each prompt, in prompt order."""
        ...


def _cut_at_stop(text: str, stops: Sequence[str]) -> tuple[str, bool]:
    positions = [text.find(s) for s in stops if s and s in text]
    if not positions:
        return text, False
    return text[: min(positions)], True


def shared_prompt_cache(model: Any, input_ids: torch.Tensor, mask: torch.Tensor, n: int) -> Any:
    """The KV cache of every left-padded prompt but its last token, run once and repeated n times
    (row i*n + j holds prompt i), with the positions and mask `generate` itself would use."""
    from transformers import DynamicCache

    decoder = decoder_of(model)  # the decoder skips the LM head over the prompt
    head, head_mask = input_ids[:, :-1], mask[:, :-1]
    extra: dict[str, Any] = {}
    if takes(decoder, "position_ids"):  # not ALiBi models (Bloom): as `generate` does
        extra["position_ids"] = (head_mask.cumsum(-1) - 1).masked_fill(head_mask == 0, 0)
    cache = DynamicCache(config=model.config)
    decoder(input_ids=head, attention_mask=head_mask, use_cache=True, **{cache_keyword(decoder): cache}, **extra)
    cache.batch_repeat_interleave(n)
    return cache


class HFBackend:
    """Batched sampling with transformers' `generate`."""

    name = "hf"

    def __init__(self, lm: LM, batch_size: int = 16, template: str = "auto", stop_early: bool = False,
                 stop_token_ids: Sequence[int] = (), share_prompt: bool = True):
        self.lm = lm
        self.share_prompt = share_prompt  # run each prompt once for its n samples (False: as `generate` does)
        self.batch_size = batch_size
        self.template = template
        self.stop_early = stop_early  # end each sequence at its first stop string instead of at max_new_tokens
        self.stop_token_ids = tuple(stop_token_ids)  # tokens that end a sequence like EOS does

    def encode(self, prompt: Prompt) -> list[int]:
        return prompt_token_ids(prompt, self.lm.tokenizer, self.template)

    @torch.inference_mode()
    def generate(self, prompts: Sequence[Prompt], n: int, sampling: SamplingParams) -> list[list[Completion]]:
        encoded = [self.encode(p) for p in prompts]
        results: list[list[Completion]] = [[] for _ in prompts]
        per_batch = max(1, self.batch_size // max(n, 1))
        with torch.random.fork_rng(devices=[self.lm.device] if self.lm.device.type == "cuda" else []):
            torch.manual_seed(sampling.seed)
            order = sorted(range(len(prompts)), key=lambda i: len(encoded[i]))
            for start in range(0, len(order), per_batch):
                batch = order[start:start + per_batch]
                for index, completions in zip(batch, self._generate_batch([encoded[i] for i in batch], n, sampling)):
                    for sample, completion in enumerate(completions):
                        completion.prompt_index, completion.sample_index = index, sample
                    results[index] = completions
        return results

    def _generate_batch(self, batch: list[list[int]], n: int, sampling: SamplingParams) -> list[list[Completion]]:
        tokenizer, model = self.lm.tokenizer, self.lm.model
        pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
        width = max(len(ids) for ids in batch)
        input_ids = torch.full((len(batch), width), pad, dtype=torch.long)
        mask = torch.zeros((len(batch), width), dtype=torch.long)
        for row, ids in enumerate(batch):  # left padding: every prompt ends where generation starts
            input_ids[row, width - len(ids):] = torch.tensor(ids)
            mask[row, width - len(ids):] = 1
        greedy = sampling.temperature <= 0
        kwargs = dict(do_sample=not greedy, max_new_tokens=sampling.max_new_tokens, num_return_sequences=n,
                      pad_token_id=pad, eos_token_id=tokenizer.eos_token_id)
        if not greedy:
            kwargs.update(temperature=sampling.temperature, top_p=sampling.top_p, top_k=sampling.top_k or None)
        elif n > 1:
            raise ValueError("greedy decoding (temperature 0) with n > 1 gives n identical completions")
        if self.stop_early and sampling.stop:
            kwargs.update(stop_strings=list(sampling.stop), tokenizer=tokenizer)
        if self.stop_token_ids:
            kwargs.update(eos_token_id=[tokenizer.eos_token_id, *self.stop_token_ids])
        input_ids, mask = input_ids.to(self.lm.device), mask.to(self.lm.device)
        if self.share_prompt and n > 1 and min(len(ids) for ids in batch) > 1 and not model.config.is_encoder_decoder:
            kwargs[cache_keyword(model)] = shared_prompt_cache(model, input_ids, mask, n)
            input_ids, mask = input_ids.repeat_interleave(n, 0), mask.repeat_interleave(n, 0)
            kwargs["num_return_sequences"] = 1
        output = model.generate(input_ids=input_ids, attention_mask=mask, **kwargs)
        new_tokens = output[:, width:].tolist()
        out: list[list[Completion]] = []
        for row, ids in enumerate(batch):
            group = []
            for tokens in new_tokens[row * n:(row + 1) * n]:
                group.append(self._completion(tokens, ids, sampling))
            out.append(group)
        return out

    def _completion(self, tokens: list[int], prompt_ids: list[int], sampling: SamplingParams) -> Completion:
        eos = self.lm.tokenizer.eos_token_id
        finish = "length"
        ends = [i for i, t in enumerate(tokens) if t == eos or t in self.stop_token_ids]
        if ends:
            tokens = tokens[: ends[0] + 1]
            finish = "stop"
        elif self.stop_early and sampling.stop:
            # a sequence ended by a stop string is padded to the batch's length; only then is padding there
            pad = self.lm.tokenizer.pad_token_id
            while tokens and pad is not None and tokens[-1] == pad and pad != eos:
                tokens = tokens[:-1]
        text = self._decode(tokens)
        text, stopped = _cut_at_stop(text, sampling.stop)
        if stopped:
            finish = "stop"
            tokens = self._through_stop(tokens, sampling.stop)
        return Completion(text, tokens, finish, prompt_ids=list(prompt_ids))

    def _decode(self, tokens: list[int]) -> str:
        eos = self.lm.tokenizer.eos_token_id
        return self.lm.tokenizer.decode([t for t in tokens if t != eos and t not in self.stop_token_ids],
                                        skip_special_tokens=True)

    def _through_stop(self, tokens: list[int], stops: Sequence[str]) -> list[int]:
        """The shortest prefix of `tokens` whose text contains a stop string: what was generated up to
        the stop, so a loss over `token_ids` never trains on the text cut after it."""
        low, high = 1, len(tokens)
        while low < high:
            middle = (low + high) // 2
            if _cut_at_stop(self._decode(tokens[:middle]), stops)[1]:
                high = middle
            else:
                low = middle + 1
        return tokens[:low]
