"""Reward functions for tests of the RL machinery (importable as `tests.rl_rewards:NAME`)."""

from __future__ import annotations

import zlib


def _text(completion) -> str:
    return completion if isinstance(completion, str) else completion[-1]["content"]


def coin(prompts, completions, **columns):
    """A deterministic pseudo-random 0/1 per completion text: groups get mixed rewards."""
    return [float(zlib.crc32(_text(c).encode()) % 2) for c in completions]


def length_parity_or_none(prompts, completions, **columns):
    """Like `coin`, but None for empty completions (exercises the None path)."""
    return [None if not _text(c) else float(len(_text(c)) % 2) for c in completions]
