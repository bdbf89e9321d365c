"""The stack's containers, watched through a real Docker Engine."""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import docker
import pytest
from docker.models.containers import Container
from docker_images import BUSYBOX, build_busybox_image

from optui.containers import (
    PROJECT_LABEL,
    ContainerSample,
    ResourceSampler,
    Selector,
    connect,
    faults,
    find_containers,
    recent_logs,
    states,
    wait_ready,
)
from optui.errors import Cancelled, PreflightError, StepError

try:
    connect(timeout=5.0).close()
except PreflightError:
    pytest.skip(
        "no Docker Engine: start one with `dockerd` (as .ci/run does) "
        "or set DOCKER_HOST",
        allow_module_level=True,
    )

SECOND = 1_000_000_000
"""Health check durations are given to the engine in nanoseconds."""
MB = 1_000_000


class Stack:
    """The containers of one test, under a compose project label of their own."""

    def __init__(self, client: docker.DockerClient, image: str) -> None:
        self.client = client
        self.image = image
        self.project = f"optui-test-{secrets.token_hex(4)}"
        self.selector = Selector(project=self.project)
        self.created: list[str] = []

    def name(self, service: str) -> str:
        return f"{self.project}-{service}"

    def run(
        self, service: str, script: str, *, labelled: bool = True, **options: Any
    ) -> Container:
        """Start a container of the test image running a shell script."""
        labels = {PROJECT_LABEL: self.project} if labelled else {}
        container = self.client.containers.run(
            self.image,
            ["sh", "-c", script],
            name=self.name(service),
            labels=labels,
            detach=True,
            network_mode="host",
            **options,
        )
        self.created.append(container.id)
        return container

    def remove_all(self) -> None:
        labelled = self.client.containers.list(
            all=True, filters={"label": f"{PROJECT_LABEL}={self.project}"}
        )
        ids = set(self.created) | {container.id for container in labelled}
        for container_id in ids:
            try:
                self.client.api.remove_container(container_id, force=True)
            except docker.errors.NotFound:
                continue


def until(condition: Callable[[], bool], what: str, timeout: float = 20.0) -> None:
    """Poll condition until it holds; fail the test naming what never happened."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"{what} did not happen within {timeout:g} s")
        time.sleep(0.05)


def logged(container: Container, text: str) -> Callable[[], bool]:
    return lambda: text in container.logs().decode()


@pytest.fixture(scope="session")
def client() -> Iterator[docker.DockerClient]:
    client = connect()
    yield client
    client.close()


@pytest.fixture(scope="session")
def image(client: docker.DockerClient, tmp_path_factory: pytest.TempPathFactory) -> str:
    if not BUSYBOX.exists():
        pytest.skip(f"{BUSYBOX} is missing: install busybox-static")
    return build_busybox_image(client, tmp_path_factory.mktemp("busybox-image"))


@pytest.fixture
def stack(client: docker.DockerClient, image: str) -> Iterator[Stack]:
    stack = Stack(client, image)
    try:
        yield stack
    finally:
        stack.remove_all()


def test_ready_only_once_a_slow_health_check_passes(
    client: docker.DockerClient, stack: Stack
) -> None:
    web = stack.run(
        "web",
        "sleep 3; touch /tmp/ready; sleep 60",
        healthcheck={
            "test": ["CMD", "/bin/busybox", "test", "-f", "/tmp/ready"],
            "interval": SECOND // 5,
            "timeout": SECOND,
            "retries": 100,
        },
    )
    lines: list[str] = []
    seconds = wait_ready(
        client,
        stack.selector,
        timeout=20,
        interval=0.1,
        cancel=threading.Event(),
        on_line=lines.append,
    )

    assert 2.5 <= seconds < 15
    web.reload()
    assert web.attrs["State"]["Health"]["Status"] == "healthy"
    name = stack.name("web")
    assert f"{name}: running (health: starting)" in lines
    assert f"{name}: running (health: healthy)" in lines
    # A line only when the state changes, not one for every poll.
    assert len(lines) == len(set(lines)) <= 5


def test_timeout_names_the_unhealthy_container_with_its_log(
    client: docker.DockerClient, stack: Stack
) -> None:
    stack.run("db", "sleep 60")
    stack.run(
        "web",
        "echo booting; echo listening on nothing; sleep 60",
        healthcheck={
            "test": ["CMD", "/bin/busybox", "sh", "-c", "echo not yet; exit 1"],
            "interval": SECOND // 5,
            "retries": 1,
        },
    )
    with pytest.raises(StepError) as caught:
        wait_ready(
            client,
            stack.selector,
            timeout=2,
            interval=0.2,
            cancel=threading.Event(),
            on_line=lambda line: None,
        )

    message = str(caught.value)
    assert f"{stack.name('web')} is running (health: " in message
    assert "unhealthy" in message or "starting" in message
    assert "listening on nothing" in message
    assert "last health check: exit status 1: not yet" in message
    assert stack.name("db") not in message


def test_a_container_that_exits_fails_the_wait_at_once(
    client: docker.DockerClient, stack: Stack
) -> None:
    stack.run(
        "migrate",
        "sleep 0.5; echo giving up; exit 3",
        healthcheck={"test": ["CMD", "/bin/busybox", "false"], "interval": SECOND},
    )
    started = time.monotonic()
    with pytest.raises(StepError) as caught:
        wait_ready(
            client,
            stack.selector,
            timeout=30,
            interval=0.1,
            cancel=threading.Event(),
            on_line=lambda line: None,
        )

    assert time.monotonic() - started < 10
    message = str(caught.value)
    assert f"{stack.name('migrate')} exited with status 3" in message
    assert "giving up" in message


def test_waiting_stops_on_cancel_and_with_no_containers(
    client: docker.DockerClient, stack: Stack
) -> None:
    with pytest.raises(StepError, match="no containers of compose project"):
        wait_ready(
            client,
            stack.selector,
            timeout=0.5,
            interval=0.1,
            cancel=threading.Event(),
            on_line=lambda line: None,
        )

    cancel = threading.Event()
    threading.Timer(0.3, cancel.set).start()
    started = time.monotonic()
    with pytest.raises(Cancelled):
        wait_ready(
            client,
            stack.selector,
            timeout=30,
            interval=0.1,
            cancel=cancel,
            on_line=lambda line: None,
        )
    assert time.monotonic() - started < 5


def test_containers_are_found_by_project_and_by_exact_name(
    client: docker.DockerClient, stack: Stack
) -> None:
    api = stack.run("api", "sleep 60")
    stack.run("api-worker", "sleep 60")
    loose = stack.run("loose", "sleep 60", labelled=False)

    by_project = find_containers(client, stack.selector)
    assert [c.name for c in by_project] == [stack.name("api"), stack.name("api-worker")]
    by_name = find_containers(client, Selector(names=(stack.name("api"),)))
    assert [c.id for c in by_name] == [api.id]
    both = Selector(stack.project, (stack.name("loose"), stack.name("api")))
    assert [c.name for c in find_containers(client, both)] == [
        stack.name("api"),
        stack.name("api-worker"),
        stack.name("loose"),
    ]
    assert loose.id in {c.id for c in find_containers(client, both)}
    assert both.describe() == (
        f"compose project {stack.project!r} and containers "
        f"{stack.name('loose')}, {stack.name('api')}"
    )


def test_kills_for_memory_exits_and_restarts_are_faults(
    client: docker.DockerClient, stack: Stack, tmp_path: Path
) -> None:
    # The containers fail only once the first snapshot is taken: on a signal file.
    signal = {str(tmp_path): {"bind": "/signal", "mode": "ro"}}
    on_signal = "until test -f /signal/go; do sleep 0.1; done; "
    # tail keeps the last line whole, and /dev/zero never ends one.
    stack.run(
        "oom",
        on_signal + "tail /dev/zero",
        mem_limit="32m",
        memswap_limit="32m",
        volumes=signal,
    )
    stack.run("quitter", on_signal + "exit 3", volumes=signal)
    stack.run(
        "flaky",
        on_signal + "echo failing; exit 1",
        restart_policy={"Name": "on-failure", "MaximumRetryCount": 2},
        volumes=signal,
    )
    steady = stack.run("steady", "sleep 60")
    before = states(client, stack.selector)
    assert all(state.running for state in before.values()), before
    assert faults(before, before) == []
    (tmp_path / "go").touch()

    def settled() -> bool:
        now = states(client, stack.selector)
        flaky = now[stack.name("flaky")]
        return (
            not now[stack.name("oom")].running
            and not now[stack.name("quitter")].running
            and flaky.status == "exited"
            and flaky.restart_count == 2
        )

    until(settled, "the failing containers' last exits")
    after = states(client, stack.selector)
    assert faults(before, after) == [
        f"{stack.name('flaky')} exited with status 1",
        f"{stack.name('flaky')} restarted 2 times",
        f"{stack.name('oom')} was killed for memory (OOM) (exit status 137)",
        f"{stack.name('quitter')} exited with status 3",
    ]

    steady.restart(timeout=0)
    restarted = states(client, stack.selector)
    name = stack.name("steady")
    was, now = after[name].started_at, restarted[name].started_at
    assert faults(after, restarted) == [
        f"{name} was replaced or restarted (started at {now}, was {was})"
    ]
    steady.remove(force=True)
    assert faults(restarted, states(client, stack.selector)) == [f"{name} disappeared"]


def test_sampler_records_peak_memory_and_cpu(
    client: docker.DockerClient, stack: Stack
) -> None:
    # The last command is not the shell's last, or ash would exec it and drop x.
    hog = stack.run(
        "hog",
        'x=$(head -c 40000000 /dev/zero | tr "\\0" a); echo held; sleep 30; echo ${#x}',
        mem_limit="128m",
    )
    stack.run("spinner", "while :; do :; done")
    stack.run("idle", "sleep 30")
    vanishing = stack.run("vanishing", "sleep 30")
    until(logged(hog, "held"), "the hog's allocation")

    rounds: list[list[ContainerSample]] = []
    sampler = ResourceSampler(client, stack.selector, rounds.append, interval=0.5)
    sampler.start()
    until(lambda: len(rounds) >= 2, "two rounds of samples")
    vanishing.remove(force=True)
    seen = len(rounds)
    until(lambda: len(rounds) >= seen + 2, "two rounds after a container vanished")
    peaks = sampler.stop()

    hog_name, spinner, idle = (stack.name(s) for s in ("hog", "spinner", "idle"))
    assert peaks.samples >= 4
    assert peaks.memory_bytes[hog_name] >= 35 * MB
    assert peaks.cpu_percent[spinner] > 50
    assert peaks.cpu_percent[idle] < 10
    assert peaks.memory_bytes[hog_name] <= peaks.total_memory_bytes
    assert peaks.total_memory_bytes <= sum(peaks.memory_bytes.values())
    latest = {sample.name: sample for sample in rounds[-1]}
    assert stack.name("vanishing") not in latest
    assert latest[hog_name].memory_limit_bytes == 128 * 1024 * 1024
    assert latest[idle].memory_limit_bytes is None

    metrics = peaks.as_metrics()
    assert metrics["container_memory_peak"]["value"] == peaks.total_memory_bytes / MB
    assert metrics[f"container_memory_peak{{container:{hog_name}}}"]["value"] >= 35
    assert metrics["container_cpu_peak"]["value"] == peaks.cpu_percent[spinner]
    assert metrics[f"container_cpu_peak{{container:{idle}}}"]["value"] < 10


def test_recent_logs_give_each_containers_last_lines(
    client: docker.DockerClient, stack: Stack
) -> None:
    talker = stack.run(
        "talker", "echo one; echo two >&2; sleep 0.2; echo three; sleep 60"
    )
    stack.run("mute", "echo unseen; sleep 60", log_config={"type": "none"})
    until(logged(talker, "three"), "the talker's last line")

    logs = recent_logs(client, stack.selector)
    assert sorted(logs[stack.name("talker")].splitlines()) == ["one", "three", "two"]
    assert recent_logs(client, stack.selector, lines=1)[stack.name("talker")] == (
        "three\n"
    )
    mute = logs[stack.name("mute")]
    assert mute.count("\n") == 1
    assert "could not be read" in mute and "does not support reading" in mute


def test_connect_names_the_host_it_could_not_reach(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("DOCKER_HOST", "tcp://127.0.0.1:1")
    with pytest.raises(PreflightError) as caught:
        connect(timeout=2.0)

    message = str(caught.value)
    assert "tcp://127.0.0.1:1" in message
    assert "start the Docker Engine (dockerd) or set DOCKER_HOST" in message
