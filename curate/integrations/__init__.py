"""Adapters that let other trainers pick prompts with curate's curricula and feed curate's ledger.

- `curate.integrations.picker`: `CurriculumPicker`, the framework-free core: the prompts of a
  dataset version picked from the prompt ledger with the `difficulty` strategy's rules, exactly
  as `curate select --strategy difficulty` picks them; `LedgerRecorder` writes rewards back;
- `curate.integrations.trl_sampler`: a `torch.utils.data.Sampler` for TRL's `GRPOTrainer`
  (override `_get_train_sampler`), and a reward wrapper that records every rollout;
- `curate.integrations.verl_sampler`: a curriculum sampler with verl's `AbstractCurriculumSampler`
  interface (`data.sampler.class_path` / `class_name` in verl's config).

docs/integrations.md shows each in use.
"""
