"""Where the ink is: light strokes on a dark screen turned dark, the paper's brightness estimated under shadows and
uneven light, and how much darker than it each pixel is, with the thresholds that make that ink.

Pure NumPy/OpenCV, no state.
"""

from __future__ import annotations

import cv2
import numpy as np

from .decode import DARK_PICTURE

MAX_STROKE_DEPTH = 0.13  # light strokes on a dark screen: no point deeper inside them (fraction of the short side)
MAX_STROKE_SHARE = 0.3  # ... and they cover less than this share of it; the lit part of a shadowed page, more
MIN_SCREEN_RANGE = 8  # a screen's levels are spread only when its strokes are this much brighter than it
MIN_CONTRAST = 0.10  # ink must be at least this much darker than the paper around it (fraction)
MIN_PEAK_CONTRAST = 0.22  # ... and somewhere at least this dark, or it is grain, show-through or shadow
# The paper is estimated on a copy about this big (long side), by a closing this wide, then a box blur this
# wide; both are scaled to the copy's actual size.
PAPER_SIDE = 128
PAPER_KERNEL = 17
PAPER_BLUR = 9
BEYOND_PAPER = 0.7  # a paper estimate under this share of the brightest paper is a table or a deep shadow


def dark_ink(gray: np.ndarray, brightest: np.ndarray | None = None) -> np.ndarray:
    """Invert a picture of light strokes on a dark screen or board so that ink is dark, its levels spread first
    (`_stretch`). `brightest`, a dark colour picture's brightest channel, is tried first: saturated strokes are
    light in it, not in gray.

    Mostly dark is not enough: a sheet of paper on a dark desk is mostly dark too, and so is a page mostly in
    shadow. Strokes are thin and few, so the light part is inverted only when no point of it lies far inside
    and it covers little of the picture (measured: strokes at most 0.11 of the picture's short side from their
    edge and 27% of it, sheets of paper 0.16 and more, the lit band of a shadowed page 36% and more).
    """
    for picture in (brightest, gray):
        if picture is not None and _light_strokes(picture):
            return 255 - _stretch(picture)
    return gray


def _stretch(picture: np.ndarray) -> np.ndarray:
    """Spread a dark screen's levels from its median (the screen) to its brightest strokes (the 3x3-blurred
    maximum) over 0-255: dim strokes on a screen are far brighter than the screen, but would be faint ink on the
    paper that inverting makes of it. At most 255 / MIN_SCREEN_RANGE times, or noise would pass as strokes."""
    low, high = round(quantile(picture[::4, ::4].ravel(), 50)), int(cv2.blur(picture, (3, 3)).max())
    if high - low < MIN_SCREEN_RANGE:
        return picture
    return cv2.multiply(cv2.subtract(picture, low), 255 / (high - low))  # both saturate at 0 and 255


def _light_strokes(picture: np.ndarray) -> bool:
    """Whether a picture is mostly dark, with thin light strokes covering little of it (see `dark_ink`)."""
    small = np.ascontiguousarray(picture[::4, ::4])
    if quantile(small.ravel(), 50) >= DARK_PICTURE:
        return False
    _, light = cv2.threshold(small, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    if np.count_nonzero(light) >= MAX_STROKE_SHARE * light.size:
        return False
    return cv2.distanceTransform(light, cv2.DIST_L2, 3).max() < MAX_STROKE_DEPTH * min(small.shape)


def ink_strength(gray: np.ndarray) -> np.ndarray:
    """How much darker than the local paper each pixel of a dark-ink image is: uint8, 0 (paper) to 255 (black)."""
    return cv2.bitwise_not(cv2.divide(gray, _paper(gray), scale=255))


def _paper(gray: np.ndarray) -> np.ndarray:
    """Estimate the paper brightness everywhere (illumination, shadows, vignetting) without the ink.

    Closing on a small copy erases strokes thinner than about 1/8 of the picture; blurring smooths the rest,
    except over a table or deep shadow. (A softer shadow's edge can leave a band of false ink: `segment`
    rejects it later.)
    The copy is shrunk by a whole factor, which OpenCV does many times faster than any other ratio.
    """
    height, width = gray.shape
    factor = max(1, min(max(height, width) // PAPER_SIDE, height, width))  # a 300x1 strip stays 1 wide
    small = cv2.resize(
        gray[: height - height % factor, : width - width % factor],
        (max(1, width // factor), max(1, height // factor)),
        interpolation=cv2.INTER_AREA,
    )
    zoom = max(small.shape) / PAPER_SIDE  # the kernels are sized for a copy PAPER_SIDE pixels long
    kernel = np.ones((odd(PAPER_KERNEL * zoom),) * 2, np.uint8)
    small = cv2.morphologyEx(small, cv2.MORPH_CLOSE, kernel, borderType=cv2.BORDER_REPLICATE)
    blur = odd(PAPER_BLUR * zoom)
    blurred = cv2.blur(small, (blur, blur))
    # Blurring carries the paper's brightness onto the table or deep shadow beside it, and that rim reads as
    # ink along the page edge, joined to any digit near it. Where the estimate is such a region, keep it dark.
    beyond = _beyond_paper(small, zoom)
    if beyond.any():  # seldom: most pictures are all paper
        blurred = np.where(beyond, np.minimum(blurred, small), blurred)
    small = np.maximum(blurred, 1)
    return cv2.resize(small, (width, height), interpolation=cv2.INTER_LINEAR)


def _beyond_paper(paper: np.ndarray, zoom: float) -> np.ndarray:
    """Where a paper estimate (a closing: strokes gone) is a table or a deep shadow: well under the brightest
    paper, over an area half as wide again as the closing's kernel, which no stroke the closing left can be."""
    dark = (paper < BEYOND_PAPER * quantile(paper.ravel(), 95)).view(np.uint8)
    if not dark.any():
        return dark.view(bool)
    kernel = np.ones((odd(1.5 * PAPER_KERNEL * zoom),) * 2, np.uint8)
    return cv2.morphologyEx(dark, cv2.MORPH_OPEN, kernel) > 0


def odd(size: float) -> int:
    """The odd whole number nearest `size`: a kernel side."""
    return 2 * round((size - 1) / 2) + 1


def thresholds(strength: np.ndarray) -> tuple[int, int] | None:
    """(low, high) ink thresholds for this picture, None when nothing is dark enough to be ink.

    Hysteresis: pixels over `low` are ink when their stroke reaches `high` somewhere, so faint parts of a
    pencil line stay attached while paper grain stays out.
    """
    peak = int(cv2.blur(strength, (3, 3)).max())
    if peak < MIN_PEAK_CONTRAST * 255:
        return None
    high = min(max(0.45 * peak, MIN_CONTRAST * 255), 0.40 * 255)
    return round(0.6 * high), round(high)


def quantile(values: np.ndarray, percent: int) -> float:
    """A percentile by partial sort: np.percentile costs more than the rest of this test on small arrays."""
    k = min(len(values) - 1, len(values) * percent // 100)
    return float(np.partition(values, k)[k])
