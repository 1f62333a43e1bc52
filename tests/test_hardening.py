"""Floods, accounting and faults against the real server: a flooder is throttled while others keep their
answers, every frame is accounted for under mixed load, clients that vanish mid-frame or stop reading are
cleaned up, an engine failure stays with its frame, and SIGTERM under load answers what is in flight.

One server for the module (a fault marker set, a short resume grace); the SIGTERM test starts its own.
"""

from __future__ import annotations

import asyncio
import io
import os
import signal
import socket
import struct
import time
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterator

import numpy as np
import psutil
import pytest
from conftest import SAMPLES, Server, running_server
from PIL import Image
from wsclient import LIVE, PHOTO, Client, answered_frames, image_message, raw_websocket

SMALL = (SAMPLES / "6.jpg").read_bytes()
PHOTOS = [(SAMPLES / name).read_bytes() for name in ("1.jpg", "3.jpg", "4.jpg", "7.jpg")]
FAULT = b"HARDENING-FAULT"
GRACE_S = 0.5  # resume grace: sessions of vanished clients go quickly


@pytest.fixture(scope="module")
def hard_server() -> Iterator[Server]:
    with running_server(fault_marker=FAULT.decode(), resume_grace_s=GRACE_S) as server:
        yield server


def metrics(server: Server) -> Counter[str]:
    """/metrics as {"name{labels}": value}."""
    with urllib.request.urlopen(server.url + "/metrics", timeout=30) as response:
        lines = response.read().decode().splitlines()
    return Counter({name: float(value) for name, value in (line.rsplit(" ", 1) for line in lines if line[0] != "#")})


def wait_until(condition: Callable[[], bool], timeout: float = 30.0) -> bool:
    """Poll `condition` until true or `timeout`; the server frees things a moment after the client goes."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.2)
    return True


def answer_counts(messages: list) -> Counter[int]:
    """How many answers (result, skipped or error) each frame id got: each must get exactly one."""
    counts: Counter[int] = Counter()
    for m in messages:
        if isinstance(m, dict) and m["type"] == "result":
            counts[m["frame"]] += 1
        elif isinstance(m, dict) and m["type"] == "skipped":
            counts.update(m["frames"])
        elif isinstance(m, dict) and m["type"] == "error" and m["frame"] is not None:
            counts[m["frame"]] += 1
    return counts


async def _stream(client: Client, frames: range, fps: float, data: bytes = SMALL) -> None:
    """Send live frames at `fps`."""
    for frame in frames:
        await client.send_image(data, frame)
        await asyncio.sleep(1 / fps)


async def _drain(client: Client, frames: set[int]) -> list:
    """Read until every frame in `frames` is answered; all messages read."""
    return await client.until(lambda ms: frames <= answered_frames(ms).keys())


# Flood


def test_a_flooder_is_throttled_while_others_keep_getting_answers(hard_server: Server) -> None:
    seconds, fps, flood = 4, 10, 1500

    async def steady(index: int) -> list:
        async with Client.connect(hard_server.ws_url) as client:
            frames = range(index * 1000, index * 1000 + seconds * fps)
            reader = asyncio.ensure_future(_drain(client, set(frames)))
            await _stream(client, frames, fps, PHOTOS[index])
            return await reader

    async def flooder() -> tuple[list, dict]:
        async with Client.connect(hard_server.ws_url) as client:
            reader = asyncio.ensure_future(_drain(client, set(range(flood))))
            for frame in range(flood):
                await client.send_image(SMALL, frame)
                await asyncio.sleep(0)  # let the other clients of this test process run too
            messages = await reader
            await asyncio.sleep(1.1)  # a second's worth of tokens back
            await client.send_image(SMALL, flood)
            return messages, await client.expect("result")

    async def main() -> tuple[list[list], tuple[list, dict]]:
        *steadies, flooded = await asyncio.gather(*(steady(i) for i in range(3)), flooder())
        return steadies, flooded

    steadies, (flooded, after) = asyncio.run(main())
    for index, messages in enumerate(steadies):
        outcome = answered_frames(messages)
        assert set(outcome.values()) <= {"result", "skipped"}, Counter(outcome.values())
        assert set(answer_counts(messages).values()) == {1}
        # Some result in every second of streaming, counted by the frames sent in that second.
        for second in range(seconds):
            sent = range(index * 1000 + second * fps, index * 1000 + (second + 1) * fps)
            assert any(outcome[f] == "result" for f in sent), (index, second, [outcome[f] for f in sent])
    outcome = answered_frames(flooded)
    kinds = Counter(outcome.values())
    assert set(kinds) <= {"result", "skipped", "rate_limited"} and kinds["rate_limited"] > flood // 2, kinds
    assert set(answer_counts(flooded).values()) == {1}
    limited = next(m for m in flooded if m["type"] == "error")
    assert limited["code"] == "rate_limited" and "per second" in limited["message"]
    assert after["frame"] == flood  # throttled, not disconnected


def _heavy_png() -> bytes:
    """A small file that is costly to prepare: a blank 6000 x 6000 page (about 0.5 s of CPU)."""
    out = io.BytesIO()
    Image.new("RGB", (6000, 6000), (235, 235, 230)).save(out, "PNG")
    return out.getvalue()


def test_a_client_queueing_heavy_photos_does_not_starve_the_others(hard_server: Server) -> None:
    """Eight heavy photos queued at once by one client; another client's live frame, sent just after, is
    answered while the heavy ones are still being worked through, not behind the whole queue."""
    heavy, photos = _heavy_png(), 8
    events: list[str] = []

    async def heavy_client() -> None:
        async with Client.connect(hard_server.ws_url) as client:
            for frame in range(photos):
                await client.send_image(heavy, frame, PHOTO)
            answered: set[int] = set()
            while len(answered) < photos:
                message = await client.recv()
                if isinstance(message, dict) and message["type"] == "result":
                    answered.add(message["frame"])
                    events.append("heavy")

    async def live_client() -> None:
        async with Client.connect(hard_server.ws_url) as client:
            await asyncio.sleep(0.3)  # the heavy photos are queued first
            await client.send_image(SMALL, 100)
            await client.expect("result")
            events.append("live")

    async def main() -> None:
        await asyncio.gather(heavy_client(), live_client())

    asyncio.run(main())
    assert events.count("heavy") == photos
    assert events.index("live") <= photos // 2, events


# Accounting


def test_every_frame_is_answered_skipped_or_refused_under_mixed_load(hard_server: Server) -> None:
    """Four clients at once, each mixing live frames, photos, unreadable images and a burst over max_fps."""

    async def mixed(index: int) -> list:
        base = index * 10_000
        async with Client.connect(hard_server.ws_url) as client:
            sent = set()
            for n in range(60):
                frame = base + n
                if n % 10 == 3:
                    await client.send_image(PHOTOS[n % 4], frame, PHOTO)
                elif n % 10 == 7:
                    await client.send_image(SMALL[: 200 + n], frame, PHOTO if n % 20 == 7 else LIVE)
                else:
                    await client.send_image(SMALL, frame)
                sent.add(frame)
                await asyncio.sleep(0 if 30 <= n < 50 else 0.03)  # frames 30-49 as one burst
            return await _drain(client, sent)

    async def main() -> list[list]:
        return await asyncio.gather(*(mixed(i) for i in range(4)))

    before = metrics(hard_server)
    per_client = asyncio.run(main())
    after = metrics(hard_server)
    for index, messages in enumerate(per_client):
        counts = answer_counts(messages)
        assert set(counts) == {index * 10_000 + n for n in range(60)} and set(counts.values()) == {1}
        outcome = answered_frames(messages)
        assert set(outcome.values()) <= {"result", "skipped", "bad_image", "rate_limited"}
        for n in (3, 13, 23):  # photos are never skipped
            assert outcome[index * 10_000 + n] == "result"
        for n in (7, 27, 47):  # unreadable photos (unreadable live frames may be skipped first)
            assert outcome[index * 10_000 + n] == "bad_image"
    # The server's own books balance: every image received is answered, skipped or refused.
    delta = after - before  # Counter subtraction keeps the positive changes
    received = delta['digits_frames_received_total{kind="live"}'] + delta['digits_frames_received_total{kind="photo"}']
    settled = (delta['digits_frames_answered_total{kind="live"}'] + delta['digits_frames_answered_total{kind="photo"}']
               + delta["digits_frames_skipped_total"]
               + sum(delta[f'digits_errors_total{{code="{code}"}}'] for code in ("bad_image", "rate_limited")))
    assert received == settled == 4 * 60


# Faults


def _client_frame(payload: bytes) -> bytes:
    """A masked binary WebSocket frame, as a client must send."""
    mask = os.urandom(4)
    size = len(payload)
    length = bytes([0x80 | size]) if size < 126 else bytes([0x80 | 126]) + struct.pack(">H", size)
    masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    return b"\x82" + length + mask + masked


def _reset(sock: socket.socket) -> None:
    """Close with a TCP RST: no close frame, no FIN handshake."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


def _vanish_mid_frame(port: int) -> None:
    sock = raw_websocket(port)
    frame = _client_frame(image_message(SMALL, 1, PHOTO))
    sock.sendall(frame[: len(frame) // 2])
    _reset(sock)


def _vanish_with_frames_in_flight(port: int) -> None:
    sock = raw_websocket(port)
    for frame in range(4):
        sock.sendall(_client_frame(image_message(PHOTOS[frame], frame, PHOTO)))
    _reset(sock)


def _vanish_mid_handshake(port: int) -> None:
    sock = socket.create_connection(("127.0.0.1", port), timeout=30)
    sock.sendall(b"GET /ws HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConn")
    _reset(sock)


def _leave_without_close_frame(port: int) -> None:
    sock = raw_websocket(port)
    sock.sendall(_client_frame(image_message(SMALL, 1, LIVE)))
    sock.close()  # a FIN, but never a WebSocket close frame


def test_clients_that_vanish_are_cleaned_up_and_others_are_unaffected(hard_server: Server) -> None:
    baseline = metrics(hard_server)

    async def bystander() -> list:
        async with Client.connect(hard_server.ws_url) as client:
            frames = range(40)
            reader = asyncio.ensure_future(_drain(client, set(frames)))
            await _stream(client, frames, 10)
            return await reader

    async def main() -> list:
        watching = asyncio.ensure_future(bystander())
        for vanish in (_vanish_mid_frame, _vanish_with_frames_in_flight, _vanish_mid_handshake,
                       _leave_without_close_frame):
            for _ in range(3):
                await asyncio.to_thread(vanish, hard_server.port)
        return await watching

    messages = asyncio.run(main())
    assert set(answered_frames(messages).values()) <= {"result", "skipped"}
    assert len(answered_frames(messages)) == 40

    def freed() -> bool:
        now = metrics(hard_server)
        return all(now[name] <= baseline[name] for name in ("digits_connections", "digits_sessions", "digits_tasks"))

    assert wait_until(freed), {k: (baseline[k], metrics(hard_server)[k]) for k in ("digits_connections",
                                                                                    "digits_sessions", "digits_tasks")}
    with urllib.request.urlopen(hard_server.url + "/healthz", timeout=30) as response:
        assert response.status == 200


def test_an_engine_failure_in_a_shared_batch_fails_only_its_frame(hard_server: Server) -> None:
    """Frames from several clients arrive together, so they share batches with the faulty one."""

    async def client(index: int, faulty: bool) -> list:
        async with Client.connect(hard_server.ws_url) as client:
            for frame in range(4):
                data = PHOTOS[frame] + FAULT if faulty and frame == 1 else PHOTOS[frame]
                await client.send_image(data, frame, PHOTO)
            messages = await _drain(client, set(range(4)))
            await client.send_image(SMALL, 9)  # still usable
            return [*messages, await client.expect("result")]

    async def main() -> list[list]:
        return await asyncio.gather(*(client(i, faulty=i == 0) for i in range(4)))

    before = metrics(hard_server)["digits_batch_size_count"]
    per_client = asyncio.run(main())
    for index, messages in enumerate(per_client):
        outcome = answered_frames(messages)
        assert outcome == {0: "result", 1: "internal" if index == 0 else "result", 2: "result", 3: "result",
                           9: "result"}, (index, outcome)
    batches = metrics(hard_server)["digits_batch_size_count"] - before
    assert batches < 4 * 5  # some frames did share a batch with others


def _noise_png(width: int, height: int) -> bytes:
    """An incompressible PNG: its size in bytes is about 3 * width * height."""
    pixels = np.random.default_rng(0).integers(0, 256, (height, width, 3), dtype=np.uint8)
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, "PNG", compress_level=0)
    return out.getvalue()


def test_a_client_that_stops_reading_is_bounded_and_does_not_hold_up_others(hard_server: Server) -> None:
    """The slow reader asks for a 1 MB slide hundreds of times and never reads; the others stream on,
    and the server buffers a bounded amount for it (not hundreds of MB)."""
    big, steps = _noise_png(600, 600), 300
    server = psutil.Process(hard_server.proc.pid)

    async def slow_reader(stop: asyncio.Event) -> None:
        # max_queue=1 and a tiny receive buffer: websockets stops reading the socket, TCP pushes back.
        async with Client.connect(hard_server.ws_url, max_queue=1) as client:
            client.ws.transport.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            await client.send_image(big, 1, PHOTO)
            await client.expect("result")
            try:
                for _ in range(steps):
                    await client.send_json({"type": "replay", "mode": "step", "seq": 0})
                    await asyncio.sleep(0.005)
                await stop.wait()
            finally:
                client.ws.transport.abort()  # gone for good: the server must notice and free the connection

    async def steady(index: int) -> list:
        async with Client.connect(hard_server.ws_url) as client:
            frames = range(index * 100, index * 100 + 30)
            reader = asyncio.ensure_future(_drain(client, set(frames)))
            await _stream(client, frames, 10, PHOTOS[index])
            return await reader

    async def main() -> tuple[list[list], float]:
        stop = asyncio.Event()
        slow = asyncio.ensure_future(slow_reader(stop))
        results = await asyncio.gather(steady(0), steady(2))
        grown = server.memory_info().rss - rss_before
        stop.set()
        await slow
        return list(results), grown

    baseline = metrics(hard_server)
    rss_before = server.memory_info().rss
    per_client, grown = asyncio.run(main())
    for messages in per_client:
        outcome = answered_frames(messages)
        assert set(outcome.values()) <= {"result", "skipped"} and list(outcome.values()).count("result") >= 5
    assert grown < 100 * 2**20, f"the server grew by {grown / 2**20:.0f} MB for a client that does not read"
    assert wait_until(lambda: metrics(hard_server)["digits_connections"] <= baseline["digits_connections"])


def test_sigterm_under_load_answers_what_is_in_flight_then_closes_1001() -> None:
    server = Server()
    try:
        async def client(index: int, sent: asyncio.Event) -> tuple[list, int | None]:
            async with Client.connect(server.ws_url) as client:
                for frame in range(6):
                    await client.send_image(PHOTOS[(index + frame) % 4], frame, PHOTO)
                await client.ping()  # the server has read every photo: they are in flight
                sent.set()
                close_code = await client.close_code()
                return [m for _, m in client.received], close_code

        async def main() -> list[tuple[list, int | None]]:
            ready = [asyncio.Event() for _ in range(3)]
            clients = asyncio.gather(*(client(i, ready[i]) for i in range(3)))
            await asyncio.gather(*(event.wait() for event in ready))
            server.proc.send_signal(signal.SIGTERM)
            return await clients

        per_client = asyncio.run(main())
        code = server.proc.wait(60)
    finally:
        log = server.stop()
    for messages, close_code in per_client:
        assert close_code == 1001
        assert answered_frames(messages) == dict.fromkeys(range(6), "result")
    assert code == 0 and "Traceback" not in log, log[-3000:]
