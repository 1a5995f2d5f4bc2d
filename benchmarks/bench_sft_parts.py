"""What each SFT speed change buys, part by part, in CPU seconds of this process.

On real GSM8K micro-batches of a real model (stories260K, or SmolLM2-135M-Instruct dequantised
from its GGUF as in bench_sft.py), each part is timed in its previous and its current form,
alternating, and the best of `--repeats` is kept:

- `lm_head_loss`: the LM head and the SFT loss over one micro-batch's response positions,
  forward and backward: log-softmax + gather under autograd with each logit slice recomputed
  in the backward (`curate.train.logprobs.head_logprobs`, the previous path) against the fused
  head (`curate.train.head_loss.sft_head_loss`).
- `adamw`: one optimizer step over all the model's weights: torch's default AdamW on CPU (a
  loop over tensors) against the fused kernel.
- `batching`: forward + backward of the same examples (the SFT step without the optimizer) as
  length-sorted right-padded batches against packed rows, both under `--batch-tokens`.

One JSON line per part: previous and current seconds, and their ratio.

    python benchmarks/bench_sft_parts.py --model smollm2
    python benchmarks/bench_sft_parts.py --model stories260K --batch-tokens 4096
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

import torch  # noqa: E402

from bench_sft import DEFAULTS, gsm8k_rows, model_folder, quiet_setup  # noqa: E402


def best_of(repeats: int, runs: dict) -> dict[str, float]:
    """Minimum CPU seconds of each callable over `repeats` alternating rounds."""
    best = {name: float("inf") for name in runs}
    for _ in range(repeats):
        for name, run in runs.items():
            start = time.process_time()
            run()
            best[name] = min(best[name], time.process_time() - start)
    return best


def line(part: str, setting: dict, previous: float, current: float, **extra) -> None:
    print(json.dumps({**setting, "part": part, "previous_cpu_s": round(previous, 4), "current_cpu_s": round(current, 4),
                      "speedup": round(previous / current, 2), **extra}), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="smollm2", help="stories260K or smollm2")
    parser.add_argument("--batch-tokens", type=int, default=None)
    parser.add_argument("--batches", type=int, default=2, help="packed micro-batches of examples to time")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    quiet_setup(args.threads)

    from curate.lm.loading import load
    from curate.train.data import encode_sft, micro_batches, packed_micro_batches
    from curate.train.head_loss import sft_head_loss
    from curate.train.logprobs import head_logprobs
    from curate.train.losses import sft_token_loss
    from curate.train.packing import packed_attention, packed_response_states
    from curate.train.sft import _step_loss

    budget = args.batch_tokens or DEFAULTS[args.model]["batch_tokens"]
    with tempfile.TemporaryDirectory(prefix="bench-sft-parts-") as scratch:
        lm = load(str(model_folder(args.model, Path(scratch))), dtype="float32", device="cpu")
    model, device = lm.model, lm.device
    model.train()
    examples, _ = encode_sft(gsm8k_rows(DEFAULTS[args.model]["rows"]), lm.tokenizer, "auto", lm.max_length)
    bins = packed_micro_batches(examples, budget)
    bins = bins[len(bins) // 2: len(bins) // 2 + args.batches]  # typical bins (the first hold the longest rows)
    chosen = sorted(i for b in bins for i in b)
    subset = [examples[i] for i in chosen]
    setting = {"model": args.model, "threads": args.threads, "batch_tokens": budget,
               "examples": len(subset), "tokens": sum(len(e) for e in subset)}

    # LM head + loss on the response positions of the first packed micro-batch.
    first = [examples[i] for i in bins[0]]
    with torch.no_grad(), packed_attention(model):
        states, targets = packed_response_states(model, [(e.prompt_ids, e.response_ids) for e in first], device)
    weights = torch.tensor([w for e in first for w in e.weights])
    n = int(weights.sum())

    def head_previous():
        hidden = states.detach().requires_grad_(True)
        logps, _ = head_logprobs(model, hidden, targets)
        ((sft_token_loss(logps, "nll") * weights).sum() / n).backward()
        model.zero_grad(set_to_none=True)

    def head_current():
        hidden = states.detach().requires_grad_(True)
        sft_head_loss(model, hidden, targets, weights, "nll", n)[0].backward()
        model.zero_grad(set_to_none=True)

    best = best_of(args.repeats, {"previous": head_previous, "current": head_current})
    line("lm_head_loss", setting, best["previous"], best["current"], response_tokens=len(targets),
         vocab=model.get_output_embeddings().weight.shape[0])

    # AdamW over every weight, with fixed random gradients.
    params = [p for p in model.parameters() if p.requires_grad]
    for p in params:
        p.grad = torch.randn_like(p) * 1e-3
    loop = torch.optim.AdamW(params, lr=1e-6, fused=False, foreach=False)
    fused = torch.optim.AdamW(params, lr=1e-6, fused=True)
    loop.step(), fused.step()  # state allocation is not timed
    best = best_of(args.repeats, {"previous": loop.step, "current": fused.step})
    line("adamw", setting, best["previous"], best["current"], parameters=sum(p.numel() for p in params))
    model.zero_grad(set_to_none=True)

    # Forward + backward of the same examples: padded batches against packed rows.
    padded = [[subset[i] for i in b] for b in micro_batches(subset, budget)]
    packed = [[subset[i] for i in b] for b in packed_micro_batches(subset, budget)]
    kept = int(sum(sum(e.weights) for e in subset))

    def run(batches, is_packed):
        def go():
            for batch in batches:
                loss, _ = _step_loss(model, batch, "nll", kept, 0, device, is_packed)
                loss.backward()
            model.zero_grad(set_to_none=True)
        return go

    with packed_attention(model):
        best = best_of(args.repeats, {"previous": run(padded, False), "current": run(packed, True)})
    padded_tokens = sum(len(b) * max(len(e) for e in b) for b in padded)
    line("batching", setting, best["previous"], best["current"], padded_micro_batches=len(padded),
         packed_micro_batches=len(packed), padding=round(1 - setting["tokens"] / padded_tokens, 4))


if __name__ == "__main__":
    main()
