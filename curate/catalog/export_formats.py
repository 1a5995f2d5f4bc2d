"""Exports shaped for the trainers people run: verl, TRL (preference pairs; conversations with
tools) and LLaMA-Factory. `--format NAME` picks one; the file type still follows `--to`.

- `verl`: Parquet rows as verl's RLHFDataset and reward managers read them: `data_source`
  (verl's default scorer dispatches on it), `prompt` as a chat list, `ability`,
  `reward_model: {style: "rule", ground_truth}` (the `answer`, else the `tests`), and
  `extra_info: {index, id, split, domain}`; curate's id lets curate's verl sampler and ledger
  follow each prompt;
- `trl-preference`: `prompt`, `chosen`, `rejected` for `DPOTrainer`, from preference sources
  (ingested with `chosen`/`rejected`, which stay in `meta`); conversational when the prompts are
  messages (`chosen`/`rejected` are then one assistant message each);
- `trl-messages`: TRL's conversational layout (`messages`) plus `tools`, the tool schemas the
  source carried (a JSON string, as `SFTTrainer` accepts them);
- `llamafactory`: alpaca-style rows (text prompts) or sharegpt-style messages (chat prompts; tools
  kept), preference pairs as `ranking` data, and an entry in `dataset_info.json` beside the file.

Everything is one DuckDB query streamed to a partial file that is renamed into place.
"""

from __future__ import annotations

import json
import os
import uuid
from dataclasses import dataclass
from pathlib import Path

import duckdb

from curate.catalog.export import ExportReport, _source_sql, infer_format, sql_string, write_query
from curate.catalog.versions import DatasetVersion
from curate.errors import BadInput, BadUsage

@dataclass
class TrainerExport(ExportReport):
    data_source: str | None = None  # verl
    dataset_info: Path | None = None  # llamafactory


TRAINER_FORMATS = ("verl", "trl-preference", "trl-messages", "llamafactory")
FILE_TYPES = {"verl": ("parquet",), "trl-preference": ("parquet", "jsonl", "hf"),
              "trl-messages": ("parquet", "jsonl", "hf"), "llamafactory": ("jsonl", "parquet")}
ASSISTANT_MARKER = "\n\nAssistant:"  # Anthropic HH dialogues: ingest cut the prompt after this


def _as_messages(version: DatasetVersion) -> str:
    return "prompt" if version.prompt_type == "messages" else "[{'role': 'user', 'content': prompt}]"


def _side(version: DatasetVersion, key: str) -> str:
    """The text of a preference side kept in meta: a string (an Anthropic dialogue: its last
    assistant turn), a {from,value}/{role,content} object, or a message list (its last message)."""
    node = f"(CAST(meta AS JSON)->'$.{key}')"
    text = f"({node}->>'$')"
    if version.prompt_type != "messages":
        pattern = sql_string(r"(?s)^.*\n\nAssistant:\s?(.*)$")
        text = (f"CASE WHEN ends_with(prompt, {sql_string(ASSISTANT_MARKER)}) AND contains({text}, "
                f"{sql_string(ASSISTANT_MARKER)}) THEN regexp_extract({text}, {pattern}, 1) ELSE {text} END")
    return (f"CASE json_type({node}) WHEN 'VARCHAR' THEN {text} "
            f"WHEN 'OBJECT' THEN coalesce({node}->>'$.content', {node}->>'$.value') "
            f"WHEN 'ARRAY' THEN coalesce({node}->>'$[#-1].content', {node}->>'$[#-1].value') END")


def _tools() -> str:
    """The source's tool schemas as a JSON string (kept in meta by ingest), or null."""
    node = "(CAST(meta AS JSON)->'$.tools')"
    return f"CASE json_type({node}) WHEN 'VARCHAR' THEN {node}->>'$' WHEN 'NULL' THEN NULL ELSE CAST({node} AS VARCHAR) END"


def _reply(text: str) -> str:
    return f"{{'role': 'assistant', 'content': {text}}}"


def verl_sql(version: DatasetVersion, data_source: str) -> str:
    return (f"SELECT {sql_string(data_source)} AS data_source, {_as_messages(version)} AS prompt, "
            f"coalesce(domain, 'general') AS ability, "
            f"{{'style': 'rule', 'ground_truth': coalesce(answer, tests)}} AS reward_model, "
            f"{{'index': (row_number() OVER () - 1)::BIGINT, 'id': id, 'split': 'train', 'domain': domain}} "
            f"AS extra_info FROM {_source_sql(version)}")


def preference_sql(version: DatasetVersion) -> str:
    rejected = _side(version, "rejected")
    if version.prompt_type == "messages":
        return (f"SELECT id, prompt, [{_reply('response')}] AS chosen, [{_reply(rejected)}] AS rejected "
                f"FROM {_source_sql(version)}")
    return f"SELECT id, prompt, response AS chosen, {rejected} AS rejected FROM {_source_sql(version)}"


def messages_sql(version: DatasetVersion) -> str:
    messages = (f"CASE WHEN response IS NULL THEN {_as_messages(version)} "
                f"ELSE list_append({_as_messages(version)}, {_reply('response')}) END")
    return f"SELECT id, {messages} AS messages, {_tools()} AS tools, answer, tests FROM {_source_sql(version)}"


def _count(con: duckdb.DuckDBPyConnection, version: DatasetVersion, condition: str) -> int:
    return con.execute(f"SELECT count(*) FROM {_source_sql(version)} WHERE {condition}").fetchone()[0]


def _check(con: duckdb.DuckDBPyConnection, version: DatasetVersion, fmt: str) -> None:
    """Refuse, naming the rows and the fix, what the trainer would fail on later."""
    if fmt == "verl":
        missing = _count(con, version, "answer IS NULL AND tests IS NULL")
        if missing:
            raise BadInput(f"{missing:,} of the {version.rows:,} rows of {version.ref} have no answer and no tests: "
                           f"verl's rule reward needs a ground truth",
                           hint="ingest with --map answer=COLUMN, or export those rows with --columns prompt")
    if fmt == "trl-preference" or (fmt == "llamafactory" and _is_preference(con, version)):
        missing = _count(con, version, f"response IS NULL OR ({_side(version, 'rejected')}) IS NULL")
        if missing:
            raise BadInput(f"{missing:,} of the {version.rows:,} rows of {version.ref} have no chosen/rejected pair",
                           hint="preference exports need a source ingested with chosen and rejected columns")


def _is_preference(con: duckdb.DuckDBPyConnection, version: DatasetVersion) -> bool:
    return _count(con, version, "json_exists(CAST(meta AS JSON), '$.rejected')") > 0


SHAREGPT_TAGS = {"role_tag": "role", "content_tag": "content", "user_tag": "user", "assistant_tag": "assistant",
                 "system_tag": "system", "observation_tag": "tool"}


def llamafactory_entry(version: DatasetVersion, file_name: str, preference: bool, tools: bool) -> dict:
    """The dataset_info.json entry LLaMA-Factory needs to read the exported file."""
    entry: dict = {"file_name": file_name}
    if version.prompt_type == "messages":
        entry["formatting"] = "sharegpt"
        entry["columns"] = {"messages": "messages"}
        entry["tags"] = dict(SHAREGPT_TAGS)
        if tools:
            entry["columns"]["tools"] = "tools"
    else:
        entry["columns"] = {"prompt": "prompt"} if preference else {"prompt": "prompt", "response": "response"}
    if preference:
        entry["ranking"] = True
        entry["columns"].update(chosen="chosen", rejected="rejected")
    return entry


def llamafactory_sql(version: DatasetVersion, preference: bool) -> str:
    if preference:
        rejected = _side(version, "rejected")
        if version.prompt_type == "messages":
            return (f"SELECT prompt AS messages, {_reply('response')} AS chosen, {_reply(rejected)} AS rejected, "
                    f"{_tools()} AS tools FROM {_source_sql(version)}")
        return f"SELECT prompt, response AS chosen, {rejected} AS rejected FROM {_source_sql(version)}"
    if version.prompt_type == "messages":
        return (f"SELECT list_append(prompt, {_reply('response')}) AS messages, {_tools()} AS tools "
                f"FROM {_source_sql(version)} WHERE response IS NOT NULL")
    return f"SELECT prompt, response FROM {_source_sql(version)} WHERE response IS NOT NULL"


def _update_dataset_info(folder: Path, name: str, entry: dict) -> Path:
    path = folder / "dataset_info.json"
    info = {}
    if path.exists():
        try:
            info = json.loads(path.read_text())
        except json.JSONDecodeError as exc:
            raise BadInput(f"{path} is not valid JSON ({exc.msg}, line {exc.lineno})",
                           hint="fix or remove it; curate adds its entry to the file") from None
    info[name] = entry
    partial = path.with_name(f".{path.name}.partial-{uuid.uuid4().hex[:8]}")
    partial.write_text(json.dumps(info, indent=2, ensure_ascii=False) + "\n")
    os.replace(partial, path)
    return path


def export_for_trainer(version: DatasetVersion, to: str | os.PathLike, fmt: str, *, overwrite: bool = False,
                       data_source: str | None = None) -> ExportReport:
    """Export `version` in a trainer's own layout (`fmt` one of TRAINER_FORMATS)."""
    if fmt not in TRAINER_FORMATS:
        raise BadUsage(f"unknown trainer format {fmt!r}", hint="formats: " + ", ".join(TRAINER_FORMATS))
    target = Path(to).expanduser()
    file_type = "jsonl" if target.suffix.lower() == ".json" and fmt == "llamafactory" else infer_format(target)
    if file_type not in FILE_TYPES[fmt]:
        raise BadUsage(f"--format {fmt} writes {', '.join(FILE_TYPES[fmt])}, not {file_type} ({target.name})",
                       hint="verl reads Parquet: --to x.parquet" if fmt == "verl" else
                       "end --to with .parquet or .jsonl" + (" or .json" if fmt == "llamafactory" else ""))
    if not version.files():
        raise BadUsage(f"{version.ref} has no rows to export")
    con = duckdb.connect()
    report = TrainerExport(target, file_type, fmt, 0)
    try:
        _check(con, version, fmt)
        entry = None
        if fmt == "verl":
            report.data_source = data_source or version.name
            sql = verl_sql(version, report.data_source)
        elif fmt == "trl-preference":
            sql = preference_sql(version)
        elif fmt == "trl-messages":
            sql = messages_sql(version)
        else:
            preference = _is_preference(con, version)
            tools = _count(con, version, f"({_tools()}) IS NOT NULL") > 0
            sql = llamafactory_sql(version, preference)
            entry = llamafactory_entry(version, target.name, preference, tools)
        report.rows = write_query(con, sql, target, file_type, overwrite, json_array=target.suffix.lower() == ".json")
    finally:
        con.close()
    if entry is not None:  # after the data file exists, so the entry never names a missing file
        report.dataset_info = _update_dataset_info(target.parent, version.name, entry)
    return report


def card_folder(to: str | os.PathLike, fmt: str | None) -> Path:
    """Where an export's README.md goes: inside a folder export, else beside the file."""
    target = Path(to).expanduser()
    return target if (fmt or infer_format(target)) == "hf" or target.suffix == "" else target.parent


def publish(ws, version: DatasetVersion, report: ExportReport, *, card: bool = False, repo_id: str | None = None,
            overwrite: bool = False) -> dict[str, Path | str]:
    """After an export: the dataset card (always for a folder, on request beside a file) and the Hub push."""
    from curate.catalog.card import write_card
    from curate.catalog.hub import push_to_hub

    written: dict[str, Path | str] = {}
    folder_export = report.path.is_dir()
    if card or folder_export or repo_id:
        folder = report.path if folder_export else report.path.parent
        names = [report.path.name] + ([report.dataset_info.name] if getattr(report, "dataset_info", None) else [])
        written["card"] = write_card(ws, version, folder, report.columns, names, overwrite=overwrite or folder_export)
    if repo_id:
        files = [report.path] if folder_export else [report.path, written["card"]]
        if getattr(report, "dataset_info", None):
            files.append(report.dataset_info)
        written["hub"] = push_to_hub(repo_id, files)
    return written
