"""Readers: a file, folder or hub id in, a stream of polars frames out.

Every reader yields `Chunk`s of at most a few tens of MB, so ingest memory stays
bounded whatever the file size. Each chunk knows how to name its rows ("train.jsonl,
line 12") so that errors and drop reasons point at the source.

JSONL goes through pyarrow's JSON parser block by block (fast, and unlike polars it
never drops a key it did not see in the first rows). A block it refuses is parsed
again line by line in Python, which either names the bad line or builds the frame
with the conflicting field kept as JSON text.

Compressed files (gzip, zstd, bzip2, xz) are recognised by their first bytes, whatever
their name, and read through a decompressing stream; `train.jsonl.gz` takes its format
from the name under the compression suffix.
"""

from __future__ import annotations

import contextlib
import io
import json
import lzma
import mmap
import os
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.csv as pcsv
import pyarrow.json as pjson
import pyarrow.parquet as pq

from curate.errors import BadInput, BadUsage

BLOCK_BYTES = 32 << 20
SUFFIX_FORMATS = {
    ".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "json", ".csv": "csv", ".tsv": "tsv",
    ".parquet": "parquet", ".pq": "parquet",
}
# First bytes of the compressed formats curate reads (bzip2: "BZh", the block size, the block magic).
COMPRESSIONS = ((b"\x1f\x8b", "gzip"), (b"\x28\xb5\x2f\xfd", "zstd"), (b"\xfd7zXZ\x00", "xz"))
BZIP2 = re.compile(rb"BZh[1-9]1AY&SY")
ARCHIVES = ((b"PK\x03\x04", "a zip archive", "unzip FILE"), (b"7z\xbc\xaf\x27\x1c", "a 7-Zip archive", "7z x FILE"),
            (b"\x04\x22\x4d\x18", "lz4-compressed", "lz4 -d FILE"))
SUFFIX_COMPRESSIONS = {".gz": "gzip", ".gzip": "gzip", ".zst": "zstd", ".zstd": "zstd", ".bz2": "bz2", ".xz": "xz"}
COMPRESSED_SUFFIXES = {*SUFFIX_COMPRESSIONS, ".zip", ".7z", ".lz4"}
SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")


@dataclass
class Chunk:
    frame: pl.DataFrame
    source: str
    unit: str  # "line", "row" or "item"
    positions: np.ndarray  # 1-based position of each row in its source, in `unit`s
    # JSON sources: the source text of the rows at these indices, as written (a parsed frame
    # unifies nested objects: a key one row lacks is a null there; ingest keeps meta verbatim)
    raw: Callable[[np.ndarray], pl.Series] | None = None

    def where(self, index: int) -> str:
        return f"{self.source}, {self.unit} {int(self.positions[index])}"


def open_source(spec: str, *, fmt: str | None = None, split: str | None = None) -> Iterator[Chunk]:
    """Yield chunks from a file, a folder of files, a `save_to_disk` folder, a URL (fsspec) or a hub id."""
    from curate.catalog.remote import is_url, read_url

    if is_url(spec):
        return read_url(spec, lambda local: open_source(str(local), fmt=fmt, split=split))
    path = Path(spec).expanduser()
    if path.is_dir():
        if (path / "dataset_info.json").exists() or (path / "dataset_dict.json").exists() or (path / "state.json").exists():
            return _read_hf_disk(path, split)
        files = sorted(p for p in path.iterdir() if p.suffix.lower() in SUFFIX_FORMATS and p.is_file())
        if not files:
            raise BadInput(f"{path} is a folder with no data files",
                           hint="pass a .jsonl, .json, .csv or .parquet file, or a folder made by save_to_disk")
        return _chain(files, fmt)
    if path.exists() or os.path.lexists(path):
        return _read_file(path, fmt or _detect_format(path))
    if _looks_like_hub_id(spec) and not _looks_like_file(spec):
        return _read_hub(spec, split)
    raise BadInput(f"{spec}: no such file or folder", hint=_missing_hint(path))


def _looks_like_file(spec: str) -> bool:
    """A name with a data-file or compression suffix (`bad/nonexistent.jsonl`) is a path, never a hub id."""
    return any(s.lower() in SUFFIX_FORMATS or s.lower() in COMPRESSED_SUFFIXES for s in Path(spec).suffixes)


def _missing_hint(path: Path) -> str:
    folder = path.parent
    if str(folder) not in ("", ".") and not folder.is_dir():
        return f"the folder {folder} does not exist either; check the path"
    near = sorted(p.name for p in (folder if str(folder) else Path(".")).iterdir()
                  if p.is_file() and any(s.lower() in SUFFIX_FORMATS for s in p.suffixes))[:8]
    return ("data files there: " + ", ".join(near)) if near else "check the path; hub ids look like owner/name"


def _chain(files: list[Path], fmt: str | None) -> Iterator[Chunk]:
    for file in files:
        yield from _read_file(file, fmt or _detect_format(file))


def _looks_like_hub_id(spec: str) -> bool:
    parts = spec.split("/")
    return len(parts) == 2 and all(parts) and not spec.startswith((".", "~")) and "\\" not in spec


def _detect_format(path: Path) -> str:
    suffixes = [s.lower() for s in path.suffixes]
    fmt = next((SUFFIX_FORMATS[s] for s in reversed(suffixes) if s in SUFFIX_FORMATS), None)
    if fmt is None and compression_of(path):
        fmt = _format_from_content(path)
    if fmt == "json":
        fmt = _json_or_lines(path)
    if fmt is None:
        raise BadInput(f"{path}: cannot tell the format from the name",
                       hint="name it .jsonl, .json, .csv, .tsv or .parquet, or pass --format")
    return fmt


def _format_from_content(path: Path) -> str | None:
    """A compressed file named without its format (`data.gz`): JSON when it opens with { or [."""
    kind = compression_of(path)
    with _open_data(path, kind) as fh, _decompressing(path, kind):
        head = fh.read(4096).lstrip()
    return "json" if head[:1] in (b"{", b"[") else None


def compression_of(path: Path) -> str | None:
    """gzip, zstd, bz2 or xz when the file starts like one, else None; an archive curate cannot
    read as a stream (zip, 7z, lz4) is a BadInput that says how to unpack it. A pipe or FIFO
    cannot be peeked at without losing what was read: its name's suffix decides."""
    if not path.is_file():
        return SUFFIX_COMPRESSIONS.get(path.suffix.lower())
    with _open_binary(path) as fh:
        head = fh.read(16)
    for magic, kind in COMPRESSIONS:
        if head.startswith(magic):
            return kind
    if BZIP2.match(head):
        return "bz2"
    for magic, what, command in ARCHIVES:
        if head.startswith(magic):
            raise BadInput(f"{path}: the file is {what}, which curate does not read directly",
                           hint=f"unpack it first (`{command}`) and ingest the file inside; curate reads "
                                ".gz, .zst, .bz2 and .xz files as they are")
    return None


def _json_or_lines(path: Path) -> str:
    """Many ".json" files are JSON lines. A file is one JSON document when it starts with "[",
    or when its first line is not a whole JSON value by itself (a pretty-printed object);
    a one-line object is a document only if it is the file's only line."""
    kind = compression_of(path)
    with _open_data(path, kind) as fh, _decompressing(path, kind):
        first = fh.readline()
        while first and not first.strip():
            first = fh.readline()
        more = any(line.strip() for line in fh)
    if first.lstrip().startswith(b"["):
        return "json"
    try:
        json.loads(first)
    except (json.JSONDecodeError, UnicodeDecodeError):
        return "json"
    return "jsonl" if more else "json"


def _open_binary(path: Path):
    try:
        if path.is_dir():
            raise IsADirectoryError(21, "is a folder", str(path))
        return open(path, "rb")
    except PermissionError as exc:
        raise BadInput(f"{path}: permission denied, cannot read the file",
                       hint="check the file's permissions (chmod +r) or copy it somewhere readable") from exc
    except OSError as exc:
        raise BadInput(f"{path}: cannot read the file ({exc.strerror or exc})") from exc


def _open_data(path: Path, kind: str | None = ""):
    """The file's bytes, decompressed when it is compressed (`kind` "": find out)."""
    kind = compression_of(path) if kind == "" else kind
    if kind is None:
        return _open_binary(path)
    if kind == "xz":
        return lzma.open(path)
    return io.BufferedReader(pa.input_stream(str(path), compression=kind))


def _arrow_input(path: Path, kind: str | None):
    """What pyarrow's readers take: the path itself, or a decompressing stream (never a guess by name)."""
    if kind is None:
        return pa.input_stream(str(path), compression=None)
    return lzma.open(path) if kind == "xz" else pa.input_stream(str(path), compression=kind)


def _corrupt(path: Path, kind: str, exc: Exception) -> BadInput:
    test = "gzip -t" if kind == "gzip" else f"{kind} -t"
    return BadInput(f"{path.name}: the {kind} data is corrupt or cut short ({str(exc)[:200]})",
                    hint=f"check the file (e.g. `{test} FILE`) or download it again")


DECOMPRESS_ERRORS = (pa.ArrowInvalid, pa.ArrowIOError, EOFError, lzma.LZMAError, OSError)


@contextlib.contextmanager
def _decompressing(path: Path, kind: str | None) -> Iterator[None]:
    """Read errors of a compressed file as a BadInput that says the file is corrupt."""
    try:
        yield
    except DECOMPRESS_ERRORS as exc:
        if kind is None or isinstance(exc, BadInput):
            raise
        raise _corrupt(path, kind, exc) from exc


def _utf8_hint(compressed: str | None) -> str:
    if compressed:
        return (f"the file is {compressed}-compressed and its text is not UTF-8: decompress it, re-encode the text "
                "as UTF-8 (e.g. `iconv -f latin1 -t utf-8`), and ingest that")
    return "re-encode the file as UTF-8, e.g. `iconv -f latin1 -t utf-8 FILE > FILE.utf8`"


def _read_file(path: Path, fmt: str) -> Iterator[Chunk]:
    readers = {"jsonl": _read_jsonl, "json": _read_json_array, "csv": _read_csv, "tsv": _read_csv,
               "parquet": _read_parquet}
    if fmt not in readers:
        raise BadUsage(f"unknown format {fmt!r}", hint="formats: " + ", ".join(sorted(readers)))
    kind = compression_of(path)
    if fmt == "tsv":
        return _read_csv(path, kind, delimiter="\t")
    return readers[fmt](path, kind)


# ---------------------------------------------------------------- JSON lines

def _blocks(fh, size: int, mappable: bool = True) -> Iterator[memoryview | bytes]:
    """Blocks of whole lines, each about `size` bytes; zero-copy views when the file can be mapped."""
    try:
        mapped = mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) if mappable else None
    except (ValueError, OSError):  # a pipe, or an empty file
        mapped = None
    if mapped is None:
        while block := fh.read(size):
            if not block.endswith(b"\n"):
                block += fh.readline()
            yield block
        return
    # The map is closed when the last view of it is garbage: parsed frames own their own memory.
    view = memoryview(mapped)
    pos, total = 0, len(mapped)
    while pos < total:
        end = min(pos + size, total)
        if end < total:
            newline = mapped.find(b"\n", end - 1)
            end = total if newline < 0 else newline + 1
        yield view[pos:end]
        pos = end


def _read_jsonl(path: Path, kind: str | None = None) -> Iterator[Chunk]:
    name = path.name
    line_offset = 0
    with _open_data(path, kind) as fh:
        try:
            for block in _blocks(fh, BLOCK_BYTES, mappable=kind is None):
                data = np.frombuffer(block, dtype=np.uint8)
                count = int(np.count_nonzero(data == 10)) + (0 if data[-1] == 10 else 1)  # lines in the block
                frame, lines = _parse_jsonl_block(block, data, name, count, line_offset, kind)
                line_offset += count
                del data
                if frame.height:
                    yield Chunk(frame, name, "line", lines, raw=_object_lines(block))
        except DECOMPRESS_ERRORS as exc:
            if kind is not None:
                raise _corrupt(path, kind, exc) from exc
            raise BadInput(f"{path}: read failed ({getattr(exc, 'strerror', None) or exc})") from exc


def _object_lines(block) -> Callable[[np.ndarray], pl.Series]:
    """The text of the block's rows at these indices (row i is the i-th non-blank line), cut out
    of the block by its newline offsets without a Python object per line."""

    def pick(rows: np.ndarray) -> pl.Series:
        data = np.frombuffer(block, dtype=np.uint8)
        ends = np.flatnonzero(data == 10) + 1
        if not len(ends) or ends[-1] != len(data):
            ends = np.append(ends, len(data))
        offsets = np.concatenate(([0], ends)).astype(np.int32)  # a block is far below 2 GiB
        lines = pl.Series(pl.from_arrow(pa.StringArray.from_buffers(len(ends), pa.py_buffer(offsets),
                                                                    pa.py_buffer(block))))
        if not np.all(data[offsets[:-1]] == ord("{")):  # blank lines, or objects after leading spaces
            lines = lines.filter(lines.str.strip_chars() != "")
        return lines.gather(rows)

    return pick


def _check_utf8(block: bytes, name: str, line_offset: int, compressed: str | None = None) -> None:
    try:
        block.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = line_offset + block.count(b"\n", 0, exc.start) + 1
        raise BadInput(f"{name}, line {line}: not valid UTF-8 (byte 0x{block[exc.start]:02x})",
                       hint=_utf8_hint(compressed)) from None


def check_surrogates(record: dict, where: str) -> None:
    """JSON may spell a lone UTF-16 surrogate (`"\\ud800"`), which is no character: no UTF-8 text,
    so no Parquet string, can hold it. Name the field and the line instead of failing later."""
    try:
        json.dumps(record, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        field = next((key for key, value in record.items()
                      if _has_surrogate(json.dumps(value, ensure_ascii=False))), "?")
        raise BadInput(f"{where}: field {field!r} holds a lone UTF-16 surrogate escape (\\ud800-\\udfff without "
                       "its pair), which is not a character and cannot be stored as text",
                       hint="fix or delete that row; a high surrogate \\ud800-\\udbff must be followed by a low one "
                            "\\udc00-\\udfff (or replace the escape with \\ufffd)") from None


def _has_surrogate(text: str) -> bool:
    try:
        text.encode("utf-8")
        return False
    except UnicodeEncodeError:
        return True


def _line_numbers(data: np.ndarray, newlines: np.ndarray, line_offset: int) -> np.ndarray:
    """1-based line numbers of the non-blank lines in a block (`newlines`: positions of b"\\n")."""
    count = len(newlines) + (0 if data[-1] == 10 else 1)
    starts = np.concatenate(([0], newlines + 1))[:count]
    if np.all(data[starts[starts < len(data)]] == ord("{")):  # the usual case: every line opens an object
        return np.arange(line_offset + 1, line_offset + count + 1)
    lines = bytes(data).split(b"\n")[:count]
    return np.array([line_offset + i + 1 for i, line in enumerate(lines) if line.strip()], dtype=np.int64)


def _parse_jsonl_block(block, data: np.ndarray, name: str, count: int, line_offset: int,
                       compressed: str | None = None) -> tuple[pl.DataFrame, np.ndarray]:
    """The block's rows and their 1-based line numbers (`count`: lines in the block, blank ones included)."""
    try:
        table = pjson.read_json(pa.BufferReader(pa.py_buffer(block)),
                                read_options=pjson.ReadOptions(block_size=4 << 20))
        if data.max() >= 128:
            table.validate(full=True)  # pyarrow parses invalid UTF-8 without complaint
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, UnicodeDecodeError):
        table = None  # find the line, or cope with mixed types, the slow way
    if table is not None and table.num_rows == count:  # the usual case: one object on every line, none blank
        return pl.from_arrow(table), np.arange(line_offset + 1, line_offset + count + 1)
    lines = _line_numbers(data, np.flatnonzero(data == 10), line_offset)
    if table is not None and table.num_rows == len(lines):  # otherwise an object spans lines, or a line holds two
        return pl.from_arrow(table), lines
    block = bytes(block)
    _check_utf8(block, name, line_offset, compressed)
    surrogates = SURROGATE_ESCAPE.search(block) is not None  # pyarrow refuses lone ones, json.loads does not
    records = []
    for number, raw in zip(lines, (line for line in block.split(b"\n") if line.strip())):
        try:
            record = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise BadInput(f"{name}, line {number}: malformed JSON ({exc.msg} at column {exc.colno})",
                           hint="fix or delete that line; each line must be one JSON object") from None
        if not isinstance(record, dict):
            raise BadInput(f"{name}, line {number}: expected a JSON object, got {type(record).__name__}",
                           hint="each line must be one JSON object such as {\"prompt\": ..., \"response\": ...}")
        if surrogates:
            check_surrogates(record, f"{name}, line {number}")
        records.append(record)
    return frame_from_records(records), lines


def frame_from_records(records: list[dict]) -> pl.DataFrame:
    """A frame from Python dicts; a field whose type varies across rows becomes JSON text."""
    if not records:
        return pl.DataFrame()
    try:
        return pl.from_arrow(pa.Table.from_pylist(records))
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        pass
    keys = list(dict.fromkeys(k for r in records for k in r))
    columns = {}
    for key in keys:
        values = [r.get(key) for r in records]
        try:
            columns[key] = pa.array(values)
        except (pa.ArrowInvalid, pa.ArrowTypeError):
            columns[key] = pa.array([None if v is None else v if isinstance(v, str) else json.dumps(v)
                                     for v in values], pa.string())
    return pl.from_arrow(pa.table(columns))


# ---------------------------------------------------------------- other files

def _read_json_array(path: Path, kind: str | None = None) -> Iterator[Chunk]:
    with _open_data(path, kind) as fh, _decompressing(path, kind):
        raw = fh.read()
    try:
        data = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        raise BadInput(f"{path.name}, line {line}: not valid UTF-8 (byte 0x{raw[exc.start]:02x})",
                       hint=_utf8_hint(kind)) from None
    except json.JSONDecodeError as exc:
        raise BadInput(f"{path.name}, line {exc.lineno}: malformed JSON ({exc.msg} at column {exc.colno})",
                       hint="fix the JSON; a .json file holds one array of objects (use .jsonl for one object a line)") from None
    if isinstance(data, dict):
        data = next((v for v in data.values() if isinstance(v, list)), [data])
    if not isinstance(data, list):
        raise BadInput(f"{path.name}: expected a JSON array of objects, got {type(data).__name__}")
    bad = next((i for i, item in enumerate(data) if not isinstance(item, dict)), None)
    if bad is not None:
        raise BadInput(f"{path.name}, item {bad + 1}: expected a JSON object, got {type(data[bad]).__name__}")
    if SURROGATE_ESCAPE.search(raw):
        for index, item in enumerate(data):
            check_surrogates(item, f"{path.name}, item {index + 1}")
    step = 50_000
    for start in range(0, len(data), step):
        part = data[start:start + step]
        yield Chunk(frame_from_records(part), path.name, "item", np.arange(start + 1, start + len(part) + 1),
                    raw=lambda rows, part=part: pl.Series([json.dumps(part[int(i)], ensure_ascii=False) for i in rows],
                                                          dtype=pl.String))


def _read_csv(path: Path, kind: str | None = None, delimiter: str = ",") -> Iterator[Chunk]:
    with _open_data(path, kind) as fh, _decompressing(path, kind):
        header = fh.readline()
    if not header.strip():
        raise BadInput(f"{path.name}: the file is empty", hint="a CSV file needs a header line and rows")
    try:
        names = pcsv.read_csv(io.BytesIO(header), parse_options=pcsv.ParseOptions(delimiter=delimiter)).column_names
    except pa.ArrowInvalid as exc:
        raise BadInput(f"{path.name}, line 1: cannot read the CSV header ({exc})") from None
    convert = pcsv.ConvertOptions(column_types={n: pa.string() for n in names}, strings_can_be_null=False)
    try:
        reader = pcsv.open_csv(_arrow_input(path, kind), read_options=pcsv.ReadOptions(block_size=BLOCK_BYTES),
                               parse_options=pcsv.ParseOptions(delimiter=delimiter, newlines_in_values=True),
                               convert_options=convert)
        row = 0
        for batch in reader:
            yield Chunk(pl.from_arrow(batch), path.name, "row", np.arange(row + 1, row + batch.num_rows + 1))
            row += batch.num_rows
    except pa.ArrowInvalid as exc:
        message = str(exc)
        if "UTF8" in message or "utf8" in message.lower():
            line = _first_invalid_utf8_line(path, kind)
            where = f"{path.name}, line {line}" if line else path.name
            raise BadInput(f"{where}: not valid UTF-8", hint=_utf8_hint(kind)) from None
        raise BadInput(f"{path.name}: malformed CSV ({message})", hint="check quoting and the number of fields") from None
    except DECOMPRESS_ERRORS as exc:
        if kind is None or isinstance(exc, BadInput):
            raise
        raise _corrupt(path, kind, exc) from exc


def _first_invalid_utf8_line(path: Path, kind: str | None = None) -> int | None:
    with _open_data(path, kind) as fh, _decompressing(path, kind):
        for number, line in enumerate(fh, start=1):
            try:
                line.decode("utf-8")
            except UnicodeDecodeError:
                return number
    return None


def _read_parquet(path: Path, kind: str | None = None) -> Iterator[Chunk]:
    if kind is not None:
        raise BadInput(f"{path.name}: a {kind}-compressed Parquet file",
                       hint="Parquet compresses its own pages: decompress the file first and ingest the .parquet")
    try:
        parquet = pq.ParquetFile(path)
    except (pa.ArrowInvalid, OSError) as exc:
        raise BadInput(f"{path.name}: not a readable Parquet file ({exc})") from None
    row = 0
    for batch in parquet.iter_batches(batch_size=65_536):
        yield Chunk(pl.from_arrow(batch), path.name, "row", np.arange(row + 1, row + batch.num_rows + 1))
        row += batch.num_rows


def _read_hf_disk(path: Path, split: str | None) -> Iterator[Chunk]:
    import datasets

    try:
        loaded = datasets.load_from_disk(str(path))
    except Exception as exc:  # datasets raises many types here
        raise BadInput(f"{path}: not a readable `save_to_disk` folder ({exc})") from None
    if isinstance(loaded, datasets.DatasetDict):
        split = split or ("train" if "train" in loaded else None)
        if split not in loaded:
            raise BadUsage(f"{path} holds splits {sorted(loaded)}", hint="pick one with --split NAME")
        loaded = loaded[split]
    table = loaded.with_format("arrow")
    for start in range(0, len(table), 65_536):
        batch = table[start:start + 65_536]
        yield Chunk(pl.from_arrow(batch), path.name, "row", np.arange(start + 1, start + batch.num_rows + 1))


def _read_hub(spec: str, split: str | None) -> Iterator[Chunk]:
    import datasets

    try:
        stream = datasets.load_dataset(spec, split=split or "train", streaming=True)
        iterator = iter(stream)
        first = next(iterator, None)
    except Exception as exc:  # offline, gated, missing: all surface here
        raise BadInput(
            f"{spec}: could not load it from the hub ({type(exc).__name__}: {str(exc)[:300]})",
            hint="check the id and your network; offline, download the files elsewhere and ingest them by path",
        ) from None
    if first is None:
        return
    records, row = [first], 0
    for item in iterator:
        records.append(item)
        if len(records) == 10_000:
            yield Chunk(frame_from_records(records), spec, "row", np.arange(row + 1, row + len(records) + 1))
            row += len(records)
            records = []
    if records:
        yield Chunk(frame_from_records(records), spec, "row", np.arange(row + 1, row + len(records) + 1))
