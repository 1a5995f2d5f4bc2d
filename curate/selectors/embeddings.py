"""One embedding per example, for dedup and diversity.

Two sources:
- a causal LM (the default is the dataset's proxy, `--model proxy`): the mean of the
  last-layer hidden states over every token of the example as the trainer sees it
  (`encode_pair`: the prompt, then the response and EOS);
- a sentence-transformers folder (it has `modules.json`): `SentenceTransformer.encode` of the
  example's plain text. sentence-transformers is an optional dependency; such a folder without
  it installed is a clear error.

With `normalize_text`, prompts and responses are normalised before embedding the way
datatrove normalises text for near-dedup (Unicode NFKC, lower case, punctuation removed,
whitespace collapsed), so copies that differ only in those respects embed alike.

`transform` turns raw embeddings into unit vectors for cosine search: `whiten` (center, then
PCA-whiten: Su et al. 2021, "Whitening Sentence Representations"), `center`, or `none`;
`auto` whitens causal-LM embeddings, whose few dominant directions make every pair look
similar, and leaves sentence-transformers embeddings (trained for cosine) as they are.

Embeddings are cached per model for the whole chain of a selection, by source row, so dedup
and diversity in one chain embed each example once.
"""

from __future__ import annotations

import re
import unicodedata
from pathlib import Path

import numpy as np

from curate.errors import ModelLoadError


def is_sentence_transformers(path: str) -> bool:
    folder = Path(path).expanduser()
    return folder.is_dir() and ((folder / "modules.json").exists()
                                or (folder / "config_sentence_transformers.json").exists())


TRANSFORMS = ("auto", "whiten", "center", "none")
_PUNCTUATION = re.compile(r"[^\w\s]|_")
_SPACES = re.compile(r"\s+")


def normalize_text(text: str | None) -> str | None:
    """datatrove-style text normalisation: NFKC, lower case, no punctuation, single spaces."""
    if text is None:
        return None
    text = unicodedata.normalize("NFKC", text).lower()
    return _SPACES.sub(" ", _PUNCTUATION.sub("", text)).strip()


def _normalized_prompt(prompt):
    if isinstance(prompt, list):
        return [{"role": m["role"], "content": normalize_text(m["content"] or "")} for m in prompt]
    return normalize_text(prompt)


def embed(pool, spec: str | None = None, batch_size: int = 64, normalize: bool = False) -> np.ndarray:
    """[pool rows, d] float32 embeddings, in pool order (of normalised text with `normalize`)."""
    path = pool.model_path(spec)
    key = f"{path}\x1f{pool.template}\x1f{normalize}"
    cache = pool.embeddings_cache()
    total = len(pool.shared.root_ids)
    if key in cache:
        matrix, done = cache[key]
    else:
        matrix, done = None, np.zeros(total, dtype=bool)
    todo = ~done[pool.root_pos]
    if todo.any():
        compute = _sentence_transformer if is_sentence_transformers(path) else _lm_mean
        for positions, vectors in compute(pool, path, todo, batch_size, normalize):
            if matrix is None:
                matrix = np.zeros((total, vectors.shape[1]), dtype=np.float32)
            rows = pool.root_pos[positions]
            matrix[rows] = vectors
            done[rows] = True
        cache[key] = (matrix, done)
    if matrix is None:
        raise ValueError("no rows to embed")
    return matrix[pool.root_pos]


def normalized_texts(prompts: list, responses: list) -> tuple[list, list]:
    return [_normalized_prompt(p) for p in prompts], [normalize_text(r) for r in responses]


def _texts(frame, normalize: bool):
    prompts, responses = frame["prompt"].to_list(), frame["response"].to_list()
    return normalized_texts(prompts, responses) if normalize else (prompts, responses)


def _lm_mean(pool, path: str, mask: np.ndarray, batch_size: int, normalize: bool):
    from curate.selectors.features import mean_states

    for positions, vectors in mean_states(pool, mask, path, text=normalized_texts if normalize else None):
        yield positions, np.stack(vectors).astype(np.float32)


def _sentence_transformer(pool, path: str, mask: np.ndarray, batch_size: int, normalize: bool):
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
        texts = [example_text(p, r) for p, r in zip(*_texts(frame, normalize))]
        vectors = np.asarray(model.encode(texts, batch_size=batch_size, show_progress_bar=False), dtype=np.float32)
        done += frame.height
        pool.say("embedding", done, total)
        yield frame["_pos"].to_numpy(), vectors


def unit_vectors(vectors: np.ndarray, transform: str = "center", eps: float = 1e-6) -> np.ndarray:
    """Rows made ready for cosine search: transformed (see the module docstring), then unit length."""
    if transform not in TRANSFORMS or transform == "auto":
        raise ValueError(f"transform must be whiten, center or none, not {transform!r}")
    out = vectors.astype(np.float64, copy=True)
    if transform in ("center", "whiten") and len(out) > 1:
        out -= out.mean(axis=0, keepdims=True)
    if transform == "whiten" and len(out) > 2 * out.shape[1]:  # too few rows for a covariance: center only
        values, vectors_ = np.linalg.eigh(np.cov(out.T))
        values = np.clip(values, 0.0, None)
        out = out @ (vectors_ / np.sqrt(values + eps * max(values.max(), 1e-12)))
    norms = np.linalg.norm(out, axis=1, keepdims=True)
    np.divide(out, norms, out=out, where=norms > 0)
    return np.ascontiguousarray(out.astype(np.float32))


def resolve_transform(transform: str, path: str) -> str:
    """`auto`: whiten a causal LM's embeddings, leave a sentence-transformers model's alone."""
    if transform not in TRANSFORMS:
        from curate.errors import BadUsage

        raise BadUsage(f"transform must be one of {', '.join(TRANSFORMS)}, not {transform!r}")
    if transform != "auto":
        return transform
    return "none" if is_sentence_transformers(path) else "whiten"
