"""Train the ink map: for every pixel of a grayscale picture, the chance that it is ink of a handwritten digit.

    python -m training.train_inkmap --data ../shared/data --out model/inkmap.keras [--scenes 7000] [--epochs 9]

Data: crops of photo-like scenes of MNIST and USPS train digits (less those held out for validation,
training/split.py) with the exact mask of their digits' ink, and of scenes with no digit, some with clutter
(training/inkmap_data.py); the validation crops come the same way from the held-out digits. Model: a small U-Net
(server/engine/inkmap.py says what goes in and out) with separable convolutions, whose map has one value per 2x2
pixels. Fit: binary cross-entropy plus half a dice loss, Adam with cosine decay. Evaluate: pixel
IoU of the map at 0.5 on the validation crops. Save: the .keras model and its LiteRT conversion beside it.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import cv2  # noqa: E402
import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from keras import layers, ops  # noqa: E402

from server.engine.backends import save_keras, to_litert  # noqa: E402
from server.engine.inkmap import SCALE  # noqa: E402
from training import inkmap_data  # noqa: E402
from training.split import training_digits, validation_digits  # noqa: E402

VALIDATION_SEED = 78
WIDTHS = (8, 16, 32, 48)  # channels at 1/2, 1/4, 1/8 and 1/16 of the picture's size


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(prog="python -m training.train_inkmap", description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True, help="folder with mnist.npz and usps.npz")
    parser.add_argument("--out", type=Path, default=Path("model/inkmap.keras"))
    parser.add_argument("--scenes", type=int, default=7000, help="training scenes (2 crops each)")
    parser.add_argument("--validation", type=int, default=400, help="validation scenes")
    parser.add_argument("--crops", type=Path, default=Path("training/out/inkmap"),
                        help="keep the crops made here and use them again when the settings match")
    parser.add_argument("--epochs", type=int, default=9)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    keras.utils.set_random_seed(args.seed)

    started = time.time()
    recipe = f"r{inkmap_data.RECIPE}"
    train = crops(args.crops / f"train-{args.scenes}-{args.seed}-{recipe}.npz", training_digits(args.data),
                  args.scenes, args.seed)
    validation = crops(args.crops / f"validation-{args.validation}-{recipe}.npz", validation_digits(args.data),
                       args.validation, VALIDATION_SEED)
    print(f"crops: {len(train[0])} training, {len(validation[0])} validation ({time.time() - started:.0f} s)",
          flush=True)

    model = build_model()
    fit(model, train, validation, args.epochs, args.batch)
    figures = evaluate(model, validation)
    print(figures, flush=True)

    args.out.parent.mkdir(parents=True, exist_ok=True)
    served = build_model()  # the network alone: Keras 3 would save the optimizer's state with the trained one
    served.set_weights(model.get_weights())
    save_keras(served, args.out)
    args.out.with_suffix(".tflite").write_bytes(to_litert(served))
    print(f"saved {args.out} and its .tflite ({time.time() - started:.0f} s in all)")
    return figures


# ---------------------------------------------------------------- the pieces, in the order main() uses them


def crops(path: Path, pools: list, scenes: int, seed: int) -> inkmap_data.Crops:
    """The crops of `scenes` scenes: made (and kept at `path`), or read from `path` when made before."""
    if path.exists():
        return inkmap_data.load(path)
    made = inkmap_data.crops(pools, scenes, seed)
    inkmap_data.save(made, path)
    return made


def build_model() -> keras.Model:
    """A U-Net on a budget: a strided first convolution, separable convolutions over four halvings, dilated ones
    at 1/16 for context (a stroke 100 px wide is ink, a shadow's edge is not), and each level's upsampling added to
    the skip beside it (adding, not joining, keeps the 1/2-size layers at WIDTHS[0] channels: the costly ones)."""
    gray = keras.Input((None, None, 1), name="gray")  # float32, 0 black to 1 white, sides a multiple of MULTIPLE
    x = layers.Conv2D(WIDTHS[0], 3, strides=2, padding="same", activation="relu")(gray)
    skips = [x]
    for width in WIDTHS[1:]:
        x = layers.SeparableConv2D(width, 3, strides=2, padding="same", activation="relu")(x)
        x = layers.BatchNormalization()(x)
        x = layers.SeparableConv2D(width, 3, padding="same", activation="relu")(x)
        skips.append(x)
    for rate in (2, 4):
        x = layers.SeparableConv2D(WIDTHS[-1], 3, padding="same", dilation_rate=rate, activation="relu")(x)
    for width, skip in zip(reversed(WIDTHS[:-1]), reversed(skips[:-1]), strict=True):
        x = layers.Conv2D(width, 1)(x)
        x = layers.UpSampling2D(2)(x)  # nearest: bilinear will not export at any size; the next 3x3 smooths it
        x = layers.Add()([x, skip])
        x = layers.SeparableConv2D(width, 3, padding="same", activation="relu")(x)
    ink = layers.Conv2D(1, 1, activation="sigmoid", name="ink")(x)  # one value per SCALE x SCALE pixels
    return keras.Model(gray, ink, name="inkmap")


def targets(ink: np.ndarray) -> np.ndarray:
    """Masks (n, h, w) 0/1 -> the map's targets (n, h/SCALE, w/SCALE, 1): each cell's share of ink."""
    n, h, w = ink.shape
    return ink.reshape(n, h // SCALE, SCALE, w // SCALE, SCALE).mean((2, 4), dtype=np.float32)[..., None]


def inputs(gray: np.ndarray) -> np.ndarray:
    return (gray.astype(np.float32) / 255)[..., None]


def loss(truth: tf.Tensor, predicted: tf.Tensor) -> tf.Tensor:
    """Binary cross-entropy plus half a dice loss: the dice term keeps thin strokes, a few pixels of a big crop,
    from being given up to the paper around them."""
    bce = ops.mean(keras.losses.binary_crossentropy(truth, predicted))
    overlap = ops.sum(truth * predicted, axis=(1, 2, 3))
    total = ops.sum(truth, axis=(1, 2, 3)) + ops.sum(predicted, axis=(1, 2, 3))
    dice = 1 - ops.mean((2 * overlap + 1) / (total + 1))
    return bce + 0.5 * dice


def fit(model: keras.Model, train: inkmap_data.Crops, validation: inkmap_data.Crops, epochs: int,
        batch: int) -> None:
    x, y = inputs(train[0]), targets(train[1])
    schedule = keras.optimizers.schedules.CosineDecay(2e-3, len(x) // batch * epochs, alpha=0.05)
    model.compile(optimizer=keras.optimizers.Adam(schedule), loss=loss)
    model.fit(x, y, batch_size=batch, epochs=epochs, shuffle=True, verbose=2,
              validation_data=(inputs(validation[0]), targets(validation[1])))


def evaluate(model: keras.Model, validation: inkmap_data.Crops) -> dict:
    """Pixel IoU of the map at 0.5 against the ink's mask, at full size (the map enlarged as the engine does)."""
    maps = model.predict(inputs(validation[0]), batch_size=64, verbose=0)[..., 0]
    size = validation[0].shape[2], validation[0].shape[1]
    found = np.stack([cv2.resize(m, size, interpolation=cv2.INTER_LINEAR) for m in maps]) >= 0.5
    truth = validation[1] > 0
    return {"pixel_iou": round(float((found & truth).sum() / max((found | truth).sum(), 1)), 4),
            "blank_crops_marked": int(sum(f.sum() > 0 for f, t in zip(found, truth, strict=True) if not t.any())),
            "blank_crops": int(sum(not t.any() for t in truth))}


if __name__ == "__main__":
    main()
