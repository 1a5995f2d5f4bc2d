"""dedup (exact and near) and diversity (k-center greedy), on planted embeddings and a tiny model."""

from __future__ import annotations

import itertools
import sys
import types

import numpy as np
import polars as pl
import pytest

from curate.errors import BadUsage, ModelLoadError
from curate.selectors import embeddings
from curate.selectors.sft.dedup import DedupSelector, greedy_keep, near_pairs
from curate.selectors.sft.diversity import DiversitySelector, k_center_greedy
from curate.selectors.pool import Pool


def _unit(rows) -> np.ndarray:
    x = np.asarray(rows, dtype=np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def test_near_pairs_finds_every_pair_at_or_above_the_threshold():
    rng = np.random.default_rng(0)
    vectors = _unit(rng.standard_normal((300, 16)))
    rows, cols, sims = near_pairs(vectors, 0.5)
    gram = vectors @ vectors.T
    expected = {(i, j) for i in range(300) for j in range(i) if gram[i, j] >= 0.5}
    assert set(zip(rows.tolist(), cols.tolist())) == expected
    np.testing.assert_allclose(sims, gram[rows, cols], rtol=1e-5)
    exact = _unit([[1, 0], [1, 0], [0, 1]])
    rows, cols, _ = near_pairs(exact, 1.0)  # identical vectors are at the threshold 1.0
    assert list(zip(rows.tolist(), cols.tolist())) == [(1, 0)]


def test_near_pairs_with_the_approximate_index_still_finds_close_copies():
    rng = np.random.default_rng(1)
    base = _unit(rng.standard_normal((2000, 16)))
    noisy = _unit(base[:100] + 0.01 * rng.standard_normal((100, 16)))
    vectors = np.concatenate([base, noisy])
    rows, cols, _ = near_pairs(vectors, 0.99, approximate_above=500)
    found = set(zip(rows.tolist(), cols.tolist()))
    assert sum((2000 + i, i) in found for i in range(100)) >= 95


def test_greedy_keep_compares_with_kept_rows_only():
    # 0 ~ 1 and 1 ~ 2 but not 0 ~ 2: 1 goes (a copy of 0), 2 stays (its only match was dropped)
    kept, match, cosine = greedy_keep(4, np.array([1, 2, 3]), np.array([0, 1, 0]), np.array([0.97, 0.96, 0.99]))
    assert kept.tolist() == [True, False, True, False]
    assert match.tolist() == [-1, 0, -1, 0]
    assert cosine[1] == pytest.approx(0.97) and cosine[3] == pytest.approx(0.99)


def _pool_with_vectors(vectors: np.ndarray, ids=None, prompts=None) -> Pool:
    n = len(vectors)
    pool = Pool.from_rows(pl.DataFrame({"id": ids or [f"r{i}" for i in range(n)],
                                        "prompt": prompts or [f"prompt {i}" for i in range(n)],
                                        "response": [f"response {i}" for i in range(n)]}), model="fake-embedder")
    pool.shared.model_paths["fake-embedder"] = "fake-embedder"
    for normalize in (False, True):
        key = f"fake-embedder\x1f{pool.template}\x1f{normalize}"
        pool.embeddings_cache()[key] = (np.asarray(vectors, dtype=np.float32), np.ones(n, dtype=bool))
    return pool


def test_dedup_exact_uses_content_not_the_id_column(monkeypatch):
    monkeypatch.setattr(Pool, "model_hash", lambda self, spec=None: "fake")
    pool = Pool.from_rows(pl.DataFrame({"id": ["u1", "u2", "u3", "u4"], "prompt": ["a", "b", "a", "a"],
                                        "response": ["x", "y", "x", "z"]}))
    selection = DedupSelector(near=False).fit(pool).select()
    assert selection.ids.to_list() == ["u1", "u2", "u4"]
    assert selection.dropped.rows() == [("u3", "duplicate", "same content as u1")]


def test_dedup_exact_keeps_rows_that_differ_only_in_answer_or_tests(monkeypatch):
    monkeypatch.setattr(Pool, "model_hash", lambda self, spec=None: "fake")
    pool = Pool.from_rows(pl.DataFrame({"id": ["u1", "u2", "u3", "u4", "u5"], "prompt": ["q"] * 5,
                                        "response": [None] * 5, "answer": ["3", "5", "3", "3", "3"],
                                        "tests": [None, None, None, "assert 1", None]}))
    selection = DedupSelector(near=False).fit(pool).select()
    assert selection.ids.to_list() == ["u1", "u2", "u4"]
    assert selection.dropped.rows() == [("u3", "duplicate", "same content as u1"),
                                        ("u5", "duplicate", "same content as u1")]


def test_dedup_near_drops_later_copies_and_names_the_kept_row(monkeypatch):
    monkeypatch.setattr(Pool, "model_hash", lambda self, spec=None: "fake")
    vectors = [[1, 0, 0, 0], [0, 1, 0, 0], [0.999, 0.04, 0, 0], [0, 0, 1, 0], [0, 0.05, 0.998, 0], [0, 0, 0, 1]]
    selector = DedupSelector(threshold=0.99, transform="none").fit(_pool_with_vectors(_unit(vectors)))
    selection = selector.select(budget=1)  # filters ignore the budget
    assert selection.ids.to_list() == ["r0", "r1", "r3", "r5"]
    assert selection.drop_counts == {"near_duplicate": 2}
    details = dict(zip(selection.dropped["id"].to_list(), selection.dropped["detail"].to_list()))
    assert details["r2"].startswith("cosine 0.99") and details["r2"].endswith("to r0")
    assert details["r4"].endswith("to r3")
    assert selector.scores_[2] == pytest.approx(_unit(vectors)[2] @ _unit(vectors)[0], rel=1e-5)
    assert np.isnan(selector.scores_[0])
    with pytest.raises(BadUsage, match="threshold"):
        DedupSelector(threshold=1.5).fit(_pool_with_vectors(_unit(vectors)))


def test_embeddings_are_mean_hidden_states_and_identical_text_is_a_near_duplicate(tiny_model_dir):
    from curate.lm.loading import load
    from curate.lm.scoring import hidden_states
    from curate.lm.templates import encode_pair

    rows = [{"id": f"r{i}", "prompt": f"Question {i}: what is {i} times {i + 3}?", "response": f"It is {i * (i + 3)}."}
            for i in range(12)]
    rows.append({"id": "copy", "prompt": rows[4]["prompt"], "response": rows[4]["response"]})
    pool = Pool.from_rows(pl.DataFrame(rows), model=str(tiny_model_dir))
    lm = load(str(tiny_model_dir), dtype="float32", device="cpu")
    vectors = embeddings.embed(pool)
    direct = hidden_states(lm, [encode_pair(rows[3]["prompt"], rows[3]["response"], lm.tokenizer)], positions="all")
    np.testing.assert_allclose(vectors[3], next(iter(direct)).mean(axis=0), rtol=1e-4, atol=1e-5)
    selection = DedupSelector(exact=False, threshold=0.999, normalize=False).fit(pool).select()
    assert selection.dropped["id"].to_list() == ["copy"]
    assert selection.dropped["detail"][0].endswith("to r4")


def test_text_normalization_and_whitening_by_hand():
    assert embeddings.normalize_text("  Ava has 3,  APPLES!\n\tHow many?") == "ava has 3 apples how many"
    assert embeddings.normalize_text("ﬁve \u00c9tudes") == "five études"  # NFKC, then lower case
    rng = np.random.default_rng(0)
    x = rng.standard_normal((400, 3)) * [10.0, 1.0, 0.1] + 5.0
    centered = x - x.mean(axis=0)
    values, vectors = np.linalg.eigh(np.cov(centered.T))
    manual = centered @ (vectors / np.sqrt(values + 1e-6 * values.max()))
    manual /= np.linalg.norm(manual, axis=1, keepdims=True)
    np.testing.assert_allclose(embeddings.unit_vectors(x, "whiten"), manual, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(embeddings.unit_vectors(x, "center"), axis=1), 1.0, rtol=1e-5)
    small = embeddings.unit_vectors(x[:4], "whiten")  # fewer rows than 2 x dims: centered only
    np.testing.assert_allclose(small, embeddings.unit_vectors(x[:4], "center"))
    assert embeddings.resolve_transform("auto", "/no/such/folder") == "whiten"
    with pytest.raises(BadUsage, match="transform"):
        embeddings.resolve_transform("pca", "x")


def test_normalized_text_makes_case_and_spacing_copies_near_duplicates(tiny_model_dir):
    rows = [{"id": f"r{i}", "prompt": f"Ava has {i} apples and buys {i + 2}. How many?", "response": f"{2 * i + 2}."}
            for i in range(30)]
    rows.append({"id": "copy", "prompt": "AVA has 7 apples,  and buys 9 .How many", "response": "16"})
    pool = Pool.from_rows(pl.DataFrame(rows), model=str(tiny_model_dir))
    selection = DedupSelector(threshold=0.999).fit(pool).select()
    assert selection.drop_counts == {"near_duplicate": 1}
    assert selection.dropped.row(0) == ("copy", "near_duplicate", selection.dropped["detail"][0])
    assert selection.dropped["detail"][0].endswith("to r7")


def test_k_center_greedy_on_a_line():
    # points 0, 1, 2, 10 on a line; start at 1 (nearest the mean is 2, forced here): farthest is 10, then 0
    points = np.array([[0.0], [1.0], [2.0], [10.0]], dtype=np.float32)
    centers, radii, nearest = k_center_greedy(points, 3, first=1)
    assert centers.tolist() == [1, 3, 0]
    assert radii[1] == pytest.approx(81.0) and radii[2] == pytest.approx(1.0)
    assert nearest.tolist() == [0.0, 0.0, 1.0, 0.0]


@pytest.mark.parametrize("seed", range(4))
def test_k_center_greedy_is_within_twice_the_best_radius(seed):
    rng = np.random.default_rng(seed)
    points = rng.standard_normal((9, 2)).astype(np.float32)
    distances = np.sqrt(((points[:, None] - points[None]) ** 2).sum(-1))
    for k in (2, 3):
        best = min(distances[:, list(s)].min(axis=1).max() for s in itertools.combinations(range(9), k))
        _, _, nearest = k_center_greedy(points, k)
        assert np.sqrt(nearest.max()) <= 2 * best + 1e-5


def test_diversity_keeps_the_spread_out_examples(monkeypatch):
    monkeypatch.setattr(Pool, "model_hash", lambda self, spec=None: "fake")
    clusters = [[1, 0, 0], [0.98, 0.1, 0], [0.97, 0, 0.1], [0, 1, 0], [0.1, 0.97, 0], [0, 0, 1]]
    selector = DiversitySelector(transform="none").fit(_pool_with_vectors(_unit(clusters)))
    selection = selector.select(3)
    picked = set(selection.ids.to_list())
    assert {"r5"} <= picked and len(picked & {"r0", "r1", "r2"}) == 1 and len(picked & {"r3", "r4"}) == 1
    assert selection.drop_counts == {"below_budget": 3}
    with pytest.raises(BadUsage, match="at most 6"):
        selector.select(7)


def test_sentence_transformers_folder_without_the_library_is_a_clear_error(tmp_path, monkeypatch):
    folder = tmp_path / "st-model"
    folder.mkdir()
    (folder / "modules.json").write_text("[]")
    assert embeddings.is_sentence_transformers(str(folder))
    monkeypatch.setitem(sys.modules, "sentence_transformers", None)  # import fails
    pool = Pool.from_rows([{"prompt": "a", "response": "b"}, {"prompt": "c", "response": "d"}], model=str(folder))
    with pytest.raises(ModelLoadError, match="sentence-transformers is not installed"):
        embeddings.embed(pool)


def test_sentence_transformers_folder_is_used_when_installed(tmp_path, monkeypatch):
    folder = tmp_path / "st-model"
    folder.mkdir()
    (folder / "modules.json").write_text("[]")
    seen = []

    class FakeST:
        def __init__(self, path, device=None):
            seen.append(path)

        def encode(self, texts, batch_size=64, show_progress_bar=False):
            return np.array([[len(t), t.count("a")] for t in texts], dtype=np.float32)

    monkeypatch.setitem(sys.modules, "sentence_transformers", types.SimpleNamespace(SentenceTransformer=FakeST))
    pool = Pool.from_rows([{"prompt": "aa", "response": "b"}, {"prompt": "c", "response": "dddd"}], model=str(folder))
    vectors = embeddings.embed(pool)
    assert seen == [str(folder)]
    np.testing.assert_array_equal(vectors, [[4, 2], [6, 0]])  # "aa\nb" and "c\ndddd"
    assert embeddings.embed(pool) is not None and len(seen) == 1  # cached for the chain
