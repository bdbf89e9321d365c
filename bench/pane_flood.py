"""How the app's log panes hold up under a flood of output lines.

Runs the real ``OptuiApp`` headless (``App.run_test`` and its Pilot), built with
``start=False`` on a throwaway git repository, so no engine step or service runs.
A plain thread plays the engine and calls ``app.bridge(OutputLine(...))`` for the
item the panes show. It measures:

1. lines per second shown end to end: a fixed flood, sent in bursts as fast as
   the thread can, until its last line is in the steps ``Log`` and in the
   SessionView's buffer;
2. key latency: tab keys pressed through the Pilot, idle and during an endless
   flood, timed from sending the key until ``TabbedContent#panes`` has switched;
   also the longest stall of the event loop, and one drain of a full bridge;
3. memory: peak RSS, and the lines held by the steps ``Log`` and the SessionView;
4. for comparison, ``Log.write_line`` once per line against ``Log.write_lines``
   in batches, in a bare ``Log`` in a tiny app.

Figures only: it asserts no speed. Run from the project root:

    python bench/pane_flood.py            # about 30 s
    python bench/pane_flood.py --help     # sizes of the floods
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import resource
import statistics
import subprocess
import tempfile
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from figures import Figures
from textual.app import App, ComposeResult
from textual.pilot import Pilot
from textual.widgets import Log, TabbedContent

from optui.events import OutputLine, Step
from optui.plan import Plan, load_plan
from optui.tui.app import DRAIN_SECONDS, OptuiApp
from optui.tui.bridge import BUFFER_LINES
from optui.tui.view import PANE_LINES, STEPS_PANE

SIZE = (160, 45)
POLL_SECONDS = 0.002
"""How often an awaited effect is looked for; the resolution of the latencies."""
LAG_TICK = 0.005
"""The sleep the loop-stall probe asks for; any lateness is time the loop was busy."""
TIMEOUT = 30.0


# A plan to build the app on.


@contextlib.contextmanager
def throwaway_plan() -> Iterator[Plan]:
    """A one-item plan whose target is a new git repository with one commit."""
    with tempfile.TemporaryDirectory(prefix="pane-flood-") as folder:
        root = Path(folder)
        repo = root / "service"
        repo.mkdir()
        (repo / "README").write_text("a service\n")
        who = ["-c", "user.name=Bench", "-c", "user.email=bench@example.invalid"]
        for args in (
            ["init", "-q", "-b", "main"],
            ["add", "README"],
            [*who, "commit", "-q", "-m", "initial"],
        ):
            subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True)
        plan_file = root / "plan.yaml"
        plan_file.write_text(
            textwrap.dedent(
                f"""\
                name: Pane flood
                target:
                  repo: {repo}
                phases:
                  - name: Flood
                    items:
                      - id: noisy-build
                        title: A build that prints a great deal
                        risk: low
                        scope: build
                        apply:
                          cherry-pick: HEAD
                """
            )
        )
        yield load_plan(plan_file)


# The engine's side: a thread that floods the bridge.


class Flood(threading.Thread):
    """Sends output lines to the bridge in bursts, with nothing between them.

    total: how many lines to send; None to go on until ``stop`` is called.
    """

    def __init__(
        self,
        listener: Callable[[OutputLine], None],
        item_id: str | None,
        *,
        burst: int,
        total: int | None = None,
        first: int = 0,
    ) -> None:
        super().__init__(name="flood", daemon=True)
        self.listener = listener
        self.item_id = item_id
        self.burst = burst
        self.total = total
        self.next_number = first
        self.sent = 0
        self.last_line = ""
        self.started_at = 0.0
        self.finished_at = 0.0
        self._halt = threading.Event()

    def run(self) -> None:
        self.started_at = time.perf_counter()
        while not self._halt.is_set():
            count = self.burst
            if self.total is not None:
                count = min(count, self.total - self.sent)
                if count <= 0:
                    break
            for _ in range(count):
                self.last_line = build_line(self.next_number)
                self.listener(OutputLine(self.item_id, Step.BUILD, self.last_line))
                self.next_number += 1
            self.sent += count
            # Lets the app's thread take the interpreter between bursts, as a
            # read from a pipe would.
            time.sleep(0)
        self.finished_at = time.perf_counter()

    def stop(self) -> None:
        self._halt.set()
        self.join()


def build_line(number: int) -> str:
    return (
        f"#{number // 40 + 7} [{number % 40 + 1:>2}/40] {number:>9} "
        "RUN pip install --no-cache-dir -r requirements.txt  0.4s"
    )


# Probes on the app's event loop.


class LoopStalls:
    """Asks the loop for short sleeps; how late they end is how long it was busy."""

    def __init__(self) -> None:
        self.longest = 0.0
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self.longest = 0.0
        self._task = asyncio.create_task(self._probe())

    async def stop(self) -> float:
        assert self._task is not None
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        return self.longest

    async def _probe(self) -> None:
        while True:
            asked = time.perf_counter()
            await asyncio.sleep(LAG_TICK)
            late = time.perf_counter() - asked - LAG_TICK
            self.longest = max(self.longest, late)


async def until(condition: Callable[[], bool], timeout: float = TIMEOUT) -> float:
    """Poll condition; return the moment it first held (perf_counter seconds)."""
    deadline = time.perf_counter() + timeout
    while not condition():
        if time.perf_counter() > deadline:
            raise TimeoutError(f"not seen within {timeout:g} s")
        await asyncio.sleep(POLL_SECONDS)
    return time.perf_counter()


async def key_latencies(pilot: Pilot[int], presses: int) -> list[float]:
    """Seconds from sending a tab key until the panes show that tab, per press."""
    tabs = pilot.app.query_one("#panes", TabbedContent)
    latencies = []
    for number in range(presses):
        key, wanted = (
            ("2", "k6-tab") if tabs.active == "steps-tab" else ("1", "steps-tab")
        )
        sent = time.perf_counter()
        # The Pilot's press sends the key at once, then waits for the process to
        # be idle (up to a second per key under load); only the effect is timed.
        press = asyncio.create_task(pilot.press(key))
        seen = await until(showing(tabs, wanted))
        latencies.append(seen - sent)
        if not press.done():
            press.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await press
        # Uneven gaps, so that presses fall at different points of the drain tick.
        await asyncio.sleep(0.03 + 0.017 * (number % 5))
    return latencies


def showing(tabs: TabbedContent, tab: str) -> Callable[[], bool]:
    return lambda: tabs.active == tab


def rss() -> str:
    """The process's peak resident memory so far, and what it holds now."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    pages = int(Path("/proc/self/statm").read_text().split()[1])
    now = pages * resource.getpagesize() / 2**20
    return f"peak {peak:,.1f} MB, now {now:,.1f} MB"


def ms(seconds: float) -> str:
    return f"{seconds * 1000:,.1f} ms"


def latency_row(latencies: list[float]) -> str:
    return (
        f"median {ms(statistics.median(latencies))}, "
        f"max {ms(max(latencies))} ({len(latencies)} presses)"
    )


# The app under a flood.


async def flood_app(plan: Plan, args: argparse.Namespace, figures: Figures) -> None:
    app = OptuiApp(plan, start=False)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        figures.section(
            f"OptuiApp, item {app.shown!r}, drain every {ms(DRAIN_SECONDS)}, "
            f"pane bound {PANE_LINES:,}, bridge bound {BUFFER_LINES:,}"
        )
        figures.add("RSS, app mounted", rss())
        stalls = LoopStalls()
        stalls.start()
        latencies = await key_latencies(pilot, 6)
        figures.add("key latency, idle", latency_row(latencies))
        figures.add("  longest loop stall (the redraws)", ms(await stalls.stop()))

        number = await fixed_flood(app, args, figures)
        number = await keys_in_floods(app, pilot, args, figures, number)
        figures.add("RSS after the floods", rss())
        await full_drain(app, figures, number)

        await pilot.pause()
        steps_log = app.query_one("#steps-log", Log)
        figures.add("RSS at the end", rss())
        figures.add(
            "lines held",
            f"steps Log {steps_log.line_count:,} "
            f"(max_lines {steps_log.max_lines:,}), "
            f"SessionView {len(app.session.log(app.shown, STEPS_PANE)):,}",
        )


async def fixed_flood(app: OptuiApp, args: argparse.Namespace, figures: Figures) -> int:
    """1. Send a fixed number of lines; time until the last one is shown."""
    steps_log = app.query_one("#steps-log", Log)
    held = app.session.log(app.shown, STEPS_PANE)
    flood = Flood(app.bridge, app.shown, burst=args.burst, total=args.lines)
    stalls = LoopStalls()
    stalls.start()
    flood.start()
    await until(lambda: flood.finished_at > 0)
    shown = await until(
        lambda: (
            bool(held)
            and held[-1] == flood.last_line
            and steps_log.lines[-1] == flood.last_line
        )
    )
    longest = await stalls.stop()
    flood.join()
    await app.workers.wait_for_complete()

    elapsed = shown - flood.started_at
    dropped = app.bridge.dropped
    figures.add(
        f"flood of {flood.sent:,} lines, bursts of {args.burst:,}",
        f"sent in {ms(flood.finished_at - flood.started_at)}, "
        f"last line shown after {ms(elapsed)}",
    )
    figures.add(
        "lines/s shown, end to end",
        f"{(flood.sent - dropped) / elapsed:,.0f} ({dropped:,} dropped by the bridge)",
    )
    figures.add("longest loop stall during it", ms(longest))
    figures.add("RSS after it", rss())
    return flood.next_number


async def keys_in_floods(
    app: OptuiApp,
    pilot: Pilot[int],
    args: argparse.Namespace,
    figures: Figures,
    number: int,
) -> int:
    """2. Press keys while a thread floods, first a listener that drops every
    line (the cost of the busy thread alone), then the app's bridge."""
    for listener, what in ((discard, "a listener that drops them"), (app.bridge, "")):
        dropped = app.bridge.dropped
        flood = Flood(listener, app.shown, burst=args.burst, first=number)
        stalls = LoopStalls()
        stalls.start()
        flood.start()
        try:
            latencies = await key_latencies(pilot, args.presses)
        finally:
            flood.stop()
        longest = await stalls.stop()
        number = flood.next_number

        seconds = flood.finished_at - flood.started_at
        into = what or "the bridge"
        figures.add(f"key latency, flood into {into}", latency_row(latencies))
        figures.add("  longest loop stall", ms(longest))
        figures.add(
            "  that flood",
            f"{flood.sent:,} lines in {seconds:.1f} s ({flood.sent / seconds:,.0f}/s"
            f", {app.bridge.dropped - dropped:,} dropped by the bridge)",
        )
    held = app.session.log(app.shown, STEPS_PANE)
    await until(lambda: held[-1] == flood.last_line)
    await app.workers.wait_for_complete()
    return number


def discard(line: OutputLine) -> None:
    """A listener that does nothing with what it is sent."""


async def full_drain(app: OptuiApp, figures: Figures, number: int) -> None:
    """Fill the bridge to its bound, then drain it once, as the app's timer does."""
    for offset in range(BUFFER_LINES):
        app.bridge(OutputLine(app.shown, Step.BUILD, build_line(number + offset)))
    start = time.perf_counter()
    app._drain()
    drained = time.perf_counter()
    await app.workers.wait_for_complete()
    figures.add(
        f"one drain of {BUFFER_LINES:,} buffered lines",
        f"holds the loop {ms(drained - start)} "
        f"({BUFFER_LINES / (drained - start):,.0f} lines/s); the Log's size "
        f"worker thread ends {ms(time.perf_counter() - drained)} later",
    )


# 4. The naive way, for comparison.


class BareLog(App[None]):
    def compose(self) -> ComposeResult:
        yield Log()


async def write_into_bare_log(lines: list[str], batch: int) -> tuple[float, float]:
    """Seconds to write lines in batches of batch, and until the Log's workers end."""
    app = BareLog()
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        log = app.query_one(Log)
        start = time.perf_counter()
        if batch == 1:
            for line in lines:
                log.write_line(line)
        else:
            for first in range(0, len(lines), batch):
                log.write_lines(lines[first : first + batch])
        written = time.perf_counter()
        await app.workers.wait_for_complete()
        await pilot.pause()
        return written - start, time.perf_counter() - start


async def naive(args: argparse.Namespace, figures: Figures) -> None:
    lines = [build_line(number) for number in range(args.naive_lines)]
    figures.section(f"A bare Log in a tiny app, {len(lines):,} lines")
    for batch, how in ((1, "write_line, one call a line"), (100, "write_lines of 100")):
        calls, total = await write_into_bare_log(lines, batch)
        figures.add(
            how,
            f"calls {ms(calls)}, with the Log's workers {ms(total)} "
            f"({len(lines) / total:,.0f} lines/s)",
        )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=200_000, help="fixed flood")
    parser.add_argument("--burst", type=int, default=5_000, help="lines a burst")
    parser.add_argument("--presses", type=int, default=20, help="keys in the flood")
    parser.add_argument(
        "--naive-lines", type=int, default=20_000, help="lines for the bare Log"
    )
    args = parser.parse_args()

    figures = Figures()
    began = time.perf_counter()
    with throwaway_plan() as plan:
        asyncio.run(flood_app(plan, args, figures))
    asyncio.run(naive(args, figures))
    figures.print()
    print(f"\nrun time {time.perf_counter() - began:.1f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
