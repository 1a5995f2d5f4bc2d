"""Domain labels for mixing: the `domain` column, or k-means clusters named by their frequent terms.

When a dataset has no domain column, examples are embedded (the proxy's mean-pooled
hidden states, as dedup uses), clustered with scikit-learn's k-means, and each cluster is
named by its most frequent distinctive terms (the highest mean TF-IDF over its members'
text), e.g. "apples-sells-buys".
"""

from __future__ import annotations

import re

import numpy as np

from curate.selectors.embeddings import embed, unit_vectors

WORD = re.compile(r"[A-Za-z][A-Za-z]+")


def domain_labels(pool, clusters: int = 0, seed: int = 0) -> tuple[np.ndarray, list[str], str]:
    """(code per row, domain names, where they came from: "column" or "kmeans")."""
    labels = _domain_column(pool)
    if any(label is not None for label in labels) and not clusters:
        names = sorted({label if label is not None else "(none)" for label in labels})
        lookup = {name: i for i, name in enumerate(names)}
        return np.array([lookup[v if v is not None else "(none)"] for v in labels], dtype=np.int64), names, "column"
    k = clusters or max(2, min(8, int(np.sqrt(pool.rows / 50))))
    codes = cluster(embed(pool), k, seed)
    return codes, name_clusters(pool, codes, k), "kmeans"


def _domain_column(pool) -> list[str | None]:
    """The domain of each row, in pool order (None everywhere when there is no column)."""
    labels: list[str | None] = [None] * pool.rows
    if "domain" not in pool.columns():
        return labels
    for frame in pool.iter_frames(["domain"]):
        for pos, value in zip(frame["_pos"].to_list(), frame["domain"].to_list()):
            labels[pos] = value
    return labels


def _sklearn():
    """scikit-learn, which only k-means domains need (the `mix` extra)."""
    try:
        import sklearn  # noqa: F401
    except ImportError as exc:
        from curate.errors import BadUsage

        raise BadUsage("clustering rows into domains needs scikit-learn, which is not installed",
                       hint="pip install 'curate[mix]', or give the domains with --domain-field / a domain column"
                       ) from exc


def cluster(vectors: np.ndarray, k: int, seed: int = 0) -> np.ndarray:
    _sklearn()
    from sklearn.cluster import KMeans

    k = min(k, len(vectors))
    model = KMeans(n_clusters=k, n_init=4, random_state=seed)
    return model.fit_predict(unit_vectors(vectors, "center")).astype(np.int64)


def name_clusters(pool, codes: np.ndarray, k: int, terms: int = 3) -> list[str]:
    _sklearn()
    from sklearn.feature_extraction.text import TfidfVectorizer

    from curate.train.proxy import example_text

    texts = [""] * pool.rows
    for frame in pool.iter_frames(["prompt", "response"]):
        for pos, p, r in zip(frame["_pos"].to_list(), frame["prompt"].to_list(), frame["response"].to_list()):
            texts[pos] = example_text(p, r)
    vectorizer = TfidfVectorizer(token_pattern=WORD.pattern, lowercase=True, stop_words="english", max_features=20000)
    matrix = vectorizer.fit_transform(texts)
    vocabulary = np.array(vectorizer.get_feature_names_out())
    names, used = [], set()
    for c in range(k):
        members = np.flatnonzero(codes == c)
        if len(members) == 0 or len(vocabulary) == 0:
            names.append(f"cluster-{c}")
            continue
        weights = np.asarray(matrix[members].mean(axis=0)).ravel()
        name = "-".join(vocabulary[np.argsort(-weights, kind="stable")[:terms]])
        names.append(name if name not in used else f"{name}-{c}")
        used.add(names[-1])
    return names
