"""Which live frames enter the history: the ones worth replaying, not a camera's every frame.

A camera sends a dozen frames a second, most of them reading what the one before read; kept whole, a minute of
camera would be hundreds of copies of one reading. A live frame is kept when its reading differs from the last kept
live frame's, or when `every_s` passed since that one with the reading unchanged; and never sooner than `gap_s`
after it, so that a reading that flickers between two values does not keep every frame either. Photos are always
kept. One sampler per connection.
"""

from __future__ import annotations


class LiveSampler:
    def __init__(self, every_s: float, gap_s: float) -> None:
        self.every_s = every_s
        self.gap_s = gap_s
        self._last: tuple[float, str | None] | None = None  # the last kept frame's time and reading

    def keep(self, t: float, number: str | None) -> bool:
        """Whether the live frame of session time `t` (seconds) reading `number` enters the history."""
        if self._last is not None:
            since = t - self._last[0]
            if since < self.gap_s or (number == self._last[1] and since < self.every_s):
                return False
        self._last = (t, number)
        return True
