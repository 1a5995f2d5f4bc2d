"""`curate demo`: the whole pipeline on a built-in synthetic pool, offline."""

from __future__ import annotations

from typing import Annotated

import typer

from curate.catalog.workspace import Workspace
from curate.cli import ui
from curate.cli.options import ConfigOpt, DebugOpt, QuietOpt, SeedOpt, WorkspaceOpt, command, given


def demo_cmd(
    rows: Annotated[int, typer.Option(help="Problems in the synthetic pool.")] = 2000,
    proxy_steps: Annotated[int, typer.Option(help="Training steps of the proxy model.")] = 80,
    budget: Annotated[str | None, typer.Option("--budget", "-b", help="Problems the curated subset keeps (dedup, "
                                                                     "perplexity, fisher, token-clean): a count, a "
                                                                     "fraction or a percentage.")] = None,
    sft_steps: Annotated[int, typer.Option(help="SFT steps on the curated and on the random subset.")] = 40,
    curate: Annotated[bool, typer.Option(help="Select, train and compare after the proxy (--no-curate skips it).")] = True,
    loop_rounds: Annotated[int, typer.Option(help="Closed-loop GRPO rounds from the proxy model (0: none).")] = 4,
    workspace: WorkspaceOpt = None,
    config: ConfigOpt = None,
    seed: SeedOpt = 0,
    quiet: QuietOpt = False,
    debug: DebugOpt = False,
) -> None:
    """Run curate end to end on a built-in pool of arithmetic word problems (no network needed).

    Examples:
      curate demo
      curate demo --rows 5000 --workspace /tmp/demo-ws
    """
    from curate.demo import run_demo  # imports torch: keep `curate --help` fast

    ws = Workspace.open(workspace)
    say = (lambda _: None) if quiet else ui.say
    with ui.progress("demo", quiet=quiet, unit="steps") as update:
        report = run_demo(ws, rows=rows, proxy_steps=proxy_steps, seed=seed, say=say,
                          progress=lambda what, done, total: update(done, total=total, description=what,
                                                                    unit=ui.unit_of(what)),
                          sft_steps=sft_steps, curate=curate, loop_rounds=loop_rounds, **given(budget=budget))
    if quiet:
        ui.out.print(report.ingest.version.ref)
        return
    ui.out.print(ui.key_values("curate demo", {
        "workspace": ws.root,
        "pool": f"{report.ingest.rows_read:,} rows ({report.planted_duplicates} planted exact duplicates)",
        "dataset": f"{report.ingest.version.ref}: {report.ingest.version.rows:,} rows, "
                   f"{report.ingest.duplicates} duplicates dropped at ingest",
        "proxy model": f"{report.proxy['tokens']:,} training tokens, loss {report.proxy['first_loss']:.2f} -> "
                       f"{report.proxy['final_loss']:.2f}, {report.proxy['seconds']}s",
        "proxy loss, clean responses": f"{report.loss_clean:.3f} nats/token",
        "proxy loss, corrupted responses": f"{report.loss_corrupt:.3f} nats/token",
        **_curation_rows(report.curation),
        "seconds": report.seconds,
    }))
    if report.loop is not None:
        ui.out.print(_loop_table(report.loop))
    if report.curation is not None:
        ui.out.print(f"next: curate show {report.curation.curated.version.ref}   ·   "
                     f"curate export {report.curation.curated.version.ref} --to curated.jsonl --trl")
    else:
        ui.out.print("next: curate show demo   ·   curate export demo --to demo.jsonl --trl")


def _curation_rows(curation) -> dict[str, str]:
    if curation is None:
        return {}
    steps = {s.strategy: s for s in curation.curated.steps}
    rates = curation.corrupt_rate
    return {
        "dedup": f"{steps['dedup'].rows_in - steps['dedup'].rows_out} near-duplicates dropped "
                 f"({curation.near_found} of {curation.near_planted} planted)",
        "perplexity": f"{steps['perplexity'].rows_in - steps['perplexity'].rows_out} least plausible rows dropped",
        "fisher": f"{steps['fisher'].rows_out} of {steps['fisher'].rows_in} problems kept (greedy log-det)",
        "token-clean": f"{curation.kept_token_fraction:.0%} of response tokens kept",
        "corrupted rows": f"pool {rates['pool']:.1%}, curated {rates['curated']:.1%}, random {rates['random']:.1%}",
        "held-out accuracy": f"curated {curation.accuracy['curated']:.1%} vs random {curation.accuracy['random']:.1%} "
                             f"({curation.held_out} problems, same SFT steps)",
        "held-out loss": f"curated {curation.held_out_loss['curated']:.3f} vs random "
                         f"{curation.held_out_loss['random']:.3f} nats/token",
    }


def _loop_table(loop):
    rows = [[0, "-", f"{loop.eval_before:.3f}", "-", 0]]
    rows += [[r["round"], f"{r['train_reward']:.3f}", f"{r['eval_reward']:.3f}", f"{r['frac_reward_zero_std']:.2f}",
              r["rollouts_total"]] for r in loop.rows]
    title = (f"curate loop ({loop.state['config']['strategy']}, reward {loop.state.get('reward', 'math')}) "
             f"-> {loop.out_dir}")
    return ui.table(title, ["round", "train reward", "held-out reward", "zero-std groups", "rollouts"], rows)


def register(app: typer.Typer) -> None:
    app.command("demo", cls=command("curate.demo:run_demo"))(demo_cmd)
