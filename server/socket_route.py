"""The WebSocket at /ws: refused at once when it may not be served, else one Connection on its session."""

from __future__ import annotations

from quart import Blueprint, websocket

from . import protocol
from .connection import Connection
from .limits import origin_allowed
from .state import State, state

sockets = Blueprint("sockets", __name__)


@sockets.websocket("/ws")
async def ws() -> None:
    shared = state()
    await websocket.accept()
    refusal = _refusal(shared, websocket.headers.get("Origin"), websocket.headers.get("Host"))
    if refusal is not None:
        await websocket.close(*refusal)
        return
    connection = Connection(websocket._get_current_object(), shared.config, shared.batcher, shared.metrics)
    shared.connections.add(connection)
    shared.metrics.connections.inc()
    session = None
    try:
        # A takeover: the old socket's frames are answered (into the history) before this one says hello.
        session, resumed = await shared.sessions.open(websocket.args.get("session"), connection)
        await connection.run(session, resumed)
    finally:
        shared.connections.discard(connection)
        shared.metrics.connections.dec()
        if session is not None:
            await shared.sessions.close(session, connection)


def _refusal(shared: State, origin: str | None, host: str | None) -> tuple[int, str] | None:
    """Why a new WebSocket must be closed at once (close code and reason), or None to serve it."""
    if not origin_allowed(origin, host, shared.allowed_origins):
        return protocol.CLOSE_POLICY, f"origin {origin} is not allowed"
    if shared.closing:
        return protocol.CLOSE_GOING_AWAY, "server shutting down"
    if len(shared.connections) >= shared.config.max_connections:
        return protocol.CLOSE_TRY_LATER, "too many connections, try again later"
    return None
