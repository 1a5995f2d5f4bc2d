"""Training commands: `curate train proxy`, `curate train sft`, `curate train grpo`."""

from __future__ import annotations

import contextlib
import math
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any

import typer

from curate.catalog.versions import resolve
from curate.cli import ui
from curate.cli.options import (BatchTokensOpt, ConfigOpt, DebugOpt, DeviceOpt, DtypeOpt, DynamicSamplingOpt,
                                FilterOnOpt, FsdpOpt, GradAccumOpt, Group, GroupSizeOpt, LoraAlphaOpt, LoraOpt,
                                LoraROpt, LossOpt, LossTypeOpt, LrOpt, MaskTruncatedOpt, MaxCompletionOpt,
                                MaxLengthOpt, MaxPromptOpt, MaxRefillsOpt, ModelOpt, NprocOpt, PackingOpt, PodsOpt,
                                QuietOpt, ResumeOpt, RewardOpt, RewardWeightOpt, SaveEveryOpt, ScheduleOpt, SeedOpt,
                                StepsOpt, SuccessThresholdOpt, TemperatureOpt, TemplateOpt, TopPOpt, WaitOpt,
                                WarmupOpt, WorkspaceOpt, backend_option, command, given, open_workspace, out_option)
from curate.train.proxy import STEPS_ENV, ProxyConfig, default_config, ensure_proxy

train_app = typer.Typer(help="Train models: the proxy, SFT and GRPO.", no_args_is_help=True, cls=Group)

RefArg = Annotated[str, typer.Argument(help="Training data: NAME or NAME@vN (a selection's output works too).")]
OutOpt = Annotated[Path | None, out_option("Output folder: checkpoints, metrics.jsonl and the final model "
                                           "(default: WS/runs/NAME-KIND).")]


def _prepare(ref: str, model: str, workspace: Path | None, out: Path | None, kind: str, quiet: bool,
             wait: float | None = None):
    """The workspace, the dataset version, the model as a loadable path (`proxy` resolved), the output folder."""
    from curate.train.proxy import resolve_model

    ws = open_workspace(workspace, wait)
    version = resolve(ws, ref)
    with ui.progress(f"proxy model for {version.ref}", total=default_config().steps,
                     quiet=quiet or model != "proxy", unit="steps") as update:
        model_path = resolve_model(ws, version, model, progress=lambda step, loss: update(step))
    return ws, version, model_path, out or ws.root / "runs" / f"{version.name}-{kind}"


def _relaunched(ctx: typer.Context, nproc: int | None) -> bool:
    """With --nproc N > 1 outside torchrun: run this command line on N processes under torchrun, then True."""
    from curate.errors import BadUsage
    from curate.train.distributed import launch, launched_by_torchrun

    if nproc is not None and nproc < 1:
        raise BadUsage(f"--nproc must be >= 1, got {nproc}", hint="--nproc 2")
    if not nproc or nproc == 1 or launched_by_torchrun():
        return False
    argv = (ctx.find_root().obj or {}).get("argv")
    if argv is None:
        raise BadUsage("--nproc relaunches the curate command line, which this call did not come from",
                       hint="run `curate train sft ... --nproc N`, or `torchrun --nproc-per-node N -m curate train sft ...`")
    code = launch(nproc, argv)
    if code:
        raise typer.Exit(code)
    return True


def _prepare_ranked(ref: str, model: str, workspace: Path | None, out: Path | None, kind: str, quiet: bool,
                    device: str | None, wait: float | None = None):
    """`_prepare` on every rank, rank 0 first (it may train the proxy; the others then find it cached)."""
    from curate.train.distributed import barrier, setup

    dist, _ = setup(device or "auto")
    if not dist.main:
        barrier(dist)
    prepared = _prepare(ref, model, workspace, out, kind, quiet or not dist.main, wait)
    if dist.main:
        barrier(dist)
    return dist, prepared


@contextlib.contextmanager
def _warnings_to_console(quiet: bool) -> Iterator[None]:
    """Library warnings (dynamic sampling at its cap, ...) as one yellow line each."""
    previous = warnings.showwarning

    def show(message, category, filename, lineno, file=None, line=None):
        if not quiet and category.__module__.startswith("curate"):
            ui.note("warning", message)

    warnings.showwarning = show
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("default")
            warnings.filterwarnings("ignore", module="(transformers|torch|peft|accelerate|trl)")
            yield
    finally:
        warnings.showwarning = previous


LogEveryOpt = Annotated[int, typer.Option(help="Print a metrics line every N steps (0: none); all go to "
                                                "OUT/metrics.jsonl.")]
SFT_LINE = (("loss", "loss"), ("nll", "nll"), ("learning_rate", "lr"), ("grad_norm", "grad"),
            ("tokens_per_second", "tok/s"))
GRPO_LINE = (("reward", "reward"), ("reward_std", "std"), ("frac_reward_zero_std", "zero-std"), ("loss", "loss"),
             ("kl", "kl"), ("entropy", "entropy"), ("clip_ratio/region_mean", "clip"),
             ("completions/mean_length", "len"), ("completions/clipped_ratio", "truncated"),
             ("tokens_per_second", "tok/s"))


def _metrics_line(step: int, total: int, metrics: dict, fields: tuple, every: int, quiet: bool) -> None:
    """One console line of TRL-style metrics every `every` steps (and at the last step)."""
    if quiet or every <= 0 or (step % every and step != total):
        return
    parts = [f"{label} {_fmt(metrics[key])}" for key, label in fields if key in metrics]
    ui.err.print(ui.styled(f"step {step}/{total}", "dim") + ui.styled("  " + "  ".join(parts)))


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return "nan" if math.isnan(value) else f"{value:.4g}"
    return str(value)


@train_app.command("proxy", cls=command())
def proxy_cmd(
    ref: Annotated[str, typer.Argument(help="NAME or NAME@vN.")],
    steps: Annotated[int, typer.Option(help="Optimizer steps (also what --model proxy trains).",
                                       envvar=STEPS_ENV)] = ProxyConfig.steps,
    max_examples: Annotated[int, typer.Option(help="Examples sampled from the dataset.")] = ProxyConfig.max_examples,
    workspace: WorkspaceOpt = None,
    wait: WaitOpt = None,
    config: ConfigOpt = None,
    seed: SeedOpt = 0,
    quiet: QuietOpt = False,
    debug: DebugOpt = False,
) -> None:
    """Train (or fetch from the cache) the proxy model that `--model proxy` uses for a dataset.

    Examples:
      curate train proxy gsm8k
      curate train proxy gsm8k@v1 --steps 600
    """
    ws = open_workspace(workspace, wait)
    version = resolve(ws, ref)
    proxy_config = ProxyConfig(steps=steps, max_examples=max_examples, seed=seed)
    with ui.progress(f"training proxy on {version.ref}", total=steps, quiet=quiet, unit="steps") as update:
        folder, stats = ensure_proxy(ws, version, proxy_config, progress=lambda step, loss: update(step))
    if quiet:
        ui.out.print(str(folder))
        return
    ui.out.print(ui.key_values(f"proxy for {version.ref}", {
        "folder": folder, "cached": stats.get("cached", False), "examples": f"{stats['examples']:,}",
        "tokens": f"{stats['tokens']:,}", "loss": f"{stats['first_loss']:.3f} -> {stats['final_loss']:.3f}",
        "seconds": stats["seconds"],
    }))


@train_app.command("sft", cls=command("curate.train.sft:SFTConfig"))
def sft_cmd(
    ctx: typer.Context,
    ref: RefArg,
    model: ModelOpt,
    out: OutOpt = None,
    steps: StepsOpt = None,
    lr: LrOpt = None,
    batch_tokens: BatchTokensOpt = None,
    grad_accum: GradAccumOpt = None,
    packing: PackingOpt = None,
    warmup: WarmupOpt = None,
    lr_schedule: ScheduleOpt = None,
    loss: LossOpt = None,
    max_length: MaxLengthOpt = None,
    template: TemplateOpt = None,
    save_every: SaveEveryOpt = None,
    lora: LoraOpt = None,
    lora_r: LoraROpt = None,
    lora_alpha: LoraAlphaOpt = None,
    dtype: DtypeOpt = None,
    device: DeviceOpt = None,
    nproc: NprocOpt = None,
    fsdp: FsdpOpt = None,
    resume: ResumeOpt = False,
    log_every: LogEveryOpt = 10,
    workspace: WorkspaceOpt = None,
    wait: WaitOpt = None,
    config: ConfigOpt = None,
    seed: SeedOpt = 0,
    quiet: QuietOpt = False,
    debug: DebugOpt = False,
) -> None:
    """Supervised fine-tuning on a dataset version: loss on response tokens only (token masks honoured).

    The output folder holds the model (a Hugging Face folder `curate.lm.load` and vLLM open),
    `checkpoint/` (model, optimizer, step, config) and `metrics.jsonl`.

    Examples:
      curate train sft gsm8k --model Qwen/Qwen2.5-0.5B --out runs/sft --steps 500 --lr 1e-5
      curate train sft gsm8k-clean@v2 --model ./base --loss dft --lora --lora-r 32
      curate train sft gsm8k --model proxy --steps 50 --out runs/tiny
      curate train sft gsm8k --model ./base --out runs/sft --steps 1000 --resume
      curate train sft gsm8k --model ./base --out runs/sft --nproc 8 --grad-accum 2
    """
    if _relaunched(ctx, nproc):
        return
    from curate.train.sft import SFTConfig, train_sft  # imports torch: keep `curate --help` fast

    dist, (ws, version, model_path, out_dir) = _prepare_ranked(ref, model, workspace, out, "sft", quiet, device, wait)
    quiet = quiet or not dist.main
    cfg = SFTConfig(**given(steps=steps, lr=lr, batch_tokens=batch_tokens, grad_accum=grad_accum, packing=packing,
                            warmup=warmup, lr_schedule=lr_schedule, loss=loss, max_length=max_length, template=template,
                            save_every=save_every, lora=lora, lora_r=lora_r, lora_alpha=lora_alpha, dtype=dtype,
                            device=device, fsdp=fsdp), seed=seed)
    def show(step: int, metrics: dict) -> None:
        update(step, description=f"sft on {version.ref}  loss {metrics['loss']:.4f}")
        _metrics_line(step, cfg.steps, metrics, SFT_LINE, log_every, quiet)

    with _warnings_to_console(quiet), \
            ui.progress(f"sft on {version.ref}", total=cfg.steps, quiet=quiet, unit="steps") as update:
        stats = train_sft(model_path, version, out_dir, cfg, resume=resume, progress=show)
    if not dist.main:
        return
    if quiet:
        ui.out.print(str(out_dir))
        return
    ui.out.print(ui.key_values(f"sft on {version.ref}", {
        "model": model_path, "output": out_dir, "steps": stats["steps"], "resumed from": stats["resumed_from"],
        "processes": stats["processes"], "examples": ui.human(stats["examples"]), "no response (skipped)": stats["skipped_no_response"],
        "truncated": stats["truncated"], "masked tokens": ui.human(stats["masked_tokens"]),
        "trained tokens": ui.human(stats["tokens"]),
        "loss": f"{_fmt(stats['first_loss'])} -> {_fmt(stats['final_loss'])}", "seconds": stats["seconds"],
    }))


@train_app.command("grpo", cls=command("curate.train.grpo_config:GRPOConfig", reward_weight="reward_weights",
                                           mask_truncated="mask_truncated_completions"))
def grpo_cmd(
    ctx: typer.Context,
    ref: RefArg,
    model: ModelOpt,
    reward: RewardOpt,
    reward_weight: RewardWeightOpt = None,
    out: OutOpt = None,
    steps: StepsOpt = None,
    prompts_per_step: Annotated[int | None, typer.Option(help="Prompts sampled per step.")] = None,
    num_generations: GroupSizeOpt = None,
    pods_m: PodsOpt = None,
    max_prompt_length: MaxPromptOpt = None,
    max_completion_length: MaxCompletionOpt = None,
    temperature: TemperatureOpt = None,
    top_p: TopPOpt = None,
    lr: LrOpt = None,
    warmup: WarmupOpt = None,
    lr_schedule: ScheduleOpt = None,
    loss_type: LossTypeOpt = None,
    scale_rewards: Annotated[str | None, typer.Option(help="Advantage scaling: group, batch or none.")] = None,
    epsilon: Annotated[float | None, typer.Option(help="Lower clip range of the ratio.")] = None,
    epsilon_high: Annotated[float | None, typer.Option(help="Upper clip range (DAPO clip-higher: 0.28).")] = None,
    beta: Annotated[float | None, typer.Option(help="KL weight to the starting model (k3); 0: no reference.")] = None,
    num_iterations: Annotated[int | None, typer.Option(help="mu: optimizer steps per batch of rollouts.")] = None,
    mask_truncated: MaskTruncatedOpt = None,
    dynamic_sampling: DynamicSamplingOpt = None,
    max_refills: MaxRefillsOpt = None,
    filter_on: FilterOnOpt = None,
    success_threshold: SuccessThresholdOpt = None,
    sft_weight: Annotated[float | None, typer.Option(help="CHORD: weight of an SFT term on expert responses.")] = None,
    sft_weight_end: Annotated[float | None, typer.Option(help="CHORD: the SFT weight at the last step.")] = None,
    sft_schedule: Annotated[str | None, typer.Option(help="CHORD: constant, linear, cosine or chord (warm-up, "
                                                          "then cosine decay, as the paper).")] = None,
    sft_warmup: Annotated[int | None, typer.Option("--sft-warmup", help="CHORD schedule: warm-up steps from 0 to "
                                                   "--sft-weight.")] = None,
    sft_data: Annotated[str | None, typer.Option("--sft-data", help="CHORD: expert dataset (NAME or NAME@vN, with "
                                                 "responses) for the SFT term (default: the batch prompts' own "
                                                 "responses).")] = None,
    batch_tokens: BatchTokensOpt = None,
    template: TemplateOpt = None,
    save_every: SaveEveryOpt = None,
    lora: LoraOpt = None,
    lora_r: LoraROpt = None,
    lora_alpha: LoraAlphaOpt = None,
    dtype: DtypeOpt = None,
    device: DeviceOpt = None,
    nproc: NprocOpt = None,
    fsdp: FsdpOpt = None,
    resume: ResumeOpt = False,
    log_every: LogEveryOpt = 10,
    backend: Annotated[str, backend_option("Rollouts with hf (transformers) or vllm (the `vllm` extra; the engine "
                                           "gets the policy's weights before every step).")] = "hf",
    gpu_memory_utilization: Annotated[float, typer.Option(help="vllm: share of GPU memory for the engine, "
                                                               "which sits beside the trainer.")] = 0.3,
    workspace: WorkspaceOpt = None,
    wait: WaitOpt = None,
    config: ConfigOpt = None,
    seed: SeedOpt = 0,
    quiet: QuietOpt = False,
    debug: DebugOpt = False,
) -> None:
    """GRPO with verifiable rewards on a dataset's prompts; every rollout goes to the prompt ledger.

    Examples:
      curate train grpo gsm8k --model runs/sft --reward math --out runs/grpo --steps 200
      curate train grpo gsm8k --model ./sft --reward math --reward format --reward-weight 1 --reward-weight 0.2
      curate train grpo mbpp --model ./coder --reward code -G 16 --pods-m 4 --dynamic-sampling
      curate train grpo gsm8k --model ./sft --reward mylib.rewards:score --loss-type dr_grpo --scale-rewards none
      curate train grpo gsm8k --model ./sft --reward math --sft-weight 0.5 --sft-weight-end 0.05 --sft-schedule cosine
      curate train grpo gsm8k --model ./sft --reward math --sft-data experts --sft-weight 0.9 --sft-weight-end 0.05 --sft-schedule chord
      curate train grpo gsm8k --model ./sft --reward math --backend vllm --gpu-memory-utilization 0.3
      curate train grpo gsm8k --model ./sft --reward math --nproc 4 --prompts-per-step 32
    """
    if fsdp:
        from curate.errors import BadUsage

        raise BadUsage("--fsdp shards SFT only: GRPO's ranks generate completions of different lengths, so "
                       "they cannot step through sharded layers together",
                       hint="train GRPO data-parallel with --nproc N alone (each rank holds the model)")
    if _relaunched(ctx, nproc):
        return
    from curate.train.grpo import train_grpo  # imports torch: keep `curate --help` fast
    from curate.train.grpo_config import GRPOConfig

    dist, (ws, version, model_path, out_dir) = _prepare_ranked(ref, model, workspace, out, "grpo", quiet, device, wait)
    quiet = quiet or not dist.main
    cfg = GRPOConfig(**given(steps=steps, prompts_per_step=prompts_per_step, num_generations=num_generations,
                            pods_m=pods_m, max_prompt_length=max_prompt_length,
                            max_completion_length=max_completion_length, temperature=temperature, top_p=top_p, lr=lr,
                            warmup=warmup, lr_schedule=lr_schedule, loss_type=loss_type, scale_rewards=scale_rewards,
                            epsilon=epsilon, epsilon_high=epsilon_high, beta=beta, num_iterations=num_iterations,
                            mask_truncated_completions=mask_truncated, dynamic_sampling=dynamic_sampling,
                            max_refills=max_refills, sft_weight=sft_weight, sft_weight_end=sft_weight_end,
                            filter_on=filter_on, success_threshold=success_threshold, sft_warmup=sft_warmup,
                            sft_schedule=sft_schedule, batch_tokens=batch_tokens, template=template,
                            save_every=save_every, lora=lora, lora_r=lora_r, lora_alpha=lora_alpha, dtype=dtype,
                            device=device, reward_weights=tuple(reward_weight) if reward_weight else None),
                     seed=seed)

    def show(step: int, metrics: dict) -> None:
        update(step, description=f"grpo on {version.ref}  reward {_fmt(metrics['reward'])}")
        _metrics_line(step, cfg.steps, metrics, GRPO_LINE, log_every, quiet)

    with _warnings_to_console(quiet), \
            ui.progress(f"grpo on {version.ref}", total=cfg.steps, quiet=quiet, unit="steps") as update:
        stats = train_grpo(model_path, version, out_dir, cfg, reward=list(reward), ws=ws, resume=resume,
                           progress=show, expert_data=resolve(ws, sft_data) if sft_data else None,
                           backend=_rollout_backend(backend, model_path, cfg, gpu_memory_utilization))
    if not dist.main:
        return
    if quiet:
        ui.out.print(str(out_dir))
        return
    ui.out.print(ui.key_values(f"grpo on {version.ref}", {
        "model": model_path, "output": out_dir, "steps": stats["steps"], "resumed from": stats["resumed_from"],
        "rewards": ", ".join(stats["rewards"]), "prompts": ui.human(stats["prompts"]),
        "prompts too long (skipped)": stats["prompts_too_long"],
        "mean reward, first -> last quarter": f"{_fmt(stats['reward_first'])} -> {_fmt(stats['reward_last'])}",
        "unscored completions (None)": stats["reward_nones"], "ledger run": stats["run"],
        "ledger model key": stats["model_key"], "tokens": ui.human(stats["tokens"]), "seconds": stats["seconds"],
    }))


def register(app: typer.Typer) -> None:
    app.add_typer(train_app, name="train")


def _rollout_backend(name: str, model_path: str, cfg, gpu_memory_utilization: float):
    """None for hf (train_grpo samples from the policy itself); a colocated vLLM engine for vllm."""
    if name == "hf":
        return None
    if name != "vllm":
        from curate.errors import BadUsage

        raise BadUsage(f"unknown rollout backend {name!r}", hint="--backend hf or --backend vllm")
    from curate.lm.vllm_backend import VLLMBackend

    # The engine loads --model; on --resume too, sync_weights hands it the policy before every step.
    return VLLMBackend(model_path, template=cfg.template, dtype=cfg.dtype, colocate=True,
                       gpu_memory_utilization=gpu_memory_utilization)

