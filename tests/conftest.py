"""Shared fixtures: run async tests on both anyio back ends (asyncio and trio)."""

from __future__ import annotations

import pytest
from hypothesis import settings


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


# Hypothesis: no per-example deadline (a loaded 2-core CI machine makes timings noisy);
# `--hypothesis-profile=thorough` runs more examples.
settings.register_profile("default", deadline=None)
settings.register_profile("thorough", deadline=None, max_examples=2000)
settings.load_profile("default")
