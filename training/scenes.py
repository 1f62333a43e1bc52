"""Photo-like scenes for training and evaluation: paper, ink, light and camera, in numpy and OpenCV.

    blank_scene(rng)                 -> (H, W, 3) uint8 BGR photo of paper with NO digit on it
    digit_scene(rng, digits)         -> (image, boxes): the digits written as ink on such a paper
    digit_scene(rng, digits, look=Look(stroke="marker"))   the same with some of its looks fixed
    ink_scene(rng, digits, ...)      -> Scene: the same image and boxes, with the exact mask of the digits' ink
    plain_scene(digit)               -> one digit in black ink on plain white paper: no light, no camera
    encode_jpeg(image, quality)      -> bytes, what a phone sends

A scene is built in the order light travels: a surface (table, sheet of paper with its tone, ruled or
squared lines, specks), then ink, then lighting (gradient, shadow, glare), then the camera (defocus blur,
sensor noise, JPEG). Every random choice comes from the `np.random.Generator` passed in, so a seed gives
the same scene again; a default `Look` makes the very draws it always made, so training's scenes and
`make eval`'s stay the same.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import cv2
import numpy as np

# Paper tones in BGR, roughly as phones see them under indoor light.
PAPER_TONES = {
    "white": (235, 238, 240),
    "cool white": (245, 240, 232),
    "warm white": (215, 232, 242),
    "grey": (175, 178, 180),
    "light grey": (205, 206, 206),
    "beige": (185, 215, 230),
    "recycled": (170, 190, 200),
    "yellow note": (120, 230, 245),
    "pale blue": (235, 215, 190),
    "pale pink": (215, 205, 245),
    "pale green": (200, 235, 205),
}
PAPER_WEIGHTS = dict(zip(PAPER_TONES, [5, 3, 3, 2, 2, 2, 1, 1.5, 1, 1, 1], strict=True))
RULING_WEIGHTS = {"none": 0.35, "ruled": 0.25, "squared": 0.2, "dotted": 0.05, "ruled+margin": 0.15}
TABLE_TONES = [(60, 90, 130), (40, 55, 75), (120, 120, 120), (30, 30, 30), (90, 130, 170), (200, 200, 200)]
INK_TONES = {
    "black": (25, 25, 25),
    "blue": (140, 50, 20),
    "dark blue": (90, 30, 20),
    "pencil": (85, 85, 90),
    "red": (40, 40, 170),
    "green": (50, 110, 30),
    "marker": (10, 10, 10),
}

# What a `Look` can fix. Pens: the stroke's width as a share of the digit's ink height (at least 1 px) and the
# ink they write with (None: any, as usual); MNIST's own strokes are about 12% of its digits' height.
STROKES = {
    "hairline": ((0.0, 0.0), "pencil"),  # 1 px at any size: a sharp pencil, or a small digit seen from afar
    "pencil": ((0.03, 0.05), "pencil"),
    "ballpoint": ((0.05, 0.08), None),
    "marker": ((0.16, 0.24), None),
}
# Layouts: the space between neighbours' nearest strokes as a share of the ink height (negative: they overlap),
# or None: spaced as usual, each digit's strokes cut once or twice instead.
# "detached": one stroke cut off and moved a little away from the rest (a 5's flag, a 4 open at the top, a 7's bar).
LAYOUTS = {"gaps": (0.1, 0.3), "touching": (-0.06, -0.02), "broken": None, "detached": None}
# Papers: the tones they may have (None: any) and what is printed on them; "clutter" is any paper with ink beside the
# digits that is not a digit's: scribbles, crossings-out, printed words, boxes and table lines.
PAPERS = {
    "white": (("white", "cool white", "warm white"), ("none",)),
    "grey": (("grey", "light grey"), ("none",)),
    "lined": (None, ("ruled", "ruled+margin")),
    "squared": (None, ("squared",)),
    "clutter": (None, None),
}
INK_COVERAGE = 0.4  # a pixel at least this much covered by a digit's ink is that digit's ink in the mask
MAX_SIZE = 1.5  # a look's size up to this share of the frame's height: a digit bigger than the frame, cut by it
# Lights: the chances of a shadow and of glare, the exposure's range, and how uneven the light is (gradient,
# vignette); None is the mix training sees.
LIGHTS = {
    None: (0.5, 0.2, (0.55, 1.1), 1.0),
    "even": (0.0, 0.0, (0.85, 1.1), 0.2),
    "shadow": (1.0, 0.0, (0.55, 1.1), 1.0),
    "glare": (0.0, 1.0, (0.55, 1.1), 1.0),
    "dim": (0.0, 0.0, (0.3, 0.5), 1.0),
}
SCREENS = {None: 0.5, "dark": 1.0, "light": 0.0}  # the chance that a drawing app's canvas is dark
INK_SHARE = 20 / 28  # of an MNIST box, its digit's ink: what a digit's size means to people


@dataclass(frozen=True)
class Look:
    """What a scene is fixed to, axis by axis, so that an evaluation can be read by category; None draws that
    axis at random, as training's scenes do."""

    stroke: str | None = None  # a pen of STROKES
    size: float | None = None  # the digits' ink height as a share of the frame's height
    layout: str | None = None  # a layout of LAYOUTS
    paper: str | None = None  # a paper of PAPERS (style "paper")
    lighting: str | None = None  # a light of LIGHTS (style "paper")
    screen: str | None = None  # "dark" (light ink on a dark canvas) or "light" (style "screen")

    def __post_init__(self) -> None:
        known = {"stroke": STROKES, "layout": LAYOUTS, "paper": PAPERS, "lighting": LIGHTS, "screen": SCREENS}
        for field in fields(self):
            value = getattr(self, field.name)
            if value is not None and field.name in known and value not in known[field.name]:
                raise ValueError(f"unknown {field.name} {value!r}: one of {[k for k in known[field.name] if k]}")
        if self.size is not None and not 0 < self.size <= MAX_SIZE:
            raise ValueError(f"size {self.size} is not a share of the frame's height (up to {MAX_SIZE})")


# ---------------------------------------------------------------- surfaces


def _jitter(rng: np.random.Generator, bgr: tuple[int, int, int], amount: float) -> np.ndarray:
    return np.clip(np.asarray(bgr, np.float32) + rng.normal(0, amount, 3), 0, 255)


def _paper_texture(rng: np.random.Generator, h: int, w: int, strength: float) -> np.ndarray:
    """Low-frequency fibre/unevenness as a multiplicative (H, W) field around 1."""
    small = rng.standard_normal((max(2, h // 16), max(2, w // 16)), np.float32)
    field = cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC)
    fine = cv2.GaussianBlur(rng.standard_normal((h, w), np.float32), (0, 0), 0.8)
    return 1.0 + np.float32(strength) * (0.6 * field + 0.4 * fine)


def _surface(
    rng: np.random.Generator, h: int, w: int, tones: tuple[str, ...] | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """A table with a sheet of paper on it (or paper filling the frame), of one of `tones` (None: any).

    Returns the float32 BGR image and the float32 (H, W) paper mask (1 on paper, 0 on the table).
    """
    names = list(tones or PAPER_TONES)
    tone_name = rng.choice(names, p=_chances(PAPER_WEIGHTS, names))
    paper = _jitter(rng, PAPER_TONES[tone_name], 8)
    img = np.empty((h, w, 3), np.float32)
    img[:] = paper
    img *= _paper_texture(rng, h, w, rng.uniform(0.005, 0.03))[..., None]
    mask = np.ones((h, w), np.float32)

    if rng.random() < 0.45:  # page edge(s): table visible around part of the sheet
        table = np.empty_like(img)
        table[:] = _jitter(rng, TABLE_TONES[rng.integers(len(TABLE_TONES))], 15)
        if rng.random() < 0.5:  # wood-like grain
            grain = np.sin(np.linspace(0, rng.uniform(10, 60), w) + rng.normal(0, 0.5, (h, 1)).cumsum(0) * 0.05)
            table *= (1.0 + 0.08 * grain.astype(np.float32))[..., None]
        table *= _paper_texture(rng, h, w, 0.04)[..., None]
        # A rotated rectangle much bigger than the frame, shifted so that 1-2 edges show.
        cx, cy = w / 2 + rng.uniform(-0.9, 0.9) * w, h / 2 + rng.uniform(-0.9, 0.9) * h
        size = (w * rng.uniform(1.2, 2.0), h * rng.uniform(1.2, 2.0))
        box = cv2.boxPoints(((cx, cy), size, rng.uniform(-25, 25))).astype(np.int32)
        m = np.zeros((h, w), np.uint8)
        cv2.fillPoly(m, [box], 255, lineType=cv2.LINE_AA)
        mask = cv2.GaussianBlur(m.astype(np.float32) / 255, (0, 0), rng.uniform(0.5, 1.5))
        if mask.mean() < 0.35:  # keep most of the frame on paper
            mask = 1.0 - mask
        # The sheet's edge casts a thin shadow on the table.
        edge_shadow = cv2.GaussianBlur(mask, (0, 0), 3.0)
        table *= (1.0 - 0.3 * edge_shadow * (1 - mask))[..., None]
        img = img * mask[..., None] + table * (1 - mask[..., None])
    return img, mask


def _chances(weights: dict[str, float], names: list[str]) -> list[float]:
    """The chances of `names` in proportion to their weights (all the names: exactly the usual chances)."""
    w = np.array([weights[name] for name in names], np.float64)
    return list(w / w.sum())


def _rules(rng: np.random.Generator, img: np.ndarray, mask: np.ndarray, kinds: tuple[str, ...] | None = None) -> None:
    """Ruled lines, a margin, squares or dots printed on the paper (in place): one of `kinds` (None: any)."""
    h, w = mask.shape
    names = list(kinds or RULING_WEIGHTS)
    kind = rng.choice(names, p=_chances(RULING_WEIGHTS, names))
    if kind == "none":
        return
    layer = np.zeros((h, w), np.float32)
    color = _jitter(rng, [(200, 160, 120), (180, 180, 180), (210, 170, 150), (160, 160, 200)][rng.integers(4)], 10)
    spacing = rng.uniform(12, 40) * (h / 240)
    angle = np.deg2rad(rng.uniform(-8, 8))
    thick = max(1, round((1 if rng.random() < 0.8 else 2) * h / 400))
    # Draw on a rotated grid by drawing long lines through the frame.
    diag = int(np.hypot(h, w)) + 2
    c, s = np.cos(angle), np.sin(angle)
    offset = rng.uniform(0, spacing)
    n = int(diag / spacing) + 2
    for i in range(-n, n + 1):
        d = offset + i * spacing
        for direction in (0, 1) if kind in ("squared", "dotted") else (0,):
            if direction == 0:  # horizontal-ish line at distance d from the centre
                p0 = (w / 2 - diag * c - d * s, h / 2 - diag * s + d * c)
                p1 = (w / 2 + diag * c - d * s, h / 2 + diag * s + d * c)
            else:
                p0 = (w / 2 + d * c + diag * s, h / 2 + d * s - diag * c)
                p1 = (w / 2 + d * c - diag * s, h / 2 + d * s + diag * c)
            if kind == "dotted":
                continue
            cv2.line(layer, _pt(p0), _pt(p1), 1.0, thick, cv2.LINE_AA)
    if kind == "dotted":
        step = spacing / 2
        for y in np.arange(rng.uniform(0, step), h, step):
            for x in np.arange(rng.uniform(0, step), w, step):
                cv2.circle(layer, (int(x), int(y)), 1, 0.8, -1, cv2.LINE_AA)
    if kind == "ruled+margin":
        x = int(rng.uniform(0.05, 0.35) * w)
        red = _jitter(rng, (120, 120, 220), 10)
        margin = np.zeros((h, w), np.float32)
        cv2.line(margin, (x, 0), (x + int(rng.uniform(-10, 10)), h), 1.0, 1 + int(rng.random() < 0.3), cv2.LINE_AA)
        _blend(img, margin * mask * rng.uniform(0.5, 0.9), red)
    strength = rng.uniform(0.25, 0.8)
    _blend(img, layer * mask * strength, color)


def _pt(p: tuple[float, float]) -> tuple[int, int]:
    return int(round(p[0])), int(round(p[1]))


def _blend(img: np.ndarray, alpha: np.ndarray, color: np.ndarray) -> None:
    """Paint `color` over img with coverage alpha (H, W) in [0, 1], like ink absorbed by paper."""
    a = np.clip(alpha, 0, 1)[..., None]
    img *= 1 - a
    img += a * np.asarray(color, np.float32)


def _specks(rng: np.random.Generator, img: np.ndarray, mask: np.ndarray) -> None:
    """Dust, pencil dots, crumbs: a few small dark or coloured spots (in place)."""
    h, w = mask.shape
    n = rng.poisson(rng.choice([0.5, 3, 10]))
    layer = np.zeros((h, w), np.float32)
    for _ in range(n):
        x, y = int(rng.uniform(0, w)), int(rng.uniform(0, h))
        r = max(1, int(rng.exponential(1.0) * h / 240))
        cv2.circle(layer, (x, y), r, float(rng.uniform(0.2, 0.8)), -1, cv2.LINE_AA)
    _blend(img, layer, _jitter(rng, (50, 50, 55), 15))


# ---------------------------------------------------------------- light and camera


def _smooth_field(
    rng: np.random.Generator, h: int, w: int, draw, sigma_frac: float, long_side: int = 160
) -> np.ndarray:
    """A low-frequency (H, W) float32 field: `draw(canvas, scale)` paints it on a small grid (long side
    `long_side`), it is blurred there by sigma_frac x height, then resized up. Cheap at any photo size."""
    scale = long_side / max(h, w)
    sh, sw = max(2, round(h * scale)), max(2, round(w * scale))
    small = np.zeros((sh, sw), np.float32)
    draw(small, scale)
    if sigma_frac > 0:
        small = cv2.GaussianBlur(small, (0, 0), max(0.3, sigma_frac * sh))
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)


def _lighting(rng: np.random.Generator, img: np.ndarray, light: str | None = None) -> np.ndarray:
    """The light of LIGHTS[light] on the scene: gradient, vignette, exposure, maybe a shadow and glare."""
    h, w = img.shape[:2]
    shadow_chance, glare_chance, exposures, uneven = LIGHTS[light]
    # Linear gradient plus a vignette, as brightness factors, computed on a small grid.
    gx, gy = rng.normal(0, 0.25, 2) * uneven
    vignette = rng.uniform(0, 0.35) * uneven
    exposure = rng.uniform(*exposures)

    def light_field(small: np.ndarray, _scale: float) -> None:
        sh, sw = small.shape
        yy, xx = np.mgrid[0:sh, 0:sw].astype(np.float32)
        xx, yy = xx / sw - 0.5, yy / sh - 0.5
        small[:] = (1.0 + gx * xx + gy * yy) * (1.0 - vignette * (xx**2 + yy**2) * 2) * exposure

    light = _smooth_field(rng, h, w, light_field, 0)
    # A soft shadow (hand, phone, head) with a blurred polygon edge.
    if rng.random() < shadow_chance:
        pts_frac = np.stack([rng.uniform(-0.3, 1.3, 5), rng.uniform(-0.3, 1.3, 5)], 1)
        depth = rng.uniform(0.15, 0.55)

        def shadow(small: np.ndarray, _scale: float) -> None:
            sh, sw = small.shape
            pts = (pts_frac * [sw, sh]).astype(np.int32)
            cv2.fillPoly(small, [cv2.convexHull(pts)], 1.0)

        light *= 1.0 - depth * _smooth_field(rng, h, w, shadow, rng.uniform(3, 25) / 240)
    # Glare: a bright soft ellipse that washes colour out.
    glare = None
    if rng.random() < glare_chance:
        c = rng.uniform(0, 1, 2)
        ax = (rng.uniform(0.05, 0.3), rng.uniform(0.05, 0.25))
        angle, amount = rng.uniform(0, 180), rng.uniform(0.2, 0.7)

        def ellipse(small: np.ndarray, _scale: float) -> None:
            sh, sw = small.shape
            center = (int(c[0] * sw), int(c[1] * sh))
            cv2.ellipse(small, center, (max(1, int(ax[0] * sw)), max(1, int(ax[1] * sh))), angle, 0, 360, 1.0, -1)

        glare = _smooth_field(rng, h, w, ellipse, rng.uniform(5, 20) / 240) * amount
    tint = _jitter(rng, (1.0, 1.0, 1.0), 0.04) if rng.random() < 0.7 else np.array([1.08, 1.0, 0.9], np.float32)
    out = img * (light[..., None] * tint.astype(np.float32))
    if glare is not None:
        out = out * (1 - glare[..., None]) + 255.0 * glare[..., None]
    return out


def _camera(rng: np.random.Generator, img: np.ndarray) -> np.ndarray:
    """Defocus/motion blur and sensor noise; returns uint8."""
    if rng.random() < 0.6:
        img = cv2.GaussianBlur(img, (0, 0), rng.uniform(0.3, 1.6))
    if rng.random() < 0.1:  # slight motion blur
        k = int(rng.integers(3, 7))
        kernel = np.zeros((k, k), np.float32)
        kernel[k // 2, :] = 1.0 / k
        rot = cv2.getRotationMatrix2D((k / 2 - 0.5, k / 2 - 0.5), rng.uniform(0, 180), 1.0)
        kernel = cv2.warpAffine(kernel, rot, (k, k))
        img = cv2.filter2D(img, -1, kernel / max(kernel.sum(), 1e-6))
    sigma = rng.choice([1.0, 3.0, 6.0, 10.0], p=[0.3, 0.4, 0.2, 0.1])
    noise = rng.standard_normal(img.shape[:2], np.float32)[..., None] * sigma  # luminance noise
    noise = noise + rng.standard_normal(img.shape, np.float32) * np.float32(sigma * 0.4)  # chroma noise
    return np.clip(img + noise, 0, 255).astype(np.uint8)


def encode_jpeg(image: np.ndarray, quality: int = 85) -> bytes:
    ok, buf = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:
        raise ValueError("JPEG encoding failed")
    return buf.tobytes()


def _jpeg_roundtrip(rng: np.random.Generator, image: np.ndarray) -> np.ndarray:
    return cv2.imdecode(np.frombuffer(encode_jpeg(image, int(rng.integers(35, 96))), np.uint8), cv2.IMREAD_COLOR)


# ---------------------------------------------------------------- public


def blank_scene(rng: np.random.Generator, height: int = 240, width: int = 320) -> np.ndarray:
    """An (H, W, 3) uint8 BGR photo-like scene with NO digit on it.

    Paper tones (white, grey, beige, coloured), page edges on a table, ruled/squared/dotted lines,
    specks, lighting gradients, vignetting, shadows, glare, blur, sensor noise and JPEG artefacts.
    """
    img, mask = _surface(rng, height, width)
    _rules(rng, img, mask)
    _specks(rng, img, mask)
    img = _lighting(rng, img)
    img = _camera(rng, img)
    return _jpeg_roundtrip(rng, img)


def ink_alpha(digit: np.ndarray, height: int, rng: np.random.Generator | None = None) -> np.ndarray:
    """A white-on-black digit image (uint8 or float, any size) as ink coverage in [0, 1], resized to
    `height` pixels of image (MNIST's 28 px box, digit about 20 px of it), with crisper strokes."""
    d = digit.astype(np.float32)
    d /= max(float(d.max()), 1e-6)
    size = max(4, int(round(height)))
    a = cv2.resize(d, (size, size), interpolation=cv2.INTER_CUBIC if size > d.shape[0] else cv2.INTER_AREA)
    # MNIST strokes are anti-aliased at 28 px; scaled up they look like felt-tip in fog.
    # A sigmoid sharpens them back into pen strokes; its midpoint sets the stroke width.
    mid = 0.45 if rng is None else rng.uniform(0.25, 0.65)
    a = 1.0 / (1.0 + np.exp(-(a - mid) * 12.0))
    a -= 1.0 / (1.0 + np.exp(mid * 12.0))
    return np.clip(a / max(float(a.max()), 1e-6), 0, 1)


@dataclass
class Scene:
    image: np.ndarray  # (H, W, 3) uint8 BGR
    boxes: list[tuple[int, int, int, int]]  # each digit's ink box (x, y, w, h); (0, 0, 0, 0) when off the frame
    ink: np.ndarray  # (H, W) bool: where a digit's ink is, and nothing else (paper, lines, clutter, table)
    visible: list[float]  # each digit's share of its ink inside the frame


def digit_scene(
    rng: np.random.Generator,
    digits: list[np.ndarray],
    height: int = 240,
    width: int = 320,
    digit_height: float | None = None,
    style: str = "paper",
    *,
    look: Look = Look(),
) -> tuple[np.ndarray, list[tuple[int, int, int, int]]]:
    """`ink_scene`'s image and each digit's box: what a phone would send, and where its digits are."""
    scene = ink_scene(rng, digits, height, width, digit_height, style, look=look)
    return scene.image, scene.boxes


def ink_scene(
    rng: np.random.Generator,
    digits: list[np.ndarray],
    height: int = 240,
    width: int = 320,
    digit_height: float | None = None,
    style: str = "paper",
    *,
    look: Look = Look(),
) -> Scene:
    """Write `digits` (white-on-black images such as MNIST's 28x28, left to right) as ink on a
    photo-like paper. Returns the Scene: the uint8 BGR image, one box (x, y, w, h) per digit (the tight box of
    its ink in image pixels, (0, 0, 0, 0) if a digit ended up off the frame), the mask of the digits' ink (what an
    ink map learns to find) and each digit's share of ink inside the frame.

    `digit_height` is the height of each 28-px MNIST box in pixels (its ink is about 20/28 of it);
    by default it is drawn so that the digits fit the frame with a margin.
    `style` "paper" is a phone photo of paper; "screen" is a drawing app's canvas (flat background,
    light-on-dark or dark-on-light, maybe a screenshot's sharp edges, no camera).
    `look` fixes some of the scene's looks (see `Look`); its `size` stands for `digit_height`.
    """
    n = len(digits)
    if look.size is not None:
        if digit_height is not None:
            raise ValueError("give digit_height or look.size, not both")
        digit_height = look.size * height / INK_SHARE
    if digit_height is None:
        most = min(height * 0.9, width * 0.92 / max(n * 0.75, 1.0))
        digit_height = rng.uniform(min(0.22 * height, most * 0.6), most)
    layer, boxes, visible = _ink_layer(rng, digits, height, width, digit_height, look)

    if style == "screen":
        dark = rng.random() < SCREENS[look.screen]
        bg = _jitter(rng, (20, 20, 20) if dark else (250, 250, 250), 6)
        fg = _jitter(rng, (245, 245, 245) if dark else (15, 15, 15), 8) if rng.random() < 0.8 else _jitter(
            rng, list(INK_TONES.values())[rng.integers(len(INK_TONES))], 30
        )
        img = np.empty((height, width, 3), np.float32)
        img[:] = bg
        _blend(img, layer, fg)
        if rng.random() < 0.3:
            img = cv2.GaussianBlur(img, (0, 0), rng.uniform(0.3, 1.0))
        img = np.clip(img, 0, 255).astype(np.uint8)
        return Scene(_jpeg_roundtrip(rng, img) if rng.random() < 0.5 else img, boxes, layer >= INK_COVERAGE, visible)

    # Paper: keep the digits on the sheet (a few tries), ink only where there is paper.
    tones, rulings = PAPERS[look.paper] if look.paper else (None, None)
    for _ in range(4):
        img, mask = _surface(rng, height, width, tones)
        if float((layer * mask).sum()) >= 0.97 * float(layer.sum()):
            break
    else:
        img, mask = _surface_plain(rng, height, width, tones[0] if tones else "white")
    _rules(rng, img, mask, rulings)
    _specks(rng, img, mask)
    ink_name = rng.choice(list(INK_TONES), p=[0.3, 0.3, 0.1, 0.15, 0.05, 0.03, 0.07])
    if look.stroke:
        ink_name = STROKES[look.stroke][1] or ink_name
    ink = _jitter(rng, INK_TONES[ink_name], 10)
    strength = rng.uniform(0.55, 1.0) if ink_name == "pencil" else rng.uniform(0.8, 1.0)
    if look.paper == "clutter":
        _blend(img, clutter(rng, height, width, digit_height) * mask * strength, ink)
    _blend(img, layer * mask * strength, ink)
    img = _lighting(rng, img, look.lighting)
    img = _camera(rng, img)
    return Scene(_jpeg_roundtrip(rng, img), boxes, (layer * mask) >= INK_COVERAGE, visible)


def plain_scene(digit: np.ndarray, height: int = 240, width: int = 320, size: float = 0.6) -> np.ndarray:
    """One digit as it is (upright, no jitter) in black ink in the middle of plain white paper, its ink `size`
    of the frame's height; no light, no camera. What the engine gets wrong on it, the engine alone gets wrong."""
    a = ink_alpha(digit, size * height / INK_SHARE)
    layer = np.zeros((height, width), np.float32)
    _paste_max(layer, a, (width - a.shape[1]) // 2, (height - a.shape[0]) // 2)
    img = np.empty((height, width, 3), np.float32)
    img[:] = PAPER_TONES["white"]
    _blend(img, layer, np.asarray(INK_TONES["black"], np.float32))
    return np.clip(img, 0, 255).astype(np.uint8)


def _surface_plain(rng: np.random.Generator, h: int, w: int, tone: str = "white") -> tuple[np.ndarray, np.ndarray]:
    img = np.empty((h, w, 3), np.float32)
    img[:] = _jitter(rng, PAPER_TONES[tone], 10)
    img *= _paper_texture(rng, h, w, 0.01)[..., None]
    return img, np.ones((h, w), np.float32)


def _ink_layer(
    rng: np.random.Generator,
    digits: list[np.ndarray],
    height: int,
    width: int,
    digit_height: float,
    look: Look = Look(),
) -> tuple[np.ndarray, list[tuple[int, int, int, int]], list[float]]:
    """The digits' ink coverage (H, W) in [0, 1] laid along a slightly tilted baseline, their boxes and the share
    of each one's ink inside the frame."""
    n = len(digits)
    step = digit_height * rng.uniform(0.55, 0.85)
    total = step * (n - 1) + digit_height
    x0 = rng.uniform(0, max(1.0, width - total)) if total < width else (width - total) / 2
    # A size the look sets may fill the frame: then the ink must fit it, not the MNIST box around the ink.
    margin = 0.0 if look.size is None else digit_height * (1 - INK_SHARE) / 2
    y_base = rng.uniform(-margin, max(1.0 - margin, height - digit_height + margin))
    slope = rng.normal(0, 0.05)
    boxes: list[tuple[int, int, int, int]] = []
    visible: list[float] = []
    layer = np.zeros((height, width), np.float32)
    for i, digit in enumerate(digits):
        s = digit_height * rng.uniform(0.9, 1.1)
        a = ink_alpha(digit, s, rng)
        if look.stroke:
            a = _pen(a, max(1.0, rng.uniform(*STROKES[look.stroke][0]) * s * INK_SHARE))
        # A little rotation and shear per digit (people write unevenly).
        angle, shear = rng.normal(0, 6), rng.normal(0, 0.1)
        c = a.shape[0] / 2
        m = cv2.getRotationMatrix2D((c, c), angle, 1.0)
        m[0, 1] += shear
        m[0, 2] -= shear * c
        a = cv2.warpAffine(a, m, a.shape[::-1], flags=cv2.INTER_LINEAR)
        if look.layout == "broken":
            a = _break(rng, a)
        elif look.layout == "detached":
            a = _detach(rng, a)
        x = int(round(x0 + i * step + rng.normal(0, step * 0.05)))
        y = int(round(y_base + slope * (x - x0) + rng.normal(0, digit_height * 0.04)))
        if i and look.layout in ("gaps", "touching"):
            gap = rng.uniform(*LAYOUTS[look.layout]) * s * INK_SHARE
            x = _beside(layer, a, x, y, float(np.copysign(max(abs(gap), 2.0), gap)))
        boxes.append(_paste_max(layer, a, x, y))
        visible.append(float(_clip(layer.shape, a, x, y)[0].sum()) / max(float(a.sum()), 1e-6))
    return layer, boxes, visible


def _beside(layer: np.ndarray, a: np.ndarray, x: int, y: int, gap: float) -> int:
    """Where glyph `a`, its top at row y, goes so that its strokes come `gap` px after the ink already in
    `layer` (negative: into it) in the row where they come nearest; x when no row has ink of both."""
    top, bottom = max(y, 0), min(y + a.shape[0], layer.shape[0])
    before, glyph = layer[top:bottom] > 0.3, a[top - y : bottom - y] > 0.3
    rows = before.any(axis=1) & glyph.any(axis=1)
    if not rows.any():
        return x
    right = before.shape[1] - 1 - before[:, ::-1].argmax(axis=1)
    left = glyph.argmax(axis=1)
    return int(round((right - left)[rows].max() + 1 + gap))


def _pen(a: np.ndarray, width: float) -> np.ndarray:
    """The glyph's strokes drawn again along their centre line by a round pen `width` px wide, anti-aliased."""
    line = _centre_line(a > 0.5)
    dist = cv2.distanceTransform(1 - line, cv2.DIST_L2, cv2.DIST_MASK_PRECISE)
    return np.clip(width / 2 + 0.5 - dist, 0, 1).astype(np.float32)


def _break(rng: np.random.Generator, a: np.ndarray) -> np.ndarray:
    """The glyph with one or two bands erased across its strokes, the gaps a pen that skips or lifts leaves:
    an open 4, a 5 whose flag stands apart."""
    ink = a > 0.5
    ys, xs = np.nonzero(_centre_line(ink))
    half = cv2.distanceTransform(ink.astype(np.uint8), cv2.DIST_L2, 3)  # on the centre line: half the width
    out = a.copy()
    for _ in range(int(rng.integers(1, 3)) if len(xs) else 0):
        i = int(rng.integers(len(xs)))
        reach = 2 * half[ys[i], xs[i]] + 3
        near = (np.abs(xs - xs[i]) <= reach) & (np.abs(ys - ys[i]) <= reach)
        if near.sum() < 3:
            continue
        # Across the stroke is where the centre line nearby spreads least.
        across = np.linalg.eigh(np.cov(np.stack([xs[near], ys[near]]).astype(np.float64)))[1][:, 0] * reach
        band = np.zeros_like(a)
        thick = max(2, round(rng.uniform(0.05, 0.12) * a.shape[0] * INK_SHARE))
        cv2.line(band, _pt((xs[i], ys[i]) - across), _pt((xs[i], ys[i]) + across), 1.0, thick, cv2.LINE_AA)
        out *= 1 - band
    return out


def _detach(rng: np.random.Generator, a: np.ndarray) -> np.ndarray:
    """The glyph cut once across a stroke, and its smaller piece moved a little away from the rest, as a hand that
    lifts leaves it: a 5's flag apart from its body, a 4 open at the top, a 7's bar off its stem."""
    for _ in range(3):
        cut = _break(rng, a)
        count, labels = cv2.connectedComponents((cut > 0.05).astype(np.uint8), connectivity=8)
        if count > 2:
            break
    else:
        return cut
    sizes = np.bincount(labels.ravel(), weights=cut.ravel(), minlength=count)[1:]
    body = 1 + int(np.argmax(sizes))
    out = np.where(labels == body, cut, 0).astype(np.float32)
    pieces = np.where((labels > 0) & (labels != body), cut, 0).astype(np.float32)
    # Away from the body's centre, by 4-12% of the glyph's size: a gap anyone still reads across.
    by, bx = np.argwhere(labels == body).mean(0)
    py, px = np.argwhere(pieces > 0).mean(0)
    away = np.array([px - bx, py - by]) / max(np.hypot(px - bx, py - by), 1e-6)
    dx, dy = away * rng.uniform(0.04, 0.12) * a.shape[0]
    moved = cv2.warpAffine(pieces, np.float32([[1, 0, dx], [0, 1, dy]]), a.shape[::-1], flags=cv2.INTER_LINEAR)
    return np.maximum(out, moved)


# Printed words: capitals and lower case of OpenCV's Hershey fonts, no digits (those would be a digit's ink).
WORDS = ("Name", "Date", "total", "Page", "NOTES", "to do", "Sum", "Class", "ref", "Invoice", "qty", "Tel")
FONTS = (cv2.FONT_HERSHEY_SIMPLEX, cv2.FONT_HERSHEY_DUPLEX, cv2.FONT_HERSHEY_COMPLEX, cv2.FONT_HERSHEY_TRIPLEX,
         cv2.FONT_HERSHEY_PLAIN, cv2.FONT_HERSHEY_SIMPLEX | cv2.FONT_ITALIC)


def clutter(rng: np.random.Generator, height: int, width: int, digit_height: float) -> np.ndarray:
    """Ink that is no digit's, as coverage (H, W) in [0, 1]: a few of scribbles, crossings-out, printed words, boxes
    and table lines, each about the digits' size, anywhere in the frame."""
    layer = np.zeros((height, width), np.float32)
    size = float(np.clip(digit_height * INK_SHARE, 8, 0.8 * height))
    for _ in range(int(rng.integers(1, 5))):
        kind = rng.choice(["scribble", "crossed", "words", "box", "line"])
        x, y = rng.uniform(0, width), rng.uniform(0, height)
        thick = max(1, round(size * rng.uniform(0.03, 0.15)))
        if kind == "scribble":  # a tight loop of loops, as a pen is tried out
            t = np.linspace(0, rng.uniform(4, 10) * np.pi, 200)
            r = size * rng.uniform(0.3, 0.6)
            pts = np.stack([x + r * np.cos(t) + t * size * 0.15, y + 0.5 * r * np.sin(t * rng.uniform(1.5, 3))], 1)
            cv2.polylines(layer, [pts.astype(np.int32)], False, 1.0, thick, cv2.LINE_AA)
        elif kind == "crossed":  # a word or mark struck out with a zig-zag
            w, h = size * rng.uniform(1, 3), size * rng.uniform(0.4, 0.9)
            xs = x + np.linspace(0, w, int(rng.integers(5, 14)))
            ys = y + np.where(np.arange(len(xs)) % 2, h, 0) + rng.normal(0, h * 0.05, len(xs))
            cv2.polylines(layer, [np.stack([xs, ys], 1).astype(np.int32)], False, 1.0, thick, cv2.LINE_AA)
        elif kind == "words":
            font = int(FONTS[rng.integers(len(FONTS))])
            scale = size * rng.uniform(0.25, 0.6) / 22  # a Hershey font's capitals are about 22 px at scale 1
            text = np.zeros((height, width), np.uint8)  # putText draws on 8 bits only
            cv2.putText(text, str(rng.choice(WORDS)), (int(x), int(y)), font, scale, 255,
                        max(1, round(scale * rng.uniform(1, 2.5))), cv2.LINE_AA)
            np.maximum(layer, text / np.float32(255), out=layer)
        elif kind == "box":  # a form's box, maybe around where a digit is
            w, h = size * rng.uniform(1, 4), size * rng.uniform(1.1, 1.8)
            cv2.rectangle(layer, (int(x), int(y)), (int(x + w), int(y + h)), 1.0, thick, cv2.LINE_AA)
        else:  # a table's line or an underline, across much of the frame
            length, angle = rng.uniform(0.3, 1.2) * width, rng.normal(0, 0.05)
            end = (x + length * np.cos(angle), y + length * np.sin(angle))
            cv2.line(layer, _pt((x, y)), _pt(end), 1.0, thick, cv2.LINE_AA)
    return layer


def _centre_line(mask: np.ndarray) -> np.ndarray:
    """The one-pixel centre line (uint8, 1 on it) of a binary mask's strokes, connected as they are. Thinning
    peels a pixel off each side per pass, so wide strokes are thinned on a copy shrunk to about 12 px wide and
    their centre line is drawn back at full size."""
    h, w = mask.shape
    if not mask.any():
        return np.zeros((h, w), np.uint8)
    quarter = float(cv2.distanceTransform(mask.astype(np.uint8), cv2.DIST_L2, 3)[mask].mean())  # of the width
    scale = quarter / 3
    if scale < 1.5:
        return _thin(mask).astype(np.uint8)
    size = (max(1, round(w / scale)), max(1, round(h / scale)))
    small = _thin(cv2.resize(mask.astype(np.float32), size, interpolation=cv2.INTER_AREA) > 0.5)
    ys, xs = np.nonzero(small)
    padded = np.pad(small, 1)
    ends = [(0, 1), (1, 0), (1, 1), (1, -1)]  # each pair of neighbours once
    pairs = [np.stack([xs, ys, xs + dx, ys + dy], 1)[padded[ys + 1 + dy, xs + 1 + dx]] for dy, dx in ends]
    pairs.append(np.stack([xs, ys, xs, ys], 1))  # a lone pixel is a dot
    segments = (np.concatenate(pairs).reshape(-1, 2, 2) + 0.5) * (w / size[0], h / size[1]) - 0.5
    line = np.zeros((h, w), np.uint8)
    cv2.polylines(line, list(np.round(segments).astype(np.int32)), False, 1)
    return line


def _thin(mask: np.ndarray) -> np.ndarray:
    """Zhang-Suen thinning of a binary mask to lines one pixel wide (bool)."""
    img = np.pad(mask.astype(bool), 1)
    core = img[1:-1, 1:-1]
    changed = True
    while changed:
        changed = False
        for first in (True, False):
            n, ne, e, se = img[:-2, 1:-1], img[:-2, 2:], img[1:-1, 2:], img[2:, 2:]
            s, sw, w, nw = img[2:, 1:-1], img[2:, :-2], img[1:-1, :-2], img[:-2, :-2]
            ring = (n, ne, e, se, s, sw, w, nw, n)
            count = sum(p.astype(np.uint8) for p in ring[:8])
            turns = sum((~p & q).astype(np.uint8) for p, q in zip(ring[:8], ring[1:], strict=True))
            kept = (n & e & s) | (e & s & w) if first else (n & e & w) | (n & s & w)
            drop = core & (count >= 2) & (count <= 6) & (turns == 1) & ~kept
            if drop.any():
                core[drop] = False
                changed = True
    return core.copy()


def _clip(shape: tuple[int, int], a: np.ndarray, x: int, y: int) -> tuple[np.ndarray, int, int]:
    """The part of `a`, placed at (x, y), that lies inside a frame of `shape`, and where it starts there."""
    h, w = shape
    ah, aw = a.shape
    x0, y0, x1, y1 = max(x, 0), max(y, 0), min(x + aw, w), min(y + ah, h)
    return a[y0 - y : max(y1, y0) - y, x0 - x : max(x1, x0) - x], x0, y0


def _paste_max(layer: np.ndarray, a: np.ndarray, x: int, y: int) -> tuple[int, int, int, int]:
    """Paste coverage `a` into `layer` at (x, y) (clipped), keeping the max; return the ink's box."""
    sub, x0, y0 = _clip(layer.shape, a, x, y)
    if sub.size == 0:
        return (0, 0, 0, 0)
    y1, x1 = y0 + sub.shape[0], x0 + sub.shape[1]
    np.maximum(layer[y0:y1, x0:x1], sub, out=layer[y0:y1, x0:x1])
    ys, xs = np.nonzero(sub > 0.3)
    if len(xs) == 0:
        return (0, 0, 0, 0)
    return (int(x0 + xs.min()), int(y0 + ys.min()), int(xs.max() - xs.min() + 1), int(ys.max() - ys.min() + 1))
