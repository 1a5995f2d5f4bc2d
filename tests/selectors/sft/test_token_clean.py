"""Token cleaning: the paper's score, top-k% masks, alignment with encode_pair, both modes."""

from __future__ import annotations

import math

import numpy as np
import polars as pl
import pytest

from curate.errors import BadUsage, ModelLoadError
from curate.lm.loading import load
from curate.lm.scoring import token_logprobs
from curate.lm.templates import encode_pair
from curate.selectors.pool import Pool
from curate.selectors.sft.token_clean import TokenCleanSelector
from curate.selectors.sft.token_scores import masks_frame, top_fraction
from tests.selectors.sft_helpers import save_tiny, word_problems


def test_top_fraction_global_and_per_example_by_hand():
    scores = [np.array([0.5, -1.0, 2.0]), np.array([0.1, np.nan]), np.array([3.0, 0.5, 0.5, -2.0])]
    # 9 tokens, ratio 0.5 -> floor(4.5) = 4 kept: 3.0, 2.0, then the tie 0.5/0.5/0.5 goes to the earliest two
    kept = top_fraction(scores, 0.5)
    assert [k.tolist() for k in kept] == [[1, 0, 1], [0, 0], [1, 1, 0, 0]]
    # per example: floor(0.5 * 3) = 1, floor(0.5 * 2) = 1 (NaN ranks last), floor(0.5 * 4) = 2
    per = top_fraction(scores, 0.5, per_example=True)
    assert [k.tolist() for k in per] == [[0, 0, 1], [1, 0], [1, 1, 0, 0]]
    assert top_fraction([], 0.6) == []
    assert [k.tolist() for k in top_fraction([np.array([1.0, 2.0])], 1.0)] == [[1, 1]]


def test_masks_frame_is_a_uint8_list_column():
    frame = masks_frame(pl.Series(["a", "b"]), [np.array([1, 0, 1], dtype=np.uint8), np.array([0], dtype=np.uint8)])
    assert frame.schema["token_mask"] == pl.List(pl.UInt8)
    assert frame["token_mask"].to_list() == [[1, 0, 1], [0]]


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("token-clean-models")
    return save_tiny(root / "base", seed=0), save_tiny(root / "reference", seed=1)


@pytest.fixture(scope="module")
def rows():
    problems = word_problems(14, seed=2)
    rows = [{"id": f"p{i}", "prompt": r["question"], "response": r["answer"]} for i, r in enumerate(problems)]
    rows[3]["response"] = ""
    return rows


def _losses(model_dir, rows) -> list[np.ndarray]:
    lm = load(str(model_dir), dtype="float32", device="cpu")
    items = [encode_pair(r["prompt"], r["response"], lm.tokenizer, add_eos=True) for r in rows]
    return [-lp.astype(np.float64) for lp in token_logprobs(lm, items)]


def test_fixed_mode_scores_are_base_minus_reference_loss(models, rows):
    base, reference = models
    pool = Pool.from_rows(pl.DataFrame(rows), model=str(base))
    selector = TokenCleanSelector(ref_model=str(reference), ratio=0.6).fit(pool)
    valid = [r for r in rows if r["response"]]
    expected = [b - r for b, r in zip(_losses(base, valid), _losses(reference, valid))]
    positions = [i for i, r in enumerate(rows) if r["response"]]
    for position, want in zip(positions, expected):
        np.testing.assert_allclose(selector.tokens_.get(position), want, rtol=1e-4, atol=1e-4)
        assert selector.scores_[position] == pytest.approx(want.mean(), rel=1e-4, abs=1e-5)
    selection = selector.select()
    assert selection.ids.to_list() == [r["id"] for r in valid]
    assert selection.drop_counts == {"missing_response": 1}
    masks = dict(zip(selection.extra["id"].to_list(), selection.extra["token_mask"].to_list()))
    flat = np.concatenate(expected)
    total = len(flat)
    assert sum(sum(m) for m in masks.values()) == math.floor(0.6 * total)
    threshold = np.sort(flat)[::-1][math.floor(0.6 * total) - 1]
    for row, want in zip(valid, expected):
        mask = np.array(masks[row["id"]])
        assert len(mask) == len(want)  # aligned with encode_pair's response tokens, EOS included
        assert np.all(want[mask == 1] >= threshold - 1e-6) and np.all(want[mask == 0] <= threshold + 1e-6)
    assert selection.stats["kept_fraction"] == pytest.approx(math.floor(0.6 * total) / total)
    assert selection.stats["scored_kept_fraction"] == selection.stats["kept_fraction"]
    assert selection.stats["tokens_unscored"] == 0


def test_per_example_level_keeps_the_fraction_of_each_response(models, rows):
    base, reference = models
    pool = Pool.from_rows(pl.DataFrame(rows), model=str(base))
    selection = TokenCleanSelector(ref_model=str(reference), ratio=0.5, level="example").fit(pool).select()
    for mask in selection.extra["token_mask"].to_list():
        assert sum(mask) == math.floor(0.5 * len(mask))


def test_tokens_past_the_context_keep_mask_one(tmp_path, rows):
    base = save_tiny(tmp_path / "short-base", seed=0)
    reference = save_tiny(tmp_path / "short-ref", seed=1)
    for folder in (base, reference):  # a 48-token context: long responses are cut for scoring
        import json

        config = json.loads((folder / "config.json").read_text())
        config["max_position_embeddings"] = 48
        (folder / "config.json").write_text(json.dumps(config))
    long_row = {"id": "long", "prompt": "Q", "response": "x" * 120}
    pool = Pool.from_rows(pl.DataFrame([long_row]), model=str(base))
    selector = TokenCleanSelector(ref_model=str(reference), ratio=0.5).fit(pool)
    selection = selector.select()
    mask = selection.extra["token_mask"][0].to_list()
    assert len(mask) == 121  # 120 bytes and EOS
    scored = len(selector.tokens_.get(0))
    assert scored < 121 and all(m == 1 for m in mask[scored:])
    assert sum(mask[:scored]) == math.floor(0.5 * scored)
    # the ratio is exact over the scored tokens; the unscored ones are reported, and raise the overall share
    stats = selection.stats
    assert (stats["tokens"], stats["tokens_scored"], stats["tokens_unscored"]) == (121, scored, 121 - scored)
    assert stats["scored_kept_fraction"] == math.floor(0.5 * scored) / scored
    assert stats["kept_fraction"] == (math.floor(0.5 * scored) + 121 - scored) / 121 > 0.5


def test_bad_parameters(models, rows):
    base, _ = models
    pool = Pool.from_rows(pl.DataFrame(rows), model=str(base))
    for params, message in (({"ratio": 0.0}, "ratio"), ({"level": "token"}, "level"), ({"mode": "online"}, "mode"),
                            ({"ref_model": "x", "warmup_data": "y"}, "not both")):
        with pytest.raises(BadUsage, match=message):
            TokenCleanSelector(**params).fit(pool)


def test_a_reference_with_another_tokenizer_is_refused(models, rows, stories_model):
    base, _ = models
    pool = Pool.from_rows(pl.DataFrame(rows), model=str(base))
    with pytest.raises(ModelLoadError, match="another tokenizer"):
        TokenCleanSelector(ref_model=str(stories_model)).fit(pool)


def test_warm_up_reference_is_trained_from_the_base_and_cached(models, rows, tmp_path, monkeypatch):
    base, _ = models
    monkeypatch.setattr("tempfile.gettempdir", lambda: str(tmp_path))
    pool = Pool.from_rows(pl.DataFrame(rows), model=str(base))
    first = TokenCleanSelector(warmup_rows=6, steps=2, lr=1e-2, batch_tokens=2048).fit(pool)
    assert "token-clean-ref-" in first.reference_ and "token-clean-ref-" in first.cross_fit_reference_
    weights = [p for p in (tmp_path / "curate-token-clean").iterdir() if p.name.startswith("token-clean-ref-")]
    assert len(weights) == 2  # the reference and the cross-fit reference that scores the reference's own rows
    assert first.cross_fit_.sum() == 6
    from curate.train import sft

    monkeypatch.setattr(sft, "train_sft", lambda *a, **k: pytest.fail("the cached reference was trained again"))
    again = TokenCleanSelector(warmup_rows=6, steps=2, lr=1e-2, batch_tokens=2048).fit(
        Pool.from_rows(pl.DataFrame(rows), model=str(base)))
    assert again.reference_ == first.reference_
    np.testing.assert_allclose(again.scores_, first.scores_, equal_nan=True)


def _record_training_and_scoring(monkeypatch) -> tuple[dict, list]:
    """Wrap `_train` and `_score`: which rows each model saw (its own and its start model's), and which rows
    each scoring pass scored with which (base, reference)."""
    seen: dict = {None: set()}
    passes: list = []
    real_train, real_score = TokenCleanSelector._train, TokenCleanSelector._score

    def train(self, pool, start, rows, label):
        folder = real_train(self, pool, start, rows, label)
        seen[folder] = seen[start] | {(r["prompt"], r["response"]) for r in rows}
        return folder

    def score(self, pool, mask, base, reference):
        frame = pool.shared.frame
        passes.append((base, reference, {(frame["prompt"][int(p)], frame["response"][int(p)])
                                         for p in pool.root_pos[np.flatnonzero(mask)]}))
        return real_score(self, pool, mask, base, reference)

    monkeypatch.setattr(TokenCleanSelector, "_train", train)
    monkeypatch.setattr(TokenCleanSelector, "_score", score)
    return seen, passes


@pytest.mark.parametrize("mode", ["fixed", "self-evolving"])
def test_no_warm_up_row_is_scored_by_a_model_that_saw_it(models, rows, tmp_path, monkeypatch, mode):
    base, _ = models
    monkeypatch.setattr("tempfile.gettempdir", lambda: str(tmp_path))
    seen, passes = _record_training_and_scoring(monkeypatch)
    pool = Pool.from_rows(pl.DataFrame(rows), model=str(base))
    selector = TokenCleanSelector(mode=mode, chunks=2, warmup_rows=4, steps=2, lr=1e-2, batch_tokens=2048).fit(pool)
    warmed = seen[selector.reference_]
    assert len(warmed) == 4 and len(seen[selector.cross_fit_reference_]) == 4
    assert not warmed & seen[selector.cross_fit_reference_]  # two disjoint folds of the pool
    scored = set()
    for base_model, reference, scored_rows in passes:
        assert not scored_rows & (seen[base_model] | seen[reference]), (base_model, reference)
        scored |= scored_rows
    valid = {(r["prompt"], r["response"]) for r in rows if r["response"]}
    assert scored == valid  # and every row was scored, the reference's own rows included
    assert warmed <= {(r["prompt"], r["response"]) for i, r in enumerate(rows) if selector.cross_fit_[i]}
    selection = selector.select()
    assert len(selection) == len(valid) and selection.stats["cross_fit_rows"] == 4
    masks = selection.extra["token_mask"].to_list()
    assert sum(map(sum, masks)) < sum(map(len, masks))  # the reference's own rows are cleaned like the others


def test_warm_up_data_must_not_share_rows_with_the_pool(models, ws, tmp_path):
    from curate.catalog.ingest import IngestOptions, ingest
    from curate.catalog.versions import resolve
    from tests.conftest import write_jsonl

    base, _ = models
    valid = [{"prompt": r["prompt"], "response": r["response"]} for r in rows_with_responses()]
    ingest(ws, str(write_jsonl(tmp_path / "pool.jsonl", valid)), IngestOptions(name="pool"))
    ingest(ws, str(write_jsonl(tmp_path / "warm.jsonl", valid[:3])), IngestOptions(name="warm"))
    pool = Pool.from_version(resolve(ws, "pool"), ws, model=str(base))
    with pytest.raises(BadUsage, match="warm@v1 shares 3 rows .* with pool@v1") as info:
        TokenCleanSelector(warmup_data="warm", steps=2).fit(pool)
    assert "disjoint" in info.value.hint


def rows_with_responses() -> list[dict]:
    return [{"prompt": r["question"], "response": r["answer"]} for r in word_problems(6, seed=3)]


def test_self_evolving_chunks_use_the_previous_chunks_model(models, rows, tmp_path, monkeypatch):
    base, reference = models
    monkeypatch.setattr("tempfile.gettempdir", lambda: str(tmp_path))
    pool = Pool.from_rows(pl.DataFrame(rows), model=str(base))
    selector = TokenCleanSelector(mode="self-evolving", chunks=2, ref_model=str(reference), steps=2, lr=1e-2,
                                  batch_tokens=2048).fit(pool)
    assert selector.chunk_models_[0] == str(reference) and len(selector.chunk_models_) == 2
    valid = [i for i, r in enumerate(rows) if r["response"]]
    first, second = valid[:len(valid) // 2 + len(valid) % 2], valid[len(valid) // 2 + len(valid) % 2:]
    chunk1 = [rows[i] for i in first]
    want1 = [b - r for b, r in zip(_losses(base, chunk1), _losses(reference, chunk1))]
    np.testing.assert_allclose(selector.tokens_.get(first[0]), want1[0], rtol=1e-4, atol=1e-4)
    chunk2 = [rows[i] for i in second]  # base: the first reference; reference: it, trained on cleaned chunk 1
    want2 = [b - r for b, r in zip(_losses(reference, chunk2), _losses(selector.chunk_models_[1], chunk2))]
    np.testing.assert_allclose(selector.tokens_.get(second[0]), want2[0], rtol=1e-4, atol=1e-4)
    selection = selector.select()
    assert len(selection) == len(valid)
    for chunk in (first, second):  # the top 60% is taken within each chunk
        kept = sum(int(selector.masks_.get(p).sum()) for p in chunk)
        total = sum(len(selector.tokens_.get(p)) for p in chunk)
        assert kept == math.floor(0.6 * total)
