"""Encoding one huge row for a model with a short context: tokenize everything, or cut first.

Issue 16.12: one 50 MB row made `select --strategy perplexity --budget 1` use 10.4 GB and 100 s.
Both sides run in this process on the same row, tokenizer and context length:

- baseline: what `encode_pair` did before: tokenize the whole prompt and response, then truncate;
- curate: `encode_pair(..., max_length=L)`, which cuts the text in characters before tokenizing
  (docs/decisions.md, "Long rows").

Each side runs in a fresh subprocess, so its peak RSS is its own. Prints one JSON line per side
and one with the ratios; the two sides' token ids are compared (they must be equal).

    python benchmarks/bench_long_rows.py --mb 50 --max-length 2048
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def emit(**fields) -> None:
    print(json.dumps({"bench": "long_rows", **fields}), flush=True)


def side(name: str, mb: float, max_length: int) -> None:
    """Run one side here and print its JSON result (the subprocess entry point)."""
    sys.path.insert(0, str(REPO))
    import xxhash

    from curate.lm import byte_tokenizer
    from curate.lm.templates import encode_pair, render_prompt, tokenize_prompt

    tokenizer = byte_tokenizer.build()
    words = ("the cat sat on a mat while seven hungry dogs ran across wide green fields " * 8).split(" ")
    text = " ".join(words[i % len(words)] for i in range(int(mb * 1e6 / 5)))
    base_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    start = time.perf_counter()
    if name == "baseline":
        prompt_ids = tokenize_prompt(render_prompt(text, tokenizer, "plain"), tokenizer)
        response_ids = tokenizer(text, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
        response_ids = response_ids[: max_length - max(1, min(len(prompt_ids), max_length // 2))]
        prompt_ids = prompt_ids[len(prompt_ids) - (max_length - len(response_ids)):]
    else:
        encoded = encode_pair(text, text, tokenizer, "plain", max_length=max_length)
        prompt_ids, response_ids = encoded.prompt_ids, encoded.response_ids
    seconds = time.perf_counter() - start
    digest = xxhash.xxh3_64_hexdigest(json.dumps([prompt_ids, response_ids]).encode())
    print(json.dumps({"side": name, "seconds": round(seconds, 3), "tokens_kept": len(prompt_ids) + len(response_ids),
                      "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
                      "rss_before_mb": round(base_rss, 1), "ids_digest": digest}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=float, default=50.0, help="size of the row's prompt and of its response, MB")
    parser.add_argument("--max-length", type=int, default=2048, help="the model's context, tokens")
    parser.add_argument("--side", choices=("baseline", "curate"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.side:
        side(args.side, args.mb, args.max_length)
        return
    results = {}
    for name in ("baseline", "curate"):
        out = subprocess.run([sys.executable, __file__, "--side", name, "--mb", str(args.mb), "--max-length",
                              str(args.max_length)], capture_output=True, text=True, check=True).stdout
        results[name] = json.loads(out.strip().splitlines()[-1])
        emit(mb=args.mb, max_length=args.max_length, **results[name])
    base, cur = results["baseline"], results["curate"]
    emit(mb=args.mb, max_length=args.max_length, same_ids=base["ids_digest"] == cur["ids_digest"],
         speedup=round(base["seconds"] / max(cur["seconds"], 1e-9), 1),
         rss_ratio=round(base["peak_rss_mb"] / cur["peak_rss_mb"], 2))


if __name__ == "__main__":
    main()
