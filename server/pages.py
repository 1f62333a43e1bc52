"""The page and its assets, from `web_dir`: nothing outside it is served."""

from __future__ import annotations

from pathlib import Path

from quart import Blueprint, Response, send_file

from .state import state

pages = Blueprint("pages", __name__)


@pages.get("/")
async def index() -> Response | tuple[dict[str, str], int]:
    return await static_file("index.html")


@pages.get("/<path:path>")
async def static_file(path: str) -> Response | tuple[dict[str, str], int]:
    target = web_file(Path(state().config.web_dir).resolve(), path)
    if target is None:
        return {"error": "not found"}, 404
    response = await send_file(target, conditional=True)  # conditional: If-None-Match gets a 304
    # Revalidate every time (a 304 is cheap): a timed cache would keep a stale page after an update.
    response.headers["Cache-Control"] = "no-cache"
    return response


def web_file(web: Path, path: str) -> Path | None:
    """The file under `web` that `path` names, or None: nothing outside `web` is served, symlinks included."""
    if "\0" in path:
        return None
    target = (web / path).resolve()
    if not target.is_relative_to(web) or not target.is_file():
        return None
    return target
