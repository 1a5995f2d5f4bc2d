"""Fuzzed ingest, CI's share (fixed seed; benchmarks/fuzz_ingest.py runs 10,000 and more): every hostile
input ends as a version that round-trips through export or a CurateError naming the file; never a
traceback, a half-written version or a held lock. Plus regressions for what the fuzzing found."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import HealthCheck, given, seed, settings

from curate.catalog.ingest import IngestOptions, ingest
from curate.errors import CurateError

from .fuzzing import Case, cases, fresh_name, huge_field_cases, run_case, workspace

CI_CASES = 200


@pytest.fixture(scope="module")
def fuzz_ws(tmp_path_factory):
    return tmp_path_factory.mktemp("fuzz")


def test_fuzzed_inputs_keep_every_promise(fuzz_ws):
    ws = workspace(fuzz_ws)
    counter = itertools.count()
    seen = []

    @seed(15)
    @settings(max_examples=CI_CASES, deadline=None, database=None, derandomize=True,
              suppress_health_check=list(HealthCheck))
    @given(cases())
    def check(case):
        index = next(counter)
        outcome = run_case(ws, case, fresh_name(index), fuzz_ws / "in")
        seen.append(outcome.kind)
        assert not outcome.problems, f"{case!r}\n" + "\n".join(outcome.problems)

    check()
    assert len(seen) >= CI_CASES and "traceback" not in seen
    assert {"version", "error"} <= set(seen)  # the generator reaches both outcomes


@pytest.mark.parametrize("case", [
    Case(".jsonl", b"null\n{\"prompt\": \"a\"}\n", recipe="a first line null (crashed pyarrow 26)"),
    Case(".jsonl", b'{"prompt": "a", "meta": {"n": 123456789012345678901234567890}}\n', recipe="an integer > 64 bits"),
    Case(".jsonl", b'{"prompt": "a", "x": 1}\n{"prompt": "b", "x": 99999999999999999999999}\n',
         recipe="a column holding an integer > 64 bits"),
    Case(".csv", b"pr\xffompt,response\na,b\n", recipe="a header that is not UTF-8"),
    Case(".json", b"null", recipe="a JSON document that is null"),
    Case(".jsonl", b'{"prompt": "a", "x": [null, 4.5]}\n', recipe="a list [null, 4.5] (pyarrow overran its offsets)"),
    Case(".jsonl", b'{"prompt": "a\xe2\x80\xa8b"}\n', recipe="U+2028 inside a string"),
    Case(".jsonl", b'{"prompt": "a", "x\xff": 1}\n', recipe="a field name that is not UTF-8 (polars panicked)"),
    Case(".jsonl", b'{"prompt": "a", "m": {"": 1, "\\u0000x": 2}}\n', recipe="NUL in a field name (Arrow cut it: two '')"),
    Case(".json", b'[{"prompt": "a", "m": [{"": 1, "\\u0000x": 2}]}]', recipe="NUL in a nested field name, JSON array"),
], ids=lambda c: c.recipe)
def test_found_by_fuzzing(fuzz_ws, case):
    ws = workspace(fuzz_ws)
    outcome = run_case(ws, case, fresh_name(hash(case.recipe) % 10_000), fuzz_ws / "found")
    assert not outcome.problems, outcome.problems
    assert outcome.kind in ("version", "error")


def test_a_nul_in_a_field_name_is_named(fuzz_ws, tmp_path):
    path = tmp_path / "in.jsonl"
    path.write_bytes(b'{"prompt": "a"}\n{"prompt": "b", "m": {"": 1, "\\u0000x": 2}}\n')
    with pytest.raises(CurateError, match=r"in.jsonl, line 2: field 'm.\\x00x' has a NUL character"):
        ingest(workspace(fuzz_ws), str(path), IngestOptions(name="nulkeys"))


def test_a_null_line_is_named_not_a_crash(fuzz_ws, tmp_path):
    path = tmp_path / "in.jsonl"
    path.write_bytes(b"null\n{\"prompt\": \"a\"}\n")
    with pytest.raises(CurateError, match=r"in.jsonl, line 1: expected a JSON object, got null"):
        ingest(workspace(fuzz_ws), str(path), IngestOptions(name="nulls"))


def test_a_damaged_parquet_page_names_the_row(fuzz_ws, tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = tmp_path / "in.parquet"
    pq.write_table(pa.table({"prompt": [f"row {i} " * 50 for i in range(2000)]}), path, compression="none")
    data = bytearray(path.read_bytes())
    middle = len(data) // 2
    data[middle:middle + 64] = b"\xff" * 64
    path.write_bytes(bytes(data))
    outcome = run_case(workspace(fuzz_ws), Case(".parquet", bytes(data), recipe="damaged page"), "damaged",
                       tmp_path / "run")
    assert not outcome.problems, outcome.problems
    assert outcome.kind == "error" and "row 1067, field 'prompt': not valid UTF-8" in outcome.message


def test_a_huge_field_round_trips(fuzz_ws):
    """A 2 MB field in every format (the benchmark uses 50 MB)."""
    ws = workspace(fuzz_ws)
    for index, case in enumerate(huge_field_cases(2)):
        outcome = run_case(ws, case, f"huge{index}", fuzz_ws / "huge")
        assert outcome.kind == "version" and not outcome.problems, (case.recipe, outcome)


def test_a_list_starting_with_null_keeps_its_values(fuzz_ws, tmp_path):
    """pyarrow's JSON reader turns [null, 4] then [1.5] into [4.0, 1.5] and [0.0]: silently wrong rows."""
    path = tmp_path / "in.jsonl"
    path.write_bytes(b'{"prompt": "a", "x": [null, 4]}\n{"prompt": "b", "x": [1.5]}\n')
    version = ingest(workspace(fuzz_ws), str(path), IngestOptions(name="nullfirst")).version
    assert version.scan().collect()["meta"].to_list() == ['{"x":[null,4.0]}', '{"x":[1.5]}']


def test_colliding_field_names_are_named_even_past_the_nul_check(fuzz_ws, tmp_path, monkeypatch):
    """The safety net behind check_nul_keys: any DuplicateError of a block is traced to its line."""
    from curate.catalog import readers

    monkeypatch.setattr(readers, "check_nul_keys", lambda record, where: None)
    path = tmp_path / "in.jsonl"
    path.write_bytes(b'{"prompt": "a"}\n{"prompt": "b", "m": {"": 1, "\\u0000x": 2}}\n')
    with pytest.raises(CurateError, match=r"in.jsonl, line 2: two field names of one object become the same"):
        ingest(workspace(fuzz_ws), str(path), IngestOptions(name="collide"))


def test_a_version_beyond_the_catalogs_integers_is_a_usage_error():
    """Found by the command-line fuzzing: `show pool@v1011...1` reached DuckDB and failed inside it."""
    from curate.catalog.versions import parse_ref
    from curate.errors import BadUsage

    with pytest.raises(BadUsage, match="no version is above v2147483647"):
        parse_ref("pool@v" + "1" * 62)
    assert parse_ref("pool@v2147483647").version == 2147483647
