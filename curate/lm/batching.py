"""Length-bucketed batches under a token budget.

Items are read a window at a time (bounded memory), sorted by length inside the
window, and packed so that (longest item in the batch) x (batch size) stays under
the token budget. Sorting first means almost no padding.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from itertools import islice
from typing import TypeVar

T = TypeVar("T")


def windows(items: Iterable[T], size: int) -> Iterator[list[T]]:
    iterator = iter(items)
    while window := list(islice(iterator, size)):
        yield window


def pack(lengths: list[int], token_budget: int, max_batch: int | None = None) -> list[list[int]]:
    """Indices into `lengths`, grouped into batches in ascending length order.

    An item longer than the budget gets a batch of its own.
    """
    order = sorted(range(len(lengths)), key=lengths.__getitem__)
    batches: list[list[int]] = []
    current: list[int] = []
    for index in order:
        longest = max(lengths[index], 1)  # ascending order: the newcomer is the longest
        full = (len(current) + 1) * longest > token_budget or (max_batch and len(current) >= max_batch)
        if current and full:
            batches.append(current)
            current = []
        current.append(index)
    if current:
        batches.append(current)
    return batches


def map_bucketed(
    items: Iterable[T],
    length: Callable[[T], int],
    run: Callable[[list[T]], list],
    token_budget: int,
    window: int = 4096,
    max_batch: int | None = None,
    on_batch: Callable[[int], None] | None = None,
) -> Iterator:
    """`run` over length-bucketed batches; results come back in input order.

    `on_batch(n)` is called after each batch with its size: results are yielded a window at a
    time, so this is what lets a progress bar move inside a window.
    """
    for chunk in windows(items, window):
        results: list = [None] * len(chunk)
        for batch in pack([length(item) for item in chunk], token_budget, max_batch):
            for index, result in zip(batch, run([chunk[i] for i in batch])):
                results[index] = result
            if on_batch is not None:
                on_batch(len(batch))
        yield from results
