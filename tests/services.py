"""Debian's redis-server and haproxy as real processes on free loopback ports, for the tests and the bench.

Each is started with the committed configuration (deploy/), as `make cluster` starts them.
"""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
from pathlib import Path

import redis

from server.cluster import haproxy_config, redis_command, start_haproxy, wait_for_http, wait_for_redis


def missing(*binaries: str) -> str | None:
    """Why a test cannot run here (a binary not installed), or None."""
    absent = [name for name in binaries if shutil.which(name) is None]
    if not absent:
        return None
    return f"{', '.join(absent)} not installed (make test installs them as root: apt-get install redis-server haproxy)"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class RedisServer:
    """A redis-server of our own: stopped, killed, paused (a Redis that does not answer) and started again."""

    def __init__(self, directory: Path, port: int | None = None) -> None:
        self.directory = directory
        self.port = port or free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process: subprocess.Popen[bytes] | None = None
        self.start()

    def start(self) -> None:
        self.process = subprocess.Popen(redis_command(self.port, self.directory), stdout=subprocess.DEVNULL)
        wait_for_redis(self.port, self.process)

    def client(self) -> redis.Redis:
        return redis.Redis(port=self.port, socket_timeout=5)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGCONT)  # a paused one could not act on SIGTERM
            self.process.terminate()
            self.process.wait(10)

    def pause(self) -> None:
        """SIGSTOP: connections are accepted by the kernel and never answered, the way a hung Redis looks."""
        assert self.process is not None
        self.process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGCONT)


class Balancer:
    """HAProxy with deploy/haproxy.cfg in front of the given loopback worker ports."""

    def __init__(self, directory: Path, worker_ports: list[int], port: int | None = None) -> None:
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.ws_url = f"ws://127.0.0.1:{self.port}/ws"
        config = directory / f"haproxy-{self.port}.cfg"
        config.write_text(haproxy_config([("127.0.0.1", p) for p in worker_ports]))
        self.process = start_haproxy(config, "127.0.0.1", self.port, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        wait_for_http(self.url, self.process, timeout=30)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            self.process.wait(10)


def free_ports(count: int) -> int:
    """The first of `count` consecutive free loopback ports (as `make cluster` uses PORT, PORT+1, ...)."""
    while True:
        first = free_port()
        try:
            for port in range(first, first + count):
                with socket.socket() as s:
                    s.bind(("127.0.0.1", port))
        except OSError:
            continue
        return first
