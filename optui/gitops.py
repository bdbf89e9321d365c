"""The git operations optui performs on the target repository.

Every value from a plan reaches git as an argument, never through a shell, and
refs are checked against git's own naming rules first.
"""

from __future__ import annotations

import logging
import re
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import git

from optui import faults
from optui.errors import GitError

log = logging.getLogger(__name__)

KEPT_PREFIX = "refs/optui"
"""Where the commits of items that did not land are kept, so none is lost."""


class NothingToCommit(GitError):
    """The working tree holds no change to commit."""


@dataclass(frozen=True)
class Identity:
    name: str
    email: str


class TargetRepo:
    """The operator's repository, as optui is allowed to touch it."""

    def __init__(self, path: Path, *, search: bool = False) -> None:
        """search: path may be inside the working tree, not only at its top."""
        try:
            self.repo = git.Repo(path, search_parent_directories=search)
        except (git.InvalidGitRepositoryError, git.NoSuchPathError) as exc:
            raise GitError(f"{path} is not a git repository") from exc
        if self.repo.bare:
            raise GitError(f"{path} is a bare repository; optui needs a working tree")
        self.path = Path(self.repo.working_tree_dir or path)
        self.git = self.repo.git

    @property
    def git_dir(self) -> Path:
        """The repository's common git directory (shared by its worktrees)."""
        return Path(self.repo.common_dir).resolve()

    def _run(self, *args: str, env: Mapping[str, str] | None = None) -> str:
        try:
            return str(self.git.execute(["git", *args], env=env))
        except git.GitCommandError as exc:
            stderr = (exc.stderr or "").strip().removeprefix("stderr:").strip(" '\n")
            raise GitError(f"git {' '.join(args)} failed: {stderr or exc}") from exc
        finally:
            if args[0] in _CHANGING and env is None:
                faults.point(f"git {args[0]}")

    # What the repository holds.

    def current_branch(self) -> str | None:
        """The checked-out branch, or None when HEAD is detached."""
        try:
            return self._run("symbolic-ref", "--quiet", "--short", "HEAD")
        except GitError:
            return None

    def has_branch(self, name: str) -> bool:
        return self.resolve(f"refs/heads/{name}") is not None

    def resolve(self, ref: str) -> str | None:
        """The commit SHA a ref or SHA names, or None when it names no commit."""
        if not ref or ref.startswith("-") or any(c.isspace() for c in ref):
            return None
        try:
            return self._run("rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}")
        except GitError:
            return None

    def head(self) -> str:
        return self._run("rev-parse", "HEAD")

    def tracked_changes(self) -> list[str]:
        """Tracked files with changes, staged or not, as porcelain lines."""
        out = self._run("status", "--porcelain", "--untracked-files=no")
        return [line for line in out.splitlines() if line.strip()]

    def untracked(self) -> set[str]:
        out = self._run("ls-files", "--others", "--exclude-standard", "-z")
        return {name for name in out.split("\0") if name}

    def operation_in_progress(self) -> str | None:
        """A merge, cherry-pick, revert or rebase left half done, if any."""
        git_dir = Path(self.repo.git_dir)
        for marker, name in (
            ("MERGE_HEAD", "merge"),
            ("CHERRY_PICK_HEAD", "cherry-pick"),
            ("REVERT_HEAD", "revert"),
            ("rebase-merge", "rebase"),
            ("rebase-apply", "rebase or am"),
        ):
            if (git_dir / marker).exists():
                return name
        return None

    def identity(self) -> Identity | None:
        reader = self.repo.config_reader()
        name = reader.get_value("user", "name", default="")
        email = reader.get_value("user", "email", default="")
        if not name or not email:
            return None
        return Identity(str(name), str(email))

    def diffstat(self, base: str, head: str) -> str:
        return self._run("diff", "--stat", f"{base}...{head}")

    def changed_files(self, base: str, head: str) -> list[str]:
        out = self._run("diff", "--name-only", f"{base}...{head}")
        return out.splitlines()

    def is_ancestor(self, older: str, newer: str) -> bool:
        try:
            self._run("merge-base", "--is-ancestor", older, newer)
        except GitError:
            return False
        return True

    def find_merge(self, commit: str, branch: str, since: str) -> str | None:
        """The merge commit that brought commit into branch after since, if any."""
        tip = self.resolve(f"refs/heads/{branch}")
        if tip is None or tip == since or not self.is_ancestor(commit, tip):
            return None
        out = self._run("rev-list", "--merges", "--parents", f"{since}..{tip}")
        for line in out.splitlines():
            merge, *parents = line.split()
            if commit in parents[1:]:
                return merge
        return None

    # Changing it.

    def checkout(self, branch: str) -> None:
        self._run("checkout", "--quiet", branch)

    def check_new_branch(self, name: str) -> None:
        """Raise GitError unless name is a valid branch name that is still free."""
        check_branch_name(name)
        if self.has_branch(name):
            raise GitError(
                f"branch {name} already exists; optui never overwrites a branch "
                f"(delete it with 'git branch -D {name}' if it is not needed)"
            )

    def create_branch(self, name: str, start: str) -> None:
        self.check_new_branch(name)
        self._run("checkout", "--quiet", "-b", name, start)

    def delete_branch(self, name: str) -> None:
        self._run("branch", "--quiet", "-D", name)

    def cherry_pick(self, sha: str) -> None:
        """Cherry-pick one commit onto HEAD, keeping its message and author."""
        parents = self._run("rev-list", "--parents", "-n", "1", sha).split()
        if len(parents) > 2:
            raise GitError(f"{sha[:12]} is a merge commit; name one of its parents")
        try:
            self._run("cherry-pick", "-x", "--allow-empty-message", sha)
        except GitError as exc:
            conflicts = self._conflicted()
            self.abort_operation()
            if conflicts:
                raise GitError(
                    f"cherry-pick of {sha[:12]} conflicts in {', '.join(conflicts)}"
                ) from exc
            if "empty" in str(exc) or "nothing to commit" in str(exc):
                raise GitError(
                    f"cherry-pick of {sha[:12]} is empty: its change is already on "
                    "the branch"
                ) from exc
            raise

    def apply_problem(self, patch: Path, tree: str = "HEAD") -> str | None:
        """Why patch does not apply to tree's files, or None if it does.

        The check runs against a scratch index, so it needs no checkout and
        leaves the working tree and the real index alone.
        """
        with tempfile.TemporaryDirectory(prefix="optui-index-") as folder:
            env = {"GIT_INDEX_FILE": str(Path(folder) / "index")}
            self._run("read-tree", tree, env=env)
            try:
                self._run("apply", "--check", "--cached", str(patch), env=env)
            except GitError as exc:
                reason = str(exc).split("failed: ", 1)[-1]
                lines = [line for line in reason.splitlines() if line.strip()]
                return "; ".join(lines[-3:]) or reason
        return None

    def apply_patch(self, patch: Path) -> None:
        problem = self.apply_problem(patch)
        if problem:
            raise GitError(f"patch {patch.name} does not apply: {problem}")
        self._run("apply", "--index", str(patch))

    def commit_all(self, message: str, leave_out: frozenset[str] = frozenset()) -> str:
        """Commit every change in the working tree; NothingToCommit if there is none.

        leave_out: untracked files that are not part of the change (the
        operator's own, there before it was made); they stay untracked.
        """
        self._run("add", "--all")
        self._unstage(leave_out)
        if not self._run("diff", "--cached", "--name-only"):
            raise NothingToCommit("there is no change to commit")
        self._run("commit", "--quiet", "--no-verify", "-m", message)
        return self.head()

    def snapshot(self, message: str, leave_out: frozenset[str] = frozenset()) -> str:
        """A commit of the working tree as it is, on top of HEAD, made through a
        scratch index so that neither the tree nor the real index changes.

        Untracked files in leave_out stay out of it; the commit is on no branch.
        """
        with tempfile.TemporaryDirectory(prefix="optui-index-") as folder:
            env = {"GIT_INDEX_FILE": str(Path(folder) / "index")}
            self._run("read-tree", "HEAD", env=env)
            self._run("add", "--all", env=env)
            self._unstage(leave_out, env)
            tree = self._run("write-tree", env=env)
        return self._run("commit-tree", tree, "-p", "HEAD", "-m", message)

    def _unstage(
        self, names: frozenset[str], env: Mapping[str, str] | None = None
    ) -> None:
        """Take untracked files that `add --all` staged back out of the index."""
        ordered = sorted(names)
        for start in range(0, len(ordered), 200):
            chunk = ordered[start : start + 200]
            self._run(
                "rm", "--cached", "--quiet", "--ignore-unmatch", "--", *chunk, env=env
            )

    def merge_no_ff(self, branch: str, message: str) -> str:
        """Merge branch into the current branch with a merge commit."""
        try:
            self._run("merge", "--quiet", "--no-ff", "--no-edit", "-m", message, branch)
        except GitError:
            if self.operation_in_progress() == "merge":
                self._run("merge", "--abort")
            raise
        return self.head()

    def revert_merge(self, merge: str, message: str) -> str:
        """Undo a merge commit on the current branch with a new commit.

        A revert that conflicts with what came after the merge is aborted, so
        the branch and the working tree stay as they were.
        """
        try:
            self._run("revert", "--no-commit", "--mainline", "1", merge)
            self._run("commit", "--quiet", "--no-verify", "-m", message)
        except GitError as exc:
            conflicted = self._conflicted()
            if self.operation_in_progress() == "revert":
                self._run("revert", "--abort")
            else:
                self._run("reset", "--quiet", "--hard", "HEAD")
            if conflicted:
                raise GitError(
                    f"reverting {merge[:12]} conflicts with later changes to "
                    f"{', '.join(conflicted)}; nothing was changed"
                ) from exc
            raise
        return self.head()

    def log_grep(self, branch: str, text: str) -> list[str]:
        """The commits of branch whose message contains text, newest first."""
        out = self._run(
            "log", "--format=%H", "--fixed-strings", f"--grep={text}", branch
        )
        return out.splitlines()

    def keep(self, kind: str, name: str, sha: str, stamp: str) -> str:
        """Keep sha under refs/optui/<kind>/<name>/<stamp>, never over another
        commit kept there; return the ref."""
        ref = base = f"{KEPT_PREFIX}/{kind}/{name}/{stamp}"
        check_ref_name(ref)
        attempt = 1
        while self.resolve(ref) not in (None, sha):
            attempt += 1
            ref = f"{base}-{attempt}"
        self._run("update-ref", ref, sha)
        return ref

    def kept_refs(self, kind: str | None = None) -> dict[str, str]:
        prefix = KEPT_PREFIX + (f"/{kind}" if kind else "")
        out = self._run("for-each-ref", "--format=%(refname) %(objectname)", prefix)
        return dict(line.split(" ", 1) for line in out.splitlines() if line)

    def abort_operation(self) -> None:
        """Abort a half-done merge, cherry-pick or revert."""
        operation = self.operation_in_progress()
        if operation in ("merge", "cherry-pick", "revert"):
            self._run(operation, "--abort")

    def discard_changes(self, keep_untracked: set[str]) -> None:
        """Drop tracked changes and the untracked files not in keep_untracked."""
        self.abort_operation()
        # A file staged but not in HEAD would be deleted by the reset: make sure
        # none of the operator's files is staged when it runs.
        self._unstage(frozenset(keep_untracked))
        self._run("reset", "--quiet", "--hard")
        for name in sorted(self.untracked() - keep_untracked):
            target = self.path / name
            log.info("removing %s left by a failed apply", target)
            target.unlink(missing_ok=True)

    def _conflicted(self) -> list[str]:
        try:
            out = self._run("diff", "--name-only", "--diff-filter=U")
        except GitError:
            return []
        return out.splitlines()


_CHANGING = frozenset(
    {"checkout", "cherry-pick", "apply", "add", "commit", "merge", "branch"}
    | {"update-ref", "reset", "revert", "stash"}
)
"""The git commands that change the repository (a scratch index does not count)."""

_BAD_REF = re.compile(
    r"(^|/)\.|\.\.|[\x00-\x20~^:?*\[\\\x7f]|@\{|//|\.lock(/|$)|/$|\.$"
)


def check_ref_name(name: str) -> None:
    """Raise GitError unless name follows git's rules for ref names."""
    if not name or name == "@" or name.startswith("-") or _BAD_REF.search(name):
        raise GitError(f"{name!r} is not a valid git ref name")


def check_branch_name(name: str) -> None:
    check_ref_name(f"refs/heads/{name}")
