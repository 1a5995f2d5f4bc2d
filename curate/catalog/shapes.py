"""Recognise the common dataset shapes and map them onto the canonical columns.

Detection looks only at column names (and the field names of nested columns), so it
is decided once per source and applied to every chunk with polars expressions. The
decisions (how Alpaca's input joins its instruction, which ShareGPT roles become
which chat roles, ...) are written down in docs/formats.md.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import polars as pl

from curate.catalog.schema import MESSAGES
from curate.catalog.source_paths import column_of, is_template, not_text_error, resolve_path, template_expr
from curate.errors import BadUsage

TARGETS = ("prompt", "response", "answer", "tests", "domain", "id")
PROMPT_ALIASES = ("prompt", "question", "problem", "query", "instruction")
RESPONSE_ALIASES = ("response", "completion", "output", "solution", "target")
ANSWER_ALIASES = ("answer", "final_answer", "ground_truth")
ROLE_NAMES = {
    "human": "user", "user": "user", "gpt": "assistant", "assistant": "assistant", "model": "assistant",
    "bot": "assistant", "chatgpt": "assistant", "function_call": "assistant", "system": "system",
    "observation": "tool", "tool": "tool", "function": "tool", "ipython": "tool",
}


@dataclass
class Shape:
    """How one source maps onto the canonical columns."""

    name: str
    columns: dict[str, pl.Expr]                    # canonical column -> expression over the source
    consumed: set[str]                              # source columns that are not copied to meta
    prompt_type: str = "text"                       # "text" or "messages"
    prepare: Callable[[pl.DataFrame], pl.DataFrame] | None = None
    notes: list[str] = field(default_factory=list)
    consumed_fields: dict[str, set[str]] = field(default_factory=dict)  # struct column -> fields used by a.b paths
    meta: str | None = None                         # a source column that already is curate's meta (re-ingest)


def _fields(frame: pl.DataFrame, column: str) -> set[str]:
    """Field names of a struct or list-of-struct column."""
    dtype = frame.schema.get(column)
    if isinstance(dtype, pl.List):
        dtype = dtype.inner
    return {f.name for f in dtype.fields} if isinstance(dtype, pl.Struct) else set()


def _is_messages(frame: pl.DataFrame, column: str) -> bool:
    return isinstance(frame.schema.get(column), pl.List) and {"role", "content"} <= _fields(frame, column)


def _is_sharegpt(frame: pl.DataFrame, column: str) -> bool:
    return isinstance(frame.schema.get(column), pl.List) and {"from", "value"} <= _fields(frame, column)


def _text(expr: pl.Expr) -> pl.Expr:
    return expr.cast(pl.String)


def _messages_from(column: str, sharegpt: bool) -> pl.Expr:
    """A list<struct<role, content>> column, with ShareGPT roles renamed to chat roles."""
    role_field, content_field = ("from", "value") if sharegpt else ("role", "content")
    role = pl.element().struct.field(role_field).cast(pl.String)
    if sharegpt:
        role = role.replace(ROLE_NAMES)
    message = pl.struct(role.alias("role"), pl.element().struct.field(content_field).cast(pl.String).alias("content"))
    return pl.col(column).list.eval(message).cast(MESSAGES)


def _split_last_assistant(messages: pl.Expr) -> tuple[pl.Expr, pl.Expr]:
    """(prompt, response): the final assistant turn is the response, if there is one."""
    last = messages.list.last()
    is_reply = last.struct.field("role") == "assistant"
    prompt = pl.when(is_reply).then(messages.list.head(messages.list.len() - 1)).otherwise(messages)
    response = pl.when(is_reply).then(last.struct.field("content")).otherwise(pl.lit(None, pl.String))
    return prompt, response


def _with_system(messages: pl.Expr, frame: pl.DataFrame) -> pl.Expr:
    if "system" not in frame.columns:
        return messages
    system = pl.concat_list(pl.struct(pl.lit("system").alias("role"), _text(pl.col("system")).alias("content")))
    has_system = pl.col("system").is_not_null() & (_text(pl.col("system")) != "")
    return pl.when(has_system).then(pl.concat_list(system.cast(MESSAGES), messages)).otherwise(messages)


def _join_input(instruction: str, extra: str | None) -> pl.Expr:
    """Alpaca: the input, when present, follows the instruction after a blank line."""
    base = _text(pl.col(instruction))
    if extra is None:
        return base
    extra_text = _text(pl.col(extra))
    return pl.when(extra_text.is_not_null() & (extra_text.str.strip_chars() != "")).then(
        base + pl.lit("\n\n") + extra_text).otherwise(base)


def _content_of(frame: pl.DataFrame, column: str) -> pl.Expr:
    """The text of a DPO side: a string, a {from,value}/{role,content} struct, or a message list."""
    dtype = frame.schema[column]
    if isinstance(dtype, pl.Struct):
        names = _fields(frame, column)
        return _text(pl.col(column).struct.field("value" if "value" in names else "content"))
    if isinstance(dtype, pl.List):
        names = _fields(frame, column)
        return _text(pl.col(column).list.last().struct.field("value" if "value" in names else "content"))
    return _text(pl.col(column))


def gsm8k_answer(solution: pl.Expr) -> pl.Expr:
    """The final number after `####`, without thousands separators."""
    return solution.str.extract(r"####\s*([^\n]*?)\s*$", 1).str.replace_all(",", "").str.strip_chars()


def _first(frame: pl.DataFrame, names: tuple[str, ...]) -> str | None:
    return next((n for n in names if n in frame.columns), None)


def detect(frame: pl.DataFrame) -> Shape | None:
    """The shape of a source, judged from its first chunk; None when nothing fits."""
    cols = set(frame.columns)
    answer_col = _first(frame, ANSWER_ALIASES)

    if {"id", "prompt", "meta"} <= cols and "response" in cols:
        return _curate_export(frame)
    if {"chosen", "rejected"} <= cols:
        return _dpo(frame)
    if "messages" in cols and _is_messages(frame, "messages"):
        prompt, response = _split_last_assistant(_with_system(_messages_from("messages", False), frame))
        return Shape("openai-messages", {"prompt": prompt, "response": response},
                     _chat_consumed(frame, "messages", {"role", "content"}), "messages")
    if "conversations" in cols and _is_sharegpt(frame, "conversations"):
        prompt, response = _split_last_assistant(_with_system(_messages_from("conversations", True), frame))
        return Shape("sharegpt", {"prompt": prompt, "response": response},
                     _chat_consumed(frame, "conversations", {"from", "value"}), "messages")
    if {"question", "answer"} <= cols and frame.schema["answer"] == pl.String and \
            frame.select(pl.col("answer").str.contains("####").any()).item():
        return Shape("gsm8k", {"prompt": _text(pl.col("question")), "response": pl.col("answer"),
                               "answer": gsm8k_answer(pl.col("answer"))}, {"question", "answer"})
    if {"code", "test_list"} <= cols and ({"text"} & cols or {"prompt"} & cols):
        return _mbpp(frame)
    if {"prompt", "test", "entry_point"} <= cols:
        return _humaneval(frame)
    if {"instruction", "instances"} <= cols:
        return _self_instruct()
    if {"instruction", "output"} <= cols:
        return Shape("alpaca", {"prompt": _join_input("instruction", "input" if "input" in cols else None),
                                "response": _text(pl.col("output"))}, {"instruction", "input", "output"})
    prompt_col = _first(frame, PROMPT_ALIASES)
    if prompt_col is None:
        return None
    response_col = _first(frame, RESPONSE_ALIASES)
    columns: dict[str, pl.Expr] = {}
    prompt_type = "text"
    if _is_messages(frame, prompt_col):
        columns["prompt"] = _messages_from(prompt_col, False)
        prompt_type = "messages"
    elif _is_sharegpt(frame, prompt_col):
        columns["prompt"] = _messages_from(prompt_col, True)
        prompt_type = "messages"
    else:
        columns["prompt"] = _text(pl.col(prompt_col))
    consumed = {prompt_col}
    if response_col:
        columns["response"] = _content_of(frame, response_col)
        consumed.add(response_col)
    if answer_col and answer_col != response_col:
        columns["answer"] = _text(pl.col(answer_col))
        consumed.add(answer_col)
    if "tests" in frame.columns:
        columns["tests"] = _tests_text(frame, "tests")
        consumed.add("tests")
    name = "prompt-response" if response_col else "prompt-only"
    return Shape(name, columns, consumed, prompt_type)


def _chat_consumed(frame: pl.DataFrame, column: str, known: set[str]) -> set[str]:
    """The chat column is consumed unless its messages carry more than role and content
    (name, tool_calls, ...): then it also stays in meta, so nothing is lost."""
    return {"system"} | ({column} if _fields(frame, column) <= known else set())


def _tests_text(frame: pl.DataFrame, column: str) -> pl.Expr:
    """Tests as text: a list of asserts becomes one assert per line."""
    if isinstance(frame.schema[column], pl.List):
        return pl.col(column).cast(pl.List(pl.String)).list.join("\n")
    return _text(pl.col(column))


def _curate_export(frame: pl.DataFrame) -> Shape:
    """curate's own canonical layout (an export being ingested again): every column maps back."""
    columns = {"prompt": _messages_from("prompt", False) if _is_messages(frame, "prompt") else _text(pl.col("prompt")),
               "response": _text(pl.col("response")), "id": _text(pl.col("id"))}
    for name in ("answer", "domain"):
        if name in frame.columns:
            columns[name] = _text(pl.col(name))
    if "tests" in frame.columns:
        columns["tests"] = _tests_text(frame, "tests")
    consumed = {"id", "prompt", "response", "answer", "tests", "domain", "meta"}
    return Shape("curate", columns, consumed, "messages" if _is_messages(frame, "prompt") else "text", meta="meta")


def _dpo(frame: pl.DataFrame) -> Shape:
    """Preference pairs: the prompt and the chosen reply become prompt/response, both sides stay in meta."""
    columns = {"response": _content_of(frame, "chosen")}
    consumed = set()
    prompt_type = "text"
    if "conversations" in frame.columns and _is_sharegpt(frame, "conversations"):
        columns["prompt"] = _with_system(_messages_from("conversations", True), frame)
        consumed |= {"conversations", "system"}
        prompt_type = "messages"
    elif "messages" in frame.columns and _is_messages(frame, "messages"):
        columns["prompt"] = _with_system(_messages_from("messages", False), frame)
        consumed |= {"messages", "system"}
        prompt_type = "messages"
    elif "prompt" in frame.columns:
        if _is_messages(frame, "prompt"):
            columns["prompt"] = _messages_from("prompt", False)
            prompt_type = "messages"
        else:
            columns["prompt"] = _text(pl.col("prompt"))
        consumed.add("prompt")
    else:
        # Anthropic HH style: each side is the whole dialogue; the prompt is what precedes the
        # last "Assistant:" turn of the chosen side.
        chosen = _text(pl.col("chosen"))
        marker = "\n\nAssistant:"
        head = chosen.str.extract(r"(?s)^(.*)\n\nAssistant:", 1)
        columns["prompt"] = head + pl.lit(marker)
        columns["response"] = chosen.str.extract(r"(?s)^.*\n\nAssistant:\s?(.*)$", 1)
    return Shape("dpo", columns, consumed, prompt_type, notes=["chosen and rejected are kept in meta"])


def _mbpp(frame: pl.DataFrame) -> Shape:
    prompt_col = "text" if "text" in frame.columns else "prompt"
    parts = []
    if "test_setup_code" in frame.columns:
        parts.append(_text(pl.col("test_setup_code")).fill_null(""))
    if "test_imports" in frame.columns:
        parts.append(pl.col("test_imports").list.join("\n").fill_null(""))
    parts.append(pl.col("test_list").list.join("\n"))
    tests = pl.concat_str([p for p in parts], separator="\n").str.strip_chars("\n")
    return Shape("mbpp", {"prompt": _text(pl.col(prompt_col)), "response": _text(pl.col("code")), "tests": tests},
                 {prompt_col, "code", "test_list", "test_setup_code", "test_imports"})


def _humaneval(frame: pl.DataFrame) -> Shape:
    """HumanEval: the prompt is the signature and docstring, the solution its body, the test a
    `def check(candidate)` that nothing calls. `entry_point` stays in meta: the code reward reads it
    to call `check(entry_point)` (docs/rl.md)."""
    columns = {"prompt": _text(pl.col("prompt")), "tests": _text(pl.col("test"))}
    if "canonical_solution" in frame.columns:
        columns["response"] = _text(pl.col("canonical_solution"))
    return Shape("humaneval", columns, {"prompt", "canonical_solution", "test"},
                 notes=["entry_point is kept in meta; the code reward calls check(entry_point)"])


def _self_instruct() -> Shape:
    """Self-instruct seed tasks: one row per (instruction, instance)."""

    def explode(chunk: pl.DataFrame) -> pl.DataFrame:
        out = chunk.explode("instances").with_columns(
            pl.col("instances").struct.field("input").alias("_input"),
            pl.col("instances").struct.field("output").alias("_output"),
        )
        return out.drop("instances")

    columns = {"prompt": _join_input("instruction", "_input"),
               "response": _text(pl.col("_output"))}
    return Shape("self-instruct", columns, {"instruction", "instances", "_input", "_output"}, prepare=explode)


def parse_map(items: list[str] | None) -> dict[str, str]:
    """`--map dst=src` options into {dst: src}; dst must be a canonical column."""
    mapping: dict[str, str] = {}
    for item in items or []:
        dst, sep, src = item.partition("=")
        dst, src = dst.strip(), src.strip()
        if not sep or not dst or not src:
            raise BadUsage(f"--map {item!r} is not DST=SRC", hint="e.g. --map prompt=question --map response=solution")
        if dst not in TARGETS:
            raise BadUsage(f"--map {item!r}: {dst!r} is not a canonical column", hint="targets: " + ", ".join(TARGETS))
        mapping[dst] = src
    return mapping


def source_expr(frame: pl.DataFrame, path: str) -> pl.Expr | None:
    """`a`, `a.b.c` (struct fields) or `a[0]` (list elements) as an expression, or None when `a`
    is absent (curate.catalog.source_paths)."""
    resolved = resolve_path(frame, path)
    return None if resolved is None else resolved.expr


def override(shape: Shape | None, frame: pl.DataFrame, mapping: dict[str, str]) -> Shape | None:
    """Apply `--map` on top of the detected shape (or alone when nothing was detected)."""
    if not mapping:
        return shape
    if shape is None:
        shape = Shape("mapped", {}, set())
    else:
        shape = Shape(shape.name + "+map", dict(shape.columns), set(shape.consumed), shape.prompt_type,
                      shape.prepare, list(shape.notes), dict(shape.consumed_fields), shape.meta)
    for dst, src in mapping.items():
        if is_template(src):  # its columns stay in meta: the joined text cannot give them back
            shape.columns[dst] = template_expr(frame, src, f"--map {dst}={src}")
            if dst == "prompt":
                shape.prompt_type = "text"
            continue
        resolved = resolve_path(frame, src, f"--map {dst}={src}")
        if resolved is None:
            raise BadUsage(f"--map {dst}={src}: the source has no column {column_of(src)!r}",
                           hint="columns: " + ", ".join(frame.columns))
        head, whole = resolved.head, not resolved.fields
        if dst == "prompt" and whole and (_is_messages(frame, head) or _is_sharegpt(frame, head)):
            shape.columns["prompt"] = _messages_from(head, _is_sharegpt(frame, head))
            shape.prompt_type = "messages"
        elif dst == "tests" and whole and isinstance(frame.schema[head], pl.List):
            shape.columns["tests"] = _tests_text(frame, head)
        elif isinstance(resolved.dtype, (pl.List, pl.Array, pl.Struct)):
            raise not_text_error(f"--map {dst}={src}", src, resolved.dtype)
        else:
            shape.columns[dst] = _text(resolved.expr)
            if dst == "prompt":
                shape.prompt_type = "text"
        if not resolved.fields:
            shape.consumed.add(head)
        elif len(resolved.fields) == 1 and isinstance(resolved.fields[0], str):
            shape.consumed_fields.setdefault(head, set()).add(resolved.fields[0])
        # a list element or a deeper path: the column stays in meta whole, so nothing is lost
    return shape


def consume_path(shape: Shape, path: str) -> None:
    """Mark what a source path uses: a whole column, or one field of a struct column (its other
    fields stay in meta). Deeper paths leave the column in meta whole: nothing is lost."""
    head, *rest = path.split(".")
    if not rest:
        shape.consumed.add(head)
    elif len(rest) == 1:
        shape.consumed_fields.setdefault(head, set()).add(rest[0])
