"""Calendar months for rentals (pure).

A rental paid on Jan 31 is paid until Feb 28 (29), then Mar 31: each period end is the rental's
anchor day clamped to the month's length, so short months do not make the day drift.
"""

from __future__ import annotations

import calendar
from datetime import datetime

__all__ = ["add_months"]


def add_months(moment: datetime, months: int, anchor_day: int | None = None) -> datetime:
    """``moment`` moved by whole calendar months, same time of day; the day is ``anchor_day``
    (default: ``moment``'s day) clamped to the last day of the target month."""
    index = moment.month - 1 + months
    year, month = moment.year + index // 12, index % 12 + 1
    day = min(anchor_day or moment.day, calendar.monthrange(year, month)[1])
    return moment.replace(year=year, month=month, day=day)
