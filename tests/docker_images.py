"""A tiny image built on this machine, for tests that run real containers.

No registry is reachable, so the image is made ``FROM scratch`` out of the
machine's static busybox.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import docker

IMAGE = "optui-test-busybox:latest"
BUSYBOX = Path("/bin/busybox")
DOCKERFILE = """\
FROM scratch
COPY busybox /bin/busybox
RUN ["/bin/busybox", "--install", "-s", "/bin"]
RUN ["/bin/busybox", "mkdir", "-m", "1777", "/tmp"]
CMD ["/bin/sh"]
"""


def build_busybox_image(client: docker.DockerClient, context: Path) -> str:
    """Build the image from a fresh build context in context; return its tag."""
    context.mkdir(parents=True, exist_ok=True)
    shutil.copy2(BUSYBOX, context / "busybox")
    (context / "Dockerfile").write_text(DOCKERFILE)
    client.images.build(
        path=str(context), tag=IMAGE, rm=True, forcerm=True, network_mode="host"
    )
    return IMAGE
