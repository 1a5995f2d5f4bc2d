"""Ingest throughput and memory: curate's ingest vs a bare polars read + Parquet write.

Generates N synthetic JSONL rows (prompt/response/domain, ~250 bytes a row, seeded, with
1% exact duplicates) in a temporary folder, then times, in the same run:

- baseline: `polars.read_ndjson(file).write_parquet(out)`, the least a converter can do;
- curate: `curate.catalog.ingest.ingest` into a fresh workspace (mapping, content ids,
  deduplication, drop records, sharded atomic write, catalog commit).

Each side runs in a child process of its own, so its peak RSS (`ru_maxrss`) is its own and
no cache or allocator state carries over. The sides alternate, each runs `--repeat` times
(default 2) and the best time of each is reported. Prints one JSON line per result:
throughput (rows/s of both, ratio = curate / baseline, target >= 0.5) and curate's peak
RSS (target < 2 GB).

    python benchmarks/bench_ingest.py            # 1,000,000 rows
    python benchmarks/bench_ingest.py --rows 100000
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
WORDS = (
    "the a of to and in is it that for on with as was be by at this from or an are not have which but "
    "what all were when we there can your their if has more will one about would up so out them into "
    "number two three four five six seven eight nine ten hundred thousand total each per cost price "
    "apples books cars students teacher store money dollars hours minutes week month year garden farm "
    "bakes sells buys gives shares pays earns walks runs reads writes answer question explain step first "
    "then finally because therefore compute python function list string return value sort count sum"
).split()
DOMAINS = ["math", "code", "chat", "science", "writing"]
TARGET_RATIO = 0.5
TARGET_RSS_MB = 2048


def emit(**fields) -> None:
    print(json.dumps({"bench": "ingest", **fields}), flush=True)


def generate(path: Path, rows: int, seed: int) -> int:
    """Write `rows` JSONL rows of realistic length (~250 bytes); 1% are exact copies of recent rows."""
    import numpy as np

    rng = np.random.default_rng(seed)
    words = np.array(WORDS)
    prompt_lengths = rng.integers(5, 24, size=rows)
    response_lengths = rng.integers(9, 37, size=rows)
    domains = rng.integers(0, len(DOMAINS), size=rows)
    duplicate = rng.random(rows) < 0.01
    copy_of = rng.integers(0, 1000, size=rows)
    picks = rng.integers(0, len(words), size=int(prompt_lengths.sum() + response_lengths.sum()))
    cursor = 0
    buffer: list[str] = []
    recent: list[str] = []  # the last 1,000 distinct rows, to copy from
    with open(path, "w") as fh:
        for i in range(rows):
            if duplicate[i] and recent:
                line = recent[int(copy_of[i]) % len(recent)]
            else:
                p, r = int(prompt_lengths[i]), int(response_lengths[i])
                prompt = " ".join(words[picks[cursor:cursor + p]]).capitalize() + f"? (#{i})"
                response = " ".join(words[picks[cursor + p:cursor + p + r]]).capitalize() + "."
                cursor += p + r
                line = json.dumps({"prompt": prompt, "response": response, "domain": DOMAINS[domains[i]]})
                recent.append(line)
                if len(recent) > 2000:
                    del recent[:1000]
            buffer.append(line)
            if len(buffer) >= 50_000:
                fh.write("\n".join(buffer) + "\n")
                buffer = []
        if buffer:
            fh.write("\n".join(buffer) + "\n")
    return path.stat().st_size


def child(side: str, source: str, out: str) -> None:
    """Run one side once; print {"seconds", "rows", "rss_mb"} as JSON."""
    if side == "baseline":
        import polars as pl

        start = time.perf_counter()
        frame = pl.read_ndjson(source)
        frame.write_parquet(Path(out) / "data.parquet")
        seconds = time.perf_counter() - start
        rows_out = frame.height
    else:
        from curate.catalog.ingest import IngestOptions, ingest
        from curate.catalog.workspace import Workspace

        ws = Workspace.open(Path(out) / "ws")
        start = time.perf_counter()
        report = ingest(ws, source, IngestOptions(name="bench"))
        seconds = time.perf_counter() - start
        rows_out = report.version.rows
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"seconds": seconds, "rows_out": rows_out, "rss_mb": rss_mb}))


def run_side(side: str, source: Path, scratch: Path) -> dict:
    out = Path(tempfile.mkdtemp(prefix=f"{side}-", dir=scratch))
    result = subprocess.run([sys.executable, __file__, "--child", side, str(source), str(out)],
                            capture_output=True, text=True, cwd=REPO)
    if result.returncode != 0:
        raise SystemExit(f"bench_ingest: the {side} run failed:\n{result.stderr[-3000:]}")
    subprocess.run(["rm", "-rf", str(out)], check=False)
    return json.loads(result.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="synthetic rows to generate")
    parser.add_argument("--repeat", type=int, default=2, help="runs per side; the best time is reported")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--tmp", type=Path, default=None, help="scratch folder (default: the system temp dir)")
    parser.add_argument("--child", nargs=3, metavar=("SIDE", "SOURCE", "OUT"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        child(*args.child)
        return 0

    with tempfile.TemporaryDirectory(prefix="curate-bench-ingest-", dir=args.tmp) as tmp:
        scratch = Path(tmp)
        source = scratch / "pool.jsonl"
        start = time.perf_counter()
        size = generate(source, args.rows, args.seed)
        generated_s = time.perf_counter() - start
        setup = dict(rows=args.rows, file_mb=round(size / 2**20, 1), bytes_per_row=round(size / args.rows, 1),
                     cpus=os.cpu_count(), timing=f"best of {args.repeat} alternating runs per side, "
                                                  "each in a fresh child process")

        runs: dict[str, list[dict]] = {"baseline": [], "curate": []}
        for _ in range(args.repeat):
            for side in ("baseline", "curate"):
                runs[side].append(run_side(side, source, scratch))

    best = {side: min(r["seconds"] for r in results) for side, results in runs.items()}
    rate = {side: args.rows / seconds for side, seconds in best.items()}
    ratio = rate["curate"] / rate["baseline"]
    emit(result="ingest_throughput", unit="rows/s", baseline=round(rate["baseline"]), curate=round(rate["curate"]),
         ratio=round(ratio, 3), target_ratio=TARGET_RATIO, meets_target=ratio >= TARGET_RATIO,
         baseline_s=[round(r["seconds"], 3) for r in runs["baseline"]],
         curate_s=[round(r["seconds"], 3) for r in runs["curate"]],
         curate_rows_out=runs["curate"][0]["rows_out"], generate_s=round(generated_s, 1), **setup)
    curate_rss = max(r["rss_mb"] for r in runs["curate"])
    emit(result="ingest_peak_rss", unit="MB", curate=round(curate_rss, 1),
         baseline=round(max(r["rss_mb"] for r in runs["baseline"]), 1), target_mb=TARGET_RSS_MB,
         meets_target=curate_rss < TARGET_RSS_MB, how="ru_maxrss of the child process that ran the side", **setup)
    return 0


if __name__ == "__main__":
    sys.exit(main())
