"""RL prompt selection: strategies that read the prompt ledger (pass rates, reward variance).

difficulty (band, MoPPS Thompson sampling, GRESO, AdaRFT; the rules in `difficulty_rules`),
rollout-variance (DAPO's filter), curriculum stages, and the pass-rate simulator `sim`.
The per-group filters GRPO applies inside a step live in `curate.train.group_filters`.
"""
