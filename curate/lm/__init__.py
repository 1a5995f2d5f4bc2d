"""The model layer: loading, batched scoring and generation. It knows no catalog.

Names are imported on first use so that `import curate.lm.templates` (and the CLI)
does not pay for importing torch.
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "LM": "loading", "load": "loading",
    "Completion": "generation", "GenerationBackend": "generation", "HFBackend": "generation",
    "SamplingParams": "generation",
    "hidden_states": "scoring", "token_logprobs": "scoring",
    "Encoded": "templates", "encode_pair": "templates", "encode_pairs": "templates", "render_prompt": "templates",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(f"curate.lm.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module 'curate.lm' has no attribute {name!r}")
