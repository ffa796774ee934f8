"""Server-rendered charts: a pure function from a daily series to an SVG string (no script needed).

The dashboard's chart shows calls per day as bars (left axis) and spend per day as a line
(right axis). Every text is escaped; every bar group carries a ``<title>`` (a tooltip in
browsers, read by screen readers), and the whole picture is ``role="img"`` with an
``aria-label`` that says what it shows in words. Colours come from CSS classes (``.chart-*``
in ``app.css``) with presentation attributes as the fallback.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from typing import Protocol

from markupsafe import Markup, escape

from ringwell.features.billing.money import format_minor

__all__ = ["ChartDay", "DayLike", "daily_chart", "nice_ceiling"]

WIDTH = 880  # about the width it is shown at on a desktop, so that text stays near its own size
HEIGHT = 280
_TOP, _BOTTOM = 30, 30  # room for the units above the axes and the days below
_FONT = 11  # px of axis text, in the SVG's own units
_CHAR = 0.62 * _FONT  # a generous average width of a character of axis text
_TICKS = 4


class DayLike(Protocol):
    """What the chart reads of a day (``cdr.history.DaySummary`` has these and more)."""

    @property
    def day(self) -> date: ...

    @property
    def calls(self) -> int: ...

    @property
    def answered(self) -> int: ...

    @property
    def charge_minor(self) -> int: ...


@dataclass(frozen=True, slots=True)
class ChartDay:
    """A day of the series when the caller has no ``DaySummary`` at hand (tests, previews)."""

    day: date
    calls: int
    answered: int
    charge_minor: int


def nice_ceiling(value: int, ticks: int = _TICKS) -> int:
    """The smallest ``ticks × step`` ≥ ``value`` with a step of 1, 2 or 5 × 10^k (at least ``ticks``).

    Axis ticks then fall on round numbers: 13 → 20 (step 5), 0 → 4 (step 1).
    """
    if value <= ticks:
        return ticks
    magnitude = 1
    while True:
        for factor in (1, 2, 5):
            step = factor * magnitude
            if step * ticks >= value:
                return step * ticks
        magnitude *= 10


def _fmt(x: float) -> str:
    """Coordinates with one decimal at most (small, stable output)."""
    text = f"{x:.1f}"
    return text[:-2] if text.endswith(".0") else text


def _day_label(day: date) -> str:
    return f"{day.day} {day:%b}"


def daily_chart(days: Sequence[DayLike], currency: str, *, title: str = "Calls and spend per day",
                width: int = WIDTH, height: int = HEIGHT, css_class: str = "") -> Markup:
    """An SVG of ``days`` (oldest first): bars for calls, a line with points for spend.

    The left axis counts calls, the right one is money in ``currency``; both end on a round
    number. With no days, or none with calls or spend, the axes are drawn with a
    "No calls in this period" note. Text keeps its size in the SVG's units, so a narrow
    ``width`` (a phone) labels fewer days rather than shrinking them. ``css_class`` is added to
    the ``<svg>``. The result is ``Markup`` (safe to put in a template as is).
    """
    calls_max = nice_ceiling(max((d.calls for d in days), default=0))
    spend_max = nice_ceiling(max((max(d.charge_minor, 0) for d in days), default=0))
    calls_labels = [str(calls_max * i // _TICKS) for i in range(_TICKS + 1)]
    spend_labels = [format_minor(spend_max * i // _TICKS, currency) for i in range(_TICKS + 1)]
    # The axes take what their longest label needs; the plot gets the rest.
    left = round(max(len(label) for label in [*calls_labels, "calls"]) * _CHAR) + 10
    right = round(max(len(label) for label in [*spend_labels, currency]) * _CHAR) + 10
    plot_w = width - left - right
    plot_h = height - _TOP - _BOTTOM
    bottom = _TOP + plot_h
    total_calls = sum(d.calls for d in days)
    total_spend = sum(d.charge_minor for d in days)
    summary = (f"{title}: {len(days)} days, {total_calls} calls, "
               f"{format_minor(total_spend, currency)} {currency} spent")
    if days:
        summary += f", from {_day_label(days[0].day)} to {_day_label(days[-1].day)}"

    classes = escape(f"chart {css_class}".strip())
    out: list[str] = [
        f'<svg class="{classes}" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" '
        f'role="img" aria-label="{escape(summary)}" preserveAspectRatio="xMidYMid meet">',
        f"<title>{escape(summary)}</title>",
    ]
    # Grid and axis labels: calls on the left, spend on the right.
    for i in range(_TICKS + 1):
        y = bottom - plot_h * i / _TICKS
        out.append(f'<line class="chart-grid" x1="{left}" x2="{left + plot_w}" y1="{_fmt(y)}" y2="{_fmt(y)}" '
                   f'stroke="#e3e8ef" stroke-width="1"/>')
        out.append(f'<text class="chart-axis" x="{left - 6}" y="{_fmt(y + 4)}" text-anchor="end" '
                   f'font-size="{_FONT}" fill="#5b6675">{calls_labels[i]}</text>')
        out.append(f'<text class="chart-axis chart-axis-spend" x="{left + plot_w + 6}" y="{_fmt(y + 4)}" '
                   f'text-anchor="start" font-size="{_FONT}" fill="#b54708">{escape(spend_labels[i])}</text>')
    out.append(f'<text class="chart-axis" x="{left - 6}" y="{_TOP - 14}" text-anchor="end" font-size="{_FONT}" '
               f'fill="#5b6675">calls</text>')
    out.append(f'<text class="chart-axis chart-axis-spend" x="{left + plot_w + 6}" y="{_TOP - 14}" '
               f'text-anchor="start" font-size="{_FONT}" fill="#b54708">{escape(currency)}</text>')

    if not days or (total_calls == 0 and not any(d.charge_minor for d in days)):
        out.append(f'<text class="chart-empty" x="{_fmt(left + plot_w / 2)}" y="{_fmt(_TOP + plot_h / 2)}" '
                   f'text-anchor="middle" font-size="14" fill="#5b6675">No calls in this period</text>')

    slot = plot_w / max(len(days), 1)
    bar_w = max(2.0, slot * 0.6)
    # A day's label ("28 Nov") must fit in the columns it has: label every n-th day.
    label_every = max(1, math.ceil((6 * _CHAR + 8) / slot))
    points: list[tuple[float, float]] = []
    for index, day in enumerate(days):
        centre = left + slot * (index + 0.5)
        bar_h = plot_h * day.calls / calls_max
        spend_y = bottom - plot_h * max(day.charge_minor, 0) / spend_max
        points.append((centre, spend_y))
        tip = (f"{day.day:%a} {_day_label(day.day)}: {day.calls} call{'' if day.calls == 1 else 's'}, "
               f"{day.answered} answered, {format_minor(day.charge_minor, currency)} {currency}")
        out.append(f'<g class="chart-day"><title>{escape(tip)}</title>')
        # An invisible full-height target so the tooltip shows anywhere in the day's column.
        out.append(f'<rect class="chart-hit" x="{_fmt(left + slot * index)}" y="{_TOP}" width="{_fmt(slot)}" '
                   f'height="{plot_h}" fill="transparent"/>')
        out.append(f'<rect class="chart-bar" data-calls="{day.calls}" x="{_fmt(centre - bar_w / 2)}" '
                   f'y="{_fmt(bottom - bar_h)}" width="{_fmt(bar_w)}" height="{_fmt(bar_h)}" rx="2" '
                   f'fill="#1f6feb"/>')
        out.append("</g>")
        # Count from the right: today always has its label.
        if (len(days) - 1 - index) % label_every == 0:
            out.append(f'<text class="chart-axis" x="{_fmt(centre)}" y="{bottom + 18}" text-anchor="middle" '
                       f'font-size="{_FONT}" fill="#5b6675">{escape(_day_label(day.day))}</text>')
    if points:
        line = " ".join(f"{_fmt(x)},{_fmt(y)}" for x, y in points)
        out.append(f'<polyline class="chart-line" points="{line}" fill="none" stroke="#f79009" '
                   f'stroke-width="2" stroke-linejoin="round" pointer-events="none"/>')
        for (x, y), day in zip(points, days, strict=True):
            out.append(f'<circle class="chart-point" data-charge="{day.charge_minor}" cx="{_fmt(x)}" '
                       f'cy="{_fmt(y)}" r="3" fill="#fff" stroke="#f79009" stroke-width="2" pointer-events="none"/>')
    out.append(f'<line class="chart-baseline" x1="{left}" x2="{left + plot_w}" y1="{bottom}" y2="{bottom}" '
               f'stroke="#98a2b3" stroke-width="1"/>')
    out.append("</svg>")
    return Markup("".join(out))  # noqa: S704 — every value above is a number or escaped
