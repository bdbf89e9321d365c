"""Putting the repository back after a session that did not finish.

A session that was killed, lost its terminal or its machine, or was aborted by
the operator, leaves a journal without an ``end`` record (or one that says it
was aborted); ``optui.sessions`` replays it. ``recover_repository`` brings the
repository back to a known state before anything else runs: leftover commands
stopped, a half-done cherry-pick or merge aborted, work in progress saved under
``refs/optui/``, main checked out and clean.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import time
from pathlib import Path

from optui.errors import GitError, PreflightError
from optui.gitops import TargetRepo
from optui.sessions import PastItem, PastSession

log = logging.getLogger(__name__)


def process_stamp(pid: int) -> str:
    """When a process started, as the kernel tells it; "" when it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return ""
    return fields[19] if len(fields) > 19 else ""


def stop_leftover(process: tuple[int, str] | None) -> str | None:
    """Stop the process group of a command a dead session left running.

    The start stamp guards against a recycled pid: a group is stopped only if
    its leader is still the process the journal named.
    """
    if process is None:
        return None
    pid, stamp = process
    if not stamp or process_stamp(pid) != stamp:
        return None
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGTERM)
        for _ in range(50):
            if process_stamp(pid) != stamp:
                break
            time.sleep(0.1)
        os.killpg(pid, signal.SIGKILL)
    return f"stopped the command (process group {pid}) the session left running"


def recover_repository(
    repo: TargetRepo, past: PastSession, *, abandon: bool = False
) -> list[str]:
    """Bring the repository back to main, clean; return what was done.

    Nothing is thrown away that cannot be found again: uncommitted work on the
    interrupted item's test branch is saved as a commit under
    ``refs/optui/interrupted/``, and the operator's own untracked files stay.
    abandon: the session will not be resumed, so the interrupted item's test
    branch goes too (its commit kept the same way).
    """
    done: list[str] = []
    leftover = stop_leftover(past.process)
    if leftover:
        done.append(leftover)
    if (repo.git_dir / "index.lock").exists():
        raise PreflightError(
            f"{repo.git_dir / 'index.lock'} exists: a git command was stopped "
            "halfway. If no git command is running, delete that file and resume"
        )
    operation = repo.operation_in_progress()
    if operation:
        repo.abort_operation()
        done.append(f"aborted the half-done {operation}")
    current = past.current
    item = past.items[current] if current is not None else None
    branch = repo.current_branch()
    on_item_branch = item is not None and branch == item.branch
    if item is not None and on_item_branch and _dirty(repo, item.untracked):
        assert current is not None
        ref = save_work(repo, current, past.session_id, item.untracked)
        done.append(f"saved the uncommitted work on {branch} as {ref}")
    if on_item_branch or repo.tracked_changes():
        keep = item.untracked if item is not None else repo.untracked()
        repo.discard_changes(set(keep))
    if branch != past.main:
        if not repo.has_branch(past.main):
            raise GitError(f"the main branch {past.main!r} no longer exists")
        repo.checkout(past.main)
        done.append(f"checked out {past.main}")
    if abandon and item is not None and current is not None:
        kept = drop_branch(repo, item, current, past.session_id)
        if kept:
            done.append(f"kept the commit of {item.branch} as {kept}")
    return done


def drop_branch(repo: TargetRepo, item: PastItem, item_id: str, stamp: str) -> str:
    """Delete the test branch an interrupted attempt made, keeping its commit.

    Returns the ref that keeps it, or "" when there was nothing new to keep.
    """
    if item.branch is None:
        return ""
    sha = repo.resolve(f"refs/heads/{item.branch}")
    if sha is None:
        return ""
    kept = ""
    if sha != item.main_sha:
        kept = repo.keep("interrupted", item_id, sha, stamp)
    repo.delete_branch(item.branch)
    return kept


def _dirty(repo: TargetRepo, untracked_before: frozenset[str]) -> bool:
    return bool(repo.tracked_changes() or repo.untracked() - untracked_before)


def save_work(
    repo: TargetRepo, item_id: str, stamp: str, untracked_before: frozenset[str]
) -> str:
    """Commit the working tree's changes without touching it; keep the commit."""
    sha = repo.snapshot(f"Work in progress on {item_id}", leave_out=untracked_before)
    return repo.keep("interrupted", item_id, sha, stamp)
