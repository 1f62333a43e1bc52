"""`make cluster`: Redis, N workers and HAProxy on this machine, in the foreground, stopped together.

    python -m server.cluster --workers 3 --port 5123    # every setting of `python -m server --help` applies

HAProxy listens on host:port (deploy/haproxy.cfg); worker i (1..N) on 127.0.0.1:port+i, with its sessions in
Redis on 127.0.0.1:port+N+1 (deploy/redis.conf). A worker that dies is started again. Ctrl-C or SIGTERM stops
the workers first (they drain: every frame in flight is answered), then HAProxy, then Redis.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

import redis

from .config import ROOT, Config, load_config

DEPLOY = ROOT / "deploy"
_READY_S = 120.0  # a worker loads the model before it answers /healthz; on a busy 2-core machine that takes a while
_RESTART_S = 1.0

log = logging.getLogger("digits.cluster")


def redis_command(port: int, directory: Path) -> list[str]:
    return ["redis-server", str(DEPLOY / "redis.conf"), "--port", str(port), "--dir", str(directory)]


def haproxy_config(workers: list[tuple[str, int]]) -> str:
    """deploy/haproxy.cfg with one `server` line per (host, port) worker."""
    lines = [f"    server w{i} {host}:{port}\n" for i, (host, port) in enumerate(workers, 1)]
    return (DEPLOY / "haproxy.cfg").read_text() + "".join(lines)


def start_haproxy(config_file: Path, host: str, port: int, **popen: object) -> subprocess.Popen[bytes]:
    env = dict(os.environ, DIGITS_BALANCER=f"{host}:{port}")
    return subprocess.Popen(["haproxy", "-db", "-f", str(config_file)], env=env, **popen)  # -db: foreground


def worker_command(port: int, redis_url: str, settings: tuple[str, ...] | list[str] = ()) -> list[str]:
    """One worker: `settings` (flags of `python -m server`) first, so that its own address and Redis win."""
    return [sys.executable, "-m", "server", *settings, "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
            "--redis-url", redis_url]


def wait_for_redis(port: int, process: subprocess.Popen[bytes], timeout: float = 30.0) -> None:
    client = redis.Redis(port=port, socket_timeout=1)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and process.poll() is None:
        with contextlib.suppress(redis.RedisError):
            if client.ping():
                return
        time.sleep(0.1)
    raise RuntimeError(f"redis-server did not answer on port {port}")


def wait_for_http(url: str, process: subprocess.Popen[bytes], timeout: float = _READY_S) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and process.poll() is None:
        with contextlib.suppress(OSError):
            with urllib.request.urlopen(url + "/healthz", timeout=1) as response:
                if response.status == 200:
                    return
        time.sleep(0.2)
    raise RuntimeError(f"{url} did not become healthy")


def stop(process: subprocess.Popen[bytes], timeout: float) -> None:
    """SIGTERM, then SIGKILL after `timeout`."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


class Cluster:
    """The processes of one `make cluster`, each in its own session, so that a Ctrl-C reaches only this one,
    which stops them in order."""

    def __init__(self, config: Config, directory: Path, settings: list[str]) -> None:
        self.config = config
        self.directory = directory
        self.settings = settings  # the flags this was started with, passed on to every worker
        count = max(1, config.workers)
        self.worker_ports = [config.port + i for i in range(1, count + 1)]
        self.redis_port = config.port + count + 1
        self.redis_url = f"redis://127.0.0.1:{self.redis_port}/0"
        self.redis: subprocess.Popen[bytes] | None = None
        self.workers: dict[int, subprocess.Popen[bytes]] = {}
        self.haproxy: subprocess.Popen[bytes] | None = None

    def _spawn(self, command: list[str], **popen: object) -> subprocess.Popen[bytes]:
        return subprocess.Popen(command, cwd=ROOT, start_new_session=True, **popen)

    def _start_worker(self, port: int) -> subprocess.Popen[bytes]:
        return self._spawn(worker_command(port, self.redis_url, self.settings))

    def start(self) -> None:
        self.redis = self._spawn(redis_command(self.redis_port, self.directory))
        wait_for_redis(self.redis_port, self.redis)
        self.workers = {port: self._start_worker(port) for port in self.worker_ports}
        for port, worker in self.workers.items():
            wait_for_http(f"http://127.0.0.1:{port}", worker)
        config_file = self.directory / "haproxy.cfg"
        config_file.write_text(haproxy_config([("127.0.0.1", port) for port in self.worker_ports]))
        self.haproxy = start_haproxy(config_file, self.config.host, self.config.port, cwd=ROOT,
                                     start_new_session=True)
        wait_for_http(f"http://127.0.0.1:{self.config.port}", self.haproxy, timeout=30)

    def supervise(self, stopping: threading.Event) -> None:
        """Until `stopping` is set or HAProxy exits: start again any worker that died."""
        while not stopping.wait(_RESTART_S):
            if self.haproxy is None or self.haproxy.poll() is not None:
                log.error("haproxy exited: stopping the cluster")
                return
            for port, worker in self.workers.items():
                if worker.poll() is not None:
                    log.warning("worker on port %d exited (%s): starting it again", port, worker.returncode)
                    self.workers[port] = self._start_worker(port)

    def stop(self) -> None:
        """Workers first (they drain and release their sessions into Redis), then the balancer, then Redis."""
        drain = self.config.drain_timeout_s + 15
        for worker in self.workers.values():
            if worker.poll() is None:
                worker.terminate()
        for worker in self.workers.values():
            stop(worker, drain)
        for process in (self.haproxy, self.redis):
            if process is not None:
                stop(process, 10)


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s cluster %(levelname)s %(message)s")
    settings = sys.argv[1:] if argv is None else argv
    config = load_config(settings)
    stopping = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stopping.set())
    with tempfile.TemporaryDirectory(prefix="digits-cluster-") as directory:
        cluster = Cluster(dataclasses.replace(config, workers=max(1, config.workers)), Path(directory), settings)
        try:
            cluster.start()
            workers = ", ".join(f"http://127.0.0.1:{port}" for port in cluster.worker_ports)
            log.info("serving on http://%s:%d (HAProxy); workers %s; Redis %s", config.host, config.port, workers,
                     cluster.redis_url)
            cluster.supervise(stopping)
        finally:
            log.info("stopping")
            cluster.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
