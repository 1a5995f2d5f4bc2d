"""Stable content ids.

An example's id is the xxh3-128 hex digest of the canonical JSON of its content: every
canonical field that makes one example different from another (`CONTENT_FIELDS`: prompt,
response, answer, tests), written as `{"prompt":P,"response":R,"answer":A,"tests":T}` with
no spaces and non-ASCII kept as is (what `json.dumps(..., ensure_ascii=False,
separators=(",", ":"))` writes). `answer` and `tests` are written only when they are not
null, so an example without them keeps the id it had when ids covered prompt and response
only (docs/decisions.md, "Content ids cover the answer and the tests"). Message prompts are
lists of `{"role","content"}` objects in that key order. The same content therefore gets
the same id whatever file format or batch it came from; `domain` (a label) and `meta`
(everything unmapped) are not part of it.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import polars as pl
import polars_hash  # noqa: F401  (registers the `nchash` expression namespace)
import xxhash

CONTENT_FIELDS = ("prompt", "response", "answer", "tests")
OPTIONAL_FIELDS = ("answer", "tests")  # written only when not null


def canonical_json(prompt: Any, response: str | None, answer: str | None = None, tests: str | None = None) -> str:
    if isinstance(prompt, list):
        prompt = [{"role": m["role"], "content": m["content"]} for m in prompt]
    content: dict[str, Any] = {"prompt": prompt, "response": response}
    for name, value in (("answer", answer), ("tests", tests)):
        if value is not None:
            content[name] = value
    return json.dumps(content, ensure_ascii=False, separators=(",", ":"))


def content_id(prompt: Any, response: str | None, answer: str | None = None, tests: str | None = None) -> str:
    """Reference implementation for one example; `content_id_expr` is the fast path."""
    return xxhash.xxh3_128_hexdigest(canonical_json(prompt, response, answer, tests).encode("utf-8"))


def content_digest_expr(optional: Sequence[str] = OPTIONAL_FIELDS) -> pl.Expr:
    """The 16-byte xxh3-128 digest behind the content id, computed column-wise by polars.

    `optional`: which of answer/tests the frame has (a frame without them hashes as if they were null).
    """
    encoded = pl.struct(pl.col("prompt"), pl.col("response")).struct.json_encode()
    extras = []
    for name in OPTIONAL_FIELDS:
        if name in optional:
            member = pl.struct(pl.col(name).cast(pl.String)).struct.json_encode()  # {"answer":"..."}
            pair = pl.lit(",") + member.str.strip_prefix("{").str.strip_suffix("}")
            extras.append(pl.when(pl.col(name).is_not_null()).then(pair).otherwise(pl.lit("")))
    if extras:
        encoded = pl.concat_str([encoded.str.strip_suffix("}"), *extras, pl.lit("}")])
    return encoded.nchash.xxh3_128(return_binary=True, byte_order="big")


def content_id_expr(optional: Sequence[str] = OPTIONAL_FIELDS) -> pl.Expr:
    """The same id as `content_id`, computed column-wise by polars."""
    return content_digest_expr(optional).bin.encode("hex")


def content_fields_of(columns: Sequence[str]) -> tuple[str, ...]:
    """The optional content fields a frame with these columns has."""
    return tuple(name for name in OPTIONAL_FIELDS if name in columns)


def digest_key(digest: pl.Expr) -> pl.Expr:
    """A digest as a UInt128 number: hashing and membership tests on it are cheap."""
    return digest.bin.reinterpret(dtype=pl.UInt128, endianness="big")
