"""`--strategy NAME` to selector class, imported on first use ("module:Class").

Importing a strategy's module may import torch or faiss; the CLI lists and validates names
without paying for that. To add a strategy, add one line here.
"""

from __future__ import annotations

import importlib

from curate.errors import BadUsage

STRATEGIES: dict[str, str] = {
    "fisher": "curate.selectors.sft.fisher:FisherSelector",
    "token-clean": "curate.selectors.sft.token_clean:TokenCleanSelector",
    "ifd": "curate.selectors.sft.ifd:IFDSelector",
    "perplexity": "curate.selectors.sft.perplexity:PerplexitySelector",
    "length": "curate.selectors.sft.length:LengthSelector",
    "random": "curate.selectors.random_sample:RandomSelector",
    "dedup": "curate.selectors.sft.dedup:DedupSelector",
    "diversity": "curate.selectors.sft.diversity:DiversitySelector",
    "decontaminate": "curate.selectors.sft.decontaminate:DecontaminateSelector",
    # RL prompt selection (selectors/rl/) and domain mixing (selectors/mix/):
    "rollout-variance": "curate.selectors.rl.rollout_variance:RolloutVarianceSelector",
    "difficulty": "curate.selectors.rl.difficulty:DifficultySelector",
    "mixing": "curate.selectors.mix.mixing:MixingSelector",
}


def available() -> list[str]:
    """Strategy names whose class can be imported here."""
    return [name for name in STRATEGIES if _importable(name)]


def _importable(name: str) -> bool:
    try:
        get(name)
        return True
    except BadUsage:
        return False


def get(name: str) -> type:
    """The selector class for `name`; a BadUsage naming the choices otherwise."""
    key = name.strip().lower().replace("_", "-")
    if key not in STRATEGIES:
        raise BadUsage(f"unknown strategy {name!r}", hint="strategies: " + ", ".join(STRATEGIES))
    module_name, _, class_name = STRATEGIES[key].partition(":")
    try:
        return getattr(importlib.import_module(module_name), class_name)
    except ModuleNotFoundError as exc:
        if exc.name != module_name:
            raise  # the strategy's module exists but one of its own imports is missing: a real error
    except AttributeError:
        pass
    raise BadUsage(f"strategy {key!r} is not available in this installation ({STRATEGIES[key]} is missing)",
                   hint="strategies: " + ", ".join(n for n in STRATEGIES if n != key))
