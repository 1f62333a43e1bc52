"""Image bytes -> a Prepared image: decoded, its digit candidates found and cut into MNIST-style crops (the rules),
or its rows of digits found on the learned ink map, a crop of each row that may be one digit (v3).

Pure NumPy/OpenCV and thread-safe: the server prepares images in a thread pool while the networks run.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from .crops import line_crop
from .decode import decode
from .inkmap import InkMap
from .preprocess import preprocess, shapes
from .rows import ONE_DIGIT, map_rows


@dataclass
class PreparedLine:
    """A line of candidates as the line reader takes it, and how its input's pixels map onto the user's image."""

    image: np.ndarray  # (HEIGHT, width) float32 in [0, 1], ink 1
    candidates: list[int]  # its candidates, as indices into Prepared.readings
    box: tuple[int, int, int, int]  # (x, y, w, h) of its candidates together, in the oriented full-resolution image
    origin: tuple[float, float]  # the input's (0, 0) in the oriented full-resolution image
    pixel: tuple[float, float]  # the size of one input pixel there (width, height)
    crop: int | None = None  # v3: the row's crop in Prepared.crops, where the row may be one digit


@dataclass
class Prepared:
    crops: np.ndarray  # (n, 28, 28, 1) float32 in [0, 1], white ink on black, MNIST-normalised
    boxes: list[tuple[int, int, int, int]]  # (x, y, w, h) in the oriented full-resolution image
    width: int
    height: int
    reason: str | None  # why there are no candidates, else None
    # Per candidate, the ways to read it as crop indices: the whole (when it may be one digit), its parts in order.
    readings: list[list[tuple[int, ...]]]
    lines: list[PreparedLine] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)


def prepare(data: bytes, max_pixels: int = 40_000_000, ink_map: InkMap | None = None) -> Prepared:
    """Decode and preprocess one image (with `ink_map`, the ink is where the map says); raises ImageError for
    unreadable or oversized input."""
    start = time.perf_counter()
    decoded = decode(data, max_pixels)
    decoded_at = time.perf_counter()
    found = preprocess(decoded.gray, decoded.brightest, ink_map)
    candidates, crops, reason = found.candidates, found.crops, found.reason
    done = time.perf_counter()
    sx = decoded.width / decoded.gray.shape[1]
    sy = decoded.height / decoded.gray.shape[0]
    boxes = [_scale_box(c.box, sx, sy) for c in shapes(candidates)]
    readings, index = [], 0
    for candidate in candidates:
        whole = [(index,)] if candidate.single else []
        readings.append(whole + [tuple(index + 1 + part for part in split) for split in candidate.splits])
        index += 1 + len(candidate.parts)
    lines = [PreparedLine(line.image, line.members, _scale_box(line.box, sx, sy),
                          (line.origin[0] * sx, line.origin[1] * sy), (sx / line.scale, sy / line.scale))
             for line in found.lines]
    timings = {"decode_ms": (decoded_at - start) * 1000, "preprocess_ms": (done - decoded_at) * 1000}
    return Prepared(crops, boxes, decoded.width, decoded.height, reason, readings, lines, timings)


def prepare_rows(data: bytes, ink_map: InkMap, max_pixels: int = 40_000_000) -> Prepared:
    """Decode one image and find its rows of digits on the learned ink map (engine v3): each row is a line for the
    line reader and, where it may be one digit, a crop for the classifier too; raises ImageError for unreadable or
    oversized input."""
    start = time.perf_counter()
    decoded = decode(data, max_pixels)
    decoded_at = time.perf_counter()
    mapped = map_rows(decoded.gray, ink_map)
    rows = mapped.rows
    singles = [i for i, row in enumerate(rows) if row.box[2] <= ONE_DIGIT * row.box[3]]
    crops = np.array([line_crop(rows[i].image) for i in singles], np.float32).reshape(-1, 28, 28, 1)
    done = time.perf_counter()
    reason = None if rows else "no ink found" if mapped.chances.max(initial=0) < 0.5 else "no digit-like shapes"
    sx = mapped.pixel * decoded.width / decoded.gray.shape[1]  # map pixels -> the user's pixels
    sy = mapped.pixel * decoded.height / decoded.gray.shape[0]
    crop_of = {row: crop for crop, row in enumerate(singles)}
    lines = [PreparedLine(row.image, [], _scale_box(row.box, sx, sy), (row.origin[0] * sx, row.origin[1] * sy),
                          (sx / row.scale, sy / row.scale), crop_of.get(i))
             for i, row in enumerate(rows)]
    timings = {"decode_ms": (decoded_at - start) * 1000, "preprocess_ms": (done - decoded_at) * 1000}
    return Prepared(crops, [], decoded.width, decoded.height, reason, [], lines, timings)


def _scale_box(box: tuple[int, int, int, int], sx: float, sy: float) -> tuple[int, int, int, int]:
    x, y, w, h = box
    return round(x * sx), round(y * sy), max(1, round(w * sx)), max(1, round(h * sy))
