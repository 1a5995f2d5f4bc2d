"""Gold answers that are a number with decorations, normalised to the number at ingest.

Word-problem sets write their reference answers for people: ASDiv has `9 (apples)`,
others `5 cm`, `$12.50`, `1,200`, `3/4 cup`, `45 °C`. A verifier compares numbers, so
ingest rewrites such an answer to the bare number (`9`, `5`, `12.50`, `1200`, `3/4`,
`45`) and keeps the text it replaced in `meta` under `answer_original`.

What counts: the whole answer is one number (thousands separators, a decimal part, a
sign, or a fraction `a/b`), optionally after a currency sign, optionally followed by `%`
and by a unit: words in parentheses, or a run of letters (`cm`, `square feet`, `km/h`).
Anything else is left as it is: two numbers (`25 (pens); 15 (pencils)`), a ratio
(`2:3`), LaTeX (`\\frac{\\sqrt{3}}{2}`), a number times a symbol (`2 pi`, `3 x`: a bare
one-letter "unit" other than m, g, s, l, h is read as a symbol, not a unit), or a number with
a scale word (`1.5 million`, `2 dozen`), which the bare number would misstate.

The same pattern serves the Python side (`curate.train.answers.reference_number`), so a
reward scores a reference that was ingested before this rule, or never ingested, alike.
The pattern avoids look-around so that polars (Rust regex) and Python `re` agree.
"""

from __future__ import annotations

import re

import polars as pl

META_KEY = "answer_original"
_DIGITS = r"(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?|\.\d+"
NUMBER = rf"-?(?:{_DIGITS})(?:\s*/\s*(?:{_DIGITS}))?"
GOLD_PATTERN = (rf"^\s*(?:[$£€¥₹]\s*)?({NUMBER})\s*%?\s*"
                r"(?:\(([^()\d]*)\)|([A-Za-z°][A-Za-z°²³ .'/-]*))?\s*\.?\s*$")
GOLD_RE = re.compile(GOLD_PATTERN)
SYMBOLS = ("pi", "π")  # `2 pi` is a number times a symbol, not 2 in some unit
UNIT_LETTERS = ("m", "g", "s", "l", "h")  # one-letter units; other single letters are variables
SCALES = ("hundred", "hundreds", "thousand", "thousands", "million", "millions", "billion", "billions",
          "trillion", "trillions", "dozen", "dozens")  # `1.5 million` is not 1.5
MINUS = "\u2212"


def _first_word(unit: str) -> str:
    return re.match(r"[a-z]*", unit.strip(" .").lower()).group(0)


def _is_symbol(unit: str) -> bool:
    """`pi`, or one letter that is not a unit (`x`): the number times a symbol, not a quantity."""
    unit = unit.strip(" .").lower()
    return unit in SYMBOLS or (len(unit) == 1 and unit not in UNIT_LETTERS)


def _clean_number(text: str) -> str:
    return re.sub(r"[\s,]", "", text)


def normalise_gold(text: str | None) -> str | None:
    """The bare number of a decorated numeric answer (`"9 (apples)"` -> `"9"`), or None when the
    answer is not one number (then it is left as it is)."""
    if text is None:
        return None
    match = GOLD_RE.match(text.replace(MINUS, "-"))
    if match is None:
        return None
    number, bracketed, bare = match.groups()
    if bare is not None and (_is_symbol(bare) or _first_word(bare) in SCALES):
        return None
    if bracketed is not None and _first_word(bracketed) in SCALES:
        return None
    return _clean_number(number)


def normalise_gold_expr(answer: pl.Expr) -> pl.Expr:
    """`normalise_gold` over a column: the bare number where the answer is one, else the answer unchanged."""
    groups = answer.str.replace_all(MINUS, "-", literal=True).str.extract_groups(GOLD_PATTERN)
    number = groups.struct.field("1")
    bare = groups.struct.field("3").str.strip_chars(" .").str.to_lowercase()
    bracketed = groups.struct.field("2").str.strip_chars(" .").str.to_lowercase()
    symbol = bare.is_in(list(SYMBOLS)) | ((bare.str.len_chars() == 1) & ~bare.is_in(list(UNIT_LETTERS)))
    scaled = (bare.str.extract(r"^([a-z]*)", 1).is_in(list(SCALES)).fill_null(False)
              | bracketed.str.extract(r"^([a-z]*)", 1).is_in(list(SCALES)).fill_null(False))
    clean = number.str.replace_all(r"[\s,]", "")
    keep = number.is_null() | symbol.fill_null(False) | scaled
    return pl.when(keep).then(answer).otherwise(clean)  # `then(answer)` first: the result keeps answer's name


def add_json_field(meta: pl.Expr, key: str, value: pl.Expr) -> pl.Expr:
    """`meta` (a JSON object as text) with `key: value` added where `value` is not null; unchanged elsewhere."""
    extra = pl.struct(value.alias(key)).struct.json_encode()
    base = meta.fill_null("{}").str.strip_chars()
    merged = pl.when(base == "{}").then(extra).otherwise(
        base.str.strip_suffix("}") + pl.lit(",") + extra.str.strip_prefix("{"))
    return pl.when(value.is_null()).then(meta).otherwise(merged)  # keeps meta's name


def normalise_answers(frame: pl.DataFrame) -> tuple[pl.DataFrame, int]:
    """Canonical rows with numeric gold answers normalised and the originals kept in meta; and how many changed.

    The original goes under `answer_original` (or `answer_original_` ... when the row's meta already
    has that key, so nothing in meta is overwritten)."""
    if "answer" not in frame.columns or frame.schema["answer"] != pl.String:
        return frame, 0
    normalised = normalise_gold_expr(pl.col("answer"))
    changed = frame.select((normalised != pl.col("answer")).fill_null(False).alias("c"))["c"]
    count = int(changed.sum())
    if count == 0:
        return frame, 0
    key = META_KEY
    taken = frame.filter(changed)["meta"]
    while taken.str.contains(f'"{key}":', literal=True).any():
        key += "_"
    original = pl.when(normalised != pl.col("answer")).then(pl.col("answer"))
    return frame.with_columns(add_json_field(pl.col("meta"), key, original).alias("meta"),
                              normalised.alias("answer")), count
