"""The ``optui`` command."""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from optui import __version__
from optui.check import check_plan
from optui.engine import Engine
from optui.errors import OptuiError, PlanError
from optui.gitops import TargetRepo
from optui.headless import Policy, run_headless
from optui.plan import Plan, load_plan
from optui.sessions import PastSession, find_unfinished

EXIT_USAGE = 2


COMMANDS = ("check", "run", "resume", "demo")


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
    return parser


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
        print("optui: the demo repository was temporary; --dir PATH keeps one")
    return status


if __name__ == "__main__":
    raise SystemExit(main())
