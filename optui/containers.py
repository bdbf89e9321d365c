"""The service's containers through the Docker Engine: readiness, faults, resources.

Everything here blocks and is meant for a worker thread. A stack is picked by a
``Selector`` (a compose project, containers by name, or both) and looked up afresh
on every call, so containers that compose replaces are followed by name.
"""

from __future__ import annotations

import logging
import os
import re
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import docker
import requests
from docker.errors import APIError, DockerException, InvalidVersion
from docker.models.containers import Container

from optui.errors import Cancelled, PreflightError, StepError

log = logging.getLogger(__name__)

PROJECT_LABEL = "com.docker.compose.project"
"""The label docker compose puts on every container of a project."""
DEFAULT_SOCKET = "unix:///var/run/docker.sock"
"""Where the Docker SDK looks for the engine when DOCKER_HOST is not set."""
ERROR_LOG_LINES = 10
"""How many of a failing container's last log lines an error message quotes."""
STOP_WAIT_SECONDS = 15.0
"""How long stopping a sampler waits for a stats call in flight."""
PARALLEL_READS = 8
"""Containers a sampler reads at once; below the SDK's connection pool of 10."""

_ENGINE_ERRORS = (DockerException, requests.RequestException)
"""What the Docker SDK raises when the engine refuses or cannot be reached."""
_FINISHED = frozenset({"exited", "dead"})
"""Container statuses from which no start is on its way."""
_AFTER_EXIT = _FINISHED | {"restarting"}
"""Container statuses in which the engine's exit code is that of a run that ended."""


def connect(timeout: float = 10.0) -> docker.DockerClient:
    """A client for the engine DOCKER_HOST names (or the default socket), pinged.

    Raises PreflightError, naming where it looked, when no engine answers.
    """
    host = os.environ.get("DOCKER_HOST", "")
    where = host or f"the default socket {DEFAULT_SOCKET}"
    # Through the system ssh client, which knows the operator's config and agent.
    # The SDK still needs paramiko installed for any ssh:// host.
    ssh = host.startswith("ssh://")
    try:
        # from_env already asks the engine for its API version, so it can fail too.
        client = docker.from_env(timeout=timeout, use_ssh_client=ssh)
    except Exception as exc:
        raise _unreachable(where, exc) from exc
    try:
        client.ping()
    except Exception as exc:
        client.close()
        raise _unreachable(where, exc) from exc
    log.info("Docker Engine at %s answers (API %s)", where, client.api.api_version)
    return client


def _unreachable(where: str, exc: Exception) -> PreflightError:
    return PreflightError(
        f"cannot reach the Docker Engine at {where}: {_reason(exc)}\n"
        "hint: start the Docker Engine (dockerd) or set DOCKER_HOST"
    )


def _reason(exc: BaseException) -> str:
    """The useful part of an SDK error, on one line."""
    if isinstance(exc, APIError) and exc.explanation:
        text = str(exc.explanation)
    else:
        text = str(exc) or type(exc).__name__
    return " ".join(text.split())


@dataclass(frozen=True)
class Selector:
    """Which containers make up the stack."""

    project: str | None = None
    """A compose project: every container labelled with it, stopped ones too."""
    names: tuple[str, ...] = ()
    """Containers named exactly, with or without a project."""

    def describe(self) -> str:
        parts = []
        if self.project:
            parts.append(f"compose project {self.project!r}")
        if self.names:
            noun = "container" if len(self.names) == 1 else "containers"
            parts.append(f"{noun} {', '.join(self.names)}")
        return " and ".join(parts) or "no containers"


def find_containers(client: docker.DockerClient, selector: Selector) -> list[Container]:
    """The selected containers, running or not, freshly inspected, sorted by name.

    Raises StepError when the engine cannot list them.
    """
    found: dict[str, Container] = {}
    try:
        if selector.project:
            label = f"{PROJECT_LABEL}={selector.project}"
            for container in _listed(client, {"label": label}):
                found[container.id] = container
        for name in selector.names:
            # The engine matches names as a regular expression, so anchor it.
            pattern = f"^/?{re.escape(name)}$"
            for container in _listed(client, {"name": pattern}):
                if container.name == name:
                    found[container.id] = container
    except _ENGINE_ERRORS as exc:
        raise StepError(
            f"could not list the containers of {selector.describe()}: {_reason(exc)}"
        ) from exc
    return sorted(found.values(), key=lambda container: str(container.name))


def _listed(client: docker.DockerClient, filters: dict[str, str]) -> list[Container]:
    return list(client.containers.list(all=True, filters=filters, ignore_removed=True))


def wait_ready(
    client: docker.DockerClient,
    selector: Selector,
    *,
    timeout: float,
    interval: float,
    cancel: threading.Event,
    on_line: Callable[[str], None],
) -> float:
    """Block until every selected container runs and passes its health check.

    There must be at least one container. A line goes to on_line whenever a
    container's state changes. Returns the seconds it took. Raises StepError
    when a container exits or the timeout passes first, Cancelled on request.
    """
    started = time.monotonic()
    last: dict[str, str] = {}
    told_none = False
    on_line(f"waiting for {selector.describe()}")
    while True:
        if cancel.is_set():
            raise Cancelled("stopped while waiting for the containers")
        found = find_containers(client, selector)
        pending = []
        for container in found:
            _report_change(container, last, on_line)
            state = _state(container)
            if state.get("Status") in _FINISHED:
                raise StepError(_exited_message(container))
            if not _is_ready(state):
                pending.append(container)

        seconds = time.monotonic() - started
        if found and not pending:
            on_line(f"ready after {seconds:.1f} s: {len(found)} container(s) up")
            return seconds
        if not found and not told_none:
            told_none = True
            on_line(f"no containers of {selector.describe()} yet")
        remaining = timeout - seconds
        if remaining <= 0:
            raise StepError(_not_ready_message(selector, pending, timeout))
        if cancel.wait(min(interval, remaining)):
            raise Cancelled("stopped while waiting for the containers")


def _state(container: Container) -> dict[str, Any]:
    state = container.attrs.get("State")
    return state if isinstance(state, dict) else {}


def _health(state: Mapping[str, Any]) -> str | None:
    """The health check's verdict; None for a container without one."""
    health = state.get("Health")
    if not isinstance(health, dict):
        return None
    status = health.get("Status")
    return None if status in (None, "none") else str(status)


def _is_ready(state: Mapping[str, Any]) -> bool:
    if state.get("Status") != "running":
        return False
    return _health(state) in (None, "healthy")


def _describe(container: Container) -> str:
    """A container's state in a few words: "running (health: starting)"."""
    state = _state(container)
    text = str(state.get("Status", "unknown"))
    health = _health(state)
    if health is not None:
        text += f" (health: {health})"
    restarts = container.attrs.get("RestartCount") or 0
    if restarts:
        text += f", restarted {restarts} time{'' if restarts == 1 else 's'}"
    return text


def _report_change(
    container: Container, last: dict[str, str], on_line: Callable[[str], None]
) -> None:
    text = _describe(container)
    if last.get(container.id) != text:
        last[container.id] = text
        on_line(f"{container.name}: {text}")


def _exited_message(container: Container) -> str:
    state = _state(container)
    text = f"{container.name} exited with status {state.get('ExitCode')}"
    if state.get("OOMKilled"):
        text += ", killed for memory (OOM)"
    text += " while waiting for it to become ready"
    return text + _log_tail(container)


def _not_ready_message(
    selector: Selector, pending: list[Container], timeout: float
) -> str:
    if not pending:
        return (
            f"not ready after {timeout:g} s: no containers of "
            f"{selector.describe()} were found"
        )
    blocks = []
    for container in pending:
        block = f"{container.name} is {_describe(container)}"
        check = _last_health_check(_state(container))
        if check:
            block += f"\n  last health check: {check}"
        blocks.append(block + _log_tail(container))
    return f"not ready after {timeout:g} s:\n" + "\n".join(blocks)


def _last_health_check(state: Mapping[str, Any]) -> str:
    health = state.get("Health")
    entries = health.get("Log") if isinstance(health, dict) else None
    if not entries:
        return ""
    entry = entries[-1]
    output = " ".join(str(entry.get("Output", "")).split())
    return f"exit status {entry.get('ExitCode')}" + (f": {output}" if output else "")


def _log_tail(container: Container) -> str:
    """The container's last log lines, indented under a heading, for an error."""
    lines = _read_logs(container, ERROR_LOG_LINES).splitlines()
    if not lines:
        return "\n  (its log is empty)"
    quoted = "".join(f"\n    {line}" for line in lines)
    return f"\n  last {len(lines)} line(s) of its log:{quoted}"


@dataclass(frozen=True)
class ContainerState:
    """What the engine said about one container at one moment."""

    name: str
    id: str
    status: str
    """The engine's word: created, running, restarting, exited, dead..."""
    running: bool
    """Up, and not between an exit and its restart."""
    restart_count: int
    """Restarts the engine's restart policy made since the container was created."""
    started_at: str
    """When its current (or last) run began, as the engine writes it."""
    oom_killed: bool
    """Its last exit was the kernel killing it for memory; kept across restarts."""
    exit_code: int | None
    """The status its last run exited with, once stopped or between restarts;
    None while it runs, is paused or never ran."""


def states(
    client: docker.DockerClient, selector: Selector
) -> dict[str, ContainerState]:
    """A snapshot of every selected container's state, by name."""
    snapshot: dict[str, ContainerState] = {}
    for container in find_containers(client, selector):
        try:
            container.reload()
        except docker.errors.NotFound:
            continue
        except _ENGINE_ERRORS as exc:
            raise StepError(
                f"could not inspect container {container.name}: {_reason(exc)}"
            ) from exc
        snapshot[container.name] = _container_state(container)
    return snapshot


def _container_state(container: Container) -> ContainerState:
    state = _state(container)
    status = str(state.get("Status", "unknown"))
    exit_code = state.get("ExitCode")
    return ContainerState(
        name=str(container.name),
        id=str(container.id),
        status=status,
        running=status == "running",
        restart_count=int(container.attrs.get("RestartCount") or 0),
        started_at=str(state.get("StartedAt", "")),
        oom_killed=bool(state.get("OOMKilled")),
        exit_code=(
            int(exit_code) if status in _AFTER_EXIT and exit_code is not None else None
        ),
    )


def faults(
    before: Mapping[str, ContainerState], after: Mapping[str, ContainerState]
) -> list[str]:
    """One sentence for each thing that went wrong between two snapshots."""
    problems: list[str] = []
    for name in sorted(set(before) | set(after)):
        old, new = before.get(name), after.get(name)
        if new is None:
            problems.append(f"{name} disappeared")
        else:
            problems.extend(_faults_of(old, new))
    return problems


def _faults_of(old: ContainerState | None, new: ContainerState) -> list[str]:
    name = new.name
    replaced = old is not None and new.id != old.id
    if old is None or replaced:
        restarts = new.restart_count
    else:
        restarts = new.restart_count - old.restart_count
    started_again = old is not None and new.started_at != old.started_at
    stopped = new.exit_code is not None and (old is None or old.running)
    if old is not None and not (replaced or restarts or started_again or stopped):
        return []

    problems = []
    code = "" if new.exit_code is None else f" (exit status {new.exit_code})"
    # The engine sets the flag at each exit, so after a change it is this run's.
    if new.oom_killed:
        problems.append(f"{name} was killed for memory (OOM){code}")
    elif new.exit_code is not None:
        problems.append(f"{name} exited with status {new.exit_code}")
    if restarts > 0:
        problems.append(
            f"{name} restarted {restarts} time{'' if restarts == 1 else 's'}"
        )
    if old is not None and (replaced or (started_again and restarts <= 0)):
        problems.append(
            f"{name} was replaced or restarted "
            f"(started at {new.started_at}, was {old.started_at})"
        )
    return problems


@dataclass(frozen=True)
class ContainerSample:
    """One container's use of the machine at one moment."""

    name: str
    cpu_percent: float
    """Percent of one core, as ``docker stats`` shows it (200 is two full cores);
    0.0 at a container's first reading, which has nothing to compare with."""
    memory_bytes: int
    """Memory in use, without the page cache the kernel can take back."""
    memory_limit_bytes: int | None
    """The container's memory limit; None when it has none."""


@dataclass(frozen=True)
class RunPeaks:
    """The highest figures the containers reached while a sampler ran."""

    memory_bytes: dict[str, int] = field(default_factory=dict)
    """Each container's peak memory, by name."""
    cpu_percent: dict[str, float] = field(default_factory=dict)
    """Each container's peak CPU, by name."""
    samples: int = 0
    """Rounds in which at least one container was read."""
    round_memory_bytes: tuple[int, ...] = ()
    """The memory of all containers together, one figure a round."""

    @property
    def total_memory_bytes(self) -> int:
        """The most the stack used at once (not the sum of each one's peak)."""
        return max(self.round_memory_bytes, default=0)

    def as_metrics(self) -> dict[str, dict[str, float]]:
        """The peaks as k6 summary metrics, so gates can read them: memory in MB."""
        metrics = {
            "container_memory_peak": {"value": self.total_memory_bytes / 1e6},
            "container_cpu_peak": {
                "value": max(self.cpu_percent.values(), default=0.0)
            },
        }
        for name, value in sorted(self.memory_bytes.items()):
            metrics[f"container_memory_peak{{container:{name}}}"] = {
                "value": value / 1e6
            }
        for name, percent in sorted(self.cpu_percent.items()):
            metrics[f"container_cpu_peak{{container:{name}}}"] = {"value": percent}
        return metrics


@dataclass(frozen=True)
class _CpuReading:
    container_total: int
    system_total: int


class ResourceSampler:
    """Reads the selected containers' CPU and memory in a thread, keeping peaks.

    Each round goes to on_sample, from the sampler's thread. Containers that
    appear, stop or vanish between rounds are simply read or not.

    The engine refreshes a container's figures once a second and a one-shot
    reading waits for the next refresh, so the containers are read in parallel
    and a round takes up to a second, however short the interval.
    """

    def __init__(
        self,
        client: docker.DockerClient,
        selector: Selector,
        on_sample: Callable[[list[ContainerSample]], None],
        interval: float = 0.5,
    ) -> None:
        self.client = client
        self.selector = selector
        self.on_sample = on_sample
        self.interval = interval
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._memory: dict[str, int] = {}
        self._cpu: dict[str, float] = {}
        self._round_totals: list[int] = []
        self._previous: dict[str, _CpuReading] = {}
        self._host_memory: int | None = None
        self._one_shot = True

    def start(self) -> None:
        if self._thread is not None:
            raise RuntimeError("this sampler has already been started")
        self._host_memory = _host_memory(self.client)
        self._thread = threading.Thread(
            target=self._run, name="optui-resources", daemon=True
        )
        self._thread.start()

    def stop(self) -> RunPeaks:
        """End the sampling and return the peaks it saw."""
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(STOP_WAIT_SECONDS)
            if self._thread.is_alive():
                log.warning("the resource sampler is still waiting for the engine")
        return self.peaks()

    def peaks(self) -> RunPeaks:
        """The peaks so far."""
        with self._lock:
            return RunPeaks(
                dict(self._memory),
                dict(self._cpu),
                len(self._round_totals),
                tuple(self._round_totals),
            )

    def _run(self) -> None:
        with ThreadPoolExecutor(PARALLEL_READS, "optui-stats") as pool:
            while not self._stopping.is_set():
                began = time.monotonic()
                self._round(pool)
                spent = time.monotonic() - began
                self._stopping.wait(max(0.0, self.interval - spent))

    def _round(self, pool: ThreadPoolExecutor) -> None:
        try:
            found = find_containers(self.client, self.selector)
        except StepError as exc:
            log.warning("no resource sample this round: %s", exc)
            return
        running = [c for c in found if c.status == "running"]
        samples = []
        for container, stats in zip(
            running, pool.map(self._stats, running), strict=True
        ):
            sample = None if stats is None else self._sample(container, stats)
            if sample is not None:
                samples.append(sample)
        if samples:
            self._record(samples)
        try:
            self.on_sample(samples)
        except Exception:
            # The listener's failure must not end the sampling of a whole run.
            log.exception("the resource sample listener failed")

    def _record(self, samples: list[ContainerSample]) -> None:
        with self._lock:
            for sample in samples:
                name = sample.name
                self._memory[name] = max(self._memory.get(name, 0), sample.memory_bytes)
                self._cpu[name] = max(self._cpu.get(name, 0.0), sample.cpu_percent)
            self._round_totals.append(sum(s.memory_bytes for s in samples))

    def _sample(
        self, container: Container, stats: Mapping[str, Any]
    ) -> ContainerSample | None:
        memory_stats = stats.get("memory_stats") or {}
        memory = _memory_in_use(memory_stats)
        if memory is None:
            # A container stopping between the listing and the reading has none.
            return None
        limit = memory_stats.get("limit")
        if not limit or (self._host_memory and limit >= self._host_memory):
            limit = None
        return ContainerSample(
            name=str(container.name),
            cpu_percent=self._cpu_percent(str(container.id), stats),
            memory_bytes=memory,
            memory_limit_bytes=limit,
        )

    def _stats(self, container: Container) -> dict[str, Any] | None:
        try:
            if self._one_shot:
                try:
                    return dict(container.stats(stream=False, one_shot=True))
                except InvalidVersion:
                    # Engines before API 1.41 take two readings a second apart.
                    log.info("the engine cannot read stats in one shot")
                    self._one_shot = False
            return dict(container.stats(stream=False))
        except _ENGINE_ERRORS as exc:
            log.debug("no stats for %s: %s", container.name, _reason(exc))
            return None

    def _cpu_percent(self, key: str, stats: Mapping[str, Any]) -> float:
        """CPU use since the previous reading, in percent of one core."""
        current = _cpu_reading(stats.get("cpu_stats"))
        if current is None:
            return 0.0
        # A one-shot reading carries no earlier one: compare with our own.
        earlier = _cpu_reading(stats.get("precpu_stats")) or self._previous.get(key)
        self._previous[key] = current
        if earlier is None:
            return 0.0
        used = current.container_total - earlier.container_total
        elapsed = current.system_total - earlier.system_total
        if elapsed <= 0 or used < 0:
            return 0.0
        return used / elapsed * _online_cpus(stats["cpu_stats"]) * 100.0


def _cpu_reading(cpu_stats: Any) -> _CpuReading | None:
    if not isinstance(cpu_stats, dict):
        return None
    total = (cpu_stats.get("cpu_usage") or {}).get("total_usage")
    system = cpu_stats.get("system_cpu_usage")
    if not system or total is None:
        return None
    return _CpuReading(int(total), int(system))


def _online_cpus(cpu_stats: Mapping[str, Any]) -> int:
    online = cpu_stats.get("online_cpus")
    if online:
        return int(online)
    per_cpu = (cpu_stats.get("cpu_usage") or {}).get("percpu_usage") or ()
    return len(per_cpu) or 1


def _memory_in_use(memory_stats: Mapping[str, Any]) -> int | None:
    """Usage less the inactive page cache, as ``docker stats`` counts it."""
    usage = memory_stats.get("usage")
    if usage is None:
        return None
    detail = memory_stats.get("stats") or {}
    # cgroup v1 names the hierarchical figure total_inactive_file; v2 has only
    # inactive_file; very old engines report just the whole cache.
    for key in ("total_inactive_file", "inactive_file", "cache"):
        cache = detail.get(key)
        if cache is not None:
            return int(usage - cache) if cache < usage else int(usage)
    return int(usage)


def _host_memory(client: docker.DockerClient) -> int | None:
    """The engine's machine's memory: a container's limit when it has none."""
    try:
        total = client.info().get("MemTotal")
    except _ENGINE_ERRORS as exc:
        log.warning("could not read the engine's memory size: %s", _reason(exc))
        return None
    return int(total) if total else None


def recent_logs(
    client: docker.DockerClient, selector: Selector, lines: int = 200
) -> dict[str, str]:
    """Each selected container's last lines of output (stdout and stderr), by name.

    A container whose log cannot be read gets a line saying why instead.
    """
    return {
        str(container.name): _read_logs(container, lines)
        for container in find_containers(client, selector)
    }


def _read_logs(container: Container, lines: int) -> str:
    try:
        raw = container.logs(stdout=True, stderr=True, tail=lines, timestamps=False)
    except _ENGINE_ERRORS as exc:
        return f"(the log of {container.name} could not be read: {_reason(exc)})\n"
    return bytes(raw).decode("utf-8", errors="replace")
