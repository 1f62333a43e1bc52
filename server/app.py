"""The Quart app: its routes (the page, the WebSocket at /ws, the HTTP API), headers, errors, and its State,
built when it starts serving and taken down when it stops."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

from quart import Quart, Response
from werkzeug.exceptions import HTTPException

from . import engine
from .api import api
from .batcher import Batcher
from .config import Config
from .metrics import Metrics
from .pages import pages
from .socket_route import sockets
from .state import State, state, worker_name

SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' blob: data:; media-src 'self' blob:; "
    "connect-src 'self' ws: wss:; style-src 'self'; script-src 'self'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}

log = logging.getLogger("digits.app")


def create_app(config: Config) -> Quart:
    app = Quart(__name__, static_folder=None)
    app.config["MAX_CONTENT_LENGTH"] = config.max_message_bytes
    app.config["SEND_FILE_MAX_AGE_DEFAULT"] = None  # no Expires on the page's files: they are revalidated
    for blueprint in (api, sockets, pages):  # pages last: its catch-all path must not shadow the others
        app.register_blueprint(blueprint)

    @app.while_serving
    async def serving() -> AsyncIterator[None]:
        worker = worker_name(config)
        metrics = Metrics(worker)
        batcher = Batcher(engine.Engine.from_config(config), metrics, max_batch=config.max_batch,
                          batch_wait_ms=config.batch_wait_ms, threads=config.threads,
                          fault_marker=config.fault_marker.encode())
        batcher.start()
        watcher = asyncio.create_task(_watch_loop_lag(metrics))
        shared = State.build(config, worker, batcher, metrics)
        await shared.sessions.start()
        app.extensions["digits"] = shared
        yield
        watcher.cancel()
        await shared.sessions.stop()
        await batcher.close()
        log.info("stopped")

    @app.after_request
    async def security_headers(response: Response) -> Response:
        response.headers.update(SECURITY_HEADERS)
        response.headers["X-Worker"] = state().worker  # behind a balancer: which worker answered
        return response

    @app.errorhandler(HTTPException)
    async def http_error(error: HTTPException) -> tuple[dict[str, str], int]:
        return {"error": error.description or error.name}, error.code or 500

    @app.errorhandler(Exception)
    async def internal_error(error: Exception) -> tuple[dict[str, str], int]:
        log.exception("request failed", exc_info=error)
        return {"error": "internal server error"}, 500

    return app


async def _watch_loop_lag(metrics: Metrics, period: float = 0.25) -> None:
    """A starved event loop delays every socket; measure by how much a short sleep oversleeps."""
    loop = asyncio.get_running_loop()
    while True:
        start = loop.time()
        await asyncio.sleep(period)
        metrics.loop_lag.observe(max(0.0, loop.time() - start - period))
