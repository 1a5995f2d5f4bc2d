"""Token cleaning: keep the response tokens a reference model learned, mask the rest.

Pang et al., "Token Cleaning: Fine-Grained Data Selection for LLM Supervised Fine-Tuning",
ICML 2025 (arXiv 2502.01968). The score of response token j of example i is the drop in its
loss from a base model θ to a reference model θ':

    score_ij = ℓ(x_ij | x_i,<j; θ) − ℓ(x_ij | x_i,<j; θ'),

high where the reference learned something the base did not. The top `ratio` of tokens by
score are kept (token_mask 1) and the rest are masked out of the SFT loss; `level="global"`
ranks all tokens of the pool together (the paper's choice), `level="example"` ranks within
each example (as RHO-1 does). As in the paper's code, the count kept is ⌊ratio · tokens⌋.

Two modes:
- `fixed`: θ = `--model`, θ' = `ref_model`, or θ trained on all tokens of a small clean slice
  (`warmup_data`, a dataset reference, or by default `warmup_rows` rows sampled from the
  pool), with the SFT trainer (`curate.train.sft`); one pass scores the whole pool.
- `self-evolving`: the pool is split into `chunks` consecutive chunks. Chunk 1 is scored with
  (θ, θ_0) where θ_0 is the fixed-mode reference; chunk t is then cleaned and θ_{t−1} is trained
  on it to give θ_t, and chunk t+1 is scored with (θ_{t−1}, θ_t): the reference of each chunk is
  the model trained on the chunk before, its base the reference before that (the authors'
  `self_evolving_cleaning.sh`). Tokens are ranked within each chunk.

Warm-up rows are never scored by a model trained on them. The paper warms the reference on
separate data (`warmup_data`, which must not share rows with the pool). When the reference is
warmed on the pool itself (the default), a reference would score its own training rows with
an inflated loss drop, so curate cross-fits: it samples 2 x `warmup_rows` rows, trains the
reference θ'_A on one half (A) and a second reference θ'_B on the other (B); the rows of A are
scored with θ'_B and every other row with θ'_A. In self-evolving mode every chunk model
descends from θ'_A, so the rows of A are taken out of the chunks and scored (with θ'_B) and
cleaned together with chunk 1, whose reference is also a warm-up reference.

Masks are aligned with the response tokens as `curate.lm.templates.encode_pair(...,
add_eos=True)` produces them (EOS included), the tokenization the SFT trainer checks; tokens
past the model's context are not scored and keep mask 1. Per-token scores are stored in the
catalog (`curate.catalog.scores`), with the mean score of each example as its value.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path
from typing import ClassVar

import numpy as np
import polars as pl
import xxhash

from curate.catalog.scores import load_token_scores, scorer_key
from curate.errors import BadUsage, ModelLoadError
from curate.selectors.base import NAN_SCORE, AnnotateSelector, Selection, dropped_rows
from curate.selectors.sft.token_scores import Ragged, masks_frame, top_fraction


class TokenCleanSelector(AnnotateSelector):
    name: ClassVar[str] = "token-clean"
    uses_model: ClassVar[bool] = True
    needs_response: ClassVar[bool] = True

    def __init__(self, ratio: float = 0.6, level: str = "global", mode: str = "fixed", ref_model: str | None = None,
                 warmup_data: str | None = None, warmup_rows: int = 256, steps: int = 60, lr: float = 1e-3,
                 batch_tokens: int = 8192, chunks: int = 4):
        self.ratio = ratio
        self.level = level
        self.mode = mode
        self.ref_model = ref_model
        self.warmup_data = warmup_data
        self.warmup_rows = warmup_rows
        self.steps = steps
        self.lr = lr
        self.batch_tokens = batch_tokens
        self.chunks = chunks

    # -- checks --------------------------------------------------------------------------
    def _check_params(self) -> None:
        if not 0 < self.ratio <= 1:
            raise BadUsage(f"token-clean.ratio is the fraction of tokens kept, in (0, 1]; got {self.ratio}")
        if self.level not in ("global", "example"):
            raise BadUsage(f"token-clean.level must be 'global' or 'example', not {self.level!r}")
        if self.mode not in ("fixed", "self-evolving"):
            raise BadUsage(f"token-clean.mode must be 'fixed' or 'self-evolving', not {self.mode!r}")
        if self.mode == "self-evolving" and self.chunks < 1:
            raise BadUsage(f"token-clean.chunks must be at least 1, got {self.chunks}")
        if self.ref_model and self.warmup_data:
            raise BadUsage("give token-clean.ref_model or token-clean.warmup_data, not both")

    # -- fit ------------------------------------------------------------------------------
    def fit(self, pool) -> TokenCleanSelector:
        self._prepare(pool)
        self.model_id_, self.model_hash_ = pool.model, pool.model_hash()
        self.tokens_ = Ragged(pool.rows)
        self.masks_ = Ragged(pool.rows)
        self.cross_fit_ = np.zeros(pool.rows, dtype=bool)  # the rows reference_ was trained on (cross-fit)
        self.cross_fit_reference_: str | None = None  # the reference that scores them instead
        self.cached_rows_ = 0
        self.reference_ = self._reference(pool)
        if self.mode == "fixed":
            self._fixed(pool)
        else:
            self._self_evolving(pool)
        means = np.full(pool.rows, np.nan)
        for position in np.flatnonzero(self.valid_):
            values = self.tokens_.get(position)
            finite = values[np.isfinite(values)]
            if len(finite):
                means[position] = float(finite.mean())
        self.scores_ = means
        return self

    def _fixed(self, pool) -> None:
        self.scorer_key_ = self._fixed_pass(pool, self.valid_ & ~self.cross_fit_, self.reference_)
        if self.cross_fit_.any():
            self._fixed_pass(pool, self.cross_fit_, self.cross_fit_reference_)
        self._clean(np.flatnonzero(self.valid_))

    def _fixed_pass(self, pool, rows: np.ndarray, reference: str) -> str:
        """Score `rows` with (base, reference), reusing stored scores; returns the scorer key."""
        key = scorer_key(self.name, self.model_hash_, self._key_params(pool, pool.model_hash(reference)))
        todo = rows.copy()
        if pool.ws is not None and pool.version is not None:
            cached = load_token_scores(pool.ws, pool.version.ref, key)
            if cached.height:
                hits = pl.DataFrame({"id": pool.ids}).with_row_index("p").join(cached, on="id", how="inner")
                for position, values in zip(hits["p"].to_list(), hits["values"].to_list()):
                    if rows[position]:
                        self.tokens_.put(position, np.asarray(values, dtype=np.float32))
                        todo[position] = False
        self.cached_rows_ += int(rows.sum() - todo.sum())
        if todo.any():
            fresh = self._score(pool, todo, None, reference)
            self._store(pool, key, fresh, pool.model_hash(reference))
        return key

    def _self_evolving(self, pool) -> None:
        chunks = [c for c in np.array_split(np.flatnonzero(self.valid_ & ~self.cross_fit_), self.chunks) if len(c)]
        base, reference = None, self.reference_
        self.chunk_models_ = [reference]
        for index, chunk in enumerate(chunks):
            mask = np.zeros(pool.rows, dtype=bool)
            mask[chunk] = True
            fresh = self._score(pool, mask, base, reference)
            ref_hash = pool.model_hash(reference)
            key = scorer_key(self.name, pool.model_hash(base) if base else self.model_hash_,
                             self._key_params(pool, ref_hash, chunk=index))
            self._store(pool, key, fresh, ref_hash)
            if index == 0 and self.cross_fit_.any():  # the warm-up reference's own rows: the other fold scores them
                held_out = self.cross_fit_reference_
                fresh = self._score(pool, self.cross_fit_, None, held_out)
                self._store(pool, scorer_key(self.name, self.model_hash_, self._key_params(
                    pool, pool.model_hash(held_out), chunk=index)), fresh, pool.model_hash(held_out))
                chunk = np.union1d(chunk, np.flatnonzero(self.cross_fit_))
            self._clean(chunk)
            if index + 1 < len(chunks):  # the next chunk's reference: this reference trained on this cleaned chunk
                rows = self._training_rows(pool, chunk, with_masks=True)
                base, reference = reference, self._train(pool, reference, rows, f"chunk {index + 1}")
                self.chunk_models_.append(reference)

    def _key_params(self, pool, ref_hash: str, chunk: int | None = None) -> dict:
        params = {"template": pool.template, "reference": ref_hash[:16], "mode": self.mode}
        if chunk is not None:  # a chunk's scores depend on which rows made the earlier chunks
            params.update(chunk=chunk, chunks=self.chunks, pool=pool.ids_digest())
        return params

    def _score(self, pool, mask: np.ndarray, base: str | None, reference: str) -> dict[int, np.ndarray]:
        """score = loss under the base − loss under the reference, per response token."""
        from curate.selectors.features import token_nll

        base_lm, ref_lm = pool.lm(base), pool.lm(reference)
        if base_lm.tokenizer.get_vocab() != ref_lm.tokenizer.get_vocab():
            raise ModelLoadError(f"token-clean: the reference model {reference} uses another tokenizer than the base",
                                 hint="the reference must share the base model's tokenizer (train it from the base)")
        base_loss = dict(token_nll(pool, base_lm, mask, what="token-clean: base model losses"))
        fresh: dict[int, np.ndarray] = {}
        for position, ref_loss in token_nll(pool, ref_lm, mask, what="token-clean: reference model losses"):
            values = (base_loss.pop(position) - ref_loss).astype(np.float32)
            self.tokens_.put(position, values)
            fresh[position] = values
        return fresh

    def _store(self, pool, key: str, fresh: dict[int, np.ndarray], ref_hash: str) -> None:
        if not fresh:
            return
        positions = np.array(sorted(fresh), dtype=np.int64)
        values = [fresh[p] for p in positions]
        means = np.array([float(v[np.isfinite(v)].mean()) if np.isfinite(v).any() else np.nan for v in values])
        pool.store_scores(key, self.name, self.model_hash_, {"reference": ref_hash, "mode": self.mode}, positions,
                          means, values)

    def _clean(self, positions: np.ndarray) -> None:
        """Masks for these examples: the top `ratio` of their scored tokens (globally or per example)."""
        lengths = self._full_lengths(positions)
        scores = [self.tokens_.get(p) for p in positions]
        keep = top_fraction(scores, self.ratio, per_example=self.level == "example")
        for position, kept, length in zip(positions, keep, lengths):
            mask = np.ones(length, dtype=np.uint8)  # tokens past the context were not scored: kept
            mask[: len(kept)] = kept
            self.masks_.put(position, mask)

    def _full_lengths(self, positions: np.ndarray) -> list[int]:
        from curate.lm.templates import encode_pair

        tokenizer = self.pool_.lm().tokenizer
        wanted = np.zeros(self.pool_.rows, dtype=bool)
        wanted[positions] = True
        lengths = {}
        for frame in self.pool_.iter_frames(["prompt", "response"], wanted):
            for position, prompt, response in zip(frame["_pos"].to_list(), frame["prompt"].to_list(),
                                                  frame["response"].to_list()):
                lengths[position] = len(encode_pair(prompt, response, tokenizer, self.pool_.template,
                                                    add_eos=True).response_ids)
        return [lengths[int(p)] for p in positions]

    # -- reference models ---------------------------------------------------------------
    def _reference(self, pool) -> str:
        if self.ref_model:
            return self.ref_model
        if self.warmup_data:
            rows = self._warmup_data_rows(pool)
            return self._train(pool, None, rows, "warm-up")
        candidates = np.flatnonzero(self.valid_)
        if len(candidates) < 2:
            raise BadUsage("token-clean: warming a reference on the pool needs at least 2 rows with a response "
                           "(one half trains it, the other half's model scores that half)",
                           hint="pass --param token-clean.ref_model=MODEL, or --param "
                                "token-clean.warmup_data=NAME (data not in the pool)")
        take = min(2 * self.warmup_rows, len(candidates))
        picks = np.random.default_rng(pool.seed).choice(candidates, size=take, replace=False)
        fold_a, fold_b = np.sort(picks[: take // 2]), np.sort(picks[take // 2:])
        self.cross_fit_[fold_a] = True
        self.cross_fit_reference_ = self._train(pool, None, self._training_rows(pool, fold_b, with_masks=False),
                                                "cross-fit warm-up")
        return self._train(pool, None, self._training_rows(pool, fold_a, with_masks=False), "warm-up")

    def _warmup_data_rows(self, pool) -> list[dict]:
        """The rows of `warmup_data`; refused when some are in the pool (the reference would score its own rows)."""
        if pool.ws is None:
            raise BadUsage("token-clean.warmup_data names a dataset, which needs a workspace")
        from curate.catalog.ids import content_id_expr
        from curate.catalog.versions import resolve

        warmup = resolve(pool.ws, self.warmup_data)
        frame = warmup.scan().select("prompt", "response").collect()
        ids = frame.select(content_id_expr(()).alias("c"))["c"]  # prompt and response only
        shared = 0
        for part in pool.iter_frames(["prompt", "response"], self.valid_):
            shared += int(part.select(content_id_expr(()).is_in(ids.implode()).sum()).item())
        if shared:
            raise BadUsage(f"token-clean.warmup_data {warmup.ref} shares {shared:,} rows (same prompt and response) "
                           f"with {pool.label}: the reference would score the rows it was trained on",
                           hint="warm up on data disjoint from the pool, or leave warmup_data unset (curate then "
                                "cross-fits two references on a sample of the pool)")
        return frame.to_dicts()

    def _training_rows(self, pool, positions: np.ndarray, with_masks: bool) -> list[dict]:
        wanted = np.zeros(pool.rows, dtype=bool)
        wanted[positions] = True
        rows = []
        for frame in pool.iter_frames(["prompt", "response"], wanted):
            for position, prompt, response in zip(frame["_pos"].to_list(), frame["prompt"].to_list(),
                                                  frame["response"].to_list()):
                row = {"prompt": prompt, "response": response}
                if with_masks:
                    row["token_mask"] = self.masks_.get(position).tolist()
                rows.append(row)
        return rows

    def _train(self, pool, start: str | None, rows: list[dict], label: str) -> str:
        """SFT of `start` (default: the base) on `rows`; the model folder, cached in the workspace."""
        from curate.train.sft import SFTConfig, train_sft

        start_path = pool.model_path(start)
        config = SFTConfig(steps=self.steps, lr=self.lr, batch_tokens=self.batch_tokens, warmup=max(1, self.steps // 10),
                           seed=pool.seed, template=pool.template, save_every=0)
        digest = xxhash.xxh3_64_hexdigest(json.dumps(
            [pool.model_hash(start), config.__dict__, rows], sort_keys=True, default=str).encode())
        root = pool.ws.models_dir if pool.ws is not None else Path(tempfile.gettempdir()) / "curate-token-clean"
        folder = root / f"token-clean-ref-{digest[:16]}"
        if (folder / "config.json").exists():
            return str(folder)
        root.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=".token-clean-", dir=root))
        try:
            pool.say(f"token-clean: training the {label} reference", 0, self.steps)
            train_sft(start_path, rows, staging / "model", config,
                      progress=lambda step, _: pool.say(f"token-clean: training the {label} reference", step,
                                                        self.steps))
            shutil.rmtree(staging / "model" / "checkpoint", ignore_errors=True)
            if not (folder / "config.json").exists():
                shutil.rmtree(folder, ignore_errors=True)
                (staging / "model").rename(folder)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        return str(folder)

    # -- select ---------------------------------------------------------------------------
    def select(self, budget: int | None = None) -> Selection:
        scored = np.array([self.tokens_.has(p) and np.isfinite(self.tokens_.get(p)).any()
                           for p in range(self.pool_.rows)], dtype=bool)
        nan = self.valid_ & ~scored
        order = np.flatnonzero(self.valid_ & scored)
        drops = [dropped_rows(self.ids_.gather(np.flatnonzero(nan)), NAN_SCORE,
                              ["no finite token score"] * int(nan.sum()))]
        extra = masks_frame(self.ids_.gather(order), [self.masks_.get(p) for p in order])
        scores = pl.DataFrame({"id": self.ids_, "value": self.scores_})
        selection = self._finish(order, self.scores_[order], drops, extra=extra, scores=scores)
        # The ratio applies to the scored tokens (exact: floor(ratio * scored), ties to the earlier token);
        # tokens past the model's context are not scored and keep mask 1, so the share of all tokens kept
        # (`kept_fraction`, what the masks hold) is higher by their number.
        scored_lengths = [len(self.tokens_.get(p)) for p in order]
        masks = [self.masks_.get(p) for p in order]
        kept = sum(int(m.sum()) for m in masks)
        total = sum(len(m) for m in masks)
        scored = sum(scored_lengths)
        scored_kept = sum(int(m[:n].sum()) for m, n in zip(masks, scored_lengths))
        selection.stats.update({"tokens": total, "tokens_kept": kept, "kept_fraction": kept / max(1, total),
                                "tokens_scored": scored, "scored_kept_fraction": scored_kept / max(1, scored),
                                "tokens_unscored": total - scored, "reference": self.reference_, "mode": self.mode})
        if self.cross_fit_reference_:
            selection.stats.update({"cross_fit_rows": int(self.cross_fit_.sum()),
                                    "cross_fit_reference": self.cross_fit_reference_})
        return selection
