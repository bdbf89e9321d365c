"""Keeping secrets out of everything optui writes: logs, journals and reports.

Commands inherit optui's environment, so a token or password in it can end up
in their output. Every value of an environment variable whose name looks
secret (``GITHUB_TOKEN``, ``DB_PASSWORD``, ``AWS_SECRET_ACCESS_KEY``, ...) is
replaced by ``***`` wherever optui writes text.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Mapping

SECRET_NAME = re.compile(
    r"TOKEN|PASSW(OR)?D|SECRET|CREDENTIAL|PRIVATE|API_?KEY|ACCESS_?KEY"
    r"|(^|_)(KEY|PASS|AUTH|PAT|PWD|DSN)($|_)",
    re.IGNORECASE,
)
"""Names of environment variables whose values are treated as secrets."""

NOT_SECRET = frozenset({"PWD", "OLDPWD"})
"""Names the pattern matches that the shell sets to working directories."""

MIN_LENGTH = 4
"""Shorter values are left alone: masking ``1`` or ``yes`` would garble text."""

MASK = "***"


def secret_names(env: Mapping[str, str]) -> list[str]:
    """The names in env that look like they hold secrets, sorted."""
    return sorted(
        name
        for name, value in env.items()
        if SECRET_NAME.search(name)
        and name not in NOT_SECRET
        and len(value.strip()) >= MIN_LENGTH
    )


class Masker:
    """Replaces known secret values in text."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        # Longest first, so a secret containing another is masked whole.
        values = {s.strip() for s in secrets if len(s.strip()) >= MIN_LENGTH}
        self.secrets = sorted(values, key=len, reverse=True)
        self._pattern = (
            re.compile("|".join(re.escape(s) for s in self.secrets))
            if self.secrets
            else None
        )

    @classmethod
    def from_environment(cls, env: Mapping[str, str]) -> Masker:
        return cls(env[name] for name in secret_names(env))

    def __call__(self, text: str) -> str:
        if self._pattern is None or not text:
            return text
        return self._pattern.sub(MASK, text)

    def data(self, value: object) -> object:
        """value with every string in it masked, through dicts, lists and tuples."""
        if self._pattern is None:
            return value
        if isinstance(value, str):
            return self(value)
        if isinstance(value, dict):
            return {self.data(k): self.data(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self.data(v) for v in value]
        return value

    def formatter(self, fmt: str) -> logging.Formatter:
        """A log formatter whose every line, tracebacks included, is masked."""
        return _MaskingFormatter(fmt, self)


class _MaskingFormatter(logging.Formatter):
    def __init__(self, fmt: str, masker: Masker) -> None:
        super().__init__(fmt)
        self.masker = masker

    def format(self, record: logging.LogRecord) -> str:
        return self.masker(super().format(record))
