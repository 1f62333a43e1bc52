"""Convert trained networks again, after the conversion itself changed: each `.keras` model is rewritten deflated
(without an optimizer's state) and its `.tflite` made anew beside it. Training writes both files itself.

    python -m training.convert model/digits.keras model/reader.keras
"""

from __future__ import annotations

import argparse
from pathlib import Path

from server.engine.backends import save_keras, tensorflow, to_litert


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m training.convert", description=__doc__.splitlines()[0])
    parser.add_argument("models", type=Path, nargs="+", help=".keras files")
    args = parser.parse_args(argv)
    keras, _ = tensorflow("converting a .keras model")
    for path in args.models:
        model = keras.saving.load_model(path, compile=False)
        flatbuffer = to_litert(model)  # first: a failed conversion must not leave a new .keras beside an old .tflite
        save_keras(model, path)
        path.with_suffix(".tflite").write_bytes(flatbuffer)
        print(f"{path}: {path.stat().st_size / 1e6:.2f} MB, .tflite {len(flatbuffer) / 1e6:.2f} MB")


if __name__ == "__main__":
    main()
