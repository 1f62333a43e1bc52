"""The committed ink map on real pictures: where a digit's ink is, and nothing on blank paper."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import ROOT, SAMPLES

from server.engine.decode import decode
from server.engine.inkmap import load_inkmap
from server.engine.preprocess import learned_ink

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
    assert np.abs(litert - keras).max() < 1e-3


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
