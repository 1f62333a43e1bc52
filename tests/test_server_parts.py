"""The server's pure parts without a server: protocol parsing, history bounds, limits, metrics text (the session
stores: tests/test_session_stores.py)."""

from __future__ import annotations

import re

import pytest

from server import protocol
from server.history import Bounds, History
from server.limits import RateLimiter, origin_allowed, parse_origins
from server.metrics import Metrics
from server.protocol import ProtocolError
from server.sampling import LiveSampler

RESULT = {"number": "4", "reason": None, "digits": [], "width": 10, "height": 10}


def test_image_header_round_trip() -> None:
    image = protocol.parse_image(b"\x02\x00\x00\x01\x00JPEG")
    assert (image.kind, image.kind_name, image.frame, image.data) == (2, "photo", 256, b"JPEG")
    assert protocol.slide_image(7, b"PNG") == b"\x03\x00\x00\x00\x07PNG"
    with pytest.raises(ProtocolError, match="5-byte header"):
        protocol.parse_image(b"\x01\x00")
    with pytest.raises(ProtocolError) as unknown:
        protocol.parse_image(b"\x03\x00\x00\x00\x09data")  # slides go to clients, never come from them
    assert unknown.value.frame == 9


def test_control_messages_get_defaults_and_are_validated() -> None:
    assert protocol.parse_control('{"type": "replay"}') == {"type": "replay", "mode": "realtime", "speed": 1.0,
                                                            "from": 0}
    assert protocol.parse_control('{"type": "replay", "mode": "step", "seq": 3}')["seq"] == 3
    assert protocol.parse_control('{"type": "ping", "extra": 1}') == {"type": "ping"}
    for bad in ('{"type": "replay", "speed": 0}', '{"type": "replay", "speed": true}',
                '{"type": "replay", "from": -1}', '{"type": "replay", "mode": "step", "seq": "3"}',
                '{"type": "replay", "mode": "backwards"}', '{"no": "type"}', "null", "[]", "{"):
        with pytest.raises(ProtocolError) as error:
            protocol.parse_control(bad)
        assert error.value.code == "bad_message", bad


def test_history_drops_oldest_first_by_count_and_by_bytes() -> None:
    history = History(Bounds(frames=3, photos=3, bytes=100))
    drops = [history.add(frame, "live", frame / 10, b"x" * 30, RESULT)[1] for frame in range(5)]
    assert drops == [[], [], [], [0], [1]]
    seq, dropped = history.add(5, "photo", 1.0, b"y" * 60, RESULT)
    assert (seq, dropped) == (5, [2, 3])
    assert [e.seq for e in history.snapshot().entries] == [4, 5] and history.bytes == 90 and history.dropped == 4
    seq, dropped = history.add(6, "photo", 2.0, b"z" * 101, RESULT)  # larger than the whole budget
    assert (seq, dropped) == (6, [4, 5, 6]) and len(history) == 0 and history.bytes == 0
    assert history.add(7, "live", 3.0, b"", RESULT)[0] == 7  # seqs are never reused


def test_live_frames_never_push_out_a_photo() -> None:
    """Each kind has its own count; over the byte total, live frames give way first, and a live frame that does not
    fit beside the photos goes itself. Photos push out live frames, then the oldest photos."""
    history = History(Bounds(frames=2, photos=2, bytes=100))
    assert history.add(0, "photo", 0.0, b"p" * 40, RESULT) == (0, [])
    assert [history.add(n, "live", n, b"x" * 10, RESULT)[1] for n in range(1, 6)] == [[], [], [1], [2], [3]]
    assert history.add(6, "live", 6.0, b"x" * 70, RESULT) == (6, [4, 5, 6])  # beside the photo it cannot fit
    assert history.add(7, "photo", 7.0, b"q" * 40, RESULT) == (7, [])
    assert history.add(8, "live", 8.0, b"x" * 10, RESULT) == (8, [])
    assert history.add(9, "photo", 9.0, b"r" * 40, RESULT) == (9, [8, 0])  # the live frame, then the oldest photo
    assert [(e.seq, e.kind) for e in history.snapshot().entries] == [(7, "photo"), (9, "photo")]
    assert history.bytes == 80 and history.dropped == 8


def test_live_frames_are_kept_when_the_reading_changes_or_every_so_often() -> None:
    sampler = LiveSampler(every_s=2.0, gap_s=0.25)
    frames = [(0.0, "42"), (0.1, "42"), (0.2, "7"), (0.3, "7"), (0.4, "42"), (0.9, "42"), (1.0, None), (2.8, None),
              (3.0, "41"), (3.1, "41"), (4.0, "41"), (5.2, "41")]
    assert [sampler.keep(t, number) for t, number in frames] == [True, False, False, True, False, True, False, True,
                                                                 False, True, False, True]
    assert all(LiveSampler(0, 0).keep(t, "1") for t in (0.0, 0.0, 0.01))


def test_history_listing_and_slides() -> None:
    history = History(Bounds(frames=10, photos=10, bytes=1000))
    history.add(42, "live", 1.23456, b"abc", RESULT)
    assert protocol.history_listing(history.snapshot()) == {"type": "history", "dropped": 0, "bytes": 3,
                                 "frames": [{"seq": 0, "frame": 42, "kind": "live", "t": 1.235, "number": "4",
                                             "bytes": 3}]}
    [entry] = history.snapshot().entries
    assert protocol.slide(entry, 0, 1)["result"] == RESULT and history.image(0) == b"abc" and history.image(1) is None


def test_rate_limiter_allows_a_burst_of_one_second_then_the_rate() -> None:
    limiter = RateLimiter(5)
    assert [limiter.allow() for _ in range(7)] == [True] * 5 + [False] * 2
    assert all(RateLimiter(0).allow() for _ in range(100))


def test_origin_rules() -> None:
    allowed = parse_origins("https://Example.org/, http://other:8080")
    assert origin_allowed(None, "host:5000", allowed)
    assert origin_allowed("http://host:5000", "host:5000", allowed)
    assert origin_allowed("https://example.org", "host:5000", allowed)
    assert not origin_allowed("http://host:5001", "host:5000", allowed)
    assert not origin_allowed("null", "host:5000", allowed)
    assert not origin_allowed("http://evil.example", None, allowed)
    assert origin_allowed("http://evil.example", "host", parse_origins("*"))


def test_metrics_text_exposition() -> None:
    metrics = Metrics("w1")
    metrics.errors.inc(code="bad_image")
    metrics.batch_size.observe(3)
    metrics.batch_size.observe(40)
    text = metrics.render()
    assert 'digits_errors_total{code="bad_image"} 1.0' in text
    assert 'digits_batch_size_bucket{le="4.0"} 1' in text and 'digits_batch_size_bucket{le="+Inf"} 2' in text
    assert "digits_batch_size_sum 43.0" in text and "digits_batch_size_count 2" in text
    assert "digits_frames_skipped_total 0.0" in text
    assert 'digits_worker{worker="w1"} 1.0' in text
    sample = re.compile(r'^[a-z_]+(\{[a-z]+="[^"]*"\})? [-+0-9.eInf]+$')
    for line in text.splitlines():
        assert line.startswith("# HELP ") or line.startswith("# TYPE ") or sample.match(line), line
