"""Streaming clients that reconnect with their token as the page does, while a worker is killed under them.

Each client streams live frames at `fps` through the balancer; when its socket drops it reconnects at once (then
every 0.1 s) with its session token. Afterwards each asks for its history, and the run says: how long until every
client whose socket dropped was reading again, how many answered frames are missing from the histories (neither
kept nor reported dropped), and how many frames were accepted and never answered.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import websockets

from tests.wsclient import LIVE, Client

_RETRY_S = 0.1
_ANSWER_GRACE_S = 15.0


@dataclass
class _Stream:
    """One client's view of its session across its sockets."""

    frames: list[bytes]
    token: str | None = None
    pending: dict[int, float] = field(default_factory=dict)  # frame -> sent, on the current socket
    answered: dict[int, int] = field(default_factory=dict)  # seq -> frame
    dropped: set[int] = field(default_factory=set)  # seqs reported by history_dropped
    unanswered_on_dead_socket: int = 0  # in flight when a socket dropped: the client knows they are lost
    other_answers: int = 0  # skipped and errors
    dropped_at: float | None = None
    reading_again_at: float | None = None
    kept: set[int] | None = None

    def on_message(self, message: dict[str, Any]) -> None:
        kind = message["type"]
        if kind == "result" and self.pending.pop(message["frame"], None) is not None:
            self.answered[message["seq"]] = message["frame"]
            if self.dropped_at is not None and self.reading_again_at is None:
                self.reading_again_at = time.monotonic()
        elif kind == "skipped":
            self.other_answers += sum(self.pending.pop(f, None) is not None for f in message["frames"])
        elif kind == "error" and message["frame"] is not None:
            self.other_answers += self.pending.pop(message["frame"], None) is not None
        elif kind == "history_dropped":
            self.dropped.update(message["seqs"])
        elif kind == "history":
            self.kept = {f["seq"] for f in message["frames"]}


async def _receive(client: Client, stream: _Stream) -> None:
    async for raw in client.ws:
        if isinstance(raw, str):
            stream.on_message(json.loads(raw))


async def _serve(client: Client, stream: _Stream, fps: float, until: float, frame: int) -> int:
    """Stream on one socket until `until`, then wait for the answers and the history; returns the next frame id.
    Raises ConnectionClosed when the socket drops."""
    receiver = asyncio.create_task(_receive(client, stream))
    try:
        while time.monotonic() < until and not receiver.done():
            await client.send_image(stream.frames[frame % len(stream.frames)], frame, LIVE)
            stream.pending[frame] = time.monotonic()
            frame += 1
            await asyncio.sleep(1 / fps)
        limit = time.monotonic() + _ANSWER_GRACE_S
        while stream.pending and not receiver.done() and time.monotonic() < limit:
            await asyncio.sleep(0.05)
        await client.send_json({"type": "history"})
        while stream.kept is None and not receiver.done() and time.monotonic() < limit:
            await asyncio.sleep(0.05)
        return frame
    finally:
        receiver.cancel()
        if receiver.done() and not receiver.cancelled():
            receiver.exception()  # the socket dropped: seen here, not logged as never retrieved


async def _client(url: str, stream: _Stream, fps: float, until: float) -> None:
    frame = 0
    while stream.kept is None and time.monotonic() < until + _ANSWER_GRACE_S:
        connected = False
        try:
            async with Client.connect(url, session=stream.token) as client:
                stream.token, connected = client.session, True
                frame = await _serve(client, stream, fps, until, frame)
        except (OSError, TimeoutError, websockets.WebSocketException):
            await asyncio.sleep(_RETRY_S)
        if connected and stream.kept is None:  # the socket dropped: what it had in flight is never answered
            stream.unanswered_on_dead_socket += len(stream.pending)
            stream.pending.clear()
            stream.dropped_at = stream.dropped_at or time.monotonic()


async def run(url: str, frames: list[bytes], clients: int, fps: float, before_s: float, after_s: float,
              kill: Callable[[], None]) -> dict[str, Any]:
    """Stream for `before_s`, call `kill`, stream for `after_s` more; the accounting of every client."""
    streams = [_Stream(frames) for _ in range(clients)]
    until = time.monotonic() + before_s + after_s
    tasks = [asyncio.create_task(_client(url, s, fps, until)) for s in streams]
    await asyncio.sleep(before_s)
    killed_at = time.monotonic()
    kill()
    await asyncio.gather(*tasks)
    hit = [s for s in streams if s.dropped_at is not None]
    reading = [s.reading_again_at - killed_at for s in hit if s.reading_again_at is not None]
    lost = sum(len(set(s.answered) - s.dropped - (s.kept or set())) for s in streams)
    return {
        "clients": clients, "fps": fps, "clients_dropped": len(hit), "clients_reading_again": len(reading),
        "reading_again_max_s": round(max(reading), 2) if reading else None,
        "history_lost_frames": lost,
        "answered": sum(len(s.answered) for s in streams), "skipped_or_error": sum(s.other_answers for s in streams),
        "unanswered_on_killed_sockets": sum(s.unanswered_on_dead_socket for s in streams),
        "never_answered_on_live_sockets": sum(len(s.pending) for s in streams),
    }
