"""Real model, real text: do the scores find what is bad in an instruction pool?

Pool: alpaca_en_demo (LLaMA-Factory's demo set, 999 Alpaca-style rows, ../shared/data/llama_factory_demo).
20% of its rows get a planted fault, a third of each kind (seeded, fixed before any score is seen):
- `swap`: the response belongs to another prompt (the responses of the swap rows rotated among them,
  so every response is still fluent text, only mismatched);
- `truncate`: the response cut to its first 20% of tokens (SmolLM2's tokenizer; rows whose response has
  at least 10 tokens);
- `off_domain`: the response replaced by a GSM8K training solution (../shared/data/gsm8k/train.jsonl,
  calculator annotations <<...>> removed), text from an unrelated domain.

Each strategy runs through `curate.selectors.pipeline.run_select` (the code behind `curate select`)
with SmolLM2-135M-Instruct (the Q4_1 GGUF, dequantised once into the workspace) as `--model`, keeping
80%: the rows it drops are its 20%. Reported per strategy: the recall of each fault kind among the dropped
rows (the share of that kind's rows that were dropped) and the precision of the drop set, next to random
selection: its exact expectation (recall = drop rate = 20% for every kind) and `random` itself over 3 seeds.
`ifd` drops every row with IFD > 1 whatever the budget (as Cherry LLM does); when more than 20% of the
rows are above 1 the 20% drop rate is out of its reach, so `ifd` is then reported at its own drop rate and
`ifd(max_ifd=inf)` (rank by IFD alone, lowest dropped) at 20%. `fisher` uses a 64-dimensional random
projection of the hidden states (`--param fisher.dim=64`, what the memory guard suggests for real models).

One JSON line per strategy (and per random seed), then a summary line.

    python benchmarks/bench_noise_recovery.py [--model PATH.gguf] [--rows N] [--workdir DIR]

What docs/selectors.md reports: the whole pool, `python benchmarks/bench_noise_recovery.py` (about
24 minutes of one CPU core). Strategies may be split over processes (`--strategies`); they plant
the same faults.
"""

from __future__ import annotations

import argparse
import json
import math
import re
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
SMOLLM = SHARED / "models" / "smollm2-135m-instruct" / "SmolLM2-135M-Instruct.Q4_1.gguf"
KINDS = ("swap", "truncate", "off_domain")
DROP_RATE = 0.2
PLANT_SEED = 0


def emit(**fields) -> None:
    print(json.dumps({"bench": "noise_recovery", **fields}), flush=True)


def log(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def plant(rows: list[dict], gsm8k: list[dict], tokenizer, rate: float, seed: int) -> list[dict]:
    """`rows` with `rate` of them faulty, a third of each kind; each row's `fault` (or None) is recorded."""
    rng = np.random.default_rng(seed)
    n_faulty = round(rate * len(rows))
    sizes = [n_faulty // 3 + (i < n_faulty % 3) for i in range(3)]
    lengths = [len(tokenizer(r["output"], add_special_tokens=False)["input_ids"]) for r in rows]
    order = rng.permutation(len(rows))
    truncatable = [int(i) for i in order if lengths[i] >= 10]
    truncate = truncatable[: sizes[1]]
    rest = [int(i) for i in order if int(i) not in set(truncate)]
    swap, off_domain = rest[: sizes[0]], rest[sizes[0]: sizes[0] + sizes[2]]
    out = [{**r, "fault": None} for r in rows]
    rotated = rng.permutation(swap)
    for source, target in zip(rotated, np.roll(rotated, 1)):  # a rotation: no row keeps its own response
        out[int(target)].update(output=rows[int(source)]["output"], fault="swap")
    for i in truncate:
        ids = tokenizer(rows[i]["output"], add_special_tokens=False)["input_ids"]
        out[i].update(output=tokenizer.decode(ids[: max(1, len(ids) // 5)]).strip(), fault="truncate")
    solutions = rng.choice(len(gsm8k), size=len(off_domain), replace=False)
    for i, j in zip(off_domain, solutions):
        out[i].update(output=re.sub(r"<<[^>]*>>", "", gsm8k[int(j)]["answer"]), fault="off_domain")
    return out


def recall_line(name: str, dropped: set[str], fault_of: dict[str, str | None], **extra) -> dict:
    """Recall of each fault kind among `dropped`, the recall of all planted rows and the drop set's precision."""
    planted = {i for i, f in fault_of.items() if f}
    line = {"strategy": name, "dropped": len(dropped), "drop_rate": round(len(dropped) / len(fault_of), 4)}
    for kind in KINDS:
        rows = {i for i, f in fault_of.items() if f == kind}
        line[f"recall_{kind}"] = round(len(rows & dropped) / len(rows), 4)
        line[f"recall_{kind}_95"] = [round(v, 3) for v in wilson(len(rows & dropped), len(rows))]
    line["recall_planted"] = round(len(planted & dropped) / len(planted), 4)
    line["precision"] = round(len(planted & dropped) / max(1, len(dropped)), 4)
    return {**line, **extra}


def wilson(hits: int, n: int, z: float = 1.959964) -> tuple[float, float]:
    """Wilson's 95% score interval for a proportion hits/n: how far a recall measured on n planted rows can
    be from the strategy's recall on faults like these (the planted rows are a sample of such faults)."""
    p, q = hits / n, z * z / n
    center, half = (p + q / 2) / (1 + q), z * math.sqrt(p * (1 - p) / n + q / (4 * n)) / (1 + q)
    return max(0.0, center - half), min(1.0, center + half)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=SHARED / "data" / "llama_factory_demo" / "alpaca_en_demo.json")
    parser.add_argument("--gsm8k", type=Path, default=SHARED / "data" / "gsm8k" / "train.jsonl")
    parser.add_argument("--model", type=Path, default=SMOLLM)
    parser.add_argument("--rows", type=int, default=None, help="Use the first N rows only (a quick check).")
    parser.add_argument("--strategies", default="length,perplexity,ifd,fisher")
    parser.add_argument("--random-seeds", type=int, default=3)
    parser.add_argument("--workdir", type=Path, default=None)
    args = parser.parse_args()
    for path in (args.data, args.gsm8k, args.model):
        if not path.exists():
            emit(skipped=f"{path} is absent")
            return

    from curate.catalog.ingest import IngestOptions, ingest
    from curate.catalog.workspace import Workspace
    from curate.lm.gguf_cache import cached_folder, is_gguf
    from curate.selectors.pipeline import run_score, run_select

    started = time.perf_counter()
    work = args.workdir or Path(tempfile.mkdtemp(prefix="bench-noise-recovery-"))
    work.mkdir(parents=True, exist_ok=True)
    ws = Workspace.open(work / "ws")
    model = str(args.model)
    t0 = time.perf_counter()
    folder = cached_folder(args.model, ws.models_dir)[0] if is_gguf(model) else args.model
    log(f"model folder {folder} ready in {time.perf_counter() - t0:.1f}s")
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(folder))
    rows = json.loads(args.data.read_text())[: args.rows]
    gsm8k = [json.loads(line) for line in args.gsm8k.read_text().splitlines() if line.strip()]
    planted = plant(rows, gsm8k, tokenizer, DROP_RATE, PLANT_SEED)
    source = work / "pool.json"
    source.write_text(json.dumps(planted))
    version = ingest(ws, str(source), IngestOptions(name="pool")).version
    frame = version.scan().select("id", "meta").collect()
    fault_of = {i: json.loads(m).get("fault") for i, m in zip(frame["id"].to_list(), frame["meta"].to_list())}
    n = len(fault_of)
    drop = round(DROP_RATE * n)
    counts = {k: sum(f == k for f in fault_of.values()) for k in KINDS}
    emit(result="pool", rows=n, planted=sum(counts.values()), **{f"planted_{k}": v for k, v in counts.items()},
         drop=drop, plant_seed=PLANT_SEED, model=args.model.name)
    all_ids = set(fault_of)

    def dropped_by(strategy: str, budget: int, params: dict, seed: int = 0, out: str | None = None) -> tuple[set, float]:
        t = time.perf_counter()
        report = run_select(ws, "pool", strategy, budget=str(budget), model=model, params=params, seed=seed,
                            out=out or f"pool-{strategy}-{seed}",
                            progress=lambda what, done, total: None)
        kept = set(report.version.scan().select("id").collect()["id"].to_list())
        return all_ids - kept, time.perf_counter() - t

    lines = []
    expected = round(drop / n, 4)  # a uniform drop of `drop` rows catches each planted row with probability drop/n
    emit(strategy="random (expectation)", dropped=drop, drop_rate=expected,
         **{f"recall_{k}": expected for k in (*KINDS, "planted")}, precision=round(sum(counts.values()) / n, 4))
    random_recalls = []
    for seed in range(args.random_seeds):
        dropped, seconds = dropped_by("random", n - drop, {}, seed=seed)
        line = recall_line("random", dropped, fault_of, seed=seed, seconds=round(seconds, 1))
        random_recalls.append(line["recall_planted"])
        emit(**line)
    for strategy in [s.strip() for s in args.strategies.split(",") if s.strip()]:
        params = {"fisher.dim": "64"} if strategy == "fisher" else {}
        t = time.perf_counter()
        if strategy == "ifd":
            score = run_score(ws, "pool", "ifd", model=model, progress=lambda what, done, total: None)
            above = _ifd_above_1(ws, version.ref, score.scorer_key, all_ids)
            if len(above) > drop:  # out of ifd's reach: report its own drop set, then rank by IFD alone
                line = recall_line("ifd", above, fault_of, seconds=round(time.perf_counter() - t, 1),
                                   note="every row with IFD > 1 (or none) is dropped whatever the budget")
                lines.append(line)
                emit(**line)
                strategy, params = "ifd(max_ifd=inf)", {"ifd.max_ifd": "inf"}
        dropped, _ = dropped_by(strategy.partition("(")[0], n - drop, params)
        line = recall_line(strategy, dropped, fault_of, seconds=round(time.perf_counter() - t, 1),
                           **({"params": params} if params else {}))
        lines.append(line)
        emit(**line)
    emit(result="summary", rows=n, drop_rate=round(drop / n, 4),
         random_recall_planted=f"{np.mean(random_recalls):.4f} +- {np.std(random_recalls, ddof=1):.4f}"
         if len(random_recalls) > 1 else None,
         recall_planted={line["strategy"]: line["recall_planted"] for line in lines},
         seconds=round(time.perf_counter() - started, 1),
         peak_rss_mb=round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1))


def _ifd_above_1(ws, dataset: str, key: str, all_ids: set) -> set:
    """The rows of `dataset` that ifd drops whatever the budget: a stored IFD above 1, or none at all."""
    from curate.catalog.scores import load_scores

    scores = load_scores(ws, dataset, key)
    ok = {i for i, v in zip(scores["id"].to_list(), scores["value"].to_list())
          if v is not None and math.isfinite(v) and v <= 1.0}
    return all_ids - ok


if __name__ == "__main__":
    main()
