"""Train the digit recogniser: a small Keras CNN, 28x28 grey in, 11-way softmax out (class 10 = not a digit).

    python -m training.train --data ../shared/data --out model/digits.keras   # what `make train` runs (+ .tflite)
    python -m training.train --data ../shared/data --out /tmp/m.keras --limit 500 --epochs 1   # smoke run

The script reads top to bottom: settings, data, augmentation, model, fit, evaluate, save.
Data: MNIST train (the last 5,000 held out for validation) and USPS train (10% held out), both augmented
the way a camera and a crop change handwriting; negatives (class 10) generated here; and, when the
serving engine is importable, photo-like scenes passed through `server.engine.prepare` so training sees
the very crops serving sees. MNIST `x_test` and USPS `x_test` are used only for the final report.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from keras import layers  # noqa: E402

from server.engine.backends import save_keras, to_litert  # noqa: E402
from training import augment, negatives, scene_data, strokes  # noqa: E402
from training.split import MNIST_VALIDATION, SPLIT_SEED, usps_split  # noqa: E402

NUM_CLASSES = 11
NOT_A_DIGIT = 10

# ---------------------------------------------------------------- settings

parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
parser.add_argument("--data", default="../shared/data", help="folder with mnist.npz and usps.npz")
parser.add_argument("--out", default="model/digits.keras", help="where to save the trained model")
parser.add_argument("--epochs", type=int, default=36)
parser.add_argument("--batch-size", type=int, default=128)
parser.add_argument("--seed", type=int, default=1234)
parser.add_argument("--limit", type=int, default=0, help="use only N training images (smoke run)")
parser.add_argument("--scenes", type=int, default=2000, help="photo-like scenes through the engine (0: none)")
parser.add_argument("--negatives", type=float, default=0.12, help="generated negatives, as a fraction of digits")
parser.add_argument("--strokes", type=float, default=0.12, help="synthetic stroke digits, as a fraction of digits")
parser.add_argument("--lr", type=float, default=2e-3)
parser.add_argument(
    "--report-dir", default=None, help="where to write training_curves.png, confusion_matrix.png, figures.json "
    "(default: the folder of --out; '' for none)"
)
parser.add_argument("--cache", default="training/out", help="folder for cached scene crops")
parser.add_argument("--no-bench", action="store_true", help="skip the per-digit timing at the end")
parser.add_argument("--quick-eval", action="store_true", help="skip the blank scenes in the final evaluation")


def main(argv: list[str] | None = None) -> dict:
    args = parser.parse_args(argv)
    keras.utils.set_random_seed(args.seed)  # Python, NumPy and TensorFlow
    tf.config.experimental.enable_op_determinism()
    rng = np.random.default_rng(args.seed)
    started = time.time()
    print(f"seed {args.seed}, TensorFlow {tf.__version__}, Keras {keras.__version__}")

    # ------------------------------------------------------------ data
    data = load_data(Path(args.data))
    mnist_x, mnist_y = data["mnist_train"]
    usps_x, usps_y = data["usps_train"]
    # Validation: the last 5,000 of MNIST train and a fixed 10% of USPS train, kept out of training.
    usps_val, usps_tr = usps_split(len(usps_x))
    train_x = np.concatenate([mnist_x[:-MNIST_VALIDATION], usps_x[usps_tr]])
    train_y = np.concatenate([mnist_y[:-MNIST_VALIDATION], usps_y[usps_tr]])
    val_x = np.concatenate([mnist_x[-MNIST_VALIDATION:], usps_x[usps_val]])
    val_y = np.concatenate([mnist_y[-MNIST_VALIDATION:], usps_y[usps_val]])
    if args.limit:
        pick = rng.choice(len(train_x), min(args.limit, len(train_x)), replace=False)
        train_x, train_y = train_x[pick], train_y[pick]
        val_x, val_y = val_x[: max(100, args.limit // 5)], val_y[: max(100, args.limit // 5)]
    print(f"digits: {len(train_x)} train, {len(val_x)} validation (MNIST + USPS)")

    # Synthetic digits from stroke templates: flagged 1s, crossed 7s, open 4s... (training/strokes.py).
    n_strokes = int(len(train_x) * args.strokes)
    stroke_x, stroke_y = strokes.stroke_digits(rng, n_strokes)
    stroke_val_x, stroke_val_y = strokes.stroke_digits(np.random.default_rng(SPLIT_SEED + 4), n_strokes // 10)
    train_x = np.concatenate([train_x, to_uint8(stroke_x)])
    train_y = np.concatenate([train_y, stroke_y]).astype(np.int64)
    val_x = np.concatenate([val_x, to_uint8(stroke_val_x)])
    val_y = np.concatenate([val_y, stroke_val_y]).astype(np.int64)
    print(f"stroke digits: {n_strokes} train, {len(stroke_val_x)} validation")

    # Negatives (class 10): a pool drawn once; each epoch samples from it and flips them.
    n_neg = max(16, int(len(train_x) * args.negatives))
    neg_pool = negatives.negatives(rng, n_neg * 3)
    n_neg_val = max(16, len(val_x) // 8)
    neg_val = negatives.negatives(np.random.default_rng(SPLIT_SEED + 1), n_neg_val)
    print(f"negatives: pool {len(neg_pool)}, {n_neg} per epoch, {len(neg_val)} validation")

    # Scenes: photo-like pictures through the serving engine's own preprocessing.
    scene_x = np.zeros((0, 28, 28), np.float32)
    scene_y = np.zeros((0,), np.int64)
    scene_val_x, scene_val_y = scene_x, scene_y
    if args.scenes and scene_data.engine_available():
        n_scenes = args.scenes if not args.limit else min(args.scenes, 20)
        cache = Path(args.cache) if args.cache and not args.limit else None
        t = time.time()
        scene_x, scene_y = scene_data.scene_crops(n_scenes, train_x, train_y, seed=args.seed, cache=cache)
        scene_val_x, scene_val_y = scene_data.scene_crops(
            max(10, n_scenes // 10), val_x, val_y, seed=SPLIT_SEED, cache=cache
        )
        print(
            f"scene crops: {len(scene_x)} train, {len(scene_val_x)} validation "
            f"({np.mean(scene_y == NOT_A_DIGIT):.0%} not a digit), {time.time() - t:.0f} s"
        )
    elif args.scenes:
        print("scene crops: server.engine.prepare not available yet, training on crop-level augmentation only")

    # ------------------------------------------------------------ augmentation, as a keras PyDataset
    train_data = AugmentedCrops(
        digits=(to_unit(train_x), train_y),
        negatives=neg_pool,
        n_negatives=n_neg,
        scenes=(scene_x, scene_y),
        batch_size=args.batch_size,
        seed=args.seed,
        workers=2,
        use_multiprocessing=False,
    )
    val_all_x = np.concatenate([to_unit(val_x), neg_val, scene_val_x])[..., None]
    val_all_y = np.concatenate([val_y, np.full(len(neg_val), NOT_A_DIGIT), scene_val_y]).astype(np.int64)

    # ------------------------------------------------------------ model
    model = build_model()
    model.summary()
    steps = len(train_data) * args.epochs
    schedule = keras.optimizers.schedules.CosineDecay(
        args.lr * 0.1, steps, warmup_target=args.lr, warmup_steps=min(len(train_data), steps // 10)
    )
    model.compile(
        optimizer=keras.optimizers.Adam(schedule),
        loss=keras.losses.SparseCategoricalCrossentropy(),
        metrics=["accuracy"],
    )

    # ------------------------------------------------------------ fit
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    best = out.with_name(out.stem + ".best.keras")
    history = model.fit(
        train_data,
        validation_data=(val_all_x, val_all_y),
        epochs=args.epochs,
        callbacks=[keras.callbacks.ModelCheckpoint(best, monitor="val_accuracy", save_best_only=True)],
        verbose=2 if not sys.stdout.isatty() else 1,
    )
    trained = keras.models.load_model(best)
    best.unlink()
    # Serving needs no BatchNormalization or Dropout: fold them away and check nothing changed.
    model = fold_batchnorm(trained)
    gap = np.abs(model.predict(val_all_x[:512], verbose=0) - trained.predict(val_all_x[:512], verbose=0)).max()
    print(f"folded BatchNormalization into the convolutions (largest output change {gap:.1e})")
    assert gap < 1e-3, gap

    # ------------------------------------------------------------ evaluate
    figures = evaluate(model, data, blank_scenes=0 if args.quick_eval else 150)
    figures.update(
        seed=args.seed,
        epochs=args.epochs,
        best_epoch=int(np.argmax(history.history["val_accuracy"])) + 1,
        best_val_accuracy=round(float(np.max(history.history["val_accuracy"])), 5),
        train_digits=int(len(train_x)),
        scene_crops=int(len(scene_x)),
        train_minutes=round((time.time() - started) / 60, 1),
    )

    # ------------------------------------------------------------ save
    flatbuffer = to_litert(model)  # first: a failed conversion must not leave a new .keras beside an old .tflite
    served = out.with_suffix(".tflite")  # what the server loads: the same model as a LiteRT graph
    save_keras(model, out)
    served.write_bytes(flatbuffer)
    figures.update(size_kb=round(out.stat().st_size / 1024, 1), tflite_kb=round(len(flatbuffer) / 1024, 1),
                   params=int(model.count_params()))
    if not args.no_bench:
        figures.update(bench(served))
    report_dir = out.parent if args.report_dir is None else args.report_dir
    if report_dir:
        report = Path(report_dir)
        report.mkdir(parents=True, exist_ok=True)
        plot_curves(history.history, report / "training_curves.png")
        plot_confusion(figures.pop("confusion"), report / "confusion_matrix.png")
        (report / "figures.json").write_text(json.dumps(figures, indent=2) + "\n")
    figures.pop("confusion", None)
    print("\nfigures:")
    for k, v in figures.items():
        print(f"  {k}: {v}")
    print(f"saved {out} ({figures['size_kb']} KB) and {served}")
    return figures


# ---------------------------------------------------------------- the pieces, in the order main() uses them


def load_data(folder: Path) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """MNIST (and USPS when present) as uint8 white-on-black 28x28 images with labels."""
    if (folder / "mnist.npz").exists():
        with np.load(folder / "mnist.npz") as f:
            data = {"mnist_train": (f["x_train"], f["y_train"]), "mnist_test": (f["x_test"], f["y_test"])}
    else:
        print(f"{folder / 'mnist.npz'} not found: downloading MNIST with keras.datasets.mnist")
        (xt, yt), (xs, ys) = keras.datasets.mnist.load_data()
        data = {"mnist_train": (xt, yt), "mnist_test": (xs, ys)}
    if (folder / "usps.npz").exists():
        with np.load(folder / "usps.npz") as f:
            data["usps_train"] = (f["x_train"], f["y_train"])
            data["usps_test"] = (f["x_test"], f["y_test"])
    else:
        print(f"{folder / 'usps.npz'} not found: training without USPS")
        empty = (np.zeros((0, 28, 28), np.uint8), np.zeros((0,), np.uint8))
        data["usps_train"] = data["usps_test"] = empty
    return data


def to_unit(x: np.ndarray) -> np.ndarray:
    return x.astype(np.float32) / 255.0


def to_uint8(x: np.ndarray) -> np.ndarray:
    return np.clip(np.round(x * 255), 0, 255).astype(np.uint8)


class AugmentedCrops(keras.utils.PyDataset):
    """Each epoch: every training digit once (augmented afresh), `n_negatives` negatives sampled from the
    pool (flipped, photometric noise) and every scene crop (light photometric noise), shuffled.
    Batch `i` of epoch `e` draws from Generator([seed, e, i]), so results do not depend on thread timing."""

    def __init__(self, digits, negatives, n_negatives, scenes, batch_size, seed, **kwargs):
        super().__init__(**kwargs)
        self.digits_x, self.digits_y = digits
        self.neg_pool, self.n_neg = negatives, n_negatives
        self.scene_x, self.scene_y = scenes
        self.batch_size, self.seed, self.epoch = batch_size, seed, 0
        self.n_digits, self.n_scenes = len(self.digits_x), len(self.scene_x)
        self._shuffle()

    def _shuffle(self) -> None:
        rng = np.random.default_rng([self.seed, self.epoch, 2**31 - 1])
        neg = rng.choice(len(self.neg_pool), self.n_neg, replace=len(self.neg_pool) < self.n_neg)
        # Index space: digits [0, n_digits), then negatives (as -1 - pool index), then scenes.
        items = np.concatenate([np.arange(self.n_digits), -1 - neg, self.n_digits + np.arange(self.n_scenes)])
        self.order = rng.permutation(items)

    def __len__(self) -> int:
        return int(np.ceil(len(self.order) / self.batch_size))

    def on_epoch_end(self) -> None:
        self.epoch += 1
        self._shuffle()

    def __getitem__(self, i: int):
        rng = np.random.default_rng([self.seed, self.epoch, i])
        idx = self.order[i * self.batch_size : (i + 1) * self.batch_size]
        x = np.empty((len(idx), 28, 28), np.float32)
        y = np.empty((len(idx),), np.int64)
        is_digit = (idx >= 0) & (idx < self.n_digits)
        is_neg = idx < 0
        is_scene = idx >= self.n_digits
        if is_digit.any():
            d = idx[is_digit]
            x[is_digit] = augment.augment(rng, self.digits_x[d], pool=self.digits_x)
            y[is_digit] = self.digits_y[d]
        if is_neg.any():
            neg = self.neg_pool[-1 - idx[is_neg]]
            # Flips only: a quarter turn would make a flat line fragment upright, and that reads as "1".
            if rng.random() < 0.5:
                neg = neg[:, :, ::-1]
            if rng.random() < 0.5:
                neg = neg[:, ::-1, :]
            x[is_neg] = augment.photometric(rng, np.ascontiguousarray(neg))
            y[is_neg] = NOT_A_DIGIT
        if is_scene.any():
            s = idx[is_scene] - self.n_digits
            x[is_scene] = augment.photometric(rng, augment.random_affine(rng, self.scene_x[s], strength=0.3))
            y[is_scene] = self.scene_y[s]
        return x[..., None], y


def build_model() -> keras.Model:
    """Three valid 3x3 convolutions with max-pooling, then a small dense head: about 0.05 ms per digit
    at batch 32 on one CPU core. BatchNormalization speeds training; `fold_batchnorm` removes it for serving."""
    inputs = keras.Input((28, 28, 1), name="image")
    x = inputs
    for filters, pool in ((16, True), (48, True), (96, False)):
        x = layers.Conv2D(filters, 3, use_bias=False)(x)
        x = layers.BatchNormalization()(x)
        x = layers.ReLU()(x)
        if pool:
            x = layers.MaxPooling2D()(x)
    x = layers.Flatten()(x)
    x = layers.Dropout(0.3)(x)
    x = layers.Dense(128, activation="relu")(x)
    x = layers.Dropout(0.3)(x)
    outputs = layers.Dense(NUM_CLASSES, activation="softmax", name="probabilities")(x)
    return keras.Model(inputs, outputs, name="digits")


def fold_batchnorm(model: keras.Model) -> keras.Model:
    """The same function without BatchNormalization layers: each Conv2D -> BN pair becomes one Conv2D
    with a bias, which saves a pass over the activations at serving time."""
    inputs = keras.Input((28, 28, 1), name="image")
    x = inputs
    pending = None  # a Conv2D whose BN has not been seen yet
    for layer in model.layers[1:]:
        if isinstance(layer, layers.Conv2D):
            pending = layer
            continue
        if isinstance(layer, layers.BatchNormalization) and pending is not None:
            kernel = pending.get_weights()[0]
            bias = pending.get_weights()[1] if pending.use_bias else np.zeros(kernel.shape[-1], np.float32)
            gamma, beta, mean, var = layer.get_weights()
            scale = gamma / np.sqrt(var + layer.epsilon)
            conv = layers.Conv2D(pending.filters, pending.kernel_size, strides=pending.strides, padding=pending.padding)
            x = conv(x)
            conv.set_weights([kernel * scale, (bias - mean) * scale + beta])
            pending = None
            continue
        if pending is not None:
            x = pending(x)
            pending = None
        if isinstance(layer, layers.Dropout):
            continue
        x = layer(x)
    return keras.Model(inputs, x, name=model.name)


def evaluate(model: keras.Model, data: dict, blank_scenes: int = 150) -> dict:
    """Accuracy on the MNIST and USPS test sets (never seen in training or selection), the reject rate on
    fresh negatives, the "no digit" rate on blank scenes through the engine, and an 11x11 confusion matrix."""
    figures: dict = {}
    xs, ys = data["mnist_test"]
    pred_m = predict(model, to_unit(xs))
    figures["mnist_test_accuracy"] = round(float(np.mean(pred_m == ys)), 5)
    all_true, all_pred = [ys], [pred_m]
    xu, yu = data["usps_test"]
    if len(xu):
        pred_u = predict(model, to_unit(xu))
        figures["usps_test_accuracy"] = round(float(np.mean(pred_u == yu)), 5)
        all_true.append(yu)
        all_pred.append(pred_u)
    neg = negatives.negatives(np.random.default_rng(SPLIT_SEED + 2), 3000)
    pred_n = predict(model, neg)
    figures["negatives_rejected"] = round(float(np.mean(pred_n == NOT_A_DIGIT)), 5)
    all_true.append(np.full(len(neg), NOT_A_DIGIT))
    all_pred.append(pred_n)
    if blank_scenes and scene_data.engine_available():
        figures.update(scene_data.scene_figures(model, n=blank_scenes, seed=SPLIT_SEED + 3))
    true, pred = np.concatenate(all_true), np.concatenate(all_pred)
    cm = np.zeros((NUM_CLASSES, NUM_CLASSES), np.int64)
    np.add.at(cm, (true.astype(np.int64), pred.astype(np.int64)), 1)
    figures["confusion"] = cm
    return figures


def predict(model: keras.Model, x: np.ndarray) -> np.ndarray:
    return np.argmax(model.predict(x[..., None], batch_size=512, verbose=0), axis=1)


def bench(path: Path) -> dict:
    """Per-digit milliseconds at batch 1 and 32 on one core, measured in a fresh single-threaded process."""
    out = subprocess.run(
        [sys.executable, "-m", "training.bench", str(path), "--json"], capture_output=True, text=True, check=False
    )
    try:
        return json.loads(out.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        print("timing failed:", out.stderr[-2000:])
        return {}


def plot_curves(history: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for ax, key in zip(axes, ("loss", "accuracy"), strict=True):
        ax.plot(history[key], label="train")
        ax.plot(history["val_" + key], label="validation")
        ax.set_xlabel("epoch")
        ax.set_title(key)
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)
    print(f"wrote {path}")


def plot_confusion(cm: np.ndarray, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [str(i) for i in range(10)] + ["none"]
    fig, ax = plt.subplots(figsize=(7, 6))
    shown = np.log1p(cm)
    ax.imshow(shown, cmap="Blues")
    for i in range(NUM_CLASSES):
        for j in range(NUM_CLASSES):
            if cm[i, j]:
                ax.text(j, i, str(cm[i, j]), ha="center", va="center", fontsize=7,
                        color="white" if shown[i, j] > shown.max() * 0.6 else "black")
    ax.set_xticks(range(NUM_CLASSES), names)
    ax.set_yticks(range(NUM_CLASSES), names)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title("MNIST test + USPS test + generated negatives")
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
