"""Self-Instruct's prompts, parsers and filters."""

from __future__ import annotations

import json

import pytest

from curate.errors import BadInput
from curate.synth.self_instruct_format import (
    Instance,
    SeedTask,
    check_instruction,
    classification_prompt,
    example_prompt,
    filter_instances,
    instance_prompt,
    instruction_prompt,
    instruction_stops,
    load_seeds,
    parse_classification,
    parse_instances,
    parse_instructions,
)


def test_instruction_prompt_numbers_the_pool_and_asks_for_the_next():
    prompt = instruction_prompt(["Write a  haiku:", "Sort these\nnumbers."])
    assert prompt == "Come up with a series of tasks:\n1. Write a haiku\n2. Sort these numbers.\n3."
    assert instruction_stops(8) == ("\n\n", "\n16", "16.", "16 .")


def test_parse_instructions_reads_numbered_lines_and_applies_the_filters():
    text = (" Suggest a name for a new coffee shop.\n10. Draw a map of your town.\n11. Write a program that adds."
            "\n12. Hi there.\n13. , start with a comma here now\n14. Écrivez un poème sur la mer.\n"
            "15. Explain why leaves change color in autumn")
    found = parse_instructions(text, truncated=True)
    assert [(c.text, c.reason) for c in found] == [
        ("Suggest a name for a new coffee shop.", None),
        ("Draw a map of your town.", "unsuitable_for_text_model"),
        ("Write a program that adds.", "write_a_program"),
        ("Hi there.", "too_short"),
        (", start with a comma here now", "starts_with_punctuation"),
        ("Écrivez un poème sur la mer.", "starts_with_non_ascii"),
        ("Explain why leaves change color in autumn", "truncated"),  # cut mid-line by the token limit
    ]
    assert parse_instructions(text, truncated=False)[-1].reason is None


def test_an_item_is_its_first_line():
    found = parse_instructions(" Name three rivers in Europe please.\nOnce upon a time there was", truncated=True)
    assert [(c.text, c.reason) for c in found] == [("Name three rivers in Europe please.", None)]
    assert check_instruction(" ".join(["word"] * 151)).reason == "too_long"
    assert check_instruction("Plot the data points nicely").reason == "unsuitable_for_text_model"
    assert check_instruction("Plotting is fun for some people").reason is None  # whole words only


def test_classification_prompt_and_parse():
    demos = [SeedTask("Is it spam?", is_classification=True), SeedTask("Write a poem.", is_classification=False)]
    prompt = classification_prompt(demos, "Label the tweet's sentiment.")
    assert prompt.endswith("Task: Label the tweet's sentiment.\nIs it classification?")
    assert "Task: Is it spam?\nIs it classification? Yes\n\nTask: Write a poem.\nIs it classification? No" in prompt
    assert parse_classification(" Yes") is True and parse_classification("no.") is False
    assert parse_classification("Once upon") is None and parse_classification("") is None


def test_instance_prompts():
    demos = [SeedTask("Add the numbers.", (Instance("2 and 3", "5"),)), SeedTask("Tell a joke.", (Instance("", "Ha."),))]
    prompt = instance_prompt(demos, "Multiply the numbers.", classification=False)
    assert prompt.startswith("Come up with examples for the following tasks.")
    assert "Task: Add the numbers.\nExample 1\nInput: 2 and 3\nOutput: 5\n\nTask: Tell a joke.\nOutput: Ha.\n\n" in prompt
    assert prompt.endswith("Task: Multiply the numbers.\n")
    clf = instance_prompt([SeedTask("Odd or even?", (Instance("7", "Odd"),), True)], "Spam or not?", True)
    assert "Task: Odd or even?\nClass label: Odd\nInput: 7\n\n" in clf and clf.startswith("Given the classification")


def test_parse_instances_follows_the_papers_parsers():
    text = "Example 1\nInput: 2 and 3\nOutput: 6\nExample 2\nInput: 4 and 5\nOutput: 20"
    assert parse_instances(text, False) == [Instance("2 and 3", "6"), Instance("4 and 5", "20")]
    assert parse_instances("Output: a haiku about snow", False) == [Instance("", "a haiku about snow")]
    assert parse_instances("Input: x\nOutput: y\nInput: z", False) == [Instance("x", "y")]
    assert parse_instances("Just an answer given directly.", False) == [Instance("", "Just an answer given directly.")]
    clf = "Class label: Positive\nInput: I loved it.\nClass label: Negative\nInput: Awful."
    assert parse_instances(clf, True) == [Instance("I loved it.", "Positive"), Instance("Awful.", "Negative")]
    assert parse_instances("no labels here", True) == []


def test_filter_instances_reasons():
    items = [Instance("a", "b"), Instance("a", "b"), Instance("", ""), Instance("same", "same"), Instance("x:", "y"),
             Instance("c", "d"), Instance("e", "f"), Instance("g", "h")]
    kept, dropped = filter_instances(items, truncated=True, max_instances=2)
    assert kept == [Instance("a", "b"), Instance("c", "d")]
    assert [reason for _, reason in dropped] == ["truncated", "duplicate_instance", "empty_output",
                                                 "input_equals_output", "ends_with_colon", "beyond_max_instances"]
    kept, dropped = filter_instances([Instance("q", "1"), Instance("q", "2")], False, 5)
    assert kept == [] and {r for _, r in dropped} == {"same_input_different_output"}
    assert example_prompt("Add.", Instance("1 2", "3")) == "Add.\n\n1 2" and example_prompt("Joke.", Instance("", "x")) == "Joke."


def test_load_seeds(tmp_path):
    good = tmp_path / "seeds.jsonl"
    good.write_text(json.dumps({"instruction": "Do it.", "instances": [{"input": "", "output": "Done."}],
                                "is_classification": False}) + "\n\n")
    assert load_seeds(good) == [SeedTask("Do it.", (Instance("", "Done."),), False, None)]
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"instruction": "ok"}) + "\n{broken\n")
    with pytest.raises(BadInput, match="bad.jsonl, line 2: not valid JSON"):
        load_seeds(bad)
    missing = tmp_path / "missing.jsonl"
    missing.write_text(json.dumps({"task": "no instruction"}) + "\n")
    with pytest.raises(BadInput, match="line 1: a seed task needs a non-empty \"instruction\""):
        load_seeds(missing)
    with pytest.raises(BadInput, match="no such file"):
        load_seeds(tmp_path / "nope.jsonl")
    (tmp_path / "empty.jsonl").write_text("\n")
    with pytest.raises(BadInput, match="no seed tasks"):
        load_seeds(tmp_path / "empty.jsonl")
