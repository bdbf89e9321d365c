"""Failure review read back from journals, this session's or an earlier one's."""

from __future__ import annotations

from pathlib import Path

from optui.journal import Journal
from optui.review import find_review, first_error_line


def failed_build(git_dir: Path, session: str, item: str, error: str) -> Journal:
    """A journal as the engine leaves it after a build that failed."""
    journal = Journal.create(git_dir, session)
    log = journal.step_log(item, "build")
    log.write_text(f"$ make build\ncompiling\n\nwarning: slow\n{error}\nmore output\n")
    journal.append("state", item=item, state="applying", detail="cherry-pick x")
    journal.append(
        "step",
        item=item,
        step="build",
        run=None,
        ok=False,
        message="exited with status 2",
        seconds=0.5,
        log=str(log),
    )
    journal.append(
        "step",
        item=item,
        step="down",
        run=None,
        ok=True,
        message="exited with status 0",
        seconds=0.1,
        log=None,
    )
    journal.append(
        "item",
        item=item,
        state="error",
        reason="could not measure: build exited with status 2",
        commit="abc",
        kept_ref="refs/optui/failed/x/1",
    )
    return journal


def test_review_of_an_earlier_session_points_at_the_first_error(tmp_path: Path) -> None:
    failed_build(tmp_path, "20260101-000000-aaaa", "fast-json", "error: no orjson")
    later = Journal.create(tmp_path, "20260102-000000-bbbb")
    later.append("state", item="other", state="applying", detail="")
    later.append("item", item="other", state="merged", reason="merged")

    review = find_review(tmp_path, "fast-json")

    assert review is not None
    assert review.session == "20260101-000000-aaaa"
    assert review.state == "error"
    assert review.failed_step == "build"
    assert review.first_error is not None
    assert review.log_lines[review.first_error] == "error: no orjson"
    assert find_review(tmp_path, "never-ran") is None


def test_the_newest_attempt_is_the_one_reviewed(tmp_path: Path) -> None:
    failed_build(tmp_path, "20260101-000000-aaaa", "fast-json", "error: first")
    failed_build(tmp_path, "20260103-000000-cccc", "fast-json", "error: second")
    review = find_review(tmp_path, "fast-json")
    assert review is not None and review.session == "20260103-000000-cccc"
    assert review.first_error is not None
    assert review.log_lines[review.first_error] == "error: second"


def test_first_error_skips_the_command_line() -> None:
    assert first_error_line(["$ make error-report", "ok", "FAILED: 2 tests"]) == 2
    assert first_error_line(["all good"]) is None
