"""The server under measurement: a real subprocess, observed from outside (psutil, /proc, GET /metrics)."""

from __future__ import annotations

import contextlib
import os
import re
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parent.parent.parent

MB = 2**20
_GAUGE = re.compile(r"^digits_(connections|sessions|tasks) (\S+)$", re.M)
_BATCH = re.compile(r'^digits_batch_size(?:_bucket\{le="([^"]+)"\}|_(sum))? (\S+)$', re.M)


@dataclass
class BenchServer:
    """A real `python -m server` on 127.0.0.1; its output goes to a file, as a pipe nobody reads would stall it."""

    proc: subprocess.Popen[bytes]
    port: int
    log: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ws"

    def log_tail(self, lines: int = 20) -> str:
        return "".join(self.log.read_text(errors="replace").splitlines(keepends=True)[-lines:])


@contextmanager
def bench_server(log_dir: Path, **settings: object) -> Iterator[BenchServer]:
    """Start the server with `settings` (Config field names), wait until /healthz answers, SIGTERM it at the end."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = dict(os.environ, PYTHONUNBUFFERED="1", **{"DIGITS_" + k.upper(): str(v) for k, v in settings.items()})
    log = log_dir / f"server-{port}.log"
    with log.open("wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "server", "--host", "127.0.0.1", "--port", str(port)],
                                cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    server = BenchServer(proc, port, log)
    try:
        _wait_ready(server)
        yield server
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _wait_ready(server: BenchServer, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.proc.poll() is not None:
            raise RuntimeError("the server exited early:\n" + server.log_tail())
        with contextlib.suppress(OSError):
            with urllib.request.urlopen(server.url + "/healthz", timeout=1) as response:
                if response.status == 200:
                    return
        time.sleep(0.3)
    raise RuntimeError("the server did not become ready:\n" + server.log_tail())


def cpu_seconds(process: psutil.Process) -> float:
    """CPU time used so far by every thread of `process`."""
    times = process.cpu_times()
    return times.user + times.system


class Probe:
    """CPU, memory and descriptors of the server process (all its threads)."""

    def __init__(self, server: BenchServer) -> None:
        self.server = server
        self.process = psutil.Process(server.proc.pid)

    def rss(self) -> int:
        return self.process.memory_info().rss

    def peak_rss(self) -> int:
        """The kernel's high-water mark of the resident set (VmHWM), in bytes."""
        status = Path(f"/proc/{self.process.pid}/status").read_text()
        return int(re.search(r"^VmHWM:\s+(\d+) kB", status, re.M).group(1)) * 1024

    def cpu_seconds(self) -> float:
        return cpu_seconds(self.process)

    def open_files(self) -> int:
        return self.process.num_fds()

    def _metrics(self) -> str:
        with urllib.request.urlopen(self.server.url + "/metrics", timeout=10) as response:
            return response.read().decode()

    def batch_sizes(self) -> dict[str, float]:
        """The batch-size histogram from GET /metrics: cumulative count per upper bound, and "sum" of sizes."""
        return {le or total: float(value) for le, total, value in _BATCH.findall(self._metrics())}

    def gauges(self) -> dict[str, int]:
        """Open connections, kept sessions and live asyncio tasks, from GET /metrics."""
        return {name: int(float(value)) for name, value in _GAUGE.findall(self._metrics())}


def batch_distribution(before: dict[str, float], after: dict[str, float]) -> dict[str, object]:
    """Batches between two /metrics scrapes: how many, their mean size, and how many per size bucket."""
    delta = {key: value - before.get(key, 0.0) for key, value in after.items()}
    sizes: dict[str, int] = {}
    below = 0.0
    for le, cumulative in delta.items():
        if le != "sum" and cumulative > below:
            sizes[f"<={le.removesuffix('.0')}"] = int(cumulative - below)  # "<=4": batches of 3 or 4 images
        below = cumulative if le != "sum" else below
    batches = delta.get("+Inf", 0.0)
    return {"batches": int(batches), "mean": round(delta.get("sum", 0.0) / batches, 2) if batches else None,
            "sizes": sizes}
