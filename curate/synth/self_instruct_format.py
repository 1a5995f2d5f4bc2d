"""Self-Instruct's prompts, parsers and filters (Wang et al., ACL 2023, arXiv 2212.10560).

Pure text functions, following the paper's released code (github.com/yizhongw/self-instruct):
`encode_prompt` and `post_process_gpt3_response` (bootstrap_instructions.py), the
classification-identification and instance-generation prompts (identify_clf_or_not.py,
generate_instances.py) and the instance filters (prepare_for_finetuning.py). The few-shot
examples of the last two stages are drawn from the user's seed tasks instead of the
paper's fixed, hand-written templates, so a seed file in another domain gets demonstrations
in that domain.
"""

from __future__ import annotations

import json
import re
import string
from dataclasses import dataclass, field
from pathlib import Path

from curate.errors import BadInput

INSTRUCTION_HEADER = "Come up with a series of tasks:\n"
CLASSIFICATION_HEADER = "Can the following task be regarded as a classification task with finite output labels?\n\n"
INPUT_FIRST_HEADER = ("Come up with examples for the following tasks. Try to generate multiple examples when possible. "
                      "If the task doesn't require additional input, you can generate the output directly.\n\n")
OUTPUT_FIRST_HEADER = ("Given the classification task definition and the class labels, generate an input that "
                       "corresponds to each of the class labels. If the task doesn't require input, just generate "
                       "possible class labels.\n\n")
# bootstrap_instructions.py: words that a text-only model cannot act on.
BLOCKED_WORDS = ("image", "images", "graph", "graphs", "picture", "pictures", "file", "files", "map", "maps",
                 "draw", "plot", "go to")
MIN_WORDS, MAX_WORDS = 4, 150  # the paper drops instructions of <= 3 or > 150 words
DEMO_CHARS = 500  # a seed instance shown as a demonstration is clipped to this many characters


@dataclass(frozen=True)
class Instance:
    input: str
    output: str


@dataclass(frozen=True)
class SeedTask:
    instruction: str
    instances: tuple[Instance, ...] = ()
    is_classification: bool | None = None
    name: str | None = None


@dataclass
class Candidate:
    """One parsed instruction, kept or with the reason it was dropped."""

    text: str
    reason: str | None = None
    detail: str = ""
    extras: dict = field(default_factory=dict)


def squash(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()


SEED_SHAPE = ('{"instruction": ..., "instances": [{"input": ..., "output": ...}], "is_classification": false}')


def load_seeds(path: str | Path) -> list[SeedTask]:
    """Seed tasks in the paper's format (instruction, instances [{input, output}], is_classification):
    JSON lines, or one JSON array of such objects."""
    file = Path(path).expanduser()
    if not file.is_file():
        raise BadInput(f"seed tasks {path}: no such file", hint="pass a JSON lines file of seed tasks, "
                                                             "e.g. self-instruct's seed_tasks.jsonl")
    try:
        text = file.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise BadInput(f"seed tasks {path}: not valid UTF-8 (byte {exc.start})", hint="re-encode the file as UTF-8") \
            from None
    seeds = [_seed_task(row, where) for row, where in _seed_rows(text, str(path))]
    if not seeds:
        raise BadInput(f"seed tasks {path}: the file holds no seed tasks", hint="one task a line: " + SEED_SHAPE)
    return seeds


def _seed_rows(text: str, path: str) -> list[tuple[object, str]]:
    """(parsed row, "FILE, line N" or "FILE, item N"): a file that opens with "[" is one JSON array."""
    if text.lstrip().startswith("["):
        try:
            items = json.loads(text)
        except ValueError as exc:
            raise BadInput(f"{path}: not valid JSON ({exc})", hint="a JSON array of seed tasks, or one task a line") \
                from None
        if not isinstance(items, list):
            raise BadInput(f"{path}: expected a JSON array of seed tasks")
        return [(item, f"{path}, item {number}") for number, item in enumerate(items, 1)]
    rows = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            rows.append((json.loads(line), f"{path}, line {number}"))
        except ValueError as exc:
            raise BadInput(f"{path}, line {number}: not valid JSON ({exc})",
                           hint="one seed task a line (JSON lines), or the whole file one JSON array") from None
    return rows


def _seed_task(row: object, where: str) -> SeedTask:
    instruction = row.get("instruction") if isinstance(row, dict) else None
    if not isinstance(instruction, str) or not instruction.strip():
        got = "no \"instruction\" key" if isinstance(row, dict) else f"a JSON {type(row).__name__}, not an object"
        raise BadInput(f"{where}: a seed task needs a non-empty \"instruction\" string ({got})",
                       hint="each task: " + SEED_SHAPE)
    instances = []
    for item in row.get("instances") or []:
        if isinstance(item, dict) and isinstance(item.get("output"), str):
            instances.append(Instance(str(item.get("input") or ""), item["output"]))
    if "instances" not in row and isinstance(row.get("output"), str):  # Alpaca's flat shape: one instance
        instances.append(Instance(str(row.get("input") or ""), row["output"]))
    flag = row.get("is_classification")
    return SeedTask(instruction, tuple(instances), flag if isinstance(flag, bool) else None, row.get("name"))


# -- stage 1: instructions ----------------------------------------------------------------------------------------
def instruction_prompt(instructions: list[str]) -> str:
    """encode_prompt: the numbered instructions, then the next number for the model to continue."""
    lines = [f"{i}. {squash(text).rstrip(':')}" for i, text in enumerate(instructions, 1)]
    return INSTRUCTION_HEADER + "".join(line + "\n" for line in lines) + f"{len(instructions) + 1}."


def instruction_stops(num_demos: int, max_new: int = 7) -> tuple[str, ...]:
    """The paper stops after instruction 16 of 8 shown (7 new at most)."""
    last = num_demos + max_new + 1
    return ("\n\n", f"\n{last}", f"{last}.", f"{last} .")


def _contains_word(word: str, text: str) -> bool:
    return re.search(rf"\b{re.escape(word)}\b", text, flags=re.IGNORECASE) is not None


def parse_instructions(text: str, truncated: bool) -> list[Candidate]:
    """post_process_gpt3_response, reading one instruction per numbered line.

    The list format puts one instruction on each line, so an item is the first line of
    what follows its number; text after that line is not part of the list and is ignored.
    An item whose line the token limit cut is dropped (the paper drops the whole response
    of a cut generation; the items before the cut are complete, so we keep them).
    """
    items = re.split(r"\n\d+\s?\. ", text)
    out: list[Candidate] = []
    for position, item in enumerate(items):
        line, newline, _ = item.partition("\n")
        if truncated and position == len(items) - 1 and not newline:
            if squash(line):
                out.append(Candidate(squash(line), "truncated", "the token limit cut this instruction"))
            continue
        instruction = squash(line)
        if not instruction:
            continue
        instruction = instruction[0].upper() + instruction[1:]
        out.append(check_instruction(instruction))
    return out


def check_instruction(instruction: str) -> Candidate:
    words = len(instruction.split())
    if words < MIN_WORDS:
        return Candidate(instruction, "too_short", f"{words} words (at least {MIN_WORDS})")
    if words > MAX_WORDS:
        return Candidate(instruction, "too_long", f"{words} words (at most {MAX_WORDS})")
    blocked = next((w for w in BLOCKED_WORDS if _contains_word(w, instruction)), None)
    if blocked:
        return Candidate(instruction, "unsuitable_for_text_model", f"mentions {blocked!r}")
    if instruction.startswith("Write a program"):
        return Candidate(instruction, "write_a_program", "starts with 'Write a program'")
    if instruction[0] in string.punctuation:
        return Candidate(instruction, "starts_with_punctuation", f"starts with {instruction[0]!r}")
    if not instruction[0].isascii():
        return Candidate(instruction, "starts_with_non_ascii", f"starts with {instruction[0]!r}")
    return Candidate(instruction)


# -- stage 2: is it a classification task? -------------------------------------------------------------------------
def classification_prompt(demos: list[SeedTask], instruction: str) -> str:
    parts = [f"Task: {squash(d.instruction)}\nIs it classification? {'Yes' if d.is_classification else 'No'}\n\n"
             for d in demos]
    return CLASSIFICATION_HEADER + "".join(parts) + f"Task: {squash(instruction)}\nIs it classification?"


def parse_classification(text: str) -> bool | None:
    word = text.strip().split(maxsplit=1)[0].strip(string.punctuation).lower() if text.strip() else ""
    return True if word == "yes" else False if word == "no" else None


# -- stage 3: instances ---------------------------------------------------------------------------------------------
def _clip(text: str) -> str:
    text = text.strip()
    return text if len(text) <= DEMO_CHARS else text[:DEMO_CHARS].rstrip() + " …"


def instance_prompt(demos: list[SeedTask], instruction: str, classification: bool) -> str:
    """Input-first prompt for generation tasks, output-first (class label first) for classification tasks."""
    parts = []
    for demo in demos:
        instance = demo.instances[0]
        if classification:
            parts.append(f"Task: {squash(demo.instruction)}\nClass label: {_clip(instance.output)}\n"
                         f"Input: {_clip(instance.input)}\n\n")
        elif instance.input.strip():
            parts.append(f"Task: {squash(demo.instruction)}\nExample 1\nInput: {_clip(instance.input)}\n"
                         f"Output: {_clip(instance.output)}\n\n")
        else:
            parts.append(f"Task: {squash(demo.instruction)}\nOutput: {_clip(instance.output)}\n\n")
    header = OUTPUT_FIRST_HEADER if classification else INPUT_FIRST_HEADER
    return header + "".join(parts) + f"Task: {squash(instruction)}\n"


def instance_stops(max_instances: int) -> tuple[str, ...]:
    return (f"Example {max_instances + 1}", "Task:")


def parse_input_output(text: str) -> Instance:
    """parse_input_output of prepare_for_finetuning.py."""
    if re.findall(r"Output\s*\d*\s*:", text):
        pieces = re.split(r"Output\s*\d*\s*:", text)
        inst_input, inst_output = pieces[0].strip(), pieces[1].strip()
    else:
        inst_input, inst_output = "", text.strip()
    if re.findall(r"Input\s*\d*\s*:", inst_output):
        inst_output = re.split(r"Input\s*\d*\s*:", inst_output)[0].strip()
    inst_input = re.sub(r"^Input\s*\d*\s*:", "", inst_input).strip()
    return Instance(inst_input, inst_output)


def parse_instances(text: str, classification: bool) -> list[Instance]:
    """parse_instances_for_{classification,generation}_task of prepare_for_finetuning.py.

    One deviation: a generation-task answer with neither "Example" nor "Output:" markers is
    read as one output given directly (the input-first prompt allows that: "you can generate
    the output directly"); the paper's code returns no instance for it.
    """
    if classification:
        out = []
        for part in text.split("Class label:")[1:]:
            label, _, rest = part.strip().partition("\n")
            out.append(Instance(re.sub(r"^\s*Input\s*:", "", rest).strip(), label.strip()))
        return out
    if re.findall(r"Example\s?\d*\.?", text):
        parts = [p.strip() for p in re.split(r"Example\s?\d*\.?", text) if p.strip()]
        return [parse_input_output(p) for p in parts]
    if re.findall(r"Output\s*\d*\s*:", text):
        return [parse_input_output(text)]
    return [Instance("", text.strip())] if text.strip() else []


def filter_instances(instances: list[Instance], truncated: bool,
                     max_instances: int) -> tuple[list[Instance], list[tuple[Instance, str]]]:
    """filter_duplicate_instances and filter_invalid_instances of prepare_for_finetuning.py.

    Returns the kept instances and (instance, reason) for each dropped one.
    """
    dropped: list[tuple[Instance, str]] = []
    if truncated and instances:
        dropped.append((instances[-1], "truncated"))
        instances = instances[:-1]
    for i, instance in enumerate(instances):  # same non-empty input, different outputs: the task is ambiguous
        if instance.input and any(o.input == instance.input and o.output != instance.output for o in instances[:i]):
            return [], dropped + [(x, "same_input_different_output") for x in instances]
    kept: list[Instance] = []
    for instance in instances:
        if instance in kept:
            dropped.append((instance, "duplicate_instance"))
        elif not instance.output:
            dropped.append((instance, "empty_output"))
        elif instance.input == instance.output:
            dropped.append((instance, "input_equals_output"))
        elif instance.input.strip().endswith(":") or instance.output.strip().endswith(":"):
            dropped.append((instance, "ends_with_colon"))
        elif len(kept) >= max_instances:
            dropped.append((instance, "beyond_max_instances"))
        else:
            kept.append(instance)
    return kept, dropped


def example_prompt(instruction: str, instance: Instance) -> str:
    """The row's prompt: the instruction, then the input after a blank line (as ingest maps self-instruct data)."""
    return f"{instruction}\n\n{instance.input}" if instance.input else instruction
