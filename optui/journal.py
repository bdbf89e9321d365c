"""The session journal: an append-only record of everything measured and decided.

A session lives in ``<git dir>/optui/sessions/<id>/`` of the target repository,
outside its working tree: ``journal.jsonl`` (one JSON object a line), ``optui.log``
(optui's own log) and ``logs/`` (one file per step and run).
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import json
import logging
import os
import secrets
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any

from optui.errors import PreflightError
from optui.masking import Masker

log = logging.getLogger(__name__)

BASELINE_DIR = "_baseline"
"""The log folder of main's own measurements (item ids cannot begin with '_')."""


def sessions_root(git_dir: Path) -> Path:
    return git_dir / "optui" / "sessions"


def new_session_id() -> str:
    return time.strftime("%Y%m%d-%H%M%S") + "-" + secrets.token_hex(2)


@dataclass
class Journal:
    """One session's folder and its journal file."""

    folder: Path
    mask: Masker = field(default_factory=Masker)
    """Applied to every string of every record, to keep secrets out."""

    @classmethod
    def create(
        cls, git_dir: Path, session_id: str | None = None, mask: Masker | None = None
    ) -> Journal:
        """A new, empty session folder under git_dir."""
        folder = sessions_root(git_dir) / (session_id or new_session_id())
        folder.mkdir(parents=True, exist_ok=False, mode=0o700)
        (folder / "logs").mkdir(mode=0o700)
        (folder / "k6").mkdir(mode=0o700)
        os.chmod(folder.parent, 0o700)
        return cls(folder, mask or Masker())

    @classmethod
    def reopen(cls, folder: Path, mask: Masker | None = None) -> Journal:
        """An existing session's journal, to append to; a torn last line is cut."""
        journal = cls(folder, mask or Masker())
        with journal.path.open("rb+") as handle:
            data = handle.read()
            end = data.rfind(b"\n") + 1
            if end < len(data):
                log.warning(
                    "%s: cutting a torn last line: %r", journal.path, data[end:200]
                )
                handle.truncate(end)
                os.fsync(handle.fileno())
        return journal

    @property
    def session_id(self) -> str:
        return self.folder.name

    @property
    def path(self) -> Path:
        return self.folder / "journal.jsonl"

    @property
    def log_file(self) -> Path:
        return self.folder / "optui.log"

    def step_log(self, item_id: str | None, step: str, run: int | None = None) -> Path:
        name = step if run is None else f"{step}-run{run}"
        folder = self.folder / "logs" / (item_id or BASELINE_DIR)
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        return _unique(folder / f"{name}.log")

    def k6_files(self, item_id: str | None, run: int) -> tuple[Path, Path]:
        """Where one run's k6 summary and sample stream go."""
        folder = self.folder / "k6" / (item_id or BASELINE_DIR)
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        for n in range(1, 10_000):
            stem = f"run{run}" if n == 1 else f"run{run}.{n}"
            summary = folder / f"{stem}-summary.json"
            samples = folder / f"{stem}-samples.ndjson"
            if not summary.exists() and not samples.exists():
                return summary, samples
        raise FileExistsError(folder / f"run{run}-summary.json")

    def append(self, kind: str, **fields: Any) -> None:
        """Write one record and make it durable before returning."""
        record: object = {"type": kind, "at": time.time(), **fields}
        if self.mask.secrets:
            record = self.mask.data(json.loads(json.dumps(record, default=_plain)))
        line = json.dumps(record, default=_plain) + "\n"
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            os.write(fd, line.encode("utf-8"))
            os.fsync(fd)
        finally:
            os.close(fd)


def read_journal(path: Path) -> Iterator[dict[str, Any]]:
    """The records of a journal; a torn last line (a crash mid-write) is skipped."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return
    lines = data.split(b"\n")
    for number, raw in enumerate(lines, start=1):
        if not raw.strip():
            continue
        try:
            record = json.loads(raw)
        except json.JSONDecodeError:
            if number >= len(lines) - 1:
                log.warning("%s: ignoring a torn last line", path)
                return
            raise ValueError(f"{path}:{number}: journal line is not JSON") from None
        if isinstance(record, dict):
            yield record


class SessionLock:
    """Held while a session runs, so two never work on one repository at once.

    The lock is an flock on ``<git dir>/optui/lock``: the system releases it
    when the process ends, however it ends, so a crash never leaves it stale.
    """

    def __init__(self, git_dir: Path) -> None:
        self.path = git_dir / "optui" / "lock"
        self._fd: int | None = None

    def acquire(self, session_id: str) -> None:
        """Take the lock for session_id; PreflightError if another process has it."""
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 200).decode("utf-8", errors="replace").strip()
            os.close(fd)
            raise PreflightError(
                f"another optui session is running on this repository ({holder}); "
                "wait for it to end, or quit it"
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, f"pid {os.getpid()}, session {session_id}\n".encode())
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def open_session_log(path: Path, mask: Masker) -> logging.Handler:
    """Send optui's log, secrets masked, into a session's log file until closed."""
    handler = logging.FileHandler(path, encoding="utf-8")
    os.chmod(path, 0o600)
    handler.setFormatter(
        mask.formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    )
    handler.setLevel(logging.DEBUG)
    package = logging.getLogger("optui")
    package.addHandler(handler)
    if package.level == logging.NOTSET or package.level > logging.INFO:
        package.setLevel(logging.INFO)
    return handler


def close_session_log(handler: logging.Handler) -> None:
    logging.getLogger("optui").removeHandler(handler)
    handler.close()


def list_sessions(git_dir: Path) -> list[Path]:
    """Session folders, oldest first."""
    root = sessions_root(git_dir)
    if not root.is_dir():
        return []
    folders = [p for p in root.iterdir() if (p / "journal.jsonl").exists()]
    return sorted(folders, key=_started)


def _started(folder: Path) -> tuple[str, float, str]:
    """A session's order: its id's second, then its first record's time (ids
    made in one second differ only by a random suffix)."""
    at = 0.0
    journal = folder / "journal.jsonl"
    with (
        contextlib.suppress(OSError, ValueError, AttributeError),
        journal.open("rb") as handle,
    ):
        at = float(json.loads(handle.readline()).get("at", 0.0))
    return folder.name[:15], at, folder.name


def _unique(path: Path) -> Path:
    """path, or path with a counter added if a file of that name exists (a rerun)."""
    if not path.exists():
        return path
    for n in range(2, 10_000):
        candidate = path.with_name(f"{path.stem}.{n}{path.suffix}")
        if not candidate.exists():
            return candidate
    raise FileExistsError(path)


def _plain(value: object) -> object:
    """JSON for what json cannot write itself: paths, enums, mappings, dataclasses."""
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, Mapping):
        return dict(value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    raise TypeError(f"cannot journal {type(value).__name__}")
