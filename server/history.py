"""A session's recent frames in this process's memory: the image bytes as received, the result, the arrival time.

Bounded by a frame count and a byte total; the oldest entries go first and the caller reports them. The Redis
store keeps the same bounds with the same rules in Redis (server/sessions/lua/append.lua).
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Entry:
    seq: int
    frame: int
    kind: str
    t: float  # seconds since the session started, when the frame arrived
    size: int  # bytes of the image
    result: dict[str, Any]  # number, reason, digits, width, height


@dataclass(frozen=True)
class Snapshot:
    """What a history holds at one moment: its entries from some seq on, oldest first, and its totals."""

    entries: list[Entry]
    dropped: int
    bytes: int


class History:
    def __init__(self, max_frames: int, max_bytes: int, first_seq: int = 0) -> None:
        self.max_frames = max_frames
        self.max_bytes = max_bytes
        self._entries: OrderedDict[int, tuple[Entry, bytes]] = OrderedDict()
        self.next_seq = first_seq
        self.bytes = 0
        self.dropped = 0

    def __len__(self) -> int:
        return len(self._entries)

    def add(self, frame: int, kind: str, t: float, data: bytes, result: dict[str, Any]) -> tuple[int, list[int]]:
        """Store a frame; return its seq and the seqs evicted to stay within bounds.

        An image larger than the whole byte budget is evicted at once: it still gets a seq, so its
        result names it, and the eviction is reported like any other.
        """
        seq = self.next_seq
        self.next_seq += 1
        self._entries[seq] = (Entry(seq, frame, kind, t, len(data), result), data)
        self.bytes += len(data)
        evicted = []
        while self._entries and (len(self._entries) > self.max_frames or self.bytes > self.max_bytes):
            old_seq, (old, _) = self._entries.popitem(last=False)
            self.bytes -= old.size
            evicted.append(old_seq)
        self.dropped += len(evicted)
        return seq, evicted

    def image(self, seq: int) -> bytes | None:
        kept = self._entries.get(seq)
        return kept[1] if kept else None

    def snapshot(self, since: int = 0) -> Snapshot:
        """Entries from `since` on, oldest first (later additions don't change it)."""
        return Snapshot([entry for entry, _ in self._entries.values() if entry.seq >= since], self.dropped, self.bytes)

    def oldest(self) -> tuple[Entry, bytes] | None:
        """The oldest entry and its image, or None when empty."""
        return next(iter(self._entries.values()), None)

    def remove_oldest(self) -> None:
        """Take the oldest entry out, as moved elsewhere (not counted as dropped); its seq is not given again."""
        _, (entry, _) = self._entries.popitem(last=False)
        self.bytes -= entry.size
