"""Image bytes -> a Prepared image: decoded, its digit candidates found and cut into MNIST-style crops.

Pure NumPy/OpenCV and thread-safe: the server prepares images in a thread pool while the networks run.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from .decode import decode
from .preprocess import preprocess, shapes


@dataclass
class Prepared:
    crops: np.ndarray  # (n, 28, 28, 1) float32 in [0, 1], white ink on black, MNIST-normalised
    boxes: list[tuple[int, int, int, int]]  # (x, y, w, h) in the oriented full-resolution image
    width: int
    height: int
    reason: str | None  # why there are no candidates, else None
    # Per candidate, the ways to read it as crop indices: the whole (when it may be one digit), its parts in order.
    readings: list[list[tuple[int, ...]]]
    timings: dict[str, float] = field(default_factory=dict)


def prepare(data: bytes, max_pixels: int = 40_000_000) -> Prepared:
    """Decode and preprocess one image; raises ImageError for unreadable or oversized input."""
    start = time.perf_counter()
    decoded = decode(data, max_pixels)
    decoded_at = time.perf_counter()
    candidates, crops, reason = preprocess(decoded.gray, decoded.brightest)
    done = time.perf_counter()
    sx = decoded.width / decoded.gray.shape[1]
    sy = decoded.height / decoded.gray.shape[0]
    boxes = [_scale_box(c.box, sx, sy) for c in shapes(candidates)]
    readings, index = [], 0
    for candidate in candidates:
        whole = [(index,)] if candidate.single else []
        readings.append(whole + [tuple(index + 1 + part for part in split) for split in candidate.splits])
        index += 1 + len(candidate.parts)
    timings = {"decode_ms": (decoded_at - start) * 1000, "preprocess_ms": (done - decoded_at) * 1000}
    return Prepared(crops, boxes, decoded.width, decoded.height, reason, readings, timings)


def _scale_box(box: tuple[int, int, int, int], sx: float, sy: float) -> tuple[int, int, int, int]:
    x, y, w, h = box
    return round(x * sx), round(y * sy), max(1, round(w * sx)), max(1, round(h * sy))
