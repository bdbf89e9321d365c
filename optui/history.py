"""The repository's history across sessions: main's p99, merges, attempts.

Every session is kept in the journal folder; this module reads them together
for ``optui history`` and the app's history screen.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from optui.events import ItemState
from optui.sessions import PastItem, PastSession


@dataclass(frozen=True)
class MainPoint:
    """Main's p99 at one moment: a baseline measured or moved, or a revert."""

    at: float
    p99: float | None
    sha: str
    session_id: str
    event: str
    """``measured``, ``merged <item>`` or ``reverted <item>``."""


@dataclass(frozen=True)
class Attempt:
    """One session's attempt at an item."""

    session_id: str
    at: float
    state: ItemState
    reason: str
    p99_change: str
    """The change of p99 against main with its interval, or ""."""
    runs: int


def main_series(sessions: list[PastSession]) -> list[MainPoint]:
    """Main's p99 through every session, in time order, with merges and reverts."""
    points: list[MainPoint] = []
    for session in sessions:
        for mark in session.baselines:
            event = "measured"
            if mark.source.startswith("runs of merged "):
                event = "merged " + mark.source.removeprefix("runs of merged ")
            points.append(
                MainPoint(mark.at, mark.p99, mark.main_sha, session.session_id, event)
            )
        for revert in session.reverts:
            points.append(
                MainPoint(
                    revert.at,
                    None,
                    revert.commit,
                    session.session_id,
                    f"reverted {revert.item_id}",
                )
            )
    return sorted(points, key=lambda p: p.at)


def attempts(sessions: list[PastSession], item_id: str) -> list[Attempt]:
    """Every session's attempt at item_id that got beyond waiting, oldest first."""
    found = []
    for session in sessions:
        item = session.items.get(item_id)
        if item is None or not _attempted(item, session):
            continue
        change = item.change(99)
        found.append(
            Attempt(
                session.session_id,
                item.began_at or session.started_at,
                item.state,
                item.reason,
                change.describe() if change is not None else "",
                len(item.runs),
            )
        )
    return found


def _attempted(item: PastItem, session: PastSession) -> bool:
    return item.attempts > 0 or session.kind != "session"


def item_ids(sessions: list[PastSession]) -> list[str]:
    """Every item any session had, in the order first seen."""
    seen: dict[str, None] = {}
    for session in sessions:
        for item_id in session.items:
            seen.setdefault(item_id, None)
    return list(seen)


def states_text(session: PastSession) -> str:
    """``1 merged, 2 failed, 1 deferred``: the items of a session by state."""
    return ", ".join(f"{n} {state}" for state, n in session.state_counts.items())


def session_line(session: PastSession) -> str:
    """One line for a session: when, what it was, how it ended, main's p99."""
    when = time.strftime("%Y-%m-%d %H:%M", time.localtime(session.started_at))
    if session.kind != "session":
        what = ", ".join(
            f"reverted {r.item_id} ({r.merge[:12]} by {r.commit[:12]})"
            for r in session.reverts
        )
        error = f"failed: {session.error}" if session.error else ""
        return f"{session.session_id}  {when}  revert    {what or error}"
    states = states_text(session)
    p99 = ""
    if session.p99_before is not None and session.p99_after is not None:
        p99 = f"  p99 {session.p99_before:.1f} -> {session.p99_after:.1f} ms"
    name = session.plan_name or session.plan_path
    return f"{session.session_id}  {when}  {session.status:<10}{name}: {states}{p99}"
