"""Benchmark images: the seed samples' ink laid on a paper-like background, at webcam, HD and phone sizes.

The ink is lifted from `samples/` (each sample's own paper removed) so several digits can share one
scene, e.g. "42" from 4.jpg and 2.jpg. Everything is seeded: every run sends the same bytes.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

import cv2
import numpy as np

SAMPLES = Path(__file__).resolve().parent.parent.parent / "samples"
WEBCAM = (320, 240)
HD = (1280, 720)
PHONE = (4000, 3000)
# Numbers shown in the streamed frames: one to four digits, like a person holding up a sheet.
NUMBERS = ("42", "7", "389", "15", "6", "2718", "93", "51")


@cache
def _ink(digit: str) -> np.ndarray:
    """Ink coverage in [0, 1] of the sample for `digit`, cropped to the digit."""
    path = next(p for p in sorted(SAMPLES.iterdir()) if p.name.split(".")[0] == digit)  # 8.1.jpg, not 81.jpg
    gray = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE).astype(np.float32)
    # The paper is the bulk of the picture; ink is what is clearly darker than the local paper.
    paper = cv2.medianBlur(gray.astype(np.uint8), 51).astype(np.float32)
    darkness = paper - gray
    alpha = np.clip((darkness - 12) / max(1.0, np.percentile(darkness, 99.5) - 12), 0, 1)
    ys, xs = np.nonzero(alpha > 0.5)
    return alpha[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1]


def _paper(width: int, height: int, rng: np.random.Generator) -> np.ndarray:
    """Off-white paper, unevenly lit, with sensor noise (BGR uint8)."""
    tint = np.array([205, 215, 222]) + rng.uniform(-10, 10, 3)
    gx = np.linspace(-1, 1, width, dtype=np.float32)[None, :] * rng.uniform(-18, 18)
    gy = np.linspace(-1, 1, height, dtype=np.float32)[:, None] * rng.uniform(-18, 18)
    # One noise tile repeated: fresh noise for 12 million pixels would take seconds to draw.
    tile = rng.normal(0, 3, (256, 256)).astype(np.float32)
    shade = gx + gy + np.tile(tile, (height // 256 + 1, width // 256 + 1))[:height, :width]
    # Channel by channel in OpenCV: NumPy broadcasting over a 4000x3000x3 float image is slow.
    return cv2.merge([cv2.add(shade, float(t), dtype=cv2.CV_8U) for t in tint])


def scene(
    number: str, size: tuple[int, int], seed: int = 0, quality: int = 90, gap: float = 0.2, share: float = 0.45,
    broken: float = 0.0,
) -> bytes:
    """A JPEG of `number` handwritten on paper: digits at most `share` of its height and 80% of its width,
    `gap` of their height apart (below 0: they touch), each cut across by a gap `broken` of its height tall."""
    rng = np.random.default_rng(seed)
    image = _paper(*size, rng)
    _write(image, number, rng, gap, share, broken)
    return _jpeg(image, quality)


def ruled_page(number: str, size: tuple[int, int], tilt: float, seed: int = 0) -> bytes:
    """`number` written on ruled paper with a red margin, photographed `tilt` degrees askew (a JPEG)."""
    width, height = size
    rng = np.random.default_rng(seed)
    big = (int(width * 1.5), int(height * 1.5))  # turned, then cut to `size`: no corner left blank
    image = _paper(*big, rng)
    gap = height // 12
    for y in range(gap // 2, big[1], gap):
        cv2.line(image, (0, y), (big[0] - 1, y), (200, 185, 170), max(1, height // 300), cv2.LINE_AA)  # pale blue
    left, top = (big[0] - width) // 2, (big[1] - height) // 2  # where the photo's frame will be
    margin = left + width // 20
    cv2.line(image, (margin, 0), (margin, big[1] - 1), (90, 90, 200), max(2, height // 200), cv2.LINE_AA)  # red
    _write(image[top : top + height, left : left + width], number, rng)
    turn = cv2.getRotationMatrix2D((big[0] / 2, big[1] / 2), tilt, 1.0)
    turn[:, 2] -= (left, top)
    return _jpeg(cv2.warpAffine(image, turn, size, flags=cv2.INTER_LINEAR), 90)


def page_edge(number: str, size: tuple[int, int], seed: int = 0) -> bytes:
    """`number` written just above the slanting lower edge of a sheet lying on a dark desk (a JPEG)."""
    width, height = size
    rng = np.random.default_rng(seed)
    image = _paper(width, height, rng)
    _write(image[: height * 2 // 3], number, rng)
    left, right = height * 0.72, height * (0.72 + rng.uniform(-0.08, 0.08))
    desk = np.array([[0, left], [width - 1, right], [width - 1, height - 1], [0, height - 1]], np.int32)
    cv2.fillPoly(image, [desk], (40, 55, 75), cv2.LINE_AA)  # dark wood
    return _jpeg(cv2.GaussianBlur(image, (0, 0), 0.8), 90)


def _write(
    image: np.ndarray, number: str, rng: np.random.Generator, gap: float = 0.2, share: float = 0.45,
    broken: float = 0.0,
) -> None:
    """Write `number` near the middle of `image` (BGR, in place): at most `share` of its height, 80% of its
    width, `gap` of the digit height between digits, each cut across by a gap `broken` of its height tall (at a
    random height between a third and two thirds of it)."""
    height, width = image.shape[:2]
    inks = [_ink(d) for d in number]
    widths = sum(a.shape[1] / a.shape[0] for a in inks) + gap * (len(inks) - 1)  # at digit height 1
    digit_h = int(min(height * share, width * 0.8 / widths))
    inks = [cv2.resize(a, (max(1, a.shape[1] * digit_h // a.shape[0]), digit_h), interpolation=cv2.INTER_AREA)
            for a in inks]
    total = sum(a.shape[1] for a in inks) + int(gap * digit_h) * (len(inks) - 1)
    x = max(0, (width - total) // 2 + int(rng.integers(-width // 20, width // 20 + 1)))
    y = (height - digit_h) // 2 + int(rng.integers(-height // 20, height // 20 + 1))
    pen = np.array(rng.choice([[40, 40, 40], [90, 40, 30], [60, 60, 70]]), np.float32)  # graphite, blue, grey
    for alpha in inks:
        if broken:
            top = int(digit_h * rng.uniform(0.33, 0.67 - broken))
            alpha[top : top + max(1, round(broken * digit_h))] = 0
        w = alpha.shape[1]
        a = alpha[:, :, None]
        region = image[y : y + digit_h, x : x + w]
        region[:] = np.clip(region * (1 - a) + pen * a, 0, 255)
        x += w + int(gap * digit_h)


def _jpeg(image: np.ndarray, quality: int) -> bytes:
    ok, jpeg = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])
    assert ok
    return jpeg.tobytes()


def frames(size: tuple[int, int] = WEBCAM, count: int = len(NUMBERS)) -> list[bytes]:
    """`count` different frames of one size, for streaming."""
    return [scene(NUMBERS[i % len(NUMBERS)], size, seed=i) for i in range(count)]


def phone_photo() -> bytes:
    """A 4000x3000 phone-camera-like photo (about 2-3 MB)."""
    return scene("2718", PHONE, seed=99, quality=92)


def photo_frames(data: Path, count: int = 40) -> list[bytes]:
    """`count` webcam-sized frames (JPEG, 320x240) cut from photos-dev's phone photos, taken evenly from its sorted
    files: the middle 4:3 of each, shrunk. None when the shared data is absent."""
    folder = data / "photos-dev" / "photo"
    if not folder.is_dir():
        return []
    paths = sorted(p for p in folder.iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
    frames = []
    for index in np.linspace(0, len(paths) - 1, count).astype(int):
        image = cv2.imread(str(paths[index]), cv2.IMREAD_COLOR)  # EXIF orientation applied
        h, w = image.shape[:2]
        cw, ch = min(w, h * 4 // 3), min(h, w * 3 // 4)
        x, y = (w - cw) // 2, (h - ch) // 2
        frames.append(_jpeg(cv2.resize(image[y : y + ch, x : x + cw], WEBCAM, interpolation=cv2.INTER_AREA), 90))
    return frames
