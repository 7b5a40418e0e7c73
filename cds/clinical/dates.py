"""FHIR dates as they come in real records: partial (``2020``, ``2020-05``), full, or date-times with offsets.

Two dates of different precision are compared at the coarser one ("compare at month granularity when the day is
missing"); a recency check uses the earliest day a partial date could mean, so a vague date never looks fresher
than it may be.
"""

from __future__ import annotations

import calendar
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import date, datetime
from typing import Literal, TypeVar

Precision = Literal["year", "month", "day"]
_PARTIAL = re.compile(r"^(\d{4})(?:-(\d{2})(?:-(\d{2}))?)?")
_RANK = {"year": 0, "month": 1, "day": 2}

T = TypeVar("T")


@dataclass(frozen=True)
class FhirDate:
    """A date with the precision it was recorded at; ``start``/``end`` are the first/last day it covers."""

    start: date
    end: date
    precision: Precision

    def __str__(self) -> str:
        if self.precision == "year":
            return f"{self.start.year:04d}"
        if self.precision == "month":
            return f"{self.start.year:04d}-{self.start.month:02d}"
        return self.start.isoformat()

    def _key(self, precision: Precision) -> tuple[int, ...]:
        parts = (self.start.year, self.start.month, self.start.day)
        return parts[: _RANK[precision] + 1]


def parse_date(value: object) -> FhirDate | None:
    """Read a FHIR date/dateTime/instant (string, ``date`` or ``datetime``); ``None`` when absent or unreadable."""
    if isinstance(value, datetime):
        day = value.date()  # the calendar day as recorded, in the record's own offset
        return FhirDate(day, day, "day")
    if isinstance(value, date):
        return FhirDate(value, value, "day")
    if not isinstance(value, str):
        return None
    match = _PARTIAL.match(value.strip())
    if not match:
        return None
    year = int(match.group(1))
    month = int(match.group(2)) if match.group(2) else None
    day_of_month = int(match.group(3)) if match.group(3) else None
    try:
        if month and day_of_month:
            d = date(year, month, day_of_month)
            return FhirDate(d, d, "day")
        if month:
            last = calendar.monthrange(year, month)[1]
            return FhirDate(date(year, month, 1), date(year, month, last), "month")
        return FhirDate(date(year, 1, 1), date(year, 12, 31), "year")
    except ValueError:
        return None


def coarser(a: FhirDate, b: FhirDate) -> Precision:
    return a.precision if _RANK[a.precision] <= _RANK[b.precision] else b.precision


def on_or_after(a: FhirDate, b: FhirDate) -> bool:
    """``a`` is on or after ``b`` at their common precision (same month counts as on-or-after)."""
    p = coarser(a, b)
    return a._key(p) >= b._key(p)


def before(a: FhirDate, b: FhirDate) -> bool:
    """``a`` is strictly before ``b`` at their common precision."""
    return not on_or_after(a, b)


def at_least_days_after(a: FhirDate, b: FhirDate, days: int) -> bool:
    """``a`` comes ``days`` or more after ``b`` whatever days partial dates stand for (earliest ``a``, latest ``b``)."""
    return (a.start - b.end).days >= days


def within_days(d: FhirDate, today: date, days: int) -> bool:
    """``d`` is no older than ``days`` on ``today``, counting from the earliest day ``d`` may mean."""
    return (today - d.start).days <= days


def age_range(birth: FhirDate, today: date) -> tuple[int, int]:
    """Youngest and oldest age the patient can be on ``today`` given a possibly partial birth date."""
    return _age(birth.end, today), _age(birth.start, today)


def _age(born: date, today: date) -> int:
    return today.year - born.year - ((today.month, today.day) < (born.month, born.day))


def latest(items: Iterable[T], date_of: Callable[[T], FhirDate | None]) -> list[T]:
    """The dated items of the newest day: every one of them, because readings of the same day may disagree."""
    dated = [(item, when) for item in items if (when := date_of(item)) is not None]
    if not dated:
        return []
    newest = max(when.start for _, when in dated)
    return [item for item, when in dated if when.start == newest]
