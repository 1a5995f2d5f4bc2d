"""`curate compare`: equal-budget ablations of selection strategies (runner, config, statistics, guards)."""

from curate.compare.config import CompareConfig
from curate.compare.runner import CompareResult, run_compare

__all__ = ["CompareConfig", "CompareResult", "run_compare"]
