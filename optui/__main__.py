"""``python -m optui``."""

from optui.cli import main

raise SystemExit(main())
