"""Render the report's data (`curate.report.build`) as one HTML page; every number on the page is
read from that data, so the page and the JSON sidecar cannot disagree."""

from __future__ import annotations

from html import escape
from typing import Any

from curate.report import svg
from curate.report.lineage import draw
from curate.report.page import cards, esc, key_values, note, page, table
from curate.report.rl import column

MAX_EXAMPLE_REASONS = 6


def render(data: dict[str, Any]) -> str:
    subtitle = f"generated {data['generated_at']} by curate {data['curate_version']}"
    if data["kind"] == "version":
        return page(f"curate report · {data['title']}", subtitle, _version(data))
    if data["kind"] == "loop":
        return page(f"curate report · {data['title']}", subtitle + f" · {data['folder']}", _loop(data))
    return page(f"curate report · {data['title']}", subtitle + f" · {data['folder']}", _train(data))


# -- a dataset version ----------------------------------------------------------------------------
def _version(data: dict[str, Any]) -> str:
    show = data["show"]
    parts = [cards({"rows": show["rows"], "prompt type": show["prompt_type"],
                    "license(s)": ", ".join(data["licenses"]) or "not recorded",
                    "domains": len(show["domains"]), "lineage steps": len(show["lineage"]),
                    "content hash": show["content_hash"][:16]})]
    parts.append("<h2>Lineage</h2>")
    if data["lineage_graph"]["truncated"]:
        parts.append(note("The lineage is longer than the graph shows (cut after 30 versions)."))
    parts.append(f'<div class="scroll">{draw(data["lineage_graph"])}</div>')
    parts.append(table(["step", "op", "strategy", "inputs", "model", "rows in", "rows out", "dropped", "seconds"],
                       [[s["step"], s["op"], s["strategy"], ", ".join(s["inputs"]), s["model_id"], s["rows_in"],
                         s["rows_out"], _counts(s["drop_counts"]), s["duration_s"]] for s in show["lineage"]],
                       numeric=(0, 5, 6, 8)))
    if data["generators"]:
        parts.append("<h3>Generator models (synthetic rows)</h3>")
        parts.append(table(["model", "recipe", "license", "terms", "versions"],
                           [[g["model"], g["recipe"], g["license_name"] or g["license"] or "unknown",
                             g["warning"] or g["license_kind"] or "", ", ".join(g["versions"])]
                            for g in data["generators"]]))
    parts.append(_contents(show))
    for step in data["steps"]:
        parts.append(_step(step))
    if data["token_mask"]:
        parts.append(_tokens(data["token_mask"]))
    if data["ledger"]:
        parts.append("<h2>Prompt ledger (RL)</h2>")
        parts.append(_ledger(data["ledger"]))
    if data["curriculum"]:
        parts.append("<h2>Curriculum stages</h2>")
        parts.append(table(["stage", "version", "layout", "pass rate from", "to", "rows", "model key"],
                           [[s["stage"], s["version"], s["layout"], s["pass_rate_min"], s["pass_rate_max"], s["rows"],
                             s["model_key"]] for s in data["curriculum"]], numeric=(0, 3, 4, 5)))
    if data["comparisons"]:
        parts.append(_comparisons(data["comparisons"]))
    return "\n".join(parts)


def _counts(counts: dict[str, int]) -> str:
    return ", ".join(f"{reason} {n:,}" for reason, n in counts.items()) or "–"


def _contents(show: dict[str, Any]) -> str:
    parts = ['<h2>Contents</h2><div class="row-flex"><div class="panel">']
    domains = show["domains"]
    if domains and not (len(domains) == 1 and domains[0][0] is None):
        parts.append(svg.bars([str(d) if d is not None else "(none)" for d, _ in domains],
                              {"rows": [n for _, n in domains]}, title="rows per domain",
                              frame=svg.Frame(width=520, height=200)))
    parts.append(table(["domain", "rows"], [[d if d is not None else "(none)", n] for d, n in domains], numeric=(1,)))
    parts.append('</div><div class="panel"><h4>lengths (characters)</h4>')
    parts.append(table(["column", "min", "median", "mean", "p95", "max"],
                       [[c, s.get("min"), s.get("median"), s.get("mean"), s.get("p95"), s.get("max")]
                        for c, s in show["lengths"].items()], numeric=(1, 2, 3, 4, 5)))
    parts.append("<h4>non-null values per column</h4>")
    parts.append(table(["column", "non-null"], [[c, n] for c, n in show["non_null"].items()], numeric=(1,)))
    if show["drops"]:
        parts.append("<h4>dropped on the way to this version, by reason</h4>")
        parts.append(table(["reason", "rows"], list(show["drops"].items()), numeric=(1,)))
    parts.append("</div></div>")
    return "\n".join(parts)


def _step(step: dict[str, Any]) -> str:
    name = step["strategy"] or step["op"]
    parts = [f'<h2>Step {step["step"] + 1}: {escape(step["op"])} · {escape(name)}</h2>']
    kept = step["rows_out"]
    summary = {"rows in": step["rows_in"], "kept": kept,
               **{f"dropped: {r}": n for r, n in step["drop_counts"].items()}}
    parts.append(cards(summary))
    shown = {k: v for k, v in step["params"].items() if k not in ("generator", "sampling", "config")}
    details = [["model", step["model_id"]], ["seed", step["seed"]], ["seconds", step["seconds"]],
               ["parameters", shown]]
    parts.append(key_values([d for d in details if d[1] not in (None, {}, "")]))
    charts = []
    scores = step["scores"]
    if scores and scores["histogram"]:
        hist = scores["histogram"]
        cuts = [(value, label) for value, label in scores["cuts"]]
        extra = ""
        if scores["no_score"]:
            extra = f"; {scores['no_score']:,} rows have no score"
            extra += f" ({scores['no_score_means']})" if scores.get("no_score_means") else ""
        if not cuts:
            extra += "; no single threshold separates kept from dropped rows (a set or sampling strategy)"
        charts.append(svg.histogram(hist["edges"], {"kept": hist["kept"], "dropped": hist["dropped"]},
                                    title=f"{name} score", x_label=f"{name} score", cuts=cuts)
                      + f'<div class="sub">{scores["rows"]:,} rows seen, {scores["kept"]:,} kept{extra}. Mean score '
                        f'of the kept rows {esc(scores["kept_mean"])}, of the dropped {esc(scores["dropped_mean"])}.</div>')
    elif step["op"] == "select":
        charts.append(note("This selection did not record its scores (it was made before curate kept them)."))
    if step["domains"]:
        flow = step["domains"]
        charts.append(svg.bars(flow["domains"], {"before the step": flow["before"], "after": flow["after"]},
                               title="rows per domain before and after", frame=svg.Frame(width=520, height=220),
                               colours=("#A9B4C2", svg.KEPT)))
    if charts:
        parts.append('<div class="row-flex">' + "".join(f'<div class="panel">{c}</div>' for c in charts) + "</div>")
    parts.append(_examples(step))
    return "\n".join(parts)


def _example(row: dict[str, Any], kind: str, label: str) -> str:
    parts = [f'<div class="example {kind}"><div class="meta"><span class="tag {kind}">{escape(label)}</span>'
             f'<code>{escape(str(row.get("id", ""))[:16])}</code>']
    if row.get("domain"):
        parts.append(f' · {escape(str(row["domain"]))}')
    if row.get("detail"):
        parts.append(f' · {escape(str(row["detail"]))}')
    parts.append("</div>")
    for key in ("prompt", "response"):
        if row.get(key) is not None:
            parts.append(f"<pre>{escape(row[key])}</pre>")
    parts.append("</div>")
    return "".join(parts)


def _examples(step: dict[str, Any]) -> str:
    dropped = step["dropped_examples"]
    kept = step["kept_examples"]
    if not dropped and not kept:
        return ""
    left = [f"<h4>kept ({len(kept)} of {step['rows_out']:,}, from the first to the last in order)</h4>"]
    left += [_example(r, "kept", "kept") for r in kept]
    right = []
    for reason in list(dropped)[:MAX_EXAMPLE_REASONS]:
        rows = dropped[reason]
        right.append(f"<h4>dropped: {escape(reason)} ({len(rows)} of {step['drop_counts'].get(reason, len(rows)):,}, "
                     f"from the first dropped to the last)</h4>")
        right += [_example(r, "dropped", reason) for r in rows]
    return f'<div class="examples"><div>{"".join(left)}</div><div>{"".join(right)}</div></div>'


def _tokens(section: dict[str, Any]) -> str:
    parts = ["<h2>Token cleaning: kept and masked tokens</h2>"]
    parts.append(cards({"response tokens": section["tokens"], "kept": section["tokens_kept"],
                        "kept share": f"{section['kept_fraction']:.1%}" if section["kept_fraction"] is not None else None}))
    if section.get("note"):
        parts.append(note(section["note"]))
    if section["examples"]:
        parts.append('<div class="sub">Blue: kept in the SFT loss. Orange, struck through: masked out. '
                     f'Tokenizer: {escape(str(section.get("tokenizer")))}</div>')
    for example in section["examples"]:
        spans = "".join(f'<span class="{"k" if kept else "m"}">{escape(text)}</span>'
                        for text, kept in example["tokens"])
        prompt = f'<div class="example"><pre>{escape(example["prompt"])}</pre></div>' if example.get("prompt") else ""
        parts.append(f'<h4><code>{escape(example["id"][:16])}</code></h4>{prompt}<div class="tokens">{spans}</div>')
    return "\n".join(parts)


def _ledger(entries: list[dict[str, Any]]) -> str:
    parts = []
    for entry in entries:
        hist = entry["histogram"]
        parts.append(f'<h3>model key <code>{escape(entry["model_key"])}</code></h3>')
        parts.append(cards({"prompts seen": entry["prompts_seen"], "not yet seen": entry.get("prompts_unseen"),
                            "rollouts": entry["rollouts"], "mean pass rate": entry["mean_pass_rate"],
                            "all right": entry["all_right"], "all wrong": entry["all_wrong"]}))
        parts.append(svg.histogram(hist["edges"], {"prompts": hist["prompts"]}, title="pass rate per prompt",
                                   x_label="pass rate (successes / attempts)", y_label="prompts"))
    return "\n".join(parts)


def _interval(stats: dict[str, Any]) -> str:
    if stats.get("lo") is None:
        return "–"
    return f"[{stats['lo']:.4g}, {stats['hi']:.4g}]"


def _comparisons(entries: list[dict[str, Any]]) -> str:
    parts = ["<h2>Comparisons (curate compare)</h2>"]
    for entry in entries:
        parts.append(f"<h3>{escape(str(entry['name']))}: {escape(str(entry['metric']))} on "
                     f"{escape(str(entry['eval']))}</h3>")
        rows = []
        for arm in entry["arms"]:
            paired = arm.get("vs_random")
            rows.append([arm["strategy"], arm["n"], arm["mean"], arm["sd"], _interval(arm),
                         paired["mean"] if paired else None, _interval(paired) if paired else "–"])
        parts.append(table(["strategy", "seeds", "mean", "sd", "95% interval", "minus random (paired)",
                            "95% interval"], rows, numeric=(1, 2, 3, 5)))
    return "\n".join(parts)


# -- run folders -------------------------------------------------------------------------------
def _loop(data: dict[str, Any]) -> str:
    rounds = data["rounds"]
    config = data["config"]
    parts = [cards({"dataset": data["dataset"], "strategy": config.get("strategy"), "rounds": len(rounds),
                    "rollouts": data["rollouts"], "reward": data["reward"],
                    "held-out before": data["eval_before"],
                    "held-out after": rounds[-1]["eval_reward"] if rounds else None})]
    if rounds:
        x = [0.0] + [float(r["round"]) for r in rounds]
        parts.append('<h2>Rewards per round</h2><div class="row-flex">')
        parts.append('<div class="panel">' + svg.lines(
            x, {"held-out reward": [data["eval_before"]] + column(rounds, "eval_reward"),
                "train reward": [None] + column(rounds, "train_reward")},
            title="reward per round", x_label="round (0: the starting model)", y_label="mean reward") + "</div>")
        parts.append('<div class="panel">' + svg.lines(
            x[1:], {"zero-variance groups": column(rounds, "frac_reward_zero_std"),
                    "all right": column(rounds, "all_right_share"), "all wrong": column(rounds, "all_wrong_share")},
            title="zero-variance share", x_label="round", y_label="share of groups") + "</div></div>")
        parts.append(svg.bars([str(r["round"]) for r in rounds], {"rollouts": column(rounds, "rollouts")},
                              title="rollouts per round", y_label="rollouts", frame=svg.Frame(width=520, height=180)))
        keys = ["round", "prompts", "rollouts", "train_reward", "eval_reward", "frac_reward_zero_std",
                "all_right_share", "all_wrong_share", "seconds"]
        parts.append(table(keys, [[r.get(k) for k in keys] for r in rounds], numeric=tuple(range(len(keys)))))
    steps = data["steps"]
    if steps:
        parts.append("<h2>GRPO steps</h2>")
        parts.append(svg.lines([float(s["global_step"]) for s in steps],
                               {"reward": column(steps, "reward"), "reward std": column(steps, "reward_std")},
                               title="reward per GRPO step", x_label="step (all rounds)", y_label="reward"))
    if data.get("ledger"):
        parts.append("<h2>Prompt ledger of this run's model key</h2>")
        parts.append(_ledger(data["ledger"]))
    elif data.get("ledger_note"):
        parts.append(note(data["ledger_note"]))
    parts.append("<h2>Settings</h2>")
    parts.append(table(["setting", "value"], sorted(config.items())))
    return "\n".join(parts)


def _train(data: dict[str, Any]) -> str:
    steps = data["steps"]
    parts = [cards({"steps": len(steps), "metrics": len(data["metrics"])})]
    if not steps:
        return "\n".join(parts + [note("metrics.jsonl has no rows yet.")])
    x = column(steps, "step")
    x = [v if v is not None else float(i + 1) for i, v in enumerate(x)]
    charts = []
    for group, keys in (("loss", ["loss"]), ("reward", ["reward", "reward_std"]), ("learning rate", ["lr"]),
                        ("zero-variance groups", ["frac_reward_zero_std"])):
        present = {k: column(steps, k) for k in keys if k in data["metrics"]}
        if present:
            charts.append(svg.lines(x, present, title=group, x_label="step", y_label=group))
    parts.append('<div class="row-flex">' + "".join(f'<div class="panel">{c}</div>' for c in charts if c) + "</div>")
    last = steps[-1]
    parts.append("<h2>Last step</h2>")
    parts.append(table(["metric", "value"], [[k, last.get(k)] for k in data["metrics"]], numeric=(1,)))
    if data["config"]:
        parts.append("<h2>Settings</h2>")
        parts.append(table(["setting", "value"], sorted(data["config"].items())))
    return "\n".join(parts)
