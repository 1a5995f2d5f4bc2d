"""One embedding per example, for dedup and diversity.

Two sources:
- a causal LM (the default is the dataset's proxy, `--model proxy`): the mean of the
  last-layer hidden states over every token of the example as the trainer sees it
  (`encode_pair`: the prompt, then the response and EOS);
- a sentence-transformers folder (it has `modules.json`): `SentenceTransformer.encode` of the
  example's plain text. sentence-transformers is an optional dependency; such a folder without
  it installed is a clear error.

Embeddings are cached per model for the whole chain of a selection, by source row, so dedup
and diversity in one chain embed each example once.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from curate.errors import ModelLoadError


def is_sentence_transformers(path: str) -> bool:
    folder = Path(path).expanduser()
    return folder.is_dir() and ((folder / "modules.json").exists()
                                or (folder / "config_sentence_transformers.json").exists())


def embed(pool, spec: str | None = None, batch_size: int = 64) -> np.ndarray:
    """[pool rows, d] float32 embeddings, in pool order."""
    path = pool.model_path(spec)
    key = f"{path}\x1f{pool.template}"
    cache = pool.embeddings_cache()
    total = len(pool.shared.root_ids)
    if key in cache:
        matrix, done = cache[key]
    else:
        matrix, done = None, np.zeros(total, dtype=bool)
    todo = ~done[pool.root_pos]
    if todo.any():
        compute = _sentence_transformer if is_sentence_transformers(path) else _lm_mean
        for positions, vectors in compute(pool, path, todo, batch_size):
            if matrix is None:
                matrix = np.zeros((total, vectors.shape[1]), dtype=np.float32)
            rows = pool.root_pos[positions]
            matrix[rows] = vectors
            done[rows] = True
        cache[key] = (matrix, done)
    if matrix is None:
        raise ValueError("no rows to embed")
    return matrix[pool.root_pos]


def _lm_mean(pool, path: str, mask: np.ndarray, batch_size: int):
    from curate.lm.scoring import hidden_states
    from curate.lm.templates import encode_pair

    lm = pool.lm(path)
    total, done = int(mask.sum()), 0
    for frame in pool.iter_frames(["prompt", "response"], mask):
        items = [encode_pair(p, r, lm.tokenizer, pool.template, add_eos=r is not None, max_length=lm.max_length)
                 for p, r in zip(frame["prompt"].to_list(), frame["response"].to_list())]
        vectors = np.stack(list(hidden_states(lm, items, positions="all", pool="mean"))).astype(np.float32)
        done += frame.height
        pool.say("embedding", done, total)
        yield frame["_pos"].to_numpy(), vectors


def _sentence_transformer(pool, path: str, mask: np.ndarray, batch_size: int):
    try:
        from sentence_transformers import SentenceTransformer
    except ImportError:
        raise ModelLoadError(f"{path} is a sentence-transformers model, but sentence-transformers is not installed",
                             hint="pip install sentence-transformers, or embed with a causal LM (--model proxy)") from None
    from curate.train.proxy import example_text

    try:
        model = SentenceTransformer(str(Path(path).expanduser()), device="cpu")
    except Exception as exc:  # the library raises many types for a bad folder
        raise ModelLoadError(f"could not load sentence-transformers model {path}: {str(exc)[:300]}") from exc
    total, done = int(mask.sum()), 0
    for frame in pool.iter_frames(["prompt", "response"], mask):
        texts = [example_text(p, r) for p, r in zip(frame["prompt"].to_list(), frame["response"].to_list())]
        vectors = np.asarray(model.encode(texts, batch_size=batch_size, show_progress_bar=False), dtype=np.float32)
        done += frame.height
        pool.say("embedding", done, total)
        yield frame["_pos"].to_numpy(), vectors


def normalized(vectors: np.ndarray, center: bool = True) -> np.ndarray:
    """Unit rows, after removing the mean when `center` (LM embeddings share a large common
    direction, which makes every pair look similar; removing it restores contrast)."""
    out = vectors.astype(np.float32, copy=True)
    if center and len(out) > 1:
        out -= out.mean(axis=0, keepdims=True)
    norms = np.linalg.norm(out, axis=1, keepdims=True)
    np.divide(out, norms, out=out, where=norms > 0)
    return np.ascontiguousarray(out)
