"""The `curate` command: a typer app whose commands live in one module per group."""

from __future__ import annotations

import os
import sys
import traceback

import click
import typer
from rich.text import Text

from curate import __version__
from curate.cli import compare as compare_commands
from curate.cli import data, demo, hints, train
from curate.cli import report as report_commands
from curate.cli import rl
from curate.cli import select as select_commands
from curate.cli import synth as synth_commands
from curate.cli.ui import err
from curate.errors import CurateError

# typer may vendor its own click: catch both families.
CLICK_ERRORS = (click.exceptions.ClickException, typer.TyperException)
EXITS = (click.exceptions.Exit, typer.Exit)
ABORTS = (click.exceptions.Abort, typer.Abort, KeyboardInterrupt)

app = typer.Typer(
    name="curate",
    help="Data-centric curation and curricula for LLM post-training.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        print(f"curate {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version."),
) -> None:
    """curate tells you what to train on: select, clean, mix and synthesize data, then train and close the loop."""


data.register(app)
train.register(app)
demo.register(app)
select_commands.register(app)
synth_commands.register(app)
rl.register(app)
compare_commands.register(app)
report_commands.register(app)


def _quiet_libraries() -> None:
    """Our own progress bars and messages replace those of transformers and the hub client."""
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")


def _fitted(exc: CurateError, args: list[str]) -> tuple[str, str | None]:
    """The error's message and hint with option names fitted to the command that ran (cli/hints.py)."""
    root = typer.main.get_command(app)
    command = hints.resolve(root, args)
    if command is None:
        return exc.message, exc.hint
    message, hint = hints.fit(exc.message, command), exc.hint and hints.fit(exc.hint, command)
    missing = hints.unknown(f"{message}\n{hint or ''}", command, root)
    if missing and os.environ.get("CURATE_STRICT_HINTS"):
        raise AssertionError(f"an error of `curate {command.name}` names options it does not have: {missing}\n"
                             f"  error: {message}\n  hint: {hint}")
    return message, hint


def main(argv: list[str] | None = None) -> None:
    """Entry point: user errors print a message (no traceback unless --debug) and set the exit code."""
    args = sys.argv[1:] if argv is None else argv
    debug = "--debug" in args or bool(os.environ.get("CURATE_DEBUG"))
    _quiet_libraries()
    try:
        app(args=args, prog_name="curate", standalone_mode=False)
    except CurateError as exc:
        if debug:
            traceback.print_exc()
        message, hint = _fitted(exc, args)
        err.print(Text("error: ", style="bold red") + Text(message), soft_wrap=True)
        if hint:
            err.print(Text("  hint: ", style="yellow") + Text(hint), soft_wrap=True)
        sys.exit(exc.exit_code)
    except CLICK_ERRORS as exc:  # bad usage: typer/click print it with the command's usage line
        exc.show()
        sys.exit(exc.exit_code)
    except EXITS as exc:
        sys.exit(exc.exit_code)
    except ABORTS:
        err.print("interrupted")
        sys.exit(130)
    except Exception as exc:  # a bug, not a user error: say so, briefly
        if debug:
            traceback.print_exc()
        err.print(Text("internal error: ", style="bold red") + Text(f"{type(exc).__name__}: {exc}"), soft_wrap=True)
        if not debug:
            err.print(Text("  rerun with --debug for the traceback, and please report it"))
        sys.exit(1)
    sys.exit(0)


if __name__ == "__main__":  # pragma: no cover
    main()
