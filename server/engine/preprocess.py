"""Grayscale image -> MNIST-style digit crops and lines of ink: find the ink, find the digits, normalise each one.

    ink       dark ink on light paper, its strength against the local paper, the ink thresholds
    inkmap    or instead: the learned ink map (thresholds and ruled lines then play no part)
    ruled     ruled and squared lines and margins erased
    segment   the ink mask -> digit candidates (components filtered, grouped, wide shapes cut in parts)
    crops     each candidate's mask -> a 28x28 MNIST-style crop
    lines     the candidates in rows -> each row's ink, the line reader's input

Pure NumPy/OpenCV, no state: safe to call from many threads at once (OpenCV releases the GIL).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np

from .crops import normalize
from .ink import dark_ink, ink_strength, thresholds
from .inkmap import SCALE, InkMap
from .lines import Line, find_lines
from .ruled import remove_ruled_lines
from .segment import Candidate, find_digits

# Pictures are small and the server prepares several at once in its own threads: OpenCV's thread pool
# only adds hand-off cost here (measured: 1.24 -> 1.02 ms for a 320x240 frame).
cv2.setNumThreads(1)


@dataclass
class Found:
    candidates: list[Candidate]
    crops: np.ndarray  # (n, 28, 28, 1) float32: each candidate's, followed by its parts' when it is cut (`shapes`)
    reason: str | None  # why there are no candidates, else None
    lines: list[Line] = field(default_factory=list)


def preprocess(gray: np.ndarray, brightest: np.ndarray | None = None, ink_map: InkMap | None = None) -> Found:
    """Grayscale working image (and a dark picture's brightest channel, see `dark_ink`) -> its digit candidates,
    their crops and their lines. With `ink_map`, the learned map says where the ink is, instead of the ink
    thresholds and the ruled lines' erasing."""
    if ink_map is not None:
        mask = learned_ink(gray, ink_map)
        gray = dark_ink(gray, brightest)
        strong = mask > 0
        if not strong.any():
            return Found([], np.zeros((0, 28, 28, 1), np.float32), "no ink found")
    else:
        gray = dark_ink(gray, brightest)
        strength = ink_strength(gray)
        levels = thresholds(strength)
        if levels is None:
            return Found([], np.zeros((0, 28, 28, 1), np.float32), "no ink found")
        mask = remove_ruled_lines((strength >= levels[0]).view(np.uint8))
        strong = strength >= levels[1]
    candidates = find_digits(mask, strong, gray)
    if not candidates:
        return Found([], np.zeros((0, 28, 28, 1), np.float32), "no digit-like shapes")
    crops = np.stack([normalize(c.mask) for c in shapes(candidates)])[..., None]
    return Found(candidates, crops, None, find_lines(candidates, mask))


def learned_ink(gray: np.ndarray, ink_map: InkMap) -> np.ndarray:
    """The ink map of a grayscale picture at the picture's size, as a 0/1 uint8 mask (its chances at 0.5)."""
    chances = ink_map(gray)
    full = cv2.resize(chances, (chances.shape[1] * SCALE, chances.shape[0] * SCALE), interpolation=cv2.INTER_LINEAR)
    return (full[: gray.shape[0], : gray.shape[1]] >= 0.5).view(np.uint8)


def shapes(candidates: list[Candidate]) -> list[Candidate]:
    """Each candidate followed by its parts: the order of `preprocess`'s crops."""
    return [shape for c in candidates for shape in (c, *c.parts)]
