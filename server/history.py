"""A session's recent frames: the image bytes as received, the result and the arrival time.

Bounded by a frame count and a byte total; the oldest entries go first and the caller reports them.
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
    data: bytes
    result: dict[str, Any]  # number, reason, digits, width, height


class History:
    def __init__(self, max_frames: int, max_bytes: int) -> None:
        self.max_frames = max_frames
        self.max_bytes = max_bytes
        self._entries: OrderedDict[int, Entry] = OrderedDict()
        self._next_seq = 0
        self.bytes = 0
        self.dropped = 0

    def __len__(self) -> int:
        return len(self._entries)

    def add(self, frame: int, kind: str, t: float, data: bytes, result: dict[str, Any]) -> tuple[int, list[int]]:
        """Store a frame; return its seq and the seqs evicted to stay within bounds.

        An image larger than the whole byte budget is evicted at once: it still gets a seq, so its
        result names it, and the eviction is reported like any other.
        """
        seq = self._next_seq
        self._next_seq += 1
        self._entries[seq] = Entry(seq, frame, kind, t, data, result)
        self.bytes += len(data)
        evicted = []
        while self._entries and (len(self._entries) > self.max_frames or self.bytes > self.max_bytes):
            old_seq, old = self._entries.popitem(last=False)
            self.bytes -= len(old.data)
            evicted.append(old_seq)
        self.dropped += len(evicted)
        return seq, evicted

    def get(self, seq: int) -> Entry | None:
        return self._entries.get(seq)

    def since(self, seq: int) -> list[Entry]:
        """Entries from `seq` on, oldest first (a snapshot: later additions don't change it)."""
        return [entry for entry in self._entries.values() if entry.seq >= seq]
