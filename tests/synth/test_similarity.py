"""ROUGE-L: bit-parallel LCS against the dynamic programme, scores against hand counts and rouge_score."""

from __future__ import annotations

import random

import pytest

from curate.synth.similarity import RougeIndex, lcs_length, lcs_length_dp, rouge_l, tokenize


def test_bit_parallel_lcs_equals_the_dynamic_programme():
    rng = random.Random(0)
    for _ in range(3000):
        a = [rng.randrange(6) for _ in range(rng.randrange(0, 40))]
        b = [rng.randrange(6) for _ in range(rng.randrange(0, 40))]
        assert lcs_length(a, b) == lcs_length_dp(a, b) == lcs_length(b, a)


def test_lcs_on_long_sequences():
    rng = random.Random(1)
    a = [rng.randrange(30) for _ in range(300)]
    b = [rng.randrange(30) for _ in range(250)]
    assert lcs_length(a, b) == lcs_length_dp(a, b)


def test_hand_computed_scores():
    # "the cat sat on the mat" (6) vs "the cat on a mat" (5): LCS "the cat on mat" = 4, F = 2*4/11
    assert rouge_l("the cat on a mat", "the cat sat on the mat") == pytest.approx(8 / 11)
    assert rouge_l("Identical text.", "identical TEXT") == 1.0
    assert rouge_l("", "anything") == 0.0
    assert rouge_l("a b c", "d e f") == 0.0
    assert tokenize("Café 3x-faster!!") == ["caf", "3x", "faster"]  # rouge_score drops non [a-z0-9]


def test_agrees_with_rouge_score():
    rouge_scorer = pytest.importorskip("rouge_score.rouge_scorer")
    scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=False)
    rng = random.Random(2)
    vocabulary = ["write", "a", "short", "poem", "about", "the", "sea", "give", "three", "tips", "for", "saving",
                  "money", "explain", "why", "sky", "is", "blue"]
    for _ in range(300):
        a = " ".join(rng.choice(vocabulary) for _ in range(rng.randrange(1, 25)))
        b = " ".join(rng.choice(vocabulary) for _ in range(rng.randrange(1, 25)))
        assert rouge_l(a, b) == pytest.approx(scorer.score(b, a)["rougeL"].fmeasure, abs=1e-12)


def test_index_nearest_and_first_above_match_brute_force():
    rng = random.Random(3)
    vocabulary = [f"w{i}" for i in range(12)]
    texts = [" ".join(rng.choice(vocabulary) for _ in range(rng.randrange(1, 15))) for _ in range(80)]
    index = RougeIndex()
    index.extend(texts[:60])
    for query in texts[60:]:
        scores = [rouge_l(query, t) for t in texts[:60]]
        best = index.nearest(query)
        assert best.score == pytest.approx(max(scores)) and scores[best.index] == pytest.approx(best.score)
        above = index.first_above(query, 0.5)
        if max(scores) > 0.5:
            assert above is not None and above.score > 0.5
            assert above.index == next(i for i, s in enumerate(scores) if s > 0.5)
        else:
            assert above is None
    assert RougeIndex().nearest("x") is None and len(index) == 60
