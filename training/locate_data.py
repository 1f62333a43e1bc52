"""Training scenes for the locator: photo-like pictures at the locator's input size, and where their digits are.

    locator_scenes(n, digits, seed) -> (x (n, H, W, 1) uint8 gray, boxes: per scene a list of (x, y, w, h))
    targets(boxes)                  -> (n, H/4, W/4, 4) float32: centre heatmap, log width, log height, centre mask
    boxes(outputs, scale, shape)    -> the boxes a locator's outputs find, and their scores (the inverse)

A scene is rendered by `training.scenes` a little larger than the locator's input and shrunk to it, as the engine
shrinks a working image; a share of them has no digit at all (paper, lines, shadows, page edges, screens).
"""

from __future__ import annotations

from concurrent.futures import ProcessPoolExecutor

import cv2
import numpy as np

INPUT_SIDE = 256  # the long side of the locator's input: a working image is shrunk to it
STRIDE = 4  # the output grid, in input pixels
MIN_SCORE = 0.3  # a heatmap peak this high is a digit
SAME_DIGIT = 0.5  # a weaker peak's box this much inside a stronger one's is a second peak on the same digit
INPUT_SHAPE = (INPUT_SIDE * 3 // 4, INPUT_SIDE)  # (height, width): a landscape frame, as most are
RENDER_SCALE = 1.25  # rendered this much larger, then shrunk (strokes anti-aliased as in a shrunk photo)
BLANK_SHARE = 0.25
SCREEN_SHARE = 0.12
COUNT_WEIGHTS = {1: 0.35, 2: 0.2, 3: 0.2, 4: 0.15, 5: 0.1}  # digits per scene


def locator_scenes(n: int, digits: np.ndarray, seed: int, workers: int = 2) -> tuple[np.ndarray, list[list]]:
    """`n` scenes of the digits (white-on-black 28x28 images), the same for the same seed, rendered in parallel."""
    chunks = [(digits, seed, start, min(n, start + 500)) for start in range(0, n, 500)]
    with ProcessPoolExecutor(workers) as pool:
        parts = list(pool.map(_render_chunk, chunks))
    return np.concatenate([x for x, _ in parts]), [b for _, boxes in parts for b in boxes]


def _render_chunk(args: tuple[np.ndarray, int, int, int]) -> tuple[np.ndarray, list[list]]:
    digits, seed, start, stop = args
    images, boxes = [], []
    for i in range(start, stop):
        image, found = render(np.random.default_rng([seed, i]), digits)
        images.append(image)
        boxes.append(found)
    return np.stack(images)[..., None], boxes


def render(rng: np.random.Generator, digits: np.ndarray) -> tuple[np.ndarray, list[tuple[float, ...]]]:
    """One scene: the gray image at INPUT_SHAPE, and the box of each digit on it, in its pixels."""
    from training.scenes import blank_scene, digit_scene

    height, width = (round(side * RENDER_SCALE) for side in INPUT_SHAPE)
    if rng.random() < BLANK_SHARE:
        image, found = blank_scene(rng, height, width), []
    else:
        count = int(rng.choice(list(COUNT_WEIGHTS), p=list(COUNT_WEIGHTS.values())))
        style = "screen" if rng.random() < SCREEN_SHARE else "paper"
        picked = [digits[j] for j in rng.integers(0, len(digits), count)]
        # Sizes from a few pixels to the whole frame: drawn on a log scale, so small digits are as common as big.
        most = min(0.95 * height, 0.95 * width / max(0.75 * count, 1.0)) / 0.72  # ink is ~72% of its 28-px box
        digit_height = float(np.exp(rng.uniform(np.log(12), np.log(max(13.0, most)))))
        image, found = digit_scene(rng, picked, height, width, digit_height=digit_height, style=style)
        found = [box for box in found if box[2] > 0]
    gray = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
    gray = cv2.resize(gray, INPUT_SHAPE[::-1], interpolation=cv2.INTER_AREA)
    scale = INPUT_SHAPE[1] / width
    return gray, [tuple(v * scale for v in box) for box in found]


def targets(boxes: list[list[tuple[float, ...]]], shape: tuple[int, int] = INPUT_SHAPE) -> np.ndarray:
    """CenterNet-style targets on the STRIDE grid: a Gaussian peak (exactly 1) at each digit's centre cell, and at
    that cell the digit's log width and height in input pixels and a 1 that marks it."""
    rows, cols = shape[0] // STRIDE, shape[1] // STRIDE
    out = np.zeros((len(boxes), rows, cols, 4), np.float32)
    ys, xs = np.mgrid[0:rows, 0:cols].astype(np.float32)
    for n, scene in enumerate(boxes):
        for x, y, w, h in scene:
            cx, cy = (x + w / 2) / STRIDE - 0.5, (y + h / 2) / STRIDE - 0.5
            col, row = min(cols - 1, max(0, round(cx))), min(rows - 1, max(0, round(cy)))
            sigma = max(0.6, 0.12 * min(w, h) / STRIDE)
            peak = np.exp(-((xs - cx) ** 2 + (ys - cy) ** 2) / (2 * sigma**2))
            out[n, :, :, 0] = np.maximum(out[n, :, :, 0], peak)
            out[n, row, col] = (1.0, np.log(max(w, 1.0)), np.log(max(h, 1.0)), 1.0)
    return out


def boxes(outputs: np.ndarray, scale: float, shape: tuple[int, int]) -> tuple[list[tuple[int, int, int, int]],
                                                                                list[float]]:
    """(rows, cols, 3) locator outputs -> the digits' boxes (x, y, w, h) in working-image pixels of `shape`, and
    their scores, best first."""
    heat = outputs[..., 0]
    peaks = (heat >= MIN_SCORE) & (heat == cv2.dilate(heat, np.ones((3, 3), np.uint8)))
    found, scores = [], []
    height, width = shape
    for row, col in sorted(zip(*np.nonzero(peaks), strict=True), key=lambda rc: -heat[rc]):
        w, h = np.exp(outputs[row, col, 1:3]) / scale
        cx, cy = (col + 0.5) * STRIDE / scale, (row + 0.5) * STRIDE / scale
        x0, y0 = max(0, round(cx - w / 2)), max(0, round(cy - h / 2))
        x1, y1 = min(width, round(cx + w / 2)), min(height, round(cy + h / 2))
        box = (x0, y0, x1 - x0, y1 - y0)
        if x1 > x0 and y1 > y0 and not any(_same_digit(box, other) for other in found):
            found.append(box)
            scores.append(float(heat[row, col]))
    return found, scores


def _same_digit(box: tuple[int, int, int, int], other: tuple[int, int, int, int]) -> bool:
    """Whether a weaker peak's box mostly lies inside a stronger one's: a second peak on one big digit."""
    overlap_w = min(box[0] + box[2], other[0] + other[2]) - max(box[0], other[0])
    overlap_h = min(box[1] + box[3], other[1] + other[3]) - max(box[1], other[1])
    return overlap_w > 0 and overlap_h > 0 and overlap_w * overlap_h >= SAME_DIGIT * min(box[2] * box[3],
                                                                                         other[2] * other[3])
