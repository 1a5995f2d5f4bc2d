"""Per-token log-probs over GSM8K: curate's length-bucketed batches vs a one-example-at-a-time loop.

Both sides run in this process on the same examples with the same float32 model:

- baseline: what a user would write first: per example, tokenize prompt and response,
  `model(ids).logits.log_softmax(-1)`, gather at the response positions, under `torch.no_grad`;
- curate: `encode_pairs` + `token_logprobs` (sorted by length, packed to a token budget,
  LM head only on response positions).

Prints one JSON line per result: throughput (tokens/s for both and the ratio curate/baseline),
agreement of the two sets of log-probs (max abs diff), peak RSS, and two bounds on the ratio
any batching can reach here: the attention floor (PyTorch's fused causal attention alone on
curate's batch shapes, every layer, which no batching can remove) and the GEMM bound (the
FLOPs of the model's linear layers that curate must still run, at the rate of one large
float32 GEMM of the model's own shapes measured in this process: when the one-at-a-time loop
already runs its matrix products near that rate, batching has little left to win).

    python benchmarks/bench_scoring.py --limit 2000     # stories260K (8-dim heads: attention-bound, see the floor)
    python benchmarks/bench_scoring.py --limit 64 \
        --model ../shared/models/smollm2-135m-instruct/SmolLM2-135M-Instruct.Q4_1.gguf   # a real 135M Llama

Targets (CPU, float32): >= 4x on SmolLM2. stories260K has none: its attention floor bounds any
batching at about 2.7x (docs/decisions.md, "Model layer").
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATA = REPO.parent / "shared" / "data" / "gsm8k" / "train.jsonl"
DEFAULT_MODEL = REPO.parent / "shared" / "models" / "stories260K"


def emit(**fields) -> None:
    print(json.dumps({"bench": "scoring", **fields}), flush=True)


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def read_rows(path: Path, limit: int) -> list[dict]:
    rows = []
    with open(path) as fh:
        for line in fh:
            if line.strip():
                rows.append(json.loads(line))
            if len(rows) >= limit:
                break
    return rows


def baseline(model, tokenizer, prompts: list[str], responses: list[str]):
    """One example at a time: tokenize, full forward, log-softmax, gather."""
    import torch

    out, tokens = [], 0
    device = model.device
    with torch.no_grad():
        for prompt, response in zip(prompts, responses):
            prompt_ids = tokenizer(prompt + "\n")["input_ids"]
            response_ids = tokenizer(response, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
            ids = torch.tensor([prompt_ids + response_ids], device=device)
            logprobs = model(ids).logits.float().log_softmax(-1)[0]
            start = len(prompt_ids) - 1
            picked = logprobs[start:start + len(response_ids)].gather(-1, torch.tensor(response_ids, device=device)[:, None])
            out.append(picked.squeeze(-1).cpu().numpy())
            tokens += ids.shape[1]
    return out, tokens


def curate_scoring(lm, prompts: list[str], responses: list[str], token_budget: int):
    from curate.lm.scoring import token_logprobs
    from curate.lm.templates import encode_pairs

    items = encode_pairs(prompts, responses, lm.tokenizer, template="plain")
    out = list(token_logprobs(lm, items, token_budget=token_budget))
    return out, [len(item) for item in items]


def attention_floor(lm, lengths: list[int], token_budget: int, repeat: int) -> float:
    """Seconds of causal SDPA alone over curate's batches (random q, k, v of the model's shapes)."""
    import torch
    import torch.nn.functional as F

    from curate.lm.batching import pack

    config = lm.model.config
    heads = config.num_attention_heads
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // heads
    shapes = [(len(batch), max(lengths[i] for i in batch)) for batch in pack(lengths, token_budget)]
    best = float("inf")
    with torch.inference_mode():
        for _ in range(repeat):
            start = time.perf_counter()
            for size, width in shapes:
                q, k, v = (torch.randn(size, heads, width, head_dim, device=lm.device) for _ in range(3))
                for _ in range(config.num_hidden_layers):
                    F.scaled_dot_product_attention(q, k, v, is_causal=True)
            if lm.device.type == "cuda":
                torch.cuda.synchronize()
            best = min(best, time.perf_counter() - start)
    return best


def linear_flops(model) -> tuple[int, int]:
    """FLOPs per token of the decoder's linear layers and of the LM head: 2 x their weights."""
    import torch

    head = model.get_output_embeddings()
    body = sum(2 * m.weight.numel() for m in model.modules() if isinstance(m, torch.nn.Linear) and m is not head)
    return body, 2 * head.weight.numel()


def gemm_rate(lm, rows: int, repeat: int) -> float:
    """FLOP/s of float32 products [rows, hidden] x [hidden, intermediate]: the model's largest linear shape."""
    import torch

    config = lm.model.config
    k = config.hidden_size
    n = getattr(config, "intermediate_size", None) or 4 * k
    a, b = torch.randn(rows, k, device=lm.device), torch.randn(k, n, device=lm.device)
    best = float("inf")
    with torch.inference_mode():
        a @ b
        for _ in range(max(3, repeat)):
            start = time.perf_counter()
            for _ in range(5):
                a @ b
            if lm.device.type == "cuda":
                torch.cuda.synchronize()
            best = min(best, (time.perf_counter() - start) / 5)
    return 2 * rows * k * n / best


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="GSM8K-style JSONL (question, answer)")
    parser.add_argument("--model", type=Path, default=DEFAULT_MODEL, help="a local model folder or .gguf file")
    parser.add_argument("--limit", type=int, default=2000, help="rows to score")
    parser.add_argument("--token-budget", type=int, default=None,
                        help="curate's tokens per batch (default: curate's default for the device)")
    parser.add_argument("--repeat", type=int, default=2, help="runs per side; the best time is reported")
    parser.add_argument("--device", default="cpu", help="cpu, cuda or auto (the claim is measured on cpu)")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    args = parser.parse_args(argv)

    missing = [str(p) for p in (args.data, args.model) if not p.exists()]
    if missing:
        print(f"bench_scoring: skipped, not found: {', '.join(missing)} (the ../shared folder is absent)",
              file=sys.stderr)
        return 0

    import numpy as np
    import torch

    from curate.lm.loading import load
    from curate.lm.scoring import default_token_budget

    if args.threads:
        torch.set_num_threads(args.threads)
    lm = load(str(args.model), dtype="float32", device=args.device)
    args.token_budget = args.token_budget or default_token_budget(lm)
    rows = read_rows(args.data, args.limit)
    prompts = [r["question"] for r in rows]
    responses = [r["answer"] for r in rows]
    setup = dict(rows=len(rows), model=args.model.name, device=str(lm.device), dtype="float32",
                 threads=torch.get_num_threads(), token_budget=args.token_budget)

    # Warm up both paths on a few rows (first-call allocations, kernel selection).
    curate_scoring(lm, prompts[:8], responses[:8], args.token_budget)
    baseline(lm.model, lm.tokenizer, prompts[:8], responses[:8])

    # Alternate the two sides and keep each one's best time: the machine may be shared and noisy.
    ours_s = theirs_s = float("inf")
    for _ in range(args.repeat):
        start = time.perf_counter()
        ours, lengths = curate_scoring(lm, prompts, responses, args.token_budget)
        ours_s = min(ours_s, time.perf_counter() - start)
        rss_after_curate = peak_rss_mb()

        start = time.perf_counter()
        theirs, theirs_tokens = baseline(lm.model, lm.tokenizer, prompts, responses)
        theirs_s = min(theirs_s, time.perf_counter() - start)
        rss_after_baseline = peak_rss_mb()
    setup["timing"] = f"best of {args.repeat} alternating runs per side"

    ours_tokens = sum(lengths)
    assert ours_tokens == theirs_tokens, "the two sides tokenized differently"
    shapes_match = all(a.shape == b.shape for a, b in zip(ours, theirs))
    max_diff = max(float(np.abs(a - b).max()) for a, b in zip(ours, theirs) if a.size) if shapes_match else None

    ours_rate, theirs_rate = ours_tokens / ours_s, theirs_tokens / theirs_s
    emit(result="token_logprobs_throughput", unit="tokens/s", baseline=round(theirs_rate, 1),
         curate=round(ours_rate, 1), ratio=round(ours_rate / theirs_rate, 2), tokens=ours_tokens,
         baseline_s=round(theirs_s, 3), curate_s=round(ours_s, 3), **setup)
    emit(result="logprob_agreement", max_abs_diff=max_diff, shapes_match=shapes_match,
         response_tokens=int(sum(a.size for a in ours)), ok=bool(shapes_match and max_diff <= 1e-4), **setup)
    floor_s = attention_floor(lm, lengths, args.token_budget, args.repeat)
    emit(result="attention_floor", unit="s", attention_s=round(floor_s, 3), baseline_s=round(theirs_s, 3),
         curate_s=round(ours_s, 3), attention_share_of_curate=round(floor_s / ours_s, 2),
         ratio_bound=round(theirs_s / floor_s, 2),
         note="causal SDPA alone on curate's batch shapes (includes random q/k/v creation); "
              "no batching can beat baseline_s / attention_s", **setup)
    body, head = linear_flops(lm.model)
    response_tokens = int(sum(a.size for a in ours))
    needed = body * ours_tokens + head * response_tokens  # what curate cannot skip: the head only on responses
    rate = gemm_rate(lm, args.token_budget, args.repeat)
    emit(result="gemm_bound", unit="GFLOP/s", gemm=round(rate / 1e9, 1),
         baseline_linear=round((body + head) * theirs_tokens / theirs_s / 1e9, 1),
         curate_linear=round(needed / ours_s / 1e9, 1), ratio_bound=round(theirs_s / (needed / rate), 2),
         note="linear-layer FLOPs per second of each side against one large float32 GEMM of the model's shapes; "
              "no batching can beat baseline_s / (curate's linear FLOPs at the GEMM rate)", **setup)
    emit(result="peak_rss", unit="MB", after_curate=round(rss_after_curate, 1),
         after_baseline=round(rss_after_baseline, 1), note="ru_maxrss of the process after each side (curate runs first)", **setup)
    return 0


if __name__ == "__main__":
    sys.exit(main())
