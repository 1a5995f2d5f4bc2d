"""Small models trained once and kept in a folder: the proxy (`proxy.py`) and token cleaning's
reference models (`curate.selectors.sft.token_clean`) are cached the same way.

A model is trained into a staging folder and renamed into place, so a crash never leaves a
half-written model where a reader would take it for a finished one; when two processes train
the same model at once, the first complete folder is kept and the other is discarded.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path


def is_built(folder: Path, marker: str) -> bool:
    """Whether `folder` holds a finished model: its `marker` file is written last, before the rename."""
    return (folder / marker).is_file()


def publish(built: Path, folder: Path, marker: str) -> bool:
    """Rename the finished model folder `built` to `folder`; False when another process published a
    finished one first (then `built` is left for the caller's staging cleanup). A stale, unfinished
    `folder` (no `marker`) is replaced."""
    if is_built(folder, marker):
        return False
    try:
        os.rename(built, folder)
    except OSError:  # `folder` exists: finished by another process, or a leftover without its marker
        if is_built(folder, marker):
            return False
        shutil.rmtree(folder, ignore_errors=True)
        os.rename(built, folder)
    return True
