"""Train the locator, where the digits are in a picture: an experiment the engine does not use yet (model card).

    python -m training.train_locator --data ../shared/data --out training/out/locator.keras [--scenes 16000] [--seed 1]

Data: photo-like scenes (training/locate_data.py) of MNIST and USPS train digits (less those held out for
validation, training/split.py), a quarter of them with no digit. Model: a small fully convolutional network,
a centre heatmap and box sizes on a grid of STRIDE pixels (CenterNet's recipe at a fraction of its size).
Fit: focal loss on the heatmap, L1 on the log sizes at the centres. Evaluate: digits found on validation scenes
of the held-out digits. Save: the .keras model and its LiteRT conversion beside it.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
from keras import layers, ops  # noqa: E402

from server.engine.backends import to_litert  # noqa: E402
from training.locate_data import STRIDE, boxes, locator_scenes, targets  # noqa: E402
from training.split import training_digits, validation_digits  # noqa: E402

VALIDATION_SEED = 77


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(prog="python -m training.train_locator", description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True, help="folder with mnist.npz and usps.npz")
    parser.add_argument("--out", type=Path, default=Path("training/out/locator.keras"))
    parser.add_argument("--scenes", type=int, default=16000, help="training scenes")
    parser.add_argument("--validation", type=int, default=800, help="validation scenes")
    parser.add_argument("--epochs", type=int, default=24)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    keras.utils.set_random_seed(args.seed)

    started = time.time()
    train_digits = np.concatenate([x for x, _ in training_digits(args.data)])
    held_out = np.concatenate([x for x, _ in validation_digits(args.data)])
    x, y = scenes(args.scenes, train_digits, args.seed)
    x_val, y_val, val_boxes = scenes(args.validation, held_out, VALIDATION_SEED, keep_boxes=True)
    print(f"scenes: {len(x)} training, {len(x_val)} validation ({time.time() - started:.0f} s)", flush=True)

    model = build_model()
    fit(model, x, y, x_val, y_val, args.epochs, args.batch)
    figures = evaluate(model, x_val, val_boxes)
    print(figures, flush=True)

    args.out.parent.mkdir(parents=True, exist_ok=True)
    model.save(args.out, include_optimizer=False)
    args.out.with_suffix(".tflite").write_bytes(to_litert(model))
    print(f"saved {args.out} and its .tflite ({time.time() - started:.0f} s in all)")
    return figures


def scenes(n: int, digits: np.ndarray, seed: int, keep_boxes: bool = False):  # noqa: ANN201 (arrays, boxes)
    x, found = locator_scenes(n, digits, seed)
    return (x, targets(found), found) if keep_boxes else (x, targets(found))


def build_model() -> keras.Model:
    """Four halvings to a coarse grid that sees whole digits (dilated convolutions widen its view to about 270
    input pixels), then back up to the STRIDE grid with the finer maps added in, as in a feature pyramid."""
    def separable(x, filters: int, strides: int = 1, dilation: int = 1):  # noqa: ANN001, ANN202
        x = layers.DepthwiseConv2D(3, strides=strides, padding="same", dilation_rate=dilation, use_bias=False)(x)
        x = layers.BatchNormalization()(x)
        x = layers.ReLU()(x)
        x = layers.Conv2D(filters, 1, use_bias=False)(x)
        x = layers.BatchNormalization()(x)
        return layers.ReLU()(x)

    inputs = keras.Input((None, None, 1))
    x = layers.Conv2D(16, 3, strides=2, padding="same", use_bias=False)(inputs)
    x = layers.ReLU()(layers.BatchNormalization()(x))
    quarter = separable(x, 32, strides=2)
    eighth = separable(separable(quarter, 48, strides=2), 48)
    x = separable(eighth, 64, strides=2)
    for dilation in (1, 2, 4):
        x = separable(x, 64, dilation=dilation)
    x = layers.Add()([layers.UpSampling2D()(layers.Conv2D(48, 1)(x)), eighth])
    x = separable(x, 48)
    x = layers.Add()([layers.UpSampling2D()(layers.Conv2D(32, 1)(x)), quarter])
    x = separable(x, 32)
    heat = layers.Conv2D(1, 1, activation="sigmoid", bias_initializer=keras.initializers.Constant(-4.0))(x)
    size = layers.Conv2D(2, 1, bias_initializer=keras.initializers.Constant(3.0))(x)
    return keras.Model(inputs, layers.Concatenate()([heat, size]), name="locator")


def centre_loss(y_true, y_pred):  # noqa: ANN001, ANN201 (tensors)
    """CenterNet's penalty-reduced focal loss on the heatmap, plus L1 on the log sizes at the centres, both per
    digit in the batch."""
    heat, peak = y_true[..., 0], y_true[..., 3]
    p = ops.clip(y_pred[..., 0], 1e-4, 1 - 1e-4)
    positive = -ops.log(p) * (1 - p) ** 2 * peak
    negative = -ops.log(1 - p) * p**2 * (1 - heat) ** 4 * (1 - peak)
    size = ops.sum(ops.abs(y_pred[..., 1:3] - y_true[..., 1:3]), axis=-1) * peak
    digits = ops.maximum(ops.sum(peak), 1.0)
    return (ops.sum(positive) + ops.sum(negative) + ops.sum(size)) / digits


def fit(model: keras.Model, x: np.ndarray, y: np.ndarray, x_val: np.ndarray, y_val: np.ndarray, epochs: int,
        batch: int) -> None:
    steps = epochs * (len(x) // batch)
    schedule = keras.optimizers.schedules.CosineDecay(2e-3, steps)
    model.compile(optimizer=keras.optimizers.Adam(schedule), loss=centre_loss)
    jitter = keras.Sequential([layers.RandomBrightness(0.2, value_range=(0, 1)), layers.RandomContrast(0.3)])

    def batches():  # noqa: ANN202
        rng = np.random.default_rng(0)
        while True:
            order = rng.permutation(len(x))
            for start in range(0, len(order) - batch + 1, batch):
                pick = order[start : start + batch]
                yield np.clip(jitter(x[pick].astype(np.float32) / 255.0, training=True), 0, 1), y[pick]

    model.fit(batches(), steps_per_epoch=len(x) // batch, epochs=epochs, verbose=2,
              validation_data=(x_val.astype(np.float32) / 255.0, y_val), validation_batch_size=batch)


def evaluate(model: keras.Model, x: np.ndarray, found: list[list[tuple[float, ...]]]) -> dict:
    """Digits found (a box whose centre lies in the digit's box and the digit's centre in it), digits missed,
    boxes that are no digit, and scenes got exactly right, on the validation scenes."""
    outputs = model.predict(x.astype(np.float32) / 255.0, batch_size=64, verbose=0)
    hits = misses = extra = exact = 0
    for out, truth in zip(outputs, found, strict=True):
        got, _ = boxes(out, 1.0, x.shape[1:3])
        matched = [any(_contains(t, g) and _contains(g, t) for g in got) for t in truth]
        spare = sum(not any(_contains(t, g) and _contains(g, t) for t in truth) for g in got)
        hits, misses, extra = hits + sum(matched), misses + len(truth) - sum(matched), extra + spare
        exact += all(matched) and spare == 0
    return {"digits": hits + misses, "found": hits, "missed": misses, "not_digits": extra, "scenes": len(found),
            "scenes_exact": exact, "stride": STRIDE}


def _contains(box: tuple[float, ...], other: tuple[float, ...]) -> bool:
    """Whether `other`'s centre lies inside `box`."""
    x, y, w, h = box
    cx, cy = other[0] + other[2] / 2, other[1] + other[3] / 2
    return x <= cx <= x + w and y <= cy <= y + h


if __name__ == "__main__":
    main()
