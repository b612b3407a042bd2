"""Logging: library modules get a structlog logger; only the CLI and the daemon configure it.

Event names are dotted snake_case (`association.accepted`, `c_echo.received`); context such as
`assoc_id`, `peer` and `peer_ae` is bound once per association. Patient data is never logged
unless the caller opts in.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

import structlog

#: DCMTK's log levels (`-ll`) mapped to the standard library's.
LEVELS = {
    "fatal": logging.CRITICAL,
    "error": logging.ERROR,
    "warn": logging.WARNING,
    "info": logging.INFO,
    "debug": logging.DEBUG,
    "trace": logging.DEBUG,
}


def get_logger(name: str, **context: Any) -> Any:
    """A structlog logger for a library module (configuration is left to the application)."""
    return structlog.get_logger(name, **context)


def configure(level: str = "warn", *, json: bool = False, stream: Any = None) -> None:
    """Configure structlog for a command-line process: console on a terminal, JSON on request.

    Logs go to stderr so that stdout stays free for a command's results.
    """
    out = stream if stream is not None else sys.stderr
    renderer: Any
    if json:
        renderer = structlog.processors.JSONRenderer()
    else:
        colors = bool(getattr(out, "isatty", lambda: False)())
        renderer = structlog.dev.ConsoleRenderer(colors=colors)
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(LEVELS[level]),
        logger_factory=structlog.PrintLoggerFactory(file=out),
        cache_logger_on_first_use=False,
    )
