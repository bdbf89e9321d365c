"""The Containers pane: each container's figures and the stack against its budget.

Fed recorded engine events through the app's own listener (``app.bridge``), the
input boundary of the app; the engine and Docker side is tested for real in
test_engine_docker.py.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from engine_helpers import item, write_plan
from textual.widgets import Sparkline, Static, TabbedContent

from optui.containers import ContainerSample
from optui.events import ContainerFigures
from optui.tui.app import OptuiApp

MB = 1_000_000


async def test_the_pane_shows_each_container_and_the_stack_total(
    make_repo: Callable[[str], Path], tmp_path: Path
) -> None:
    plan = write_plan(
        tmp_path,
        make_repo("payments"),
        item("precompute-fees", "cherry-pick: HEAD"),
        ready="docker: true",
        extra="docker:\n  project: payments\n  memory_budget_mb: 350\n",
    )
    app = OptuiApp(plan, start=False, clock=lambda: 0.0)
    async with app.run_test(size=(150, 45)) as pilot:
        for memory in (40, 60, 80):
            app.bridge(
                ContainerFigures(
                    "precompute-fees",
                    1,
                    (
                        ContainerSample("api", 35.0, memory * MB, 96 * MB),
                        ContainerSample("redis", 5.0, 20 * MB, None),
                    ),
                )
            )
        await pilot.press("5")
        await pilot.pause()
        assert app.query_one(TabbedContent).active == "containers-tab"
        total = str(app.query_one("#stack-total", Static).render())
        assert total == "stack: 100 MB of a 350 MB budget (29%)"
        api = str(app.query_one("#label-api", Static).render())
        assert api == "api: cpu 35% · memory 80 MB of 96 MB"
        redis = str(app.query_one("#label-redis", Static).render())
        assert redis == "redis: cpu 5% · memory 20 MB"
        assert list(app.query_one("#spark-api", Sparkline).data or []) == [40, 60, 80]


async def test_without_a_docker_section_there_is_no_pane(
    make_repo: Callable[[str], Path], tmp_path: Path
) -> None:
    plan = write_plan(
        tmp_path, make_repo("payments"), item("precompute-fees", "cherry-pick: HEAD")
    )
    app = OptuiApp(plan, start=False)
    async with app.run_test(size=(150, 45)) as pilot:
        await pilot.press("5")
        assert app.query_one(TabbedContent).active != "containers-tab"
        assert not app.query("#stack-total")
