"""Three private patches to Hypercorn 0.18's WebSocket stream, applied once by `apply` before serving.

They replace private methods, so they are tied to the version they were written against: `apply` refuses any
other, and whoever upgrades Hypercorn checks each patch against the new source (or finds it fixed there).
"""

from __future__ import annotations

import importlib.metadata
import time

from hypercorn.protocol.events import Data, Event, StreamClosed
from hypercorn.protocol.ws_stream import Handshake, WSStream
from wsproto.events import Ping

PATCHED_VERSION = "0.18.0"

_PING_CHECK_S = 1.0
_SILENT_PINGS = 3  # a client that sends nothing, not even a pong, for this many ping intervals is gone


async def _send_pings(self: WSStream) -> None:
    """Hypercorn's ping loop, but noticing a closed socket within a second, and a silent client.

    Hypercorn 0.18 looks at `closed` only once per ping interval, so every closed WebSocket keeps its
    connection task alive for up to a whole interval; on shutdown those tasks outlive the graceful
    timeout and are cancelled with tracebacks. It also never checks that pings are answered: a phone whose
    network dropped kept its socket (and its session) until TCP gave up, minutes later. Such a socket is
    closed here as a dropped one (1006 for the app), so its session waits for the client to resume it.
    """
    interval = self.config.websocket_ping_interval
    self.last_heard = time.monotonic()
    while not self.closed:
        if time.monotonic() - self.last_heard > _SILENT_PINGS * interval:
            await self.send(StreamClosed(stream_id=self.stream_id))
            return
        await self._send_wsproto_event(Ping())
        waited = 0.0
        while waited < interval and not self.closed:
            await self.context.sleep(min(_PING_CHECK_S, interval - waited))
            waited += _PING_CHECK_S


_handle_event = WSStream.handle  # Hypercorn's own, which ours calls


async def _handle_noting_traffic(self: WSStream, event: Event) -> None:
    """Hypercorn's event handler, noting when the client last sent anything (pongs included)."""
    if isinstance(event, Data):
        self.last_heard = time.monotonic()
    await _handle_event(self, event)


_accept_handshake = Handshake.accept  # Hypercorn's own, which ours calls


def _accept_without_compression(self: Handshake, *args: object, **kwargs: object) -> object:
    """Hypercorn 0.18 always accepts permessage-deflate, and browsers always offer it.

    Our messages are JPEGs and short JSON: deflate saves nothing, yet it runs on the event loop, where one
    replayed photo stalled every other client for half a second. Declining the offer is allowed by RFC 7692.
    """
    self.extensions = None
    return _accept_handshake(self, *args, **kwargs)


def apply() -> None:
    """Install the patches (idempotent); raises RuntimeError on a Hypercorn they were not written for."""
    version = importlib.metadata.version("hypercorn")
    if version != PATCHED_VERSION:
        raise RuntimeError(f"server/hypercorn_patches.py patches Hypercorn {PATCHED_VERSION}'s private methods, "
                           f"but {version} is installed: check each patch against it, then update PATCHED_VERSION")
    WSStream._send_pings = _send_pings  # type: ignore[method-assign]
    WSStream.handle = _handle_noting_traffic  # type: ignore[method-assign]
    Handshake.accept = _accept_without_compression  # type: ignore[method-assign]
