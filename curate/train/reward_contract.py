"""What every reward shares: TRL's keyword signature, the text of a completion, and the error
a reward raises when its inputs break the contract. Built-in rewards (`rewards`, `code_reward`)
import it from here.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from curate.errors import CurateError

RewardFunc = Callable[..., list]  # reward(prompts, completions, **columns) -> list[float | None]


class RewardError(CurateError):
    """A reward function broke the contract (wrong count, wrong type, missing column)."""


def completion_text(completion: Any) -> str:
    """The text of a completion: itself, or the content of its last message."""
    if isinstance(completion, str):
        return completion
    if isinstance(completion, list) and completion and isinstance(completion[-1], dict):
        return str(completion[-1].get("content") or "")
    if isinstance(completion, dict):
        return str(completion.get("content") or "")
    return str(completion)
