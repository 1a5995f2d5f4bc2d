"""Instruction-Following Difficulty (Cherry LLM).

Li et al., "From Quantity to Quality: Boosting LLM Performance with Self-Guided Data Selection
for Instruction Tuning", NAACL 2024 (arXiv 2308.12032):

    IFD(Q, A) = s(A | Q) / s(A),

where s(A | Q) is the mean cross-entropy of the answer tokens given the question and s(A) the
mean cross-entropy of the answer alone (the direct-answer score). A high IFD means the question
helps little to predict the answer: the example is hard to follow and worth training on. An
IFD above 1 means the question makes the answer *less* likely, i.e. they do not match; those
examples are dropped (reason `ifd_above_1`, as Cherry_LLM's `data_by_IFD.py` skips
`mean_rate > 1`) and the rest are ranked by IFD, highest first.

What curate computes: both losses are means over the same tokens, the response as
`encode_pair` tokenizes it after the prompt's template (EOS included). The conditioned loss
sees the templated prompt; the direct-answer loss feeds those same response tokens after a
single start token (BOS, or EOS when the tokenizer has no BOS) and nothing else.

What Cherry_LLM does (`python cherry_seletion/data_analysis.py --mod cherry`, and
`data_by_IFD.py`): the conditioned text is the templated instruction + output; the direct
text is the string `'### Response:' + output`, tokenized as a whole with the tokenizer's BOS,
so its direct answer is conditioned on BOS *and* the template's response header (not on a
bare start token), and its answer tokens come from re-tokenizing that string (they can
differ from the conditioned pass's at the boundary). The direct pass is truncated to
`max_length − len(instruction) − 2` tokens so that both cover about the same answer tokens.
curate conditions on the start token alone because its prompts go through chat or plain
templates with no fixed response header; on models trained with such a header the two
direct losses differ by how much the header itself predicts the answer.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np
import polars as pl

from curate.selectors.base import dropped_rows
from curate.selectors.features import mean_nll
from curate.selectors.scored import ModelScorer

ABOVE = "ifd_above_1"


class IFDSelector(ModelScorer):
    name: ClassVar[str] = "ifd"
    higher_is_better = True

    def __init__(self, max_ifd: float = 1.0):
        self.max_ifd = max_ifd

    def _score(self, pool, valid: np.ndarray) -> np.ndarray:
        lm = pool.lm()
        conditioned = mean_nll(pool, lm, valid, what="IFD: loss of the answer given the question")
        direct = mean_nll(pool, lm, valid, answer_only=True, what="IFD: loss of the answer alone")
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = conditioned / direct
        ratio[~np.isfinite(ratio)] = np.nan  # a zero direct loss gives no ratio
        return ratio

    def _extra_drops(self, eligible: np.ndarray) -> list[pl.DataFrame]:
        above = eligible[self.scores_[eligible] > self.max_ifd]
        return [dropped_rows(self.ids_.gather(above), ABOVE,
                             [f"IFD {v:.4f} > {self.max_ifd}" for v in self.scores_[above]])]

    def _filter(self, eligible: np.ndarray) -> np.ndarray:
        return eligible[self.scores_[eligible] <= self.max_ifd]
