"""The server with default settings, through real WebSocket and HTTP clients: streaming, photos, replay,
sessions, bad messages, the HTTP API and static files."""

from __future__ import annotations

import asyncio
import http.client
import json
import urllib.request

import pytest
import websockets
from conftest import SAMPLES, Server, running_server, sample_label
from wsclient import LIVE, PHOTO, SLIDE, Client, answered_frames, refusal_code, split_binary

SAMPLE_FILES = sorted(SAMPLES.iterdir())
IMAGES = {path.name: path.read_bytes() for path in SAMPLE_FILES}
SMALL = IMAGES["6.jpg"]


def results(messages: list) -> list[dict]:
    return [m for m in messages if isinstance(m, dict) and m["type"] == "result"]


def test_hello_announces_protocol_and_limits(server: Server) -> None:
    async def main() -> dict:
        async with Client.connect(server.ws_url) as client:
            return client.hello

    hello = asyncio.run(main())
    assert hello["protocol"] == 1 and hello["resumed"] is False and hello["history"] == 0
    assert len(hello["session"]) >= 16
    assert hello["limits"] == {"max_message_bytes": 8 * 2**20, "max_pixels": 40_000_000, "max_fps": 30.0,
                               "history_frames": 120, "history_photos": 30, "history_bytes": 16 * 2**20}


def test_compression_is_declined(server: Server) -> None:
    """Deflating JPEGs on the event loop stalls every client; the server must turn down the offer."""

    async def main() -> str | None:
        async with websockets.connect(server.ws_url, compression="deflate") as ws:
            return ws.response.headers.get("Sec-WebSocket-Extensions")

    assert asyncio.run(main()) is None


def test_live_stream_is_answered_in_order_with_the_digits(server: Server) -> None:
    async def main() -> list[dict]:
        async with Client.connect(server.ws_url) as client:
            answers = []
            for frame, path in enumerate(SAMPLE_FILES):
                await client.send_image(path.read_bytes(), frame)
                answers.append(await client.expect("result", "error"))
            return answers

    answers = asyncio.run(main())
    assert [a["type"] for a in answers] == ["result"] * len(SAMPLE_FILES)
    assert [a["frame"] for a in answers] == list(range(len(SAMPLE_FILES)))
    assert [a["seq"] for a in answers] == list(range(len(SAMPLE_FILES)))
    read = [a["number"] for a in answers]
    labels = [sample_label(path) or None for path in SAMPLE_FILES]  # no label: a page without digits
    correct = sum(r == label for r, label in zip(read, labels, strict=True))
    assert correct >= len(labels) - 2, list(zip(labels, read, strict=True))
    for answer in answers:
        assert answer["kind"] == "live" and answer["batch_size"] >= 1
        assert set(answer["timings"]) == {"queue_ms", "decode_ms", "preprocess_ms", "inference_ms", "total_ms"}
        assert answer["timings"]["total_ms"] >= answer["timings"]["queue_ms"]
        for digit in answer["digits"]:
            x, y, w, h = digit["box"]
            assert 0 <= x < x + w <= answer["width"] and 0 <= y < y + h <= answer["height"]
            assert len(digit["top3"]) == 3 and digit["top3"][0][0] == digit["value"]


def test_photos_are_all_answered_with_their_frame_ids(server: Server) -> None:
    async def main() -> list:
        async with Client.connect(server.ws_url) as client:
            for frame, path in enumerate(SAMPLE_FILES, start=100):
                await client.send_image(path.read_bytes(), frame, PHOTO)
            return await client.until(lambda ms: len(answered_frames(ms)) == len(SAMPLE_FILES))

    messages = asyncio.run(main())
    assert set(answered_frames(messages).values()) == {"result"}
    answers = {r["frame"]: r for r in results(messages)}
    assert sorted(answers) == list(range(100, 100 + len(SAMPLE_FILES)))
    assert all(r["kind"] == "photo" for r in answers.values())
    assert not [m for m in messages if isinstance(m, dict) and m["type"] == "skipped"]
    assert answers[100 + SAMPLE_FILES.index(SAMPLES / "4.jpg")]["number"] == "4"


def test_the_keras_backend_serves_every_sample_as_litert_does(server: Server) -> None:
    """DIGITS_BACKEND=keras runs the .keras model in the same batched inference thread: the same readings."""
    async def read_samples(url: str) -> dict[int, dict]:
        async with Client.connect(url) as client:
            for frame, path in enumerate(SAMPLE_FILES):
                await client.send_image(path.read_bytes(), frame, PHOTO)
            messages = await client.until(lambda ms: len(answered_frames(ms)) == len(SAMPLE_FILES))
        return {r["frame"]: r for r in results(messages)}

    with running_server(backend="keras") as keras_server:
        on_keras = asyncio.run(read_samples(keras_server.ws_url))
    on_litert = asyncio.run(read_samples(server.ws_url))

    assert [on_keras[i]["number"] for i in range(len(SAMPLE_FILES))] == [sample_label(p) or None for p in SAMPLE_FILES]
    for frame, answer in on_keras.items():
        assert [d["box"] for d in answer["digits"]] == [d["box"] for d in on_litert[frame]["digits"]]


def test_the_v3_engine_is_served_when_asked(server: Server) -> None:
    """DIGITS_ENGINE=v3: the learned ink map and its line reader read the photos over the WebSocket, with the same
    message format as the rules (docs/protocol.md)."""
    async def read(url: str, names: list[str]) -> list[dict]:
        async with Client.connect(url) as client:
            for frame, name in enumerate(names):
                await client.send_image(IMAGES[name], frame, PHOTO)
            messages = await client.until(lambda ms: len(answered_frames(ms)) == len(names))
        return sorted(results(messages), key=lambda r: r["frame"])

    names = ["407__multi.jpg", "blank__page.jpg"]
    with running_server(engine="v3") as v3_server:
        on_v3 = asyncio.run(read(v3_server.ws_url, names))
    on_rules = asyncio.run(read(server.ws_url, names))
    assert [r["number"] for r in on_v3] == ["407", None] and on_v3[1]["reason"]
    assert [set(r) for r in on_v3] == [set(r) for r in on_rules]
    assert [set(d) for d in on_v3[0]["digits"]] == [set(d) for d in on_rules[0]["digits"]]


def test_by_default_the_history_keeps_a_live_frame_when_its_reading_changes_and_every_photo() -> None:
    """A camera's repeats of one reading are answered but not kept (seq null), a new reading is kept once
    history_live_gap_s has passed, the same reading again after history_live_every_s; photos always."""
    async def main() -> tuple[list, dict]:
        sent = [(SMALL, LIVE, 0), (SMALL, LIVE, 0), (IMAGES["4.jpg"], LIVE, 0.3), (SMALL, PHOTO, 0),
                (IMAGES["4.jpg"], LIVE, 0.1), (IMAGES["4.jpg"], LIVE, 2.1)]
        with running_server() as defaults:
            async with Client.connect(defaults.ws_url) as client:
                answers = []
                for frame, (data, kind, pause) in enumerate(sent):
                    await asyncio.sleep(pause)
                    await client.send_image(data, frame, kind)
                    answers.append(await client.expect("result"))
                await client.send_json({"type": "history"})
                return answers, await client.expect("history")

    answers, history = asyncio.run(main())
    assert [a["number"] for a in answers] == ["6", "6", "4", "6", "4", "4"]
    assert [a["seq"] for a in answers] == [0, None, 1, 2, None, 3]
    assert [(f["seq"], f["frame"], f["kind"]) for f in history["frames"]] == [(0, 0, "live"), (1, 2, "live"),
                                                                             (2, 3, "photo"), (3, 5, "live")]


def test_many_clients_each_get_their_own_results(server: Server) -> None:
    chosen = ["2.jpg", "4.jpg", "5.jpg", "7.jpg", "8.1.jpg", "9.2.jpg"]

    async def one(name: str, index: int) -> tuple[str, list[dict]]:
        async with Client.connect(server.ws_url) as client:
            frames = [index * 1000 + n for n in range(3)]
            for frame in frames:
                await client.send_image(IMAGES[name], frame, PHOTO)
            messages = await client.until(lambda ms: len(results(ms)) == len(frames))
            return name, results(messages)

    async def main() -> list[tuple[str, list[dict]]]:
        return await asyncio.gather(*(one(name, i) for i, name in enumerate(chosen)))

    for index, (name, answers) in enumerate(asyncio.run(main())):
        assert sorted(a["frame"] for a in answers) == [index * 1000 + n for n in range(3)]
        assert {a["number"] for a in answers} == {sample_label(SAMPLES / name)}


def test_fast_sender_sees_skips_and_the_newest_frame_answered(server: Server) -> None:
    count = 25  # within one second's burst of max_fps=30, so nothing is rate limited

    async def main() -> list:
        async with Client.connect(server.ws_url) as client:
            for frame in range(count):
                await client.send_image(IMAGES["3.jpg"], frame)
            return await client.until(lambda ms: len(answered_frames(ms)) == count)

    messages = asyncio.run(main())
    outcome = answered_frames(messages)
    assert set(outcome.values()) <= {"result", "skipped"}
    assert outcome[count - 1] == "result"  # the newest frame is never skipped
    assert list(outcome.values()).count("skipped") >= count // 2
    answered = [r["frame"] for r in results(messages)]
    assert answered == sorted(answered)  # results come in the order sent


def _record(client: Client, spacing: list[float]) -> asyncio.Future:
    async def main() -> None:
        for frame, pause in enumerate(spacing):
            await asyncio.sleep(pause)
            await client.send_image(SMALL, frame, PHOTO)
            await client.expect("result")

    return asyncio.ensure_future(main())


async def _slides(client: Client) -> list[tuple[float, dict, bytes]]:
    """(arrival time, slide, image bytes) until replay_end."""
    slides = []
    while True:
        message = await client.recv()
        if isinstance(message, dict) and message["type"] == "replay_end":
            assert message["count"] == len(slides)
            return slides
        if isinstance(message, dict) and message["type"] == "slide":
            image = await client.recv()
            kind, seq, data = split_binary(image)
            assert (kind, seq) == (SLIDE, message["seq"])
            slides.append((client.received[-1][0], message, data))


def test_realtime_replay_keeps_order_and_spacing(server: Server) -> None:
    async def main() -> list[tuple[float, dict, bytes]]:
        async with Client.connect(server.ws_url) as client:
            await _record(client, [0, 0.2, 1.2])
            await client.send_json({"type": "replay", "mode": "realtime", "speed": 1.0})
            return await _slides(client)

    slides = asyncio.run(main())
    assert [s["seq"] for _, s, _ in slides] == [0, 1, 2]
    assert [s["index"] for _, s, _ in slides] == [0, 1, 2] and {s["count"] for _, s, _ in slides} == {3}
    assert all(data == SMALL for _, _, data in slides)
    recorded = [s["t"] for _, s, _ in slides]
    played = [t for t, _, _ in slides]
    assert recorded == sorted(recorded) and played == sorted(played)
    # The long pause stays longer than the short one (loose: the machine is shared).
    assert recorded[2] - recorded[1] > 2 * (recorded[1] - recorded[0])
    assert played[2] - played[1] > played[1] - played[0]


def test_step_replay_sends_exactly_one_slide_and_not_found_for_unknown_seqs(server: Server) -> None:
    async def main() -> tuple[dict, bytes, dict, dict]:
        async with Client.connect(server.ws_url) as client:
            await _record(client, [0, 0, 0])
            await client.send_json({"type": "replay", "mode": "step", "seq": 1})
            slide = await client.expect("slide")
            image = await client.recv()
            await client.send_json({"type": "replay", "mode": "step", "seq": 99})
            missing = await client.expect("error")
            await client.send_json({"type": "history"})
            return slide, image, missing, await client.expect("history")

    slide, image, missing, history = asyncio.run(main())
    assert (slide["seq"], slide["frame"], slide["index"], slide["count"]) == (1, 1, 1, 3)
    assert slide["result"]["number"] == "6" and "timings" not in slide["result"]
    assert split_binary(image) == (SLIDE, 1, SMALL)
    assert missing["code"] == "not_found" and missing["frame"] is None
    assert [f["seq"] for f in history["frames"]] == [0, 1, 2]
    assert history["dropped"] == 0 and history["bytes"] == 3 * len(SMALL)
    assert history["frames"][0] == {"seq": 0, "frame": 0, "kind": "photo", "t": history["frames"][0]["t"],
                                    "number": "6", "bytes": len(SMALL)}


def test_replay_stop_ends_a_slow_replay_while_live_recognition_goes_on(server: Server) -> None:
    async def main() -> tuple[list, dict, dict]:
        async with Client.connect(server.ws_url) as client:
            await _record(client, [0, 0.5])
            await client.send_json({"type": "replay", "mode": "realtime", "speed": 0.1})  # 5 s between slides
            first = await client.expect("slide")
            await client.send_image(IMAGES["4.jpg"], 7)
            live = await client.expect("result")
            await client.send_json({"type": "replay_stop"})
            end = await client.expect("replay_end")
            return [first], live, end

    slides, live, end = asyncio.run(main())
    assert slides[0]["seq"] == 0
    assert live["frame"] == 7 and live["seq"] == 2
    assert end == {"type": "replay_end", "count": 1}


def test_reconnect_with_the_token_restores_the_history(server: Server) -> None:
    async def main() -> tuple[dict, dict, dict]:
        async with Client.connect(server.ws_url) as client:
            await _record(client, [0, 0])
            token = client.session
        async with Client.connect(server.ws_url, session=token) as client:
            resumed = client.hello
            await client.send_json({"type": "history"})
            history = await client.expect("history")
        async with Client.connect(server.ws_url, session="no-such-token") as client:
            return resumed, history, client.hello

    resumed, history, fresh = asyncio.run(main())
    assert resumed["resumed"] is True and resumed["history"] == 2
    assert [f["seq"] for f in history["frames"]] == [0, 1]
    assert fresh["resumed"] is False and fresh["history"] == 0 and fresh["session"] != resumed["session"]


@pytest.mark.parametrize(
    ("message", "code"),
    [
        ("not json", "bad_message"),
        ('["a list"]', "bad_message"),
        ('{"type": "dance"}', "bad_message"),
        ('{"type": "replay", "mode": "realtime", "speed": 500}', "bad_message"),
        ('{"type": "replay", "mode": "step"}', "bad_message"),
        ('{"type": "ping", "padding": "' + "x" * 5000 + '"}', "bad_message"),
        (b"\x01\x00\x00", "bad_message"),
        (b"\x07\x00\x00\x00\x05" + SMALL, "bad_message"),
        (b"\x01\x00\x00\x00\x05", "bad_image"),
        (b"\x01\x00\x00\x00\x05garbage, not an image", "bad_image"),
        (b"\x02\x00\x00\x00\x05" + SMALL[: len(SMALL) // 3], "bad_image"),
    ],
)
def test_bad_messages_get_an_error_and_the_connection_stays_usable(server: Server, message: str | bytes,
                                                                   code: str) -> None:
    async def main() -> tuple[dict, dict]:
        async with Client.connect(server.ws_url) as client:
            await client.ws.send(message)
            error = await client.expect("error")
            await client.send_image(SMALL, 9)
            return error, await client.expect("result")

    error, result = asyncio.run(main())
    assert error["code"] == code and error["message"]
    if isinstance(message, bytes) and len(message) >= 5 and message[0] in (LIVE, PHOTO):
        assert error["frame"] == 5
    assert result["frame"] == 9


def test_origin_check(server: Server) -> None:
    async def main() -> tuple[dict, int | None, int | None]:
        async with Client.connect(server.ws_url, origin=server.url) as client:
            same_host = client.hello
        return (same_host, await refusal_code(server.ws_url, origin="http://evil.example"),
                await refusal_code(server.ws_url, origin="http://127.0.0.1:1"))

    same_host, foreign, other_port = asyncio.run(main())
    assert same_host["type"] == "hello"
    assert foreign == other_port == 1008


def _post(server: Server, body: bytes, content_type: str) -> tuple[int, dict, http.client.HTTPMessage]:
    request = urllib.request.Request(server.url + "/api/recognize", data=body, headers={"Content-Type": content_type})
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, json.loads(response.read()), response.headers
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read()), error.headers


def test_http_recognize_raw_and_multipart(server: Server) -> None:
    status, raw, headers = _post(server, IMAGES["4.jpg"], "image/jpeg")
    assert status == 200 and raw["number"] == "4" and raw["digits"][0]["value"] == 4
    assert {"width", "height", "reason", "timings"} <= raw.keys()
    assert headers["X-Content-Type-Options"] == "nosniff"
    boundary = "digitsboundary"
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"image\"; filename=\"7.jpg\"\r\n"
            f"Content-Type: image/jpeg\r\n\r\n").encode() + IMAGES["7.jpg"] + f"\r\n--{boundary}--\r\n".encode()
    status, multipart, _ = _post(server, body, f"multipart/form-data; boundary={boundary}")
    assert status == 200 and multipart["number"] == "7"


@pytest.mark.parametrize(
    ("body", "status"),
    [(b"", 400), (b"plain text, not an image", 415), (SMALL[:100], 415)],
)
def test_http_recognize_errors(server: Server, body: bytes, status: int) -> None:
    got, answer, _ = _post(server, body, "application/octet-stream")
    assert got == status and answer["error"] and "Traceback" not in answer["error"]


def test_health_metrics_page_and_headers(server: Server) -> None:
    with urllib.request.urlopen(server.url + "/healthz") as response:
        assert json.loads(response.read()) == {"status": "ok"}
        assert "script-src 'self'" in response.headers["Content-Security-Policy"]
        assert response.headers["Referrer-Policy"] == "no-referrer"
    with urllib.request.urlopen(server.url + "/") as response:
        assert response.headers["Content-Type"].startswith("text/html") and b"<html" in response.read().lower()
    with urllib.request.urlopen(server.url + "/metrics") as response:
        text = response.read().decode()
    assert response.headers["Content-Type"].startswith("text/plain")
    for name in ("digits_connections", "digits_frames_received_total", "digits_frames_answered_total",
                 "digits_frames_skipped_total", "digits_errors_total", "digits_batch_size_bucket",
                 "digits_queue_wait_seconds_bucket", "digits_inference_seconds_count"):
        assert name in text
    batches = next(line for line in text.splitlines() if line.startswith("digits_batch_size_count"))
    assert int(batches.split()[1]) >= 1


@pytest.mark.parametrize("path", ["/", "/app.js"])
def test_page_files_are_revalidated_not_kept_stale(server: Server, path: str) -> None:
    with urllib.request.urlopen(server.url + path) as response:
        assert response.headers["Cache-Control"] == "no-cache" and "Expires" not in response.headers
        etag = response.headers["ETag"]
        assert etag and response.headers["Last-Modified"]
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    connection.request("GET", path, headers={"If-None-Match": etag})
    response = connection.getresponse()
    body = response.read()
    connection.close()
    assert response.status == 304 and body == b""


@pytest.mark.parametrize(
    "path",
    ["/../server/app.py", "/%2e%2e/server/app.py", "/..%2fserver%2fapp.py", "/%2e%2e%2f%2e%2e%2fetc%2fpasswd",
     "//etc/passwd", "/%2fetc%2fpasswd", "/web/../../server/config.py", "/nonexistent.js", "/.", "/%00"],
)
def test_nothing_outside_web_is_served(server: Server, path: str) -> None:
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    connection.request("GET", path)  # sent as is, no client-side normalisation
    response = connection.getresponse()
    body = response.read()
    connection.close()
    assert response.status in (400, 404), (path, response.status)
    assert b"import" not in body and b"root:" not in body
