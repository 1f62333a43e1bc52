"""Session takeover (docs/protocol.md, Connecting and resuming): a reconnect with the token while the old
socket still looks open, as after a phone's network drop, gets the session and its history."""

from __future__ import annotations

import asyncio
import json
import socket
import time

from conftest import SAMPLES, Server, running_server
from wsclient import LIVE, PHOTO, SLIDE, TIMEOUT, Client, answered_frames, raw_websocket, split_binary

IMAGE = (SAMPLES / "6.jpg").read_bytes()
TAKEN_OVER = 4001


def test_a_reconnect_takes_the_session_over_from_a_socket_still_open(server: Server) -> None:
    async def main() -> tuple[list, int | None, dict, dict, list]:
        async with Client.connect(server.ws_url) as old:
            for frame in range(3):
                await old.send_image(IMAGE, frame, LIVE)
                await old.expect("result")
            await old.send_image(IMAGE, 3, PHOTO)  # in flight when the new socket arrives
            async with Client.connect(server.ws_url, session=old.session) as new:
                code = await old.close_code()
                hello = new.hello
                await new.send_json({"type": "history"})
                listing = await new.expect("history")
                await new.send_json({"type": "replay", "mode": "realtime", "speed": 20})
                replay = await new.until(lambda m: bool(m) and isinstance(m[-1], dict)
                                         and m[-1]["type"] == "replay_end")
        return [m for _, m in old.received], code, hello, listing, replay

    old_messages, code, hello, listing, replay = asyncio.run(main())
    # The old socket answered everything it had received, photo in flight included, then was closed 4001.
    assert answered_frames(old_messages) == dict.fromkeys(range(4), "result")
    assert code == TAKEN_OVER
    # The new one resumed with all four, and nothing of the old socket's was sent to it.
    assert hello["resumed"] is True and hello["history"] == 4
    assert [f["frame"] for f in listing["frames"]] == [0, 1, 2, 3]
    slides = [m for m in replay if isinstance(m, dict) and m["type"] == "slide"]
    images = [split_binary(m) for m in replay if isinstance(m, bytes)]
    assert [s["frame"] for s in slides] == [0, 1, 2, 3] and replay[-1]["count"] == 4
    assert [(kind, data) for kind, _, data in images] == [(SLIDE, IMAGE)] * 4
    assert not [m for m in replay if isinstance(m, dict) and m["type"] == "result"]


def test_after_a_takeover_the_session_resumes_again_once_the_new_socket_goes(server: Server) -> None:
    async def main() -> tuple[dict, dict]:
        async with Client.connect(server.ws_url) as old:
            await old.send_image(IMAGE, 0, PHOTO)
            await old.expect("result")
            async with Client.connect(server.ws_url, session=old.session) as new:
                await old.close_code()
                await new.send_image(IMAGE, 1, PHOTO)
                await new.expect("result")
            # The new socket went: the session waits for its client again, with both frames.
            async with Client.connect(server.ws_url, session=old.session) as again:
                await again.send_json({"type": "history"})
                return again.hello, await again.expect("history")

    hello, listing = asyncio.run(main())
    assert hello["resumed"] is True and hello["history"] == 2
    assert [f["frame"] for f in listing["frames"]] == [0, 1]


def _silent_websocket(port: int) -> tuple[socket.socket, dict]:
    """A socket that does the opening handshake, reads the hello, and from then on answers nothing (no pongs):
    a phone whose network dropped, as the server sees it."""
    sock = raw_websocket(port)
    stream = sock.makefile("rb")
    while True:  # unmasked server frames; pings may come before the hello, a whole text frame
        opcode, length = stream.read(2)
        if length == 126:
            length = int.from_bytes(stream.read(2), "big")
        payload = stream.read(length)
        if opcode == 0x81:
            return sock, json.loads(payload)


def _read_until_closed(sock: socket.socket) -> None:
    deadline = time.monotonic() + TIMEOUT  # the pings never stop coming while the socket is kept
    while sock.recv(65536):
        assert time.monotonic() < deadline, "the server kept a socket that answered no ping"


def test_a_client_that_stops_answering_pings_is_dropped_and_can_resume() -> None:
    with running_server(ping_interval_s=0.5) as server:
        silent, hello = _silent_websocket(server.port)
        with silent:
            async def main() -> dict:
                async with Client.connect(server.ws_url) as alive:
                    # The server gives up on the silent socket after 3 unanswered pings...
                    await asyncio.to_thread(_read_until_closed, silent)
                    await alive.ping()  # ...while a client that answers them stays connected
                async with Client.connect(server.ws_url, session=hello["session"]) as resumed:
                    return resumed.hello

            resumed = asyncio.run(main())
    assert resumed["resumed"] is True and resumed["session"] == hello["session"]
