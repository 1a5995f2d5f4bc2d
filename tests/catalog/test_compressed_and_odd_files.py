"""Issue 16.9 and 16.10: compressed files, lone surrogates and missing paths get read or named clearly."""

from __future__ import annotations

import bz2
import gzip
import json
import lzma
import zipfile

import pyarrow as pa
import pytest

from curate.catalog import readers
from curate.errors import BadInput

from ._helpers import catalog_state, ingest_file, rows_of

ROWS = [{"prompt": f"What is {i} + 1?", "response": f"{i + 1}", "domain": "math"} for i in range(300)]
JSONL = "".join(json.dumps(r) + "\n" for r in ROWS).encode()
CSV = ("prompt,response,domain\n" + "".join(f"\"{r['prompt']}\",{r['response']},math\n" for r in ROWS)).encode()


def zstd(data: bytes) -> bytes:
    sink = pa.BufferOutputStream()
    with pa.CompressedOutputStream(sink, "zstd") as out:
        out.write(data)
    return sink.getvalue().to_pybytes()


COMPRESS = {"gz": gzip.compress, "zst": zstd, "bz2": bz2.compress, "xz": lzma.compress}


@pytest.mark.parametrize("suffix", sorted(COMPRESS))
def test_compressed_jsonl_reads_like_the_plain_file(ws, tmp_path, suffix):
    path = tmp_path / f"pool.jsonl.{suffix}"
    path.write_bytes(COMPRESS[suffix](JSONL))
    version = ingest_file(ws, path, "pool").version
    rows = sorted(rows_of(version), key=lambda r: int(r["response"]))
    assert [(r["prompt"], r["response"], r["domain"]) for r in rows] == \
        [(r["prompt"], r["response"], r["domain"]) for r in ROWS]


@pytest.mark.parametrize("name, data", [
    ("pool.csv.gz", gzip.compress(CSV)),
    ("pool.tsv.zst", zstd(CSV.replace(b",", b"\t"))),
    ("pool.json.gz", gzip.compress(json.dumps(ROWS).encode())),  # a JSON array
    ("pool.gz", gzip.compress(JSONL)),  # no format under the compression: the content says JSON lines
    ("pool.jsonl", gzip.compress(JSONL)),  # compressed but named as plain: the first bytes decide
    ("pool.jsonl.gz", JSONL),  # named compressed but plain: read as it is
])
def test_csv_tsv_json_and_misnamed_files(ws, tmp_path, name, data):
    path = tmp_path / name
    path.write_bytes(data)
    assert ingest_file(ws, path, "pool").version.rows == len(ROWS)


def test_a_cut_short_gzip_says_so_and_never_suggests_iconv(ws, tmp_path):
    for name, data in (("cut.jsonl.gz", gzip.compress(JSONL)[:900]), ("cut.csv.gz", gzip.compress(CSV)[:500])):
        path = tmp_path / name
        path.write_bytes(data)
        before = catalog_state(ws)
        with pytest.raises(BadInput) as error:
            ingest_file(ws, path, "cut")
        assert "gzip data is corrupt or cut short" in error.value.message and "gzip -t" in error.value.hint
        assert "iconv" not in str(error.value)
        assert catalog_state(ws) == before


def test_non_utf8_text_inside_gzip_says_to_decompress_first(ws, tmp_path):
    path = tmp_path / "latin.jsonl.gz"
    path.write_bytes(gzip.compress('{"prompt": "café", "response": "x"}\n'.encode("latin-1")))
    with pytest.raises(BadInput) as error:
        ingest_file(ws, path, "latin")
    assert "latin.jsonl.gz, line 1: not valid UTF-8 (byte 0xe9)" in error.value.message
    assert "decompress it" in error.value.hint and "FILE > FILE.utf8" not in error.value.hint


def test_an_archive_says_how_to_unpack_it(ws, tmp_path):
    path = tmp_path / "pool.zip"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("pool.jsonl", JSONL)
    with pytest.raises(BadInput) as error:
        ingest_file(ws, path, "pool")
    assert "zip archive" in error.value.message and "unzip" in error.value.hint


@pytest.mark.parametrize("name, text, where", [
    ("s.jsonl", '{"prompt": "ok", "response": "y"}\n{"prompt": "a\\ud800b", "response": "y"}\n', "s.jsonl, line 2"),
    ("s.json", '[{"prompt": "ok", "response": "y"}, {"prompt": "a", "response": "b\\udc00"}]', "s.json, item 2"),
])
def test_a_lone_surrogate_names_the_file_line_and_field(ws, tmp_path, name, text, where):
    path = tmp_path / name
    path.write_text(text)
    before = catalog_state(ws)
    with pytest.raises(BadInput) as error:
        ingest_file(ws, path, "s")
    field = "prompt" if name.endswith("jsonl") else "response"
    assert error.value.message.startswith(f"{where}: field '{field}' holds a lone UTF-16 surrogate")
    assert catalog_state(ws) == before


def test_a_surrogate_pair_is_a_character(ws, tmp_path):
    path = tmp_path / "emoji.jsonl"
    path.write_text('{"prompt": "smile \\ud83d\\ude00", "response": "y"}\n{"prompt": "x", "response": 1}\n'
                    '{"prompt": "x", "response": "z"}\n')  # mixed types: the slow path, where the check runs
    rows = rows_of(ingest_file(ws, path, "emoji").version)
    assert "smile \U0001F600" in {r["prompt"] for r in rows}


@pytest.mark.parametrize("spec", ["bad/nonexistent.jsonl", "data/train.csv.gz", "nope.parquet"])
def test_a_missing_path_is_a_missing_file_not_a_hub_id(tmp_path, monkeypatch, spec):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(readers, "_read_hub", lambda *a: pytest.fail("tried the hub"))
    with pytest.raises(BadInput) as error:
        readers.open_source(spec)
    assert error.value.message == f"{spec}: no such file or folder"


def test_a_missing_file_lists_the_data_files_next_to_it(tmp_path, monkeypatch):
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "train.jsonl").write_text("{}\n")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(BadInput) as error:
        readers.open_source("data/trian.jsonl")
    assert "train.jsonl" in error.value.hint
    with pytest.raises(BadInput) as error:
        readers.open_source("nodir/x.jsonl")
    assert "the folder nodir does not exist" in error.value.hint


def test_owner_name_is_still_a_hub_id(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    asked = []
    monkeypatch.setattr(readers, "_read_hub", lambda spec, split: asked.append(spec) or iter(()))
    readers.open_source("openai/gsm8k")
    readers.open_source("org/set-v0.2")
    assert asked == ["openai/gsm8k", "org/set-v0.2"]
