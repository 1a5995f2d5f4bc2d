"""Kill campaign: each command SIGKILLed at a random moment, then rerun (or resumed), and checked.

Used by tests/reliability/test_kill_campaign.py (3 kills a command, CI) and
benchmarks/kill_campaign.py (20 and more). For every command a clean run is made first, on a
copy of the same prepared workspace; every killed run starts from another copy, is killed at a
moment drawn uniformly over the clean run's duration, and then:

1. the catalog opens and `check_workspace` holds (every listed version has all its shards with
   matching rows and hash, no lineage-less version, no rollout or score stored twice, the
   ledger's counts equal its rollouts);
2. the rerun (with `--resume` where the command has it and a checkpoint exists) exits 0 and the
   workspace still holds;
3. the outcome equals the clean run's: the same version content hash and one version only
   (nothing doubled), the same scores, the same number of rollouts per prompt, for synth no
   cached request sent again and the same rows, for training the same loss at every step
   (identical data order after the resume).

Commands run in children of a fork server (zygote.py): the kill is a real SIGKILL of the
process running the command; only the interpreter's start-up is shared.
"""

from __future__ import annotations

import json
import math
import os
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import duckdb

from curate.catalog.integrity import check_workspace
from curate.catalog.workspace import Workspace

from .helpers import REPO, env

MODEL = "{model}"  # replaced by the tiny model's folder


class Zygote:
    """The fork server as seen from the campaign: spawn a command, kill it, wait for it."""

    def __init__(self) -> None:
        self.proc = subprocess.Popen([sys.executable, "-m", "tests.reliability.zygote"], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True, cwd=REPO, env=env())
        ready = json.loads(self.proc.stdout.readline())
        assert "ready" in ready, ready

    def _ask(self, request: dict) -> dict:
        self.proc.stdin.write(json.dumps(request) + "\n")
        self.proc.stdin.flush()
        return json.loads(self.proc.stdout.readline())

    def spawn(self, argv: list[str], log: Path, extra_env: dict[str, str] | None = None) -> int:
        return self._ask({"spawn": argv, "log": str(log), "env": extra_env or {}})["pid"]

    def wait(self, pid: int) -> int:
        return self._ask({"wait": pid})["status"]

    def run(self, argv: list[str], log: Path, extra_env: dict[str, str] | None = None) -> tuple[int, float]:
        started = time.monotonic()
        status = self.wait(self.spawn(argv, log, extra_env))
        return status, time.monotonic() - started

    def close(self) -> None:
        self.proc.stdin.close()
        self.proc.wait(timeout=30)


@dataclass
class Run:
    """One copy of the prepared workspace, with its command's outputs."""

    root: Path

    @property
    def ws(self) -> Path:
        return self.root / "ws"

    @property
    def out(self) -> Path:
        return self.root / "out"


@dataclass
class Scenario:
    """A command of the campaign: how to run it, rerun it after a kill, and compare with the clean run."""

    name: str
    argv: list[str]
    # What the command's outcome is, to compare with the clean run's (None: nothing to compare).
    outcome: Callable[[Run], object]
    resume: Callable[[Run], list[str]] = lambda run: []  # extra arguments of the rerun
    # Checks between a killed run and its rerun (e.g. what synth had cached); returns a value the
    # `after` check receives.
    before_rerun: Callable[[Run], object] = lambda run: None
    after: Callable[[Run, object, object], list[str]] = lambda run, before, clean: []
    server: object | None = None  # the stub OpenAI server of synth, started by the campaign

    def command(self, run: Run, model: Path) -> list[str]:
        args = [a.replace(MODEL, str(model)).replace("{out}", str(run.out)) for a in self.argv]
        seed = [] if args[0] == "ingest" else ["--seed", "0"]  # ingest draws nothing at random: no --seed
        return [*args, "--workspace", str(run.ws), *seed, "--quiet"]


@dataclass
class KillResult:
    command: str
    delay: float
    killed: bool  # False when the command had finished before the kill came
    problems: list[str] = field(default_factory=list)
    rerun_seconds: float = 0.0
    at_kill: object = None  # what the scenario noted between the kill and the rerun


# ---------------------------------------------------------------- outcomes compared with the clean run

def _catalog(run: Run, sql: str) -> list[tuple]:
    with Workspace.open(run.ws, lock_timeout=60).catalog() as con:
        return con.execute(sql).fetchall()


def versions_of(name: str) -> Callable[[Run], object]:
    return lambda run: _catalog(run, f"SELECT version, rows, content_hash FROM datasets WHERE name = '{name}' "
                                     "ORDER BY version")


def prompts_of(name: str) -> Callable[[Run], object]:
    """Versions and rows by prompt (synth's rows carry the time they were made, so not the content hash)."""
    def outcome(run: Run) -> object:
        from curate.catalog.versions import list_versions

        versions = [v for v in list_versions(Workspace.open(run.ws, lock_timeout=60)) if v.name == name]
        return [(v.version, sorted(v.scan().select("prompt").collect()["prompt"].to_list())) for v in versions]
    return outcome


def scores_kept(run: Run) -> object:
    """How many scores a killed scoring run had committed (what its rerun need not compute again)."""
    return {"kept": _catalog(run, "SELECT count(*) FROM scores")[0][0]}


def scores_of(run: Run) -> object:
    rows = _catalog(run, "SELECT id, scorer_key, value FROM scores ORDER BY ALL")
    return [(i, k, None if v is None or math.isnan(v) else round(v, 5)) for i, k, v in rows]


def rollouts_per_prompt(run: Run) -> object:
    return _catalog(run, "SELECT prompt_id, count(*) FROM rollouts GROUP BY ALL ORDER BY ALL")


def losses(run: Run) -> object:
    """The last logged loss of every step (a resumed run logs the steps after its checkpoint again)."""
    path = run.out / "metrics.jsonl"
    by_step = {}
    for line in path.read_text().splitlines() if path.exists() else []:
        record = json.loads(line)
        if "step" in record and "loss" in record:
            by_step[record["step"]] = round(record["loss"], 4)
    return sorted(by_step.items())


def loop_outcome(run: Run) -> object:
    state = json.loads((run.out / "loop.json").read_text())
    return [r["round"] for r in state["rounds"]], _catalog(run, "SELECT count(*) FROM rollouts")[0][0]


def resume_if(marker: str) -> Callable[[Run], list[str]]:
    """`--resume` when the killed run left `marker` (a glob under its output folder)."""
    return lambda run: ["--resume"] if list(run.out.glob(marker)) else []


# ---------------------------------------------------------------- synth: no cached request sent again

def _cached(run: Run) -> int:
    path = run.ws / "cache" / "generations.sqlite"
    if not path.exists():
        return 0
    with sqlite3.connect(path) as con:
        try:
            return con.execute("SELECT count(*) FROM generations").fetchone()[0]
        except sqlite3.OperationalError:
            return 0


def synth_before(scenario: Scenario) -> Callable[[Run], object]:
    return lambda run: (len(scenario.server.records), _cached(run))


def synth_after(scenario: Scenario, clean_requests: list[int]) -> Callable[[Run, object, object], list[str]]:
    def check(run: Run, before: object, clean: object) -> list[str]:
        sent_before, cached = before
        asked_again = len(scenario.server.records) - sent_before
        if asked_again != clean_requests[0] - cached:
            return [f"synth: the rerun sent {asked_again} requests; {cached} of {clean_requests[0]} were cached, "
                    f"so {clean_requests[0] - cached} were due"]
        return []
    return check


# ---------------------------------------------------------------- the campaign

def pool_rows(n: int) -> list[dict]:
    return [{"prompt": f"What is {i} plus {i % 7}? Think.", "response": f"{i} plus {i % 7} is {i + i % 7}.",
             "answer": f"{i + i % 7}"} for i in range(n)]


def big_pool(path: Path, rows: int) -> Path:
    with open(path, "w") as fh:
        for i in range(rows):
            fh.write(json.dumps({"prompt": f"question {i} " + "lorem ipsum " * 8, "response": f"answer {i}"}) + "\n")
    return path


def scenarios(scale: float = 1.0) -> list[Scenario]:
    """The commands of issue 15, sized so a clean run takes a few seconds (`scale` shrinks them for CI)."""
    big = max(20_000, int(200_000 * scale))
    tiny_train = ["--model", MODEL, "--out", "{out}", "--lr", "1e-3", "--batch-tokens", "512"]
    sft_steps = str(max(8, int(24 * scale)))
    grpo_steps = str(max(4, int(8 * scale)))
    out = [
        Scenario("ingest", ["ingest", f"{{inputs}}/big-{big}.jsonl", "--out", "big"], versions_of("big")),
        Scenario("score", ["score", "pool", "--scorer", "perplexity", "--model", MODEL], scores_of,
                 before_rerun=scores_kept),
        Scenario("select fisher", ["select", "pool", "--strategy", "fisher", "--budget", "40", "--model", MODEL,
                                   "--out", "sel"], versions_of("sel")),
        Scenario("select token-clean", ["select", "pool", "--strategy", "token-clean", "--param", "token-clean.ratio=0.6",
                                        "--model", MODEL, "--param", f"token-clean.ref_model={MODEL}", "--out", "sel"], versions_of("sel")),
        Scenario("rollouts", ["rollouts", "pool", "--model", MODEL, "--reward", "tests.rl_rewards:coin",
                              "--max-completion-length", "6", "--prompts-per-batch", "4", "--model-key", "tiny"],
                 rollouts_per_prompt),
        Scenario("loop", ["loop", "pool", "--model", MODEL, "--rounds", "2", "--strategy", "band", "--out", "{out}",
                          "--reward", "tests.rl_rewards:coin", "--prompts-per-round", "3", "--steps-per-round", "2",
                          "-G", "3", "--max-completion-length", "6", "--eval-size", "3"], loop_outcome,
                 resume=resume_if("loop.json")),
        Scenario("synth", ["synth", "self-instruct", "{inputs}/seeds.jsonl", "--backend",
                           "openai", "--base-url", "{server}", "--endpoint", "completions", "--model", "served",
                           "-n", str(max(12, int(40 * scale))), "--concurrency", "2", "--out", "syn"],
                 prompts_of("syn")),
        Scenario("train sft", ["train", "sft", "pool", *tiny_train, "--steps", sft_steps, "--save-every", "2",
                               "--warmup", "0", "--log-every", "1"], losses, resume=resume_if("checkpoint*")),
        Scenario("train grpo", ["train", "grpo", "pool", *tiny_train, "--reward", "tests.rl_rewards:coin",
                                "--steps", grpo_steps, "--save-every", "1", "--prompts-per-step", "2", "-G", "3",
                                "--max-completion-length", "6", "--log-every", "1"], losses,
                 resume=resume_if("checkpoint*")),
    ]
    return out


@dataclass
class Campaign:
    """Prepares one base workspace (pool ingested, inputs written, the tiny model built) and runs kills."""

    root: Path
    model: Path
    scale: float = 1.0
    zygote: Zygote = field(default=None)

    def prepare(self) -> None:
        from tests.conftest import make_tiny_model, write_jsonl
        from tests.synth.conftest import write_seed_tasks

        inputs = self.root / "inputs"
        inputs.mkdir(parents=True, exist_ok=True)
        if not (self.model / "config.json").exists():
            make_tiny_model(self.model)
        write_jsonl(inputs / "pool.jsonl", pool_rows(48))
        write_seed_tasks(inputs / "seeds.jsonl")
        for scenario in scenarios(self.scale):
            if scenario.name == "ingest":
                big_pool(inputs / Path(scenario.argv[1]).name, int(Path(scenario.argv[1]).stem.split("-")[1]))
        self.zygote = self.zygote or Zygote()
        base = Run(self.root / "base")
        status, _ = self.zygote.run(["ingest", str(inputs / "pool.jsonl"), "--out", "pool", "--workspace",
                                     str(base.ws), "--quiet"], self.root / "prepare.log")
        assert status == 0, (self.root / "prepare.log").read_text()

    def _copy(self, label: str) -> Run:
        run = Run(self.root / "runs" / label)
        if run.root.exists():
            shutil.rmtree(run.root)
        shutil.copytree(self.root / "base", run.root)
        return run

    def _argv(self, scenario: Scenario, run: Run) -> list[str]:
        url = scenario.server.url if scenario.server is not None else ""
        return [a.replace("{inputs}", str(self.root / "inputs")).replace("{server}", url)
                for a in scenario.command(run, self.model)]

    def clean(self, scenario: Scenario) -> tuple[object, float]:
        run = self._copy(f"{_slug(scenario.name)}-clean")
        status, seconds = self.zygote.run(self._argv(scenario, run), run.root / "log.txt", _env())
        assert status == 0, f"{scenario.name}: the clean run failed\n" + (run.root / "log.txt").read_text()[-3000:]
        return scenario.outcome(run), seconds

    def kill(self, scenario: Scenario, index: int, delay: float, clean: object) -> KillResult:
        run = self._copy(f"{_slug(scenario.name)}-{index}")
        argv = self._argv(scenario, run)
        pid = self.zygote.spawn(argv, run.root / "killed.txt", _env())
        time.sleep(delay)
        try:
            os.kill(pid, signal.SIGKILL)
            killed = True
        except ProcessLookupError:
            killed = False
        status = self.zygote.wait(pid)
        killed = killed and status == -signal.SIGKILL
        result = KillResult(scenario.name, round(delay, 3), killed)
        result.problems += _integrity(run, "after the kill")
        before = scenario.before_rerun(run)
        result.at_kill = before
        started = time.monotonic()
        status, _ = self.zygote.run(argv + scenario.resume(run), run.root / "rerun.txt", _env())
        result.rerun_seconds = round(time.monotonic() - started, 2)
        if status != 0:
            result.problems.append(f"the rerun exited {status}: " + (run.root / "rerun.txt").read_text()[-1500:])
            return result
        result.problems += _integrity(run, "after the rerun")
        got = scenario.outcome(run)
        if got != clean:
            result.problems.append(f"the outcome differs from the clean run's: {_difference(got, clean)}")
        result.problems += scenario.after(run, before, clean)
        shutil.rmtree(run.root, ignore_errors=True)
        return result

    def run(self, kills: int, seed: int = 15, only: list[str] | None = None,
            report: Callable[[dict], None] = lambda payload: None) -> list[KillResult]:
        from tests.synth.server import FakeOpenAI

        rng = random.Random(seed)
        results = []
        for scenario in scenarios(self.scale):
            if only and scenario.name not in only:
                continue
            if scenario.name == "synth":
                scenario.server = FakeOpenAI(delay=0.02).start()
            try:
                if scenario.name == "synth":
                    clean_requests = [0]
                    scenario.before_rerun = synth_before(scenario)
                    scenario.after = synth_after(scenario, clean_requests)
                    sent = len(scenario.server.records)
                    clean, seconds = self.clean(scenario)
                    clean_requests[0] = len(scenario.server.records) - sent
                else:
                    clean, seconds = self.clean(scenario)
                report({"command": scenario.name, "clean_seconds": round(seconds, 2)})
                for index in range(kills):
                    result = self.kill(scenario, index, rng.uniform(0.05, 0.95) * seconds, clean)
                    results.append(result)
                    report({"command": scenario.name, "kill": index, "delay": result.delay, "killed": result.killed,
                            "rerun_seconds": result.rerun_seconds, "at_kill": result.at_kill,
                            "problems": result.problems})
            finally:
                if scenario.server is not None:
                    scenario.server.stop()
        return results


def _difference(got: object, clean: object) -> str:
    """What differs, short: the items only one side has when both are lists, else both values cut."""
    if isinstance(got, list) and isinstance(clean, list):
        flat = lambda items: {repr(x) for item in items for x in (item[1] if isinstance(item, tuple) and len(item) == 2
                                                               and isinstance(item[1], list) else [item])}
        mine, theirs = flat(got), flat(clean)
        return (f"{len(got)} items vs {len(clean)}; only after the kill: {sorted(mine - theirs)[:3]}; "
                f"only in the clean run: {sorted(theirs - mine)[:3]}")[:900]
    return f"{str(got)[:400]} != {str(clean)[:400]}"


def _integrity(run: Run, when: str) -> list[str]:
    try:
        report = check_workspace(Workspace.open(run.ws, lock_timeout=60))
    except (duckdb.Error, OSError) as exc:
        return [f"{when}: the catalog does not open ({type(exc).__name__}: {exc})"]
    return [f"{when}: {p}" for p in report.problems]


def _slug(name: str) -> str:
    return name.replace(" ", "-")


def _env() -> dict[str, str]:
    return {"CURATE_LOCK_TIMEOUT": "120"}
