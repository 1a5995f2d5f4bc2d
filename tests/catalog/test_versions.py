"""Immutable versions: names, references, numbering, lookup errors, streaming reads and content hashes."""

from __future__ import annotations

import polars as pl
import pytest

from curate.catalog.versions import (
    DatasetRef,
    Lineage,
    ShardWriter,
    check_name,
    commit_version,
    lineage_of,
    list_versions,
    parse_ref,
    resolve,
)
from curate.errors import BadUsage, NotFound

from ._helpers import ingest_rows, rows_of, write_jsonl


@pytest.mark.parametrize("name", ["gsm8k", "a", "A1", "my_data.v2-final", "9lives", "x" * 100])
def test_valid_names(name):
    assert check_name(name) == name


@pytest.mark.parametrize("name", ["", "-lead", ".hidden", "_under", "has space", "a/b", "../up", "a@b", "ünï",
                                  "x" * 101, "tab\tname"])
def test_invalid_names(name):
    with pytest.raises(BadUsage) as info:
        check_name(name)
    assert "invalid dataset name" in info.value.message
    assert "letters, digits" in info.value.hint


def test_name_with_trailing_newline_is_invalid():
    with pytest.raises(BadUsage):
        check_name("abc\n")


@pytest.mark.parametrize(("text", "ref"), [
    ("gsm8k", DatasetRef("gsm8k", None)),
    ("gsm8k@v2", DatasetRef("gsm8k", 2)),
    ("gsm8k@2", DatasetRef("gsm8k", 2)),
    ("gsm8k@latest", DatasetRef("gsm8k", None)),
    ("  pool.v1@v12 ", DatasetRef("pool.v1", 12)),
])
def test_parse_ref(text, ref):
    assert parse_ref(text) == ref


@pytest.mark.parametrize("text", ["gsm8k@", "gsm8k@v", "@v1", "gsm8k@v1@v2", "gsm8k@-1", "gsm8k@vx", "bad name@v1"])
def test_parse_ref_rejects_malformed_references(text):
    with pytest.raises(BadUsage):
        parse_ref(text)


def test_ref_strings():
    assert str(DatasetRef("d", 3)) == "d@v3"
    assert str(DatasetRef("d")) == "d"


def test_versions_increment_per_name(ws, tmp_path):
    refs = [ingest_rows(ws, tmp_path, [{"prompt": f"a{i}"}], name="alpha").version.ref for i in range(3)]
    other = ingest_rows(ws, tmp_path, [{"prompt": "b"}], name="beta").version
    assert refs == ["alpha@v1", "alpha@v2", "alpha@v3"]
    assert other.ref == "beta@v1"
    assert [v.ref for v in list_versions(ws)] == ["alpha@v1", "alpha@v2", "alpha@v3", "beta@v1"]
    assert [v.ref for v in list_versions(ws, "alpha")] == refs
    assert (ws.root / "shards" / "alpha" / "v3").is_dir()


def test_resolve_by_name_version_number_and_latest(ws, tmp_path):
    for i in range(2):
        ingest_rows(ws, tmp_path, [{"prompt": f"p{i}"}], name="d")
    assert resolve(ws, "d").version == 2
    assert resolve(ws, "d@latest").version == 2
    first = resolve(ws, "d@v1")
    assert first.version == 1 and resolve(ws, "d@1") == first
    assert [r["prompt"] for r in rows_of(first)] == ["p0"]
    assert resolve(ws, DatasetRef("d", 2)).path == ws.root / "shards" / "d" / "v2"


def test_resolve_missing_version_lists_existing_versions(ws, tmp_path):
    for i in range(2):
        ingest_rows(ws, tmp_path, [{"prompt": f"p{i}"}], name="d")
    with pytest.raises(NotFound) as info:
        resolve(ws, "d@v7")
    assert info.value.message == "dataset d has no version 7"
    assert info.value.hint == "versions: v1, v2"


def test_resolve_missing_dataset_lists_existing_datasets(ws, tmp_path):
    ingest_rows(ws, tmp_path, [{"prompt": "a"}], name="zeta")
    ingest_rows(ws, tmp_path, [{"prompt": "a"}], name="alpha")
    with pytest.raises(NotFound) as info:
        resolve(ws, "gamma")
    assert "no dataset named 'gamma'" in info.value.message
    assert info.value.hint == "datasets: alpha, zeta"


def test_resolve_in_an_empty_workspace_suggests_ingest(ws):
    with pytest.raises(NotFound) as info:
        resolve(ws, "anything@v1")
    assert "curate ingest" in info.value.hint


def test_version_record_describes_the_data(ws, tmp_path):
    report = ingest_rows(ws, tmp_path, [{"prompt": "a", "response": "b"}], name="d", license="cc-by-4.0")
    version = resolve(ws, "d@v1")
    assert version == report.version
    assert (version.rows, version.shards, version.prompt_type, version.license) == (1, 1, "text", "cc-by-4.0")
    assert version.columns["prompt"] == "String" and next(iter(version.columns)) == "id"
    assert [f.name for f in version.files()] == ["part-00000.parquet"]
    assert not (version.path / ".writer.lock").exists()


def test_lineage_records_the_ingest_step(ws, tmp_path):
    path = write_jsonl(tmp_path / "src.jsonl", [{"q": "x", "a": "y"}, {"q": "x", "a": "y"}])
    from curate.catalog.ingest import IngestOptions, ingest

    version = ingest(ws, str(path), IngestOptions(name="d", mapping={"prompt": "q", "response": "a"},
                                                  domain="math")).version
    (step,) = lineage_of(ws, version)
    assert (step["op"], step["step"], step["inputs"]) == ("ingest", 0, [str(path)])
    assert step["params"]["map"] == {"prompt": "q", "response": "a"}
    assert step["params"]["domain"] == "math" and step["params"]["shape"] == "mapped"
    assert (step["rows_in"], step["rows_out"], step["drop_counts"]) == (2, 1, {"duplicate": 1})
    assert step["code_version"] and step["duration_s"] is not None


def _commit_frames(ws, name: str, frames: list[pl.DataFrame], rows_per_shard: int):
    with ws.staging("test") as folder:
        writer = ShardWriter(folder, rows_per_shard=rows_per_shard)
        for frame in frames:
            writer.write(frame)
        staged = writer.close()
        return commit_version(ws, name, staged, [Lineage(op="test", inputs=[])], prompt_type="text")


def _canonical(start: int, stop: int) -> pl.DataFrame:
    n = stop - start
    return pl.DataFrame({"id": [f"id{i:04d}" for i in range(start, stop)],
                         "prompt": [f"p{i}" for i in range(start, stop)], "response": [None] * n, "answer": [None] * n,
                         "tests": [None] * n, "domain": [None] * n, "meta": ["{}"] * n},
                        schema={c: pl.String for c in ("id", "prompt", "response", "answer", "tests", "domain", "meta")})


def test_iter_batches_streams_every_row_in_order_across_shards(ws):
    frames = [_canonical(0, 7), _canonical(7, 8), _canonical(8, 23)]
    version = _commit_frames(ws, "sharded", frames, rows_per_shard=5)
    assert (version.rows, version.shards) == (23, 5)
    assert len(version.files()) == 5
    batches = list(version.iter_batches(batch_size=2))
    assert all(b.height <= 2 for b in batches)
    assert pl.concat(batches)["id"].to_list() == [f"id{i:04d}" for i in range(23)]
    only_ids = next(version.iter_batches(columns=["id"]))
    assert only_ids.columns == ["id"]


def test_shard_writer_casts_later_frames_to_the_first_schema(ws):
    later = _canonical(3, 5).with_columns(pl.lit(None).alias("answer"))  # Null dtype, same columns
    version = _commit_frames(ws, "cast", [_canonical(0, 3), later.select(reversed(later.columns))], rows_per_shard=100)
    assert version.scan().collect()["id"].to_list() == [f"id{i:04d}" for i in range(5)]
    assert version.scan().collect_schema()["answer"] == pl.String


def test_content_hash_equal_for_same_rows_and_different_otherwise(ws, tmp_path):
    rows = [{"prompt": f"p{i}", "response": "r"} for i in range(5)]
    first = ingest_rows(ws, tmp_path, rows, name="a").version
    again = ingest_rows(ws, tmp_path, rows, name="b").version
    changed = ingest_rows(ws, tmp_path, rows[:4] + [{"prompt": "p4", "response": "R"}], name="c").version
    fewer = ingest_rows(ws, tmp_path, rows[:4], name="d").version
    assert first.content_hash == again.content_hash
    assert len({first.content_hash, changed.content_hash, fewer.content_hash}) == 3


def test_content_hash_same_when_only_dropped_duplicates_differ(ws, tmp_path):
    rows = [{"prompt": "p", "response": "r"}, {"prompt": "q", "response": "r"}]
    plain = ingest_rows(ws, tmp_path, rows, name="a").version
    with_copies = ingest_rows(ws, tmp_path, rows + rows[::-1], name="b").version
    assert rows_of(with_copies) == rows_of(plain)
    assert plain.content_hash == with_copies.content_hash


def test_content_hash_depends_on_row_order(ws, tmp_path):
    rows = [{"prompt": "p"}, {"prompt": "q"}]
    forward = ingest_rows(ws, tmp_path, rows, name="a").version
    backward = ingest_rows(ws, tmp_path, rows[::-1], name="b").version
    assert forward.content_hash != backward.content_hash


def test_content_hash_differs_for_different_content_under_the_same_mapped_ids(ws, tmp_path):
    first = ingest_rows(ws, tmp_path, [{"uid": "1", "prompt": "a"}], name="a", mapping={"id": "uid"}).version
    second = ingest_rows(ws, tmp_path, [{"uid": "1", "prompt": "totally different"}], name="b",
                         mapping={"id": "uid"}).version
    assert rows_of(first) != rows_of(second)
    assert first.content_hash != second.content_hash
