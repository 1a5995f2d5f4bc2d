"""The CLI's vocabulary, declared once: every option that two commands share (docs/cli.md).

- One concept, one spelling: the long and short names here are the documented ones. Old
  spellings still parse (`OLD_SPELLINGS`, listed in docs/cli.md) but `--help` does not show them.
- Defaults live where the behaviour lives, in a config dataclass or a function's signature:
  an option whose default is None means "keep that default", and `Command` shows it in `--help`
  (read when help is asked for: importing a trainer imports torch). The CLI never repeats it.
- Where a concept's meaning needs a command's own words (what `--out` names, which model
  `--model` is), a function here returns the option with that help and the same spelling.
"""

from __future__ import annotations

import dataclasses
import importlib
import inspect
from pathlib import Path
from typing import Annotated, Any

import typer
import yaml
from typer.core import TyperCommand, TyperGroup

from curate.errors import BadUsage

# Spellings that parse but are not documented (docs/cli.md, "Old spellings"): hidden from --help.
OLD_SPELLINGS = frozenset({"--name", "--size", "--select", "--select-model", "--select-budget", "--max-new-tokens",
                           "--target", "-g", "-k"})


def _load_config(ctx: typer.Context, param: typer.CallbackParam, value: Path | None) -> Path | None:
    """`--config FILE.yaml`: its keys are option names and become this command's defaults."""
    if value is None:
        return value
    try:
        data = yaml.safe_load(value.read_text()) or {}
    except OSError as exc:
        raise typer.BadParameter(f"cannot read {value}: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise typer.BadParameter(f"{value} is not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise typer.BadParameter(f"{value} must hold a mapping of option names to values")
    known = {p.name: p for p in ctx.command.params}
    flags = {o.lstrip("-").replace("-", "_"): p.name for p in ctx.command.params for o in getattr(p, "opts", [])
             if o.startswith("--")}  # `eval: x` for an option spelled --eval whose parameter is eval_
    defaults: dict[str, Any] = {}
    for key, item in data.items():
        name = str(key).lstrip("-").replace("-", "_")
        name = name if name in known else flags.get(name, name)
        if name not in known or name == "config":
            options = ", ".join(sorted(_key(p) for p in ctx.command.params if p.name != "config"
                                       and not getattr(p, "hidden", False)))
            raise typer.BadParameter(f"{value}: unknown option {key!r}; options are: {options}")
        defaults[name] = item
    ctx.default_map = {**(ctx.default_map or {}), **defaults}
    return value


class Command(TyperCommand):
    """A curate command: `--help` hides old spellings and shows the defaults of `defaults_of`."""

    defaults_of: tuple[str, ...] = ()  # "module:name" of config dataclasses or functions, read for --help
    renamed: dict[str, str] = {}  # option parameter -> field, where the two names differ

    def format_help(self, ctx, formatter) -> None:
        values = _defaults(self.defaults_of)
        saved = [(p, p.opts, p.secondary_opts) for p in self.params]
        for param in self.params:
            param.opts = [o for o in param.opts if o not in OLD_SPELLINGS] or param.opts[:1]
            param.secondary_opts = [o for o in param.secondary_opts if o not in OLD_SPELLINGS]
            value = values.get(self.renamed.get(param.name, param.name), dataclasses.MISSING)
            if param.default is None and value is not dataclasses.MISSING and value is not None:
                param.show_default = _shown(value)
        try:
            return super().format_help(ctx, formatter)
        finally:
            for param, opts, secondary in saved:
                param.opts, param.secondary_opts = opts, secondary


class Group(TyperGroup):
    """A command group whose `--help` lists its commands in the order they were added."""

    def list_commands(self, ctx) -> list[str]:
        return list(self.commands)


def command(*defaults_of: str, **renamed: str) -> type[Command]:
    """The command class for a command whose option defaults are those of `defaults_of`."""
    return type("Command", (Command,), {"defaults_of": defaults_of, "renamed": renamed})


def _shown(value: Any) -> str:
    if isinstance(value, bool):
        return "on" if value else "off"
    return ",".join(map(str, value)) if isinstance(value, (list, tuple)) else str(value)


def _defaults(sources: tuple[str, ...]) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for source in sources:
        module, _, name = source.partition(":")
        target = getattr(importlib.import_module(module), name)
        if dataclasses.is_dataclass(target):
            found = {f.name: f.default if f.default_factory is dataclasses.MISSING else f.default_factory()
                     for f in dataclasses.fields(target)
                     if f.default is not dataclasses.MISSING or f.default_factory is not dataclasses.MISSING}
        else:
            found = {n: p.default for n, p in inspect.signature(target).parameters.items()
                     if p.default is not inspect.Parameter.empty}
        values.update({k: v for k, v in found.items() if k not in values})
    return values


def given(**values: Any) -> dict[str, Any]:
    """The options the user gave (None means: keep the default of the config or function)."""
    return {k: v for k, v in values.items() if v is not None}


# -- every command ----------------------------------------------------------------------------------------------
def _key(param: Any) -> str:
    """A parameter's key in a --config file: its documented long name without the dashes."""
    names = [o for o in getattr(param, "opts", []) if o.startswith("--") and o not in OLD_SPELLINGS]
    return names[0][2:] if names else param.name.replace("_", "-")


WorkspaceOpt = Annotated[
    Path | None,
    typer.Option("--workspace", "-w", envvar="CURATE_WORKSPACE", show_default="./curate-ws",
                 help="Workspace folder holding the catalog and shards."),
]
ConfigOpt = Annotated[
    Path | None,
    typer.Option("--config", is_eager=True, callback=_load_config,
                 help="YAML file whose keys are option names; command-line options win."),
]
SeedOpt = Annotated[int, typer.Option("--seed", help="Random seed; the same seed gives the same result.")]
QuietOpt = Annotated[bool, typer.Option("--quiet", "-q", help="Print only the result, no progress or tables.")]
DebugOpt = Annotated[bool, typer.Option("--debug", help="Show Python tracebacks for errors.")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print the result as JSON.")]


# -- data and models --------------------------------------------------------------------------------------------
def out_option(help: str) -> Any:
    """`--out/-o`: what the command makes (a dataset name, a run folder, a file): `help` says which."""
    return typer.Option("--out", "-o", "--name", help=help)


MODEL_HELP = "Model folder or hub id; `proxy`: a small model trained (once, cached) on the dataset itself."


def model_option(help: str = MODEL_HELP) -> Any:
    """`--model/-m`: required where the command trains or samples from the model; `proxy` by default
    where it only measures with it (select, score, mix)."""
    return typer.Option("--model", "-m", help=help)


ModelOpt = Annotated[str, model_option()]
ScorerModelOpt = Annotated[str | None, typer.Option("--scorer-model", "--select-model",
                                                    help="The model the selectors score with, where --model is the one "
                                                         "trained or sampled; proxy: the dataset's own small model.")]
ModelKeyOpt = Annotated[str | None, typer.Option("--model-key", help="Ledger key of the policy (default: the model's "
                                                                     "hash); rollouts are kept under KEY#REWARD, and "
                                                                     "KEY alone reads the one reward it was sampled "
                                                                     "with (docs/rl.md).")]
TemplateOpt = Annotated[str | None, typer.Option("--template", help="Prompt template: auto (the model's chat "
                                                                    "template if it has one), chat, plain, or raw "
                                                                    "(text prompts as they are; generation only).")]
DtypeOpt = Annotated[str | None, typer.Option("--dtype", help="auto (bf16 on a capable GPU, else float32), float32, "
                                                              "bfloat16 or float16.")]
DeviceOpt = Annotated[str | None, typer.Option("--device", help="auto, cpu, cuda, cuda:1, ...")]


def backend_option(help: str) -> Any:
    return typer.Option("--backend", help=help)


# OpenAI-compatible servers: the settings of curate.lm.openai_backend.OpenAISettings, whose defaults --help shows.
ApiKeyEnvOpt = Annotated[str | None, typer.Option("--api-key-env", help="openai: environment variable holding the "
                                                                        "API key.")]
EndpointOpt = Annotated[str | None, typer.Option("--endpoint", help="openai: chat or completions.")]
ConcurrencyOpt = Annotated[int | None, typer.Option("--concurrency", help="openai: requests in flight at most.")]
TimeoutOpt = Annotated[float | None, typer.Option("--timeout", help="openai: seconds to connect and for each read.")]
MaxRetriesOpt = Annotated[int | None, typer.Option("--max-retries", help="openai: retries on 429, 5xx, timeouts and "
                                                                         "lost connections.")]


# -- selection ----------------------------------------------------------------------------------------------------
def strategy_option(help: str) -> Any:
    """`--strategy/-s`: how the data is chosen: a selector or chain, or (loop) a curriculum strategy."""
    return typer.Option("--strategy", "-s", "--select", help=help)


BudgetOpt = Annotated[str | None, typer.Option("--budget", "-b", "--size", "--select-budget",
                                               help="Rows to keep: a count (500; 1 is one row), a fraction (0.1; "
                                                    "1.0 is every row) or a percentage (10%).")]


def param_option(help: str = "STEP.NAME=VALUE (or NAME=VALUE for every step that has it), e.g. fisher.dim=32; "
                             "repeat for more.") -> Any:
    return typer.Option("--param", "-p", help=help)


ParamOpt = Annotated[list[str] | None, param_option()]


# -- generation and RL ------------------------------------------------------------------------------------------
RewardOpt = Annotated[list[str] | None, typer.Option("--reward", "-r", help="math, exact, format, code, or "
                                                                            "module:function; repeat to add rewards.")]
RewardWeightOpt = Annotated[list[float] | None, typer.Option("--reward-weight", help="One weight per --reward "
                                                                                     "(default 1 each).")]
GroupSizeOpt = Annotated[int | None, typer.Option("--num-generations", "-G", "-g", "-k",
                                                  help="Completions sampled per prompt (a GRPO group, G).")]
MaxCompletionOpt = Annotated[int | None, typer.Option("--max-completion-length", "--max-new-tokens",
                                                      help="Tokens per completion at most.")]
MaxPromptOpt = Annotated[int | None, typer.Option("--max-prompt-length", help="Prompts longer than this many tokens "
                                                                              "are left out (and counted).")]
TemperatureOpt = Annotated[float | None, typer.Option("--temperature", help="Sampling temperature.")]
TopPOpt = Annotated[float | None, typer.Option("--top-p", help="Nucleus sampling: the probability mass kept.")]


# -- training ---------------------------------------------------------------------------------------------------
StepsOpt = Annotated[int | None, typer.Option("--steps", help="Optimizer steps (GRPO: rollout rounds).")]
LrOpt = Annotated[float | None, typer.Option("--lr", help="Peak learning rate.")]
WarmupOpt = Annotated[int | None, typer.Option("--warmup", help="Linear warmup steps.")]
ScheduleOpt = Annotated[str | None, typer.Option("--lr-schedule", help="LR schedule after warmup: cosine, linear or "
                                                                       "constant.")]
BatchTokensOpt = Annotated[int | None, typer.Option("--batch-tokens", help="Tokens per forward/backward micro-batch.")]
GradAccumOpt = Annotated[int | None, typer.Option("--grad-accum", help="Micro-batches per optimizer step.")]
PackingOpt = Annotated[bool | None, typer.Option("--packing/--no-packing", help="Pack whole examples into rows of "
                                                 "--batch-tokens (no padding; each example attends only to itself); "
                                                 "--no-packing: length-sorted padded batches.")]
LossOpt = Annotated[str | None, typer.Option("--loss", help="SFT loss: nll (cross-entropy) or dft (Dynamic "
                                                           "Fine-Tuning).")]
LossTypeOpt = Annotated[str | None, typer.Option("--loss-type", help="GRPO loss aggregation: grpo, bnpo, dr_grpo or "
                                                                     "dapo (as TRL defines them).")]
MaxLengthOpt = Annotated[int | None, typer.Option("--max-length", help="Truncate prompt + response to this many "
                                                                       "tokens (default: the model's context).")]
SaveEveryOpt = Annotated[int | None, typer.Option("--save-every", help="Checkpoint every N steps (0: only at the "
                                                                       "end).")]
LoraOpt = Annotated[bool | None, typer.Option("--lora/--no-lora", help="Train LoRA adapters (peft) instead of all "
                                                                       "weights; they are merged into the output.")]
LoraROpt = Annotated[int | None, typer.Option("--lora-r", help="LoRA rank.")]
LoraAlphaOpt = Annotated[int | None, typer.Option("--lora-alpha", help="LoRA alpha.")]
ResumeOpt = Annotated[bool, typer.Option("--resume", help="Continue the run in --out from where it stopped.")]
PodsOpt = Annotated[int | None, typer.Option("--pods-m", help="PODS: train on the M max-variance completions of each "
                                                              "group.")]
MaskTruncatedOpt = Annotated[bool | None, typer.Option("--mask-truncated/--no-mask-truncated",
                                                       help="Leave truncated completions out of the loss.")]
DynamicSamplingOpt = Annotated[bool | None, typer.Option("--dynamic-sampling/--no-dynamic-sampling",
                                                         help="Drop zero-variance groups and refill (DAPO).")]
MaxRefillsOpt = Annotated[int | None, typer.Option("--max-refills", help="Dynamic sampling: extra sampling rounds "
                                                                         "per step at most.")]
FilterOnOpt = Annotated[str | None, typer.Option("--filter-on", help="What dynamic sampling tests for equal rewards: "
                                                 "outcome (the verifiable reward) or reward (the weighted sum); "
                                                 "default: outcome when math, exact or code is among the rewards.")]
SuccessThresholdOpt = Annotated[float | None, typer.Option(
    "--success-threshold", help="A rollout succeeds when its outcome reward (math, exact or code among several "
                                "rewards, else the sum) is >= this; the ledger's counts and the curricula use it.")]

WaitOpt = Annotated[float | None, typer.Option(
    "--wait", min=0, show_default="$CURATE_LOCK_TIMEOUT or 60",
    help="Seconds to wait while another command holds the workspace (a commit takes it briefly), with a "
         "message; 0 fails at once with 'workspace busy (pid N, command C)'.")]


def open_workspace(path: Path | None, wait: float | None = None, *, create: bool = True):
    """The workspace a command works in, `--wait` applied; waits and stale locks are reported on stderr."""
    from curate.catalog.workspace import Workspace
    from curate.cli.ui import note

    return Workspace.open(path, lock_timeout=wait, create=create, on_wait=lambda message: note("note", message))
EngineOpt = Annotated[str, typer.Option("--engine", help="Where model scoring runs: local (this process) or ray "
                                                         "(Ray Data actors; pip install 'curate[ray]').")]
WorkersOpt = Annotated[int, typer.Option("--workers", min=1, help="--engine ray: model-holding actors (one GPU "
                                                                  "each where the cluster has GPUs).")]
AddressOpt = Annotated[str | None, typer.Option("--address", help="--engine ray: join the Ray cluster at this "
                                                                  "address (e.g. auto); without it a local Ray "
                                                                  "starts.")]


def parse_key_values(items: list[str] | None, option: str) -> dict[str, str]:
    out = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise BadUsage(f"{option} {item!r} is not KEY=VALUE")
        out[key.strip()] = value.strip()
    return out
NprocOpt = Annotated[int | None, typer.Option("--nproc", help="Train on N processes (torchrun: gloo on CPU, nccl "
                                                              "with one GPU per process); 1: this process.")]
FsdpOpt = Annotated[bool | None, typer.Option("--fsdp/--no-fsdp", help="With --nproc: shard weights, gradients and optimizer state "
                                                      "over the processes (FSDP2) instead of replicating them.")]
BaseUrlOpt = Annotated[list[str] | None, typer.Option("--base-url", help="OpenAI-compatible server URL (e.g. vLLM "
                                                                         "serve's http://host:8000/v1); repeat to "
                                                                         "spread requests over several servers.")]
