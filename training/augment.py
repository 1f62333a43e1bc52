"""What a camera and a crop do to a handwritten digit, applied to 28x28 MNIST-style images.

All functions take and return float32 arrays in [0, 1], white ink on black, shape (N, 28, 28), and draw
every random choice from the `np.random.Generator` passed in.

    augment(rng, x)       affine (rotation, scale, shear, shift), stroke thickness (erode/dilate), blur,
                          contrast, background, noise, ruled-line residue, imperfect crops; a share of
                          the digits left crisp (contrast, background and noise only)
    mnist_normalise(a)    any ink image -> the MNIST convention (longest side 20 px, centre of mass at
                          the centre of 28x28); used for the negatives so they look like engine crops
"""

from __future__ import annotations

import cv2
import numpy as np

SIZE = 28


def mnist_normalise(a: np.ndarray, box: int = 20, threshold: float = 0.1) -> np.ndarray:
    """Crop to the ink, scale the longest side to `box` px keeping aspect, centre by mass in 28x28."""
    a = a.astype(np.float32)
    ys, xs = np.nonzero(a > threshold * max(float(a.max()), 1e-6))
    if len(xs) == 0:
        return np.zeros((SIZE, SIZE), np.float32)
    a = a[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1]
    h, w = a.shape
    s = box / max(h, w)
    nh, nw = max(1, int(round(h * s))), max(1, int(round(w * s)))
    a = cv2.resize(a, (nw, nh), interpolation=cv2.INTER_AREA if s < 1 else cv2.INTER_LINEAR)
    out = np.zeros((SIZE, SIZE), np.float32)
    m = cv2.moments(a)
    cy, cx = (m["m01"] / m["m00"], m["m10"] / m["m00"]) if m["m00"] > 0 else (nh / 2, nw / 2)
    y0, x0 = int(round(SIZE / 2 - cy)), int(round(SIZE / 2 - cx))
    y0, x0 = min(max(y0, 0), SIZE - nh), min(max(x0, 0), SIZE - nw)
    out[y0 : y0 + nh, x0 : x0 + nw] = a
    return np.clip(out, 0, 1)


def random_affine(rng: np.random.Generator, x: np.ndarray, strength: float = 1.0) -> np.ndarray:
    """Rotation +-15 deg, scale 0.8-1.15, shear +-0.3, shift +-2 px (about the centre)."""
    out = np.empty_like(x)
    c = SIZE / 2 - 0.5
    for i in range(len(x)):
        angle = rng.normal(0, 7) * strength
        scale = np.exp(rng.normal(-0.02, 0.08) * strength)
        shear = rng.normal(0, 0.12) * strength
        aspect = np.exp(rng.normal(0, 0.08) * strength)
        m = cv2.getRotationMatrix2D((c, c), float(np.clip(angle, -20, 20)), float(np.clip(scale, 0.75, 1.2)))
        m = m @ np.array([[aspect, shear, -shear * c - (aspect - 1) * c], [0, 1, 0], [0, 0, 1]], np.float64)
        m[:, 2] += rng.normal(0, 1.0, 2) * strength
        out[i] = cv2.warpAffine(x[i], m, (SIZE, SIZE), flags=cv2.INTER_LINEAR, borderValue=0)
    return out


def stroke_width(rng: np.random.Generator, x: np.ndarray, p: float = 0.5) -> np.ndarray:
    """Thin pencil to thick marker: grey erosion or dilation at 2x resolution."""
    out = x.copy()
    for i in np.nonzero(rng.random(len(x)) < p)[0]:
        big = cv2.resize(x[i], (SIZE * 2, SIZE * 2), interpolation=cv2.INTER_LINEAR)
        k = int(rng.integers(2, 5))
        kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (k, k))
        if rng.random() < 0.55:
            big = cv2.dilate(big, kernel)
        else:
            thin = cv2.erode(big, kernel)
            if thin.max() > 0.5:  # keep the digit
                big = thin / thin.max()
        out[i] = cv2.resize(big, (SIZE, SIZE), interpolation=cv2.INTER_AREA)
    return out


def blur(rng: np.random.Generator, x: np.ndarray, p: float = 0.3) -> np.ndarray:
    out = x.copy()
    for i in np.nonzero(rng.random(len(x)) < p)[0]:
        out[i] = cv2.GaussianBlur(x[i], (0, 0), rng.uniform(0.4, 1.2))
    return out


def crop_defects(rng: np.random.Generator, x: np.ndarray, pool: np.ndarray, p: float = 0.2) -> np.ndarray:
    """Imperfect crops: a neighbour's stroke entering at a side, a digit cut at a side, a stray line."""
    out = x.copy()
    for i in np.nonzero(rng.random(len(x)) < p)[0]:
        kind = rng.integers(3)
        if kind == 0:  # neighbour intruding from the left or right by a few pixels
            other = pool[rng.integers(len(pool))]
            shift = int(rng.integers(19, 26)) * (1 if rng.random() < 0.5 else -1)
            moved = np.roll(other, shift, axis=1)
            if shift > 0:
                moved[:, :shift] = 0
            else:
                moved[:, shift:] = 0
            out[i] = np.maximum(out[i], moved * rng.uniform(0.5, 1.0))
        elif kind == 1:  # cut off one side by 1-3 px
            n = int(rng.integers(1, 4))
            side = rng.integers(4)
            if side == 0:
                out[i, :n] = 0
            elif side == 1:
                out[i, -n:] = 0
            elif side == 2:
                out[i, :, :n] = 0
            else:
                out[i, :, -n:] = 0
        else:  # residue of a ruled line or a page edge crossing the crop
            y = int(rng.integers(2, SIZE - 2))
            line = np.zeros((SIZE, SIZE), np.float32)
            cv2.line(line, (0, y), (SIZE - 1, y + int(rng.integers(-3, 4))), 1.0, 1, cv2.LINE_AA)
            out[i] = np.maximum(out[i], line * rng.uniform(0.15, 0.6))
    return out


def photometric(rng: np.random.Generator, x: np.ndarray) -> np.ndarray:
    """Contrast, uneven background and sensor noise, vectorised over the batch."""
    n = len(x)
    gain = np.where(rng.random(n) < 0.3, rng.uniform(0.45, 1.0, n), 1.0).astype(np.float32)
    gamma = np.exp(rng.normal(0, 0.25, n)).astype(np.float32)
    y = (x ** gamma[:, None, None]) * gain[:, None, None]
    # Background: a faint offset with a linear gradient (imperfect thresholding / shadow residue).
    has_bg = rng.random(n) < 0.25
    if has_bg.any():
        ramp = np.linspace(-1, 1, SIZE, dtype=np.float32)
        gx, gy = rng.normal(0, 0.05, (2, n)).astype(np.float32)
        bg = rng.uniform(0, 0.15, n).astype(np.float32)[:, None, None] + gx[:, None, None] * ramp[None, None, :]
        bg = bg + gy[:, None, None] * ramp[None, :, None]
        y = np.where(has_bg[:, None, None], np.maximum(y, np.clip(bg, 0, 1)), y)
    sigma = np.where(rng.random(n) < 0.4, rng.uniform(0.01, 0.08, n), 0.0).astype(np.float32)
    y = y + rng.normal(0, 1, x.shape).astype(np.float32) * sigma[:, None, None]
    # Salt specks.
    specks = (rng.random(x.shape) < 0.004) & (rng.random(n) < 0.2)[:, None, None]
    y = np.where(specks, rng.uniform(0.3, 1.0, x.shape).astype(np.float32), y)
    return np.clip(y, 0, 1).astype(np.float32)


def engine_style(rng: np.random.Generator, x: np.ndarray, p: float = 0.5) -> np.ndarray:
    """What the serving engine makes of a digit: the ink thresholded into a 0/1 mask at camera resolution,
    then `server.engine.crops.normalize` (20 px box, stroke fitted, centred by mass). Without the engine
    (a checkout without server/), a local imitation is used."""
    try:
        from server.engine.crops import normalize
    except ImportError:
        normalize = None
    out = x.copy()
    for i in np.nonzero(rng.random(len(x)) < p)[0]:
        f = int(rng.integers(2, 6))
        big = cv2.resize(x[i], (SIZE * f, SIZE * f), interpolation=cv2.INTER_CUBIC)
        mask = (big > rng.uniform(0.2, 0.65) * max(float(big.max()), 1e-6)).astype(np.uint8)
        ys, xs = np.nonzero(mask)
        if len(xs) < 4:
            continue
        mask = mask[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1]
        out[i] = normalize(mask) if normalize is not None else mnist_normalise(mask.astype(np.float32))
    return out


def augment(rng: np.random.Generator, x: np.ndarray, pool: np.ndarray | None = None, crisp: float = 0.35) -> np.ndarray:
    """The full crop-level augmentation for a batch of digits (N, 28, 28) float32 in [0, 1]. A share `crisp`
    is left unresampled (photometric changes only): every resampling softens the strokes, and a model that
    never sees a crisp digit learns crispness as a sign of "not a digit". Of the rest, half end as the
    engine's binary-mask crops, the other half as grey camera-like crops."""
    out = np.empty_like(x)
    as_is = rng.random(len(x)) < crisp
    if as_is.any():
        out[as_is] = photometric(rng, x[as_is])
    moved = random_affine(rng, x[~as_is])
    moved = stroke_width(rng, moved)
    moved = crop_defects(rng, moved, moved if pool is None else pool, p=0.12)
    binary = rng.random(len(moved)) < 0.5
    if binary.any():
        moved[binary] = engine_style(rng, moved[binary], p=1.0)
    if (~binary).any():
        moved[~binary] = photometric(rng, blur(rng, moved[~binary]))
    out[~as_is] = moved
    return out
