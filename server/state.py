"""What the routes of one worker process share, built once when the app starts serving (`app.while_serving`)."""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from dataclasses import dataclass, field

from quart import current_app

from . import protocol
from .batcher import Batcher
from .config import Config
from .connection import Connection
from .limits import parse_origins
from .metrics import Metrics
from .sessions import SessionStore, make_store

log = logging.getLogger("digits.state")


@dataclass
class State:
    config: Config
    worker: str  # this worker's name, in /metrics, the X-Worker header and Redis
    metrics: Metrics
    batcher: Batcher
    sessions: SessionStore
    allowed_origins: frozenset[str]
    connections: set[Connection] = field(default_factory=set)
    http_in_flight: int = 0  # POST /api/recognize requests not yet answered
    closing: bool = False

    @classmethod
    def build(cls, config: Config, worker: str, batcher: Batcher, metrics: Metrics) -> State:
        return cls(config, worker, metrics, batcher, make_store(config, worker, metrics),
                   parse_origins(config.allowed_origins))

    async def drain(self) -> None:
        """Stop taking connections, answer what is in flight, close every socket with 1001."""
        self.closing = True
        log.info("shutting down: answering what %d connections have in flight", len(self.connections))
        await asyncio.gather(*(c.finish(protocol.CLOSE_GOING_AWAY, "server shutting down")
                               for c in list(self.connections)), return_exceptions=True)


def worker_name(config: Config) -> str:
    """The `worker_name` setting, else HOSTNAME:PORT, which names one worker of a cluster; processes of one
    `--workers N` share the port, so the pid tells them apart."""
    name = config.worker_name or f"{socket.gethostname()}:{config.port}"
    return f"{name}/{os.getpid()}" if config.workers > 1 else name


def state() -> State:
    """The serving app's State (inside a request or WebSocket handler)."""
    return current_app.extensions["digits"]
