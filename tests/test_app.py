"""The app in process, through Quart's test client (pytest-asyncio): the committed model, no network, fast.

The same protocol the real-server tests check end to end; here, its state changes one message at a time.
"""

from __future__ import annotations

import json
import struct
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio
from conftest import SAMPLES
from quart import Quart
from services import free_port

from server import protocol
from server.app import create_app
from server.config import Config


@pytest_asyncio.fixture
async def app() -> AsyncIterator[Quart]:
    app = create_app(Config(resume_grace_s=30))
    async with app.test_app():  # runs `while_serving`: the model is loaded, the state built
        yield app


def image(data: bytes, frame: int, kind: int = protocol.KIND_PHOTO) -> bytes:
    return struct.pack(">BI", kind, frame) + data


async def until(ws, kind: str) -> dict:  # noqa: ANN001 (Quart's test websocket)
    while (message := await ws.receive()) and not (isinstance(message, str) and json.loads(message)["type"] == kind):
        pass
    return json.loads(message)


@pytest.mark.asyncio
async def test_hello_then_a_photo_is_read_and_kept_in_the_history(app: Quart) -> None:
    async with app.test_client().websocket("/ws") as ws:
        hello = json.loads(await ws.receive())
        await ws.send(image((SAMPLES / "407__multi.jpg").read_bytes(), 7))
        result = await until(ws, "result")
        await ws.send(json.dumps({"type": "history"}))
        listing = await until(ws, "history")

    assert hello["type"] == "hello" and hello["protocol"] == protocol.VERSION and hello["resumed"] is False
    assert (result["frame"], result["number"], result["seq"]) == (7, "407", 0)
    assert [(entry["seq"], entry["frame"], entry["number"]) for entry in listing["frames"]] == [(0, 7, "407")]


@pytest.mark.asyncio
async def test_a_bad_message_is_answered_and_the_socket_goes_on(app: Quart) -> None:
    async with app.test_client().websocket("/ws") as ws:
        await ws.receive()  # hello
        await ws.send("{not json")
        error = await until(ws, "error")
        await ws.send(json.dumps({"type": "ping"}))
        pong = await until(ws, "pong")

    assert error["code"] == "bad_message" and pong == {"type": "pong"}


@pytest.mark.asyncio
async def test_a_resume_with_the_token_gets_the_session_and_its_history_back(app: Quart) -> None:
    client = app.test_client()
    async with client.websocket("/ws") as ws:
        token = json.loads(await ws.receive())["session"]
        await ws.send(image((SAMPLES / "4.jpg").read_bytes(), 1))
        await until(ws, "result")
    async with client.websocket(f"/ws?session={token}") as ws:
        hello = json.loads(await ws.receive())
    async with client.websocket("/ws?session=unknown") as ws:
        fresh = json.loads(await ws.receive())

    assert (hello["session"], hello["resumed"], hello["history"]) == (token, True, 1)
    assert fresh["resumed"] is False and fresh["session"] != token


@pytest.mark.asyncio
async def test_http_api_and_metrics(app: Quart) -> None:
    client = app.test_client()
    answer = await client.post("/api/recognize", data=(SAMPLES / "7.jpg").read_bytes())
    metrics = await (await client.get("/metrics")).get_data(as_text=True)

    assert answer.status_code == 200 and (await answer.get_json())["number"] == "7"
    assert 'digits_frames_answered_total{kind="http"} 1.0' in metrics.splitlines()


@pytest.mark.asyncio
async def test_without_redis_recognition_goes_on_and_the_client_is_told_its_history_is_kept_here() -> None:
    unreachable = create_app(Config(redis_url=f"redis://127.0.0.1:{free_port()}/0", redis_timeout_s=0.2))
    async with unreachable.test_app(), unreachable.test_client().websocket("/ws") as ws:
        hello = json.loads(await ws.receive())
        notice = json.loads(await ws.receive())
        await ws.send(image((SAMPLES / "7.jpg").read_bytes(), 3))
        result = await until(ws, "result")
        await ws.send(json.dumps({"type": "history"}))
        listing = await until(ws, "history")

    assert hello["type"] == "hello" and hello["resumed"] is False
    assert notice == protocol.history_store(shared=False) and notice["shared"] is False
    assert (result["number"], result["seq"]) == ("7", 0)
    assert [entry["frame"] for entry in listing["frames"]] == [3]


@pytest.mark.asyncio
async def test_every_answer_names_its_worker(app: Quart) -> None:
    response = await app.test_client().get("/healthz")
    metrics = await (await app.test_client().get("/metrics")).get_data(as_text=True)

    worker = response.headers["X-Worker"]
    assert worker.endswith(":5000") and f'digits_worker{{worker="{worker}"}} 1.0' in metrics.splitlines()
