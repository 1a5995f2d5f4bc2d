"""A scripted in-process generation backend that counts what it is asked for."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from curate.lm.identity import BackendIdentity, canonical, derive_seed
from curate.lm.generation import Completion, SamplingParams
from tests.synth.server import canned


class ScriptedBackend:
    """Answers like the fake OpenAI server (`canned`), or with `respond(prompt, n, seed) -> [(text, finish)]`."""

    name = "scripted"

    def __init__(self, respond: Callable[[Any, int, int], list[tuple[str, str]]] | None = None,
                 model: str = "scripted-model", chunk: int = 4):
        self.respond = respond
        self.identity = BackendIdentity(backend="scripted", model=model, model_hash="hash-" + model, template="raw")
        self.calls: list[list[Any]] = []  # the prompts of each generate call
        self.chunk = chunk

    @property
    def prompts_generated(self) -> int:
        return sum(len(c) for c in self.calls)

    def chunk_size(self, n: int) -> int:
        return self.chunk

    def generate(self, prompts: Sequence[Any], n: int, sampling: SamplingParams) -> list[list[Completion]]:
        self.calls.append(list(prompts))
        out = []
        for index, prompt in enumerate(prompts):
            seed = derive_seed(sampling.seed, canonical(prompt))
            if self.respond is not None:
                answers = self.respond(prompt, n, seed)
            else:
                body = {"prompt": prompt if isinstance(prompt, str) else prompt[-1]["content"], "n": n, "seed": seed}
                answers = [(text, "stop") for text in canned(body)]
            out.append([Completion(text, list(range(len(text.split()))), finish, prompt_index=index, sample_index=j)
                        for j, (text, finish) in enumerate(answers)])
        return out
