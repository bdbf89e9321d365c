"""A demo target: a small payments service and a plan of changes to try on it."""

from optui.demo.builder import DemoTarget, create_demo_repo, demo_plan_path

__all__ = ["DemoTarget", "create_demo_repo", "demo_plan_path"]
