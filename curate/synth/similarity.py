"""ROUGE-L between short texts, and an index that finds a text's most similar neighbour.

ROUGE-L (Lin, 2004, "ROUGE: A Package for Automatic Evaluation of Summaries") scores two
token sequences by their longest common subsequence (LCS): precision = LCS/len(candidate),
recall = LCS/len(reference), F = 2PR/(P+R) = 2·LCS/(len(candidate)+len(reference)).
Self-Instruct (Wang et al., ACL 2023, arXiv 2212.10560) keeps a new instruction only when
its ROUGE-L F with every instruction already in the pool is at most 0.7; it scores with
`rouge_score.RougeScorer(["rougeL"], use_stemmer=False)`, whose tokenizer lowercases,
replaces every character outside [a-z0-9] by a space and splits on whitespace. We do the same.

The LCS length is computed bit-parallel (Allison and Dix 1986; Hyyrö 2004): with one
bit per token of the reference, V := ~0, and for each candidate token c,
U = V & M[c]; V = (V + U) | (V - U), the LCS is the number of zero bits of V. Python's
big integers make that one addition and a few logic operations per token, whatever the
reference's length. A length bound skips pairs that cannot reach the threshold:
F <= 2·min(m, n)/(m + n).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

_NON_ALNUM = re.compile(r"[^a-z0-9]+")


def tokenize(text: str) -> list[str]:
    """rouge_score's default tokenizer without stemming."""
    return _NON_ALNUM.sub(" ", text.lower()).split()


def lcs_length_dp(a: Sequence, b: Sequence) -> int:
    """The textbook O(len(a)·len(b)) dynamic programme (the reference for tests)."""
    if not a or not b:
        return 0
    previous = [0] * (len(b) + 1)
    for x in a:
        current = [0]
        for j, y in enumerate(b):
            current.append(previous[j] + 1 if x == y else max(previous[j + 1], current[j]))
        previous = current
    return previous[-1]


def match_masks(reference: Sequence) -> dict:
    """For each symbol, the bit mask of its positions in `reference`."""
    masks: dict = {}
    for position, symbol in enumerate(reference):
        masks[symbol] = masks.get(symbol, 0) | (1 << position)
    return masks


def lcs_length_bits(masks: dict, length: int, candidate: Iterable) -> int:
    """LCS of the reference behind `masks` (of `length` tokens) and `candidate`, bit-parallel."""
    if length == 0:
        return 0
    full = (1 << length) - 1
    v = full
    for symbol in candidate:
        u = v & masks.get(symbol, 0)
        if u:
            v = ((v + u) | (v - u)) & full
    return length - v.bit_count()


def lcs_length(a: Sequence, b: Sequence) -> int:
    return lcs_length_bits(match_masks(a), len(a), b)


def rouge_l(candidate: str | Sequence[str], reference: str | Sequence[str]) -> float:
    """ROUGE-L F-measure (beta 1) of two texts or token lists."""
    cand = tokenize(candidate) if isinstance(candidate, str) else list(candidate)
    ref = tokenize(reference) if isinstance(reference, str) else list(reference)
    if not cand or not ref:
        return 0.0
    return 2.0 * lcs_length(ref, cand) / (len(cand) + len(ref))


@dataclass
class Neighbour:
    score: float
    index: int
    text: str


@dataclass
class RougeIndex:
    """Texts seen so far, ready to be compared with a new one by ROUGE-L."""

    texts: list[str] = field(default_factory=list)
    _entries: list[tuple[dict, int]] = field(default_factory=list, repr=False)

    def __len__(self) -> int:
        return len(self.texts)

    def add(self, text: str) -> None:
        tokens = tokenize(text)
        self.texts.append(text)
        self._entries.append((match_masks(tokens), len(tokens)))

    def extend(self, texts: Iterable[str]) -> None:
        for text in texts:
            self.add(text)

    def nearest(self, text: str) -> Neighbour | None:
        """The most similar text seen so far (None when the index is empty or `text` has no tokens)."""
        tokens = tokenize(text)
        n = len(tokens)
        best: Neighbour | None = None
        for index, (masks, m) in enumerate(self._entries):
            if n == 0 or m == 0 or (best is not None and 2.0 * min(m, n) / (m + n) <= best.score):
                continue
            score = 2.0 * lcs_length_bits(masks, m, tokens) / (m + n)
            if best is None or score > best.score:
                best = Neighbour(score, index, self.texts[index])
        return best

    def first_above(self, text: str, threshold: float) -> Neighbour | None:
        """The first text whose ROUGE-L with `text` exceeds `threshold`, or None: enough to reject `text`."""
        tokens = tokenize(text)
        n = len(tokens)
        for index, (masks, m) in enumerate(self._entries):
            if n == 0 or m == 0 or 2.0 * min(m, n) / (m + n) <= threshold:
                continue
            score = 2.0 * lcs_length_bits(masks, m, tokens) / (m + n)
            if score > threshold:
                return Neighbour(score, index, self.texts[index])
        return None
