"""Sessions in this worker's memory: the embedded default (no Redis), and what `make run` uses."""

from __future__ import annotations

import asyncio
import secrets
import time
from dataclasses import dataclass, field
from typing import Any

from ..history import Bounds, History, Snapshot
from .base import Owner, Session, SessionStore, TakenOver


@dataclass
class _Kept:
    """A session as the store keeps it, shared by the handles of its successive connections."""

    token: str
    history: History
    started: float = field(default_factory=time.monotonic)
    issued: int = 0  # the last generation handed out
    generation: int = 0  # the generation allowed to write
    owner: Owner | None = None  # the connection serving the session; None while it waits for its client
    expiry: asyncio.TimerHandle | None = None


class MemorySession(Session):
    def __init__(self, kept: _Kept, generation: int) -> None:
        super().__init__(kept.token, kept.started)
        self._kept = kept
        self._generation = generation

    async def add(self, frame: int, kind: str, t: float, data: bytes, result: dict[str, Any]) -> tuple[int, list[int]]:
        if self._kept.generation != self._generation:
            raise TakenOver()
        return self._kept.history.add(frame, kind, t, data, result)

    async def snapshot(self, since: int = 0) -> Snapshot:
        return self._kept.history.snapshot(since)

    async def image(self, seq: int) -> bytes | None:
        return self._kept.history.image(seq)


class MemoryStore(SessionStore):
    def __init__(self, grace_s: float, bounds: Bounds, max_detached: int = 200) -> None:
        self.grace_s = grace_s
        self.bounds = bounds
        # A client that connects, fills its history and leaves, over and over, must not pile up histories
        # for the whole grace period: beyond this many waiting sessions the longest-waiting one goes.
        self.max_detached = max(1, max_detached)
        self._sessions: dict[str, _Kept] = {}
        self._detached: dict[str, _Kept] = {}  # in the order they lost their socket

    def __len__(self) -> int:
        return len(self._sessions)

    async def start(self) -> None:
        """Nothing runs in the background: expiry timers are set as sessions lose their socket."""

    async def stop(self) -> None:
        """Nothing to let go of: the sessions go with the process."""

    async def open(self, token: str | None, owner: Owner) -> tuple[Session, bool]:
        kept = self._sessions.get(token or "")
        resumed = kept is not None
        if kept is None:
            kept = _Kept(secrets.token_urlsafe(18), History(self.bounds))
            self._sessions[kept.token] = kept
        elif kept.expiry is not None:
            kept.expiry.cancel()
        self._detached.pop(kept.token, None)
        kept.issued += 1
        mine = kept.issued
        previous, kept.owner = kept.owner, owner
        if previous is not None:
            try:
                await previous.hand_over()  # its answers enter the history under its own generation
            except BaseException:  # the new socket went while it waited: the session waits for its client again
                self._detach(kept, owner)
                raise
        # Only now is the old owner fenced; a newer opener that finished first keeps the session.
        kept.generation = max(kept.generation, mine)
        return MemorySession(kept, mine), resumed

    async def close(self, session: Session, owner: Owner) -> None:
        kept = self._sessions.get(session.token)
        if kept is not None:
            self._detach(kept, owner)

    def _detach(self, kept: _Kept, owner: Owner) -> None:
        if kept.owner is not owner:
            return
        kept.owner = None
        if self.grace_s <= 0:
            self._forget(kept)
            return
        self._detached[kept.token] = kept
        while len(self._detached) > self.max_detached:
            self._forget(next(iter(self._detached.values())))
        kept.expiry = asyncio.get_running_loop().call_later(self.grace_s, self._forget, kept)

    def _forget(self, kept: _Kept) -> None:
        if kept.owner is None:
            if kept.expiry is not None:
                kept.expiry.cancel()
            self._sessions.pop(kept.token, None)
            self._detached.pop(kept.token, None)
