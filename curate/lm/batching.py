"""Batches under a token budget: length-bucketed padded batches, and packed bins.

`pack`/`map_bucketed`: items are read a window at a time (bounded memory), sorted by
length inside the window, and packed so that (longest item in the batch) x (batch
size) stays under the token budget. Sorting first means almost no padding.

`pack_bins`: best-fit-decreasing bin packing (Johnson 1973; the "BFD" packing of TRL's
SFTTrainer) of whole items into bins of at most `capacity` tokens, for padding-free
training rows that hold several examples each.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from itertools import islice
from typing import TypeVar

import numpy as np

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


class _OpenBins:
    """Open bins keyed by their free space; finds the fullest bin that still fits an item in O(log capacity).

    A segment tree over free-space values 0..capacity counts the bins with each value, so
    "smallest free space >= need" is one walk up and one walk down the tree.
    """

    def __init__(self, capacity: int):
        self.size = 1 << max(1, capacity).bit_length()
        self.counts = [0] * (2 * self.size)
        self.bins: list[list[int]] = [[] for _ in range(capacity + 1)]

    def _update(self, space: int, delta: int) -> None:
        node = space + self.size
        while node:
            self.counts[node] += delta
            node //= 2

    def add(self, space: int, bin_id: int) -> None:
        self.bins[space].append(bin_id)
        self._update(space, 1)

    def take_best_fit(self, need: int) -> tuple[int, int] | None:
        """Remove and return (free space, bin id) of the bin with the least free space >= need, if any."""
        if need >= self.size:
            return None
        node = need + self.size
        if not self.counts[node]:
            while node > 1 and not (node % 2 == 0 and self.counts[node + 1]):
                node //= 2  # invariant: every leaf >= need under `node` is empty
            if node == 1:
                return None
            node += 1
            while node < self.size:
                node = 2 * node if self.counts[2 * node] else 2 * node + 1
        space = node - self.size
        bin_id = self.bins[space].pop()
        self._update(space, -1)
        return space, bin_id


def pack_bins(lengths: list[int], capacity: int, seed: int = 0) -> list[list[int]]:
    """Indices into `lengths` grouped into bins of at most `capacity` tokens, by best-fit decreasing.

    Longest items are placed first, each into the open bin it fills best (a new bin when none
    fits), so bins end up nearly full and mix long items with short ones. Equal lengths are
    ordered by a permutation drawn from `seed`; an item longer than `capacity` gets a bin of its
    own. Bins are returned in creation order, each listing its items in placement order.
    """
    tiebreak = np.random.default_rng(seed).permutation(len(lengths))
    order = np.lexsort((tiebreak, -np.asarray(lengths, dtype=np.int64))) if lengths else []
    bins: list[list[int]] = []
    open_bins = _OpenBins(capacity)
    for index in order:
        length = max(1, int(lengths[index]))
        found = open_bins.take_best_fit(length) if length <= capacity else None
        if found is None:
            bins.append([int(index)])
            space = capacity - length
            bin_id = len(bins) - 1
        else:
            space, bin_id = found
            bins[bin_id].append(int(index))
            space -= length
        if space > 0:
            open_bins.add(space, bin_id)
    return bins
