"""Every limit gives its error and leaves the connection (or at least the server) usable.

One server with small limits for the whole module; the tests don't hold sockets beyond their own end.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import SAMPLES, Server, running_server
from wsclient import PHOTO, Client, answered_frames, refusal_code

SMALL = (SAMPLES / "6.jpg").read_bytes()  # 6320 bytes, 374x344
FOUR = (SAMPLES / "4.jpg").read_bytes()  # 13419 bytes, 516x606 = 312696 px
SEVEN = (SAMPLES / "7.jpg").read_bytes()  # 12411 bytes
BIG_FILE = (SAMPLES / "9.1.png").read_bytes()  # 131035 bytes: over max_message_bytes
MANY_PIXELS = (SAMPLES / "2.jpg").read_bytes()  # 1080x1030: over max_pixels
FAULT = b"DIGITS-TEST-FAULT"

LIMITS = {
    "max_message_bytes": 100_000,
    "max_pixels": 500_000,
    "max_fps": 5,
    "max_connections": 3,
    "history_frames": 3,
    "history_photos": 2,
    "history_live_every_s": 0,  # every live frame is kept: these tests count them
    "history_live_gap_s": 0,
    "history_bytes": 20_000,
    "max_queued_photos": 3,
    "max_queued_bytes": 30_000,
    "allowed_origins": "http://allowed.example",
    "fault_marker": FAULT.decode(),
}


@pytest.fixture(scope="module")
def web_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("site")
    web = root / "web"
    (web / "sub").mkdir(parents=True)
    (web / "index.html").write_text("<!doctype html><html><title>test page</title></html>")
    (web / "sub" / "app.js").write_text("export const ok = true;\n")
    (root / "secret.txt").write_text("SECRET outside web")
    os.symlink(root / "secret.txt", web / "leak.txt")
    os.symlink(root, web / "parent")
    os.symlink(web / "sub" / "app.js", web / "alias.js")
    return web


@pytest.fixture(scope="module")
def limited(web_dir: Path) -> Iterator[Server]:
    with running_server(**LIMITS, web_dir=web_dir) as server:
        yield server


def test_hello_reports_the_limits(limited: Server) -> None:
    async def main() -> dict:
        async with Client.connect(limited.ws_url) as client:
            return client.hello["limits"]

    assert asyncio.run(main()) == {name: LIMITS[name] for name in
                                   ("max_message_bytes", "max_pixels", "max_fps", "history_frames",
                                                  "history_photos", "history_bytes")}


@pytest.mark.parametrize("message", [b"\x01\x00\x00\x00\x07" + BIG_FILE,
                                     json.dumps({"type": "ping", "pad": "x" * 150_000})], ids=["binary", "text"])
def test_a_message_over_the_limit_is_answered_then_closed_1009(limited: Server, message: str | bytes) -> None:
    async def main() -> tuple[dict, int | None, dict]:
        async with Client.connect(limited.ws_url) as client:
            await client.ws.send(message)
            error = await client.expect("error")
            code = await client.close_code()
        async with Client.connect(limited.ws_url) as client:  # the server is still there
            await client.send_image(SMALL, 1)
            return error, code, await client.expect("result")

    error, code, result = asyncio.run(main())
    assert error["code"] == "too_large" and "100000" in error["message"]
    assert error["frame"] == (7 if isinstance(message, bytes) else None)
    assert code == 1009 and result["frame"] == 1


def test_a_message_over_hypercorns_limit_is_closed_1009(limited: Server) -> None:
    async def main() -> int | None:
        async with Client.connect(limited.ws_url) as client:
            await client.ws.send(b"\x01\x00\x00\x00\x07" + bytes(300_000))
            return await client.close_code()

    assert asyncio.run(main()) == 1009


def test_too_many_pixels(limited: Server) -> None:
    async def main() -> tuple[dict, dict]:
        async with Client.connect(limited.ws_url) as client:
            await client.send_image(MANY_PIXELS, 3, PHOTO)
            error = await client.expect("error")
            await client.send_image(FOUR, 4, PHOTO)
            return error, await client.expect("result")

    error, result = asyncio.run(main())
    assert (error["code"], error["frame"]) == ("too_many_pixels", 3) and error["message"]
    assert result["frame"] == 4


def test_live_frames_over_max_fps_are_refused_without_disconnecting(limited: Server) -> None:
    count = 15

    async def main() -> tuple[list, dict]:
        async with Client.connect(limited.ws_url) as client:
            for frame in range(count):
                await client.send_image(SMALL, frame)
            messages = await client.until(lambda ms: len(answered_frames(ms)) == count)
            await asyncio.sleep(1.5)  # the bucket refills: 5 frames per second
            await client.send_image(SMALL, 100)
            return messages, await client.expect("result")

    messages, later = asyncio.run(main())
    outcome = answered_frames(messages)
    assert set(outcome.values()) <= {"result", "skipped", "rate_limited"}
    assert list(outcome.values()).count("rate_limited") >= count - 5 - 1
    assert outcome[0] == "result"
    error = next(m for m in messages if isinstance(m, dict) and m["type"] == "error")
    assert "per second" in error["message"]
    assert later["frame"] == 100


@pytest.mark.parametrize(("photo", "queued"), [(SMALL, 3), (FOUR, 2)], ids=["by count", "by bytes"])
def test_photos_beyond_the_queue_are_refused_not_dropped(limited: Server, photo: bytes, queued: int) -> None:
    count = 8

    async def main() -> list:
        async with Client.connect(limited.ws_url) as client:
            for frame in range(count):
                await client.send_image(photo, frame, PHOTO)
            return await client.until(lambda ms: len(answered_frames(ms)) == count)

    outcome = answered_frames(asyncio.run(main()))
    assert set(outcome.values()) == {"result", "rate_limited"}
    assert [outcome[frame] for frame in range(queued)] == ["result"] * queued  # the first ones always fit


def test_history_is_bounded_by_frames(limited: Server) -> None:
    async def main() -> tuple[list, dict]:
        async with Client.connect(limited.ws_url) as client:
            for frame in range(5):  # live frames, one at a time: within max_fps' burst
                await client.send_image(SMALL, frame)
                await client.expect("result")
            await client.send_json({"type": "history"})
            history = await client.expect("history")
            dropped = [seq for _, m in client.received if m["type"] == "history_dropped" for seq in m["seqs"]]
            return dropped, history

    dropped, history = asyncio.run(main())
    assert dropped == [0, 1]
    assert [f["seq"] for f in history["frames"]] == [2, 3, 4]
    assert history["dropped"] == 2 and history["bytes"] == 3 * len(SMALL)


def test_live_frames_never_push_out_a_photo(limited: Server) -> None:
    """A photo, then live frames beyond the byte total: the live frames give way to each other, the photo stays;
    photos beyond their own count push out live frames first, then the oldest photo."""
    async def main() -> tuple[list, list, list]:
        async with Client.connect(limited.ws_url) as client:
            await client.send_image(SMALL, 0, PHOTO)
            await client.expect("result")
            for frame in range(1, 5):
                await client.send_image(SMALL, frame)
                await client.expect("result")
            await client.send_json({"type": "history"})
            after_live = await client.expect("history")
            for frame in range(5, 7):
                await client.send_image(SMALL, frame, PHOTO)
                await client.expect("result")
            await client.send_json({"type": "history"})
            after_photos = await client.expect("history")
            dropped = [seq for _, m in client.received if m["type"] == "history_dropped" for seq in m["seqs"]]
            return ([(f["seq"], f["kind"]) for f in after_live["frames"]],
                    [(f["seq"], f["kind"]) for f in after_photos["frames"]], dropped)

    after_live, after_photos, dropped = asyncio.run(main())
    assert 3 * len(SMALL) <= LIMITS["history_bytes"] < 4 * len(SMALL)  # three images fit
    assert after_live == [(0, "photo"), (3, "live"), (4, "live")]
    assert after_photos == [(5, "photo"), (6, "photo")]  # history_photos is 2
    assert dropped == [1, 2, 3, 4, 0]


def test_history_is_bounded_by_bytes_and_replay_of_dropped_is_not_found(limited: Server) -> None:
    async def main() -> tuple[dict, dict, dict, dict]:
        async with Client.connect(limited.ws_url) as client:
            await client.send_image(FOUR, 1, PHOTO)
            await client.expect("result")
            await client.send_image(SEVEN, 2, PHOTO)
            result = await client.expect("result")
            dropped = await client.expect("history_dropped")
            await client.send_json({"type": "replay", "mode": "step", "seq": 0})
            missing = await client.expect("error")
            await client.send_json({"type": "history"})
            return result, dropped, missing, await client.expect("history")

    result, dropped, missing, history = asyncio.run(main())
    assert result["seq"] == 1 and dropped["seqs"] == [0]
    assert missing["code"] == "not_found"
    assert history["bytes"] == len(SEVEN) <= LIMITS["history_bytes"] and history["dropped"] == 1


def test_too_many_connections_close_1013_and_a_place_frees_up(limited: Server) -> None:
    async def main() -> tuple[int | None, dict]:
        async with Client.connect(limited.ws_url), Client.connect(limited.ws_url), Client.connect(limited.ws_url):
            refused = await refusal_code(limited.ws_url)
        for _ in range(50):  # the server notices the closes a moment later
            if await refusal_code(limited.ws_url) is None:
                break
            await asyncio.sleep(0.1)
        async with Client.connect(limited.ws_url) as client:
            return refused, client.hello

    refused, hello = asyncio.run(main())
    assert refused == 1013 and hello["type"] == "hello"


def test_an_engine_failure_fails_only_its_frame(limited: Server) -> None:
    async def main() -> tuple[list, dict]:
        async with Client.connect(limited.ws_url) as client:
            await client.send_image(FOUR + FAULT, 1, PHOTO)
            await client.send_image(SEVEN, 2, PHOTO)
            messages = await client.until(lambda ms: len(answered_frames(ms)) == 2)
            await client.send_image(FOUR, 3)
            return messages, await client.expect("result")

    messages, later = asyncio.run(main())
    assert answered_frames(messages) == {1: "internal", 2: "result"}
    error = next(m for m in messages if m["type"] == "error")
    assert "Traceback" not in error["message"] and error["message"]
    assert later["frame"] == 3
    with urllib.request.urlopen(limited.url + "/healthz") as response:
        assert response.status == 200


def test_allowed_origins(limited: Server) -> None:
    async def main() -> tuple[int | None, int | None]:
        return (await refusal_code(limited.ws_url, origin="http://allowed.example"),
                await refusal_code(limited.ws_url, origin="https://allowed.example.evil"))

    assert asyncio.run(main()) == (None, 1008)


def _get(server: Server, path: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(server.url + path, timeout=30) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def test_web_dir_serves_its_files_and_no_symlink_out(limited: Server) -> None:
    assert _get(limited, "/") == (200, b"<!doctype html><html><title>test page</title></html>")
    assert _get(limited, "/sub/app.js")[0] == 200
    assert _get(limited, "/alias.js") == (200, b"export const ok = true;\n")  # a symlink within web/ is fine
    for path in ("/leak.txt", "/parent/secret.txt", "/parent/web/index.html/../../secret.txt"):
        status, body = _get(limited, path)
        assert status == 404 and b"SECRET" not in body, path


def test_http_limits(limited: Server) -> None:
    def post(body: bytes) -> tuple[int, dict]:
        request = urllib.request.Request(limited.url + "/api/recognize", data=body,
                                         headers={"Content-Type": "image/png"})
        try:
            with urllib.request.urlopen(request, timeout=60) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as error:
            return error.code, json.loads(error.read())

    status, answer = post(BIG_FILE)
    assert status == 413 and answer["error"]
    status, answer = post(MANY_PIXELS)
    assert status == 413 and "pixels" in answer["error"]


def test_http_uploads_in_flight_are_bounded(limited: Server) -> None:
    def post_small() -> int:
        request = urllib.request.Request(limited.url + "/api/recognize", data=SMALL,
                                         headers={"Content-Type": "image/jpeg"})
        try:
            with urllib.request.urlopen(request, timeout=60) as response:
                return response.status
        except urllib.error.HTTPError as error:
            return error.code

    def statuses_until(wanted: int) -> list[int]:
        seen = [post_small()]
        while seen[-1] != wanted and len(seen) < 50:  # the server sees the uploads start a moment later
            time.sleep(0.1)
            seen.append(post_small())
        return seen

    # Uploads that never finish their body hold every place.
    head = (f"POST /api/recognize HTTP/1.1\r\nHost: 127.0.0.1:{limited.port}\r\nContent-Type: image/jpeg\r\n"
            "Content-Length: 50000\r\n\r\n").encode()
    slow = [socket.create_connection(("127.0.0.1", limited.port), timeout=30) for _ in range(LIMITS["max_connections"])]
    try:
        for sock in slow:
            sock.sendall(head + SMALL[:100])
        refused = statuses_until(503)
    finally:
        for sock in slow:
            sock.close()
    assert refused[-1] == 503 and set(refused) <= {200, 503}
    assert statuses_until(200)[-1] == 200  # the places free up when those clients go
