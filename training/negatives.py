"""Class 10, "not a digit": shapes a camera frame offers that are not digits, as 28x28 crops.

Each generator draws an ink image on a larger canvas and brings it to the MNIST convention (longest side
20 px, centred by mass), the way the serving engine brings every candidate shape to the model.

    negatives(rng, n) -> (n, 28, 28) float32 in [0, 1]

Kinds: scribbles (tangles of three to five smooth strokes), blobs and smudges, straight line fragments (kept
away from the upright slant of a "1"), page edges and corners, squared/ruled paper patches, speckle and noise
fields, zigzags and crossings-out. Fragments of digits and pairs of touching digits were tried and dropped: too
often they are readable as a digit (a corner of a 4 is a 7, two thin 1s are a 4), and training them as
"not a digit" made the model refuse 1% of MNIST test digits. Scribbles of one or two strokes were dropped for
the same reason (2026-12-03): they were the negatives nearest to most of the MNIST digits the model refused.
"""

from __future__ import annotations

import cv2
import numpy as np

from training.augment import SIZE, mnist_normalise

CANVAS = 64


def _canvas() -> np.ndarray:
    return np.zeros((CANVAS, CANVAS), np.float32)


def _bezier(rng: np.random.Generator, n_ctrl: int) -> np.ndarray:
    ctrl = rng.uniform(8, CANVAS - 8, (n_ctrl, 2))
    t = np.linspace(0, 1, 60)[:, None]
    pts = ctrl.copy()
    # de Casteljau on all t at once
    pts = np.repeat(ctrl[None], len(t), 0)
    for k in range(n_ctrl - 1, 0, -1):
        pts = pts[:, :k] * (1 - t[:, :, None]) + pts[:, 1 : k + 1] * t[:, :, None]
    return pts[:, 0]


def scribble(rng: np.random.Generator) -> np.ndarray:
    """A tangle of three to five smooth strokes: one or two are too often a digit (a 5 is a curve and a flag)."""
    c = _canvas()
    for _ in range(int(rng.integers(3, 6))):
        pts = _bezier(rng, int(rng.integers(5, 9)))
        cv2.polylines(c, [pts.astype(np.int32)], False, 1.0, int(rng.integers(2, 6)), cv2.LINE_AA)
    return c


def zigzag(rng: np.random.Generator) -> np.ndarray:
    """Crossing-out, hatching, wave: many short back-and-forth strokes."""
    c = _canvas()
    n = int(rng.integers(5, 14))
    x = np.linspace(6, CANVAS - 6, n)
    y = np.where(np.arange(n) % 2 == 0, rng.uniform(6, 24, n), rng.uniform(40, 58, n))
    if rng.random() < 0.5:
        x, y = y, x
    pts = np.stack([x, y], 1) + rng.normal(0, 2, (n, 2))
    cv2.polylines(c, [pts.astype(np.int32)], False, 1.0, int(rng.integers(2, 5)), cv2.LINE_AA)
    return c


def blob(rng: np.random.Generator) -> np.ndarray:
    c = _canvas()
    for _ in range(int(rng.integers(1, 3))):
        center = (int(rng.uniform(16, 48)), int(rng.uniform(16, 48)))
        axes = (int(rng.uniform(5, 26)), int(rng.uniform(5, 26)))
        cv2.ellipse(c, center, axes, rng.uniform(0, 180), 0, 360, float(rng.uniform(0.5, 1)), -1, cv2.LINE_AA)
    return cv2.GaussianBlur(c, (0, 0), rng.uniform(0.5, 4))


def line_fragment(rng: np.random.Generator) -> np.ndarray:
    """A straight stroke, but not near-upright (that is how a "1" looks)."""
    c = _canvas()
    angle = np.deg2rad(rng.uniform(-40, 40) + (0 if rng.random() < 0.8 else 180))
    length = rng.uniform(20, 60)
    cx, cy = rng.uniform(20, 44, 2)
    dx, dy = np.cos(angle) * length / 2, np.sin(angle) * length / 2
    p0, p1 = (int(cx - dx), int(cy - dy)), (int(cx + dx), int(cy + dy))
    cv2.line(c, p0, p1, 1.0, int(rng.integers(1, 8)), cv2.LINE_AA)
    if rng.random() < 0.3:  # a second parallel line (ruled paper)
        off = rng.uniform(8, 20)
        cv2.line(c, (p0[0], p0[1] + int(off)), (p1[0], p1[1] + int(off)), 1.0, int(rng.integers(1, 4)), cv2.LINE_AA)
    return c


def edge(rng: np.random.Generator) -> np.ndarray:
    """A page edge, a table corner or a shadow boundary: a filled half-plane or wedge."""
    yy, xx = np.mgrid[0:CANVAS, 0:CANVAS].astype(np.float32)
    a = rng.uniform(0, 2 * np.pi)
    d = (xx - CANVAS / 2) * np.cos(a) + (yy - CANVAS / 2) * np.sin(a) - rng.uniform(-20, 20)
    c = (d > 0).astype(np.float32)
    if rng.random() < 0.4:  # corner
        b = a + rng.uniform(np.pi / 3, 2 * np.pi / 3)
        d2 = (xx - CANVAS / 2) * np.cos(b) + (yy - CANVAS / 2) * np.sin(b) - rng.uniform(-15, 15)
        c *= d2 > 0
    c = cv2.GaussianBlur(c, (0, 0), rng.uniform(0.5, 5))
    return c * rng.uniform(0.3, 1.0)


def noise_field(rng: np.random.Generator) -> np.ndarray:
    """Speckle, grain, dust, or a faint smooth blotch."""
    kind = rng.integers(3)
    if kind == 0:
        c = (rng.random((CANVAS, CANVAS)) < rng.uniform(0.005, 0.05)).astype(np.float32)
        c = cv2.dilate(c, np.ones((int(rng.integers(1, 4)),) * 2, np.uint8))
    elif kind == 1:
        c = np.clip(rng.normal(0.2, rng.uniform(0.05, 0.3), (CANVAS, CANVAS)), 0, 1).astype(np.float32)
        c = cv2.GaussianBlur(c, (0, 0), rng.uniform(0.3, 1.5))
    else:
        small = rng.random((4, 4)).astype(np.float32)
        c = cv2.resize(small, (CANVAS, CANVAS), interpolation=cv2.INTER_CUBIC)
    return np.clip(c, 0, 1)


def grid(rng: np.random.Generator) -> np.ndarray:
    """A patch of squared or ruled paper: at least two lines each way (a lone "+" could be an open 4)."""
    c = _canvas()
    step = int(rng.integers(10, 22))
    t = int(rng.integers(1, 3))
    off = int(rng.integers(0, step // 2))
    for y in range(off, CANVAS, step):
        cv2.line(c, (0, y), (CANVAS - 1, y + int(rng.integers(-3, 4))), 1.0, t, cv2.LINE_AA)
    if rng.random() < 0.7:
        for x in range(off, CANVAS, step):
            cv2.line(c, (x, 0), (x + int(rng.integers(-3, 4)), CANVAS - 1), 1.0, t, cv2.LINE_AA)
    return c


GENERATORS = [scribble, zigzag, blob, line_fragment, edge, noise_field, grid]
WEIGHTS = [0.15, 0.12, 0.14, 0.15, 0.14, 0.14, 0.1]


def negatives(rng: np.random.Generator, n: int) -> np.ndarray:
    """n crops of class 10 (not a digit) in the MNIST convention, (n, 28, 28) float32 in [0, 1]."""
    out = np.zeros((n, SIZE, SIZE), np.float32)
    p = np.asarray(WEIGHTS, np.float64)
    p /= p.sum()
    for i in range(n):
        rng.random()  # once chose digit fragments; still drawn so that seeded runs reproduce the committed model
        img = GENERATORS[rng.choice(len(GENERATORS), p=p)](rng)
        if rng.random() < 0.15:  # sometimes the crop is not normalised (faint, off-centre, whole frame)
            out[i] = cv2.resize(img, (SIZE, SIZE), interpolation=cv2.INTER_AREA)
        else:
            out[i] = mnist_normalise(img)
    return out
