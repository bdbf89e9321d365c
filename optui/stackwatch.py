"""Watching a plan's containers through a session: readiness, resources, faults."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import docker

from optui import containers
from optui.containers import ContainerSample, ContainerState, Selector
from optui.plan import DockerStack

log = logging.getLogger(__name__)

FAULT_GATE = "containers: no exit, restart or kill for memory"
"""How a container fault shows among a run's gate results."""


@dataclass
class RunWatch:
    """What the stack did during one load test run."""

    metrics: dict[str, dict[str, float]] = field(default_factory=dict)
    """Peak figures as k6-summary metrics, for gates: ``container_memory_peak``..."""
    faults: list[str] = field(default_factory=list)
    memory_mb: dict[str, float] = field(default_factory=dict)
    """Each container's peak memory."""


class StackWatch:
    """The Docker side of a session, for a plan with a ``docker`` section."""

    def __init__(self, stack: DockerStack, client: docker.DockerClient) -> None:
        self.stack = stack
        self.client = client
        self.selector = Selector(stack.project, stack.names)
        self._sampler: containers.ResourceSampler | None = None
        self._before: dict[str, ContainerState] = {}

    @classmethod
    def connect(cls, stack: DockerStack) -> StackWatch:
        """Reach the engine (DOCKER_HOST is honoured); PreflightError if it can't."""
        return cls(stack, containers.connect())

    def wait_ready(
        self,
        *,
        timeout: float,
        interval: float,
        cancel: threading.Event,
        on_line: Callable[[str], None],
    ) -> float:
        return containers.wait_ready(
            self.client,
            self.selector,
            timeout=timeout,
            interval=interval,
            cancel=cancel,
            on_line=on_line,
        )

    def begin_run(self, on_sample: Callable[[list[ContainerSample]], None]) -> None:
        self._before = containers.states(self.client, self.selector)
        self._sampler = containers.ResourceSampler(
            self.client, self.selector, on_sample
        )
        self._sampler.start()

    def end_run(self) -> RunWatch:
        watch = RunWatch()
        if self._sampler is not None:
            peaks = self._sampler.stop()
            self._sampler = None
            watch.metrics = peaks.as_metrics()
            watch.memory_mb = {
                name: round(value / 1e6, 1)
                for name, value in peaks.memory_bytes.items()
            }
        after = containers.states(self.client, self.selector)
        watch.faults = containers.faults(self._before, after)
        return watch

    def capture_logs(
        self, folder: Path, mask: Callable[[str], str] = str, lines: int = 200
    ) -> dict[str, str]:
        """Save each container's recent output, masked, in folder; paths by name."""
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        saved: dict[str, str] = {}
        for name, text in containers.recent_logs(
            self.client, self.selector, lines
        ).items():
            path = folder / f"{name}.log"
            path.write_text(mask(text), encoding="utf-8")
            path.chmod(0o600)
            saved[name] = str(path)
        return saved
