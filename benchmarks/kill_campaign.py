"""Kill campaign: 20 SIGKILLs at random moments per command, each followed by a rerun or --resume.

Commands: ingest, score, select (fisher and token-clean), rollouts, loop, synth (against a local
stub OpenAI server), train sft and train grpo, each on a tiny model the campaign builds. After
every kill the workspace is checked (catalog opens, every listed version has all its shards with
matching hashes, no rollout or score doubled, ledger counts exact), the rerun must succeed, and
its outcome must equal an unkilled run's (tests/reliability/kills.py says exactly what is
compared). Prints one JSON line per kill and a summary per command: kills, killed before the
end, outcomes lost, doubled or different, reruns that failed.

    python benchmarks/kill_campaign.py                     # 20 kills per command
    python benchmarks/kill_campaign.py --kills 3 --only ingest score
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.reliability.kills import Campaign  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kills", type=int, default=20)
    parser.add_argument("--scale", type=float, default=1.0, help="shrink the workloads (CI uses 0.1)")
    parser.add_argument("--seed", type=int, default=15)
    parser.add_argument("--only", nargs="*", help="commands to run, e.g. 'train sft' ingest")
    args = parser.parse_args()

    def report(payload: dict) -> None:
        print(json.dumps(payload), flush=True)

    with tempfile.TemporaryDirectory(prefix="curate-kills-") as tmp:
        campaign = Campaign(Path(tmp), Path(tmp) / "model", args.scale)
        campaign.prepare()
        try:
            results = campaign.run(args.kills, args.seed, args.only, report)
        finally:
            campaign.zygote.close()
    by_command = defaultdict(list)
    for result in results:
        by_command[result.command].append(result)
    for command, items in by_command.items():
        report({"summary": command, "kills": len(items), "killed_before_the_end": sum(r.killed for r in items),
                "broken": sum(bool(r.problems) for r in items),
                "reruns_failed": sum(any("the rerun exited" in p for p in r.problems) for r in items),
                "outcome_differs": sum(any("differs" in p or "synth:" in p for p in r.problems) for r in items),
                "integrity": sum(any(p.startswith(("after the kill", "after the rerun")) for p in r.problems)
                                 for r in items)})


if __name__ == "__main__":
    main()
