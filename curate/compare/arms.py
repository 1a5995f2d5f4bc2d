"""The arms of a comparison: canonical strategy chains, and each arm's share of `--param`."""

from __future__ import annotations

from typing import Any

from curate.errors import BadUsage
from curate.selectors import registry
from curate.selectors.pipeline import parse_strategies

REFERENCE = "random"  # every arm is paired with it


def arm_chains(strategies: list[str]) -> list[str]:
    """Canonical chains (registry names, comma-joined), deduplicated, `random` first when absent."""
    arms: list[str] = []
    for text in strategies:
        chain = ",".join(registry.get(n).name for n in parse_strategies(text))
        if chain not in arms:
            arms.append(chain)
    return arms if REFERENCE in arms else [REFERENCE, *arms]


def arm_params(arms: list[str], params: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Each arm's share of `--param`: STRATEGY.NAME goes to the arms with that step, a bare NAME to the
    arms with a step that takes it. Step numbers are ambiguous across arms and refused."""
    out: dict[str, dict[str, Any]] = {arm: {} for arm in arms}
    used: set[str] = set()
    for key, value in params.items():
        scope, dot, name = key.rpartition(".")
        if name == "budget" and not dot:
            raise BadUsage(f"--param {key}: every arm keeps --budget rows", hint="set --budget instead")
        if scope.isdigit():
            raise BadUsage(f"--param {key}: a step number means a different step in each arm",
                           hint="name the strategy instead, e.g. --param fisher.dim=32")
        scope = registry.get(scope).name if dot else ""
        for arm in arms:
            classes = [registry.get(n) for n in arm.split(",")]
            if (dot and scope in arm.split(",")) or (not dot and any(name in c.param_names() for c in classes)):
                out[arm][f"{scope}.{name}" if dot else name] = value
                used.add(key)
    unused = [k for k in params if k not in used]
    if unused:
        raise BadUsage(f"--param {unused[0]}: no arm has a step that takes it", hint="arms: " + "; ".join(arms))
    return out
