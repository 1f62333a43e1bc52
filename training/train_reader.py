"""Train the line reader: the digits on a line of ink, read whole, so that touching and broken digits need no cuts.

    python -m training.train_reader --data ../shared/data --out model/reader.keras [--scenes 24000] [--seed 1]

Data: the lines the engine finds in photo-like scenes of MNIST and USPS train digits (less those held out for
validation, training/split.py), each labelled with its digits (training/line_data.py); the validation lines come
the same way from the held-out digits. Model: a small fully convolutional network over the line's 32 rows, one
prediction per STRIDE columns (ten digits and CTC's blank). Fit: CTC loss, Adam with cosine decay. Evaluate:
lines read exactly, by how many digits they hold. Save: the .keras model and its LiteRT conversion beside it.
"""

from __future__ import annotations

import argparse
import os
import time
from collections import Counter, defaultdict
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from keras import layers, ops  # noqa: E402

from server.engine.backends import save_keras, to_litert  # noqa: E402
from server.engine.lines import HEIGHT, MARGIN, STRIDE  # noqa: E402
from server.engine.reader import BLANK, CLASSES, decode_line  # noqa: E402
from training import line_data  # noqa: E402
from training.split import training_digits, validation_digits  # noqa: E402

VALIDATION_SEED = 77
MAX_DIGITS = 12  # labels are padded to this many


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(prog="python -m training.train_reader", description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True, help="folder with mnist.npz and usps.npz")
    parser.add_argument("--out", type=Path, default=Path("model/reader.keras"))
    parser.add_argument("--scenes", type=int, default=24000, help="training scenes (about 1.8 lines each)")
    parser.add_argument("--validation", type=int, default=1500, help="validation scenes")
    parser.add_argument("--lines", type=Path, default=Path("training/out/lines"),
                        help="keep the lines made here and use them again when the settings match")
    parser.add_argument("--inkmap", default="",
                        help="read the rows of this ink map (engine v3), not the lines of the rules' candidates")
    parser.add_argument("--joined", type=float, default=0.0,
                        help="add this many longer rows (a share of the training rows), each a few of them joined")
    parser.add_argument("--width", type=float, default=1.0, help="the network's channels, scaled")
    parser.add_argument("--epochs", type=int, default=16)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    keras.utils.set_random_seed(args.seed)

    started = time.time()
    # The map's rows are kept apart from the rules' lines, and made again when the way rows are found changes.
    kind = f"-{Path(args.inkmap).stem}-rows{line_data.ROWS_RECIPE}" if args.inkmap else ""
    train = lines(args.lines / f"train-{args.scenes}-{args.seed}{kind}.npz", training_digits(args.data), args.scenes,
                  args.seed, args.inkmap)
    validation = lines(args.lines / f"validation-{args.validation}{kind}.npz", validation_digits(args.data),
                       args.validation, VALIDATION_SEED, args.inkmap)
    train += line_data.joined(train, round(args.joined * len(train)), args.seed, MAX_DIGITS)
    print(f"lines: {len(train)} training, {len(validation)} validation ({time.time() - started:.0f} s)", flush=True)

    model = build_model(args.width)
    fit(model, train, validation, args.epochs, args.batch, args.seed)
    figures = evaluate(model, validation)
    print(figures, flush=True)

    args.out.parent.mkdir(parents=True, exist_ok=True)
    served = build_model(args.width)  # the network alone: Keras 3 would save the optimizer's state too
    served.set_weights(model.get_weights())
    save_keras(served, args.out)
    args.out.with_suffix(".tflite").write_bytes(to_litert(served))
    print(f"saved {args.out} and its .tflite ({time.time() - started:.0f} s in all)")
    return figures


# ---------------------------------------------------------------- the pieces, in the order main() uses them


def lines(path: Path, pools: list, scenes: int, seed: int, inkmap: str = "") -> list[line_data.Example]:
    """The lines of `scenes` scenes (the rows of `inkmap`, when given): made (and kept at `path`), or read from
    `path` when made before."""
    if path.exists():
        return line_data.load(path)
    made = line_data.line_examples(pools, scenes, seed, inkmap=inkmap)
    line_data.save(made, path)
    return made


def build_model(width: float = 1.0) -> keras.Model:
    """32 rows of ink -> per STRIDE columns, the chances of the ten digits and of blank. All convolutions, so that
    one model reads a line of any width; the rows are folded into one by a last convolution as tall as they are.
    `width` scales every layer's channels (the v3 engine's reader is smaller, to keep the models under 5 MB)."""
    inputs = keras.Input((HEIGHT, None, 1))
    x = inputs
    for filters, pool in ((16, (2, 2)), (32, (2, 2)), (64, None), (64, (2, 1)), (96, None)):
        x = layers.Conv2D(round(filters * width), 3, padding="same", use_bias=False)(x)
        x = layers.ReLU()(layers.BatchNormalization()(x))
        if pool:
            x = layers.MaxPooling2D(pool)(x)
    x = layers.Conv2D(round(128 * width), (HEIGHT // 8, 1), use_bias=False)(x)  # (1, width / STRIDE, channels)
    x = layers.ReLU()(layers.BatchNormalization()(x))
    for _ in range(2):  # context along the line: each step sees about three digits' width
        x = layers.Conv2D(round(128 * width), (1, 5), padding="same", use_bias=False)(x)
        x = layers.ReLU()(layers.BatchNormalization()(x))
        x = layers.Dropout(0.2)(x)
    outputs = layers.Conv2D(CLASSES, 1, activation="softmax")(x)
    return keras.Model(inputs, outputs, name="reader")


def ctc_loss(y_true, y_pred):  # noqa: ANN001, ANN201 (tensors)
    """CTC over the steps; y_true is each line's digit count followed by its digits (padded)."""
    y_true, probs = ops.cast(y_true, "int32"), y_pred[:, 0]
    batch, steps = ops.shape(probs)[0], ops.shape(probs)[1]
    log_probs = ops.log(probs + 1e-7)  # CTC takes logits: log-softmax of log-probabilities is themselves
    return ops.ctc_loss(y_true[:, 1:], log_probs, y_true[:, 0], ops.full((batch,), steps), mask_index=BLANK)


class Batches:
    """Batches of lines of one input width each (the widths the engine runs at), shuffled every epoch; the ink
    is shifted by up to MARGIN columns, as where a line starts varies."""

    def __init__(self, examples: list[line_data.Example], batch: int, seed: int, shuffle: bool = True) -> None:
        self.by_width: dict[int, list[int]] = defaultdict(list)
        for i, (image, _) in enumerate(examples):
            self.by_width[image.shape[1]].append(i)
        self.examples, self.batch, self.shuffle = examples, batch, shuffle
        self.rng = np.random.default_rng(seed)
        self.on_epoch_end()

    def on_epoch_end(self) -> None:
        self.batches = []
        for indices in self.by_width.values():
            order = self.rng.permutation(indices) if self.shuffle else np.asarray(indices)
            self.batches += [order[i : i + self.batch] for i in range(0, len(order), self.batch)]
        if self.shuffle:
            self.rng.shuffle(self.batches)

    def __len__(self) -> int:
        return len(self.batches)

    def __getitem__(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        picked = [self.examples[i] for i in self.batches[index]]
        x = np.stack([image for image, _ in picked])[..., None]
        if self.shuffle:
            x = np.stack([np.roll(image, int(self.rng.integers(-MARGIN + 1, MARGIN)), axis=1) for image in x])
        y = np.zeros((len(picked), 1 + MAX_DIGITS), np.int32)
        for row, (_, label) in zip(y, picked, strict=True):
            row[0] = len(label)
            row[1 : 1 + len(label)] = [int(c) for c in label]
        return x, y

    def dataset(self) -> tf.data.Dataset:
        """As a tf.data pipeline whose batches may differ in width (a Keras PyDataset fixes the first's)."""

        def epoch():  # noqa: ANN202 (a generator)
            yield from (self[i] for i in range(len(self)))
            self.on_epoch_end()

        signature = (tf.TensorSpec((None, HEIGHT, None, 1), tf.float32),
                     tf.TensorSpec((None, 1 + MAX_DIGITS), tf.int32))
        return tf.data.Dataset.from_generator(epoch, output_signature=signature)


def fit(model: keras.Model, train: list, validation: list, epochs: int, batch: int, seed: int) -> None:
    data = Batches(train, batch, seed)
    schedule = keras.optimizers.schedules.CosineDecay(2e-3, epochs * len(data))
    model.compile(optimizer=keras.optimizers.Adam(schedule), loss=ctc_loss)
    model.fit(data.dataset().repeat(), epochs=epochs, steps_per_epoch=len(data), verbose=2,
              validation_data=Batches(validation, batch, seed, shuffle=False).dataset())


def evaluate(model: keras.Model, examples: list[line_data.Example]) -> dict:
    """Lines read exactly, in all and by their number of digits (0: a line with no digit, read as none)."""
    right, total = Counter(), Counter()
    data = Batches(examples, 128, 0, shuffle=False)
    for index in range(len(data)):
        x, _ = data[index]
        for i, probs in zip(data.batches[index], model.predict_on_batch(x)[:, 0], strict=True):
            label = examples[i][1]
            total[len(label)] += 1
            right[len(label)] += "".join(str(r.value) for r in decode_line(probs)) == label
    return {"lines": total.total(), "exact": round(right.total() / total.total(), 4), "stride": STRIDE,
            "by_digits": {n: f"{right[n]}/{total[n]}" for n in sorted(total)}}


if __name__ == "__main__":
    main()
