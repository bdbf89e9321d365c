"""Secrets stay out of what optui writes; plan values never reach a shell."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from conftest import commit_file, git, new_repo
from engine_helpers import assert_clean_on_main

from optui.engine import Engine
from optui.errors import PlanError
from optui.events import Decision, DecisionNeeded, Event, OutputLine
from optui.masking import MASK, Masker, secret_names
from optui.plan import load_plan

SECRET = "s3cr3t-Value-8d1f"

LOAD_TEST = """\
#!/bin/sh
echo "calling the API with token $PAYMENTS_API_TOKEN"
cat > "$K6_SUMMARY_EXPORT" <<EOF
{"metrics": {
  "http_req_duration": {"p(99)": 10, "med": 1, "count": 100},
  "http_reqs": {"count": 100, "rate": 50},
  "http_req_failed": {"passes": 0, "fails": 100, "value": 0}
}}
EOF
"""


def _plan(folder: Path, repo: Path, items: str) -> Path:
    path = folder / "plan.yaml"
    path.write_text(
        f"""\
name: Security
target:
  repo: {repo}
commands:
  build: "true"
  up: "true"
  down: "true"
  test: sh loadtest.sh
ready:
  sleep: 0
runs: 1
gates:
  - "http_req_failed: rate == 0"
  - "http_req_duration: p(99) <= baseline * 1.10"
phases:
  - name: Items
    items:
{items}"""
    )
    return path


def _item(item_id: str, title: str, apply: str) -> str:
    return (
        f"      - id: {item_id}\n"
        f"        title: {title!r}\n"
        "        risk: low\n"
        "        scope: api\n"
        f"        apply:\n          {apply}\n"
    )


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    repo = new_repo(tmp_path / "repo")
    commit_file(repo, "loadtest.sh", LOAD_TEST, "Load test")
    return repo


def _run(plan: Path) -> tuple[Engine, list[Event]]:
    """A session that leaves every item that passes unmerged."""
    engine = Engine(load_plan(plan))
    events: list[Event] = []

    def listen(event: Event) -> None:
        events.append(event)
        if isinstance(event, DecisionNeeded):
            engine.decide(event.item_id, Decision.LEAVE)

    engine.subscribe(listen)
    engine.run()
    return engine, events


def test_secret_values_are_masked_in_every_file_and_event(
    tmp_path: Path, repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PAYMENTS_API_TOKEN", SECRET)
    plan = _plan(
        tmp_path,
        repo,
        _item("touch", "Touch a file", 'command: "echo tuned >> README"')
        + _item("noisy", "Fail loudly", 'command: "echo $PAYMENTS_API_TOKEN; exit 1"'),
    )

    engine, events = _run(plan)

    assert engine.records["touch"].state.value == "passed, not merged"
    assert engine.records["noisy"].state.value == "error"
    assert engine.journal is not None
    folder = engine.journal.folder
    written = [p for p in folder.rglob("*") if p.is_file()]
    assert len(written) > 5
    for path in written:
        assert SECRET not in path.read_text(errors="replace"), path
    step_logs = "".join(p.read_text() for p in folder.rglob("*.log"))
    assert f"token {MASK}" in step_logs
    lines = [e.line for e in events if isinstance(e, OutputLine)]
    assert f"calling the API with token {MASK}" in lines
    assert not [line for line in lines if SECRET in line]


def test_session_files_are_readable_by_their_owner_only(
    tmp_path: Path, repo: Path
) -> None:
    plan = _plan(tmp_path, repo, _item("touch", "Touch", 'command: "echo x >> README"'))

    engine, _ = _run(plan)

    assert engine.journal is not None
    folder = engine.journal.folder
    for path in [folder, folder.parent, *folder.rglob("*")]:
        mode = stat.S_IMODE(path.stat().st_mode)
        if path.is_dir() or path.name in ("journal.jsonl", "optui.log"):
            assert mode & 0o077 == 0, f"{path} is {oct(mode)}"
        if path.suffix == ".log":
            assert mode & 0o077 == 0, f"{path} is {oct(mode)}"


def test_which_variables_count_as_secret() -> None:
    env = {
        "GITHUB_TOKEN": "ghp_abcdef",
        "DB_PASSWORD": "hunter22",
        "PGPASSWORD": "hunter23",
        "AWS_SECRET_ACCESS_KEY": "wJalrXUtnFEMI",
        "STRIPE_API_KEY": "sk_live_1234",
        "SSH_KEY": "-----BEGIN",
        "HOME": "/root",
        "PWD": "/srv/payments",
        "OLDPWD": "/srv",
        "KEYBOARD_LAYOUT": "dvorak",
        "MONKEY": "banana",
        "SHORT_TOKEN": "abc",
    }
    assert secret_names(env) == [
        "AWS_SECRET_ACCESS_KEY",
        "DB_PASSWORD",
        "GITHUB_TOKEN",
        "PGPASSWORD",
        "SSH_KEY",
        "STRIPE_API_KEY",
    ]
    mask = Masker.from_environment(env)
    assert mask("login hunter22 then hunter23, in /srv/payments") == (
        "login *** then ***, in /srv/payments"
    )


def test_plan_text_reaches_git_as_arguments_never_a_shell(
    tmp_path: Path, repo: Path
) -> None:
    """A title full of shell syntax becomes a commit message, literally."""
    marker = tmp_path / "pwned"
    title = f"Quote ' and $(touch {marker}) and `touch {marker}`; touch {marker}"
    plan = _plan(tmp_path, repo, _item("touch", title, 'command: "echo x >> README"'))

    engine, _ = _run(plan)

    assert not marker.exists()
    kept = engine.records["touch"].kept_ref
    assert kept is not None
    message = git(repo, "log", "-1", "--format=%B", kept)
    assert title in message
    assert_clean_on_main(repo)


@pytest.mark.parametrize("source", ["--exec=touch pwned", "-n", "main; touch pwned"])
def test_a_cherry_pick_source_that_looks_like_an_option_is_refused(
    tmp_path: Path, repo: Path, source: str
) -> None:
    plan = _plan(tmp_path, repo, _item("pick", "Pick", f"cherry-pick: {source!r}"))
    before = git(repo, "rev-parse", "main")

    engine, _ = _run(plan)

    assert engine.error is not None
    assert f"{source!r}" in str(engine.error) or source in str(engine.error)
    assert not (repo / "pwned").exists()
    assert git(repo, "rev-parse", "main") == before
    assert_clean_on_main(repo)


def test_a_patch_cannot_be_read_from_outside_the_plans_folder(
    tmp_path: Path, repo: Path
) -> None:
    plans = tmp_path / "plans"
    plans.mkdir()
    outside = tmp_path / "elsewhere.patch"
    outside.write_text("")
    os.symlink(outside, plans / "inside.patch")
    for source in ("../elsewhere.patch", "inside.patch", str(outside)):
        plan = _plan(plans, repo, _item("p", "Patch", f"patch: {source}"))
        with pytest.raises(PlanError) as raised:
            load_plan(plan)
        assert "lies outside the plan's folder" in str(raised.value), source
