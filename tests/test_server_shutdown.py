"""Several worker processes, and the graceful shutdown: on SIGTERM every frame in flight is answered,
then the sockets close with 1001."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import urllib.request

from conftest import SAMPLES, Server, running_server
from wsclient import PHOTO, Client, answered_frames

PHOTOS = [(SAMPLES / name).read_bytes() for name in ("1.jpg", "2.jpg", "3.jpg", "5.jpg")]


async def _photos_then_sigterm(server: Server, clients: int) -> list[tuple[dict[int, str], int | None]]:
    async with contextlib.AsyncExitStack() as stack:
        connected = [await stack.enter_async_context(Client.connect(server.ws_url)) for _ in range(clients)]
        for index, client in enumerate(connected):
            for n, data in enumerate(PHOTOS):
                await client.send_image(data, index * 100 + n, PHOTO)
        for client in connected:
            await client.ping()  # the server has read every photo; they are in flight now
        server.proc.send_signal(signal.SIGTERM)
        codes = [await client.close_code() for client in connected]
        return [(answered_frames([m for _, m in client.received]), code)
                for client, code in zip(connected, codes, strict=True)]


def test_two_workers_serve_and_drain_on_sigterm() -> None:
    with running_server(workers=2) as server:
        with urllib.request.urlopen(server.url + "/healthz") as response:
            assert response.status == 200
        outcomes = asyncio.run(_photos_then_sigterm(server, clients=3))
        assert server.proc.wait(30) == 0
        output = server.stop()
    for index, (answered, code) in enumerate(outcomes):
        assert answered == {index * 100 + n: "result" for n in range(len(PHOTOS))}
        assert code == 1001
    assert "Traceback" not in output
