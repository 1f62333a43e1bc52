"""The ink map on its own: `python -m tools.inkmap_check --data ../shared/data [--inkmap model/inkmap.tflite]`.

- Pixel IoU against the truth, by category, on the held-out validation scenes (tools/heldout.py's, with the mask of
  their digits' ink): each scene sent as a JPEG and decoded as the engine decodes it, the map enlarged to the working
  image and cut at 0.5 as the engine does, the truth shrunk to the same size. Blank scenes: how many have any pixel
  marked, and the most marked in one.
- Its maps of photos-dev pictures, drawn in red over them in one image to look at (`--sheet`).
- Its time on one thread at 320x240, 1280x720 and 1600x1200 (the map alone, median of repeated runs).
"""

from __future__ import annotations

import argparse
import time
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import cv2
import numpy as np

from server.config import ROOT, load_config
from server.engine import BACKENDS, InkMap, load_inkmap
from server.engine.decode import decode
from server.engine.preprocess import learned_ink
from tools import heldout
from tools.evaluate import IMAGE_SUFFIXES
from training.categories import AXES
from training.scenes import blank_scene, encode_jpeg
from training.split import validation_digits

PER_VALUE = 30
BLANKS = 120
SHEET_PICTURES = 36
SPEED_SIZES = ((240, 320), (720, 1280), (1200, 1600))  # (height, width)


def scene_iou(ink_map: InkMap, image: np.ndarray, truth: np.ndarray) -> tuple[int, int]:
    """(intersection, union) of the map and the truth, on the working image the engine makes of `image`'s JPEG."""
    gray = decode(encode_jpeg(image, 85)).gray
    found = learned_ink(gray, ink_map) > 0
    size = (gray.shape[1], gray.shape[0])
    truth = cv2.resize(truth.astype(np.float32), size, interpolation=cv2.INTER_AREA) >= 0.4
    return int((found & truth).sum()), int((found | truth).sum())


def iou_by_category(ink_map: InkMap, pools: list, per_value: int, pool: ThreadPoolExecutor) -> dict:
    """Pixel IoU per category value, pooled over its scenes, and over all of them."""
    jobs = [(axis, value, k) for axis in AXES for value in AXES[axis] for k in range(per_value)]

    def one(job: tuple[str, str, int]) -> tuple[int, int]:
        drawn, _ = heldout.drawn_scene(pools, heldout.VALIDATION_SEED, *job)
        return scene_iou(ink_map, drawn.image, drawn.ink)

    sums: dict[tuple[str, str], np.ndarray] = defaultdict(lambda: np.zeros(2, np.int64))
    for (axis, value, _), counts in zip(jobs, pool.map(one, jobs), strict=True):
        sums[axis, value] += counts
    ious = {f"{axis} {value}": float(c[0] / max(c[1], 1)) for (axis, value), c in sums.items()}
    total = sum(sums.values())
    ious["all"] = float(total[0] / max(total[1], 1))
    return ious


def blank_marks(ink_map: InkMap, count: int) -> list[int]:
    """Pixels marked on each of `count` blank scenes (make eval's sizes, another seed)."""
    rng = np.random.default_rng(2103)
    sizes = ((240, 320), (480, 640), (1200, 1600))
    return [int(learned_ink(decode(encode_jpeg(blank_scene(rng, *sizes[i % 3]), 90)).gray, ink_map).sum())
            for i in range(count)]


def sheet(ink_map: InkMap, paths: list[Path], out: Path, height: int = 180) -> None:
    """Each picture at `height` px, its map in red over it, in rows of six, written to `out`."""
    tiles = []
    for path in paths:
        gray = decode(path.read_bytes()).gray
        mask = learned_ink(gray, ink_map)
        tile = cv2.cvtColor(gray, cv2.COLOR_GRAY2BGR)
        tile[mask > 0] = (0.4 * tile[mask > 0] + (0, 0, 153)).astype(np.uint8)
        width = max(1, round(gray.shape[1] * height / gray.shape[0]))
        tile = cv2.resize(tile, (min(width, 2 * height), height), interpolation=cv2.INTER_AREA)
        tiles.append(cv2.copyMakeBorder(tile, 2, 2, 2, 2 + 2 * height - tile.shape[1], cv2.BORDER_CONSTANT))
    rows = [np.hstack(tiles[i : i + 6] + [np.zeros_like(tiles[0])] * (6 - len(tiles[i : i + 6])))
            for i in range(0, len(tiles), 6)]
    out.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(out), np.vstack(rows))


def speed(ink_map: InkMap, repeats: int = 15) -> dict[str, float]:
    """Median ms of the map alone on one thread, per picture size."""
    rng = np.random.default_rng(0)
    times = {}
    for height, width in SPEED_SIZES:
        gray = rng.integers(0, 256, (height, width), np.uint8)
        ink_map(gray)  # this shape's interpreter, made once
        runs = []
        for _ in range(repeats):
            start = time.perf_counter()
            ink_map(gray)
            runs.append(time.perf_counter() - start)
        times[f"{width}x{height}"] = 1000 * float(np.median(runs))
    return times


def sheet_pictures(data: Path, count: int) -> list[Path]:
    """`count` photos-dev pictures, taken evenly from its photo, processed and canvas folders (in that share)."""
    picked = []
    for name, share in (("photo", 0.5), ("processed", 0.33), ("canvas", 0.17)):
        paths = sorted(p for p in (data / "photos-dev" / name).iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        n = round(count * share)
        picked += [paths[i] for i in np.linspace(0, len(paths) - 1, n).astype(int)]
    return picked[:count]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m tools.inkmap_check", description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data", help="the shared data folder")
    parser.add_argument("--inkmap", default=str(ROOT / "model" / "inkmap.tflite"), help="the ink map to check")
    parser.add_argument("--backend", default=load_config([]).backend, choices=BACKENDS)
    parser.add_argument("--per-value", type=int, default=PER_VALUE, help="validation scenes per category value")
    parser.add_argument("--sheet", type=Path, default=ROOT / "artifacts" / "inkmap-photos-dev.png")
    args = parser.parse_args(argv)

    ink_map = load_inkmap(args.inkmap, args.backend)
    for size, ms in speed(ink_map).items():
        print(f"ink map, one thread, {size:<10} {ms:6.2f} ms", flush=True)
    if (args.data / "photos-dev").is_dir():
        sheet(ink_map, sheet_pictures(args.data, SHEET_PICTURES), args.sheet)
        print(f"ink map of {SHEET_PICTURES} photos-dev pictures: {args.sheet}", flush=True)
    marks = blank_marks(ink_map, BLANKS)
    print(f"blank scenes with any pixel marked: {sum(m > 0 for m in marks)}/{BLANKS} (most {max(marks)} px)")
    if (args.data / "mnist.npz").exists():
        with ThreadPoolExecutor() as pool:
            ious = iou_by_category(ink_map, validation_digits(args.data), args.per_value, pool)
        for name, iou in ious.items():
            print(f"pixel IoU, validation scenes, {name:<24} {iou:.3f}", flush=True)


if __name__ == "__main__":
    main()
