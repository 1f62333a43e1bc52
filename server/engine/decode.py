"""Bytes -> grayscale image as the user sees it (EXIF orientation applied), shrunk while decoding.

Pillow reads the header first, so the pixel limit is checked before any pixel is decoded (decompression
bombs). OpenCV decodes JPEGs, big ones at 1/2, 1/4 or 1/8 scale inside libjpeg; Pillow decodes the other formats.
A dark picture is also decoded in colour, for its brightest channel: saturated strokes on a dark screen (a blue
or purple brush) are nearly as dark as the screen in gray.
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass

import cv2
import numpy as np
from PIL import Image, UnidentifiedImageError

FORMATS = {"JPEG", "MPO", "PNG", "WEBP", "BMP", "DIB", "GIF"}
READABLE = "JPEG, PNG, WebP, BMP, GIF"
# Working resolution: big enough for small digits in a phone photo, small enough to stay fast.
WORK_MIN_SIDE = 640  # a JPEG reduced while decoding keeps at least this long side
# Anything larger is resized down after decoding. Above what a 4000x3000 JPEG at 1/4 (750k) and the page's 2048 px
# photos at 1/2 (786k) give: shrinking those further averaged thin strokes away (model card) and saved no time.
WORK_MAX_PIXELS = 800_000
DARK_PICTURE = 110  # a picture whose median gray is under this may be light strokes on a dark screen
GRAY_MODES = {"1", "L", "LA", "La", "I", "I;16", "I;16B", "I;16L", "I;16N", "F"}  # Pillow modes with no colour
EXIF_ORIENTATION = 0x0112


class ImageError(ValueError):
    """An input that is not a readable image, or is too big; `code` and `message` go to the user."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass
class Decoded:
    gray: np.ndarray  # uint8 (h, w), oriented, at working resolution
    width: int  # oriented full-resolution size
    height: int
    brightest: np.ndarray | None = None  # a dark colour picture's brightest channel, like `gray`; else None


def bad_image(detail: str) -> ImageError:
    return ImageError("bad_image", f"not an image the server can read ({READABLE}): {detail}")


def decode(data: bytes, max_pixels: int = 40_000_000) -> Decoded:
    """Decode image bytes into an oriented grayscale working image (and, for a dark colour picture, its brightest
    channel); raise ImageError if unreadable."""
    if not data:
        raise bad_image("the data is empty")
    image = _open(data, max_pixels)
    orientation = _orientation(image)
    width, height = image.size
    jpeg = image.format in ("JPEG", "MPO")
    gray = _shrink(_jpeg_pixels(data, image) if jpeg else _pixels(image))
    brightest = None
    if _mostly_dark(gray) and image.mode not in GRAY_MODES:  # a dark room's webcam frame pays about 0.3 ms
        pixels = _jpeg_pixels(data, image, colour=True) if jpeg else _pixels(image, colour=True)
        brightest = _orient(_shrink(pixels), orientation)
    if orientation in (5, 6, 7, 8):
        width, height = height, width
    return Decoded(_orient(gray, orientation), width, height, brightest)


def _mostly_dark(gray: np.ndarray) -> bool:
    """Whether the median is under DARK_PICTURE, on every 4th pixel (a count: 5x cheaper than np.median)."""
    sample = gray[::4, ::4]
    return 2 * np.count_nonzero(sample < DARK_PICTURE) > sample.size


def _open(data: bytes, max_pixels: int) -> Image.Image:
    """Read the header only, and refuse unknown formats and oversized images before decoding."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
    except Image.DecompressionBombError:
        raise _too_many_pixels(max_pixels) from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError, EOFError):
        raise bad_image("unknown or corrupt format") from None
    if image.format not in FORMATS:
        raise bad_image(f"{image.format} is not supported")
    width, height = image.size
    if width <= 0 or height <= 0:
        raise bad_image("the image has no pixels")
    if width * height > max_pixels:
        raise _too_many_pixels(max_pixels, width, height)
    return image


def _too_many_pixels(max_pixels: int, width: int = 0, height: int = 0) -> ImageError:
    size = f" is {width}x{height}" if width else ""
    return ImageError("too_many_pixels", f"the image{size}: more than the {max_pixels:,} pixels allowed")


def _orientation(image: Image.Image) -> int:
    try:
        value = image.getexif().get(EXIF_ORIENTATION, 1)
    except Exception:  # a broken EXIF block must not make a readable picture unreadable
        return 1
    return value if isinstance(value, int) and 1 <= value <= 8 else 1


def _jpeg_pixels(data: bytes, image: Image.Image, colour: bool = False) -> np.ndarray:
    """A JPEG's pixels in gray (or, with `colour`, its brightest channel), reduced inside libjpeg by the largest
    of 8, 4, 2 that leaves the long side at least WORK_MIN_SIDE: a phone photo is never decoded at full size.
    The same pixels as Pillow's `draft` gives, about 0.07 ms sooner per webcam frame. The orientation is left
    to `_orient`."""
    factor = next(f for f in (8, 4, 2, 1) if max(image.size) // f >= WORK_MIN_SIDE or f == 1)
    gray_flags = {1: cv2.IMREAD_GRAYSCALE, 2: cv2.IMREAD_REDUCED_GRAYSCALE_2, 4: cv2.IMREAD_REDUCED_GRAYSCALE_4,
                  8: cv2.IMREAD_REDUCED_GRAYSCALE_8}
    colour_flags = {1: cv2.IMREAD_COLOR, 2: cv2.IMREAD_REDUCED_COLOR_2, 4: cv2.IMREAD_REDUCED_COLOR_4,
                    8: cv2.IMREAD_REDUCED_COLOR_8}
    flags = (colour_flags if colour else gray_flags)[factor]
    pixels = cv2.imdecode(np.frombuffer(data, np.uint8), flags | cv2.IMREAD_IGNORE_ORIENTATION)
    if pixels is None:
        raise bad_image("the data is corrupt or truncated")
    return _brightest(pixels) if colour else pixels


def _pixels(image: Image.Image, colour: bool = False) -> np.ndarray:
    """Any other format's pixels in gray (or, with `colour`, its brightest channel), decoded by Pillow at full
    size (these formats cannot be reduced while decoding; `_shrink` brings them down afterwards)."""
    try:
        return _brightest(_to_rgb(image)) if colour else _to_gray(image)
    except (OSError, ValueError, SyntaxError, EOFError) as exc:
        raise bad_image(f"the data is corrupt or truncated ({exc})") from None


def _brightest(pixels: np.ndarray) -> np.ndarray:
    """The brightest of three colour channels at each pixel (NumPy's max over a 3-long axis is 10x slower)."""
    first, second, third = cv2.split(pixels)
    return cv2.max(cv2.max(first, second), third)


def _to_gray(image: Image.Image) -> np.ndarray:
    """Any mode -> uint8 gray; transparency is composited on white, 16-bit is scaled down."""
    image.seek(0)  # animated GIF/WebP/PNG: the first frame
    mode = image.mode
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
        return (np.asarray(image, dtype=np.float32) / 257.0).clip(0, 255).astype(np.uint8)
    if mode == "F":
        return np.asarray(image, dtype=np.float32).clip(0, 255).astype(np.uint8)
    if _transparent(image):
        return cv2.cvtColor(_to_rgb(image), cv2.COLOR_RGB2GRAY)
    return np.asarray(image.convert("L"))


def _transparent(image: Image.Image) -> bool:
    return (image.mode == "P" and "transparency" in image.info) or image.mode in ("RGBA", "LA", "PA", "La", "RGBa")


def _to_rgb(image: Image.Image) -> np.ndarray:
    """Any colour mode -> uint8 RGB (first frame); transparency is composited on white, as in `_to_gray`."""
    image.seek(0)
    if not _transparent(image):
        return np.asarray(image if image.mode == "RGB" else image.convert("RGB"))
    rgba = np.asarray(image.convert("RGBA"), dtype=np.float32)
    alpha = rgba[..., 3:] / 255.0
    return (rgba[..., :3] * alpha + 255.0 * (1.0 - alpha)).astype(np.uint8)


def _shrink(gray: np.ndarray) -> np.ndarray:
    height, width = gray.shape
    if height * width <= WORK_MAX_PIXELS:
        return gray
    scale = (WORK_MAX_PIXELS / (height * width)) ** 0.5
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    return cv2.resize(gray, size, interpolation=cv2.INTER_AREA)


def _orient(gray: np.ndarray, orientation: int) -> np.ndarray:
    """Apply the EXIF orientation (1-8) to the pixels, once."""
    if orientation in (2, 4, 5, 7):
        gray = gray[:, ::-1]
    rotations = {3: 2, 4: 2, 5: 1, 6: 3, 7: 3, 8: 1}  # np.rot90 turns counter-clockwise
    return np.ascontiguousarray(np.rot90(gray, rotations.get(orientation, 0)))
