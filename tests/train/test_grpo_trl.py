"""curate's GRPO equals TRL's GRPOTrainer: same model, prompts, completions and rewards -> same advantages,
loss and gradients (within 1e-5), for every loss type the two share.

TRL is driven through its own code paths: `_generate_and_score_completions` (with generation replaced by
fixed completions) computes rewards, advantages and truncation masks, and `compute_loss` the loss over two
accumulation micro-batches (one prompt group each). curate gets the same completions as Episodes and runs
`score_groups`, `group_advantages` and `backward_batch`.
"""

from __future__ import annotations

import math

import pytest
import torch

trl = pytest.importorskip("trl")

PROMPTS = ["Ava has 5 apples. How many now?", "Ben has 12 cookies and eats 3. How many left?"]
ANSWERS = ["5", "9"]
G = 4
MAX_LEN = 12
# Completions as text; "|" marks an EOS (finished), no "|" means truncated at MAX_LEN tokens.
COMPLETIONS = [
    ["5 apples|", "I think 7|", "5|", "12345678901X"],  # the last one is truncated
    ["9|", "9|", "?|", "3 + 9 = 12|"],  # "?" gets a None reward
]


def reward_fn(prompts, completions, answer, **kwargs):
    out = []
    for completion, ref in zip(completions, answer):
        if "?" in completion:
            out.append(None)
        else:
            out.append(float(completion.strip().startswith(ref)) + 0.1 * len(completion))
    return out


def _ids(text: str, eos: int) -> list[int]:
    from curate.lm.byte_tokenizer import byte_ids

    body = byte_ids(text.replace("|", ""), bos=False)
    return body + [eos] if text.endswith("|") else body[:MAX_LEN]


@pytest.fixture(scope="module")
def setup(tiny_model_dir, tmp_path_factory):
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch.manual_seed(0)
    tokenizer = AutoTokenizer.from_pretrained(str(tiny_model_dir))
    model_trl = AutoModelForCausalLM.from_pretrained(str(tiny_model_dir), dtype=torch.float32)
    with torch.no_grad():  # move away from the near-uniform init so gradients are not tiny
        for p in model_trl.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    model_curate = AutoModelForCausalLM.from_pretrained(str(tiny_model_dir), dtype=torch.float32)
    model_curate.load_state_dict(model_trl.state_dict())
    dataset = Dataset.from_list([{"prompt": p + "\n", "answer": a} for p, a in zip(PROMPTS, ANSWERS)])
    args = trl.GRPOConfig(output_dir=str(tmp_path_factory.mktemp("trl")), per_device_train_batch_size=G,
                          gradient_accumulation_steps=2, num_generations=G, max_completion_length=MAX_LEN,
                          temperature=0.7, beta=0.0, report_to=[], use_cpu=True, bf16=False, save_strategy="no",
                          mask_truncated_completions=True, disable_tqdm=True, seed=0)
    trainer = trl.GRPOTrainer(model=model_trl, reward_funcs=reward_fn, args=args, train_dataset=dataset,
                              processing_class=tokenizer)
    completions = [[_ids(c, tokenizer.eos_token_id) for c in group] for group in COMPLETIONS]
    flat = [c for group in completions for c in group]
    trainer._generate_single_turn = lambda prompt_ids, *a, **k: (flat, None)
    yield trainer, model_trl, model_curate, tokenizer, completions
    torch.set_num_threads(threads)


_BATCHES: dict = {}


def _trl_batch(trainer, scale_rewards):
    """TRL's training batch for the fixed completions (computed once per reward scaling)."""
    if scale_rewards not in _BATCHES:
        trainer.scale_rewards = scale_rewards
        trainer.beta = 0.0  # no reference forward here: reference log-probs are injected below for both sides
        trainer.model.train()
        inputs = [{"prompt": p + "\n", "answer": a} for p, a in zip(PROMPTS, ANSWERS) for _ in range(G)]
        _BATCHES[scale_rewards] = trainer._generate_and_score_completions(inputs)
    return dict(_BATCHES[scale_rewards])


def _curate_groups(tokenizer, completions, config):
    from curate.train.data import prompt_ids
    from curate.train.rewards import CheckedReward
    from curate.train.rollouts import Episode, score_groups

    groups = []
    for p, (prompt, answer) in enumerate(zip(PROMPTS, ANSWERS)):
        row = {"id": str(p), "prompt": prompt, "answer": answer}
        ids = prompt_ids(prompt, tokenizer, "plain")
        groups.append([Episode(row, p, j, ids, c, tokenizer.decode(c, skip_special_tokens=True),
                               c[-1] != tokenizer.eos_token_id) for j, c in enumerate(completions[p])])
    score_groups(groups, [CheckedReward(reward_fn)], [1.0])
    return groups


@pytest.mark.parametrize("scale_rewards", ["group", "batch", "none"])
def test_advantages_and_masks_equal_trl(setup, scale_rewards):
    from curate.train.losses import group_advantages

    trainer, _, _, tokenizer, completions = setup
    batch = _trl_batch(trainer, scale_rewards)
    groups = _curate_groups(tokenizer, completions, None)
    rewards = torch.tensor([e.reward for g in groups for e in g])
    assert math.isnan(rewards[6])  # the "?" completion is unscored
    advantages, _ = group_advantages(rewards, G, scale_rewards)
    torch.testing.assert_close(advantages, batch["advantages"].float(), atol=1e-6, rtol=0)
    # prompts tokenised identically; truncated completion masked out, the rest ragged
    for p, group in enumerate(groups):
        row = batch["prompt_ids"][p * G][batch["prompt_mask"][p * G].bool()].tolist()
        assert row == group[0].prompt_ids
    lengths = batch["completion_mask"].sum(1).tolist()
    assert lengths == [0 if e.truncated else len(e) for g in groups for e in g]
    assert lengths[3] == 0 and len(set(lengths)) > 3


def _grads(model):
    return {n: p.grad.detach().clone() for n, p in model.named_parameters() if p.grad is not None}


@pytest.mark.parametrize("loss_type", ["grpo", "bnpo", "dr_grpo", "dapo"])
@pytest.mark.parametrize("beta,off_policy,bias_correction",
                         [(0.0, False, True), (0.1, True, True), (0.1, False, False)])
def test_loss_and_gradients_equal_trl(setup, loss_type, beta, off_policy, bias_correction):
    from trl.trainer.utils import split_tensor_dict

    from curate.train.grpo import GRPOConfig
    from curate.train.grpo_batch import backward_batch
    from curate.train.losses import group_advantages

    trainer, model_trl, model_curate, tokenizer, completions = setup
    batch = _trl_batch(trainer, "group")
    mask = batch["completion_mask"].float()
    generator = torch.Generator().manual_seed(1)
    # current log-probs, so the injected old/ref log-probs sit near them (ratios of about 0.7..1.4)
    with torch.no_grad():
        current, _, _ = trainer._get_per_token_logps_and_entropies(
            model_trl, torch.cat([batch["prompt_ids"], batch["completion_ids"]], 1),
            torch.cat([batch["prompt_mask"], torch.ones_like(batch["completion_mask"])], 1),
            batch["completion_ids"].shape[1])
    if off_policy:
        batch["old_per_token_logps"] = (current + 0.3 * torch.randn(current.shape, generator=generator)) * mask
    else:
        batch.pop("old_per_token_logps", None)
    if beta:
        batch["ref_per_token_logps"] = (current + 0.5 * torch.randn(current.shape, generator=generator)) * mask

    config = GRPOConfig(loss_type=loss_type, beta=beta, epsilon=0.2, epsilon_high=0.28, temperature=0.7,
                        max_completion_length=MAX_LEN, batch_tokens=10_000, mask_truncated_completions=True,
                        kl_bias_correction=bias_correction)
    trainer.loss_type, trainer.beta = loss_type, beta
    trainer.args.use_bias_correction_kl = bias_correction
    trainer.epsilon_low, trainer.epsilon_high = 0.2, 0.28
    trainer.current_gradient_accumulation_steps = 2
    model_trl.zero_grad()
    trl_loss = 0.0
    for half in split_tensor_dict(batch, 2):  # two accumulation micro-batches: one prompt group each
        loss = trainer.compute_loss(model_trl, half)
        loss.backward()
        trl_loss += loss.item()

    groups = _curate_groups(tokenizer, completions, config)
    advantages, _ = group_advantages(torch.tensor([e.reward for g in groups for e in g]), G, "group")
    for i, episode in enumerate(e for g in groups for e in g):
        episode.advantage = float(advantages[i])
        n = len(episode)
        if off_policy:
            episode.old_logps = batch["old_per_token_logps"][i, :n].clone()
        if beta:
            episode.ref_logps = batch["ref_per_token_logps"][i, :n].clone()
    model_curate.train()
    model_curate.zero_grad()
    sums = backward_batch(model_curate, groups, config, tokenizer.pad_token_id, torch.device("cpu"))
    assert sums["chunks_total"] == 2
    assert abs(sums["loss"] - trl_loss) < 1e-5, (sums["loss"], trl_loss)
    ours, theirs = _grads(model_curate), _grads(model_trl)
    assert ours.keys() == theirs.keys()
    worst = max(float((ours[n] - theirs[n]).abs().max()) for n in ours)
    scale = max(float(theirs[n].abs().max()) for n in theirs)
    print(f"\n{loss_type} beta={beta} off_policy={off_policy} kl_bias_correction={bias_correction}: "
          f"|loss diff| {abs(sums['loss'] - trl_loss):.2e}, max |grad diff| {worst:.2e} (max |grad| {scale:.2e})")
    assert scale > 1e-4  # a real gradient, not zeros on both sides
    assert worst < 1e-5, f"max |grad diff| = {worst:.3g} (max |grad| {scale:.3g})"
