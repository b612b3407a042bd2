"""When a peer may be retrieved from: optional windows such as nights and weekends.

A schedule is a list of windows; a job for the peer is claimed only while one is open (jobs
already running continue). A window is `[DAYS] [HH:MM-HH:MM]`:

    "mon-fri 19:00-07:00"   weekday evenings until 07:00 the next morning
    "sat-sun"               all weekend
    "22:00-06:00"           every night
    "mon,wed,fri 12:00-13:00"

A window that ends at or before it starts crosses midnight; its days are the days it starts on.
Times are in the schedule's time zone (`timezone`, an IANA name; UTC by default). No windows:
always open.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, time
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_TIMES = re.compile(r"^(\d{1,2}):(\d{2})-(\d{1,2}):(\d{2})$")


class ScheduleError(ValueError):
    """A window that cannot be parsed."""


@dataclass(frozen=True)
class Window:
    days: frozenset[int]  # 0 = Monday (datetime.weekday())
    start: time
    end: time | None  # None = end of day (24:00)

    def contains(self, local: datetime) -> bool:
        now = local.time().replace(tzinfo=None)
        today, yesterday = local.weekday(), (local.weekday() - 1) % 7
        if self.end is not None and self.end <= self.start:  # crosses midnight
            return (today in self.days and now >= self.start) or (
                yesterday in self.days and now < self.end
            )
        return today in self.days and self.start <= now and (self.end is None or now < self.end)


def _days(text: str) -> frozenset[int]:
    days: set[int] = set()
    for part in text.lower().split(","):
        first, _, last = part.partition("-")
        if first not in DAYS or (last and last not in DAYS):
            raise ScheduleError(f"unknown day in {text!r} (use {', '.join(DAYS)})")
        a, b = DAYS.index(first), DAYS.index(last or first)
        span = range(a, b + 1) if a <= b else [*range(a, 7), *range(0, b + 1)]
        days.update(span)
    return frozenset(days)


def _clock(hours: str, minutes: str, text: str) -> time | None:
    h, m = int(hours), int(minutes)
    if (h, m) == (24, 0):
        return None
    if h > 23 or m > 59:
        raise ScheduleError(f"bad time in {text!r}")
    return time(h, m)


def parse_window(text: str) -> Window:
    parts = text.split()
    days, times = frozenset(range(7)), None
    for part in parts:
        if _TIMES.match(part):
            if times is not None:
                raise ScheduleError(f"two time ranges in {text!r}")
            times = part
        else:
            days = _days(part)
    if len(parts) not in (1, 2) or (len(parts) == 2 and times is None):
        raise ScheduleError(f"cannot parse window {text!r} (e.g. 'mon-fri 19:00-07:00')")
    if times is None:
        return Window(days, time(0, 0), None)
    match = _TIMES.match(times)
    assert match is not None
    start = _clock(match[1], match[2], text)
    if start is None:
        raise ScheduleError(f"a window cannot start at 24:00: {text!r}")
    return Window(days, start, _clock(match[3], match[4], text))


@dataclass(frozen=True)
class Schedule:
    windows: tuple[Window, ...] = ()
    timezone: str = "UTC"
    texts: tuple[str, ...] = field(default=(), compare=False)

    @classmethod
    def parse(cls, texts: Sequence[str], timezone: str = "UTC") -> Schedule:
        try:
            ZoneInfo(timezone)
        except (ZoneInfoNotFoundError, ValueError):
            raise ScheduleError(f"unknown time zone {timezone!r}") from None
        return cls(tuple(parse_window(str(t)) for t in texts), timezone, tuple(map(str, texts)))

    def is_open(self, now: datetime | None = None) -> bool:
        """Whether a job may start now (an aware datetime; default: the current time)."""
        if not self.windows:
            return True
        local = (now or datetime.now(UTC)).astimezone(ZoneInfo(self.timezone))
        return any(w.contains(local) for w in self.windows)
