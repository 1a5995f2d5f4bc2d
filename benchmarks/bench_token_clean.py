"""Token cleaning, downstream (Pang et al., ICML 2025): does the cleaned mask train a better model?

Setup (all on GSM8K train, split into disjoint parts):
- a base model already warm on the domain: stories260K after a short SFT on clean slice A;
- the fixed-mode reference: that base trained further on clean slice B;
- a noisy pool: other GSM8K examples whose response tokens (stories260K's tokenizer) are
  replaced by random tokens at a 15% rate;
- a clean held-out split.
`curate select --strategy token-clean` (through `run_select`) scores the pool's tokens with
the paper's score, loss(base) − loss(reference), and keeps the global top 60%. Then SFT from
the base on the noisy pool, with the same steps, data order and seed, three ways: all tokens,
the cleaned mask, and a random mask keeping the same fraction. The target: the cleaned mask
gives the lowest mean response loss on the held-out split, averaged over seeds.

Also reported, as information: the AUROC with which the score separates clean tokens (higher
score) from planted ones. A planted token is a token of the re-tokenized noisy response whose
characters overlap a replaced token.

One JSON line per seed and per method, then a summary line.

    python benchmarks/bench_token_clean.py --seeds 3

With a real LM: `--model` may be a GGUF file (dequantised once into WORKDIR/models), and
`--warm-steps 0` uses it as the base as it is (an instruct model needs no warm-up to know the
format). Sized for CPU with SmolLM2-135M-Instruct (about 20 minutes of one core; the numbers are
in docs/selectors.md; `--seeds 0` stops after the AUROC):

    python benchmarks/bench_token_clean.py --model ../shared/models/smollm2-135m-instruct/SmolLM2-135M-Instruct.Q4_1.gguf \
        --warm-steps 0 --ref-rows 240 --ref-steps 30 --pool-rows 150 --held-out 40 --steps 8 \
        --lr 1e-4 --batch-tokens 1024 --seeds 3
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))
SHARED = REPO.parent / "shared"


def emit(**fields) -> None:
    print(json.dumps({"bench": "token_clean", **fields}), flush=True)


def log(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def add_noise(tokenizer, response: str, rate: float, rng: random.Random) -> tuple[str, list[tuple[int, int]]]:
    """The response with `rate` of its tokens replaced by random ones, and the character spans of the replacements."""
    ids = tokenizer(response, add_special_tokens=False)["input_ids"]
    special = set(tokenizer.all_special_ids)
    vocab = [i for i in range(len(tokenizer)) if i not in special]
    noisy = list(ids)
    replaced = sorted(rng.sample(range(len(ids)), k=round(rate * len(ids)))) if ids else []
    for j in replaced:
        noisy[j] = rng.choice(vocab)
    prefix = [len(tokenizer.decode(noisy[:j])) for j in range(len(noisy) + 1)]
    return tokenizer.decode(noisy), [(prefix[j], prefix[j + 1]) for j in replaced]


def planted_labels(tokenizer, text: str, spans: list[tuple[int, int]]) -> np.ndarray:
    """1 for each token of `text` (as encode_pair tokenizes it, then EOS) that overlaps a replaced span."""
    encoded = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    labels = [int(any(s < e2 and s2 < e for s2, e2 in spans)) for s, e in encoded["offset_mapping"]]
    return np.array(labels + [0], dtype=np.int8)  # EOS is never planted


def auroc(scores: np.ndarray, positive: np.ndarray) -> float:
    """P(score of a positive > score of a negative), ties counting one half (Mann–Whitney)."""
    from scipy.stats import rankdata

    ranks = rankdata(scores)
    n_pos, n_neg = int(positive.sum()), int((~positive).sum())
    return float((ranks[positive].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def held_out_loss(model_dir: str, rows: list[dict]) -> float:
    from curate.lm.loading import load
    from curate.lm.scoring import token_logprobs
    from curate.lm.templates import encode_pairs

    lm = load(model_dir, dtype="float32", device="cpu")
    items = encode_pairs([r["prompt"] for r in rows], [r["response"] for r in rows], lm.tokenizer,
                         max_length=lm.max_length)
    logprobs = list(token_logprobs(lm, items))
    return float(-np.concatenate(logprobs).mean())


def sft(model: str, data, out: Path, steps: int, lr: float, seed: int, batch_tokens: int) -> str:
    from curate.train.sft import SFTConfig, train_sft

    started = time.perf_counter()
    stats = train_sft(model, data, out, SFTConfig(steps=steps, lr=lr, seed=seed, batch_tokens=batch_tokens,
                                                  warmup=max(1, steps // 10), save_every=0),
                      progress=lambda step, m: log(f"    {out.name} step {step}/{steps} loss {m['loss']:.3f}")
                      if step % 20 == 0 else None)
    log(f"  sft {out.name}: loss {stats['first_loss']:.3f} -> {stats['final_loss']:.3f} in "
        f"{time.perf_counter() - started:.0f}s")
    return str(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=SHARED / "data" / "gsm8k" / "train.jsonl")
    parser.add_argument("--model", type=Path, default=SHARED / "models" / "stories260K")
    parser.add_argument("--seeds", type=int, default=3, help="SFT seeds downstream; 0: the token scores only")
    parser.add_argument("--noise", type=float, default=0.15)
    parser.add_argument("--ratio", type=float, default=0.6)
    parser.add_argument("--warm-rows", type=int, default=1000)
    parser.add_argument("--warm-steps", type=int, default=100)
    parser.add_argument("--ref-rows", type=int, default=1000)
    parser.add_argument("--ref-steps", type=int, default=60)
    parser.add_argument("--pool-rows", type=int, default=1500)
    parser.add_argument("--held-out", type=int, default=300)
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--batch-tokens", type=int, default=4096)
    parser.add_argument("--workdir", type=Path, default=None)
    args = parser.parse_args()
    if not args.data.exists() or not args.model.exists():
        emit(skipped=f"{args.data} or {args.model} is absent")
        return

    from transformers import AutoTokenizer

    from curate.catalog.ingest import IngestOptions, ingest
    from curate.catalog.workspace import Workspace
    from curate.lm import gguf_cache
    from curate.selectors.pipeline import run_select

    started = time.perf_counter()
    work = args.workdir or Path(tempfile.mkdtemp(prefix="bench-token-clean-"))
    work.mkdir(parents=True, exist_ok=True)
    model = args.model
    if gguf_cache.is_gguf(model):  # dequantised once; every step below opens the folder
        model = gguf_cache.cached_folder(model, work / "models")[0]
    tokenizer = AutoTokenizer.from_pretrained(str(model))
    rng = random.Random(0)
    rows = [json.loads(line) for line in args.data.read_text().splitlines() if line.strip()]
    rng.shuffle(rows)
    rows = [{"prompt": r["question"], "response": r["answer"]} for r in rows]
    cuts = np.cumsum([args.warm_rows, args.ref_rows, args.pool_rows, args.held_out])
    warm, ref_slice, pool, held = (rows[a:b] for a, b in zip([0, *cuts[:-1]], cuts))

    noisy, labels = [], []
    for row in pool:
        text, spans = add_noise(tokenizer, row["response"], args.noise, rng)
        noisy.append({"question": row["prompt"], "answer": text, "spans": json.dumps(spans)})
        labels.append(planted_labels(tokenizer, text, spans))
    planted_rate = float(np.concatenate(labels).mean())
    log(f"noisy pool: {len(noisy)} responses, {planted_rate:.3f} of tokens planted")

    if args.warm_steps > 0:
        log(f"base: {args.model.name} warmed up on clean slice A")
        base = sft(str(model), warm, work / "base", args.warm_steps, args.lr, 0, args.batch_tokens)
    else:
        log(f"base: {args.model.name} as it is")
        base = str(model)
    log("reference: the base trained further on clean slice B")
    reference = sft(base, ref_slice, work / "reference", args.ref_steps, args.lr, 0, args.batch_tokens)

    ws = Workspace.open(work / "ws")
    (work / "noisy.jsonl").write_text("".join(json.dumps(r) + "\n" for r in noisy))
    version = ingest(ws, str(work / "noisy.jsonl"), IngestOptions(name="noisy")).version
    t0 = time.perf_counter()
    report = run_select(ws, "noisy", "token-clean", model=base, params={"ref_model": reference, "ratio": args.ratio},
                        out="cleaned")
    clean_s = time.perf_counter() - t0
    cleaned = report.version.scan().select("prompt", "response", "token_mask", "meta").collect()
    kept_fraction = report.steps[0].stats["kept_fraction"]

    # AUROC: the token scores the selection stored, against the planted labels (rows matched by their spans)
    from curate.catalog.scores import load_token_scores

    key = next(iter(_keys(ws, version.ref)))
    stored = load_token_scores(ws, version.ref, key)
    label_of = {row["spans"]: label for row, label in zip(noisy, labels)}
    ids = version.scan().select("id", "meta").collect()
    spans_of = dict(zip(ids["id"].to_list(), (json.loads(m)["spans"] for m in ids["meta"].to_list())))
    scores, planted = [], []
    for row_id, values in zip(stored["id"].to_list(), stored["values"].to_list()):
        label = label_of[spans_of[row_id]]
        n = min(len(values), len(label))
        scores.append(np.asarray(values[:n], dtype=np.float64))
        planted.append(label[:n].astype(bool))
    flat_scores, flat_planted = np.concatenate(scores), np.concatenate(planted)
    clean_auroc = auroc(flat_scores, ~flat_planted)
    kept = {"planted": [0, 0], "clean": [0, 0]}
    for meta, mask in zip(cleaned["meta"].to_list(), cleaned["token_mask"].to_list()):
        label = label_of[json.loads(meta)["spans"]].astype(bool)
        mask = np.asarray(mask[: len(label)], dtype=bool)
        for name, where in (("planted", label), ("clean", ~label)):
            kept[name][0] += int(mask[where].sum())
            kept[name][1] += int(where.sum())
    emit(result="scores", model=args.model.name, auroc_clean_vs_planted=round(clean_auroc, 4), planted_rate=round(planted_rate, 4),
         kept_fraction=round(kept_fraction, 4), planted_kept=round(kept["planted"][0] / max(1, kept["planted"][1]), 4),
         clean_kept=round(kept["clean"][0] / max(1, kept["clean"][1]), 4), token_clean_s=round(clean_s, 1))

    if args.seeds == 0:  # the token scores only (what CPU time allows with a real LM)
        emit(result="summary", model=args.model.name, seeds=0, auroc_clean_vs_planted=round(clean_auroc, 4),
             seconds=round(time.perf_counter() - started, 1),
             peak_rss_mb=round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1))
        return
    base_loss = held_out_loss(base, held)
    emit(result="base", held_out_loss=round(base_loss, 4))
    results: dict[str, list[float]] = {"all": [], "cleaned": [], "random": []}
    cleaned_rows = [{"prompt": p, "response": r, "token_mask": list(m)}
                    for p, r, m in cleaned.select("prompt", "response", "token_mask").iter_rows()]
    for seed in range(args.seeds):
        mask_rng = np.random.default_rng(seed)
        random_rows = []
        for row in cleaned_rows:
            keep = (mask_rng.random(len(row["token_mask"])) < kept_fraction).astype(int).tolist()
            random_rows.append({**row, "token_mask": keep})
        all_rows = [{"prompt": r["prompt"], "response": r["response"]} for r in cleaned_rows]
        for method, data in (("all", all_rows), ("cleaned", cleaned_rows), ("random", random_rows)):
            out = sft(base, data, work / f"{method}-{seed}", args.steps, args.lr, seed, args.batch_tokens)
            loss = held_out_loss(out, held)
            results[method].append(loss)
            emit(result="sft", method=method, seed=seed, held_out_loss=round(loss, 4))
    means = {m: round(float(np.mean(v)), 4) for m, v in results.items()}
    emit(result="summary", model=args.model.name, seeds=args.seeds, mean_held_out_loss=means, base_loss=round(base_loss, 4),
         cleaned_lowest=means["cleaned"] < min(means["all"], means["random"]),
         auroc_clean_vs_planted=round(clean_auroc, 4), seconds=round(time.perf_counter() - started, 1),
         peak_rss_mb=round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1))


def _keys(ws, dataset: str) -> list[str]:
    from curate.catalog.scores import scorers_of

    frame = scorers_of(ws, dataset)
    return [k for k in frame["scorer_key"].to_list() if k.startswith("token-clean:")]


if __name__ == "__main__":
    main()
