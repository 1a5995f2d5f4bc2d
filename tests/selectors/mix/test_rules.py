"""The mixing weight rules against hand-computed values (DoReMi's: tests/train/test_doremi.py)."""

from __future__ import annotations

import numpy as np
import pytest

from curate.errors import BadUsage
from curate.selectors.mix import rules


def test_progress_weights_favour_domains_still_improving():
    w = rules.progress_weights(np.array([0.0, 0.02, -0.1, 0.3]), temperature=0.1, smoothing=0.0)
    assert w.argmax() == 3 and w[0] == pytest.approx(w[2])  # negative gain counts as none
    assert w.sum() == pytest.approx(1.0)


def test_window_progress_is_the_last_window_minus_the_one_before():
    rewards = np.array([0, 0, 1, 0, 1, 1, 1, 0], dtype=float)
    assert rules.window_progress(rewards, window=2) == pytest.approx(0.5 - 1.0)  # [1, 0] after [1, 1]
    assert rules.window_progress(np.array([0, 0, 0, 1, 1, 1.0]), window=2) == pytest.approx(1.0 - 0.5)
    assert rules.window_progress(np.array([0, 0, 1, 1.0]), window=64) == pytest.approx(1.0)  # halves: [1, 1] - [0, 0]
    assert rules.window_progress(np.array([1.0]), window=64) == 0.0


def test_absolute_progress_counts_forgetting():
    w = rules.progress_weights(np.array([-0.3, 0.0]), temperature=0.1, smoothing=0.0, absolute=True)
    assert w[0] == pytest.approx(np.exp(3) / (np.exp(3) + 1))
    plain = rules.progress_weights(np.array([-0.3, 0.0]), temperature=0.1, smoothing=0.0)
    assert plain.tolist() == pytest.approx([0.5, 0.5])


def test_static_weights_normalise_and_reject_all_zero_negative_and_nan():
    assert rules.static_weights({"a": 2, "b": 1}, ["a", "b", "c"]) == pytest.approx([2 / 3, 1 / 3, 0])
    with pytest.raises(BadUsage, match="every weight is 0"):
        rules.static_weights({"a": 0}, ["a"])
    with pytest.raises(BadUsage, match="b=-1"):
        rules.static_weights({"a": 1, "b": -1}, ["a", "b"])
    with pytest.raises(BadUsage, match="a=nan"):
        rules.static_weights({"a": float("nan")}, ["a"])


@pytest.mark.parametrize(("weights", "size", "expected"), [
    # quotas 5, 3, 2: whole numbers, nothing to round
    ([0.5, 0.3, 0.2], 10, [5, 3, 2]),
    # quotas 3.33.. each: floors 3, 3, 3; one row left goes to the first of the tied remainders
    ([1, 1, 1], 10, [4, 3, 3]),
    # quotas 4.2, 2.8, 2.1, 0.9 (0.42, 0.28, 0.21, 0.09 of 10): floors 4, 2, 2, 0 = 8; the two rows
    # left go to the largest remainders 0.9 and 0.8
    ([0.42, 0.28, 0.21, 0.09], 10, [4, 3, 2, 1]),
    # quotas 6.6, 3.3, 0.0 (weight 0 never gets a row): floors 6, 3; one left goes to 0.6
    ([2, 1, 0], 10, [7, 3, 0]),
    # quotas 0.25 each of 1 row: the first domain
    ([1, 1, 1, 1], 1, [1, 0, 0, 0]),
    # unnormalised weights 6:4 of 7 rows: quotas 4.2, 2.8 -> 4, 2 and the row left to 0.8
    ([6, 4], 7, [4, 3]),
])
def test_largest_remainder_by_hand(weights, size, expected):
    assert rules.largest_remainder(weights, size).tolist() == expected


def test_largest_remainder_ties_are_exact_not_rounding_noise():
    # 0.1 + 0.2 != 0.3 in floats; in fractions the three quotas of 0.1, 0.2, 0.3 (of 0.6) for 5 rows are
    # 5/6, 10/6, 15/6 = 0.83, 1.67, 2.5 -> floors 0, 1, 2; remainders 0.83, 0.67, 0.5 -> one each to 0.83 and 0.67
    assert rules.largest_remainder([0.1, 0.2, 0.3], 5).tolist() == [1, 2, 2]


def test_allocate_never_gives_rows_to_a_weight_of_zero():
    # the weighted domain runs out at 5 rows: the zero-weight domains stay empty, and the result is short
    assert rules.allocate(np.array([1.0, 0.0, 0.0]), 10, np.array([5, 50, 50])).tolist() == [5, 0, 0]


def test_allocate_redistributes_what_a_capped_domain_lacks_by_weight():
    capped = rules.allocate(np.array([0.8, 0.1, 0.1]), 100, np.array([20, 500, 500]))
    assert capped.tolist() == [20, 40, 40]
    assert rules.allocate(np.array([0.5, 0.5]), 50, np.array([10, 5])).tolist() == [10, 5]
    # 0.6/0.3/0.1 of 20 = 12, 6, 2; the first has 8: its 4 rows go 3:1 to the others (3 and 1)
    assert rules.allocate(np.array([0.6, 0.3, 0.1]), 20, np.array([8, 100, 100])).tolist() == [8, 9, 3]


def test_exact_size_limit_is_the_largest_size_that_fits():
    # 0.9/0.1 with 20 and 20 rows: 22 -> quotas 19.8, 2.2 -> 20, 2 fits; 23 -> 20.7, 2.3 -> 21, 2 does not
    assert rules.exact_size_limit([0.9, 0.1], [20, 20], 30) == 22
    for size in range(23, 31):
        assert (rules.largest_remainder([0.9, 0.1], size) > [20, 20]).any()
    assert rules.exact_size_limit([0.5, 0.5, 0.0], [3, 100, 0], 50) == 6
