"""What the routes of one worker process share, built once when the app starts serving (`app.while_serving`)."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field

from quart import current_app

from . import protocol
from .batcher import Batcher
from .config import Config
from .connection import Connection
from .limits import parse_origins
from .metrics import Metrics
from .sessions import SessionStore

log = logging.getLogger("digits.state")


@dataclass
class State:
    config: Config
    metrics: Metrics
    batcher: Batcher
    sessions: SessionStore
    allowed_origins: frozenset[str]
    connections: set[Connection] = field(default_factory=set)
    http_in_flight: int = 0  # POST /api/recognize requests not yet answered
    closing: bool = False

    @classmethod
    def build(cls, config: Config, batcher: Batcher, metrics: Metrics) -> State:
        sessions = SessionStore(config.resume_grace_s, config.history_frames, config.history_bytes,
                                max_detached=config.max_connections)
        return cls(config, metrics, batcher, sessions, parse_origins(config.allowed_origins))

    async def drain(self) -> None:
        """Stop taking connections, answer what is in flight, close every socket with 1001."""
        self.closing = True
        log.info("shutting down: answering what %d connections have in flight", len(self.connections))
        await asyncio.gather(*(c.finish(protocol.CLOSE_GOING_AWAY, "server shutting down")
                               for c in list(self.connections)), return_exceptions=True)


def state() -> State:
    """The serving app's State (inside a request or WebSocket handler)."""
    return current_app.extensions["digits"]
