"""Hypothesis profiles. Imported by conftest.py because pytest's hypothesis plugin loads
`--hypothesis-profile=NAME` before test modules are imported.

    default   a few dozen cases per fuzz test: part of `make test`
    long      `make fuzz`: over 10,000 cases across tests/test_fuzz.py
"""

from __future__ import annotations

from hypothesis import HealthCheck, settings

# Every case goes through a real server: slow next to pure-Python tests, and timing depends on the shared CPU.
_COMMON = {"deadline": None, "suppress_health_check": [HealthCheck.too_slow, HealthCheck.data_too_large]}

settings.register_profile("default", max_examples=60, **_COMMON)
settings.register_profile("long", max_examples=3400, **_COMMON)
settings.load_profile("default")
