"""Kept and masked tokens of a token-cleaned version, for the report.

A `token_mask` is aligned with the response tokens of the tokenizer the token-clean step
used (`encode_pair(..., add_eos=True)`, DESIGN §3), so the report re-tokenizes a few
responses with that tokenizer and pairs each token's text with its mask bit. When the
tokenizer cannot be loaded (a hub id offline, a deleted folder), the section says why and
shows only the counts.
"""

from __future__ import annotations

import re
from typing import Any

import polars as pl

from curate.catalog.versions import DatasetVersion
from curate.report.steps import clip

PROXY_ID = re.compile(r"^proxy \((?P<path>.+)\)$")


def _tokenizer_path(step: dict[str, Any]) -> str | None:
    model = step.get("model_id")
    if not model:
        return None
    match = PROXY_ID.match(model)
    return match["path"] if match else model


def _load_tokenizer(path: str):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(path)


def token_section(version: DatasetVersion, lineage: list[dict[str, Any]], rows: int = 3) -> dict[str, Any] | None:
    """Counts over the whole version and `rows` responses as (token text, kept) pairs; None without masks."""
    if "token_mask" not in version.columns:
        return None
    totals = version.scan().select(
        pl.col("token_mask").list.len().sum().alias("tokens"),
        pl.col("token_mask").list.sum().sum().alias("kept"),
    ).collect().row(0, named=True)
    section: dict[str, Any] = {"tokens": int(totals["tokens"] or 0), "tokens_kept": int(totals["kept"] or 0),
                               "examples": [], "note": None}
    section["kept_fraction"] = section["tokens_kept"] / section["tokens"] if section["tokens"] else None
    step = next((s for s in reversed(lineage) if s.get("strategy") == "token-clean"), None)
    path = _tokenizer_path(step) if step else None
    if path is None:
        section["note"] = "no token-clean step in the lineage names the tokenizer the masks are aligned with"
        return section
    try:
        tokenizer = _load_tokenizer(path)
    except Exception as exc:  # transformers raises many kinds for a missing or offline tokenizer
        section["note"] = f"could not load the tokenizer {path} to show tokens: {str(exc).splitlines()[0][:200]}"
        return section
    from curate.lm.templates import encode_pair

    template = step.get("params", {}).get("template", "auto")
    frame = (version.scan().filter(pl.col("token_mask").is_not_null()).select("id", "prompt", "response", "token_mask")
             .head(rows).collect())
    for row in frame.to_dicts():
        ids = encode_pair(row["prompt"], row["response"], tokenizer, template, add_eos=True).response_ids
        mask = list(row["token_mask"])
        if len(ids) != len(mask):
            section["note"] = (f"the masks do not line up with {path}'s tokens ({len(mask)} mask bits, {len(ids)} "
                               f"tokens for row {row['id']}): was the tokenizer changed?")
            section["examples"] = []
            break
        section["examples"].append({"id": row["id"], "prompt": clip(row["prompt"]),
                                    "tokens": [[tokenizer.decode([t]), int(m)] for t, m in zip(ids, mask)]})
    section["tokenizer"] = path
    return section
