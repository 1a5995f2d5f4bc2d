"""Where the pieces of a transformers model are, across peft wrappers and transformers versions.

Generation (`curate.lm.generation`) and the trainers (`curate.train`) call the decoder and pass
a KV cache themselves; one place says how to find them.
"""

from __future__ import annotations

import inspect
from typing import Any


def unwrap(model: Any) -> Any:
    """The transformers model under a peft wrapper (LoRA layers stay injected in it)."""
    return model.get_base_model() if hasattr(model, "get_base_model") else model


def decoder_of(model: Any) -> Any:
    """The model's decoder stack: hidden states without the LM head."""
    base = unwrap(model)
    decoder = base.get_decoder() if hasattr(base, "get_decoder") else None
    return decoder if decoder is not None else base.base_model


def cache_keyword(module: Any) -> str:
    """transformers 5 names the cache argument `cache`; earlier versions `past_key_values` (a peft
    wrapper's forward takes **kwargs: its base model's signature says which)."""
    return "cache" if "cache" in inspect.signature(unwrap(module).forward).parameters else "past_key_values"


def takes(module: Any, argument: str) -> bool:
    """Whether `module.forward` names `argument` (ALiBi models such as Bloom take no position ids)."""
    return argument in inspect.signature(unwrap(module).forward).parameters
