"""Hypothesis fuzzing through the real server: generated and mutated images (truncated, corrupt chunks,
absurd header dimensions, animations, CMYK, 16-bit, alpha), random protocol message sequences and random
HTTP uploads. Every case gets a result or a clear error, never `internal`, and the connection (or server)
stays usable afterwards.

`make fuzz` runs the `long` profile (tests/hypothesis_profiles.py): over 10,000 cases.
"""

from __future__ import annotations

import asyncio
import http.client
import io
import json
import re
import struct
import zlib
from collections.abc import Iterator

import pytest
from conftest import SAMPLES, Server
from hypothesis import given
from hypothesis import strategies as st
from PIL import Image, ImageDraw
from wsclient import LIVE, PHOTO, Client, answered_frames, image_message

pytestmark = pytest.mark.timeout(3600)  # the long profile runs for minutes

GOOD = (SAMPLES / "6.jpg").read_bytes()
WAIT = 20.0  # seconds for any reply: a case that gets none fails instead of hanging
MAX_MESSAGE = 256 * 1024  # small, so that oversized messages are cheap to send
IMAGE_ERRORS = {"bad_image", "too_many_pixels"}
ANSWERS = {"result", "skipped", "rate_limited"} | IMAGE_ERRORS

# Modes each format can store: palette, 1-bit, alpha, 16-bit, CMYK. TIFF and PPM are real images the server
# does not take.
MODES = {
    "JPEG": ["L", "RGB", "CMYK"],
    "PNG": ["1", "L", "LA", "P", "RGB", "RGBA", "I;16"],
    "WEBP": ["L", "RGB", "RGBA"],
    "BMP": ["1", "L", "P", "RGB"],
    "GIF": ["L", "P"],
    "TIFF": ["L", "RGB"],
    "PPM": ["L", "RGB"],
}
ANIMATED = {"PNG", "WEBP", "GIF"}


@pytest.fixture(scope="module")
def fuzz_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    # Short grace: every case opens a session, and thousands of them should not linger for a minute.
    server = Server(max_message_bytes=MAX_MESSAGE, resume_grace_s=1)
    try:
        yield server
    finally:
        log = tmp_path_factory.mktemp("fuzz") / "server.log"
        log.write_text(server.stop())
        print(f"fuzz server log: {log}")  # shown with a failure: the server's side of the story


# Images


@st.composite
def pictures(draw: st.DrawFn) -> bytes:
    """A real image: random size, strokes, format and mode; maybe EXIF orientation, animation, alpha."""
    fmt = draw(st.sampled_from(sorted(MODES)))
    mode = draw(st.sampled_from(MODES[fmt]))
    size = (draw(st.integers(1, 160)), draw(st.integers(1, 160)))
    image = Image.new("L", size, draw(st.integers(0, 255)))
    pen = ImageDraw.Draw(image)
    for _ in range(draw(st.integers(0, 4))):
        ends = [(draw(st.integers(-10, 170)), draw(st.integers(-10, 170))) for _ in range(2)]
        pen.line(ends, fill=draw(st.integers(0, 255)), width=draw(st.integers(1, 16)))
    frames = [image.convert(mode)]
    if mode in ("LA", "RGBA"):
        frames[0].putalpha(image.point(lambda v: 255 - v) if draw(st.booleans()) else draw(st.integers(0, 255)))
    options: dict[str, object] = {}
    if mode == "P" and draw(st.booleans()):
        options["transparency"] = draw(st.integers(0, 255))
    if fmt in ("JPEG", "PNG", "WEBP") and draw(st.booleans()):
        exif = Image.Exif()
        exif[0x0112] = draw(st.integers(0, 9))  # 0 and 9 are invalid orientations
        options["exif"] = exif
    if fmt in ANIMATED and draw(st.booleans()):
        frames.append(image.point(lambda v: 255 - v).convert(frames[0].mode))
        options.update(save_all=True, append_images=frames[1:], duration=100)
    out = io.BytesIO()
    frames[0].save(out, fmt, **options)
    return out.getvalue()


def set_dimensions(data: bytes, width: int, height: int) -> bytes:
    """Write other dimensions into a PNG, GIF, BMP or JPEG header (PNG's CRC fixed, so only the size lies)."""
    if data.startswith(b"\x89PNG") and len(data) >= 33:
        body = data[12:16] + struct.pack(">II", width % 2**32, height % 2**32) + data[24:29]
        return data[:12] + body + struct.pack(">I", zlib.crc32(body)) + data[33:]
    if data.startswith(b"GIF") and len(data) >= 10:
        return data[:6] + struct.pack("<HH", width % 2**16, height % 2**16) + data[10:]
    if data.startswith(b"BM") and len(data) >= 26:
        return data[:18] + struct.pack("<ii", width % 2**31, height % 2**31 - 2**30) + data[26:]
    sof = re.search(rb"\xff[\xc0\xc1\xc2]", data)
    if sof and len(data) >= sof.start() + 9:
        at = sof.start() + 5
        return data[:at] + struct.pack(">HH", height % 2**16, width % 2**16) + data[at + 4:]
    return data


def png_chunks(data: bytes) -> list[tuple[int, int]]:
    """(start, end) of each chunk of a PNG, its length, type, data and CRC included."""
    chunks, at = [], 8
    while at + 12 <= len(data):
        end = at + 12 + int.from_bytes(data[at:at + 4], "big")
        chunks.append((at, min(end, len(data))))
        at = end
    return chunks


@st.composite
def mutated(draw: st.DrawFn, data: bytes) -> bytes:
    """`data` after up to three mutations: truncation, byte flips, inserted or deleted runs, header sizes,
    and for PNGs a dropped, duplicated or corrupted chunk."""
    for _ in range(draw(st.integers(0, 3))):
        n = len(data)
        at = draw(st.integers(0, n))
        op = draw(st.sampled_from(["truncate", "flip", "insert", "delete", "dimensions", "chunk"]))
        if op == "truncate":
            data = data[:at]
        elif op == "flip" and at < n:
            data = data[:at] + bytes([data[at] ^ draw(st.integers(1, 255))]) + data[at + 1:]
        elif op == "insert":
            data = data[:at] + draw(st.binary(min_size=1, max_size=64)) + data[at:]
        elif op == "delete":
            data = data[:at] + data[at + draw(st.integers(1, 64)):]
        elif op == "dimensions":
            huge = st.sampled_from([0, 1, 2**15, 2**16 - 1, 2**31 - 1, 2**32 - 1])
            data = set_dimensions(data, draw(huge | st.integers(0, 2**32 - 1)), draw(huge | st.integers(0, 2**32 - 1)))
        elif op == "chunk" and data.startswith(b"\x89PNG") and png_chunks(data):
            start, end = draw(st.sampled_from(png_chunks(data)))
            chunk = data[start:end]
            how = draw(st.sampled_from(["drop", "twice", "garble"]))
            if how == "garble" and len(chunk) > 12:
                chunk = chunk[:8] + draw(st.binary(min_size=1, max_size=len(chunk) - 8))
            data = data[:start] + {"drop": b"", "twice": chunk * 2, "garble": chunk}[how] + data[end:]
    return data


MAGIC = [b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n", b"GIF89a", b"BM", b"RIFF\x00\x00\x00\x00WEBPVP8 ", b"II*\x00", b""]
images = st.one_of(
    pictures().flatmap(mutated),
    st.builds(bytes.__add__, st.sampled_from(MAGIC), st.binary(max_size=600)),
)


async def _one_image(url: str, data: bytes, kind: int) -> tuple[dict, dict]:
    async with Client.connect(url) as client:
        await client.send_image(data, 1, kind)
        answer = await client.expect("result", "error", timeout=WAIT)
        await client.send_image(GOOD, 2, PHOTO)
        return answer, await client.expect("result", "error", timeout=WAIT)


@given(data=images, kind=st.sampled_from([LIVE, PHOTO]))
def test_any_image_gets_a_result_or_a_clear_error(fuzz_server: Server, data: bytes, kind: int) -> None:
    answer, after = asyncio.run(_one_image(fuzz_server.ws_url, data, kind))
    assert answer["frame"] == 1
    if answer["type"] == "error":
        assert answer["code"] in IMAGE_ERRORS and answer["message"], answer
    else:
        assert answer["number"] is None or answer["number"].isdigit()
        assert (answer["number"] is None) == bool(answer["reason"]) and answer["width"] * answer["height"] > 0
    assert after["type"] == "result" and after["frame"] == 2 and after["number"] == "6"


# Protocol messages

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**40), 2**40) | st.floats() | st.text(max_size=10),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=6,
)
controls = st.fixed_dictionaries(
    {"type": st.sampled_from(["replay", "replay_stop", "history", "ping", "dance", ""]) | json_values},
    optional={
        "mode": st.sampled_from(["realtime", "step", "fast"]) | json_values,
        "speed": st.sampled_from([0.1, 1, 20, 0, -1, 1e308]) | json_values,
        "seq": st.integers(-2, 8) | json_values,
        "from": st.integers(-2, 8) | json_values,
    },
)
payloads = st.sampled_from([GOOD, b"", GOOD[:500]]) | st.binary(max_size=200) | pictures()
messages = st.one_of(
    st.tuples(st.sampled_from([LIVE, PHOTO]) | st.integers(0, 255), payloads),  # an image message
    st.binary(max_size=4),  # shorter than the header
    controls.map(lambda message: json.dumps(message, allow_nan=True)),
    st.text(max_size=40),
)


def _is_bad_text(text: str) -> bool:
    """Text the protocol must refuse whatever its fields: not a JSON object, or no known type."""
    try:
        message = json.loads(text)
    except ValueError:
        return True
    known = ("replay", "replay_stop", "history", "ping")
    return not isinstance(message, dict) or not isinstance(message.get("type"), str) or message["type"] not in known


Replies = tuple[list[dict], dict[int, int], int, int | None]


async def _conversation(url: str, sequence: list, oversized: bool) -> Replies:
    """Send the sequence (image messages get unique frame ids), then a ping and a good photo, maybe then an
    oversized message; the JSON replies, the frames sent, how many messages were bad, the close code."""
    frames: dict[int, int] = {}  # frame id -> kind, for image messages with a header
    bad = 0  # messages that must get a bad_message error
    async with Client.connect(url) as client:
        for index, item in enumerate(sequence):
            if isinstance(item, tuple):
                kind, payload = item
                frames[1000 + index] = kind
                message: str | bytes = image_message(payload, 1000 + index, kind)
                bad += kind not in (LIVE, PHOTO)
            else:
                message = item
                bad += isinstance(item, bytes) or _is_bad_text(item)
            await client.ws.send(message)
        await client.send_json({"type": "ping"})
        await client.expect("pong", timeout=WAIT)
        await client.send_image(GOOD, 1, PHOTO)
        wanted = {*frames, 1}
        await client.until(lambda _: wanted <= answered_frames(_replies(client)).keys(), timeout=WAIT)
        close_code = None
        if oversized:  # after the accounting: the 1009 close ends the conversation
            await client.send_image(b"\0" * MAX_MESSAGE, 999, PHOTO)
            close_code = await client.close_code(timeout=WAIT)
        return _replies(client), frames, bad, close_code


def _replies(client: Client) -> list[dict]:
    """Every JSON message the client has received, whichever call read it."""
    return [m for _, m in client.received if isinstance(m, dict)]


@given(sequence=st.lists(messages, max_size=12), oversized=st.integers(0, 9).map(lambda n: n == 0))
def test_any_message_sequence_is_answered_and_the_connection_stays_usable(
    fuzz_server: Server, sequence: list, oversized: bool
) -> None:
    replies, frames, bad, close_code = asyncio.run(_conversation(fuzz_server.ws_url, sequence, oversized))
    errors = [m for m in replies if m["type"] == "error"]
    assert not [e for e in errors if e["code"] == "internal"], errors
    assert all(e["message"] for e in errors)
    outcome = answered_frames(replies)
    for frame, kind in frames.items():
        expected = ANSWERS if kind in (LIVE, PHOTO) else {"bad_message"}
        assert outcome.get(frame) in expected, (frame, kind, outcome.get(frame))
    assert sum(e["code"] == "bad_message" for e in errors) >= bad
    assert outcome[1] == "result"
    if oversized:
        assert close_code == 1009 and errors[-1]["code"] == "too_large" and errors[-1]["frame"] == 999


# HTTP uploads


def multipart(boundary: str, field: str, data: bytes) -> bytes:
    head = f'--{boundary}\r\nContent-Disposition: form-data; name="{field}"; filename="x"\r\n\r\n'
    return head.encode() + data + f"\r\n--{boundary}--\r\n".encode()


RAW_TYPES = ["image/jpeg", "application/octet-stream", "application/json", "text/plain", ""]


@st.composite
def uploads(draw: st.DrawFn) -> tuple[str, bytes]:
    """(Content-Type, body): a raw image under any type, or a multipart form, right or wrong, maybe cut short."""
    data = draw(images)
    if draw(st.booleans()):
        return draw(st.sampled_from(RAW_TYPES)), data
    boundary = draw(st.sampled_from(["b", "----digits", "x" * 70]))
    declared = draw(st.sampled_from([boundary, "other", ""]))
    body = multipart(boundary, draw(st.sampled_from(["image", "file", ""])), data)
    return f"multipart/form-data; boundary={declared}", body[:draw(st.integers(0, len(body)))]


@given(upload=uploads())
def test_any_upload_gets_json_with_a_result_or_a_client_error(fuzz_server: Server, upload: tuple[str, bytes]) -> None:
    content_type, body = upload
    connection = http.client.HTTPConnection("127.0.0.1", fuzz_server.port, timeout=60)
    try:
        connection.request("POST", "/api/recognize", body, {"Content-Type": content_type} if content_type else {})
        response = connection.getresponse()
        answer = json.loads(response.read())
    finally:
        connection.close()
    assert response.status in (200, 400, 413, 415), (response.status, answer)
    if response.status == 200:
        assert {"number", "reason", "digits", "width", "height", "timings"} <= answer.keys()
    else:
        assert isinstance(answer["error"], str) and answer["error"] and "Traceback" not in answer["error"]
