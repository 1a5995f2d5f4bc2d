"""`curate demo`: the whole pipeline on a built-in synthetic pool, offline.

- `pool`: arithmetic word problems in GSM8K's layout with planted faults and duplicates;
- `base`: the small model every arm fine-tunes, warmed up on other problems (it never saw the pool);
- `curation`: the ablation, the curated chain against `random` through `curate compare`;
- `loop`: a few closed-loop rounds on fresh prompts, with the demo's graded reward;
- `run`: `run_demo`, which runs them in order.
"""

from curate.demo.pool import fresh_problems, make_pool
from curate.demo.run import DemoReport, run_demo

__all__ = ["DemoReport", "fresh_problems", "make_pool", "run_demo"]
