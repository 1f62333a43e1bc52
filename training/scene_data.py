"""Training crops from photo-like scenes, cut by the serving engine itself.

A scene (`training.scenes`) is rendered with known digit boxes, JPEG-encoded like a phone frame, and passed
through `server.engine.prepare`; each crop the engine returns is labelled by its overlap with the boxes
where digits were drawn, and crops that overlap no digit are class 10. So training sees what serving sees.

    scene_crops(n, digits, labels, seed)   -> (x (m, 28, 28) float32, y (m,) int64), cached on disk
    scene_figures(model, n, seed)          -> {"blank_scene_no_digit": ..., "digit_scene_exact": ...}
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

NOT_A_DIGIT = 10
# The engine works on a picture of about 0.5 MP, so bigger scenes only cost rendering time.
SIZES = [(240, 320), (480, 640), (720, 960), (320, 240), (640, 480), (960, 720)]
SIZE_WEIGHTS = [0.25, 0.3, 0.2, 0.1, 0.1, 0.05]
COUNT_WEIGHTS = {1: 0.45, 2: 0.15, 3: 0.15, 4: 0.15, 5: 0.1}  # digits per scene
BLANK_SHARE = 0.3  # scenes with no digit at all
SCREEN_SHARE = 0.15  # drawing-app canvases instead of photos of paper


def engine_available() -> bool:
    try:
        if importlib.util.find_spec("server.engine") is None:
            return False
        return hasattr(importlib.import_module("server.engine"), "prepare")
    except Exception:  # noqa: BLE001 - a half-written engine must not stop training
        return False


def render(rng: np.random.Generator, digits: np.ndarray, labels: np.ndarray):
    """One random scene as JPEG/PNG bytes, its digit boxes and their labels."""
    from training.scenes import blank_scene, digit_scene, encode_jpeg

    h, w = SIZES[rng.choice(len(SIZES), p=SIZE_WEIGHTS)]
    if rng.random() < BLANK_SHARE:
        return encode_jpeg(blank_scene(rng, h, w), int(rng.integers(60, 96))), [], []
    n = int(rng.choice(list(COUNT_WEIGHTS), p=list(COUNT_WEIGHTS.values())))
    pick = rng.integers(0, len(digits), n)
    style = "screen" if rng.random() < SCREEN_SHARE else "paper"
    image, boxes = digit_scene(rng, [digits[i] for i in pick], h, w, style=style)
    return encode_jpeg(image, int(rng.integers(60, 96))), boxes, [int(labels[i]) for i in pick]


def label_crops(crop_boxes, digit_boxes, digit_labels) -> list[int | None]:
    """For each engine crop: the digit whose box it matches (IoU >= 0.5), class 10 when it touches no digit,
    None (skip) when it is ambiguous: part of a digit, or several digits merged into one crop."""
    out: list[int | None] = []
    for cx, cy, cw, ch in crop_boxes:
        best_iou, best_label, touched, covered = 0.0, None, 0.0, 0
        for (dx, dy, dw, dh), lab in zip(digit_boxes, digit_labels, strict=True):
            if dw == 0 or dh == 0:
                continue
            ix = max(0, min(cx + cw, dx + dw) - max(cx, dx))
            iy = max(0, min(cy + ch, dy + dh) - max(cy, dy))
            inter = ix * iy
            iou = inter / (cw * ch + dw * dh - inter)
            touched = max(touched, inter / max(1, min(cw * ch, dw * dh)))
            covered += inter >= 0.25 * dw * dh  # this digit is substantially inside the crop
            if iou > best_iou:
                best_iou, best_label = iou, lab
        if best_iou >= 0.5 and covered == 1:
            out.append(best_label)
        elif touched < 0.05:
            out.append(NOT_A_DIGIT)
        else:
            out.append(None)
    return out


def _one(args):
    from server.engine import ImageError, prepare

    seed, index, digits, labels = args
    rng = np.random.default_rng([seed, index])
    data, boxes, labs = render(rng, digits, labels)
    try:
        prepared = prepare(data)
    except ImageError:
        return np.zeros((0, 28, 28), np.float32), np.zeros((0,), np.int64)
    ys = label_crops(prepared.boxes, boxes, labs)
    # A thin upright straight stroke that is not one of our digits (a margin line, a squared-paper line) is
    # pixel for pixel a "1" at 28x28: only the engine, seeing the whole picture, can reject it. Don't teach
    # the model to call such strokes "not a digit", or it learns to refuse ruler-straight 1s.
    crops = prepared.crops[..., 0]
    ys = [None if y == NOT_A_DIGIT and _upright_stroke(c) else y for y, c in zip(ys, crops, strict=True)]
    keep = [i for i, y in enumerate(ys) if y is not None]
    x = prepared.crops[keep, ..., 0] if keep else np.zeros((0, 28, 28), np.float32)
    return x.astype(np.float32), np.asarray([ys[i] for i in keep], np.int64)


def _upright_stroke(crop: np.ndarray) -> bool:
    """A single straight stroke within 50 degrees of upright: what a "1" looks like at 28x28."""
    ys, xs = np.nonzero(crop > 0.3)
    if len(xs) < 5:
        return False
    cov = np.cov(np.stack([xs, ys]).astype(np.float64))
    evals, evecs = np.linalg.eigh(cov)
    thin = evals[0] <= 2.5 and evals[1] >= 12 * max(evals[0], 0.1)  # long and narrow: a line
    major = evecs[:, 1]
    upright = abs(major[1]) >= np.cos(np.deg2rad(50))
    return bool(thin and upright)


def drop_upright_strokes(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Leave out the class-10 crops that are a single upright stroke (see `_one`)."""
    keep = np.array([not (label == NOT_A_DIGIT and _upright_stroke(c)) for c, label in zip(x, y, strict=True)], bool)
    return x[keep], y[keep]


RENDER_VERSION = 3  # bump when render() or the labelling in _one() changes


def _fingerprint() -> str:
    """Changes whenever the scene renderer changes. Not the engine: it is tuned often and the crops barely
    move, so after a real change to server/engine/preprocess.py delete training/out/ (or pass --cache '')."""
    h = hashlib.sha256(str(RENDER_VERSION).encode())
    h.update((Path(__file__).resolve().parent / "scenes.py").read_bytes())
    return h.hexdigest()[:12]


CHUNK = 250  # scenes per cache file: an interrupted run resumes, a bigger run reuses the smaller one's work


def scene_crops(
    n: int, digits: np.ndarray, labels: np.ndarray, seed: int, cache: Path | None = None, threads: int = 2
) -> tuple[np.ndarray, np.ndarray]:
    """Render `n` scenes from `digits` (uint8 white-on-black 28x28) and return the engine's labelled crops.
    Scene i always comes from Generator([seed, i]), so the result does not depend on chunking or threads."""
    key = hashlib.sha256(np.ascontiguousarray(digits[:: max(1, len(digits) // 500)]).tobytes()).hexdigest()[:8]
    tag = f"{seed}-{len(digits)}-{key}-{_fingerprint()}"
    xs, ys = [], []
    with ThreadPoolExecutor(threads) as pool:
        for start in range(0, n, CHUNK):
            stop = min(n, start + CHUNK)
            path = cache / f"scenes-{tag}-{start}-{stop}.npz" if cache else None
            if path is not None and path.exists():
                with np.load(path) as f:
                    x, y = f["x"], f["y"]
            else:
                parts = list(pool.map(_one, [(seed, i, digits, labels) for i in range(start, stop)]))
                x = np.concatenate([p[0] for p in parts])
                y = np.concatenate([p[1] for p in parts])
                if path is not None:
                    path.parent.mkdir(parents=True, exist_ok=True)
                    np.savez_compressed(path, x=x, y=y)
            xs.append(x)
            ys.append(y)
            print(f"  scenes rendered and cut by the engine: {stop}/{n}", flush=True)
    if not xs:
        return np.zeros((0, 28, 28), np.float32), np.zeros((0,), np.int64)
    return drop_upright_strokes(np.concatenate(xs), np.concatenate(ys))


def scene_figures(model, n: int = 300, seed: int = 2029) -> dict:
    """Through the whole engine (prepare, the model, assemble): the share of generated blank scenes read as
    "no digit", at the sizes tools/evaluate.py uses."""
    from training.scenes import blank_scene, encode_jpeg

    rng = np.random.default_rng(seed)
    sizes = [(240, 320), (480, 640), (1200, 1600)]
    blanks = [encode_jpeg(blank_scene(rng, *sizes[i % 3]), 90) for i in range(n)]
    reads = read_numbers(model, blanks)
    return {"blank_scene_no_digit": round(sum(r is None for r in reads) / n, 4)}


def read_numbers(model, datas: list[bytes], threads: int = 2) -> list[str | None]:
    """The number the engine reads from each image with this model (all crops classified in one batch)."""
    from types import SimpleNamespace

    from server.engine import Engine

    classifier = SimpleNamespace(classify=lambda crops: model.predict(crops, batch_size=256, verbose=0))
    with ThreadPoolExecutor(threads) as pool:
        results = Engine("rules", classifier, None, None).recognize(datas, map_fn=pool.map)
    return [r.get("number") if isinstance(r, dict) else None for r in results]
