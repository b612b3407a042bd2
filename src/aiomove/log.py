"""Logging: library modules get a structlog logger; only the CLI and the daemon configure it.

Event names are dotted snake_case (`association.accepted`, `c_echo.received`); context such as
`assoc_id`, `peer` and `peer_ae` is bound once per association. Patient data is never logged
unless the caller opts in.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import MutableMapping, Sequence
from dataclasses import dataclass
from typing import Any, TextIO

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


@dataclass(frozen=True)
class Sink:
    """One log destination: a text stream, its own threshold, and console or JSON lines."""

    stream: TextIO
    level: str = "trace"
    json: bool = False


class _FanOut:
    """Last processor: render the event once per sink whose threshold it meets, then drop it.

    This is how `-lc` gives a console and a log file different thresholds, as log4cplus does.
    """

    def __init__(self, sinks: Sequence[Sink]) -> None:
        self.sinks = [(sink, _renderer(sink)) for sink in sinks]

    def __call__(self, logger: Any, method: str, event: MutableMapping[str, Any]) -> Any:
        number = LEVELS.get(str(event.get("level", "info")), logging.INFO)
        for sink, render in self.sinks:
            if number >= LEVELS[sink.level]:
                sink.stream.write(str(render(logger, method, dict(event))) + "\n")
                sink.stream.flush()
        raise structlog.DropEvent


def _renderer(sink: Sink) -> Any:
    if sink.json:
        return structlog.processors.JSONRenderer()
    colors = bool(getattr(sink.stream, "isatty", lambda: False)())
    return structlog.dev.ConsoleRenderer(colors=colors)


def configure(level: str = "warn", *, json: bool = False, stream: Any = None) -> None:
    """Configure structlog for a command-line process: console on a terminal, JSON on request.

    Logs go to stderr so that stdout stays free for a command's results.
    """
    configure_sinks(level, [Sink(stream if stream is not None else sys.stderr, json=json)])


def configure_sinks(level: str, sinks: Sequence[Sink]) -> None:
    """Configure structlog with a root level and any number of sinks (see `aiomove.logconfig`)."""
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            _FanOut(sinks),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(LEVELS[level]),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=False,
    )
