"""optui: re-apply performance optimizations one at a time, each proven first."""

__version__ = "0.1.0"
