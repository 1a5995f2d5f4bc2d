"""Per-step training metrics: to the console (a callback), `OUT/metrics.jsonl`, and TensorBoard when installed.

Names follow TRL's GRPOTrainer logs (`reward`, `reward_std`, `frac_reward_zero_std`, `kl`,
`entropy`, `clip_ratio/region_mean`, `completions/mean_length`, ...) so dashboards built
for TRL read curate's runs. On resume, lines of steps after the checkpoint are dropped
first, so the file never holds a step twice.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

METRICS_FILE = "metrics.jsonl"


def _clean(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


class MetricsLogger:
    """Writes one JSON line per step; mirrors scalars to TensorBoard (`OUT/tensorboard/`) when available."""

    def __init__(self, out_dir: Path, console: Callable[[int, dict], None] | None = None,
                 resume_step: int | None = None, tensorboard: bool = True):
        out_dir.mkdir(parents=True, exist_ok=True)
        self.path = out_dir / METRICS_FILE
        if resume_step is not None and self.path.exists():
            kept = [line for line in self.path.read_text().splitlines()
                    if line.strip() and json.loads(line).get("step", 0) <= resume_step]
            self.path.write_text("".join(line + "\n" for line in kept))
        elif self.path.exists():
            self.path.unlink()
        self.console = console
        self.writer = None
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter

                self.writer = SummaryWriter(str(out_dir / "tensorboard"))
            except ImportError:  # tensorboard is optional
                self.writer = None
        self.history: list[dict] = []

    def log(self, step: int, metrics: dict[str, Any]) -> None:
        row = {"step": step, **{k: _clean(v) for k, v in metrics.items()}}
        with open(self.path, "a") as fh:
            fh.write(json.dumps(row) + "\n")
        self.history.append(row)
        if self.writer is not None:
            for key, value in metrics.items():
                if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
                    self.writer.add_scalar(key, value, step)
        if self.console is not None:
            self.console(step, row)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None


def read_metrics(out_dir: Path) -> list[dict]:
    path = out_dir / METRICS_FILE
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
