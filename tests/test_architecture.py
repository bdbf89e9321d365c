"""The engine stays free of the user interface."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "optui"
UI_PACKAGE = PACKAGE / "tui"


def domain_modules() -> list[str]:
    names = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if path.is_relative_to(UI_PACKAGE) or "target" in path.parts:
            continue
        if "changes" in path.relative_to(PACKAGE).parts:
            continue
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        if parts[-1] in ("__init__", "__main__"):
            parts = parts[:-1]
        names.append(".".join(parts))
    return names


def test_no_domain_module_imports_textual_in_its_source() -> None:
    offenders = []
    for path in PACKAGE.rglob("*.py"):
        if path.is_relative_to(UI_PACKAGE):
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            if any(n == "textual" or n.startswith("textual.") for n in names):
                offenders.append(str(path.relative_to(PACKAGE.parent)))
    assert offenders == []


def test_importing_the_whole_engine_loads_no_textual() -> None:
    modules = domain_modules()
    assert "optui.engine" in modules and "optui.cli" in modules
    code = (
        "import importlib, sys\n"
        f"for name in {modules!r}:\n"
        "    importlib.import_module(name)\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'textual'))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[]"


def test_the_command_line_loads_the_docker_sdk_only_for_plans_that_need_it() -> None:
    # A third of the start-up of every optui command was the Docker SDK.
    code = (
        "import sys\n"
        "import optui.cli, optui.engine, optui.headless, optui.report\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'docker'))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[]"
