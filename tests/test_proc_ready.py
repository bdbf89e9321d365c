"""Running commands and waiting for readiness, with real processes and servers."""

from __future__ import annotations

import http.server
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import alive

from optui.errors import Cancelled, StepError
from optui.plan import Ready, ReadyKind
from optui.proc import run_command
from optui.ready import wait_until_ready


def test_output_streams_line_by_line_as_it_happens(tmp_path: Path) -> None:
    seen: list[tuple[float, str]] = []
    started = time.monotonic()
    result = run_command(
        "echo first; sleep 0.5; echo second >&2; exit 3",
        cwd=tmp_path,
        on_line=lambda line: seen.append((time.monotonic() - started, line)),
        log_path=tmp_path / "logs" / "step.log",
    )
    assert result.exit_code == 3 and not result.ok
    assert result.describe() == "exited with status 3"
    assert [line for _, line in seen] == ["first", "second"]
    # The first line arrived before the command slept, not when it ended.
    assert seen[0][0] < 0.4 <= seen[1][0]
    log = (tmp_path / "logs" / "step.log").read_text()
    assert log.splitlines()[1:] == ["first", "second"]


def test_a_hung_command_and_its_children_are_stopped(tmp_path: Path) -> None:
    pid_file = tmp_path / "child.pid"
    result = run_command(
        f"sleep 300 & echo $! > {pid_file}; wait",
        cwd=tmp_path,
        timeout=1.0,
    )
    assert result.timed_out
    assert result.describe() == "timed out after 1 s"
    child = int(pid_file.read_text())
    assert not alive(child), "the background child outlived its command"


def test_cancel_stops_a_command_promptly(tmp_path: Path) -> None:
    cancel = threading.Event()
    threading.Timer(0.3, cancel.set).start()
    started = time.monotonic()
    result = run_command("sleep 60", cwd=tmp_path, cancel=cancel)
    assert result.cancelled and result.exit_code is None
    assert time.monotonic() - started < 10


def test_a_background_service_does_not_hold_the_step_open(tmp_path: Path) -> None:
    """A deploy that leaves a daemon holding stdout must still end."""
    pid_file = tmp_path / "daemon.pid"
    started = time.monotonic()
    result = run_command(f"sleep 30 & echo $! > {pid_file}", cwd=tmp_path)
    try:
        assert result.ok
        assert time.monotonic() - started < 10
    finally:
        os.kill(int(pid_file.read_text()), 9)


class _SlowStart(http.server.BaseHTTPRequestHandler):
    """Answers 503 to the first requests, then 200, like a service warming up."""

    calls = 0

    def do_GET(self) -> None:
        type(self).calls += 1
        self.send_response(200 if type(self).calls > 3 else 503)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def warming_server() -> Iterator[str]:
    _SlowStart.calls = 0
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _SlowStart)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/health"
    server.shutdown()
    server.server_close()


def wait(
    ready: Ready, tmp_path: Path, cancel: threading.Event | None = None
) -> list[str]:
    lines: list[str] = []
    wait_until_ready(
        ready,
        cwd=tmp_path,
        env=dict(os.environ),
        cancel=cancel or threading.Event(),
        on_line=lines.append,
    )
    return lines


def test_http_readiness_waits_for_a_2xx(warming_server: str, tmp_path: Path) -> None:
    lines = wait(
        Ready(ReadyKind.HTTP, warming_server, timeout=10, interval=0.05), tmp_path
    )
    assert lines == ["ready after 4 attempt(s): HTTP 200"]


def test_http_readiness_times_out_saying_what_it_saw(tmp_path: Path) -> None:
    ready = Ready(ReadyKind.HTTP, "http://127.0.0.1:9/health", timeout=1, interval=0.2)
    with pytest.raises(StepError) as caught:
        wait(ready, tmp_path)
    message = str(caught.value)
    assert message.startswith("not ready after 1 s (")
    assert "http 'http://127.0.0.1:9/health'" in message
    assert "refused" in message.lower()


def test_command_readiness_retries_until_it_exits_zero(tmp_path: Path) -> None:
    marker = tmp_path / "count"
    command = f"echo x >> {marker}; test $(wc -l < {marker}) -ge 3"
    lines = wait(Ready(ReadyKind.COMMAND, command, timeout=10, interval=0.05), tmp_path)
    assert lines[-1].startswith("ready after 3 attempt(s)")


def test_sleep_readiness_can_be_cancelled(tmp_path: Path) -> None:
    cancel = threading.Event()
    threading.Timer(0.2, cancel.set).start()
    started = time.monotonic()
    with pytest.raises(Cancelled):
        wait(Ready(ReadyKind.SLEEP, "30"), tmp_path, cancel)
    assert time.monotonic() - started < 5
