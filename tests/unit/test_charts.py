"""The dashboard's SVG chart: bars and points scale with the data, text is escaped, empty data renders."""

from __future__ import annotations

import itertools
import xml.etree.ElementTree as ET
from datetime import date, timedelta

from ringwell.web.portal.charts import ChartDay, daily_chart, nice_ceiling

NS = {"svg": "http://www.w3.org/2000/svg"}
START = date(2026, 3, 1)


def _series(calls: list[int], charges: list[int]) -> list[ChartDay]:
    pairs = zip(calls, charges, strict=True)
    return [ChartDay(START + timedelta(days=i), c, c // 2, m) for i, (c, m) in enumerate(pairs)]


def _parse(svg: str) -> ET.Element:
    return ET.fromstring(svg)


def _bars(root: ET.Element) -> list[ET.Element]:
    return [r for r in root.iter("{http://www.w3.org/2000/svg}rect") if r.get("class") == "chart-bar"]


def _points(root: ET.Element) -> list[ET.Element]:
    return root.findall("svg:circle", NS)


def test_nice_ceiling_lands_on_round_ticks():
    assert nice_ceiling(0) == 4
    assert nice_ceiling(3) == 4
    assert nice_ceiling(13) == 20
    assert nice_ceiling(20) == 20
    assert nice_ceiling(21) == 40
    assert nice_ceiling(101) == 200
    assert nice_ceiling(1234) == 2000


def test_bars_scale_with_calls_and_points_with_spend():
    root = _parse(daily_chart(_series([5, 10, 0, 20], [100, 0, 400, 200]), "USD"))
    bars = _bars(root)
    heights = [float(b.get("height", "nan")) for b in bars]
    assert len(bars) == 4
    assert heights[2] == 0
    assert heights[1] == 2 * heights[0]
    assert heights[3] == 4 * heights[0]
    # Bars stand on the same baseline.
    assert len({round(float(b.get("y", "0")) + float(b.get("height", "0")), 1) for b in bars}) == 1
    # Spend: the point's height above the baseline is proportional to the charge.
    ys = [float(c.get("cy", "nan")) for c in _points(root)]
    baseline = ys[1]  # charge 0
    assert baseline > ys[0] > ys[3] > ys[2]
    assert round(baseline - ys[2], 1) == round(4 * (baseline - ys[0]), 1)
    assert round(baseline - ys[3], 1) == round(2 * (baseline - ys[0]), 1)
    # The line goes through the points, left to right.
    line = root.find("svg:polyline", NS)
    assert line is not None
    xs = [float(pair.split(",")[0]) for pair in (line.get("points") or "").split()]
    assert xs == sorted(xs) and len(xs) == 4


def test_axis_labels_tooltips_and_accessible_name():
    svg = daily_chart(_series([3, 13], [150, 1999]), "USD")
    root = _parse(svg)
    assert root.get("role") == "img"
    label = root.get("aria-label") or ""
    assert "16 calls" in label and "21.49 USD" in label and "1 Mar" in label and "2 Mar" in label
    texts = [t.text for t in root.iter("{http://www.w3.org/2000/svg}text")]
    assert "20" in texts  # the calls axis ends on a round number above 13
    assert "1 Mar" in texts and "2 Mar" in texts
    assert any(t and t.endswith(".00") for t in texts)  # money on the right axis
    titles = [t.text for t in root.iter("{http://www.w3.org/2000/svg}title")]
    assert "Mon 2 Mar: 13 calls, 6 answered, 19.99 USD" in titles


def test_bigger_day_makes_taller_axis_not_overflowing_bars():
    small = _bars(_parse(daily_chart(_series([10], [0]), "USD")))[0]
    big_series = _bars(_parse(daily_chart(_series([10, 1000], [0, 0]), "USD")))
    # The same 10 calls are a shorter bar when another day has 1000 (the axis grows).
    assert float(big_series[0].get("height", "0")) < float(small.get("height", "0"))
    top = min(float(b.get("y", "0")) for b in big_series)
    assert top >= 0


def test_empty_data_renders_axes_and_a_note():
    for days in ([], _series([0, 0, 0], [0, 0, 0])):
        svg = daily_chart(days, "EUR")
        root = _parse(svg)
        assert "No calls in this period" in svg
        assert all(float(b.get("height", "0")) == 0 for b in _bars(root))
        assert root.get("aria-label", "").startswith("Calls and spend per day")


def test_text_is_escaped():
    svg = daily_chart(_series([1], [1]), "USD", title='Calls <script>alert("x")</script>')
    assert "<script>" not in svg
    _parse(svg)  # still well-formed XML


def test_zero_decimal_currency():
    root = _parse(daily_chart(_series([1], [1500]), "JPY"))
    titles = [t.text or "" for t in root.iter("{http://www.w3.org/2000/svg}title")]
    assert any("1500 JPY" in t for t in titles)


def test_a_narrow_chart_labels_fewer_days_but_keeps_today_and_its_text_size():
    days = _series(list(range(14)), [0] * 14)
    wide = _parse(daily_chart(days, "USD"))
    narrow = _parse(daily_chart(days, "USD", width=360, height=240, css_class="chart-narrow"))
    assert narrow.get("class") == "chart chart-narrow" and narrow.get("viewBox") == "0 0 360 240"

    def day_labels(root):
        return [t.text for t in root.iter("{http://www.w3.org/2000/svg}text") if t.text and t.text.endswith("Mar")]

    assert len(day_labels(wide)) == 14
    assert 3 <= len(day_labels(narrow)) < 14
    assert day_labels(narrow)[-1] == "14 Mar"  # today is always labelled
    sizes = {t.get("font-size") for t in narrow.iter("{http://www.w3.org/2000/svg}text")} - {"14"}
    assert sizes == {"11"}
    # Labels never overlap: centres at least a label's width apart.
    xs = [float(t.get("x", "0")) for t in narrow.iter("{http://www.w3.org/2000/svg}text")
          if t.text and t.text.endswith("Mar")]
    assert min(b - a for a, b in itertools.pairwise(xs)) >= 40
