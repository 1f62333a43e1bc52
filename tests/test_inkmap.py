"""The committed ink map on real pictures: where a digit's ink is, and nothing on blank paper."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from conftest import ROOT, SAMPLES

from server.engine.decode import decode
from server.engine.inkmap import SCALE, load_inkmap
from server.engine.preprocess import learned_ink
from server.engine.rows import TILE, map_rows

MODEL = ROOT / "model" / "inkmap.tflite"


@pytest.fixture(scope="module")
def ink_map():
    return load_inkmap(MODEL)


@pytest.mark.parametrize("size", [(1, 1), (31, 33), (240, 320), (241, 319), (480, 17)])
def test_the_map_has_one_chance_per_two_by_two_pixels_at_any_size(size: tuple[int, int], ink_map) -> None:
    gray = np.random.default_rng(0).integers(0, 256, size, np.uint8)
    chances = ink_map(gray)
    assert chances.shape == ((size[0] + 1) // 2, (size[1] + 1) // 2) and chances.dtype == np.float32
    assert 0 <= chances.min() and chances.max() <= 1


def test_both_backends_give_the_same_map() -> None:
    gray = decode((SAMPLES / "407__multi.jpg").read_bytes()).gray
    litert, keras = load_inkmap(MODEL, "litert")(gray), load_inkmap(MODEL.with_suffix(".keras"), "keras")(gray)
    assert np.abs(litert - keras).max() < 1e-2  # the .tflite holds float16 weights


@pytest.mark.parametrize("name", ["1.jpg", "4.jpg", "7.jpg", "9.1.png", "407__multi.jpg"])
def test_a_samples_ink_is_marked_where_the_rules_find_its_digits(name: str, ink_map) -> None:
    """The samples' digits are dark strokes on light paper: the map marks most of the darkest pixels, and
    little beside them."""
    gray = decode((SAMPLES / name).read_bytes()).gray
    marked = learned_ink(gray, ink_map) > 0
    dark = gray < np.percentile(gray, 1)
    assert marked[dark].mean() > 0.6
    assert marked.mean() < 0.25


def test_blank_paper_is_not_marked(ink_map) -> None:
    gray = decode((SAMPLES / "blank__page.jpg").read_bytes()).gray
    assert learned_ink(gray, ink_map).sum() < 50


def _written(digit_height: float, size: tuple[int, int] = (750, 1000)) -> np.ndarray:
    """A 1000x750 photo of paper with '47' in bold template strokes `digit_height` px tall, as the engine decodes it."""
    return _scene(digit_height, size)[0]


def _scene(digit_height: float, size: tuple[int, int]) -> tuple[np.ndarray, list[tuple[int, int, int, int]]]:
    from training.scenes import encode_jpeg, ink_scene
    from training.strokes import draw as stroke

    rng = np.random.default_rng(3)
    digits = [(stroke(rng, d) * 255).astype(np.uint8) for d in (4, 7)]
    scene = ink_scene(rng, digits, *size, digit_height=digit_height)
    return decode(encode_jpeg(scene.image, 90)).gray, scene.boxes


def test_small_digits_are_found_again_on_the_picture_enlarged_where_they_are(ink_map) -> None:
    """Digits 18 px tall in a webcam frame (their ink 13 px) are 7 map pixels: their row is found again on a tile of
    the picture around them enlarged (rows.CLOSER), and its box is still where they are, in the frame's map pixels."""
    gray, boxes = _scene(18, (240, 320))
    shapes = []

    def recorded(picture: np.ndarray) -> np.ndarray:
        shapes.append(picture.shape)
        return ink_map(picture)

    (row,) = map_rows(gray, recorded).rows
    assert shapes == [gray.shape, TILE]
    x0, y0 = min(x for x, _, _, _ in boxes) / SCALE, min(y for _, y, _, _ in boxes) / SCALE
    x1, y1 = max(x + w for x, _, w, _ in boxes) / SCALE, max(y + h for _, y, _, h in boxes) / SCALE
    x, y, w, h = row.box
    assert abs(x - x0) <= 1.5 and abs(y - y0) <= 1.5 and abs(x + w - x1) <= 1.5 and abs(y + h - y1) <= 1.5


def test_a_big_picture_is_mapped_on_its_overview_and_small_digits_at_working_size(ink_map) -> None:
    """Digits half the photo tall are found on the overview (one map pixel is many of the picture's); digits 30 px
    tall in the same photo are too small there, and are found at the working size."""
    big = map_rows(_written(400), ink_map)
    assert big.pixel > SCALE and len(big.rows) == 1
    small = map_rows(_written(30), ink_map)
    assert small.pixel == SCALE
    assert 30 / SCALE * 0.3 < max(row.box[3] for row in small.rows) < 30 / SCALE * 1.2


def test_a_webcam_frame_is_its_own_overview(ink_map) -> None:
    gray = decode((SAMPLES / "407__multi.jpg").read_bytes()).gray
    frame = cv2.resize(gray, (320, 240), interpolation=cv2.INTER_AREA)
    assert map_rows(frame, ink_map).pixel == SCALE
