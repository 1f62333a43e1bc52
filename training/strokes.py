"""Synthetic handwritten digits drawn from stroke templates: the styles MNIST and USPS rarely show.

MNIST's writers were American: its 1 is a bare stroke, its 7 has no bar, its 4 is mostly closed. People
elsewhere, and people drawing with a mouse or a finger, write a 1 with a long flag and a foot, a 7 with a
crossbar, an open 4 of straight lines, a 9 with a straight stem. Each template here is a few strokes in a
unit box; every control point is jittered, the pen width varies, and the result is brought to the MNIST
convention.

    stroke_digits(rng, n) -> (x (n, 28, 28) float32 in [0, 1], y (n,) int64)
"""

from __future__ import annotations

import cv2
import numpy as np

from training.augment import mnist_normalise

CANVAS = 96


def _arc(cx, cy, rx, ry, a0, a1, n=24):
    t = np.deg2rad(np.linspace(a0, a1, n))
    return np.stack([cx + rx * np.cos(t), cy + ry * np.sin(t)], 1)  # y grows downwards


def _line(*pts):
    return np.asarray(pts, np.float64)


def _bezier(*ctrl, n=24):
    ctrl = np.asarray(ctrl, np.float64)
    t = np.linspace(0, 1, n)[:, None, None]
    pts = np.repeat(ctrl[None], n, 0)
    for k in range(len(ctrl) - 1, 0, -1):
        pts = pts[:, :k] * (1 - t) + pts[:, 1 : k + 1] * t
    return pts[:, 0]


# Each template returns a list of strokes (arrays of (x, y) in [0, 1]), given a Generator for its options.
def _zero(r):
    return [_arc(0.5, 0.5, r.uniform(0.28, 0.42), 0.48, -90 + r.uniform(-30, 30), 270 + r.uniform(-10, 25))]


def _one(r):
    kind = r.choice(["bar", "flag", "flag_foot", "serif"], p=[0.2, 0.35, 0.3, 0.15])
    top, bottom = (0.55, 0.0), (0.5 + r.uniform(-0.05, 0.05), 1.0)
    strokes = []
    if kind == "bar":
        strokes.append(_line(top, bottom))
    else:
        flag = (top[0] - r.uniform(0.2, 0.5), top[1] + r.uniform(0.15, 0.5))
        strokes.append(_line(flag, top, bottom))
    if kind in ("flag_foot", "serif"):
        w = r.uniform(0.2, 0.35)
        strokes.append(_line((bottom[0] - w, 1.0), (bottom[0] + w, 1.0)))
    if kind == "serif":
        w = r.uniform(0.15, 0.3)
        strokes = [_line(top, bottom), _line((top[0] - w, 0.0), (top[0] + w * 0.7, 0.0)), strokes[-1]]
    return strokes


def _two(r):
    if r.random() < 0.5:  # curved neck
        s = _bezier((0.12, 0.28), (0.3, -0.08), (0.95, 0.0), (0.8, 0.4), (0.1, 1.0))
    else:  # straight diagonal
        s = np.concatenate([_arc(0.5, 0.3, 0.35, 0.3, 200, 360 + 20), _line((0.8, 0.45), (0.1, 1.0))])
    loop = r.random() < 0.25
    end = _line(s[-1], (0.9 + r.uniform(-0.05, 0.05), 1.0))
    if loop:
        end = np.concatenate([_arc(0.2, 0.9, 0.1, 0.08, 0, 360, 12), end])
    return [np.concatenate([s, end])]


def _three(r):
    if r.random() < 0.3:  # flat top, like a Z then a belly
        top = _line((0.12, 0.0), (0.85, 0.0), (0.4, 0.42))
        return [np.concatenate([top, _arc(0.45, 0.7, 0.42, 0.29, -90, 150)])]
    mid = r.uniform(0.4, 0.5)
    up = _arc(0.48, mid / 2, 0.36, mid / 2, 200, 450)
    down = _arc(0.48, mid + (1 - mid) / 2, 0.42, (1 - mid) / 2, -90, 160)
    return [np.concatenate([up, down])]


def _four(r):
    kind = r.choice(["open", "closed", "cross"], p=[0.45, 0.3, 0.25])
    x = r.uniform(0.6, 0.75)
    ybar = r.uniform(0.55, 0.7)
    if kind == "open":  # two strokes: an L and a stem
        return [_line((0.12, 0.0), (0.1, ybar), (0.92, ybar)), _line((x, 0.0 + r.uniform(0, 0.2)), (x, 1.0))]
    if kind == "closed":
        return [_line((x, 1.0), (x, 0.0), (0.05, ybar), (0.95, ybar))]
    return [_line((0.55, 0.0), (0.05, ybar), (0.95, ybar)), _line((x, 0.25), (x, 1.0))]


def _five(r):
    top = _line((0.85, 0.0), (0.22, 0.0), (0.17, 0.42))
    belly = _arc(0.45, 0.68, 0.4, 0.3, -130, 150)
    if r.random() < 0.5:  # drawn in one go
        return [np.concatenate([top, belly])]
    return [_line((0.22, 0.0), (0.17, 0.42)), belly, _line((0.22, 0.0), (0.85, 0.0))]


def _six(r):
    stem = _bezier((0.75, 0.0), (0.25, 0.15), (0.1, 0.55), (0.2, 0.8))
    loop = _arc(0.5, 0.72, 0.36, 0.27, 180, 540)
    return [np.concatenate([stem, loop])]


def _seven(r):
    x_end = r.uniform(0.25, 0.5)
    strokes = [_line((0.08, 0.0 + r.uniform(0, 0.15)) if r.random() < 0.3 else (0.08, 0.0), (0.92, 0.0), (x_end, 1.0))]
    if r.random() < 0.3:  # a serif down at the left
        strokes[0] = np.concatenate([_line((0.08, 0.2)), strokes[0]])
    if r.random() < 0.45:  # continental crossbar
        y = r.uniform(0.45, 0.6)
        xm = 0.92 + (x_end - 0.92) * y
        strokes.append(_line((xm - 0.3, y), (xm + 0.25, y)))
    return strokes


def _eight(r):
    a = _arc(0.5, 0.25, r.uniform(0.25, 0.33), 0.25, 0, 360)
    b = _arc(0.5, 0.74, r.uniform(0.3, 0.4), 0.26, -90, 270)
    return [a, b]


def _nine(r):
    loop = _arc(0.45, 0.28, 0.35, 0.28, 0, 360)
    if r.random() < 0.6:  # straight stem
        stem = _line((0.8, 0.28), (0.78 + r.uniform(-0.15, 0.05), 1.0))
    else:  # curled stem
        stem = _bezier((0.8, 0.28), (0.85, 0.9), (0.4, 1.05), (0.15, 0.85))
    return [np.concatenate([loop, stem])]


TEMPLATES = [_zero, _one, _two, _three, _four, _five, _six, _seven, _eight, _nine]


def draw(rng: np.random.Generator, label: int) -> np.ndarray:
    """One synthetic digit, (28, 28) float32 in [0, 1] in the MNIST convention."""
    strokes = TEMPLATES[label](rng)
    aspect = rng.uniform(0.45, 0.8) if label != 1 else rng.uniform(0.3, 0.85)
    slant = rng.normal(0.1, 0.12)
    c = np.zeros((CANVAS, CANVAS), np.float32)
    width = int(rng.integers(3, 9))
    jitter = rng.uniform(0.005, 0.03)
    for s in strokes:
        p = np.asarray(s, np.float64) + rng.normal(0, jitter, (len(s), 2))
        p += rng.normal(0, jitter, 2)  # each stroke a little off
        x = 0.5 + (p[:, 0] - 0.5) * aspect + slant * (0.5 - p[:, 1])
        y = p[:, 1]
        pts = np.stack([x * (CANVAS - 24) + 12, y * (CANVAS - 24) + 12], 1)
        cv2.polylines(c, [np.round(pts * 4).astype(np.int32)], False, 1.0, width, cv2.LINE_AA, shift=2)
    return mnist_normalise(c)


def stroke_digits(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    y = rng.integers(0, 10, n)
    x = np.stack([draw(rng, int(label)) for label in y]) if n else np.zeros((0, 28, 28), np.float32)
    return x, y.astype(np.int64)
