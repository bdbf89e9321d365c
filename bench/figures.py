"""The figures a benchmark prints: labelled values under section titles."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Figures:
    rows: list[tuple[str, str]] = field(default_factory=list)

    def add(self, label: str, value: str) -> None:
        self.rows.append((label, value))

    def section(self, title: str) -> None:
        self.rows.append((title, ""))

    def print(self) -> None:
        width = max(len(label) for label, value in self.rows if value) + 2
        for label, value in self.rows:
            if value:
                print(f"  {label:<{width}}{value}")
            else:
                print(f"\n{label}")
