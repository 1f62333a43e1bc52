"""What the connection code knows of sessions: a store that opens them by token, and one connection's handle.

A session outlives its socket for `resume_grace_s`, so a client that reconnects gets its history back. A
reconnect with the token takes the session over even while the old socket still looks open (a phone whose
network dropped leaves a socket the server cannot tell from a live one until TCP gives up): the store asks the
old owner to hand over first, and fences it, so that it can no longer write once the newer connection owns it.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from typing import Any, Protocol

from ..history import Snapshot


class TakenOver(Exception):  # noqa: N818 (an outcome, not a bug)
    """A newer connection owns the session: this handle may no longer write to it."""


class Owner(Protocol):
    """The connection serving a session."""

    async def hand_over(self) -> None:
        """Answer what is in flight (into the history), then close: a newer connection takes the session."""


class Session(ABC):
    """One connection's handle on a session: every write is fenced by the generation it was opened with."""

    def __init__(self, token: str, started: float) -> None:
        self.token = token
        self.started = started  # time.monotonic() when the session started, in this process's clock

    def elapsed(self, when: float) -> float:
        """Seconds since the session started at monotonic time `when`."""
        return when - self.started

    @property
    def degraded(self) -> bool:
        """True while the shared store fails and the history is kept in this worker only (the client is told)."""
        return False

    @abstractmethod
    async def add(self, frame: int, kind: str, t: float, data: bytes, result: dict[str, Any]) -> tuple[int, list[int]]:
        """Store a frame: its seq and the seqs evicted for it; raises TakenOver once a newer connection owns it."""

    @abstractmethod
    async def snapshot(self, since: int = 0) -> Snapshot:
        """The entries from seq `since` on, without their images."""

    @abstractmethod
    async def image(self, seq: int) -> bytes | None:
        """The image of one entry as received, or None once evicted."""


class SessionStore(ABC):
    @abstractmethod
    async def open(self, token: str | None, owner: Owner) -> tuple[Session, bool]:
        """The session named by `token`, taken over from its previous owner, or a new one; says which.

        Returns once the previous owner has handed over (or could not be reached), before the new hello.
        """

    @abstractmethod
    async def close(self, session: Session, owner: Owner) -> None:
        """`owner`'s socket is gone: keep the session for the grace period, then free it (unless taken over)."""

    @abstractmethod
    def __len__(self) -> int:
        """Sessions this worker keeps (for /metrics)."""

    @abstractmethod
    async def start(self) -> None:
        """Begin background work (the Redis store's health checks and hand-over messages)."""

    @abstractmethod
    async def stop(self) -> None:
        """End background work and let go of connections."""


def wall_to_monotonic(wall: float) -> float:
    """A time.time() instant in this process's monotonic clock: a session's start as another worker recorded it."""
    return time.monotonic() - (time.time() - wall)
