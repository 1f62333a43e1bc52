"""Security checks against the real server: nothing outside web/ is served (encoded, double-encoded,
backslash and symlink traversal), the WebSocket Origin rule, every limit answers with its own error
(a real decompression bomb included), no stack traces in any response, security headers everywhere.

One server for the module, serving a temp copy of web/ with a secret planted beside it and symlinks out.
"""

from __future__ import annotations

import asyncio
import http.client
import json
import os
import shutil
import struct
import zlib
from collections.abc import Iterator

import pytest
import websockets
from conftest import ROOT, SAMPLES, Server, running_server
from wsclient import LIVE, PHOTO, Client, answered_frames, refusal_code

SECRET = "SECRET-OUTSIDE-WEB"
ALLOWED = "https://allowed.example"
LIMITS = {"max_message_bytes": 1_000_000, "max_pixels": 500_000, "max_fps": 5, "max_connections": 4,
          "allowed_origins": ALLOWED}
SMALL = (SAMPLES / "6.jpg").read_bytes()  # 374x344
OVER_PIXELS = (SAMPLES / "1.jpg").read_bytes()  # 846x712: over max_pixels
LEAKS = (SECRET.encode(), b"def create_app", b"root:x:0:0", b"Traceback", b'File "', b"site-packages")


@pytest.fixture(scope="module")
def secure_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    root = tmp_path_factory.mktemp("secure")
    web = root / "web"
    shutil.copytree(ROOT / "web", web)
    (root / "secret.txt").write_text(SECRET)
    os.symlink(root / "secret.txt", web / "leak.txt")
    os.symlink(root, web / "up")
    with running_server(**LIMITS, web_dir=web) as server:
        yield server


def request(server: Server, method: str, path: str, body: bytes | None = None,
            headers: dict[str, str] | None = None) -> tuple[int, http.client.HTTPMessage, bytes]:
    """A raw HTTP request: the path goes out exactly as written, no client-side normalisation."""
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=60)
    try:
        connection.request(method, path, body, headers or {})
        response = connection.getresponse()
        return response.status, response.headers, response.read()
    finally:
        connection.close()


# Static files

TRAVERSALS = [
    "/../secret.txt", "/%2e%2e/secret.txt", "/%2E%2E/secret.txt", "/.%2e/secret.txt", "/%2e%2e%2fsecret.txt",
    "/%252e%252e/secret.txt", "/%252e%252e%252fsecret.txt", "/..%252fsecret.txt",  # double-encoded
    "/..\\secret.txt", "/..%5csecret.txt", "/%5c..%5csecret.txt", "/..%255csecret.txt",  # backslashes
    "/%c0%ae%c0%ae/secret.txt", "/%e0%80%ae%e0%80%ae/secret.txt",  # overlong UTF-8 dots
    "/....//secret.txt", "/..;/secret.txt", "/./../secret.txt", "/index.html/../../secret.txt",
    "/leak.txt", "/up/secret.txt", "/up/web/../secret.txt", "/%75p/secret.txt",  # planted symlinks
    "//etc/passwd", "/%2fetc%2fpasswd", "/%2F%2Fetc%2Fpasswd", "/..%2f..%2f..%2f..%2fetc%2fpasswd",
    "/../../../../../../etc/passwd", "/secret.txt%00.js", "/..%00/secret.txt", "/file:%2f%2f%2fetc%2fpasswd",
    "/../server/app.py", "/%2e%2e/server/app.py", "/C:%5cWindows%5cwin.ini",
]


@pytest.mark.parametrize("path", TRAVERSALS)
def test_nothing_outside_the_web_dir_is_served(secure_server: Server, path: str) -> None:
    status, _, body = request(secure_server, "GET", path)
    assert status in (400, 404), (path, status)
    for leak in LEAKS:
        assert leak not in body, (path, leak)


def test_the_page_and_its_assets_are_served(secure_server: Server) -> None:
    status, headers, body = request(secure_server, "GET", "/")
    assert status == 200 and headers["Content-Type"].startswith("text/html") and b"<script" in body
    for script in ("/app.js", "/protocol.js"):
        status, headers, _ = request(secure_server, "GET", script)
        assert status == 200 and "javascript" in headers["Content-Type"], script


# Headers


def _directive(csp: str, name: str) -> str:
    """One CSP directive's sources; script-src falls back to default-src."""
    directives = {d.split()[0]: d for d in (part.strip() for part in csp.split(";")) if d}
    return directives.get(name) or directives.get("default-src", "")


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [("GET", "/", None), ("GET", "/app.js", None), ("GET", "/style.css", None), ("GET", "/nope.html", None),
     ("GET", "/healthz", None), ("GET", "/metrics", None), ("POST", "/api/recognize", b"not an image"),
     ("POST", "/api/recognize", SMALL), ("GET", "/api/recognize", None)],
)
def test_security_headers_on_every_response(secure_server: Server, method: str, path: str, body: bytes | None) -> None:
    _, headers, _ = request(secure_server, method, path, body)
    csp = headers["Content-Security-Policy"]
    script = _directive(csp, "script-src")
    assert "'self'" in script and "'unsafe-inline'" not in script and "'unsafe-eval'" not in script, csp
    assert "'unsafe-inline'" not in _directive(csp, "style-src"), csp
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert headers["Referrer-Policy"] in ("no-referrer", "same-origin", "strict-origin-when-cross-origin")


# Origin


def test_websocket_origin_rule(secure_server: Server) -> None:
    own = f"http://127.0.0.1:{secure_server.port}"
    allowed = [None, own, own.upper(), ALLOWED, ALLOWED.upper(), ALLOWED + "/"]
    refused = ["http://evil.example", "null", f"{own}.evil.example", "http://127.0.0.1:1", "http://localhost",
               f"http://user@127.0.0.1:{secure_server.port}", "https://allowed.example.evil", "http://allowed.example",
               "https://allowed.example:8443", "file://", "chrome-extension://abcdef", ""]

    async def main() -> tuple[list, list, dict]:
        ok = [await _origin_code(secure_server, origin) for origin in allowed]
        bad = [await _origin_code(secure_server, origin) for origin in refused]
        async with Client.connect(secure_server.ws_url, origin=own) as client:  # refusals took no places
            await client.send_image(SMALL, 1)
            return ok, bad, await client.expect("result")

    ok, bad, result = asyncio.run(main())
    assert ok == [None] * len(allowed)
    assert bad == [1008] * len(refused), dict(zip(refused, bad, strict=True))
    assert result["frame"] == 1


async def _origin_code(server: Server, origin: str | None) -> int | None:
    """The close code for a new socket with this Origin header sent verbatim (None: no header), or None if
    the server says hello."""
    async with websockets.connect(server.ws_url, additional_headers={} if origin is None else {"Origin": origin}) as ws:
        try:
            await asyncio.wait_for(ws.recv(), 30)
        except websockets.ConnectionClosed as closed:
            return closed.rcvd.code if closed.rcvd else None
    return None


# Limits


def _png_bomb(width: int, height: int) -> bytes:
    """A valid 1-bit PNG of width x height zeros: tens of kB that would decode into hundreds of MB."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    rows = zlib.compress(b"\0" * ((width + 7) // 8 + 1) * height, 9)
    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", rows) + chunk(b"IEND", b"")


def test_each_limit_answers_with_its_own_error(secure_server: Server) -> None:
    bomb = _png_bomb(20_000, 20_000)  # 400 M pixels in about 50 kB
    assert len(bomb) < LIMITS["max_message_bytes"]

    async def main() -> tuple[list, int | None, int | None]:
        async with Client.connect(secure_server.ws_url) as client:
            await client.send_image(bomb, 1, PHOTO)
            await client.send_image(OVER_PIXELS, 2, PHOTO)
            for frame in range(10, 25):  # 15 live frames at once: over max_fps=5
                await client.send_image(SMALL, frame, LIVE)
            frames = {1, 2, *range(10, 25)}
            await client.until(lambda _: frames <= answered_frames([m for _, m in client.received]).keys())
            await client.send_image(b"\0" * LIMITS["max_message_bytes"], 3, PHOTO)  # 5 bytes over with the header
            too_big = await client.close_code()
            messages = [m for _, m in client.received if isinstance(m, dict)]
        async with Client.connect(secure_server.ws_url), Client.connect(secure_server.ws_url), \
                Client.connect(secure_server.ws_url), Client.connect(secure_server.ws_url):
            too_many = await refusal_code(secure_server.ws_url)
        return messages, too_big, too_many

    messages, too_big, too_many = asyncio.run(main())
    errors = {m["frame"]: m for m in messages if m["type"] == "error"}
    assert errors[1]["code"] == "too_many_pixels" and "pixels" in errors[1]["message"]
    assert errors[2]["code"] == "too_many_pixels" and "500,000" in errors[2]["message"]
    live = answered_frames(messages)
    assert "rate_limited" in {live[f] for f in range(10, 25)} and "result" in {live[f] for f in range(10, 25)}
    assert errors[3]["code"] == "too_large" and str(LIMITS["max_message_bytes"]) in errors[3]["message"]
    assert too_big == 1009 and too_many == 1013


# No stack traces

BOUNDARY = "hardening"
ABUSE = [
    ("multipart, boundary mismatch", "POST", "/api/recognize", f"--other\r\n\r\n{SECRET}\r\n--other--\r\n".encode(),
     {"Content-Type": f"multipart/form-data; boundary={BOUNDARY}"}),
    ("multipart, cut short", "POST", "/api/recognize",
     f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="image"; filename="a.jpg"\r\n\r\n'.encode() + SMALL[:99],
     {"Content-Type": f"multipart/form-data; boundary={BOUNDARY}"}),
    ("multipart, no boundary", "POST", "/api/recognize", SMALL, {"Content-Type": "multipart/form-data"}),
    ("multipart, wrong field", "POST", "/api/recognize",
     f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="file"\r\n\r\n'.encode() + SMALL
     + f"\r\n--{BOUNDARY}--\r\n".encode(), {"Content-Type": f"multipart/form-data; boundary={BOUNDARY}"}),
    ("bad JSON", "POST", "/api/recognize", b'{"image": ', {"Content-Type": "application/json"}),
    ("form-urlencoded", "POST", "/api/recognize", b"image=%ZZ&&==",
     {"Content-Type": "application/x-www-form-urlencoded"}),
    ("huge upload", "POST", "/api/recognize", b"\xff" * (LIMITS["max_message_bytes"] + 1), {}),
    ("lying Content-Length", "POST", "/api/recognize", SMALL, {"Content-Length": str(2 * 10**9)}),
    ("wrong method", "PUT", "/api/recognize", SMALL, {}),
    ("DELETE the page", "DELETE", "/", None, {}),
    ("GET the API", "GET", "/api/recognize?image=../../etc/passwd", None, {}),
    ("header injection", "GET", "/%0d%0aSet-Cookie:%20x=1", None, {}),
    ("plain HTTP on the WebSocket", "GET", "/ws", None, {}),
    ("bad WebSocket version", "GET", "/ws", None, {"Upgrade": "websocket", "Connection": "Upgrade",
                                                   "Sec-WebSocket-Key": "x", "Sec-WebSocket-Version": "99"}),
]


@pytest.mark.parametrize(("name", "method", "path", "body", "headers"), ABUSE, ids=[a[0] for a in ABUSE])
def test_bad_requests_get_a_clean_error_and_no_stack_trace(secure_server: Server, name: str, method: str, path: str,
                                                          body: bytes | None, headers: dict[str, str]) -> None:
    try:
        status, response_headers, answer = request(secure_server, method, path, body, headers)
    except (ConnectionError, http.client.HTTPException):
        status, response_headers, answer = 0, {}, b""  # the server may hang up on a lying Content-Length
    assert status < 500, (name, status, answer[:300])
    for leak in LEAKS:
        assert leak not in answer, (name, leak)
    assert "set-cookie" not in {k.lower() for k in response_headers}
    if path.startswith("/api/") and method == "POST" and status:
        assert status in (400, 413, 415) and json.loads(answer)["error"], (name, status, answer[:300])
    assert request(secure_server, "GET", "/healthz")[0] == 200


def test_sessions_left_behind_are_capped(secure_server: Server) -> None:
    """Connect, fill the history, leave, again and again: at most max_connections sessions wait for their
    client (each holds up to history_bytes), the most recent ones."""
    leaves = 3 * LIMITS["max_connections"]

    async def main() -> tuple[list[str], dict, dict]:
        tokens = []
        for frame in range(leaves):
            async with Client.connect(secure_server.ws_url) as client:
                await client.send_image(SMALL, frame, PHOTO)
                await client.expect("result")
                tokens.append(client.session)
        await asyncio.sleep(0.5)  # the server notices the last close a moment later
        async with Client.connect(secure_server.ws_url, session=tokens[-1]) as latest:
            async with Client.connect(secure_server.ws_url, session=tokens[0]) as oldest:
                return tokens, latest.hello, oldest.hello

    _, latest, oldest = asyncio.run(main())
    assert latest["resumed"] is True and latest["history"] == 1
    assert oldest["resumed"] is False
    _, _, text = request(secure_server, "GET", "/metrics")
    sessions = next(line for line in text.decode().splitlines() if line.startswith("digits_sessions "))
    assert float(sessions.split()[1]) <= LIMITS["max_connections"] + 2  # the waiting ones, plus the two just opened
