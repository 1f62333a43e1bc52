"""The training path works end to end (a tiny smoke run), and the scene generator keeps its promises."""

from __future__ import annotations

import numpy as np
import pytest

from server.engine import load_classifier
from tests.conftest import DATA


def test_blank_scene_is_a_photo_sized_bgr_image():
    from training.scenes import blank_scene

    rng = np.random.default_rng(0)
    for height, width in ((240, 320), (480, 640)):
        image = blank_scene(rng, height, width)
        assert image.shape == (height, width, 3)
        assert image.dtype == np.uint8
        assert 20 < image.mean() < 250  # a lit scene, not an empty array


def test_scenes_are_reproducible_from_the_seed():
    from training.scenes import blank_scene, digit_scene

    a = blank_scene(np.random.default_rng(7))
    b = blank_scene(np.random.default_rng(7))
    assert np.array_equal(a, b)
    digit = np.zeros((28, 28), np.uint8)
    digit[4:24, 12:16] = 255  # a "1"
    image, boxes = digit_scene(np.random.default_rng(3), [digit, digit])
    again, boxes_again = digit_scene(np.random.default_rng(3), [digit, digit])
    assert np.array_equal(image, again) and boxes == boxes_again
    assert len(boxes) == 2 and all(w > 0 and h > 0 for _, _, w, h in boxes)
    assert boxes[0][0] < boxes[1][0]  # written left to right


def test_negatives_are_mnist_shaped_crops():
    from training.negatives import negatives

    x = negatives(np.random.default_rng(0), 50)
    assert x.shape == (50, 28, 28) and x.dtype == np.float32
    assert 0.0 <= x.min() and x.max() <= 1.0


def test_batchnorm_folding_keeps_the_function():
    import keras

    from training.train import build_model, fold_batchnorm

    model = build_model()
    # Give BatchNormalization non-trivial statistics, as after training.
    rng = np.random.default_rng(0)
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            n = layer.gamma.shape[0]
            stats = [rng.uniform(0.5, 2, n), rng.normal(0, 0.5, n), rng.normal(0, 0.5, n), rng.uniform(0.5, 2, n)]
            layer.set_weights(stats)  # gamma, beta, moving mean, moving variance
    folded = fold_batchnorm(model)
    x = rng.random((8, 28, 28, 1)).astype(np.float32)
    assert not any(isinstance(layer, keras.layers.BatchNormalization) for layer in folded.layers)
    np.testing.assert_allclose(folded.predict(x, verbose=0), model.predict(x, verbose=0), atol=1e-4)


@pytest.mark.data
def test_training_smoke_run_writes_a_loadable_model(tmp_path):
    if not (DATA / "mnist.npz").exists():
        pytest.skip(f"shared data not found at {DATA}: the smoke run needs mnist.npz (no download in tests)")
    import keras

    from training.train import main

    out = tmp_path / "digits.keras"
    figures = main(
        [
            "--data", str(DATA), "--out", str(out), "--limit", "300", "--epochs", "1",
            "--scenes", "10", "--cache", "", "--report-dir", str(tmp_path / "report"), "--no-bench",
            "--quick-eval",
        ]
    )  # fmt: skip
    model = keras.models.load_model(out, compile=False)
    assert model.input_shape == (None, 28, 28, 1)
    assert model.output_shape == (None, 11)
    x = np.random.default_rng(0).random((2, 28, 28, 1), dtype=np.float32)
    probs = model.predict(x, verbose=0)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-4)
    served = load_classifier(out.with_suffix(".tflite"))  # the file the server loads, written beside the model
    np.testing.assert_allclose(served.classify(x), probs, atol=1e-5)
    assert 0.0 <= figures["mnist_test_accuracy"] <= 1.0
    assert (tmp_path / "report" / "confusion_matrix.png").exists()
    assert (tmp_path / "report" / "training_curves.png").exists()


@pytest.mark.data
def test_locator_smoke_run_writes_a_model_and_its_conversion(tmp_path):
    """The locator experiment (training/train_locator.py) still trains, evaluates and saves end to end."""
    if not (DATA / "usps.npz").exists():
        pytest.skip(f"shared data not found at {DATA}: the smoke run needs mnist.npz and usps.npz")
    from server.engine.backends import LiteRTRun
    from training.train_locator import main

    out = tmp_path / "locator.keras"
    figures = main(["--data", str(DATA), "--out", str(out), "--scenes", "64", "--validation", "16", "--epochs", "1",
                    "--batch", "16"])

    assert figures["scenes"] == 16 and figures["found"] + figures["missed"] == figures["digits"]
    x = np.random.default_rng(0).random((1, 96, 128, 1), dtype=np.float32)
    outputs = LiteRTRun(out.with_suffix(".tflite").read_bytes(), x.shape)(x)
    assert outputs.shape == (1, 24, 32, 3)  # heatmap and log box sizes on a grid of 4 input pixels


def test_joined_rows_hold_their_parts_digits_and_fit_the_reader():
    """Longer training rows (training/line_data.py: joined) are rows side by side: their digits in order, their
    input one of the reader's widths, a too long one shrunk with its margins kept free."""
    from server.engine.lines import HEIGHT, MARGIN, WIDTHS
    from training.line_data import joined

    def row(label: str, ink_width: int, width: int) -> tuple[np.ndarray, str]:
        image = np.zeros((HEIGHT, width), np.float32)
        image[4:28, MARGIN : MARGIN + ink_width] = 1
        return image, label

    short = [row("1", 16, 64), row("23", 40, 64), row("", 10, 64), row("4", 20, 64)]
    for image, label in joined(short, 50, seed=0, max_digits=12):
        assert image.shape[0] == HEIGHT and image.shape[1] in WIDTHS and set(label) <= set("1234")
        assert image[:, :MARGIN].max() == 0 and image[:, image.shape[1] - MARGIN :].max() == 0
    long = [row(str(digit), 240, 256) for digit in range(4)]
    rows = joined(long, 20, seed=0, max_digits=3)
    assert all(image.shape[1] == WIDTHS[-1] and len(label) in (2, 3) for image, label in rows)
    assert all(image[:, MARGIN].max() > 0.5 and image[:, -MARGIN - 1].max() > 0.5 for image, _ in rows)  # filled
    assert all(image[:, : MARGIN - 1].max() == 0 and image[:, 1 - MARGIN :].max() == 0 for image, _ in rows)


@pytest.mark.data
def test_line_reader_smoke_run_writes_a_model_and_its_conversion(tmp_path):
    """The line reader's training (training/train_reader.py) makes its lines, trains, evaluates and saves end to end,
    and its conversion reads a line of any of the engine's widths."""
    if not (DATA / "usps.npz").exists():
        pytest.skip(f"shared data not found at {DATA}: the smoke run needs mnist.npz and usps.npz")
    from server.engine.lines import HEIGHT, STRIDE, WIDTHS
    from server.engine.reader import CLASSES, load_reader
    from training.train_reader import main

    out = tmp_path / "reader.keras"
    figures = main(["--data", str(DATA), "--out", str(out), "--scenes", "40", "--validation", "12", "--epochs", "1",
                    "--batch", "16", "--lines", str(tmp_path / "lines"), "--joined", "0.5"])

    assert figures["lines"] > 0 and sorted((tmp_path / "lines").iterdir())  # the lines are kept for another run
    reader = load_reader(out.with_suffix(".tflite"))
    for width, steps in zip(WIDTHS, reader.read([np.zeros((HEIGHT, width), np.float32) for width in WIDTHS]),
                            strict=True):
        assert steps.shape == (width // STRIDE, CLASSES) and np.allclose(steps.sum(axis=1), 1, atol=1e-4)


@pytest.mark.data
def test_ink_map_smoke_run_writes_a_model_and_its_conversion(tmp_path):
    """The ink map's training (training/train_inkmap.py) makes its crops, trains, evaluates and saves end to end, and
    its conversion maps a picture of any size, on both backends alike."""
    if not (DATA / "usps.npz").exists():
        pytest.skip(f"shared data not found at {DATA}: the smoke run needs mnist.npz and usps.npz")
    from server.engine.inkmap import load_inkmap
    from training.train_inkmap import main

    out = tmp_path / "inkmap.keras"
    figures = main(["--data", str(DATA), "--out", str(out), "--scenes", "16", "--validation", "8", "--epochs", "1",
                    "--batch", "8", "--crops", str(tmp_path / "crops")])

    assert 0 <= figures["pixel_iou"] <= 1 and figures["blank_crops_marked"] <= figures["blank_crops"]
    assert sorted((tmp_path / "crops").iterdir())  # the crops are kept for another run
    gray = np.random.default_rng(0).integers(0, 256, (75, 101), np.uint8)
    maps = [load_inkmap(out.with_suffix(".tflite"), "litert")(gray), load_inkmap(out, "keras")(gray)]
    assert maps[0].shape == (38, 51)
    np.testing.assert_allclose(maps[0], maps[1], atol=1e-2)  # the .tflite holds float16 weights

    from training.convert import main as convert  # a trained model converted again maps alike

    convert([str(out)])
    np.testing.assert_allclose(load_inkmap(out.with_suffix(".tflite"), "litert")(gray), maps[0], atol=1e-6)
