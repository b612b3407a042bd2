"""`-lc FILE`: the subset of DCMTK's log4cplus configuration files that aiomove honours.

DCMTK tools take a log4cplus properties file (e.g. /etc/dcmtk/logger.cfg). aiomove reads the
same files, so existing `-lc` arguments keep working, and understands:

    log4cplus.rootLogger = LEVEL, appender[, appender...]   # TRACE DEBUG INFO WARN ERROR FATAL
    log4cplus.appender.NAME = log4cplus::ConsoleAppender | log4cplus::FileAppender
                              | log4cplus::RollingFileAppender (written as a plain file)
    log4cplus.appender.NAME.Threshold = LEVEL                # per appender
    log4cplus.appender.NAME.logToStderr = true|false         # console: stderr (default) or stdout
    log4cplus.appender.NAME.File = PATH                      # ${appname} becomes "aiomove"
    log4cplus.appender.NAME.Append = true|false
    aiomove.format = console|json                            # aiomove's own key; also
    log4cplus.appender.NAME.layout = aiomove::JSONLayout     # per appender

Everything else (PatternLayout patterns, per-logger levels, MaxFileSize, ...) is accepted and
ignored: aiomove's events are structured (structlog), not log4cplus patterns.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TextIO, cast

from aiomove.log import LEVELS, Sink

_PREFIX = "log4cplus."


class LogConfigError(ValueError):
    """The file cannot be read or names something aiomove cannot honour."""


def _properties(text: str) -> dict[str, str]:
    props: dict[str, str] = {}
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", "!")):
            continue
        key, sep, value = line.partition("=")
        if not sep:
            raise LogConfigError(f"not a 'key = value' line: {raw!r}")
        props[key.strip()] = value.strip()
    return props


def _level(value: str, where: str) -> str:
    level = value.strip().lower()
    level = {"warning": "warn", "all": "trace", "off": "fatal"}.get(level, level)
    if level not in LEVELS:
        raise LogConfigError(f"{where}: unknown log level {value!r}")
    return level


def load(path: Path) -> tuple[str, list[Sink]]:
    """The root level and the sinks a log4cplus-style file describes (files are opened)."""
    try:
        props = _properties(path.read_text())
    except OSError as exc:
        raise LogConfigError(f"cannot read log config {path}: {exc.strerror}") from exc
    root = props.get(_PREFIX + "rootLogger", "INFO, console")
    level_text, *appenders = [part.strip() for part in root.split(",")]
    level = _level(level_text, "rootLogger")
    default_json = props.get("aiomove.format", "console").lower() == "json"
    sinks = [_sink(props, name, default_json) for name in appenders if name]
    return level, sinks


def _sink(props: dict[str, str], name: str, default_json: bool) -> Sink:
    base = f"{_PREFIX}appender.{name}"
    kind = props.get(base, "log4cplus::ConsoleAppender")
    threshold = _level(props.get(base + ".Threshold", "TRACE"), base + ".Threshold")
    json = default_json or props.get(base + ".layout", "").endswith("JSONLayout")
    stream: TextIO
    if kind.endswith("ConsoleAppender"):
        to_stderr = props.get(base + ".logToStderr", "true").lower() != "false"
        stream = sys.stderr if to_stderr else sys.stdout
    elif kind.endswith("FileAppender"):  # FileAppender, RollingFileAppender, DailyRolling...
        target = props.get(base + ".File", "${appname}.log").replace("${appname}", "aiomove")
        mode = "a" if props.get(base + ".Append", "true").lower() != "false" else "w"
        try:
            # lives as long as the process, like log4cplus's appender
            stream = cast(TextIO, open(target, mode, encoding="utf-8"))  # noqa: SIM115
        except OSError as exc:
            raise LogConfigError(f"{base}.File: cannot open {target}: {exc.strerror}") from exc
    else:
        raise LogConfigError(f"{base}: appender type {kind!r} is not supported")
    return Sink(stream, threshold, json)
