"""Shared fixtures: a fresh workspace, the ../shared folder (skipped when absent), a tiny model."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
# Every CLI error the suite triggers checks that the options it names exist (curate/cli/hints.py).
os.environ["CURATE_STRICT_HINTS"] = "1"
SHARED = Path(os.environ.get("CURATE_SHARED", REPO.parent / "shared"))


@pytest.fixture
def ws(tmp_path):
    from curate.catalog.workspace import Workspace

    return Workspace.open(tmp_path / "ws")


@pytest.fixture(scope="session")
def shared() -> Path:
    """../shared (datasets and the stories260K model); tests that need it skip cleanly without it."""
    if not (SHARED / "data").is_dir():
        pytest.skip(f"{SHARED} is absent")
    return SHARED


def shared_file(shared: Path, relative: str) -> Path:
    path = shared / relative
    if not path.exists():
        pytest.skip(f"{path} is absent")
    return path


@pytest.fixture(scope="session")
def stories_model(shared) -> Path:
    return shared_file(shared, "models/stories260K")


@pytest.fixture(scope="module")
def one_thread():
    """Run a module's tests on one torch thread (tiny models train fastest so on a shared 2-core machine):
    `pytestmark = pytest.mark.usefixtures("one_thread")`."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    return make_tiny_model(tmp_path_factory.mktemp("tiny-model"))


def make_tiny_model(folder: Path) -> Path:
    """A randomly initialised 2-layer Llama with the byte tokenizer, built by the tests themselves."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from curate.lm import byte_tokenizer

    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=byte_tokenizer.VOCAB_SIZE, hidden_size=32, intermediate_size=64,
                         num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                         max_position_embeddings=1024, bos_token_id=1, eos_token_id=2, pad_token_id=0,
                         tie_word_embeddings=True)
    LlamaForCausalLM(config).save_pretrained(str(folder))
    byte_tokenizer.save(folder)
    return folder


# -- the command line, one harness --------------------------------------------------------------------------
def run_curate(capsys, *args: str, code: int | None = None) -> tuple[int, str, str]:
    """`curate ARGS` in this process (no interpreter start-up): (exit code, stdout, stderr); asserts `code`
    unless it is None."""
    from curate.cli.app import main

    with pytest.raises(SystemExit) as exited:
        main(list(args))
    out, err = capsys.readouterr()
    if code is not None:
        assert exited.value.code == code, out + err
    return exited.value.code, out, err


def run_curate_process(*args: str, code: int | None = 0, env: dict | None = None,
                       timeout: float = 300) -> subprocess.CompletedProcess:
    """`python -m curate ARGS` in a new interpreter, as a user's shell runs it; asserts `code` unless it is None."""
    result = subprocess.run([sys.executable, "-m", "curate", *args], capture_output=True, text=True, timeout=timeout,
                            env={**os.environ, **(env or {})})
    if code is not None:
        assert result.returncode == code, result.stdout + result.stderr
    return result


def cli_commands(command=None, path: tuple[str, ...] = ()):
    """Every `curate` command as ("train sft", its click command), walking the groups (typer may vendor
    its own click, so a group is recognised by its `commands`)."""
    if command is None:
        import typer

        from curate.cli.app import app

        command = typer.main.get_command(app)
    if hasattr(command, "commands"):
        for name, sub in command.commands.items():
            yield from cli_commands(sub, (*path, name))
    else:
        yield " ".join(path), command


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    import json

    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


@pytest.fixture(scope="session")
def ray_local():
    """A local Ray on this machine's 2 CPUs, started once for the session (skipped without `curate[ray]`)."""
    ray = pytest.importorskip("ray")
    pytest.importorskip("ray.data")
    if not ray.is_initialized():
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()
