"""Stable content ids.

An example's id is the xxh3-128 hex digest of the canonical JSON of its prompt and
response: `{"prompt":P,"response":R}` with no spaces and non-ASCII kept as is (what
`json.dumps(..., ensure_ascii=False, separators=(",", ":"))` writes). Message prompts
are lists of `{"role","content"}` objects in that key order. The same pair therefore
gets the same id whatever file format or batch it came from.
"""

from __future__ import annotations

import json
from typing import Any

import polars as pl
import polars_hash  # noqa: F401  (registers the `nchash` expression namespace)
import xxhash


def canonical_json(prompt: Any, response: str | None) -> str:
    if isinstance(prompt, list):
        prompt = [{"role": m["role"], "content": m["content"]} for m in prompt]
    return json.dumps({"prompt": prompt, "response": response}, ensure_ascii=False, separators=(",", ":"))


def content_id(prompt: Any, response: str | None) -> str:
    """Reference implementation for one example; `content_id_expr` is the fast path."""
    return xxhash.xxh3_128_hexdigest(canonical_json(prompt, response).encode("utf-8"))


def content_digest_expr(prompt: str = "prompt", response: str = "response") -> pl.Expr:
    """The 16-byte xxh3-128 digest behind the content id, computed column-wise by polars."""
    encoded = pl.struct(pl.col(prompt).alias("prompt"), pl.col(response).alias("response")).struct.json_encode()
    return encoded.nchash.xxh3_128(return_binary=True, byte_order="big")


def content_id_expr(prompt: str = "prompt", response: str = "response") -> pl.Expr:
    """The same id as `content_id`, computed column-wise by polars."""
    return content_digest_expr(prompt, response).bin.encode("hex")


def digest_key(digest: pl.Expr) -> pl.Expr:
    """A digest as a UInt128 number: hashing and membership tests on it are cheap."""
    return digest.bin.reinterpret(dtype=pl.UInt128, endianness="big")
