"""The recognition engine: image bytes -> digit crops (prepare) -> probabilities (Classifier) -> result (assemble).

`prepare` is pure NumPy/OpenCV and thread-safe; the server runs it in a thread pool and batches the crops of
many images into one `Classifier.classify` call. `recognize` does all three for a list of images: the CLI,
`make eval` and the training script's scene check use it, each with its own classify function and map.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from functools import partial

import numpy as np

from server.classifier import CLASSES, NOT_A_DIGIT, Classifier
from server.decode import ImageError, decode
from server.preprocess import preprocess, shapes

__all__ = [
    "Classifier", "Classify", "ImageError", "Prepared", "assemble", "classify_batch", "prepare", "read", "recognize"
]

# (n, 28, 28, 1) crops -> (n, 11) probabilities: `Classifier.classify` when serving, a Keras model in training.
Classify = Callable[[np.ndarray], np.ndarray]

# A candidate is read as a digit only when the model is at least this sure. Chosen on validation data (MNIST
# train's last 5,000, 808 generated negatives, 1,200 blank scenes of another seed than `make eval`'s): 0.5 gave
# the fewest errors of all three together (81; 87 with no minimum, 84 at 0.4 and at 0.6).
MIN_CONFIDENCE = 0.5
# A shape is read in parts only when the model is surer of each part than of the whole by this much: it is
# often near 1.0 for both, and a single wide "5" once read as "85" by 0.0006.
SPLIT_MARGIN = 0.01


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


def read(probs: np.ndarray) -> np.ndarray:
    """(n, 11) probabilities -> (n,) the digit each crop is read as, or NOT_A_DIGIT: the model's choice, refused
    when that is "not a digit" or when the model is less sure than MIN_CONFIDENCE."""
    values = np.argmax(probs, axis=1)
    return np.where(probs.max(axis=1, initial=0.0) < MIN_CONFIDENCE, NOT_A_DIGIT, values)


def assemble(prepared: Prepared, probs: np.ndarray) -> dict:
    """Read each candidate whole or cut in parts, whichever way the model is surest of, then all digits left to
    right as one number.

    Only ways whose every crop is a digit count. A way's score is how sure the model is of its least sure crop;
    parts must beat the whole by SPLIT_MARGIN. A whole the model refuses does not stop its parts: letting it
    (with its "not a digit" confidence as score) kept a speck from reading "11" but lost more touching digits.
    """
    values = read(probs)
    chosen = []
    for ways in prepared.readings:
        digits_only = [way for way in ways if all(values[j] != NOT_A_DIGIT for j in way)]
        if digits_only:  # max keeps the first of equals: the whole
            chosen += max(digits_only, key=lambda way: min(probs[j].max() for j in way) - SPLIT_MARGIN * (len(way) > 1))
    digits = []
    for i in sorted(chosen, key=lambda i: prepared.boxes[i][0]):
        value, p = int(values[i]), probs[i]
        top3 = np.argsort(p[:NOT_A_DIGIT])[::-1][:3]
        digits.append(
            {
                "value": value,
                "confidence": round(float(p[value]), 4),
                "top3": [[int(d), round(float(p[d]), 4)] for d in top3],
                "box": list(prepared.boxes[i]),
            }
        )
    number = "".join(str(d["value"]) for d in digits) or None
    reason = None if number else prepared.reason or _refusal(probs)
    return {"number": number, "reason": reason, "digits": digits, "width": prepared.width, "height": prepared.height}


def _refusal(probs: np.ndarray) -> str:
    """Why shapes were found and none was read: the model's best guess, when it had one, tells the user that
    the digit was seen and what to improve (a clearer or bigger digit), not that there was nothing there."""
    unsure = probs[np.argmax(probs, axis=1) != NOT_A_DIGIT]
    if not len(unsure):
        return "no shape looks like a digit"
    best = unsure[np.argmax(unsure.max(axis=1))]
    return f"not sure enough to read it (best guess {int(np.argmax(best))}, {best.max():.0%})"


def classify_batch(prepared: list[Prepared], classify: Classify) -> list[np.ndarray]:
    """Every crop of every image through the model in ONE call; the probabilities split back per image."""
    if not prepared:
        return []
    crops = np.concatenate([p.crops for p in prepared])
    probs = classify(crops) if len(crops) else np.zeros((0, CLASSES), np.float32)
    return np.split(probs, np.cumsum([len(p.crops) for p in prepared])[:-1])


def recognize(
    datas: list[bytes],
    classify: Classify,
    max_pixels: int = 40_000_000,
    map_fn: Callable[..., Iterable] = map,
) -> list[dict | ImageError]:
    """Prepare each image, classify every crop in one batch, assemble each result (errors returned, not raised).
    Pass a thread pool's `map` as `map_fn` to prepare the images in parallel."""
    prepared = list(map_fn(partial(_prepare_or_error, max_pixels=max_pixels), datas))
    ready = [p for p in prepared if isinstance(p, Prepared)]
    probs: Iterator[np.ndarray] = iter(classify_batch(ready, classify))
    return [p if isinstance(p, ImageError) else assemble(p, next(probs)) for p in prepared]


def _prepare_or_error(data: bytes, max_pixels: int) -> Prepared | ImageError:
    try:
        return prepare(data, max_pixels)
    except ImageError as exc:
        return exc
