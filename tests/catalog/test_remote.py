"""`curate ingest URL`: sources read through fsspec (here its in-memory filesystem; no network)."""

from __future__ import annotations

import json

import fsspec
import pytest

from curate.catalog.ingest import IngestOptions, ingest
from curate.errors import BadInput, BadUsage


@pytest.fixture
def memory():
    fs = fsspec.filesystem("memory")
    yield fs
    for path in fs.find("/i13"):
        fs.rm(path)


def test_a_url_is_ingested_like_a_local_file(ws, memory):
    rows = [{"question": f"What is {i} + {i}?", "answer": f"{i} + {i} = {2 * i}\n#### {2 * i}"} for i in range(4)]
    with memory.open("/i13/pool.jsonl", "w") as fh:
        fh.write("".join(json.dumps(r) + "\n" for r in rows))
    report = ingest(ws, "memory://i13/pool.jsonl", IngestOptions(name="remote"))
    assert report.version.rows == 4 and report.shape == "gsm8k"
    assert report.version.scan().collect()["answer"].to_list() == ["0", "2", "4", "6"]


def test_errors_name_the_url(ws, memory):
    with memory.open("/i13/bad.jsonl", "w") as fh:
        fh.write('{"question": "ok", "answer": "x"}\n{broken\n')
    with pytest.raises(BadInput, match=r"memory://i13/bad.jsonl, line 2"):
        ingest(ws, "memory://i13/bad.jsonl", IngestOptions(name="bad"))
    with pytest.raises(BadInput, match="memory://i13/missing.jsonl: no such file"):
        ingest(ws, "memory://i13/missing.jsonl", IngestOptions(name="missing"))
    with pytest.raises(BadUsage, match="fsspec cannot open nosuchfs:// URLs"):
        ingest(ws, "nosuchfs://bucket/x.jsonl", IngestOptions(name="x"))


def test_a_parquet_url_keeps_its_name(ws, memory):
    """The copy keeps the file's name, so format (and compression) detection work as for a local file."""
    import polars as pl

    with memory.open("/i13/pool.parquet", "wb") as fh:
        pl.DataFrame({"prompt": ["a", "b"], "response": ["x", "y"]}).write_parquet(fh)
    assert ingest(ws, "memory://i13/pool.parquet", IngestOptions(name="pq")).version.rows == 2
