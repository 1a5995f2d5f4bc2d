"""A curriculum run step by step: what `curate loop` and the simulator both execute.

MoPPS, GRESO and AdaRFT act at every GRPO step: pick the step's prompts from the current
statistics, roll them out, then update their state from how the step went (GRESO's
p_easy/p_hard, AdaRFT's target difficulty; MoPPS's posteriors live in the ledger).
`StepCurriculum.pick` and `.observe` are those two halves; the loop calls them through
`train_grpo`'s curriculum hook (curate.loop) and the simulator calls them directly
(curate.selectors.rl.sim), so both run the same code. `every="round"` keeps curate's older
behaviour (one pick per loop round, the state updated at the round's end) for comparison.

`observe` takes the step's [groups, G] success matrix (1 where the outcome reward passed
the success threshold, NaN where unscored), over every group sampled in the step, refills
included: GRESO's shares are of sampled groups (the reference counts them before its
filter), AdaRFT's R is their mean success.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from curate.selectors.rl import difficulty_rules as rules
from curate.selectors.rl.difficulty import CurriculumParams, LedgerView, pick_prompts

PICK_EVERY = ("step", "round")


@dataclass(frozen=True)
class CurriculumState:
    """What moves during a run (saved with the loop's state)."""

    p_easy: float = CurriculumParams.p_easy
    p_hard: float = CurriculumParams.p_hard
    adarft_target: float = CurriculumParams.adarft_target

    @classmethod
    def start(cls, params: CurriculumParams) -> CurriculumState:
        return cls(params.p_easy, params.p_hard, params.adarft_target)


def group_shares(successes: np.ndarray) -> tuple[float, float, float]:
    """(share of groups all right, share all wrong, mean success) of a [groups, G] success matrix."""
    successes = np.asarray(successes, dtype=np.float64).reshape(len(successes), -1)
    scored = (~np.isnan(successes)).sum(axis=1)
    wins = np.nansum(successes, axis=1)
    valid = scored > 0
    if not valid.any():
        return 0.0, 0.0, float("nan")
    easy = float(np.mean(valid & (wins == scored)))
    hard = float(np.mean(valid & (wins == 0)))
    return easy, hard, float(np.nanmean(successes))


def next_state(mode: str, state: CurriculumState, successes: np.ndarray, params: CurriculumParams) -> CurriculumState:
    """The curriculum's state after a step (or round) whose sampled groups had these successes."""
    easy, hard, mean = group_shares(successes)
    if mode == "greso" and len(successes):
        new = rules.greso_update(rules.GresoState(state.p_easy, state.p_hard), easy, hard,
                                 params.greso_target_easy, params.greso_target_hard)
        return dataclasses.replace(state, p_easy=new.p_easy, p_hard=new.p_hard)
    if mode == "adarft" and not np.isnan(mean):
        return dataclasses.replace(state, adarft_target=rules.adarft_update(
            state.adarft_target, mean, params.adarft_eta, params.adarft_alpha, params.adarft_beta))
    return state


def choose(curriculum: StepCurriculum, view: LedgerView, count: int, rng: np.random.Generator,
           exclude: np.ndarray | None = None) -> np.ndarray:
    """`count` positions by the curriculum's rule, none of `exclude` (a step's earlier picks, for
    dynamic sampling's refills); when the rule leaves too few (GRESO's skips, prompts without a
    difficulty) the rest is drawn at random."""
    exclude = np.asarray([] if exclude is None else exclude, dtype=np.int64)
    order = curriculum.pick(view, count + len(exclude), rng)
    order = order[~np.isin(order, exclude)][:count]
    if len(order) < count:
        rest = rng.permutation(len(view.ids))
        rest = rest[~np.isin(rest, np.concatenate([exclude, order]))]
        order = np.concatenate([order, rest[: count - len(order)]])
    return order.astype(np.int64)


def round_pool_size(batch: int, dynamic: bool, max_refills: int) -> int:
    """Prompts picked once per round (`every="round"`): a batch, times 1 + max_refills under dynamic
    sampling so refills have material."""
    return batch * ((1 + max_refills) if dynamic else 1)


class StepCurriculum:
    """Picks prompts (positions into the view) and updates the state, per step or per round."""

    def __init__(self, mode: str, params: CurriculumParams, state: CurriculumState | None = None,
                 every: str = "step"):
        if every not in PICK_EVERY:
            raise ValueError(f"every must be one of {PICK_EVERY}, not {every!r}")
        self.mode, self.params, self.every = mode, params, every
        self.state = state or CurriculumState.start(params)
        self._pending: list[np.ndarray] = []

    def pick(self, view: LedgerView, count: int, rng: np.random.Generator) -> np.ndarray:
        """`count` positions (fewer when the rule leaves fewer; the caller tops up)."""
        params = dataclasses.replace(self.params, p_easy=self.state.p_easy, p_hard=self.state.p_hard,
                                     adarft_target=self.state.adarft_target)
        order, _ = pick_prompts(self.mode, view, min(count, len(view.ids)), params, rng)
        return order

    def observe(self, successes: np.ndarray, end_of_round: bool = True) -> None:
        """Hear a step's success matrix; per round, the state moves once, on all the round's groups."""
        successes = np.asarray(successes, dtype=np.float64)
        if self.every == "step":
            self.state = next_state(self.mode, self.state, successes, self.params)
            return
        self._pending.append(successes.reshape(len(successes), -1))
        if end_of_round:
            widths = {m.shape[1] for m in self._pending if m.size}
            pending = [m for m in self._pending if m.size]
            if pending and len(widths) == 1:
                self.state = next_state(self.mode, self.state, np.concatenate(pending), self.params)
            self._pending = []
