"""Length-bucketed packing under a token budget, and windowed (bounded-memory) mapping."""

from __future__ import annotations

import random

import pytest

from curate.lm.batching import map_bucketed, pack, windows


def random_lengths(n: int, seed: int, high: int = 900) -> list[int]:
    rng = random.Random(seed)
    return [rng.choice([rng.randint(1, 20), rng.randint(20, 200), rng.randint(200, high)]) for _ in range(n)]


def check_pack(lengths: list[int], budget: int, max_batch: int | None = None) -> list[list[int]]:
    batches = pack(lengths, budget, max_batch)
    flat = [i for batch in batches for i in batch]
    assert sorted(flat) == list(range(len(lengths)))  # every index exactly once
    ordered = [lengths[i] for i in flat]
    assert ordered == sorted(ordered)  # ascending length order, across and within batches
    for batch in batches:
        assert batch
        longest = max(lengths[i] for i in batch)
        if len(batch) > 1:
            assert longest * len(batch) <= budget
        if any(lengths[i] > budget for i in batch):
            assert len(batch) == 1  # an oversize item travels alone
        if max_batch:
            assert len(batch) <= max_batch
    # Greedy packing: a batch closes only because the next item would not fit.
    for batch, following in zip(batches, batches[1:]):
        newcomer = following[0]
        grown = (len(batch) + 1) * max(lengths[newcomer], 1)
        assert grown > budget or (max_batch is not None and len(batch) >= max_batch)
    return batches


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("budget", [64, 1000, 4096, 100_000])
def test_pack_keeps_each_index_once_sorted_and_within_budget(seed, budget):
    check_pack(random_lengths(300, seed), budget)


@pytest.mark.parametrize("max_batch", [1, 3, 16])
def test_pack_respects_max_batch(max_batch):
    batches = check_pack([5] * 50, 10_000, max_batch)
    assert all(len(batch) == max_batch for batch in batches[:-1])


def test_pack_puts_oversize_items_alone():
    lengths = [10, 5000, 12, 7000, 11, 6000]
    batches = check_pack(lengths, 100)
    assert batches == [[0, 4, 2], [1], [5], [3]]


def test_pack_edge_cases():
    assert pack([], 100) == []
    assert pack([0, 0, 0], 2) == [[0, 1], [2]]  # an empty item still counts as one token wide
    assert pack([7], 1) == [[0]]


def test_pack_wastes_little_padding():
    lengths = random_lengths(2000, 7)
    batches = check_pack(lengths, 8192)
    padded = sum(max(lengths[i] for i in b) * len(b) for b in batches)
    assert padded / sum(lengths) < 1.1  # sorting first: under 10% padding


def test_windows_split_into_fixed_size_chunks():
    assert list(windows(range(7), 3)) == [[0, 1, 2], [3, 4, 5], [6]]
    assert list(windows([], 3)) == []


@pytest.mark.parametrize("window", [1, 7, 64, 10_000])
def test_map_bucketed_returns_results_in_input_order(window):
    rng = random.Random(3)
    items = ["x" * rng.randint(1, 300) + f"#{i}" for i in range(200)]
    seen_batches: list[list[str]] = []

    def run(batch):
        seen_batches.append(batch)
        assert [len(s) for s in batch] == sorted(len(s) for s in batch)
        return [s.upper() for s in batch]

    out = list(map_bucketed(items, len, run, token_budget=1024, window=window))
    assert out == [s.upper() for s in items]
    assert sum(len(b) for b in seen_batches) == len(items)
    for batch in seen_batches:  # a batch never mixes items from two windows
        positions = [items.index(s) for s in batch]
        assert len({p // window for p in positions}) == 1
        assert len(batch) == 1 or max(map(len, batch)) * len(batch) <= 1024


def test_map_bucketed_consumes_a_generator_window_by_window():
    pulled: list[int] = []
    window = 10

    def source():
        for i in range(95):
            pulled.append(i)
            yield i

    results = map_bucketed(source(), lambda i: 1 + i % 13, lambda batch: [i * 2 for i in batch],
                           token_budget=40, window=window)
    assert pulled == []  # nothing read before the first result is asked for
    got = [next(results)]
    assert len(pulled) == window  # at most one window held when the first result comes out
    for k in range(1, 95):
        got.append(next(results))
        assert len(pulled) <= (k // window + 1) * window
    assert got == [i * 2 for i in range(95)]
    assert next(results, None) is None


def test_map_bucketed_passes_max_batch():
    sizes = []
    list(map_bucketed(range(30), lambda i: 1, lambda b: sizes.append(len(b)) or b, token_budget=1000, max_batch=4))
    assert max(sizes) == 4 and sum(sizes) == 30
