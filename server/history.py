"""A session's recent frames in this process's memory: the image bytes as received, the result, the arrival time.

Bounded by `Bounds`: live frames and photos each by their own count, so that a camera's frames never push the
user's photos out, and all images by a byte total, which live frames give up first. The oldest entries of a kind
go first and the caller reports them. The Redis store keeps the same bounds with the same rules in Redis
(server/sessions/lua/append.lua).
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

PHOTO = "photo"  # the kind of entry that live frames never evict; every other kind is a live frame


@dataclass(frozen=True)
class Bounds:
    frames: int  # live frames kept
    photos: int  # photos kept
    bytes: int  # image bytes kept in all


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
    def __init__(self, bounds: Bounds, first_seq: int = 0) -> None:
        self.bounds = bounds
        self._entries: OrderedDict[int, tuple[Entry, bytes]] = OrderedDict()
        self.next_seq = first_seq
        self.bytes = 0
        self.photos = 0
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
        self.photos += kind == PHOTO
        evicted = []
        while (victim := self._victim()) is not None:
            old, _ = self._entries.pop(victim)
            self.bytes -= old.size
            self.photos -= old.kind == PHOTO
            evicted.append(victim)
        self.dropped += len(evicted)
        return seq, evicted

    def _victim(self) -> int | None:
        """The seq to evict next (None: within bounds): the oldest of a kind over its own count; over the byte
        total, the oldest live frame, or the oldest photo when no live frame is left."""
        frames = len(self._entries) - self.photos
        if frames > self.bounds.frames or (self.bytes > self.bounds.bytes and frames):
            return next(seq for seq, (entry, _) in self._entries.items() if entry.kind != PHOTO)
        if self.photos > self.bounds.photos or self.bytes > self.bounds.bytes:
            return next(seq for seq, (entry, _) in self._entries.items() if entry.kind == PHOTO)
        return None

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
        self.photos -= entry.kind == PHOTO
