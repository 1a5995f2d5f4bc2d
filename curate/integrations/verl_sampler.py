"""A verl curriculum sampler that picks prompts with curate's difficulty curriculum.

verl (`verl.experimental.dataset.sampler`) builds the training sampler named by
`data.sampler.class_path` / `data.sampler.class_name` as `cls(data_source=dataset,
data_config=config.data)`, and when it is an `AbstractCurriculumSampler` calls
`sampler.update(batch=batch)` after every step with the step's `DataProto`. This sampler:

- reads its options from `data_config["curate"]` (`workspace`, `model_key`, `run`, and the
  `CurriculumPicker` options: `mode`, `budget`, `seed`, `lo`, `hi`, `target`, ...);
- maps dataset index i to curate's prompt id through `extra_info.id`, which
  `curate export --format verl` writes;
- in `update`, sums each sequence's `token_level_scores` into its reward and records it in the
  prompt ledger (`LedgerRecorder`), so the next epoch's pick sees what the policy can do now.

verl itself is not installed with curate: when it cannot be imported, a stand-in base class
with the same two methods is used, so the adapter can be tested on its own.

    data:
      sampler:
        class_path: pkg://curate.integrations.verl_sampler
        class_name: CurateCurriculumSampler
      curate: {workspace: ./curate-ws, mode: thompson, budget: 512, seed: 0}
"""

from __future__ import annotations

import abc
from collections.abc import Iterator, Sized
from typing import Any

from torch.utils.data import Sampler

from curate.catalog.workspace import Workspace
from curate.errors import BadUsage
from curate.integrations.picker import CurriculumPicker, LedgerRecorder

try:  # pragma: no cover - verl is not a dependency
    from verl.experimental.dataset.sampler import AbstractCurriculumSampler
except Exception:  # ImportError, or verl's own imports failing
    class AbstractCurriculumSampler(Sampler[int], abc.ABC):  # type: ignore[no-redef]
        """Stand-in for verl's interface: `__init__(data_source, data_config)` and `update(batch)`."""

        def __init__(self, data_source: Sized, data_config: Any):
            pass

        @abc.abstractmethod
        def update(self, batch: Any) -> None:
            """Called by verl's trainer after each batch with the batch's outcomes."""


def _extra_infos(data_source: Sized) -> list[dict[str, Any]]:
    """The `extra_info` of every row, without tokenizing them (verl's RLHFDataset keeps a `dataframe`)."""
    frame = getattr(data_source, "dataframe", None)
    if frame is not None and "extra_info" in getattr(frame, "column_names", []):
        return list(frame["extra_info"])
    return [data_source[i]["extra_info"] for i in range(len(data_source))]


def _get(mapping: Any, key: str, default: Any = None) -> Any:
    try:
        return mapping.get(key, default)
    except AttributeError:
        return default


class CurateCurriculumSampler(AbstractCurriculumSampler):
    def __init__(self, data_source: Sized, data_config: Any):
        super().__init__(data_source, data_config)
        options = dict(_get(data_config, "curate", None) or {})
        ids = []
        for index, info in enumerate(_extra_infos(data_source)):
            prompt_id = _get(info, "id")
            if prompt_id is None:
                raise BadUsage(f"row {index} of the training data has no extra_info.id",
                               hint="export the data with `curate export REF --to x.parquet --format verl`")
            ids.append(str(prompt_id))
        self.ws = Workspace.open(options.pop("workspace", None))
        run = str(options.pop("run", "verl"))
        threshold = float(options.pop("success_threshold", 0.5))
        self.picker = CurriculumPicker.from_options(self.ws, ids, options)
        self.recorder = LedgerRecorder(self.ws, self.picker.model_key, run, threshold)
        self.epoch = 0
        self.steps = 0

    def __iter__(self) -> Iterator[int]:
        picks = self.picker.pick(self.epoch)
        self.epoch += 1
        return iter(picks)

    def __len__(self) -> int:
        return self.picker.budget if self.picker.budget is not None else len(self.picker.pick(self.epoch))

    def update(self, batch: Any) -> None:
        """Record the step's rewards: one per sequence, the sum of its token-level scores."""
        infos = batch.non_tensor_batch["extra_info"]
        scores = batch.batch["token_level_scores"].sum(dim=-1).tolist()
        self.steps += 1
        self.recorder.record([str(_get(info, "id")) for info in infos], scores, step=self.steps)
