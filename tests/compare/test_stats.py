"""The comparison's statistics against a small table worked out by hand."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from curate.util.stats import bootstrap_interval, summarize, t_quantile, t_two_sided_mass

# Three seeds, three arms; the arithmetic below is written out.
TABLE = {"random": {0: 0.20, 1: 0.30, 2: 0.25},
         "fisher": {0: 0.30, 1: 0.35, 2: 0.40},
         "dedup": {0: 0.25, 1: 0.25, 2: 0.20}}
T_2 = 4.302653  # t(0.975, 2 degrees of freedom), from any t table


def test_t_distribution_matches_closed_forms_and_tables():
    assert t_two_sided_mass(1.0, 1) == pytest.approx(0.5)  # Cauchy: P(|T| <= 1) = 1/2
    assert t_two_sided_mass(math.sqrt(2), 2) == pytest.approx(math.sqrt(2) / 2)  # df 2: t / sqrt(t^2 + 2)
    for df, table_value in [(1, 12.7062), (2, 4.3027), (3, 3.1824), (4, 2.7764), (9, 2.2622), (30, 2.0423)]:
        assert t_quantile(0.95, df) == pytest.approx(table_value, abs=1e-4)


def test_per_arm_mean_sd_and_t_interval_by_hand():
    arms = {a.strategy: a for a in summarize(TABLE, "accuracy")}
    random = arms["random"]
    # mean (0.20 + 0.30 + 0.25) / 3 = 0.25; squared deviations 0.0025 + 0.0025 + 0 = 0.005; var 0.005 / 2; sd 0.05
    assert (random.n, random.mean, random.sd) == (3, pytest.approx(0.25), pytest.approx(0.05))
    half = T_2 * 0.05 / math.sqrt(3)  # = 0.215133 / 1.732051 = 0.124207
    assert random.ci == pytest.approx((0.25 - half, 0.25 + half), abs=1e-6)
    assert random.ci == pytest.approx((0.125793, 0.374207), abs=1e-6)
    assert random.diff_mean is None  # the reference is not paired with itself
    fisher = arms["fisher"]
    assert (fisher.mean, fisher.sd) == (pytest.approx(0.35), pytest.approx(0.05))


def test_paired_difference_to_random_by_hand():
    arms = {a.strategy: a for a in summarize(TABLE, "accuracy")}
    fisher = arms["fisher"]
    # differences 0.10, 0.05, 0.15: mean 0.10, sd 0.05, t interval 0.10 +- 4.302653 * 0.05 / sqrt(3)
    assert fisher.paired_seeds == [0, 1, 2]
    assert fisher.diff_mean == pytest.approx(0.10)
    assert fisher.diff_ci_t == pytest.approx((-0.024207, 0.224207), abs=1e-6)
    # Bootstrap of three values: a resample of three copies of the smallest (0.05) has probability
    # (1/3)^3 = 3.7% > 2.5%, so the 2.5% quantile is 0.05; likewise the 97.5% quantile is 0.15.
    assert fisher.diff_ci_bootstrap == pytest.approx((0.05, 0.15))
    assert (fisher.wins, fisher.ties, fisher.losses) == (3, 0, 0)

    dedup = arms["dedup"]
    # differences +0.05, -0.05, -0.05: mean -0.05/3; deviations 0.0667, -0.0333, -0.0333;
    # squares sum 0.0066667, var 0.0033333, sd 0.057735, se 0.057735 / sqrt(3) = 0.033333
    assert dedup.diff_mean == pytest.approx(-0.05 / 3)
    assert dedup.diff_ci_t == pytest.approx((-0.05 / 3 - T_2 * 0.033333, -0.05 / 3 + T_2 * 0.033333), abs=1e-5)
    # P(all three resampled = -0.05) = (2/3)^3 = 30% and P(all = +0.05) = 3.7%: the interval is [-0.05, 0.05]
    assert dedup.diff_ci_bootstrap == pytest.approx((-0.05, 0.05))
    assert (dedup.wins, dedup.ties, dedup.losses) == (1, 0, 2)


def test_for_loss_lower_wins():
    arms = {a.strategy: a for a in summarize(TABLE, "loss")}
    assert (arms["fisher"].wins, arms["fisher"].losses) == (0, 3)
    assert (arms["dedup"].wins, arms["dedup"].losses) == (2, 1)


def test_pairs_only_the_seeds_both_arms_finished():
    arms = {a.strategy: a for a in summarize({"random": {0: 0.2, 1: 0.3, 2: 0.25}, "a": {0: 0.3, 2: 0.35}},
                                             "accuracy")}
    assert arms["a"].paired_seeds == [0, 2] and arms["a"].diff_mean == pytest.approx(0.10)
    lonely = summarize({"random": {0: 0.5}}, "accuracy")[0]
    assert lonely.n == 1 and math.isnan(lonely.sd) and all(math.isnan(v) for v in lonely.ci)


def test_bootstrap_agrees_with_exhaustive_enumeration():
    values = np.array([0.1, 0.4, -0.2, 0.3])
    means = np.array([np.mean(values[list(i)]) for i in itertools.product(range(4), repeat=4)])  # all 256 resamples
    lo_exact, hi_exact = np.quantile(means, [0.025, 0.975], method="inverted_cdf")
    lo, hi = bootstrap_interval(values, resamples=20_000, seed=3)
    step = 0.3 / 4  # smallest gap between two resampled means with different multisets here is 0.025
    assert abs(lo - lo_exact) <= step and abs(hi - hi_exact) <= step
    assert bootstrap_interval(values, seed=3) == bootstrap_interval(values, seed=3)  # seeded
