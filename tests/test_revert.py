"""Reverting a merged item, and the history every session leaves.

Each test works on a copy of one finished demo session (precompute-fees merged;
cache-balances, audit-every-request failed; fast-json an error; pool-500
deferred), through the real ``optui`` command and the real git.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import FinishedDemo, commit_file, git, optui
from engine_helpers import assert_clean_on_main

from optui.journal import Journal, list_sessions, read_journal
from optui.sessions import all_sessions

MERGE_SUBJECT = "Merge test/precompute-fees: perf(fees): Precompute the fee table"


def merge_of(repo: Path) -> str:
    return git(repo, "log", "--merges", "--format=%H", "-1", "main")


def test_a_revert_undoes_the_merge_on_main_and_keeps_the_history(
    capsys: pytest.CaptureFixture[str], demo_copy: Path
) -> None:
    merge = merge_of(demo_copy)
    before_merge = git(demo_copy, "rev-parse", f"{merge}^1^{{tree}}")
    branches = git(demo_copy, "for-each-ref", "--format=%(refname) %(objectname)")

    status, output = optui(
        capsys, "revert", "precompute-fees", "--repo", str(demo_copy), "--yes"
    )

    assert status == 0, output
    assert f"merged into main as {merge[:12]}" in output
    assert "service/fees.py" in output  # what the merge changed, shown first
    # The change is undone: main's tree is the tree before the merge ...
    assert git(demo_copy, "rev-parse", "main^{tree}") == before_merge
    # ... by a new commit on top: the merge and everything before stay.
    assert git(demo_copy, "rev-parse", "main^") == merge
    subject = git(demo_copy, "log", "-1", "--format=%s", "main")
    assert subject == "Revert precompute-fees: Precompute the fee table"
    assert merge in git(demo_copy, "log", "-1", "--format=%b", "main")
    assert MERGE_SUBJECT in git(demo_copy, "log", "--format=%s", "main")
    after = git(demo_copy, "for-each-ref", "--format=%(refname) %(objectname)")
    moved = set(after.splitlines()) - set(branches.splitlines())
    assert [line.split()[0] for line in moved] == ["refs/heads/main"]
    assert_clean_on_main(demo_copy)

    # Journaled as a session of its own; the session that merged is untouched.
    sessions = all_sessions(demo_copy / ".git")
    assert [s.kind for s in sessions] == ["session", "revert"]
    merged_in, reverted_in = sessions
    assert merged_in.items["precompute-fees"].state.value == "merged"
    assert reverted_in.finished
    [revert] = reverted_in.reverts
    assert (revert.item_id, revert.merge) == ("precompute-fees", merge)
    assert revert.commit == git(demo_copy, "rev-parse", "main")
    assert revert.main_before == merge
    records = list(read_journal(reverted_in.folder / "journal.jsonl"))
    assert [r["type"] for r in records] == ["session", "revert", "end"]
    log = (reverted_in.folder / "optui.log").read_text()
    assert f"reverted precompute-fees ({merge})" in log


def test_history_lists_every_session_and_an_items_attempts(
    capsys: pytest.CaptureFixture[str], demo_copy: Path
) -> None:
    optui(capsys, "revert", "precompute-fees", "--repo", str(demo_copy), "--yes")

    status, output = optui(capsys, "history", "--repo", str(demo_copy))
    assert status == 0, output
    finished, reverted = output.splitlines()
    assert "finished" in finished and "Demo payments service" in finished
    assert "1 merged, 2 failed, 1 error, 1 deferred" in finished
    before, after = (float(x) for x in finished.split("p99 ")[1][:-3].split(" -> "))
    assert after < before * 0.75  # precompute-fees cut p99 (to about a third)
    assert "revert" in reverted and "reverted precompute-fees" in reverted

    status, output = optui(
        capsys, "history", "--repo", str(demo_copy), "--item", "precompute-fees"
    )
    assert status == 0, output
    merged, undone = output.splitlines()
    assert "merged" in merged and "p99 -" in merged and "pairs" in merged
    assert "reverted" in undone

    status, output = optui(
        capsys, "history", "--repo", str(demo_copy), "--item", "no-such-item"
    )
    assert status == 2 and "no session attempted 'no-such-item'" in output


def test_a_reverted_item_cannot_be_reverted_twice(
    capsys: pytest.CaptureFixture[str], demo_copy: Path
) -> None:
    optui(capsys, "revert", "precompute-fees", "--repo", str(demo_copy), "--yes")
    tip = git(demo_copy, "rev-parse", "main")

    status, output = optui(
        capsys, "revert", "precompute-fees", "--repo", str(demo_copy), "--yes"
    )

    assert status == 2
    assert "no merge on main left to revert" in output
    assert "reverted in" in output
    assert git(demo_copy, "rev-parse", "main") == tip


@pytest.mark.parametrize(
    ("item_id", "message"),
    [
        ("cache-balances", "no merge on main left to revert (latest: failed in"),
        ("pool-500", "no merge on main left to revert (latest: deferred in"),
        ("no-such-item", "no optui session in"),
    ],
)
def test_only_a_merged_item_can_be_reverted(
    capsys: pytest.CaptureFixture[str],
    finished_demo: FinishedDemo,
    item_id: str,
    message: str,
) -> None:
    # Refusals change nothing, so the shared repository itself can be used.
    repo = finished_demo.repo
    tip = git(repo, "rev-parse", "main")
    status, output = optui(capsys, "revert", item_id, "--repo", str(repo), "--yes")
    assert status == 2
    assert message in output
    assert git(repo, "rev-parse", "main") == tip
    assert len(all_sessions(repo / ".git")) == 1


def test_a_revert_is_refused_off_main_or_with_uncommitted_changes(
    capsys: pytest.CaptureFixture[str], demo_copy: Path
) -> None:
    tip = git(demo_copy, "rev-parse", "main")
    git(demo_copy, "checkout", "-q", "-b", "topic")
    status, output = optui(
        capsys, "revert", "precompute-fees", "--repo", str(demo_copy), "--yes"
    )
    assert status == 3
    assert "onto main, but topic is checked out: check out main first" in output
    assert git(demo_copy, "symbolic-ref", "--short", "HEAD") == "topic"

    git(demo_copy, "checkout", "-q", "main")
    (demo_copy / "README.md").write_text("edited by hand\n")
    status, output = optui(
        capsys, "revert", "precompute-fees", "--repo", str(demo_copy), "--yes"
    )
    assert status == 3
    assert "uncommitted changes (README.md): commit or stash them first" in output
    assert (demo_copy / "README.md").read_text() == "edited by hand\n"
    assert git(demo_copy, "rev-parse", "main") == tip
    assert len(all_sessions(demo_copy / ".git")) == 1


def test_a_revert_that_conflicts_with_later_work_changes_nothing(
    capsys: pytest.CaptureFixture[str], demo_copy: Path
) -> None:
    fees = demo_copy / "service" / "fees.py"
    commit_file(
        demo_copy,
        "service/fees.py",
        fees.read_text().replace("def ", "def  ", 1).replace("\n", "\n# later\n"),
        "Later work on the fees",
    )
    tip = git(demo_copy, "rev-parse", "main")

    status, output = optui(
        capsys, "revert", "precompute-fees", "--repo", str(demo_copy), "--yes"
    )

    assert status == 1, output
    assert "conflicts with later changes to service/fees.py" in output
    assert "nothing was changed" in output
    assert git(demo_copy, "rev-parse", "main") == tip
    assert_clean_on_main(demo_copy)
    assert not (demo_copy / ".git" / "REVERT_HEAD").exists()
    # The attempt is journaled, with why it failed.
    attempt = all_sessions(demo_copy / ".git")[-1]
    assert attempt.kind == "revert" and attempt.reverts == []
    assert attempt.error is not None and "conflicts" in attempt.error


def test_a_revert_without_a_terminal_asks_for_yes(
    capsys: pytest.CaptureFixture[str], demo_copy: Path
) -> None:
    tip = git(demo_copy, "rev-parse", "main")
    status, output = optui(
        capsys, "revert", "precompute-fees", "--repo", str(demo_copy)
    )
    assert status == 2
    assert "no terminal to confirm the revert: pass --yes" in output
    assert git(demo_copy, "rev-parse", "main") == tip


def test_a_revert_waits_for_an_unfinished_session(
    capsys: pytest.CaptureFixture[str], demo_copy: Path
) -> None:
    [session] = all_sessions(demo_copy / ".git")
    journal = session.folder / "journal.jsonl"
    lines = journal.read_text().splitlines(keepends=True)
    journal.write_text("".join(lines[:-1]))  # as if it had died before its end
    tip = git(demo_copy, "rev-parse", "main")

    status, output = optui(
        capsys, "revert", "precompute-fees", "--repo", str(demo_copy), "--yes"
    )

    assert status == 3
    assert f"the last session ({session.session_id}) did not finish" in output
    assert "optui resume PLAN" in output
    assert git(demo_copy, "rev-parse", "main") == tip


def test_sessions_begun_in_one_second_are_listed_in_the_order_they_began(
    tmp_path: Path,
) -> None:
    git_dir = tmp_path / ".git"
    for session_id, at in (
        ("20260101-120000-ffff", 1.0),
        ("20260101-120000-0000", 2.0),
    ):
        journal = Journal.create(git_dir, session_id)
        journal.append("session", plan="p.yaml", items=[])
        lines = journal.path.read_text().replace('"at": ', f'"at": {at}, "was": ', 1)
        journal.path.write_text(lines)

    assert [p.name for p in list_sessions(git_dir)] == [
        "20260101-120000-ffff",
        "20260101-120000-0000",
    ]


def test_a_merge_reverted_by_hand_is_not_reverted_again(
    capsys: pytest.CaptureFixture[str], demo_copy: Path
) -> None:
    merge = merge_of(demo_copy)
    git(demo_copy, "revert", "--no-edit", "-m", "1", merge)
    by_hand = git(demo_copy, "rev-parse", "main")

    status, output = optui(
        capsys, "revert", "precompute-fees", "--repo", str(demo_copy), "--yes"
    )

    assert status == 2
    assert f"was reverted on main already, by {by_hand[:12]}" in output
    assert git(demo_copy, "rev-parse", "main") == by_hand


def test_a_merge_no_longer_on_main_cannot_be_reverted(
    capsys: pytest.CaptureFixture[str], demo_copy: Path
) -> None:
    merge = merge_of(demo_copy)
    git(demo_copy, "reset", "-q", "--hard", f"{merge}^1")

    status, output = optui(
        capsys, "revert", "precompute-fees", "--repo", str(demo_copy), "--yes"
    )

    assert status == 2
    assert f"the merge {merge[:12]} of 'precompute-fees' is no longer on main" in output
    assert git(demo_copy, "rev-parse", "main") == git(
        demo_copy, "rev-parse", f"{merge}^1"
    )
