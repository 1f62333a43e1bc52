"""Sessions outlive their socket for `resume_grace_s`, so a client that reconnects gets its history back.

A reconnect with the token takes the session over even while the old socket still looks open: a phone whose
network dropped leaves a socket the server cannot tell from a live one until TCP gives up.

Sessions live in one worker process's memory: with several workers a reconnect may land on another
worker and then starts afresh.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from dataclasses import dataclass, field
from typing import Any

from .history import History


@dataclass
class Session:
    token: str
    history: History
    started: float = field(default_factory=time.monotonic)
    owner: Any = None  # the connection serving the session; None while it waits for its client
    _expiry: asyncio.TimerHandle | None = None

    def elapsed(self, when: float) -> float:
        """Seconds since the session started at monotonic time `when`."""
        return when - self.started


class SessionStore:
    def __init__(self, grace_s: float, history_frames: int, history_bytes: int, max_detached: int = 200) -> None:
        self.grace_s = grace_s
        self.history_frames = history_frames
        self.history_bytes = history_bytes
        # A client that connects, fills its history and leaves, over and over, must not pile up histories
        # for the whole grace period: beyond this many waiting sessions the longest-waiting one goes.
        self.max_detached = max(1, max_detached)
        self._sessions: dict[str, Session] = {}
        self._detached: dict[str, Session] = {}  # in the order they lost their socket

    def __len__(self) -> int:
        return len(self._sessions)

    def open(self, token: str | None) -> tuple[Session, bool]:
        """The session named by `token` if it is still kept, else a new one; says which.

        The caller sets the session's `owner`, and closes the previous owner if there was one (a takeover).
        """
        session = self._sessions.get(token or "")
        if session is not None:
            if session.owner is None:
                if session._expiry is not None:
                    session._expiry.cancel()
                del self._detached[session.token]
            return session, True
        session = Session(secrets.token_urlsafe(18), History(self.history_frames, self.history_bytes))
        self._sessions[session.token] = session
        return session, False

    def detach(self, session: Session, owner: object) -> None:
        """`owner`'s socket is gone: keep the session for the grace period, then free it (unless taken over)."""
        if session.owner is not owner:
            return
        session.owner = None
        if self.grace_s <= 0:
            self._forget(session)
            return
        self._detached[session.token] = session
        while len(self._detached) > self.max_detached:
            self._forget(next(iter(self._detached.values())))
        loop = asyncio.get_running_loop()
        session._expiry = loop.call_later(self.grace_s, self._forget, session)

    def _forget(self, session: Session) -> None:
        if session.owner is None:
            if session._expiry is not None:
                session._expiry.cancel()
            self._sessions.pop(session.token, None)
            self._detached.pop(session.token, None)
