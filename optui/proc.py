"""Running the plan's commands: streamed line by line, logged, stoppable."""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO

log = logging.getLogger(__name__)

GRACE_SECONDS = 5.0
"""How long a stopped command's process group has between SIGTERM and SIGKILL."""
_DRAIN_SECONDS = 2.0
"""How long to wait for output after the command exits, in case a background
child it started still holds the output pipe."""


@dataclass(frozen=True)
class CommandResult:
    """How a command ended."""

    command: str
    exit_code: int | None
    """The exit status; None when the command was stopped."""
    seconds: float
    timed_out: bool = False
    cancelled: bool = False
    log_path: Path | None = None

    @property
    def ok(self) -> bool:
        return self.exit_code == 0 and not self.timed_out and not self.cancelled

    def describe(self) -> str:
        if self.timed_out:
            return f"timed out after {self.seconds:.0f} s"
        if self.cancelled:
            return "stopped by the operator"
        if self.exit_code is not None and self.exit_code < 0:
            return f"killed by {_signal_name(-self.exit_code)}"
        if self.exit_code is not None and 128 < self.exit_code < 128 + 65:
            # The shell's way of saying that the program it ran died of a signal.
            name = _signal_name(self.exit_code - 128)
            return f"exited with status {self.exit_code} (killed by {name})"
        return f"exited with status {self.exit_code}"


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


def run_command(
    command: str,
    *,
    cwd: Path,
    env: Mapping[str, str] | None = None,
    timeout: float | None = None,
    cancel: threading.Event | None = None,
    on_line: Callable[[str], None] | None = None,
    on_start: Callable[[int], None] | None = None,
    log_path: Path | None = None,
    mask: Callable[[str], str] = str,
) -> CommandResult:
    """Run a plan command through /bin/sh in its own process group.

    Every line of its output (stdout and stderr together) goes to on_line as it
    arrives and to log_path. A timeout or the cancel event stops the whole group:
    SIGTERM, then SIGKILL after a grace period. on_start receives the pid of
    the group's leader as soon as it runs. mask is applied to every line
    before it is logged or passed on.
    """
    full_env = dict(os.environ if env is None else env)
    started = time.monotonic()
    log.info("running %r in %s", command, cwd)
    log_file = _open_log(log_path, mask(command))
    proc = subprocess.Popen(
        ["/bin/sh", "-c", command],
        cwd=cwd,
        env=full_env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    if on_start is not None:
        on_start(proc.pid)
    pump = _OutputPump(proc.stdout, log_file, on_line, mask)
    pump.start()
    timed_out = cancelled = False
    while proc.poll() is None:
        if cancel is not None and cancel.is_set():
            cancelled = True
            break
        if timeout is not None and time.monotonic() - started > timeout:
            timed_out = True
            break
        try:
            proc.wait(0.05)
        except subprocess.TimeoutExpired:
            continue
    if timed_out or cancelled:
        stop_group(proc)
    exit_code = proc.wait()
    pump.finish(_DRAIN_SECONDS)
    seconds = time.monotonic() - started
    result = CommandResult(
        command,
        None if (timed_out or cancelled) else exit_code,
        seconds,
        timed_out=timed_out,
        cancelled=cancelled,
        log_path=log_path,
    )
    log.info("%r %s (%.1f s)", command, result.describe(), seconds)
    return result


def stop_group(proc: subprocess.Popen[bytes]) -> None:
    """Terminate a command and every process of its group, killing stragglers."""
    try:
        os.killpg(proc.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    try:
        proc.wait(GRACE_SECONDS)
    except subprocess.TimeoutExpired:
        log.warning("process group %d ignored SIGTERM; killing it", proc.pid)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)


def _open_log(path: Path | None, command: str) -> IO[str] | None:
    if path is None:
        return None
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    handle = os.fdopen(fd, "a", encoding="utf-8")
    handle.write(f"$ {command}\n")
    handle.flush()
    return handle


class _OutputPump(threading.Thread):
    """Copies a command's output to its log and listener, a line at a time."""

    def __init__(
        self,
        stream: IO[bytes] | None,
        log_file: IO[str] | None,
        on_line: Callable[[str], None] | None,
        mask: Callable[[str], str] = str,
    ) -> None:
        super().__init__(name="optui-output", daemon=True)
        self.stream = stream
        self.log_file = log_file
        self.on_line = on_line
        self.mask = mask
        self._detached = threading.Event()

    def run(self) -> None:
        if self.stream is None:
            return
        try:
            for raw in iter(self.stream.readline, b""):
                line = self.mask(raw.decode("utf-8", errors="replace").rstrip("\r\n"))
                if self.log_file is not None and not self.log_file.closed:
                    self.log_file.write(line + "\n")
                    self.log_file.flush()
                if self.on_line is not None and not self._detached.is_set():
                    self.on_line(line)
        finally:
            self.stream.close()
            if self.log_file is not None:
                self.log_file.close()

    def finish(self, wait: float) -> None:
        """Wait for the end of output; give up on a pipe a background child holds."""
        self.join(wait)
        if self.is_alive():
            self._detached.set()
            log.warning("output still open after the command ended; not waiting")
