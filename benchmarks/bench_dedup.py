"""Near-duplicate recall and precision of `dedup` on GSM8K train with planted copies.

A seeded sample of GSM8K problems is copied with small surface edits (whitespace, punctuation
or letter case, in the question and the answer) and the copies are inserted at random places
in the pool. The pool is ingested into a fresh workspace (copies differ in content, so ingest
keeps them) and `dedup` runs with its default embedding, the dataset's proxy model (trained
here, as `--model proxy` does), whitened, at several thresholds: with its default text
normalisation (case, punctuation and whitespace removed before embedding, as datatrove does
for near-dedup) and without it, which shows what the embedding alone achieves. A drop is correct when the dropped row
and the kept row it matched are a planted pair; recall is the share of planted pairs found.
One JSON line per threshold.

    python benchmarks/bench_dedup.py --copies 300
    python benchmarks/bench_dedup.py --model ../shared/models/stories260K
"""

from __future__ import annotations

import argparse
import json
import random
import re
import resource
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))
DEFAULT_DATA = REPO.parent / "shared" / "data" / "gsm8k" / "train.jsonl"


def emit(**fields) -> None:
    print(json.dumps({"bench": "dedup", **fields}), flush=True)


def edit(text: str, rng: random.Random) -> str:
    """One surface edit: whitespace, punctuation or case."""
    kind = rng.choice(("space", "punct", "case"))
    words = text.split(" ")
    if kind == "space":
        how = rng.choice(("double", "newline", "edges"))
        if how == "edges":
            return "  " + text + " \n"
        i = rng.randrange(len(words))
        joiner = "  " if how == "double" else "\n"
        return " ".join(words[:i]) + (joiner if i else "") + " ".join(words[i:])
    if kind == "punct":
        marks = [m.start() for m in re.finditer(r"[,.?!;:]", text)]
        if marks and rng.random() < 0.5:
            i = rng.choice(marks)
            return text[:i] + text[i + 1:]
        i = rng.randrange(len(words))
        words[i] = words[i] + rng.choice((",", ".", "!", ";"))
        return " ".join(words)
    how = rng.choice(("lower", "upper-word", "title-word"))
    if how == "lower":
        return text.lower()
    i = rng.randrange(len(words))
    words[i] = words[i].upper() if how == "upper-word" else words[i].capitalize()
    return " ".join(words)


def paraphrase(row: dict, rng: random.Random) -> dict:
    question, answer = row["question"], row["answer"]
    for _ in range(rng.randint(1, 3)):
        if rng.random() < 0.5:
            question = edit(question, rng)
        else:
            answer = edit(answer, rng)
    if question == row["question"] and answer == row["answer"]:
        question = question + " "
    return {"question": question, "answer": answer}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--copies", type=int, default=300)
    parser.add_argument("--model", default="proxy")
    parser.add_argument("--thresholds", default="0.85,0.88,0.9,0.95,0.97,0.99")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workspace", type=Path, default=None)
    args = parser.parse_args()
    if not args.data.exists():
        emit(skipped=f"{args.data} is absent")
        return

    from curate.catalog.ingest import IngestOptions, ingest
    from curate.catalog.workspace import Workspace
    from curate.selectors.sft.dedup import DedupSelector
    from curate.selectors.pool import Pool

    rng = random.Random(args.seed)
    rows = [json.loads(line) for line in args.data.read_text().splitlines() if line.strip()]
    originals = rng.sample(range(len(rows)), args.copies)
    pool = [dict(r, origin=i) for i, r in enumerate(rows)]
    for number, i in enumerate(originals):
        copy = dict(paraphrase(rows[i], rng), origin=i, planted=number)
        pool.insert(rng.randrange(len(pool) + 1), copy)
    root = args.workspace or Path(tempfile.mkdtemp(prefix="bench-dedup-"))
    ws = Workspace.open(root)
    source = root / "pool.jsonl"
    source.write_text("".join(json.dumps(r) + "\n" for r in pool))
    version = ingest(ws, str(source), IngestOptions(name="gsm8k-planted")).version

    frame = version.scan().select("id", "meta").collect()
    origin = dict(zip(frame["id"].to_list(), [json.loads(m)["origin"] for m in frame["meta"].to_list()]))
    planted_pairs = args.copies

    selection_pool = Pool.from_version(version, ws, model=args.model, seed=args.seed)
    from curate.selectors.embeddings import embed

    for normalize in (True, False):  # the default (datatrove-style text normalisation first), and without it
        t0 = time.perf_counter()
        embed(selection_pool, normalize=normalize)  # trains the proxy the first time with --model proxy; then cached
        embed_s = time.perf_counter() - t0
        for threshold in (float(t) for t in args.thresholds.split(",")):
            t0 = time.perf_counter()
            selection = DedupSelector(threshold=threshold, normalize=normalize).fit(selection_pool).select()
            dropped = selection.dropped.filter(selection.dropped["reason"] == "near_duplicate")
            matched = [d.rsplit(" to ", 1)[1] for d in dropped["detail"].to_list()]
            pairs = [origin[a] == origin[b] for a, b in zip(dropped["id"].to_list(), matched)]
            correct = sum(pairs)
            found_pairs = len({origin[a] for a, ok in zip(dropped["id"].to_list(), pairs) if ok})
            precision = correct / max(1, dropped.height)
            recall = found_pairs / planted_pairs
            emit(model=args.model, normalize=normalize, transform="whiten", rows=version.rows, planted=planted_pairs,
                 threshold=threshold, dropped=dropped.height, correct=correct, unplanted_drops=dropped.height - correct,
                 precision=round(precision, 4), recall=round(recall, 4),
                 target_met=precision >= 0.95 and recall >= 0.95, embed_s=round(embed_s, 1),
                 dedup_s=round(time.perf_counter() - t0, 2),
                 peak_rss_mb=round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1))


if __name__ == "__main__":
    main()
