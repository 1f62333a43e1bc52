"""A small client for the WebSocket protocol (docs/protocol.md), shared by the server, web, bench and fuzz tests.

    async with Client.connect(server.ws_url) as client:
        await client.send_image(data, frame=1)              # a live frame
        result = await client.expect("result")              # skips other message types on the way
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import socket
import struct
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import websockets

LIVE, PHOTO, SLIDE = 1, 2, 3
_HEADER = struct.Struct(">BI")
TIMEOUT = 60.0  # generous: the machine is shared and may be busy with other work


def image_message(data: bytes, frame: int, kind: int = LIVE) -> bytes:
    """A binary message: kind byte, frame id (uint32 big-endian), image bytes."""
    return _HEADER.pack(kind, frame) + data


def split_binary(message: bytes) -> tuple[int, int, bytes]:
    """(kind, frame id or seq, payload) of a binary message."""
    kind, number = _HEADER.unpack_from(message)
    return kind, number, message[_HEADER.size:]


class Client:
    def __init__(self, ws: websockets.ClientConnection, hello: dict[str, Any]) -> None:
        self.ws = ws
        self.hello = hello
        self.received: list[tuple[float, dict[str, Any] | bytes]] = []  # (monotonic time, message), all of them

    @classmethod
    @asynccontextmanager
    async def connect(cls, url: str, session: str | None = None, origin: str | None = None,
                      **kwargs: Any) -> AsyncIterator[Client]:
        """Open a socket and read the hello; `session` resumes, `origin` sends an Origin header."""
        if session:
            url += f"?session={session}"
        if origin:
            kwargs["origin"] = origin
        async with websockets.connect(url, max_size=None, **kwargs) as ws:
            hello = json.loads(await asyncio.wait_for(ws.recv(), TIMEOUT))
            assert hello["type"] == "hello", hello
            yield cls(ws, hello)

    @property
    def session(self) -> str:
        return self.hello["session"]

    async def send_image(self, data: bytes, frame: int, kind: int = LIVE) -> None:
        await self.ws.send(image_message(data, frame, kind))

    async def send_json(self, message: dict[str, Any]) -> None:
        await self.ws.send(json.dumps(message))

    async def recv(self, timeout: float = TIMEOUT) -> dict[str, Any] | bytes:
        """The next message: a dict for JSON text, bytes for binary."""
        raw = await asyncio.wait_for(self.ws.recv(), timeout)
        message = json.loads(raw) if isinstance(raw, str) else raw
        self.received.append((time.monotonic(), message))
        return message

    async def expect(self, *types: str, timeout: float = TIMEOUT) -> dict[str, Any]:
        """The next JSON message of one of `types`, ignoring others."""
        while True:
            message = await self.recv(timeout)
            if isinstance(message, dict) and message["type"] in types:
                return message

    async def until(self, done: Callable[[list[dict[str, Any] | bytes]], bool],
                    timeout: float = TIMEOUT) -> list[dict[str, Any] | bytes]:
        """Receive until `done(messages so far)` is true; return those messages."""
        messages: list[dict[str, Any] | bytes] = []
        while not done(messages):
            messages.append(await self.recv(timeout))
        return messages

    async def ping(self) -> None:
        """Round-trip a ping: proves the connection is usable and everything sent before was read."""
        await self.send_json({"type": "ping"})
        await self.expect("pong")

    async def close_code(self, timeout: float = TIMEOUT) -> int | None:
        """Read until the server closes; the close code it sent."""
        try:
            while True:
                await self.recv(timeout)
        except websockets.ConnectionClosed as closed:
            return closed.rcvd.code if closed.rcvd else None


async def refusal_code(url: str, origin: str | None = None) -> int | None:
    """The close code when the server closes a new socket instead of saying hello (None if it says hello)."""
    async with websockets.connect(url, **({"origin": origin} if origin else {})) as ws:
        try:
            await asyncio.wait_for(ws.recv(), TIMEOUT)
        except websockets.ConnectionClosed as closed:
            return closed.rcvd.code if closed.rcvd else None
    return None


def answered_frames(messages: list[dict[str, Any] | bytes]) -> dict[int, str]:
    """frame id -> how it was answered ("result", "skipped" or an error code)."""
    outcome: dict[int, str] = {}
    for m in messages:
        if not isinstance(m, dict):
            continue
        if m["type"] == "result":
            outcome[m["frame"]] = "result"
        elif m["type"] == "skipped":
            outcome.update(dict.fromkeys(m["frames"], "skipped"))
        elif m["type"] == "error" and m["frame"] is not None:
            outcome[m["frame"]] = m["code"]
    return outcome


def raw_websocket(port: int) -> socket.socket:
    """A hand-made WebSocket for tests that misbehave below the protocol: the opening handshake is done and
    its response read up to the blank line, byte by byte, so the server's first frame is still unread."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT)
    key = base64.b64encode(os.urandom(16)).decode()
    sock.sendall(f"GET /ws HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                 f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n".encode())
    head = b""
    while not head.endswith(b"\r\n\r\n"):
        byte = sock.recv(1)
        assert byte, f"the server closed during the handshake: {head[:100]!r}"
        head += byte
    assert head.startswith(b"HTTP/1.1 101"), head[:100]
    return sock

