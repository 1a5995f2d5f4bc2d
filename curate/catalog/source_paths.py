"""What `--map DST=SRC` and `--domain-field` can name in a source: a column, a path into it, or a template.

- `col`, `col.field.sub`: a column, or a field of a struct column;
- `turns[0]`, `turns[-1]`, `conversations[-1].value`: an element of a list column (negative
  indices count from the end; a row whose list is too short gives null). `turns.0` means
  `turns[0]` when `turns` is a list;
- `{Body} {Question}`: a template, each `{path}` replaced by the text of that path (`{{` and `}}`
  are literal braces). A null field renders as empty text; a row where every field is null
  gives null.

A column whose name itself holds dots or brackets is taken as that column first.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import polars as pl

from curate.errors import BadUsage

_SEGMENT = re.compile(r"\[(-?\d+)\]|\.([^.\[\]]+)")
_TEMPLATE_PART = re.compile(r"\{\{|\}\}|\{([^{}]*)\}|[{}]")
_INDEX = re.compile(r"-?\d+")


@dataclass
class Resolved:
    """A source path as an expression, its type, and what it uses of the source."""

    expr: pl.Expr
    dtype: pl.DataType
    head: str  # the source column it starts from
    fields: list[str | int]  # the path after the column: struct field names and list indices


def is_template(spec: str) -> bool:
    return "{" in spec or "}" in spec


def column_of(path: str) -> str:
    """The column a path starts from, as written (for messages)."""
    return re.split(r"[.\[]", path, maxsplit=1)[0] or path


def split_path(frame: pl.DataFrame, path: str, option: str | None = None) -> tuple[str, list[str | int]] | None:
    """(column, [field or index, ...]), or None when no column starts the path."""
    if path in frame.columns:
        return path, []
    head = column_of(path)
    if head not in frame.columns:
        return None
    rest, parts, at = path[len(head):], [], 0
    while at < len(rest):
        match = _SEGMENT.match(rest, at)
        if match is None:
            raise BadUsage(f"{option or repr(path)}: cannot read the path after {head + rest[:at]!r}",
                           hint="paths look like col, col.field, col[0], col[-1].field")
        parts.append(int(match.group(1)) if match.group(1) is not None else match.group(2))
        at = match.end()
    return head, parts


def resolve_path(frame: pl.DataFrame, path: str, option: str | None = None) -> Resolved | None:
    """The path as an expression over `frame`; None when its column is absent. `option` (e.g.
    "--map prompt=x.y") starts the error messages."""
    where = option or repr(path)
    split = split_path(frame, path, option)
    if split is None:
        return None
    head, parts = split
    expr, dtype, used = pl.col(head), frame.schema[head], []
    for part in parts:
        if isinstance(dtype, (pl.List, pl.Array)) and (isinstance(part, int) or _INDEX.fullmatch(part)):
            index = int(part)
            expr, dtype = expr.list.get(index, null_on_oob=True), dtype.inner
            used.append(index)
        elif isinstance(dtype, pl.Struct) and not isinstance(part, int):
            names = [f.name for f in dtype.fields]
            if part not in names:
                raise BadUsage(f"{where}: {_shown(head, used)} has no field {part!r}",
                               hint="its fields: " + ", ".join(names))
            expr, dtype = expr.struct.field(part), dict(zip(names, (f.dtype for f in dtype.fields)))[part]
            used.append(part)
        else:
            what = f"element [{part}]" if isinstance(part, int) else f"field {part!r}"
            raise BadUsage(f"{where}: {_shown(head, used)} is {_kind(dtype)}, so it has no {what}",
                           hint=_hint_for(dtype, _shown(head, used)))
    return Resolved(expr, dtype, head, used)


def template_expr(frame: pl.DataFrame, template: str, option: str) -> pl.Expr:
    """A template's text per row (see the module docstring)."""
    pieces: list[pl.Expr] = []
    fields: list[pl.Expr] = []
    at = 0
    for match in _TEMPLATE_PART.finditer(template):
        if match.start() > at:
            pieces.append(pl.lit(template[at:match.start()]))
        token = match.group(0)
        if token in ("{{", "}}"):
            pieces.append(pl.lit(token[0]))
        elif match.group(1) is None:
            raise BadUsage(f"{option}: an unmatched {token!r} in the template {template!r}",
                           hint="write {column} for a value and {{ or }} for a literal brace")
        else:
            name = match.group(1).strip()
            resolved = resolve_path(frame, name, option) if name else None
            if resolved is None:
                raise BadUsage(f"{option}: the template names {{{name}}}, but the source has no column "
                               f"{column_of(name)!r}", hint="columns: " + ", ".join(frame.columns))
            if isinstance(resolved.dtype, (pl.List, pl.Array, pl.Struct)):
                raise BadUsage(f"{option}: {{{name}}} is {_kind(resolved.dtype)}, not text",
                               hint=_hint_for(resolved.dtype, name))
            value = resolved.expr.cast(pl.String)
            fields.append(value)
            pieces.append(value.fill_null(""))
        at = match.end()
    if at < len(template):
        pieces.append(pl.lit(template[at:]))
    if not fields:
        raise BadUsage(f"{option}: the template {template!r} names no column", hint="e.g. \"{Body} {Question}\"")
    text = pl.concat_str(pieces)
    return pl.when(pl.all_horizontal([f.is_null() for f in fields])).then(pl.lit(None, pl.String)).otherwise(text)


def _shown(head: str, used: list[str | int]) -> str:
    return head + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in used)


def _kind(dtype: pl.DataType) -> str:
    if isinstance(dtype, (pl.List, pl.Array)):
        return "a list"
    if isinstance(dtype, pl.Struct):
        return "a struct (fields: " + ", ".join(f.name for f in dtype.fields) + ")"
    return f"a {dtype} value"


def _hint_for(dtype: pl.DataType, shown: str) -> str:
    if isinstance(dtype, (pl.List, pl.Array)):
        return f"pick an element: {shown}[0] (the first) or {shown}[-1] (the last)"
    if isinstance(dtype, pl.Struct):
        return f"pick a field: {shown}.{dtype.fields[0].name}" if dtype.fields else "pick a field"
    return f"use {shown} itself"


def not_text_error(option: str, src: str, dtype: pl.DataType) -> BadUsage:
    """A list or a struct where a text column is wanted."""
    if isinstance(dtype, pl.Struct):
        return BadUsage(f"{option}: {src} is {_kind(dtype)}, not text", hint=_hint_for(dtype, src))
    return BadUsage(f"{option}: {src} is {_kind(dtype)}, not text",
                    hint=f"pick an element: {src}[0] (the first) or {src}[-1] (the last); or join columns "
                         "with a template, e.g. --map \"prompt={Body} {Question}\"")
