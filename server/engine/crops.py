"""One digit's ink mask -> its 28x28 crop, normalised as MNIST's digits are: what the classifier was trained on.

Pure NumPy/OpenCV, no state.
"""

from __future__ import annotations

import cv2
import numpy as np

THICK_STROKE = 2.0  # strokes over this many times MNIST's width are thinned (a fat marker fills a 3's loops)
MNIST_BOX = 20  # MNIST digits fit a 20x20 box inside the 28x28 image
MNIST_STROKE = 2.5  # typical MNIST stroke width, in pixels of the 28x28 image
FIT_SIDE = 80  # digits are brought to this size before their strokes are adjusted (cheap, still precise)


def normalize(mask: np.ndarray) -> np.ndarray:
    """One digit's ink mask -> 28x28 float32, MNIST style: 20x20 box, stroke ~2.5 px, centre of mass centred."""
    mask = _shrink_mask(mask)
    mask = _fit_stroke(mask, MNIST_STROKE * max(mask.shape) / MNIST_BOX)
    h, w = mask.shape
    scale = MNIST_BOX / max(h, w)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    digit = cv2.resize(mask.astype(np.float32), size, interpolation=cv2.INTER_AREA)
    peak = digit.max()
    if peak > 0:
        digit /= peak
    canvas = np.zeros((28, 28), np.float32)
    top, left = (28 - size[1]) // 2, (28 - size[0]) // 2
    canvas[top : top + size[1], left : left + size[0]] = digit
    return _centre_mass(canvas)


def line_crop(image: np.ndarray) -> np.ndarray:
    """A line reader's input that may hold one digit (float, ink 1) -> the classifier's 28x28 crop of its ink."""
    ink = image >= 0.5
    rows, cols = np.flatnonzero(ink.any(axis=1)), np.flatnonzero(ink.any(axis=0))
    if not len(rows):
        return np.zeros((28, 28), np.float32)
    return normalize(ink[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1].astype(np.uint8))


def _shrink_mask(mask: np.ndarray) -> np.ndarray:
    """Bring a big digit down to FIT_SIDE pixels, keeping strokes that thin out to a fraction of a pixel."""
    h, w = mask.shape
    scale = FIT_SIDE / max(h, w)
    if scale >= 1:
        return mask
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    coverage = cv2.resize(mask.astype(np.float32), size, interpolation=cv2.INTER_AREA)
    return (coverage >= 0.2).astype(np.uint8)


def _fit_stroke(mask: np.ndarray, target: float) -> np.ndarray:
    """A 0/1 mask whose strokes are about `target` pixels wide: thin strokes thickened (a pen line in a big digit
    would vanish at 20 px), strokes over THICK_STROKE times it thinned (a fat marker fills a 3's loops)."""
    stroke = stroke_width(mask)
    grow = round((target - stroke) / 2)
    if grow >= 1:
        mask = cv2.copyMakeBorder(mask, grow, grow, grow, grow, cv2.BORDER_CONSTANT, value=0)
        kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * grow + 1, 2 * grow + 1))
        return cv2.dilate(mask, kernel)
    shrink = round((stroke - THICK_STROKE * target) / 2)
    if shrink >= 1:
        kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * shrink + 1, 2 * shrink + 1))
        thinner = cv2.erode(mask, kernel)
        if thinner.any():
            return thinner
    return mask


def stroke_width(mask: np.ndarray) -> float:
    """The mean width of a 0/1 mask's strokes, in pixels: twice its area over its edge's (a 1 px line counts 2)."""
    area = int(mask.sum())
    edge = area - int(cv2.erode(mask, np.ones((3, 3), np.uint8), borderType=cv2.BORDER_CONSTANT, borderValue=0).sum())
    return 2.0 * area / max(edge, 1)


def _centre_mass(image: np.ndarray) -> np.ndarray:
    moments = cv2.moments(image)
    if moments["m00"] <= 0:
        return image
    dx = 14.0 - moments["m10"] / moments["m00"]
    dy = 14.0 - moments["m01"] / moments["m00"]
    shift = np.float32([[1, 0, dx], [0, 1, dy]])
    return cv2.warpAffine(image, shift, (28, 28), flags=cv2.INTER_LINEAR, borderValue=0)
