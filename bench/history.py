"""How long the history and the reports take as a repository's sessions pile up.

One real demo session (``optui demo --headless --auto-merge``: five items, one
merged, about 3 KB of journal per run) is made, then its session folder is
copied until the repository holds N sessions. For each N it measures reading
every session back (``all_sessions``, the journal replay the history screen and
``optui history`` start with) with its peak traced memory, main's p99 series
and the merges still on main, one report in each format, and ``optui history``
as a user runs it (a new process, start-up included).

Figures only: it asserts no speed. Run from the project root:

    python bench/history.py                    # about a minute on 2 cores
    python bench/history.py --sessions 10 100 1000
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Callable
from functools import partial
from pathlib import Path

from figures import Figures

from optui.gitops import TargetRepo
from optui.history import main_series
from optui.report import build_report, renderers
from optui.revert import merged_items
from optui.sessions import all_sessions


def make_demo(folder: Path) -> Path:
    repo = folder / "demo"
    command = ["demo", "--dir", str(repo), "--headless", "--auto-merge"]
    subprocess.run(
        [sys.executable, "-m", "optui", *command],
        check=True,
        capture_output=True,
        stdin=subprocess.DEVNULL,
    )
    return repo


def grow(repo: Path, count: int) -> None:
    """Copy the first session until the repository has count sessions."""
    root = repo / ".git" / "optui" / "sessions"
    first = sorted(root.iterdir())[0]
    for n in range(len(list(root.iterdir())), count):
        shutil.copytree(first, root / f"20000101-{n:06d}-copy")


def seconds(action: Callable[[], object]) -> float:
    start = time.perf_counter()
    action()
    return time.perf_counter() - start


def measure(repo: Path, count: int, figures: Figures) -> None:
    figures.section(f"{count} sessions")
    git_dir = repo / ".git"
    start = time.perf_counter()
    sessions = all_sessions(git_dir)
    read = time.perf_counter() - start
    # Traced again on its own: tracing slows the reading several times over.
    tracemalloc.start()
    all_sessions(git_dir)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    journal = sum((s.folder / "journal.jsonl").stat().st_size for s in sessions)
    figures.add(
        "read every session",
        f"{read * 1000:.0f} ms ({read / count * 1000:.2f} ms a session, "
        f"{journal / 1e6:.1f} MB of journals), peak {peak / 1e6:.1f} MB traced",
    )
    target = TargetRepo(repo)
    series = seconds(lambda: main_series(sessions))
    merges = seconds(lambda: merged_items(target, "main", sessions))
    figures.add("main's p99 series", f"{series * 1000:.1f} ms")
    figures.add("merges still on main", f"{merges * 1000:.1f} ms")
    document = build_report(sessions[-1])
    for name, (_, render) in renderers().items():
        took = seconds(partial(render, document))
        figures.add(f"one report, {name}", f"{took * 1000:.1f} ms")
    command = [sys.executable, "-m", "optui", "history", "--repo", str(repo)]
    wall = seconds(lambda: subprocess.run(command, check=True, capture_output=True))
    figures.add("optui history (new process)", f"{wall:.2f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sessions", type=int, nargs="+", default=[1, 10, 100, 500])
    args = parser.parse_args()
    figures = Figures()
    with tempfile.TemporaryDirectory(prefix="optui-bench-") as folder:
        repo = make_demo(Path(folder))
        for count in sorted(args.sessions):
            grow(repo, count)
            measure(repo, count, figures)
    figures.print()


if __name__ == "__main__":
    main()
