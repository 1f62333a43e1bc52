"""The WebSocket protocol of docs/protocol.md: parsing what clients send, building what the server sends.

Pure functions and constants, no I/O, so the connection code and the tests share one definition.
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .history import Entry, Snapshot

VERSION = 1

KIND_LIVE = 1
KIND_PHOTO = 2
KIND_SLIDE = 3
KIND_NAMES = {KIND_LIVE: "live", KIND_PHOTO: "photo"}

_HEADER = struct.Struct(">BI")
HEADER_SIZE = _HEADER.size  # 5

CLOSE_GOING_AWAY = 1001
CLOSE_POLICY = 1008  # Origin not allowed
CLOSE_TOO_BIG = 1009
CLOSE_INTERNAL = 1011
CLOSE_TRY_LATER = 1013
CLOSE_TAKEN_OVER = 4001  # a newer socket resumed this session

MIN_SPEED, MAX_SPEED = 0.1, 20.0
MAX_CONTROL_CHARS = 4096  # control messages are tiny; no need to parse megabytes of JSON on the event loop


class ProtocolError(ValueError):
    """Something a client sent that breaks the protocol; answered with an `error` message."""

    def __init__(self, code: str, message: str, frame: int | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.frame = frame


@dataclass(frozen=True)
class ImageMessage:
    kind: int
    frame: int
    data: bytes

    @property
    def kind_name(self) -> str:
        return KIND_NAMES[self.kind]


def parse_image(message: bytes) -> ImageMessage:
    """Split a binary message into kind, frame id and image bytes."""
    if len(message) < HEADER_SIZE:
        raise ProtocolError("bad_message", f"a binary message needs a {HEADER_SIZE}-byte header (kind, frame id)")
    kind, frame = _HEADER.unpack_from(message)
    if kind not in KIND_NAMES:
        raise ProtocolError("bad_message", f"unknown image kind {kind}: 1 = live frame, 2 = photo", frame)
    return ImageMessage(kind, frame, message[HEADER_SIZE:])


def parse_control(text: str) -> dict[str, Any]:
    """Validate a JSON control message; the returned dict has its defaults filled in."""
    if len(text) > MAX_CONTROL_CHARS:
        raise ProtocolError("bad_message", f"control messages have at most {MAX_CONTROL_CHARS} characters")
    try:
        message = json.loads(text)
    except ValueError:
        raise ProtocolError("bad_message", "text messages must be JSON objects with a \"type\"") from None
    if not isinstance(message, dict):
        raise ProtocolError("bad_message", "text messages must be JSON objects with a \"type\"")
    kind = message.get("type")
    if kind in ("replay_stop", "history", "ping"):
        return {"type": kind}
    if kind != "replay":
        raise ProtocolError("bad_message", f"unknown message type {kind!r}")
    mode = message.get("mode", "realtime")
    if mode == "step":
        return {"type": "replay", "mode": "step", "seq": _int_field(message, "seq", None)}
    if mode != "realtime":
        raise ProtocolError("bad_message", "replay mode must be \"realtime\" or \"step\"")
    speed = message.get("speed", 1.0)
    if isinstance(speed, bool) or not isinstance(speed, int | float) or not MIN_SPEED <= speed <= MAX_SPEED:
        raise ProtocolError("bad_message", f"replay speed must be a number from {MIN_SPEED} to {MAX_SPEED}")
    return {"type": "replay", "mode": "realtime", "speed": float(speed), "from": _int_field(message, "from", 0)}


def _int_field(message: dict[str, Any], name: str, default: int | None) -> int:
    value = message.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ProtocolError("bad_message", f"replay needs \"{name}\" as a non-negative integer")
    return value


def slide_image(seq: int, data: bytes) -> bytes:
    """The binary message that follows a `slide`: kind 3, the seq, the image as received."""
    return _HEADER.pack(KIND_SLIDE, seq) + data


def hello(session: str, resumed: bool, history: int, limits: dict[str, float]) -> dict[str, Any]:
    return {"type": "hello", "protocol": VERSION, "session": session, "resumed": resumed,
            "history": history, "limits": limits}


def error(code: str, message: str, frame: int | None = None) -> dict[str, Any]:
    return {"type": "error", "code": code, "message": message, "frame": frame}


def skipped(frames: list[int]) -> dict[str, Any]:
    return {"type": "skipped", "frames": frames, "reason": "a newer frame arrived"}


def result(frame: int, kind: str, seq: int | None, outcome: dict[str, Any], timings: dict[str, float],
           batch_size: int) -> dict[str, Any]:
    return {"type": "result", "frame": frame, "kind": kind, "seq": seq, **outcome,
            "timings": timings, "batch_size": batch_size}


def pong() -> dict[str, Any]:
    return {"type": "pong"}


def history_listing(snapshot: Snapshot) -> dict[str, Any]:
    """The answer to `history`: a summary of each entry kept, oldest first."""
    return {"type": "history", "frames": [_summary(entry) for entry in snapshot.entries],
            "dropped": snapshot.dropped, "bytes": snapshot.bytes}


def _summary(entry: Entry) -> dict[str, Any]:
    return {"seq": entry.seq, "frame": entry.frame, "kind": entry.kind, "t": round(entry.t, 3),
            "number": entry.result.get("number"), "bytes": entry.size}


def slide(entry: Entry, index: int, count: int) -> dict[str, Any]:
    """A history entry during replay; its image follows as `slide_image`."""
    return {"type": "slide", "seq": entry.seq, "frame": entry.frame, "kind": entry.kind, "t": round(entry.t, 3),
            "index": index, "count": count, "result": entry.result}


def history_dropped(seqs: list[int]) -> dict[str, Any]:
    return {"type": "history_dropped", "seqs": seqs}


def replay_end(count: int) -> dict[str, Any]:
    return {"type": "replay_end", "count": count}


HISTORY_STORE = "history_store"
HISTORY_LOCAL_MESSAGE = ("The shared history store is not answering: new frames are kept on this server only, "
                         "and may be lost if you reconnect.")
HISTORY_SHARED_MESSAGE = "The shared history store answers again: this session's history survives a reconnect."


def history_store(shared: bool) -> dict[str, Any]:
    """Where the session's history is kept from now on: shared by every worker (Redis), or this worker only."""
    return {"type": HISTORY_STORE, "shared": shared,
            "message": HISTORY_SHARED_MESSAGE if shared else HISTORY_LOCAL_MESSAGE}
