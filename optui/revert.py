"""Undoing a merged item: a revert of its merge commit on main.

A merge that landed can be taken back at any time: the revert is a new commit
on main (history is never rewritten), and it is journaled, as a session of its
own from the command line or in the running session from the app.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass

from optui.errors import GitError, OptuiError, PreflightError
from optui.events import ItemState
from optui.gitops import TargetRepo
from optui.journal import (
    Journal,
    SessionLock,
    close_session_log,
    new_session_id,
    open_session_log,
)
from optui.masking import Masker
from optui.sessions import REVERT_KIND, PastSession, all_sessions, find_unfinished

log = logging.getLogger(__name__)


class RevertError(OptuiError):
    """A revert that cannot be done; nothing was changed."""

    title = "Cannot revert"
    exit_status = 2


@dataclass(frozen=True)
class MergedItem:
    """An item's merge commit, as the session that merged it recorded it."""

    item_id: str
    title: str
    merge: str
    """The merge commit on main."""
    session_id: str
    """The session that merged it."""
    merged_at: float

    @property
    def message(self) -> str:
        """The revert's commit message."""
        title = f": {self.title}" if self.title else ""
        return (
            f"Revert {self.item_id}{title}\n\n"
            f"This reverts the merge {self.merge} made by optui session "
            f"{self.session_id}."
        )


def merged_items(
    repo: TargetRepo, main: str, sessions: list[PastSession] | None = None
) -> list[MergedItem]:
    """The items merged into main by optui and not reverted since, latest first.

    sessions: the repository's sessions, if they have been read already.
    """
    tip = repo.resolve(f"refs/heads/{main}")
    on_main = [
        m
        for m in _merges(_read(repo, sessions))
        if tip is not None
        and repo.is_ancestor(m.merge, tip)
        and reverted_by(repo, main, m.merge) is None
    ]
    return sorted(on_main, key=lambda m: m.merged_at, reverse=True)


def reverted_by(repo: TargetRepo, main: str, merge: str) -> str | None:
    """The commit on main that reverts merge, by optui or by hand with git."""
    for text in (f"reverts the merge {merge}", f"This reverts commit {merge}"):
        found = repo.log_grep(main, text)
        if found:
            return found[0]
    return None


def _read(repo: TargetRepo, sessions: list[PastSession] | None) -> list[PastSession]:
    return all_sessions(repo.git_dir) if sessions is None else sessions


def _merges(sessions: list[PastSession]) -> list[MergedItem]:
    """Every merge the journals record that no optui revert has undone."""
    reverted = {r.merge for s in sessions for r in s.reverts}
    found: dict[str, MergedItem] = {}
    for session in sessions:
        for item_id, item in session.items.items():
            merge = item.commit
            if item.state is not ItemState.MERGED or not merge or merge in reverted:
                continue
            found[merge] = MergedItem(
                item_id, item.title, merge, session.session_id, item.ended_at
            )
    return list(found.values())


def find_merged(
    repo: TargetRepo,
    main: str,
    item_id: str,
    sessions: list[PastSession] | None = None,
) -> MergedItem:
    """The latest merge of item_id still on main; RevertError, saying why, if
    there is none."""
    sessions = _read(repo, sessions)
    for merged in merged_items(repo, main, sessions):
        if merged.item_id == item_id:
            return merged
    merges = sorted(_merges(sessions), key=lambda m: m.merged_at, reverse=True)
    for merged in merges:
        if merged.item_id != item_id:
            continue
        by = reverted_by(repo, main, merged.merge)
        if by is not None:
            raise RevertError(
                f"the merge {merged.merge[:12]} of {item_id!r} was reverted on "
                f"{main} already, by {by[:12]}"
            )
        raise RevertError(
            f"the merge {merged.merge[:12]} of {item_id!r} is no longer on {main}"
        )
    attempts = [
        (s.session_id, s.items[item_id].state.value)
        for s in sessions
        if item_id in s.items
    ]
    if not attempts:
        raise RevertError(f"no optui session in {repo.path} has an item {item_id!r}")
    told = "; ".join(f"{state} in {session}" for session, state in attempts[-3:])
    raise RevertError(
        f"{item_id!r} has no merge on {main} left to revert (latest: {told})"
    )


def check_can_revert(repo: TargetRepo, main: str) -> None:
    """Refuse unless main is checked out with no tracked changes."""
    if repo.identity() is None:
        raise PreflightError(
            "git has no user.name and user.email to write the revert with: "
            "set them with 'git config'"
        )
    operation = repo.operation_in_progress()
    if operation:
        raise PreflightError(f"a {operation} is in progress: finish or abort it first")
    branch = repo.current_branch()
    if branch != main:
        where = branch if branch else "a detached HEAD"
        raise PreflightError(
            f"the revert goes onto {main}, but {where} is checked out: "
            f"check out {main} first"
        )
    changed = [line[3:] for line in repo.tracked_changes()]
    if changed:
        files = "file has" if len(changed) == 1 else "files have"
        raise PreflightError(
            f"{len(changed)} tracked {files} uncommitted changes "
            f"({', '.join(changed[:3])}): commit or stash them first"
        )


def revert(repo: TargetRepo, merged: MergedItem, journal: Journal, reason: str) -> str:
    """Revert merged on main (checked out, clean); journal it; the new commit."""
    before = repo.head()
    commit = repo.revert_merge(merged.merge, merged.message)
    log.info("reverted %s (%s) as %s", merged.item_id, merged.merge, commit)
    journal.append(
        "revert",
        item=merged.item_id,
        merge=merged.merge,
        commit=commit,
        main_before=before,
        session=merged.session_id,
        reason=reason,
    )
    return commit


def revert_session(repo: TargetRepo, main: str, merged: MergedItem, reason: str) -> str:
    """Revert merged outside any session, as a session of its own; the commit.

    Refused while another session holds the repository or one is unfinished
    (a new session would hide it from ``optui resume``).
    """
    session_id = new_session_id()
    lock = SessionLock(repo.git_dir)
    lock.acquire(session_id)
    try:
        past = find_unfinished(repo.git_dir)
        if past is not None:
            raise PreflightError(
                f"the last session ({past.session_id}) did not finish: resume it "
                "with 'optui resume PLAN' (or leave it with 'optui run --fresh "
                "PLAN') before reverting"
            )
        check_can_revert(repo, main)
        mask = Masker.from_environment(os.environ)
        journal = Journal.create(repo.git_dir, session_id, mask)
        handler = open_session_log(journal.log_file, journal.mask)
        journal.append(
            "session",
            purpose=REVERT_KIND,
            plan="",
            repo=str(repo.path),
            main=main,
            main_sha=repo.head(),
            items=[
                {
                    "id": merged.item_id,
                    "title": merged.title,
                    "state": ItemState.MERGED.value,
                    "reason": f"merged as {merged.merge[:12]}",
                }
            ],
        )
        try:
            commit = revert(repo, merged, journal, reason)
        except GitError as exc:
            log.error("revert of %s failed: %s", merged.item_id, exc)
            journal.append("end", aborted=False, error=str(exc), outcomes={})
            raise
        finally:
            close_session_log(handler)
        journal.append(
            "end",
            aborted=False,
            error=None,
            outcomes={merged.item_id: ItemState.REVERTED.value},
        )
    finally:
        lock.release()
    return commit
