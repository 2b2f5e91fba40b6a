"""Day strings (``YYYY-MM-DD``, UTC): validation, parsing, ranges and Unix-time conversion."""

from __future__ import annotations

import datetime as dt
import re

DAY_PATTERN = re.compile(r"^\d{4}-\d{2}-\d{2}$")
SECONDS_PER_DAY = 86_400


def parse_day(value: object) -> dt.date:
    """Parse a ``YYYY-MM-DD`` string (or a ``datetime.date``) into a date.

    Raises ``ValueError`` with the value and the expected format, so callers can wrap it
    in the error class of their layer (ParamsError, DataError).
    """
    if isinstance(value, dt.datetime):
        raise ValueError(f"expected a day YYYY-MM-DD, got the date-time {value.isoformat()!r}")
    if isinstance(value, dt.date):
        return value
    if not isinstance(value, str) or not DAY_PATTERN.match(value):
        raise ValueError(f"expected a day YYYY-MM-DD (for example 1998-03-01), got {value!r}")
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise ValueError(f"{value!r} is not a calendar date (format YYYY-MM-DD)") from None


def check_day(value: object) -> str:
    """Return ``value`` as a canonical ``YYYY-MM-DD`` string, or raise ``ValueError``."""
    return parse_day(value).isoformat()


def day_range(start: str, end: str) -> list[str]:
    """List every calendar day from ``start`` to ``end``, both inclusive (empty if end < start)."""
    first = parse_day(start)
    last = parse_day(end)
    count = (last - first).days + 1
    return [(first + dt.timedelta(days=offset)).isoformat() for offset in range(max(count, 0))]


def shift_day(day: str, days: int) -> str:
    """Return the day ``days`` calendar days after ``day`` (negative: before)."""
    return (parse_day(day) + dt.timedelta(days=days)).isoformat()


def day_start_timestamp(day: str) -> int:
    """Unix seconds of 00:00:00 UTC on ``day``."""
    return (parse_day(day) - dt.date(1970, 1, 1)).days * SECONDS_PER_DAY


def day_of_timestamp(timestamp: int) -> str:
    """UTC day (``YYYY-MM-DD``) that contains the Unix time ``timestamp`` (seconds)."""
    return (dt.date(1970, 1, 1) + dt.timedelta(days=int(timestamp) // SECONDS_PER_DAY)).isoformat()
