"""Start the payments service: ``python3 -m service --port 18080``."""

import argparse
import logging
import signal
import sys
from types import FrameType

from . import settings
from .app import serve


def _stop(signum: int, frame: FrameType | None) -> None:
    sys.exit(0)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="service", description=__doc__)
    parser.add_argument("--host", default=settings.HOST)
    parser.add_argument("--port", type=int, default=settings.DEFAULT_PORT)
    args = parser.parse_args(argv)

    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    signal.signal(signal.SIGTERM, _stop)
    serve(args.host, args.port)
    return 0


if __name__ == "__main__":
    sys.exit(main())
