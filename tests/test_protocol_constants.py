"""The constants that web/protocol.js and server/protocol.py share, read from both files: they must agree."""

from __future__ import annotations

import json
import re

from conftest import ROOT

from server import protocol

SCRIPT = (ROOT / "web" / "protocol.js").read_text()


def js_constant(name: str) -> str:
    """The value source of `const NAME = ...;` (exported or not), for a one-line or brace-delimited value."""
    match = re.search(rf"^(?:export )?const {name} = (\{{.*?\}}|[^;]+);", SCRIPT, re.M | re.S)
    assert match, f"web/protocol.js defines no {name}"
    return match.group(1)


def js_object(name: str) -> dict[str, object]:
    """A JavaScript object literal of plain keys and numbers or strings, as a dict."""
    source = re.sub(r"//[^\n]*", "", js_constant(name))
    source = re.sub(r"([{,]\s*)(\w+)\s*:", r'\1"\2":', source)
    return json.loads(re.sub(r",\s*}", "}", source))


def test_version_kinds_and_header_agree() -> None:
    assert int(js_constant("PROTOCOL")) == protocol.VERSION
    assert js_object("KIND") == {"live": protocol.KIND_LIVE, "photo": protocol.KIND_PHOTO, "slide": protocol.KIND_SLIDE}
    assert int(js_constant("HEADER_BYTES")) == protocol.HEADER_SIZE


def test_close_codes_the_page_explains_are_the_servers() -> None:
    assert int(js_constant("CLOSE_TAKEN_OVER")) == protocol.CLOSE_TAKEN_OVER
    explained = {int(code) for code in js_object("CLOSE_REASONS")}
    assert explained == {protocol.CLOSE_GOING_AWAY, protocol.CLOSE_POLICY, protocol.CLOSE_TOO_BIG,
                         protocol.CLOSE_INTERNAL, protocol.CLOSE_TRY_LATER}


def test_the_history_store_notice_is_the_servers() -> None:
    assert json.loads(js_constant("HISTORY_STORE")) == protocol.HISTORY_STORE == protocol.history_store(True)["type"]
