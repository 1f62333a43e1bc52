"""The Quart app: the page and its assets, the WebSocket at /ws, the HTTP API, health and metrics."""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

from quart import Quart, Response, request, send_file, websocket
from werkzeug.exceptions import HTTPException

from . import engine, protocol
from .batcher import Batcher, EngineFailure
from .config import Config
from .connection import Connection
from .limits import origin_allowed, parse_origins
from .metrics import Metrics
from .sessions import SessionStore

SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' blob: data:; media-src 'self' blob:; "
    "connect-src 'self' ws: wss:; style-src 'self'; script-src 'self'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}

log = logging.getLogger("digits.app")


@dataclass
class State:
    """What the routes share within one worker process."""

    config: Config
    metrics: Metrics = field(default_factory=Metrics)
    batcher: Batcher | None = None
    sessions: SessionStore | None = None
    watcher: asyncio.Task[None] | None = None
    connections: set[Connection] = field(default_factory=set)
    http_in_flight: int = 0  # POST /api/recognize requests not yet answered
    closing: bool = False

    async def drain(self) -> None:
        """Stop taking connections, answer what is in flight, close every socket with 1001."""
        self.closing = True
        log.info("shutting down: answering what %d connections have in flight", len(self.connections))
        await asyncio.gather(*(c.finish(protocol.CLOSE_GOING_AWAY, "server shutting down")
                               for c in list(self.connections)), return_exceptions=True)


def create_app(config: Config) -> Quart:
    app = Quart(__name__, static_folder=None)
    app.config["MAX_CONTENT_LENGTH"] = config.max_message_bytes
    app.config["SEND_FILE_MAX_AGE_DEFAULT"] = None  # no Expires on the page's files: they are revalidated
    state = State(config)
    app.extensions["digits"] = state
    allowed_origins = parse_origins(config.allowed_origins)
    web = Path(config.web_dir).resolve()

    @app.before_serving
    async def load_model() -> None:
        classifier = engine.load_classifier(config.model_path, config.backend)
        state.batcher = Batcher(classifier, state.metrics, max_batch=config.max_batch,
                                batch_wait_ms=config.batch_wait_ms, threads=config.threads,
                                max_pixels=config.max_pixels, fault_marker=config.fault_marker.encode())
        state.batcher.start()
        state.watcher = asyncio.create_task(_watch_loop_lag(state.metrics))
        state.sessions = SessionStore(config.resume_grace_s, config.history_frames, config.history_bytes,
                                      max_detached=config.max_connections)

    @app.after_serving
    async def stop_batcher() -> None:
        if state.watcher is not None:
            state.watcher.cancel()
        if state.batcher is not None:
            await state.batcher.close()
        log.info("stopped")

    @app.after_request
    async def security_headers(response: Response) -> Response:
        response.headers.update(SECURITY_HEADERS)
        return response

    @app.errorhandler(HTTPException)
    async def http_error(error: HTTPException) -> tuple[dict[str, str], int]:
        return {"error": error.description or error.name}, error.code or 500

    @app.errorhandler(Exception)
    async def internal_error(error: Exception) -> tuple[dict[str, str], int]:
        log.exception("request failed", exc_info=error)
        return {"error": "internal server error"}, 500

    @app.get("/")
    async def index() -> Response | tuple[dict[str, str], int]:
        return await static_file("index.html")

    @app.get("/<path:path>")
    async def static_file(path: str) -> Response | tuple[dict[str, str], int]:
        target = _web_file(web, path)
        if target is None:
            return {"error": "not found"}, 404
        response = await send_file(target, conditional=True)  # conditional: If-None-Match gets a 304
        # Revalidate every time (a 304 is cheap): a timed cache would keep a stale page after an update.
        response.headers["Cache-Control"] = "no-cache"
        return response

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/metrics")
    async def metrics() -> Response:
        state.metrics.sessions.value = len(state.sessions) if state.sessions is not None else 0
        state.metrics.tasks.value = len(asyncio.all_tasks())
        return Response(state.metrics.render(), content_type="text/plain; version=0.0.4; charset=utf-8")

    @app.post("/api/recognize")
    async def api_recognize() -> tuple[dict[str, object], int]:
        # Each request holds its body (up to max_message_bytes) until answered: bound how many are in flight.
        if state.http_in_flight >= config.max_connections:
            return {"error": "too many requests in flight, try again later"}, 503
        state.http_in_flight += 1
        try:
            return await _recognize_upload(state)
        finally:
            state.http_in_flight -= 1

    @app.websocket("/ws")
    async def ws() -> None:
        await websocket.accept()
        refusal = _refusal(state, websocket.headers.get("Origin"), websocket.headers.get("Host"), allowed_origins)
        if refusal is not None:
            await websocket.close(*refusal)
            return
        session, resumed = state.sessions.open(websocket.args.get("session"))
        connection = Connection(websocket._get_current_object(), state, session)
        previous, session.owner = session.owner, connection
        state.connections.add(connection)
        state.metrics.connections.inc()
        try:
            if previous is not None:  # a takeover: the old socket's frames are answered there first
                await previous.finish(protocol.CLOSE_TAKEN_OVER, "session taken over by a newer connection")
            await connection.run(resumed)
        finally:
            state.connections.discard(connection)
            state.metrics.connections.dec()
            state.sessions.detach(session, connection)

    return app


async def _recognize_upload(state: State) -> tuple[dict[str, object], int]:
    """Answer POST /api/recognize: the image is the raw body or the multipart field "image"."""
    if request.mimetype == "multipart/form-data":
        upload = (await request.files).get("image")
        data = upload.read() if upload is not None else b""
    else:
        data = await request.get_data(cache=False)
    received = time.monotonic()  # once the whole body is in, as for a WebSocket message
    state.metrics.received.inc(kind="http")
    if not data:
        return {"error": "send an image as the request body or as the multipart form field \"image\""}, 400
    try:
        outcome = await state.batcher.recognize(data, received)
    except engine.ImageError as error:
        return {"error": error.message}, 413 if error.code == "too_many_pixels" else 415
    except EngineFailure as error:
        return {"error": str(error)}, 500
    state.metrics.answered.inc(kind="http")
    return {**outcome.result, "timings": outcome.timings_until_now(received)}, 200


async def _watch_loop_lag(metrics: Metrics, period: float = 0.25) -> None:
    """A starved event loop delays every socket; measure by how much a short sleep oversleeps."""
    loop = asyncio.get_running_loop()
    while True:
        start = loop.time()
        await asyncio.sleep(period)
        metrics.loop_lag.observe(max(0.0, loop.time() - start - period))


def _refusal(state: State, origin: str | None, host: str | None, allowed: frozenset[str]) -> tuple[int, str] | None:
    """Why a new WebSocket must be closed at once (close code and reason), or None to serve it."""
    if not origin_allowed(origin, host, allowed):
        return protocol.CLOSE_POLICY, f"origin {origin} is not allowed"
    if state.closing:
        return protocol.CLOSE_GOING_AWAY, "server shutting down"
    if len(state.connections) >= state.config.max_connections:
        return protocol.CLOSE_TRY_LATER, "too many connections, try again later"
    return None


def _web_file(web: Path, path: str) -> Path | None:
    """The file under `web` that `path` names, or None: nothing outside `web` is served, symlinks included."""
    if "\0" in path:
        return None
    target = (web / path).resolve()
    if not target.is_relative_to(web) or not target.is_file():
        return None
    return target
