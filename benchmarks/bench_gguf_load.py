"""Loading a GGUF model: transformers' own load (dequantises on every call) vs curate's first load
(dequantise once into the cache folder) and second load (open the cached folder).

    python benchmarks/bench_gguf_load.py [--model ../shared/models/.../SmolLM2-135M-Instruct.Q4_1.gguf]

One JSON line per load, then a summary line with the second load's speed-up over transformers'.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))
DEFAULT = REPO.parent / "shared" / "models" / "smollm2-135m-instruct" / "SmolLM2-135M-Instruct.Q4_1.gguf"


def emit(**fields) -> None:
    print(json.dumps({"bench": "gguf_load", **fields}), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=DEFAULT)
    args = parser.parse_args()
    if not args.model.exists():
        sys.exit(f"{args.model} is absent")
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from curate.lm import gguf_cache
    from curate.lm.loading import load

    began = time.perf_counter()
    AutoTokenizer.from_pretrained(str(args.model.parent), gguf_file=args.model.name)
    AutoModelForCausalLM.from_pretrained(str(args.model.parent), gguf_file=args.model.name, dtype=torch.float32)
    baseline = time.perf_counter() - began
    emit(load="transformers gguf_file=", seconds=round(baseline, 2))
    with tempfile.TemporaryDirectory() as cache:
        seconds = {}
        for which in ("first", "second"):
            began = time.perf_counter()
            lm = load(str(args.model), dtype="float32", device="cpu", cache_dir=cache)
            seconds[which] = time.perf_counter() - began
            emit(load=f"curate {which}", seconds=round(seconds[which], 2), model_hash=lm.model_hash)
        folder = next(Path(cache).iterdir())
        size = sum(p.stat().st_size for p in folder.iterdir())
    emit(summary=True, model=args.model.name, gguf_bytes=args.model.stat().st_size, cache_bytes=size,
         transformers_s=round(baseline, 2), curate_first_s=round(seconds["first"], 2),
         curate_second_s=round(seconds["second"], 2), second_vs_transformers=round(baseline / seconds["second"], 1),
         file_identity=gguf_cache.file_fingerprint(args.model) == lm.model_hash)


if __name__ == "__main__":
    main()
