"""Read digits from image files: `python -m server.recognize [--json] PATH...`.

Prints one line per image, `PATH<TAB>NUMBER` (`-` when there is no digit), or with --json the full result as
one JSON object per line (with "path"). Unreadable files print `PATH<TAB>-` (or a JSON object with "error"),
their error on stderr, and make the exit status 1.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import replace

from server.config import load_config
from server.engine import BACKENDS, KINDS, Engine, ImageError, model_file

CHUNK = 32  # images read and classified together


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m server.recognize", description=__doc__.splitlines()[0])
    parser.add_argument("paths", nargs="+", metavar="PATH", help="image files (JPEG, PNG, WebP, BMP, GIF)")
    parser.add_argument("--json", action="store_true", help="print the full result as JSON, one object per line")
    config = load_config([])  # the server's defaults and DIGITS_* env vars
    parser.add_argument("--model", default=config.model_path, help="the model (env DIGITS_MODEL_PATH)")
    parser.add_argument("--reader", default=config.reader_path,
                        help="the line reader; '' reads the candidates alone (env DIGITS_READER_PATH)")
    parser.add_argument("--inkmap", default=config.inkmap_path, help="the ink map, v3 (env DIGITS_INKMAP_PATH)")
    parser.add_argument("--row-reader", default=config.row_reader_path,
                        help="the line reader of v3 (env DIGITS_ROW_READER_PATH)")
    parser.add_argument("--engine", default=config.engine, choices=KINDS, help="which engine reads (env DIGITS_ENGINE)")
    parser.add_argument("--backend", default=config.backend, choices=BACKENDS, help="what runs it (env DIGITS_BACKEND)")
    parser.add_argument("--max-pixels", type=int, default=config.max_pixels, help="largest image, in pixels")
    args = parser.parse_args(argv)
    settings = replace(config, engine=args.engine, model_path=args.model, reader_path=args.reader,
                       row_reader_path=args.row_reader, inkmap_path=args.inkmap, backend=args.backend,
                       max_pixels=args.max_pixels)
    needed = (args.model, args.reader) if args.engine == "rules" else (args.row_reader, args.inkmap)
    for path in needed:
        if path and not model_file(path, args.backend).is_file():
            parser.error(f"no model at {model_file(path, args.backend)} for the {args.backend} backend")
    try:
        engine = Engine.from_config(settings)
    except ValueError as error:
        parser.error(str(error))
    failed = False
    for start in range(0, len(args.paths), CHUNK):
        paths = args.paths[start : start + CHUNK]
        for path, result in zip(paths, _recognize_files(paths, engine), strict=True):
            if isinstance(result, ImageError):
                failed = True
                print(f"{path}: {result.message}", file=sys.stderr)
            print(_line(path, result, args.json), flush=True)
    return 1 if failed else 0


def _recognize_files(paths: list[str], engine: Engine) -> list[dict | ImageError]:
    """Like `recognize`, but a file that cannot be opened becomes an ImageError too."""
    datas: list[bytes | ImageError] = []
    for path in paths:
        try:
            with open(path, "rb") as f:
                datas.append(f.read())
        except OSError as exc:
            datas.append(ImageError("bad_image", f"cannot read the file: {exc.strerror or exc}"))
    readable = iter(engine.recognize([d for d in datas if isinstance(d, bytes)]))
    return [d if isinstance(d, ImageError) else next(readable) for d in datas]


def _line(path: str, result: dict | ImageError, as_json: bool) -> str:
    if not as_json:
        number = None if isinstance(result, ImageError) else result["number"]
        return f"{path}\t{number or '-'}"
    if isinstance(result, ImageError):
        return json.dumps({"path": path, "error": result.message, "code": result.code})
    return json.dumps({"path": path, **result})


if __name__ == "__main__":
    sys.exit(main())
