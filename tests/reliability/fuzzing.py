"""Fuzzed ingest: Hypothesis strategies for hostile input files, and the oracle every outcome must pass.

Used by `tests/reliability/test_fuzz_ingest.py` (a few hundred cases, fixed seed) and
`benchmarks/fuzz_ingest.py` (10,000 and more). The promise checked (docs/reliability.md):
every input ends as either a committed version whose rows come back unchanged through
`export` (JSON lines and Parquet), or a `CurateError` that names the file; never another
exception, never a half-written version, never a lock left held.
"""

from __future__ import annotations

import csv
import fcntl
import gzip
import io
import json
import math
import os
import random
import string
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
from hypothesis import strategies as st

from curate.catalog.export import export_version
from curate.catalog.ingest import IngestOptions, ingest
from curate.catalog.integrity import check_version
from curate.catalog.shapes import parse_map
from curate.catalog.versions import list_versions
from curate.catalog.workspace import Workspace
from curate.errors import CurateError

FIELDS = ("prompt", "response", "question", "answer", "instruction", "input", "output", "messages", "conversations",
          "text", "id", "domain", "meta", "tests", "chosen", "rejected", "solution", "content", "role", "a.b", "x y",
          "Ünï", "", "0")
SPECIAL = ("😀", "👩‍👩‍👧‍👦", "שלום", "مرحبا", "e\u0301\u0308", "\x00", "\u200b", "\ufeff", "\u2028", "\u202e",
           "\r\n", "\t", "\\", '"', "'", ",", "\n", "####", "{", "[", "null", "NaN", "🏳️‍🌈", "\U0010ffff", "Ω≈ç√")
SUFFIXES = (".jsonl", ".json", ".csv", ".tsv", ".parquet")
BOM = b"\xef\xbb\xbf"
LOCATED = ("line ", "row ", "item ")


# ---------------------------------------------------------------- strategies

def texts(max_size: int = 24) -> st.SearchStrategy[str]:
    """Any unicode, lone surrogates included, with the characters that break parsers over-represented."""
    plain = st.text(st.characters(codec=None, exclude_categories=()), max_size=max_size)
    return st.one_of(plain, st.lists(st.sampled_from(SPECIAL) | plain, max_size=4).map("".join))


def json_values() -> st.SearchStrategy[Any]:
    scalars = st.one_of(st.none(), st.booleans(), st.integers(-(2 ** 80), 2 ** 80),
                        st.floats(allow_nan=True, allow_infinity=True), texts())
    keys = st.sampled_from(FIELDS) | texts(8)
    return st.recursive(scalars, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(keys, inner, max_size=4),
                        max_leaves=10)


def rows() -> st.SearchStrategy[dict]:
    """One row: a plausible SFT or chat row, or any object (its fields may change type from row to row)."""
    message = st.fixed_dictionaries({"role": st.sampled_from(["user", "assistant", "system", "tool", ""]) | texts(6),
                                     "content": texts() | json_values()})
    plausible = st.fixed_dictionaries({"prompt": st.one_of(texts(), texts(), texts(), json_values())},
                                      optional={"response": texts() | st.none(), "answer": texts() | json_values(),
                                                "meta": json_values(), "domain": texts(6) | st.none()})
    chat = st.fixed_dictionaries({"messages": st.lists(message, max_size=4) | json_values()})
    anything = st.dictionaries(st.sampled_from(FIELDS) | texts(8), json_values(), max_size=6)
    return st.one_of(plausible, plausible, plausible, chat, anything)


@dataclass
class Case:
    """One generated input file and the options it is ingested with."""

    suffix: str
    data: bytes
    maps: list[str] = field(default_factory=list)
    recipe: str = ""  # how the bytes were made, for the report

    def __repr__(self) -> str:  # what Hypothesis prints for a failing example
        return f"Case({self.suffix!r}, {self.data[:300]!r}{'...' if len(self.data) > 300 else ''}, " \
               f"maps={self.maps!r}, recipe={self.recipe!r})"


def _dump(value: Any, ascii_only: bool) -> str:
    return json.dumps(value, ensure_ascii=ascii_only)


def _encode(text: str) -> bytes:
    return text.encode("utf-8", "surrogatepass")  # a lone surrogate becomes invalid UTF-8, as some tools write it


def _jsonl(items: list[dict], rng: random.Random) -> bytes:
    lines = [_dump(item, rng.random() < 0.5) for item in items]
    if lines and rng.random() < 0.15:  # a line that is JSON but not an object
        lines.insert(rng.randrange(len(lines) + 1), rng.choice(["[1, 2]", '"text"', "42", "null", "{}", "true"]))
    if lines and rng.random() < 0.15:
        lines.insert(rng.randrange(len(lines) + 1), "")  # a blank line
    newline = "\r\n" if rng.random() < 0.2 else "\n"
    return _encode(newline.join(lines) + (newline if rng.random() < 0.8 else ""))


def _json_array(items: list[dict], rng: random.Random) -> bytes:
    if rng.random() < 0.1:
        document: Any = {"data": items, "version": 1}
    elif rng.random() < 0.05:
        document = items[0] if items else 7
    else:
        document = items
    return _encode(json.dumps(document, ensure_ascii=rng.random() < 0.5, indent=rng.choice([None, 2])))


def _csv(items: list[dict], rng: random.Random, delimiter: str) -> bytes:
    header = list(dict.fromkeys(k for item in items for k in item))[:6] or ["prompt"]
    buffer = io.StringIO()
    writer = csv.writer(buffer, delimiter=delimiter, lineterminator="\r\n" if rng.random() < 0.2 else "\n")
    writer.writerow(header)
    for item in items:
        cells = ["" if item.get(k) is None else item[k] if isinstance(item.get(k), str) else
                 json.dumps(item[k], ensure_ascii=False) for k in header]
        if rng.random() < 0.2:  # a ragged row: fields missing or extra
            cells = cells[:rng.randrange(len(cells) + 1)] + [rng.choice(SPECIAL)] * rng.randrange(3)
        writer.writerow(cells)
    text = buffer.getvalue()
    if rng.random() < 0.1:  # a quote left open
        text = text.replace('"', "", 1)
    return _encode(text)


def _parquet(items: list[dict], rng: random.Random) -> bytes:
    try:
        table = pa.Table.from_pylist(items) if items else pa.table({"prompt": pa.array([], pa.string())})
    except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError, UnicodeEncodeError):
        keys = list(dict.fromkeys(k for item in items for k in item)) or ["prompt"]
        columns = {_encode(k).decode("utf-8", "replace"):  # a key may hold a lone surrogate too
                   pa.array([None if item.get(k) is None else _encode(json.dumps(item[k])).decode("utf-8", "replace")
                             for item in items], pa.string()) for k in keys}
        try:
            table = pa.table(columns)
        except (pa.ArrowInvalid, pa.ArrowTypeError, UnicodeEncodeError):
            table = pa.table({"prompt": pa.array(["fallback"])})
    except Exception:
        table = pa.table({"prompt": pa.array(["fallback"])})
    buffer = io.BytesIO()
    try:
        pq.write_table(table, buffer)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, UnicodeEncodeError):
        pq.write_table(pa.table({"prompt": pa.array(["fallback"])}), buffer)
    return buffer.getvalue()


def _mangle(data: bytes, rng: random.Random) -> tuple[bytes, str]:
    """Sometimes: a BOM, a cut, flipped bytes, or gzip around it."""
    notes = []
    if rng.random() < 0.1:
        data, _ = BOM + data, notes.append("bom")
    if data and rng.random() < 0.1:
        data, _ = data[:rng.randrange(len(data))], notes.append("cut")
    if data and rng.random() < 0.1:
        buf = bytearray(data)
        for _ in range(rng.randint(1, 4)):
            buf[rng.randrange(len(buf))] = rng.randrange(256)
        data, _ = bytes(buf), notes.append("flipped")
    return data, "+".join(notes)


@st.composite
def cases(draw) -> Case:
    kind = draw(st.sampled_from(["jsonl", "jsonl", "jsonl", "json", "csv", "tsv", "parquet", "bytes", "empty"]))
    items = draw(st.lists(rows(), max_size=8))
    rng = random.Random(draw(st.integers(0, 2 ** 32)))
    maps = draw(st.lists(st.builds(lambda d, s: f"{d}={s}",
                                   st.sampled_from(["prompt", "response", "answer", "tests", "domain", "id", "meta",
                                                    "bogus"]),
                                   st.sampled_from(FIELDS) | st.sampled_from(["messages[0].content", "meta.x", "a[9]"])),
                         max_size=2)) if draw(st.integers(0, 3)) == 0 else []
    if kind == "bytes":
        return Case(draw(st.sampled_from(SUFFIXES)), draw(st.binary(max_size=200)), maps, "random bytes")
    if kind == "empty":
        return Case(draw(st.sampled_from(SUFFIXES)), draw(st.sampled_from([b"", b"\n", BOM, b"\r\n\r\n", b" "])), maps,
                    "empty")
    if kind == "jsonl":
        data, suffix = _jsonl(items, rng), ".jsonl"
    elif kind == "json":
        data, suffix = _json_array(items, rng), ".json"
    elif kind in ("csv", "tsv"):
        data, suffix = _csv(items, rng, "," if kind == "csv" else "\t"), f".{kind}"
    else:
        data, suffix = _parquet(items, rng), ".parquet"
    data, notes = _mangle(data, rng)
    if kind != "parquet" and rng.random() < 0.05:
        data, suffix, notes = gzip.compress(data, mtime=0), suffix + ".gz", notes + "+gzip"
    return Case(suffix, data, maps, f"{kind} {len(items)} rows {notes}".strip())


def huge_field_cases(megabytes: int) -> list[Case]:
    """One row whose prompt is `megabytes` MB of mixed-width text, in each format."""
    unit = "abc déf 😀 שלום\n"
    text = unit * (megabytes * (1 << 20) // len(unit.encode()))
    row = {"prompt": text, "response": "ok"}
    rng = random.Random(0)
    return [Case(".jsonl", _jsonl([row], rng), recipe=f"{megabytes} MB field, jsonl"),
            Case(".json", json.dumps([row], ensure_ascii=False).encode(), recipe=f"{megabytes} MB field, json"),
            Case(".csv", _csv([row], random.Random(1), ","), recipe=f"{megabytes} MB field, csv"),
            Case(".parquet", _parquet([row], rng), recipe=f"{megabytes} MB field, parquet")]


# ---------------------------------------------------------------- the oracle

@dataclass
class Outcome:
    kind: str  # version | unchanged | error | traceback
    message: str = ""
    problems: list[str] = field(default_factory=list)  # broken promises (a traceback is one)
    located: bool = False  # the error names a line, row or item


@dataclass
class Tally:
    """Outcomes of a fuzzing run, for the report."""

    cases: int = 0
    kinds: Counter = field(default_factory=Counter)
    recipes: Counter = field(default_factory=Counter)
    located: int = 0
    failures: list[tuple[Case, Outcome]] = field(default_factory=list)
    errors: Counter = field(default_factory=Counter)  # error messages with the file name and numbers blanked

    def add(self, case: Case, outcome: Outcome) -> None:
        self.cases += 1
        self.kinds[outcome.kind] += 1
        self.recipes[case.recipe.split(" ")[0]] += 1
        self.located += outcome.located
        if outcome.kind == "error":
            self.errors[_shape_of(outcome.message)] += 1
        if outcome.problems:
            self.failures.append((case, outcome))


def _shape_of(message: str) -> str:
    first = message.splitlines()[0]
    return "".join("#" if c.isdigit() else c for c in first.split(" (")[0])[:90]


def _lock_is_free(ws: Workspace) -> bool:
    with open(ws.root / ".lock", "a+") as fh:
        try:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        fcntl.flock(fh.fileno(), fcntl.LOCK_UN)
    return not (ws.root / ".lock.owner").exists()


def _version_dirs(ws: Workspace) -> set[str]:
    return {p.relative_to(ws.shards_dir).as_posix() for p in ws.shards_dir.glob("*/v*")}


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    return a == b


def _exported_rows(version, folder: Path) -> list[str]:
    """What comes back through export, as JSON lines and as Parquet, compared with the stored rows."""
    problems = []
    stored = version.scan().collect()
    expected = stored.to_dicts()
    for row in expected:
        row["meta"] = None if row.get("meta") is None else json.loads(row["meta"])
    jsonl = folder / "export.jsonl"
    export_version(version, jsonl, overwrite=True)
    lines = jsonl.read_text(encoding="utf-8").split("\n")[:-1]  # not splitlines(): U+2028 may sit in a string
    got = [json.loads(line) for line in lines]
    if len(got) != len(expected):
        return [f"export wrote {len(got)} rows of {len(expected)}"]
    for index, (mine, theirs) in enumerate(zip(expected, got)):
        for key, value in mine.items():
            if not _same(value, theirs.get(key)):
                problems.append(f"row {index + 1}, {key}: stored {str(value)[:80]!r}, exported "
                                f"{str(theirs.get(key))[:80]!r}")
                break
        if problems:
            break
    parquet = folder / "export.parquet"
    export_version(version, parquet, overwrite=True)
    back = pl.read_parquet(parquet)
    if back.height != stored.height or not back.select(stored.columns).equals(stored):
        problems.append("the Parquet export differs from the stored rows")
    return problems


def run_case(ws: Workspace, case: Case, name: str, folder: Path) -> Outcome:
    """Ingest `case` as dataset `name` and check every promise; never raises for what the input does."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"input{case.suffix}"
    path.write_bytes(case.data)
    before = [v.ref for v in list_versions(ws)]
    dirs = _version_dirs(ws)
    try:
        report = ingest(ws, str(path), IngestOptions(name=name, mapping=parse_map(case.maps)))
    except CurateError as exc:
        outcome = Outcome("error", str(exc), located=any(w in exc.message for w in LOCATED))
        if path.name not in exc.message and not exc.message.startswith("--"):
            outcome.problems.append(f"the error does not name the file: {exc.message[:300]}")
        if [v.ref for v in list_versions(ws)] != before or _version_dirs(ws) != dirs:
            outcome.problems.append("a failed ingest changed the catalog or left a version folder")
    except (KeyboardInterrupt, SystemExit):
        raise
    except BaseException as exc:  # noqa: BLE001 - what the fuzzing looks for (a Rust panic is a BaseException)
        import traceback

        outcome = Outcome("traceback", f"{type(exc).__name__}: {exc}",
                          [f"traceback: {type(exc).__name__}: {str(exc)[:300]}\n{traceback.format_exc()[-1500:]}"])
    else:
        outcome = Outcome("unchanged" if report.unchanged else "version", report.version.ref)
        outcome.problems += check_version(report.version)
        try:
            outcome.problems += _exported_rows(report.version, folder)
        except Exception as exc:  # noqa: BLE001
            outcome.problems.append(f"export failed: {type(exc).__name__}: {str(exc)[:300]}")
    if list(ws.staging_root.iterdir()):
        outcome.problems.append("a staging folder was left behind: " + ", ".join(p.name for p in ws.staging_root.iterdir()))
    if not _lock_is_free(ws):
        outcome.problems.append("the catalog lock was left held")
    for leftover in folder.iterdir():
        leftover.unlink()
    return outcome


def fresh_name(index: int) -> str:
    return f"f{index}-" + "".join(random.Random(index).choice(string.ascii_lowercase) for _ in range(4))


def workspace(folder: Path) -> Workspace:
    os.makedirs(folder, exist_ok=True)
    return Workspace.open(folder / "ws", lock_timeout=5)
