"""The recognition engine on real pictures with the committed model: samples, orientation, formats, bad input."""

from __future__ import annotations

import io
import struct
import zlib
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
import pytest
from conftest import SAMPLES, sample_label
from PIL import Image, ImageDraw, ImageOps

from server.config import load_config
from server.engine import MIN_CONFIDENCE, Engine, ImageError, Prepared, assemble, prepare
from server.engine.decode import WORK_MAX_PIXELS, decode
from tests.bench import images

SAMPLE_PATHS = sorted(p for p in SAMPLES.iterdir() if p.suffix.lower() in {".jpg", ".png"})
MULTI = SAMPLES / "407__multi.jpg"
DIGIT = SAMPLES / "4.jpg"


def load_engine(backend: str) -> Engine:
    """The rules engine with the committed networks on `backend`, as the server runs it (DIGITS_MODEL_PATH and
    DIGITS_READER_PATH can point at other models)."""
    return Engine.from_config(replace(load_config([]), engine="rules", backend=backend))


@pytest.fixture(scope="module")
def rules() -> Engine:
    return load_engine(load_config([]).backend)


@pytest.fixture(scope="module")
def keras_backend() -> Engine:
    return load_engine("keras")


def read(data: bytes, rules: Engine) -> dict:
    (result,) = rules.recognize([data])
    if isinstance(result, ImageError):
        raise result
    return result


def encode(image: Image.Image, fmt: str, **params: object) -> bytes:
    buf = io.BytesIO()
    image.save(buf, fmt, **params)
    return buf.getvalue()


@pytest.mark.parametrize("path", SAMPLE_PATHS, ids=lambda p: p.name)
def test_each_sample_is_read(path: Path, rules: Engine) -> None:
    result = read(path.read_bytes(), rules)
    assert result["number"] == (sample_label(path) or None)
    if result["number"] is None:
        assert result["reason"] and result["digits"] == []


def test_multi_digit_number_in_order_with_boxes(rules: Engine) -> None:
    result = read(MULTI.read_bytes(), rules)
    assert result["number"] == "407"
    xs = [d["box"][0] for d in result["digits"]]
    assert xs == sorted(xs)
    for digit in result["digits"]:
        x, y, w, h = digit["box"]
        assert 0 <= x and x + w <= result["width"] and 0 <= y and y + h <= result["height"]
        assert len(digit["top3"]) == 3 and digit["top3"][0] == [digit["value"], digit["confidence"]]


# The stored pixels for each EXIF orientation: turned so that applying the tag shows the original again.
STORED = {3: Image.Transpose.ROTATE_180, 6: Image.Transpose.ROTATE_90, 8: Image.Transpose.ROTATE_270}


@pytest.mark.parametrize("orientation", sorted(STORED))
def test_exif_orientation_is_applied_once(orientation: int, rules: Engine) -> None:
    original = Image.open(MULTI)
    stored = original.transpose(STORED[orientation])
    exif = Image.Exif()
    exif[0x0112] = orientation
    data = encode(stored, "JPEG", exif=exif, quality=92)
    assert ImageOps.exif_transpose(Image.open(io.BytesIO(data))).size == original.size  # the test's own premise

    result = read(data, rules)
    assert result["number"] == "407"
    assert (result["width"], result["height"]) == original.size
    upright = read(MULTI.read_bytes(), rules)
    for got, want in zip(result["digits"], upright["digits"], strict=True):
        assert np.allclose(got["box"], want["box"], atol=6)


@pytest.mark.parametrize("kind", ["PNG", "JPEG"])
def test_decoded_pixels_match_pillow_for_every_orientation(kind: str) -> None:
    base = Image.open(DIGIT).convert("RGB").resize((60, 40))
    for orientation in range(1, 9):
        exif = Image.Exif()
        exif[0x0112] = orientation
        data = encode(base, kind, exif=exif)
        want = np.asarray(ImageOps.exif_transpose(Image.open(io.BytesIO(data))).convert("L"))
        assert np.array_equal(decode(data).gray, want), orientation


@pytest.mark.parametrize(
    "make",
    [
        lambda im: encode(im, "PNG"),
        lambda im: encode(im, "WEBP", quality=90),
        lambda im: encode(im, "BMP"),
        lambda im: encode(im.convert("P", palette=Image.Palette.ADAPTIVE), "PNG"),
        lambda im: encode(im.convert("CMYK"), "JPEG", quality=92),
        lambda im: encode(Image.fromarray(np.asarray(im.convert("L")).astype(np.uint16) * 257), "PNG"),
        lambda im: encode(im.convert("L"), "JPEG"),
    ],
    ids=["png", "webp", "bmp", "palette-png", "cmyk-jpeg", "16bit-png", "gray-jpeg"],
)
def test_formats_decode_to_the_same_number(make: object, rules: Engine) -> None:
    assert read(make(Image.open(MULTI).convert("RGB")), rules)["number"] == "407"


def test_animated_gif_uses_the_first_frame(rules: Engine) -> None:
    first = Image.open(MULTI).convert("RGB")
    blank = Image.new("RGB", first.size, "white")
    data = encode(first, "GIF", save_all=True, append_images=[blank], duration=100, loop=0)
    assert Image.open(io.BytesIO(data)).n_frames == 2
    assert read(data, rules)["number"] == "407"


def test_transparency_is_composited_on_white(rules: Engine) -> None:
    # Dark ink on a fully transparent background whose hidden colour is black: only compositing on white
    # makes the ink visible.
    gray = np.asarray(Image.open(MULTI).convert("L"))
    rgba = np.zeros((*gray.shape, 4), np.uint8)
    rgba[..., 3] = cv2.adaptiveThreshold(gray, 255, cv2.ADAPTIVE_THRESH_MEAN_C, cv2.THRESH_BINARY_INV, 51, 15)
    assert read(encode(Image.fromarray(rgba, "RGBA"), "PNG"), rules)["number"] == "407"


def test_light_strokes_on_a_dark_screen(rules: Engine) -> None:
    inverted = 255 - np.asarray(Image.open(DIGIT).convert("L"))
    assert read(encode(Image.fromarray(inverted), "PNG"), rules)["number"] == "4"


def coloured_screen(colour: tuple[int, int, int], screen_colour: tuple[int, int, int] = (22, 20, 26)) -> Image.Image:
    """A "7" drawn with a coloured brush on a dark drawing app."""
    screen = Image.new("RGB", (320, 240), screen_colour)
    ImageDraw.Draw(screen).line([(110, 60), (205, 60), (150, 190)], fill=colour, width=14, joint="curve")
    return screen


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "RGBA-PNG"])
@pytest.mark.parametrize(
    ("colour", "screen_colour"),
    [
        ((40, 20, 230), (22, 20, 26)),
        ((140, 0, 170), (22, 20, 26)),
        ((200, 0, 90), (22, 20, 26)),
        ((20, 0, 220), (35, 35, 35)),
        ((70, 70, 70), (22, 20, 26)),
        ((30, 80, 30), (22, 20, 26)),
    ],
    ids=["blue", "purple", "magenta", "blue-on-grey", "dim-grey", "dim-green"],
)
def test_coloured_strokes_on_a_dark_screen(
    fmt: str, colour: tuple[int, int, int], screen_colour: tuple[int, int, int], rules: Engine
) -> None:
    """Saturated strokes are nearly as dark as the screen in gray, or darker (pure blue is about 30 of 255), so the
    engine looks at the brightest channel of a dark picture too; and dim strokes, though two or three times as
    bright as the screen, would be faint ink once the picture is inverted, so the screen's levels are spread
    first. An opaque screenshot with an alpha channel is read the same."""
    screen = coloured_screen(colour, screen_colour)
    assert screen.convert("L").getpixel((150, 60)) < 80  # dark in gray: the point of the test
    data = {
        "JPEG": lambda: encode(screen, "JPEG", quality=90),
        "PNG": lambda: encode(screen, "PNG"),
        "RGBA-PNG": lambda: encode(screen.convert("RGBA"), "PNG"),
    }[fmt]()
    assert read(data, rules)["number"] == "7"


@pytest.mark.parametrize("orientation", [3, 6, 8])
def test_coloured_strokes_on_a_dark_screen_keep_the_exif_orientation(orientation: int, rules: Engine) -> None:
    exif = Image.Exif()
    exif[0x0112] = orientation
    stored = coloured_screen((20, 0, 220), (35, 35, 35)).transpose(STORED[orientation])  # read by its blue only
    result = read(encode(stored, "JPEG", exif=exif, quality=90), rules)
    assert (result["number"], result["width"], result["height"]) == ("7", 320, 240)


@pytest.mark.parametrize(
    "image",
    [
        np.full((240, 320), 255, np.uint8),
        np.full((240, 320), 20, np.uint8),
        np.random.default_rng(0).integers(0, 256, (240, 320), dtype=np.uint8),
        cv2.GaussianBlur(np.random.default_rng(1).integers(90, 200, (480, 640), dtype=np.uint8), (0, 0), 2),
    ],
    ids=["white", "black", "noise", "blurred-noise"],
)
def test_no_digit_in_blank_or_noise(image: np.ndarray, rules: Engine) -> None:
    result = read(encode(Image.fromarray(image), "PNG"), rules)
    assert result["number"] is None and result["digits"] == [] and result["reason"]


def _dark_desk(sheet: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """`sheet` (grey) lying on a dark desk that fills more than half of a 640x480 frame, slightly turned."""
    desk = np.clip(rng.normal(45, 6, (480, 640)), 0, 255).astype(np.uint8)
    sheet = cv2.resize(sheet, (300, 225), interpolation=cv2.INTER_AREA)
    turn = cv2.getRotationMatrix2D((150, 112), 6, 1.0)
    turn[:, 2] += (300, 200)
    inside = cv2.warpAffine(np.full_like(sheet, 255), turn, (640, 480)) > 128
    desk[inside] = cv2.warpAffine(sheet, turn, (640, 480))[inside]
    return desk


def test_sheet_on_a_dark_desk_is_not_read_as_light_ink(rules: Engine) -> None:
    """Mostly dark, yet not a dark screen: the light area is a sheet of paper, far too big for strokes."""
    rng = np.random.default_rng(5)
    sheet = np.asarray(Image.open(MULTI).convert("L"))
    assert read(encode(Image.fromarray(_dark_desk(sheet, rng)), "PNG"), rules)["number"] == "407"
    blank = np.full((225, 300), 225, np.uint8)
    assert read(encode(Image.fromarray(_dark_desk(blank, rng)), "PNG"), rules)["number"] is None


@pytest.mark.parametrize("squared", [False, True], ids=["ruled-with-margin", "squared"])
def test_paper_lines_are_not_digits(squared: bool, rules: Engine) -> None:
    """Ruled and squared paper: lines that run across the whole picture, upright ones included (a "1")."""
    page = np.full((480, 640), 235, np.uint8)
    for y in range(20, 480, 32):
        cv2.line(page, (0, y), (639, y + 6), 150, 1, cv2.LINE_AA)
    for x in range(40, 640, 32) if squared else [90]:
        cv2.line(page, (x, 0), (x - 4, 479), 120, 2 if x == 90 else 1, cv2.LINE_AA)
    page = cv2.GaussianBlur(page, (0, 0), 0.7)
    assert read(encode(Image.fromarray(page), "JPEG", quality=90), rules)["number"] is None


@pytest.mark.parametrize("length", [0.5, 0.6, 0.8])
def test_a_margin_line_running_out_of_the_picture_is_not_a_digit(length: float, rules: Engine) -> None:
    """A sheet on a dark desk, seen from its top edge: its red margin runs from that edge out through the bottom
    of the picture, as one long thin stroke (it was read "1"). A "1" beside it is still read."""
    page = np.full((240, 320), 40, np.uint8)
    top = round(240 * (1 - length))
    page[top:] = 215
    cv2.line(page, (100, top), (102, 239), 150, 2, cv2.LINE_AA)
    page = cv2.GaussianBlur(page, (0, 0), 0.7)
    assert read(encode(Image.fromarray(page), "JPEG", quality=90), rules)["number"] is None
    cv2.line(page, (200, top + 30), (196, top + 30 + round(0.25 * 240 * length)), 30, 4, cv2.LINE_AA)
    assert read(encode(Image.fromarray(page), "JPEG", quality=90), rules)["number"] == "1"


@pytest.mark.parametrize("number", ["0", "1"])
def test_a_tightly_cropped_digit_touching_the_frame_is_read(number: str, rules: Engine) -> None:
    """An upload cropped to the digit: its strokes touch the top and the bottom of the picture. The "1" is no line
    running out of the picture; the "0" is no strip of desk across it (a rule once tried and taken back)."""
    page = np.full((200, 160), 235, np.uint8)
    if number == "0":
        cv2.ellipse(page, (80, 100), (45, 96), 0, 0, 360, 30, 8, cv2.LINE_AA)
    else:
        cv2.line(page, (84, 0), (76, 199), 30, 10, cv2.LINE_AA)
    assert read(encode(Image.fromarray(page), "PNG"), rules)["number"] == number


@pytest.mark.parametrize("tilt", [-7, -2, 3, 8])
def test_tilted_ruled_page(tilt: float, rules: Engine) -> None:
    """A phone held askew over ruled paper with a red margin: the lines are erased however they lean (a
    leaning margin was once read as "1"), and the digits they cross are kept whole."""
    for size in (images.WEBCAM, (640, 480)):
        for number in ("47", "15"):
            assert read(images.ruled_page(number, size, tilt, seed=2), rules)["number"] == number
        assert read(images.ruled_page("", size, tilt), rules)["number"] is None


@pytest.mark.parametrize("gap", [-0.2, -0.15])
def test_touching_digits_are_read_apart(gap: float, rules: Engine) -> None:
    """Digits written into each other make one shape; the engine also reads it cut in parts (a "47" was "4")."""
    for size in (images.WEBCAM, (640, 480)):
        for number in ("47", "71", "42"):
            assert read(images.scene(number, size, seed=1, gap=gap), rules)["number"] == number


def written_into_each_other(number: str, seed: int, overlap: float = 0.15, height: int = 120) -> bytes:
    """`number` in template strokes (training/strokes.py), each digit overlapping the one before by `overlap` of
    its width: one connected shape on grey paper (a 640x480 JPEG)."""
    from training.scenes import encode_jpeg
    from training.strokes import draw

    rng = np.random.default_rng(seed)
    page = np.full((480, 640), 225, np.float32)
    x = 80
    for digit in number:
        ink = draw(rng, int(digit))
        ys, xs = np.nonzero(ink > 0.2)
        ink = ink[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1]
        width = max(1, round(ink.shape[1] * height / ink.shape[0]))
        ink = cv2.resize(ink, (width, height))
        region = page[180 : 180 + height, x : x + width]
        region[:] = np.minimum(region, 225 * (1 - ink) + 40 * ink)
        x += round(width * (1 - overlap))
    return encode_jpeg(cv2.cvtColor(page.astype(np.uint8), cv2.COLOR_GRAY2BGR), 90)


@pytest.mark.parametrize(("number", "seed"), [("445", 14), ("5823", 20)])
def test_three_or_four_digits_written_into_each_other(number: str, seed: int, rules: Engine) -> None:
    """One shape over twice as wide as tall: it is read cut in three or four parts (it used to be dropped as too
    wide for a digit). Many such shapes are still misread: the cuts fall where equal parts would meet."""
    assert read(written_into_each_other(number, seed), rules)["number"] == number


@pytest.mark.parametrize(("number", "size"), [("58", (640, 480)), ("83", (640, 480)), ("947", (640, 480)),
                                            ("947", (1280, 720))])
def test_digits_broken_across_are_read_whole(number: str, size: tuple[int, int], rules: Engine) -> None:
    """Each digit cut across by a gap of 8% of its height, so that it falls into a top and a bottom piece. The rules
    alone read these "500", "67", "9417" (a piece read as a digit of its own); the line reader reads the row whole.
    Of 32 such scenes (8 numbers, 2 sizes, 2 seeds) the engine reads 15, the rules alone 11."""
    assert read(images.scene(number, size, seed=3, broken=0.08), rules)["number"] == number


@pytest.mark.parametrize("size", [(640, 480), (1280, 720)])
def test_two_digits_written_into_each_other_are_both_read(size: tuple[int, int], rules: Engine) -> None:
    """A "5" whose flag runs into the "8" beside it: the rules alone read "8". Of 32 scenes of digits written into
    each other like this (8 numbers, 2 sizes, 2 seeds) the engine reads 7, the rules alone 4."""
    assert read(images.scene("58", size, seed=3, gap=-0.15), rules)["number"] == "58"


@pytest.mark.parametrize("stroke", ["pencil", "ballpoint", "marker"])
@pytest.mark.parametrize(("size", "count"), [(0.12, 3), (0.3, 3), (0.6, 1)])
def test_thin_and_bold_strokes_at_small_and_large_sizes(stroke: str, size: float, count: int,
                                                        rules: Engine) -> None:
    """Digits drawn in template strokes (training/strokes.py) with a pen from a sharp pencil to a fat marker, their
    ink 12% to 60% of a 640x480 frame's height: 8 of 10 read at least. (Hairline strokes and a marker's digit
    filling the frame are not read yet: the model card's known limits.)"""
    from training.scenes import Look, digit_scene, encode_jpeg
    from training.strokes import draw

    right = 0
    for k in range(10):
        rng = np.random.default_rng([k, 7])
        number = [int(d) for d in rng.integers(0, 10, count)]
        inks = [(draw(rng, d) * 255).astype(np.uint8) for d in number]
        look = Look(stroke=stroke, size=size, paper="white", lighting="even")
        image, _ = digit_scene(rng, inks, 480, 640, look=look)
        right += read(encode_jpeg(image, 90), rules)["number"] == "".join(map(str, number))
    assert right >= 8


def test_digits_just_above_a_page_edge(rules: Engine) -> None:
    """A sheet on a dark desk: the paper estimate used to spill over the edge, so a rim of the desk read as ink,
    joined the digits near it or made them look too small beside it."""
    for seed, number in enumerate(("11", "47", "2718")):
        for size in (images.WEBCAM, (640, 480)):
            assert read(images.page_edge(number, size, seed), rules)["number"] == number
    assert read(images.page_edge("", (640, 480)), rules)["number"] is None


def template_scene(seed: int) -> tuple[bytes, str]:
    """A generated photo (the training scenes' renderer) of one to three template digits, and its number."""
    from training.scenes import digit_scene, encode_jpeg
    from training.strokes import stroke_digits

    rng = np.random.default_rng(seed)
    x, y = stroke_digits(rng, int(rng.integers(1, 4)))
    image, boxes = digit_scene(rng, [(digit * 255).astype(np.uint8) for digit in x], 480, 640)
    return encode_jpeg(image, 90), "".join(str(value) for value, box in zip(y, boxes, strict=True) if box[2] > 0)


# Generated photos (template digits, `template_scene`) that the engine once misread, and why. Each seed's number
# is written out so that a change to the scene generator shows.
ONCE_MISREAD = {
    # A page edge on a dark desk or a shadow's rim was grouped with the digits beside it, or, as the tallest
    # shape, made them look like specks: a "457" near a page edge with a margin, a "1" reaching the edge of the
    # sheet, a "332" under a shadow.
    "page-edge": [(169, "457"), (291, "1"), (393, "332")],
    # A big digit stood out from the paper but was grouped with a faint piece of shadow beside it, and the group
    # as a whole did not: the digit was dropped ("77" read "7", "042" read "04").
    "big-digit-beside-shadow": [(141, "77"), (285, "042"), (321, "61"), (578, "382")],
    # Ruled lines crossing thick strokes ("08" and "040" on squared paper, "67" and a marker "29" on lined paper)
    # were kept whole when thick ink lay on much of them, and a digit joined to one was dropped. Now a line is
    # erased except along the stretches where thick ink runs on it.
    "ruled-line-through-thick-digits": [(230, "08"), (577, "67"), (659, "040"), (788, "29")],
    # A page mostly in shadow is mostly dark like a screen, and its lit patch no deeper than a thick stroke; it
    # covers far more of the picture than strokes do. A "55" in dim light was inverted and read as no digit.
    "dim-page-taken-for-a-screen": [(423, "55")],
    # The edge of a shadow or of a patch of glare across a digit: the ring around it is dark on one side only, and
    # the digit was no darker than the ring's darkest fifth ("20" read "2"; a "3", a "4" and a "1" read as none).
    "shadow-edge-across-a-digit": [(309, "20"), (457, "3"), (503, "4"), (603, "1")],
    # A digit touching the rim of a shadow: the two were one shape, which did not stand out from the paper, and the
    # digit was dropped with it ("922" read "92", a "725" read as none). Now the rim is peeled away first.
    "digit-joined-to-a-shadow-rim": [(10, "922"), (666, "725")],
}


@pytest.mark.parametrize(
    ("seed", "number"),
    [case for cases in ONCE_MISREAD.values() for case in cases],
    ids=[f"{why}-{seed}" for why, cases in ONCE_MISREAD.items() for seed, _ in cases],
)
def test_generated_photos_once_misread(seed: int, number: str, rules: Engine) -> None:
    data, drawn = template_scene(seed)
    assert read(data, rules)["number"] == drawn == number


def test_big_digits_joined_only_through_shadow_pieces_stay_apart() -> None:
    """Two big dark strokes that stand out, grouped only through a zigzag of faint patches under them: kept as
    two candidates (taken together, the columns between them held no ink and cutting the pair raised)."""
    from server.engine.segment import find_digits

    gray, mask = np.full((300, 400), 220, np.uint8), np.zeros((300, 400), np.uint8)
    for x in (100, 260):
        gray[60:150, x : x + 12], mask[60:150, x : x + 12] = 30, 1
    for k, x in enumerate((60, 110, 160, 210, 250)):
        y = 155 if k % 2 == 0 else 190
        gray[y : y + 30, x : x + 70], mask[y : y + 30, x : x + 70] = 190, 1
    strong = gray < 100
    strong[[155, 190]] |= mask[[155, 190]] > 0  # each patch reaches strong ink somewhere, as grain does
    assert [c.box for c in find_digits(mask, strong, gray)] == [(100, 60, 12, 90), (260, 60, 12, 90)]


@pytest.mark.parametrize("paper", [255, 240], ids=["white-paper", "grey-paper"])
def test_a_stroke_crossing_a_shadows_edge_stands_out(paper: int) -> None:
    """A "1" whose lower part lies in a shadow: its ink as a whole is no darker than the ring's shadowed fifth,
    but each part is darker than the paper beside it. Pure white paper (glare, a scan) once failed this."""
    from server.engine.segment import find_digits

    gray = np.full((400, 200), paper, np.uint8)
    gray[260:] = 110  # the shadow
    gray[40:260, 95:107], gray[260:360, 95:107] = 100, 60  # the stroke, in the light and in the shadow
    mask = np.zeros_like(gray)
    mask[40:360, 95:107] = 1
    assert [c.box for c in find_digits(mask, mask > 0, gray)] == [(95, 40, 12, 320)]


@pytest.mark.parametrize(
    ("rows", "cols", "level"),
    [((60, 120), (60, 75), 205), ((0, 100), (60, 64), 40)],
    ids=["a-smudge-fading-into-the-paper", "a-line-running-out-of-the-picture"],
)
def test_a_small_digit_is_not_outscaled_by_a_shape_that_is_no_digit(
    rows: tuple[int, int], cols: tuple[int, int], level: int
) -> None:
    """A small dark "1" beside a taller shape that is no digit: a faint smudge no darker than the paper around it,
    or a dark line from the picture's edge. Either once set the scale (a digit is at least a third as tall as the
    tallest shape) and the "1" was dropped."""
    from server.engine.segment import find_digits

    gray, mask = np.full((240, 320), 220, np.uint8), np.zeros((240, 320), np.uint8)
    gray[slice(*rows), slice(*cols)], mask[slice(*rows), slice(*cols)] = level, 1
    gray[100:118, 200:204], mask[100:118, 200:204] = 40, 1  # the "1"
    assert [c.box for c in find_digits(mask, mask > 0, gray)] == [(200, 100, 4, 18)]


def test_a_digit_beside_a_peeled_rim_is_still_judged_against_the_paper() -> None:
    """A dark "0" touching a faint rim (an L, like a shadow's edge) is peeled out of it; a lighter stroke a few
    pixels inside the rim's corner, which never touched it, is still compared with the paper, not with the rim."""
    from server.engine.segment import find_digits

    gray, mask = np.full((200, 300), 220, np.uint8), np.zeros((200, 300), np.uint8)
    for rows, cols, level in [
        ((40, 170), (100, 106), 180), ((164, 170), (100, 250), 180),  # the rim
        ((122, 162), (108, 114), 150), ((156, 162), (108, 130), 150),  # the lighter stroke
    ]:
        gray[slice(*rows), slice(*cols)], mask[slice(*rows), slice(*cols)] = level, 1
    cv2.rectangle(gray, (70, 110), (100, 150), 30, 5)  # the "0"
    cv2.rectangle(mask, (70, 110), (100, 150), 1, 5)
    assert (108, 122, 22, 40) in [c.box for c in find_digits(mask, gray < 160, gray)]


@pytest.mark.parametrize("size", [(1, 1), (1, 300), (40000, 1), (2, 129), (5, 5)], ids=lambda s: f"{s[0]}x{s[1]}")
def test_degenerate_sizes_give_no_digit(size: tuple[int, int], rules: Engine) -> None:
    """Strips and single pixels (found by the fuzzer: a 1x1 BMP once crashed the paper estimate)."""
    for fmt in ("BMP", "PNG"):
        result = read(encode(Image.new("L", size, 30), fmt), rules)
        assert result["number"] is None and result["reason"]


def _png_header(width: int, height: int) -> bytes:
    """A PNG that claims a huge size: a decompression bomb's header, without the bomb."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(bytes(64))) + chunk(b"IEND", b"")


@pytest.mark.parametrize(
    ("data", "code", "words"),
    [
        (b"", "bad_image", "empty"),
        (b"hello, this is text and not an image", "bad_image", "not an image"),
        (b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n", "bad_image", "not an image"),
        (DIGIT.read_bytes()[:3000], "bad_image", "truncated"),
        (DIGIT.read_bytes()[:200], "bad_image", "not an image"),
        (DIGIT.read_bytes()[:1000] + bytes(range(256)) * 40, "bad_image", "corrupt"),
        (_png_header(100_000, 100_000), "too_many_pixels", "pixels"),
        (_png_header(7000, 6000), "too_many_pixels", "7000x6000"),
    ],
    ids=["empty", "text", "pdf", "truncated", "header-only", "corrupt", "bomb", "over-limit"],
)
def test_bad_input_raises_image_error(data: bytes, code: str, words: str) -> None:
    with pytest.raises(ImageError) as info:
        prepare(data)
    assert info.value.code == code
    assert words in info.value.message


def test_max_pixels_is_configurable(rules: Engine) -> None:
    data = DIGIT.read_bytes()
    (result,) = replace(rules, max_pixels=100_000).recognize([data])
    assert isinstance(result, ImageError) and result.code == "too_many_pixels"


def test_recognize_keeps_errors_in_place(rules: Engine) -> None:
    results = rules.recognize([DIGIT.read_bytes(), b"junk", MULTI.read_bytes()])
    assert [r["number"] if isinstance(r, dict) else r.code for r in results] == ["4", "bad_image", "407"]


def test_big_photo_is_shrunk_while_decoding_and_boxes_are_full_size(rules: Engine) -> None:
    big = Image.open(MULTI).convert("RGB").resize((4000, 3000), Image.Resampling.BICUBIC)
    data = encode(big, "JPEG", quality=85)
    decoded = decode(data)
    assert decoded.gray.size <= WORK_MAX_PIXELS and (decoded.width, decoded.height) == (4000, 3000)
    result = read(data, rules)
    assert result["number"] == "407"
    x, y, w, h = result["digits"][-1]["box"]
    assert x + w > 2000 and y + h > 1500  # the 7 sits in the lower half, past the middle


@pytest.mark.parametrize("number", ["2718", "305", "96", "4"])
def test_small_digits_in_a_big_photo(number: str, rules: Engine) -> None:
    """Digits 70 px tall in a 4000x3000 photo, 2.3% of its height (a 5 mm number on a page that fills the frame):
    about 18 px of the working image, where an earlier rule wanted 3% of the picture."""
    paper = np.full((3000, 4000), 208, np.uint8)
    cv2.putText(paper, number, (2400, 1800), cv2.FONT_HERSHEY_SIMPLEX, 70 / 22, 60, 8, cv2.LINE_AA)
    assert read(encode(Image.fromarray(paper), "JPEG", quality=90), rules)["number"] == number


@pytest.mark.parametrize("number", ["42", "15", "2718", "51"])
def test_small_pencil_digits_in_a_page_sized_photo(number: str, rules: Engine) -> None:
    """The seed samples' pencil and ballpoint ink 3% as tall as a 2048x1536 photo (what the page sends for a
    phone photo): 46 px, strokes of 1-2 px in the working image. Shrinking it below the 1/2-scale decode lost
    them all; "389" and "93" at this size still come back wrong (the 8's loops, the 3 read as a 2)."""
    assert read(images.scene(number, (2048, 1536), share=0.03), rules)["number"] == number


def test_faint_pencil_numbers_are_read_whole(rules: Engine) -> None:
    """Thin pencil and ballpoint strokes break into pieces at webcam size (an 8 into its two loops, a curly
    2 into three): each number must still come back whole. These are the frames `make bench` streams."""
    frames = images.frames(images.WEBCAM, len(images.NUMBERS)) + [images.phone_photo()]
    numbers = [read(frame, rules)["number"] for frame in frames]
    assert numbers == [*images.NUMBERS, "2718"]


def test_prepared_follows_the_contract(rules: Engine) -> None:
    prepared = prepare(MULTI.read_bytes())
    assert isinstance(prepared, Prepared)
    assert prepared.crops.dtype == np.float32 and prepared.crops.shape[1:] == (28, 28, 1)
    assert len(prepared.boxes) == len(prepared.crops) >= 3
    assert 0.0 <= prepared.crops.min() and prepared.crops.max() <= 1.0
    assert set(prepared.timings) == {"decode_ms", "preprocess_ms"}
    probs = rules.classifier.classify(prepared.crops)
    assert probs.shape == (len(prepared.crops), 11) and np.allclose(probs.sum(axis=1), 1.0, atol=1e-4)
    assert rules.classifier.classify(np.zeros((0, 28, 28, 1), np.float32)).shape == (0, 11)
    assert rules.classifier.classify(np.zeros((70, 28, 28, 1), np.float32)).shape == (70, 11)


@pytest.mark.parametrize("count", [1, 3, 16, 100, 127])
def test_served_graph_is_the_committed_keras_model(count: int, rules: Engine, keras_backend) -> None:
    """model/digits.tflite, which the server runs, is model/digits.keras (127 crops use every batch size a call
    is split into), and each crop's answer does not depend on the others in its batch."""
    crops = np.resize(prepare(MULTI.read_bytes()).crops, (count, 28, 28, 1))
    crops = crops * np.linspace(0.6, 1.0, count, dtype=np.float32)[:, None, None, None]  # no two alike
    probs = rules.classifier.classify(crops)
    np.testing.assert_allclose(probs, keras_backend.classifier.classify(crops), atol=1e-5)
    np.testing.assert_allclose(probs[-1:], rules.classifier.classify(crops[-1:]), atol=1e-6)


def test_both_backends_read_every_sample_alike(keras_backend: Engine) -> None:
    """`--backend keras` runs the .keras models themselves: the same numbers, digits and boxes as LiteRT's
    conversions, on the samples and on touching and broken digits (which the line reader reads)."""
    datas = [path.read_bytes() for path in SAMPLE_PATHS]
    datas += [images.scene("4719", (640, 480), seed=3, gap=-0.15),
              images.scene("2583", (640, 480), seed=3, broken=0.08)]
    litert = load_engine("litert").recognize(datas)
    keras = keras_backend.recognize(datas)
    assert [r["number"] for r in keras] == [r["number"] for r in litert]
    for ours, theirs in zip(keras, litert, strict=True):
        assert [d["value"] for d in ours["digits"]] == [d["value"] for d in theirs["digits"]]
        assert [d["box"] for d in ours["digits"]] == [d["box"] for d in theirs["digits"]]
        assert [d["confidence"] for d in ours["digits"]] == pytest.approx([d["confidence"] for d in theirs["digits"]],
                                                                          abs=1e-4)
    assert [r["number"] for r in keras[: len(SAMPLE_PATHS)]] == [sample_label(path) or None for path in SAMPLE_PATHS]


def test_refused_and_unsure_crops_are_left_out_of_the_number() -> None:
    """Crops are read left to right; "not a digit", or a digit the model is less sure of than MIN_CONFIDENCE, is
    no part of the number. `make eval` reads MNIST and USPS through this same rule."""
    def probs(digit: int, p: float) -> np.ndarray:
        row = np.full(11, (1 - p) / 10, np.float32)
        row[digit] = p
        return row

    boxes = [(300, 0, 9, 9), (0, 0, 9, 9), (100, 0, 9, 9), (200, 0, 9, 9)]
    rows = [probs(4, 0.9), probs(7, 0.8), probs(10, 0.6), probs(1, MIN_CONFIDENCE - 0.05)]
    def prepared(n: int) -> Prepared:
        return Prepared(np.zeros((n, 28, 28, 1), np.float32), boxes[-n:], 400, 10, None, [[(i,)] for i in range(n)])

    result = assemble(prepared(4), np.stack(rows))
    assert result["number"] == "74"
    assert [d["box"] for d in result["digits"]] == [[0, 0, 9, 9], [300, 0, 9, 9]]
    refused = assemble(prepared(2), np.stack(rows[2:]))
    assert refused["number"] is None and refused["reason"] == "not sure enough to read it (best guess 1, 45%)"
    not_digits = assemble(prepared(1), np.stack(rows[2:3]))
    assert not_digits["number"] is None and not_digits["reason"] == "no shape looks like a digit"


def test_a_wide_shape_is_read_in_parts_only_when_the_model_is_surer_of_each_part() -> None:
    """Crop 0 is the whole shape; 1 and 2 its halves; 3, 4 and 5 its thirds."""
    boxes = [(0, 0, 30, 10), (0, 0, 14, 10), (16, 0, 14, 10), (0, 0, 9, 10), (10, 0, 9, 10), (21, 0, 9, 10)]

    def number(whole: float, halves: tuple[float, float], thirds: tuple[float, float, float] = (0.3, 0.3, 0.3),
               whole_may_be_one_digit: bool = True) -> str | None:
        probs = np.full((6, 11), 0.001, np.float32)
        for i, (value, p) in enumerate(zip((4, 4, 7, 1, 2, 3), (whole, *halves, *thirds), strict=True)):
            probs[i, value] = p
        ways = [(1, 2), (3, 4, 5)]
        readings = [[(0,), *ways] if whole_may_be_one_digit else ways]
        return assemble(Prepared(np.zeros((6, 28, 28, 1), np.float32), boxes, 30, 10, None, readings), probs)["number"]

    assert number(0.6, (0.9, 0.95)) == "47"  # two digits written into each other
    assert number(0.97, (0.9, 0.99)) == "4"  # one wide digit
    assert number(0.95, (0.955, 0.99)) == "4"  # parts must be surer than the whole by SPLIT_MARGIN
    assert number(0.6, (0.9, 0.3)) == "4"  # the right half is no digit
    assert number(0.6, (0.9, 0.95), (0.97, 0.98, 0.99)) == "123"  # three digits
    assert number(0.99, (0.3, 0.3), whole_may_be_one_digit=False) is None  # too wide for one, no parts are digits


@pytest.mark.data
def test_multi_digit_strips_from_photos_dev(shared_data: Path, rules: Engine) -> None:
    folder = shared_data / "photos-dev" / "photo"
    paths = sorted(p for p in folder.iterdir() if len(sample_label(p)) > 1)
    results = rules.recognize([p.read_bytes() for p in paths])
    correct = sum(r["number"] == sample_label(p) for p, r in zip(paths, results, strict=True))
    assert correct >= 0.8 * len(paths), f"{correct}/{len(paths)} multi-digit strips read exactly"
