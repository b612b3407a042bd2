"""Running the event loop for the command line: uvloop when it is installed."""

from __future__ import annotations

import importlib.util
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import anyio

T = TypeVar("T")


def run_async(func: Callable[..., Awaitable[T]], *args: Any) -> T:
    """`anyio.run` on asyncio, with uvloop's faster loop when the package is available."""
    options = {"use_uvloop": True} if importlib.util.find_spec("uvloop") is not None else {}
    return anyio.run(func, *args, backend="asyncio", backend_options=options)
