"""Accuracy of the engine on labelled pictures: `python -m tools.evaluate --data ../shared/data [--verbose]`.

A picture's label is the leading digits of its file name (none: it shows no digit); a read counts only when the
whole number matches. Folders: samples/, photos-dev/{photo,canvas,processed}; then the MNIST and USPS test sets
(already 28x28 and normalised, so each crop is read as the engine reads one); numbers of MNIST test digits written
into generated photos; and the "no digit" rate on generated blank scenes.
"""

from __future__ import annotations

import argparse
import re
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from server.config import ROOT, load_config
from server.engine import BACKENDS, NOT_A_DIGIT, Classifier, ImageError, load_classifier, read, recognize

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif"}
SCENE_SIZES = [(240, 320), (480, 640), (1200, 1600)]  # (height, width) of generated scenes, taken in turn


def label(path: Path) -> str:
    return re.match(r"\d*", path.name).group()


def read_all(datas: list[bytes], classifier: Classifier, pool: ThreadPoolExecutor) -> list[str | None]:
    """The number read from each image ('?' when unreadable): prepared in threads, classified in one batch."""
    results = recognize(datas, classifier.classify, map_fn=pool.map)
    return ["?" if isinstance(r, ImageError) else r["number"] for r in results]


def evaluate_folder(folder: Path, classifier: Classifier, pool: ThreadPoolExecutor) -> list[tuple[Path, str, str]]:
    """Every labelled image in `folder` -> its misreads as (path, label, read)."""
    paths = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    reads = read_all([p.read_bytes() for p in paths], classifier, pool)
    pairs = zip(paths, reads, strict=True)
    misreads = [(p, label(p) or "-", read or "-") for p, read in pairs if (read or "") != label(p)]
    _report(str(folder), len(paths), len(paths) - len(misreads))
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


def evaluate_blank(count: int, classifier: Classifier, pool: ThreadPoolExecutor) -> None:
    from training.scenes import blank_scene, encode_jpeg  # the TRAINING engineer's scene generator

    rng = np.random.default_rng(2024)
    datas = [encode_jpeg(blank_scene(rng, *SCENE_SIZES[i % len(SCENE_SIZES)]), 90) for i in range(count)]
    reads = read_all(datas, classifier, pool)
    _report("blank scenes (no digit)", count, sum(read is None for read in reads))


def evaluate_digit_scenes(count: int, path: Path, classifier: Classifier, pool: ThreadPoolExecutor) -> None:
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
    reads = read_all(datas, classifier, pool)
    _report("digit scenes (MNIST test digits in generated photos)", count,
            sum((read or "") == label for read, label in zip(reads, labels, strict=True)))


def _report(name: str, total: int, correct: int, note: str = "") -> None:
    print(f"{name:<60} {correct:>5}/{total:<5} {100 * correct / max(total, 1):6.2f}%  {note}".rstrip(), flush=True)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m tools.evaluate", description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data", help="the shared data folder")
    config = load_config([])  # the server's defaults and DIGITS_* env vars
    parser.add_argument("--model", default=config.model_path, help="model to evaluate (.tflite or .keras)")
    parser.add_argument("--backend", default=config.backend, choices=BACKENDS, help="what runs the model")
    parser.add_argument("--scenes", type=int, default=600, help="how many digit scenes to generate")
    parser.add_argument("--blank", type=int, default=600, help="how many blank scenes to generate")
    parser.add_argument("--verbose", action="store_true", help="list the misread files")
    args = parser.parse_args(argv)

    classifier = load_classifier(args.model, args.backend)
    folders = [ROOT / "samples"] + [args.data / "photos-dev" / name for name in ("photo", "canvas", "processed")]
    misreads = []
    with ThreadPoolExecutor() as pool:
        for folder in folders:
            if folder.is_dir():
                misreads += evaluate_folder(folder, classifier, pool)
        for name in ("mnist", "usps"):
            path = args.data / f"{name}.npz"
            if path.exists():
                evaluate_arrays(f"{name} test set (each crop as the engine reads it)", path, classifier)
        if args.scenes and (args.data / "mnist.npz").exists():
            evaluate_digit_scenes(args.scenes, args.data / "mnist.npz", classifier, pool)
        if args.blank:
            evaluate_blank(args.blank, classifier, pool)
    if args.verbose and misreads:
        print("\nmisread (path, label, read):")
        for path, expected, read in misreads:
            print(f"{path}\t{expected}\t{read}")


if __name__ == "__main__":
    main()
