"""Create the git repository that ``optui demo`` runs the demo plan against.

The repository holds the payments service under ``target/`` as its first commit
on ``main``, and one branch ``demo/<item-id>`` per plan item, each a single
commit off that first one. The files under ``changes/<item-id>/`` replace their
namesakes in the service; every item touches a different module, so the items
cherry-pick onto main in any order without conflicts.

The Docker variant is the same repository with one more item, whose change only
shows in a container with a memory limit; its ignored ``local.mk`` tells the
Makefile to deploy into such a container. That item edits the ledger module as
``cache-balances`` does, in lines that one leaves alone, so that all the items
still cherry-pick in any order.
"""

from __future__ import annotations

import logging
import shutil
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import git

from optui.errors import GitError, OptuiError

log = logging.getLogger(__name__)

_HERE = Path(__file__).resolve().parent
_TARGET = _HERE / "target"
_CHANGES = _HERE / "changes"
_PLAN = _HERE / "plan.yaml"
_DOCKER_PLAN = _HERE / "plan-docker.yaml"

# The package ships data files by suffix, and none for dot files, Markdown or
# a Dockerfile; these travel under other names.
_RENAMED = {
    "gitignore.txt": ".gitignore",
    "README.txt": "README.md",
    "Dockerfile.txt": "Dockerfile",
}
_SKIPPED_DIRS = {"__pycache__", "run"}
_SKIPPED_SUFFIXES = (".pyc",)

MAIN_BRANCH = "main"
AUTHOR_NAME = "optui demo"
AUTHOR_EMAIL = "demo@optui.invalid"

_INITIAL_MESSAGE = """\
Add the payments service

A standard-library HTTP service that records payments and reports balances,
with make targets to build, start, stop, probe and load-test it.
"""


@dataclass(frozen=True)
class DemoChange:
    """One demo item: the commit on its own branch that the plan cherry-picks."""

    item_id: str
    """The plan item's id; its files live in ``changes/<item_id>/``."""
    message: str
    """The commit message, subject line first."""

    @property
    def branch(self) -> str:
        """The branch holding the change, named in the plan's ``cherry-pick``."""
        return f"demo/{self.item_id}"


DEMO_CHANGES: tuple[DemoChange, ...] = (
    DemoChange(
        "precompute-fees",
        """\
perf(fees): fetch the rate table once and precompute the tiers

Every payment asked the pricing service for the rate table, a round trip of
about 30 ms. The table only changes with a release: fetch it when the
service starts and find the tier by bisection.
""",
    ),
    DemoChange(
        "cache-balances",
        """\
perf(ledger): serve balance reads from memory

Each payment and each account read paid a ledger store round trip of about
12 ms for the balance. Keep every balance in memory from the moment the
account is opened and answer reads from there.
""",
    ),
    DemoChange(
        "audit-every-request",
        """\
refactor(audit): write every event through to the collector

The in-memory buffer loses events when the process dies. Append each event
to the audit log and wait for the collector's acknowledgement before
answering the request.
""",
    ),
    DemoChange(
        "fast-json",
        """\
perf(codec): encode and decode bodies with orjson

orjson parses and serializes several times faster than the json module.
""",
    ),
    DemoChange(
        "pool-500",
        """\
perf(server): raise the worker pool to 500

Bursts of payments queue for one of 32 worker slots. Allow 500 requests at
once and deepen the listen backlog to match.
""",
    ),
)


DOCKER_CHANGES: tuple[DemoChange, ...] = (
    DemoChange(
        "bigger-ledger-cache",
        """\
perf(ledger): reserve a 150 MB page cache for the ledger store

Ledger pages read from the store are worth keeping. Reserve the cache when
the server starts, so that filling it never allocates on the request path.
""",
    ),
)
"""Items of the Docker variant's plan only: their effect needs a memory limit."""


def docker_project(port: int) -> str:
    """The compose project label, and container name, of the service on ``port``."""
    return f"optui-demo-{port}"


@dataclass(frozen=True)
class DemoTarget:
    """A demo repository made by `create_demo_repo`."""

    repo: Path
    """The repository's work tree, checked out on ``main``."""
    port: int
    """The TCP port the service listens on, written to the ignored ``local.mk``."""
    plan_path: Path
    """The demo plan as shipped in the package, for the variant made."""
    docker_project: str | None = None
    """The Docker variant's compose project label, which is also the container's
    name; None when the service runs as a local process."""


def demo_plan_path(docker: bool = False) -> Path:
    """Return the path of the demo plan shipped in the package.

    Args:
        docker: The plan of the Docker variant rather than the local one.
    """
    return _DOCKER_PLAN if docker else _PLAN


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


def create_demo_repo(
    path: Path, port: int | None = None, docker: bool = False
) -> DemoTarget:
    """Create the demo repository in ``path``, which must be empty or absent.

    Args:
        path: Folder for the new repository.
        port: Port for the service; a free one on 127.0.0.1 when None.
        docker: Make the Docker variant: ``make up`` runs the service in a
            container with a memory limit, and the Docker plan's extra items
            get their branches.

    Raises:
        OptuiError: ``path`` is a file or a folder with something in it, or the
            port is out of range.
        GitError: A git command failed; the folder is left as it was found.
    """
    path = Path(path)
    if port is not None and not 0 < port < 65536:
        raise OptuiError(f"port must be between 1 and 65535, not {port}")
    created = _claim_folder(path)
    chosen = free_port() if port is None else port
    changes = DEMO_CHANGES + DOCKER_CHANGES if docker else DEMO_CHANGES

    try:
        _build_history(path, changes)
    except git.GitCommandError as error:
        _discard(path, created)
        raise GitError(
            f"could not create the demo repository in {path}: {error}",
            title="Demo setup failed",
        ) from error
    except BaseException:
        _discard(path, created)
        raise

    project = docker_project(chosen) if docker else None
    (path / "local.mk").write_text(_local_settings(chosen, project), encoding="utf-8")
    log.info(
        "created demo repository in %s (service port %d, %s)",
        path,
        chosen,
        f"container {project}" if project else "local process",
    )
    return DemoTarget(
        repo=path,
        port=chosen,
        plan_path=demo_plan_path(docker),
        docker_project=project,
    )


def _local_settings(port: int, project: str | None) -> str:
    """The ignored ``local.mk``: the port, and for Docker the deployment's names."""
    lines = [f"PORT = {port}"]
    if project is not None:
        lines += ["DEMO_DEPLOY = docker", f"DEMO_PROJECT = {project}"]
    return "".join(f"{line}\n" for line in lines)


def _claim_folder(path: Path) -> bool:
    """Make sure ``path`` is an empty folder; return whether it was created."""
    if path.is_dir():
        if any(path.iterdir()):
            raise OptuiError(
                f"{path} is not empty; the demo needs an empty or new folder",
                title="Demo folder in use",
            )
        return False
    if path.exists():
        raise OptuiError(
            f"{path} exists and is not a folder", title="Demo folder in use"
        )
    path.mkdir(parents=True)
    return True


def _discard(path: Path, created: bool) -> None:
    """Undo a half-made repository, leaving the folder as it was found."""
    if created:
        shutil.rmtree(path, ignore_errors=True)
        return
    for child in path.iterdir():
        if child.is_dir() and not child.is_symlink():
            shutil.rmtree(child, ignore_errors=True)
        else:
            child.unlink(missing_ok=True)


def _build_history(path: Path, changes: tuple[DemoChange, ...]) -> None:
    repo = git.Repo.init(path, initial_branch=MAIN_BRANCH)
    with repo.config_writer() as config:
        config.set_value("user", "name", AUTHOR_NAME)
        config.set_value("user", "email", AUTHOR_EMAIL)
        # A signing setup of the machine's own must not stop the demo.
        config.set_value("commit", "gpgsign", "false")

    _copy_files(_TARGET, path)
    _commit_all(repo, _INITIAL_MESSAGE)
    initial = repo.head.commit.hexsha
    log.debug("demo main starts at %s", initial)

    for change in changes:
        repo.git.checkout("-q", "-b", change.branch, initial)
        _copy_files(_CHANGES / change.item_id, path)
        _commit_all(repo, change.message)
        log.debug("demo branch %s created", change.branch)
    repo.git.checkout("-q", MAIN_BRANCH)


def _commit_all(repo: git.Repo, message: str) -> None:
    repo.git.add("--all")
    repo.git.commit("-q", "--no-verify", "-m", message)


def _copy_files(source: Path, destination: Path) -> None:
    """Copy the files under ``source`` into ``destination``, replacing any."""
    for relative in _files_under(source):
        name = _RENAMED.get(relative.name, relative.name)
        target = destination / relative.parent / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source / relative, target)


def _files_under(root: Path) -> Iterator[Path]:
    for entry in sorted(root.rglob("*")):
        relative = entry.relative_to(root)
        if _SKIPPED_DIRS.intersection(relative.parts[:-1]):
            continue
        if entry.is_file() and not entry.name.endswith(_SKIPPED_SUFFIXES):
            yield relative
