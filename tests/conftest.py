"""Shared test configuration: hypothesis profiles and the GF(2^8) oracle.

Hypothesis profiles (choose one with ``HYPOTHESIS_PROFILE=<name>``):

* ``default``: 50 examples per property and no per-example deadline, so a
  loaded CI machine (or numba compiling galois' kernels on first use) never
  turns into a flaky ``DeadlineExceeded``.
* ``ci``: the default, derandomized and without the example database, so a
  CI run is reproducible from the commit alone.
* ``thorough``: 1,000 examples per property, for a run by hand after touching
  the coding core.
"""

from __future__ import annotations

import os
from typing import Any

import pytest
from hypothesis import HealthCheck, settings

# The real packages first: test folders named like them (tests/unit/contracts,
# with no __init__.py) would otherwise be imported as namespace packages when a
# run starts with a test module at the top of tests/unit.
import contracts  # noqa: F401

_COMMON: dict[str, Any] = {
    "deadline": None,
    "suppress_health_check": [HealthCheck.too_slow],
}

settings.register_profile("default", max_examples=50, **_COMMON)
settings.register_profile("ci", max_examples=50, derandomize=True, database=None, **_COMMON)
settings.register_profile("thorough", max_examples=1000, **_COMMON)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))


@pytest.fixture(scope="session")
def gf256() -> Any:
    """``galois.GF(2**8)`` over the 0x11D polynomial: the oracle for the coding core.

    Importing galois and building the field costs about 1.5 s (numba), so it is
    built once per session and only by the tests that ask for it.
    """
    import galois

    return galois.GF(2**8, irreducible_poly=0x11D)
