"""The ``optui`` command."""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from optui import __version__
from optui.check import check_plan
from optui.engine import Engine
from optui.errors import OptuiError, PlanError
from optui.gitops import TargetRepo
from optui.headless import Policy, run_headless
from optui.history import attempts, session_line
from optui.importer import import_markdown
from optui.journal import list_sessions
from optui.plan import Plan, load_plan
from optui.report import FORMATS, build_report, renderers, schema, write_reports
from optui.revert import find_merged, revert_session
from optui.sessions import PastSession, all_sessions, find_session, find_unfinished

EXIT_USAGE = 2


COMMANDS = ("check", "run", "resume", "demo", "report", "history", "revert", "import")


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    words = list(sys.argv[1:] if argv is None else argv)
    if words and words[0] not in COMMANDS and not words[0].startswith("-"):
        words.insert(0, "run")
    args = parser.parse_args(words)
    logging.getLogger("optui").addHandler(logging.NullHandler())
    try:
        status: int = args.func(args)
    except OptuiError as exc:
        print(f"optui: {exc.title}:", file=sys.stderr)
        print(f"  {exc}".replace("\n", "\n  "), file=sys.stderr)
        return exc.exit_status
    return status


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="optui",
        description="Re-apply performance optimizations one at a time, each proven "
        "by build, deploy and load tests before it lands.",
    )
    parser.add_argument("--version", action="version", version=f"optui {__version__}")
    commands = parser.add_subparsers(required=True, metavar="COMMAND")

    check = commands.add_parser("check", help="validate a plan against its repository")
    check.add_argument("plan", type=Path)
    check.add_argument("--repo", type=Path, help="the target repository")
    check.set_defaults(func=_check)

    run = commands.add_parser(
        "run", help="run a plan's session in the app (optui PLAN does the same)"
    )
    run.add_argument("plan", type=Path)
    run.add_argument("--repo", type=Path, help="the target repository")
    run.add_argument(
        "--fresh",
        action="store_true",
        help="if the last session did not finish, recover the repository and "
        "start a new session instead of resuming it",
    )
    _add_run_options(run)
    run.set_defaults(func=_run)

    resume = commands.add_parser(
        "resume",
        help="carry on the repository's last session, if it did not finish",
    )
    resume.add_argument("plan", type=Path)
    resume.add_argument("--repo", type=Path, help="the target repository")
    _add_run_options(resume)
    resume.set_defaults(func=_resume)

    demo = commands.add_parser(
        "demo", help="make a demo service repository and run the demo plan on it"
    )
    demo.add_argument(
        "--dir",
        type=Path,
        help="make the demo repository here and keep it (default: a temporary folder)",
    )
    demo.add_argument(
        "--docker",
        action="store_true",
        help="deploy the demo service as a container with a memory limit",
    )
    _add_run_options(demo)
    demo.set_defaults(func=_demo)
    _add_record_commands(commands)
    return parser


def _add_record_commands(commands: argparse._SubParsersAction[Any]) -> None:
    """The commands that read or amend what sessions recorded."""
    report = commands.add_parser(
        "report", help="write a session's outcome as Markdown, JSON, JUnit or HTML"
    )
    report.add_argument(
        "session", nargs="?", help="the session's id or a start of it (default: last)"
    )
    report.add_argument("--repo", type=Path, help="the target repository")
    report.add_argument(
        "-f",
        "--format",
        action="append",
        choices=(*FORMATS, "all"),
        help="markdown (the default), json, junit, html, or all; may be repeated",
    )
    report.add_argument(
        "-o",
        "--output",
        type=Path,
        help="the file to write (one format), or the folder (several); default: "
        "standard output for one format, the session's folder for several",
    )
    report.add_argument(
        "--schema",
        action="store_true",
        help="print the JSON Schema of the json format, and nothing else",
    )
    report.set_defaults(func=_report)

    history = commands.add_parser(
        "history", help="list every session of a repository, or an item's attempts"
    )
    history.add_argument("--repo", type=Path, help="the target repository")
    history.add_argument("--item", help="show this item's attempts across sessions")
    history.set_defaults(func=_history)

    revert = commands.add_parser(
        "revert", help="revert a merged item's merge commit on main"
    )
    revert.add_argument("item", help="the item's id")
    revert.add_argument("--repo", type=Path, help="the target repository")
    revert.add_argument(
        "--main", default="main", help="the main branch (default: main)"
    )
    revert.add_argument(
        "--yes", action="store_true", help="do not ask for confirmation"
    )
    revert.set_defaults(func=_revert)

    importing = commands.add_parser(
        "import", help="turn a plan written in Markdown into a plan file"
    )
    importing.add_argument("markdown", type=Path)
    importing.add_argument(
        "-o", "--output", type=Path, help="the plan file (default: beside it, .yaml)"
    )
    importing.add_argument(
        "--force", action="store_true", help="overwrite the plan file if it exists"
    )
    importing.set_defaults(func=_import)


def _add_run_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--headless", action="store_true", help="plain progress lines, no app"
    )
    group = parser.add_mutually_exclusive_group()
    group.add_argument(
        "--auto-merge", action="store_true", help="merge every item that passes"
    )
    group.add_argument(
        "--dry-run", action="store_true", help="test every item but merge none"
    )


def _load(path: Path, repo: Path | None) -> Plan:
    plan = load_plan(path)
    if repo is not None:
        plan = plan.with_repo(repo.resolve())
    return plan


def _check(args: argparse.Namespace) -> int:
    try:
        plan = _load(args.plan, args.repo)
    except PlanError as exc:
        for problem in exc.problems:
            print(problem)
        _count(len(exc.problems))
        return EXIT_USAGE
    target = TargetRepo(plan.repo) if plan.repo is not None else None
    report = check_plan(plan, target)
    for problem in report.problems:
        print(problem)
    for note in report.notes:
        print(note)
    if report.problems:
        _count(len(report.problems))
        return EXIT_USAGE
    items = list(plan.items())
    deferred = sum(1 for item in items if item.deferred)
    print(
        f"{plan.path}: ok: {len(items)} items in {len(plan.phases)} phases "
        f"({deferred} deferred), {len(plan.gates)} gates, {plan.runs} runs each"
    )
    return 0


def _count(problems: int) -> None:
    print(f"{problems} problem{'s' if problems != 1 else ''} found", file=sys.stderr)


def _run(args: argparse.Namespace) -> int:
    plan = _load(args.plan, args.repo)
    past = None if args.fresh else _unfinished(plan)
    if past is None:
        return _session(plan, args, fresh=args.fresh)
    if not _terminal():
        # The engine refuses in preflight, saying how to go on.
        return _session(plan, args)
    if not args.headless:
        return _session(plan, args, offer=past)
    print(f"optui: {past.describe()}".replace("\n", "\n  "))
    while True:
        print("[r]esume it, start [f]resh, or [q]uit? ", end="", flush=True)
        answer = sys.stdin.readline().strip().lower()[:1]
        if answer in ("r", "f", "q", ""):
            break
    if answer == "r":
        return _session(plan, args, resume=past)
    if answer == "f":
        return _session(plan, args, fresh=True)
    return 0


def _resume(args: argparse.Namespace) -> int:
    plan = _load(args.plan, args.repo)
    past = _unfinished(plan)
    if past is None:
        print(
            f"optui: no unfinished session in {plan.repo}: start one with "
            f"'optui run {args.plan}'",
            file=sys.stderr,
        )
        return EXIT_USAGE
    print(f"optui: {past.describe()}".replace("\n", "\n  "))
    return _session(plan, args, resume=past)


def _unfinished(plan: Plan) -> PastSession | None:
    if plan.repo is None:
        return None
    return find_unfinished(TargetRepo(plan.repo).git_dir)


def _terminal() -> bool:
    return sys.stdin.isatty() and sys.stdout.isatty()


def _session(
    plan: Plan,
    args: argparse.Namespace,
    *,
    resume: PastSession | None = None,
    fresh: bool = False,
    offer: PastSession | None = None,
) -> int:
    """Run a session in the app or headless.

    resume and fresh are as for ``Engine``; offer: an unfinished session the
    app asks the operator about before it starts.
    """
    terminal = _terminal()
    if not args.headless and terminal:
        if args.auto_merge or args.dry_run:
            print(
                "optui: --auto-merge and --dry-run go with --headless; in the app "
                "you decide every merge",
                file=sys.stderr,
            )
            return EXIT_USAGE
        from optui.tui.app import OptuiApp

        engine = None
        if offer is None:
            engine = Engine(plan, linger=True, resume=resume, fresh=fresh)
        status = OptuiApp(plan, engine=engine, offer=offer).run()
        return status if status is not None else 0
    if not args.headless:
        print("optui: no terminal: running headless", file=sys.stderr)
    policy = Policy(
        auto_merge=args.auto_merge,
        dry_run=args.dry_run,
        interactive=terminal,
    )
    return run_headless(
        plan, policy, sys.stdout, sys.stdin, sys.stderr, resume=resume, fresh=fresh
    )


def _target(repo: Path | None) -> TargetRepo:
    """The repository a folder (by default the current one) is in."""
    return TargetRepo(repo if repo is not None else Path.cwd(), search=True)


def _report(args: argparse.Namespace) -> int:
    if args.schema:
        print(json.dumps(schema(), indent=2))
        return 0
    target = _target(args.repo)
    session = _find_session(target, args.session)
    formats = tuple(dict.fromkeys(args.format or ["markdown"]))
    if "all" in formats:
        formats = FORMATS
    if len(formats) == 1:
        _, render = renderers()[formats[0]]
        text = render(build_report(session))
        if args.output is None:
            sys.stdout.write(text)
            return 0
        with _writing(args.output):
            args.output.write_text(text, encoding="utf-8")
        print(f"optui: wrote {args.output}")
        return 0
    with _writing(args.output or session.folder):
        written = write_reports(session, formats, args.output)
    for path in written:
        print(f"optui: wrote {path}")
    return 0


@contextlib.contextmanager
def _writing(path: Path) -> Iterator[None]:
    """Turn a file that cannot be written into a clear error naming it."""
    try:
        yield
    except OSError as exc:
        raise OptuiError(
            f"cannot write {path}: {exc.strerror or exc}", title="Cannot write"
        ) from exc


def _find_session(target: TargetRepo, name: str | None) -> PastSession:
    session = find_session(target.git_dir, name)
    if session is not None:
        return session
    known = [p.name for p in list_sessions(target.git_dir)]
    if not known:
        raise OptuiError(
            f"{target.path} has no optui sessions yet", title="No such session"
        )
    raise OptuiError(
        f"no single session of {target.path} matches {name!r}; the latest are: "
        + ", ".join(known[-5:]),
        title="No such session",
    )


def _history(args: argparse.Namespace) -> int:
    target = _target(args.repo)
    sessions = all_sessions(target.git_dir)
    if not sessions:
        print(f"optui: {target.path} has no optui sessions yet")
        return 0
    if args.item is None:
        for session in sessions:
            print(session_line(session))
        return 0
    tried = attempts(sessions, args.item)
    if not tried:
        print(f"optui: no session attempted {args.item!r}", file=sys.stderr)
        return EXIT_USAGE
    for attempt in tried:
        when = time.strftime("%Y-%m-%d %H:%M", time.localtime(attempt.at))
        line = f"{attempt.session_id}  {when}  {attempt.state.value:<12}"
        detail = attempt.p99_change or attempt.reason
        print(f"{line}{detail}".rstrip())
    return 0


def _revert(args: argparse.Namespace) -> int:
    target = _target(args.repo)
    merged = find_merged(target, args.main, args.item)
    print(
        f"optui: {merged.item_id} was merged into {args.main} as "
        f"{merged.merge[:12]} by session {merged.session_id}:"
    )
    print(
        "  " + target.diffstat(f"{merged.merge}^1", merged.merge).replace("\n", "\n  ")
    )
    if not args.yes:
        if not _terminal():
            print(
                "optui: no terminal to confirm the revert: pass --yes",
                file=sys.stderr,
            )
            return EXIT_USAGE
        print(f"Revert it on {args.main}? [y/N] ", end="", flush=True)
        if sys.stdin.readline().strip().lower() not in ("y", "yes"):
            print("optui: nothing reverted")
            return 0
    commit = revert_session(target, args.main, merged, "reverted from the command line")
    print(
        f"optui: reverted {merged.item_id} on {args.main} as {commit[:12]}; the "
        "next session measures main's baseline afresh"
    )
    return 0


def _import(args: argparse.Namespace) -> int:
    output = args.output or args.markdown.with_suffix(".yaml")
    if output.exists() and not args.force:
        print(
            f"optui: {output} exists: pass --force to overwrite it, or -o PATH",
            file=sys.stderr,
        )
        return EXIT_USAGE
    try:
        imported = import_markdown(args.markdown)
    except PlanError as exc:
        for problem in exc.problems:
            print(problem)
        _count(len(exc.problems))
        return EXIT_USAGE
    with _writing(output):
        output.write_text(imported.text, encoding="utf-8")
    for note in imported.notes:
        print(note)
    print(
        f"optui: wrote {output}: {imported.items} items ({imported.deferred} "
        f"deferred). Fill in each item's apply source, then run 'optui check "
        f"{output}'"
    )
    return 0


def _demo(args: argparse.Namespace) -> int:
    if args.dir is not None:
        return _demo_in(args.dir.resolve(), args, keep=True)
    with tempfile.TemporaryDirectory(prefix="optui-demo-") as folder:
        return _demo_in(Path(folder) / "payments", args, keep=False)


def _demo_in(folder: Path, args: argparse.Namespace, *, keep: bool) -> int:
    from optui.demo.builder import create_demo_repo

    target = create_demo_repo(folder, docker=args.docker)
    print(
        f"optui: demo repository made in {target.repo} (service on port {target.port})"
    )
    plan = load_plan(target.plan_path).with_repo(target.repo)
    if target.docker_project is not None:
        plan = plan.with_docker_project(target.docker_project)
    status = _session(plan, args)
    if keep:
        print(f"optui: the demo repository stays in {target.repo}: see git log --graph")
    else:
        print(
            "optui: the demo repository was temporary, and its session with it; "
            "--dir PATH keeps both"
        )
    return status


if __name__ == "__main__":
    raise SystemExit(main())
