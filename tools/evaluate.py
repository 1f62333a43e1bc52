"""Accuracy of the engine on labelled pictures: `python -m tools.evaluate --data ../shared/data [--verbose]`.

A picture's label is the leading digits of its file name (none: it shows no digit); a read counts only when the
whole number matches. Folders: samples/, photos-dev/{photo,canvas,processed}, photos-extra/photo (its numbers of
two digits or more also apart); then the MNIST and USPS test sets (already 28x28 and normalised, so each crop is
read as the engine reads one); numbers of MNIST test digits written into generated photos; the "no digit" rate on
generated blank scenes; the engine's loss (single digits drawn plainly, through the whole engine, against the
model alone on their 28x28 crops); and the held-out scene set by category (tools/heldout.py), from the test digits,
or with --validation from the digits training holds out, which is what to select models and settings on.
"""

from __future__ import annotations

import argparse
import re
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from server.config import ROOT, load_config
from server.engine import BACKENDS, KINDS, NOT_A_DIGIT, Classifier, Engine, ImageError, load_classifier, read
from tools import heldout
from training import categories
from training.scenes import encode_jpeg, plain_scene
from training.split import validation_digits

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif"}
SCENE_SIZES = [(240, 320), (480, 640), (1200, 1600)]  # (height, width) of generated scenes, taken in turn


def label(path: Path) -> str:
    return re.match(r"\d*", path.name).group()


@dataclass(frozen=True)
class Models:
    engine: Engine  # what reads the pictures
    classifier: Classifier  # the model alone, on crops: MNIST, USPS and the engine's loss are measured against it


def read_all(datas: list[bytes], models: Models, pool: ThreadPoolExecutor) -> list[str | None]:
    """The number read from each image ('?' when unreadable): prepared in threads, the networks run in one batch."""
    results = models.engine.recognize(datas, map_fn=pool.map)
    return ["?" if isinstance(r, ImageError) else r["number"] for r in results]


def evaluate_folder(
    folder: Path, models: Models, pool: ThreadPoolExecutor, multi_digit: bool = False
) -> list[tuple[Path, str, str]]:
    """Every labelled image in `folder` -> its misreads as (path, label, read). With `multi_digit`, the numbers of
    two digits or more are reported on their own too: one wrong digit of many fails the whole picture."""
    paths = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    reads = read_all([p.read_bytes() for p in paths], models, pool)
    pairs = zip(paths, reads, strict=True)
    misreads = [(p, label(p) or "-", read or "-") for p, read in pairs if (read or "") != label(p)]
    _report(str(folder), len(paths), len(paths) - len(misreads))
    if multi_digit:
        numbers = sum(len(label(p)) >= 2 for p in paths)
        _report(f"{folder} (2+ digits)", numbers, numbers - sum(len(expected) >= 2 for _, expected, _ in misreads))
    return misreads


def evaluate_arrays(name: str, path: Path, classifier: Classifier) -> None:
    """A 28x28 test set read crop by crop as the engine reads a crop (`engine.read`: a digit counts only if the
    engine would show it). Also printed: how many the engine refused, and the model's bare argmax accuracy over
    its 11 classes, which ignores the engine's minimum confidence."""
    data = np.load(path)
    x = data["x_test"].astype(np.float32)[..., None] / 255.0
    probs = classifier.classify(x)
    values = read(probs)
    refused = int((values == NOT_A_DIGIT).sum())
    argmax = float(np.mean(probs.argmax(axis=1) == data["y_test"]))
    note = f"{refused} refused; model argmax {100 * argmax:.2f}%"
    _report(name, len(x), int((values == data["y_test"]).sum()), note)


def evaluate_blank(count: int, models: Models, pool: ThreadPoolExecutor) -> None:
    from training.scenes import blank_scene, encode_jpeg  # the TRAINING engineer's scene generator

    rng = np.random.default_rng(2024)
    datas = [encode_jpeg(blank_scene(rng, *SCENE_SIZES[i % len(SCENE_SIZES)]), 90) for i in range(count)]
    reads = read_all(datas, models, pool)
    _report("blank scenes (no digit)", count, sum(read is None for read in reads))


def evaluate_digit_scenes(count: int, path: Path, models: Models, pool: ThreadPoolExecutor) -> None:
    """Numbers of 1-4 MNIST test digits written into generated photos (paper, tables, lines, shadows, screens):
    the whole engine, on digits no model saw in training."""
    from training.scenes import digit_scene, encode_jpeg

    data = np.load(path)
    x, y = data["x_test"], data["y_test"]
    rng = np.random.default_rng(2025)
    datas, labels = [], []
    for i in range(count):
        pick = rng.integers(0, len(x), int(rng.integers(1, 5)))
        style = "screen" if i % 7 == 0 else "paper"
        image, boxes = digit_scene(rng, [x[j] for j in pick], *SCENE_SIZES[i % len(SCENE_SIZES)], style=style)
        datas.append(encode_jpeg(image, 85))
        labels.append("".join(str(y[j]) for j, box in zip(pick, boxes, strict=True) if box[2] > 0))  # on the frame
    reads = read_all(datas, models, pool)
    _report("digit scenes (MNIST test digits in generated photos)", count,
            sum((read or "") == label for read, label in zip(reads, labels, strict=True)))


def evaluate_engine_loss(
    pools: list[heldout.Pool], count: int, split: str, models: Models, pool: ThreadPoolExecutor
) -> None:
    """The same single digits (2/3 MNIST, 1/3 USPS) read twice: through the whole engine, each drawn upright in black
    ink on plain white paper at 60% of a 320x240 frame, and by the model alone from their ideal 28x28 crops
    (`engine.read`, a refusal counted wrong). The gap is what decoding, segmenting and cropping lose on the
    easiest picture there is."""
    for name, (x, y), n in zip(("MNIST", "USPS"), pools, (count - count // 3, count // 3), strict=True):
        x, y = x[:n], y[:n]
        reads = read_all([encode_jpeg(plain_scene(digit), 95) for digit in x], models, pool)
        engine = sum(number == str(value) for number, value in zip(reads, y, strict=True))
        model = int((read(models.classifier.classify(x.astype(np.float32)[..., None] / 255.0)) == y).sum())
        gap = 100 * (model - engine) / max(len(x), 1)
        _report(f"engine loss, {name} {split} digits drawn plainly", len(x), engine,
                f"model alone on the crops {100 * model / max(len(x), 1):.2f}%, gap {gap:.2f} points")


def evaluate_categories(
    pools: list[heldout.Pool], seed: int, per_value: int, split: str, models: Models, pool: ThreadPoolExecutor
) -> None:
    """The held-out scene set through the whole engine: a line per category and value, then all of them and the
    lowest."""
    scenes = heldout.categorised_scenes(pools, seed, per_value, map_fn=pool.map)
    reads = read_all([jpeg for _, _, jpeg, _ in scenes], models, pool)
    right = Counter((axis, value) for (axis, value, _, number), got in zip(scenes, reads, strict=True)
                    if (got or "") == number)
    name = f"held-out {split} scenes"
    values = [(axis, value) for axis, values in categories.AXES.items() for value in values]
    for axis, value in values:
        _report(f"{name}: {axis} {value}", per_value, right[axis, value])
    _report(f"{name}: all", len(scenes), right.total(), f"seed {seed}")
    axis, value = min(values, key=lambda category: right[category])
    _report(f"{name}: lowest, {axis} {value}", per_value, right[axis, value])


def _report(name: str, total: int, correct: int, note: str = "") -> None:
    print(f"{name:<60} {correct:>5}/{total:<5} {100 * correct / max(total, 1):6.2f}%  {note}".rstrip(), flush=True)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m tools.evaluate", description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data", help="the shared data folder")
    config = load_config([])  # the server's defaults and DIGITS_* env vars
    parser.add_argument("--model", default=config.model_path, help="model to evaluate (.tflite or .keras)")
    parser.add_argument("--reader", default=config.reader_path,
                        help="the line reader; '' reads the candidates alone, as the engine did before it")
    parser.add_argument("--engine", default=config.engine, choices=KINDS, help="which engine reads")
    parser.add_argument("--inkmap", default=config.inkmap_path, help="the ink map (v3, or the rules with --swap-ink)")
    parser.add_argument("--row-reader", default=config.row_reader_path, help="the line reader of v3")
    parser.add_argument("--swap-ink", action="store_true",
                        help="the rules with the ink map's ink in place of their ink thresholds and ruled lines")
    parser.add_argument("--backend", default=config.backend, choices=BACKENDS, help="what runs the model")
    parser.add_argument("--scenes", type=int, default=600, help="how many digit scenes to generate")
    parser.add_argument("--blank", type=int, default=600, help="how many blank scenes to generate")
    parser.add_argument("--loss", type=int, default=3000, help="how many single digits for the engine's loss")
    parser.add_argument("--per-value", type=int, default=heldout.PER_VALUE, help="held-out scenes per category value")
    parser.add_argument("--validation", action="store_true",
                        help="engine loss and held-out scenes from the validation digits and seed, not the test ones")
    parser.add_argument("--verbose", action="store_true", help="list the misread files")
    args = parser.parse_args(argv)

    if args.engine == "v3":
        reading = Engine.load("v3", args.model, args.row_reader, args.inkmap, args.backend)
    else:
        reading = Engine.load("rules", args.model, args.reader, args.inkmap if args.swap_ink else "", args.backend)
    models = Models(reading, load_classifier(args.model, args.backend))
    folders = [ROOT / "samples"] + [args.data / "photos-dev" / name for name in ("photo", "canvas", "processed")]
    extra = args.data / "photos-extra" / "photo"
    misreads = []
    with ThreadPoolExecutor() as pool:
        for folder in folders + [extra]:
            if folder.is_dir():
                misreads += evaluate_folder(folder, models, pool, multi_digit=folder == extra)
        for name in ("mnist", "usps"):
            path = args.data / f"{name}.npz"
            if path.exists():
                evaluate_arrays(f"{name} test set (each crop as the engine reads it)", path, models.classifier)
        if args.scenes and (args.data / "mnist.npz").exists():
            evaluate_digit_scenes(args.scenes, args.data / "mnist.npz", models, pool)
        if args.blank:
            evaluate_blank(args.blank, models, pool)
        if all((args.data / f"{name}.npz").exists() for name in ("mnist", "usps")):
            split = "validation" if args.validation else "test"
            pools = validation_digits(args.data) if args.validation else heldout.test_digits(args.data)
            if args.loss:
                evaluate_engine_loss(pools, args.loss, split, models, pool)
            if args.per_value:
                seed = heldout.VALIDATION_SEED if args.validation else heldout.TEST_SEED
                evaluate_categories(pools, seed, args.per_value, split, models, pool)
    if args.verbose and misreads:
        print("\nmisread (path, label, read):")
        for path, expected, read in misreads:
            print(f"{path}\t{expected}\t{read}")


if __name__ == "__main__":
    main()
