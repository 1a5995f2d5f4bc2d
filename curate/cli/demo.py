"""`curate demo`: the whole pipeline on a built-in synthetic pool, offline."""

from __future__ import annotations

import shlex
from typing import Annotated

import typer

from curate.catalog.workspace import Workspace
from curate.cli import ui
from curate.cli.compare import _interval, _value
from curate.cli.options import (ConfigOpt, DebugOpt, QuietOpt, SeedOpt, WaitOpt, WorkspaceOpt, command, given,
                                open_workspace)


def demo_cmd(
    rows: Annotated[int | None, typer.Option(help="Problems in the synthetic pool.")] = None,
    proxy_steps: Annotated[int | None, typer.Option(help="Training steps of the proxy model (the selectors' "
                                                         "scorer).")] = None,
    budget: Annotated[int | None, typer.Option("--budget", "-b", help="Rows every arm of the ablation keeps.")] = None,
    sft_steps: Annotated[int | None, typer.Option(help="SFT steps of every arm and seed.")] = None,
    seeds: Annotated[int | None, typer.Option(help="Seeds per arm (at least 3 for a mean +- sd worth reading).")] = None,
    base: Annotated[str | None, typer.Option(help="The model every arm fine-tunes (a folder that has not seen the "
                                                  "pool); default: a small model warmed up on other synthetic "
                                                  "problems.")] = None,
    base_steps: Annotated[int | None, typer.Option(help="Warm-up steps of the default base.")] = None,
    held_out: Annotated[int | None, typer.Option(help="Fresh problems every arm is scored on (none in the "
                                                      "pool).")] = None,
    curate: Annotated[bool | None, typer.Option("--curate/--no-curate", help="Run the ablation and the loop after "
                                                "the proxy (--no-curate stops after the proxy).")] = None,
    loop_rounds: Annotated[int | None, typer.Option(help="Closed-loop GRPO rounds from the proxy model (0: "
                                                         "none).")] = None,
    workspace: WorkspaceOpt = None,
    wait: WaitOpt = None,
    config: ConfigOpt = None,
    seed: SeedOpt = 0,
    quiet: QuietOpt = False,
    debug: DebugOpt = False,
) -> None:
    """Run curate end to end on a built-in pool of arithmetic word problems (no network needed).

    The pool carries planted faults (wrong answers, garbled, truncated and off-task responses)
    and duplicates. The demo trains the proxy, then compares the curated selection with a random
    one at the same budget: each arm fine-tunes a base that never saw the pool, over several
    seeds, scored on fresh problems (`curate compare`), and ends with a few closed-loop rounds.

    Examples:
      curate demo
      curate demo --seeds 5 --workspace /tmp/demo-ws
      curate demo --base ./my-small-model --sft-steps 300
    """
    from curate.demo.run import run_demo  # imports torch: keep `curate --help` fast
    from curate.demo.base import BaseConfig
    from curate.demo.curation import AblationConfig

    ws = open_workspace(workspace, wait)
    say = (lambda _: None) if quiet else ui.say
    ablation = AblationConfig(**given(budget=budget, seeds=seeds, sft_steps=sft_steps, base=base, held_out=held_out),
                              seed=seed, base_config=BaseConfig(**given(steps=base_steps), seed=seed))
    with ui.progress("demo", quiet=quiet, unit="steps") as update:
        report = run_demo(ws, seed=seed, say=say,
                          progress=lambda what, done, total: update(done, total=total, description=what,
                                                                    unit=ui.unit_of(what)),
                          ablation=ablation, **given(rows=rows, proxy_steps=proxy_steps, curate=curate,
                                                     loop_rounds=loop_rounds))
    if quiet:
        ui.out.print(report.ingest.version.ref)
        return
    ui.out.print(ui.key_values("curate demo", {
        "workspace": ws.root,
        "pool": f"{report.ingest.rows_read:,} rows ({report.planted_duplicates} planted exact duplicates)",
        "dataset": f"{report.ingest.version.ref}: {report.ingest.version.rows:,} rows, "
                   f"{report.ingest.duplicates} duplicates dropped at ingest",
        "proxy model (scorer)": f"{report.proxy['tokens']:,} training tokens, loss {report.proxy['first_loss']:.2f} "
                                f"-> {report.proxy['final_loss']:.2f}, {report.proxy['seconds']}s",
        "proxy loss, clean responses": f"{report.loss_clean:.3f} nats/token",
        "proxy loss, faulty responses": f"{report.loss_faulty:.3f} nats/token",
        **_ablation_facts(report.curation),
        "seconds": report.seconds,
    }))
    if report.curation is not None:
        ui.out.print(_ablation_table(report.curation))
    if report.loop is not None:
        ui.out.print(_loop_table(report.loop))
    if report.curation is not None:
        compare = report.curation.compare
        curated = compare.arms[-1].strategy
        from curate.demo.curation import CANDIDATE_PARAMS, CANDIDATES, TOKEN_CLEAN_ARMS, TOKEN_CLEAN_PARAMS

        ui.out.print("every candidate arm (docs/decisions.md, \"The demo\"): "
                     + candidates_command(report.curation, ws, CANDIDATES, CANDIDATE_PARAMS, "demo-arms"))
        ui.out.print("token-clean, scored by the base (its masks are in the base's tokenizer): "
                     + candidates_command(report.curation, ws, TOKEN_CLEAN_ARMS, TOKEN_CLEAN_PARAMS,
                                          "demo-arms-token-clean", scorer=report.curation.compare.base_model))
        ui.out.print(f"next: curate show demo   ·   curate export demo-compare-{curated.replace(',', '-')} "
                     f"--to curated.jsonl --trl")
    else:
        ui.out.print("next: curate show demo   ·   curate export demo --to demo.jsonl --trl")


def _ablation_facts(curation) -> dict[str, str]:
    if curation is None:
        return {}
    compare = curation.compare
    facts = {"held-out problems": f"{curation.heldout.ref}: {curation.heldout.rows} fresh problems, none in the pool",
             "base model (trained)": curation.base}
    if curation.base_stats:
        stats = curation.base_stats
        facts["base warm-up"] = (f"{stats['warmup']}, {stats['tokens']:,} tokens, loss {stats['first_loss']:.2f} -> "
                                 f"{stats['final_loss']:.2f}" + (" (cached)" if stats.get("cached") else ""))
    if curation.near_planted:
        facts["dedup"] = f"{curation.near_found} of the {curation.near_planted} planted near-duplicates dropped"
    facts["recipe"] = (f"{compare.budget} rows per arm, {compare.recipe['sft']['steps']} SFT steps, lr "
                       f"{compare.recipe['sft']['lr']}, {len(compare.arms[0].values)} seeds, greedy answers "
                       f"scored by `math`")
    return facts


def _ablation_table(curation):
    compare = curation.compare
    rows = []
    for arm in compare.arms:
        paired = arm.diff_mean is not None
        rows.append([arm.strategy, arm.n, f"{_value('accuracy', arm.mean)} ± {_value('accuracy', arm.sd)}",
                     (f"{_value('accuracy', arm.diff_mean, True)} {_interval('accuracy', arm.diff_ci_t, True)}"
                      if paired else "-"),
                     f"{arm.wins}/{arm.ties}/{arm.losses}" if paired else "-",
                     f"{curation.faulty.get(arm.strategy, float('nan')):.1%}",
                     " ".join(_value("accuracy", v) for v in arm.values)])
    if compare.base is not None:
        rows.append(["(base, before SFT)", "-", _value("accuracy", compare.base.metrics.get("accuracy")), "-", "-",
                     "-", "-"])
    rows.append(["(the pool)", "-", "-", "-", "-", f"{curation.faulty['pool']:.1%}", "-"])
    title = (f"held-out accuracy on {compare.eval}: each arm's {compare.budget} rows fine-tune the same base "
             f"(Δ: paired by seed, 95% t interval)")
    return ui.table(title, ["arm", "seeds", "accuracy mean ± sd", "Δ vs random", "W/T/L", "faulty rows picked",
                            "per seed"], rows)


def candidates_command(curation, ws: Workspace, arms: tuple[str, ...], params: dict[str, str], out: str,
                       scorer: str | None = None) -> str:
    """The `curate compare` command that runs `arms` with the demo's recipe, as a new comparison named `out`
    (selectors scored by `scorer`, default the demo's proxy)."""
    compare = curation.compare
    config = compare.config
    parts = ["curate", "compare", compare.pool.split("@")[0]]
    for arm in arms:
        parts += ["-s", arm]
    parts += ["--budget", str(compare.budget), "--seeds", str(config.seeds), "--steps", str(config.steps),
              "--model", compare.base_model, "--eval", compare.eval.split("@")[0],
              "--scorer-model", scorer or config.scorer_model, "--lr", str(config.lr),
              "--batch-tokens", str(config.batch_tokens), "--warmup", str(config.warmup),
              "--max-completion-length", str(config.max_new_tokens), "--out", out, "--seed", str(config.seed),
              "--workspace", str(ws.root)]
    for key, value in sorted(params.items()):
        parts += ["--param", f"{key}={value}"]
    return shlex.join(parts)


def _loop_table(loop):
    rows = [[0, "-", f"{loop.eval_before:.3f}", "-", 0]]
    rows += [[r["round"], f"{r['train_reward']:.3f}", f"{r['eval_reward']:.3f}", f"{r['frac_reward_zero_std']:.2f}",
              r["rollouts_total"]] for r in loop.rows]
    title = (f"curate loop ({loop.state['config']['strategy']}, reward {loop.state.get('reward', 'math')}) "
             f"-> {loop.out_dir}")
    return ui.table(title, ["round", "train reward", "held-out reward", "zero-std groups", "rollouts"], rows)


def register(app: typer.Typer) -> None:
    app.command("demo", cls=command("curate.demo.run:run_demo", "curate.demo.curation:AblationConfig",
                                    "curate.demo.base:BaseConfig", base_steps="steps"))(demo_cmd)
