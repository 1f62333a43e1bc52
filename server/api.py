"""The HTTP API: POST /api/recognize, GET /healthz, GET /metrics."""

from __future__ import annotations

import asyncio
import time

from quart import Blueprint, Response, request

from . import engine
from .batcher import EngineFailure
from .state import State, state

api = Blueprint("api", __name__)


@api.get("/healthz")
async def healthz() -> tuple[dict[str, str], int]:
    # A draining worker says so, and a balancer's health check sends new clients elsewhere. Redis is not
    # checked: a worker without it still recognises, so it must stay in the balancer.
    if state().closing:
        return {"status": "draining"}, 503
    return {"status": "ok"}, 200


@api.get("/metrics")
async def metrics() -> Response:
    shared = state()
    shared.metrics.sessions.value = len(shared.sessions)
    shared.metrics.tasks.value = len(asyncio.all_tasks())
    return Response(shared.metrics.render(), content_type="text/plain; version=0.0.4; charset=utf-8")


@api.post("/api/recognize")
async def recognize() -> tuple[dict[str, object], int]:
    shared = state()
    # Each request holds its body (up to max_message_bytes) until answered: bound how many are in flight.
    if shared.http_in_flight >= shared.config.max_connections:
        return {"error": "too many requests in flight, try again later"}, 503
    shared.http_in_flight += 1
    try:
        return await _recognize_upload(shared)
    finally:
        shared.http_in_flight -= 1


async def _recognize_upload(shared: State) -> tuple[dict[str, object], int]:
    """The image is the raw body or the multipart field "image"."""
    if request.mimetype == "multipart/form-data":
        upload = (await request.files).get("image")
        data = upload.read() if upload is not None else b""
    else:
        data = await request.get_data(cache=False)
    received = time.monotonic()  # once the whole body is in, as for a WebSocket message
    shared.metrics.received.inc(kind="http")
    if not data:
        return {"error": "send an image as the request body or as the multipart form field \"image\""}, 400
    try:
        outcome = await shared.batcher.recognize(data, received)
    except engine.ImageError as error:
        return {"error": error.message}, 413 if error.code == "too_many_pixels" else 415
    except EngineFailure as error:
        return {"error": str(error)}, 500
    shared.metrics.answered.inc(kind="http")
    return {**outcome.result, "timings": outcome.timings_until_now(received)}, 200
