"""curate's curricula inside TRL's `GRPOTrainer`.

GRPO needs each prompt `num_generations` times in a row, and TRL's `RepeatSampler` lays the
indices out so: chunks of `batch_size` distinct prompts, each chunk repeated `repeat_count`
times (generations reused over `num_iterations * steps_per_generation` steps), each index
repeated `mini_repeat_count` (= `num_generations`) times. `CurriculumRepeatSampler` keeps that
layout and replaces the random permutation with the prompts curate's difficulty curriculum picks
(`CurriculumPicker`), re-read from the ledger at every epoch.

    from trl import GRPOTrainer
    from curate.integrations.trl_sampler import CurriculumRepeatSampler, LedgerReward

    class CurriculumGRPOTrainer(GRPOTrainer):
        def _get_train_sampler(self, dataset=None):
            return CurriculumRepeatSampler.for_trainer(self, picker)

    reward = LedgerReward(my_reward, recorder)  # every rollout's reward goes to the ledger

The dataset must carry curate's `id` column (`curate export --columns prompt` keeps it); TRL
passes it to reward functions, which is how `LedgerReward` knows the prompt of each completion.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from torch.utils.data import Sampler

from curate.integrations.picker import CurriculumPicker, LedgerRecorder


class CurriculumRepeatSampler(Sampler[int]):
    """TRL's `RepeatSampler` layout over the prompts a `CurriculumPicker` picks each epoch."""

    def __init__(self, picker: CurriculumPicker, mini_repeat_count: int, batch_size: int = 1,
                 repeat_count: int = 1):
        self.picker = picker
        self.mini_repeat_count = mini_repeat_count
        self.batch_size = batch_size
        self.repeat_count = repeat_count
        self.epoch = 0

    @classmethod
    def for_trainer(cls, trainer: Any, picker: CurriculumPicker) -> CurriculumRepeatSampler:
        """The sampler with the repeat counts `GRPOTrainer._get_train_sampler` gives its own."""
        return cls(picker, mini_repeat_count=trainer.num_generations,
                   batch_size=trainer.args.generation_batch_size // trainer.num_generations,
                   repeat_count=trainer.num_iterations * trainer.args.steps_per_generation)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self) -> Iterator[int]:
        picks = self.picker.pick(self.epoch)
        self.epoch += 1
        chunks = [picks[i:i + self.batch_size] for i in range(0, len(picks), self.batch_size)]
        for chunk in chunks:
            if len(chunk) < self.batch_size:
                continue  # as RepeatSampler: an incomplete last chunk is dropped
            for _ in range(self.repeat_count):
                for index in chunk:
                    for _ in range(self.mini_repeat_count):
                        yield index

    def __len__(self) -> int:
        per_epoch = self.picker.budget if self.picker.budget is not None else len(self.picker.pick(self.epoch))
        return (per_epoch // self.batch_size) * self.batch_size * self.mini_repeat_count * self.repeat_count


class LedgerReward:
    """A TRL reward function that also records every reward in curate's prompt ledger.

    TRL calls reward functions as `f(prompts=..., completions=..., **columns)`, the dataset's
    columns included; the `id` column names each completion's prompt.
    """

    def __init__(self, reward: Callable[..., list[float | None]], recorder: LedgerRecorder):
        self.reward = reward
        self.recorder = recorder
        self.calls = 0
        self.__name__ = getattr(reward, "__name__", "reward")

    def __call__(self, prompts: list, completions: list, **columns: Any) -> list[float | None]:
        values = self.reward(prompts=prompts, completions=completions, **columns)
        if "id" not in columns:
            raise ValueError("LedgerReward needs the dataset's `id` column (export with curate to keep it)")
        state = columns.get("trainer_state")
        step = int(getattr(state, "global_step", self.calls)) if state is not None else self.calls
        self.calls += 1
        texts = [c if isinstance(c, str) else (c[-1]["content"] if c else "") for c in completions]
        self.recorder.record(columns["id"], values, step=step, completions=texts)
        return values
