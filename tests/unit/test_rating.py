"""Rating, the pure core: exact billable seconds and charges, budgets, longest-prefix match, CSV decks."""

from __future__ import annotations

import importlib
from datetime import date

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from ringwell.errors import Invalid
from ringwell.features.rating.errors import RateImportError
from ringwell.features.rating.rates import (
    UNLIMITED_SECONDS,
    Increments,
    PrefixTable,
    Rate,
    affordable_seconds,
    billable_seconds,
    call_charge,
    charge_micros,
    currency_exponent,
    format_micros,
    parse_increments,
    parse_micros,
    parse_rates_csv,
    round_talk_seconds,
    to_minor,
)

EPOCH = date(1970, 1, 1)
USD_0123 = 12_300  # $0.0123 per minute, in micros
USD_010 = 100_000  # $0.10 per minute
CENT = 10_000  # one US cent in micros


def rate(price=USD_0123, fee=0, inc="60/60", prefix="1", effective=EPOCH, description="US"):
    return Rate(prefix, description, price, fee, parse_increments(inc), effective)


# -- billable seconds -----------------------------------------------------------------------
@pytest.mark.parametrize(("talk", "inc", "billable"), [
    (37, "60/60", 60), (37, "30/6", 42), (37, "1/1", 37),
    (61, "60/60", 120), (60, "60/60", 60), (120, "60/60", 120), (121, "60/60", 180),
    (30, "30/6", 30), (31, "30/6", 36), (36, "30/6", 36), (1, "30/6", 30), (1, "1/1", 1),
    (37.02, "1/1", 37), (36.5, "1/1", 37), (36.49, "1/1", 36), (60.4, "60/60", 60), (60.5, "60/60", 120),
    (0, "60/60", 0), (0.49, "60/60", 0), (0.5, "60/60", 60), (0.5, "1/1", 1),
    (3600, "60/60", 3600), (3601, "60/6", 3606),
])  # fmt: skip
def test_billable_seconds(talk, inc, billable):
    assert billable_seconds(talk, parse_increments(inc)) == billable


def test_talk_rounds_halves_up_exactly():
    assert round_talk_seconds(0.49999999999999994) == 0  # floor(t + 0.5) would say 1
    assert round_talk_seconds(2.5) == 3 and round_talk_seconds(2.4999999) == 2
    for bad in (-0.1, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="talk seconds"):
            round_talk_seconds(bad)


# -- charges: a 37 s call, table-driven, exact micros and cents --------------------------------
@pytest.mark.parametrize(("price", "fee", "inc", "billable", "micros", "cents"), [
    # $0.0123/min
    (USD_0123, 0, "1/1", 37, 7_585, 1),  # 12300 * 37 / 60 = 7585 exactly
    (USD_0123, 0, "60/60", 60, 12_300, 2),  # 1.23 cents, rounded up once
    (USD_0123, 0, "30/6", 42, 8_610, 1),
    (USD_0123, CENT, "1/1", 37, 17_585, 2),
    (USD_0123, CENT, "60/60", 60, 22_300, 3),
    (USD_0123, CENT, "30/6", 42, 18_610, 2),
    # $0.10/min
    (USD_010, 0, "1/1", 37, 61_667, 7),  # 61 666.67 micros, up to a whole micro, then to cents
    (USD_010, 0, "60/60", 60, 100_000, 10),
    (USD_010, 0, "30/6", 42, 70_000, 7),
    (USD_010, CENT, "1/1", 37, 71_667, 8),
    (USD_010, CENT, "60/60", 60, 110_000, 11),
    (USD_010, CENT, "30/6", 42, 80_000, 8),
])  # fmt: skip
def test_charge_of_a_37_second_call(price, fee, inc, billable, micros, cents):
    r = rate(price, fee, inc)
    assert billable_seconds(37.02, r.increments) == billable
    assert charge_micros(r, billable) == micros
    assert call_charge(r, 37.02, "USD") == (billable, cents)


def test_fee_and_price_round_to_cents_once():
    # 0.5 cent fee + 0.5 cent of talk: one cent, not two (the sum is rounded, not each part)
    r = rate(price=30_000, fee=5_000, inc="1/1")
    assert call_charge(r, 10, "USD") == (10, 1)


def test_unanswered_and_zero_second_calls_are_free():
    r = rate(USD_010, fee=5 * CENT)
    assert call_charge(r, 0, "USD") == (0, 0)
    assert call_charge(r, 0.4, "USD") == (0, 0)
    assert call_charge(r, 0.5, "USD") == (60, 15)


@pytest.mark.parametrize(("currency", "exponent", "micros", "minor"), [
    ("USD", 2, 12_300, 2), ("EUR", 2, 10_000, 1), ("EUR", 2, 10_001, 2), ("JPY", 0, 12_300, 1),
    ("JPY", 0, 3_000_000, 3), ("KRW", 0, 1, 1), ("KWD", 3, 12_300, 13), ("BHD", 3, 12_000, 12), ("USD", 2, 0, 0),
])  # fmt: skip
def test_minor_units_per_currency(currency, exponent, micros, minor):
    assert currency_exponent(currency) == exponent
    assert to_minor(micros, currency) == minor


@pytest.mark.parametrize("bad", ["usd", "US", "DOLLAR", ""])
def test_currency_must_be_an_iso_code(bad):
    with pytest.raises(ValueError, match="ISO 4217"):
        to_minor(1, bad)


# -- affordable seconds ---------------------------------------------------------------------
@pytest.mark.parametrize(("price", "fee", "inc", "budget", "seconds"), [
    (USD_010, 0, "1/1", 5, 30),  # credit for exactly 30 s gets exactly 30 s
    (USD_010, 0, "1/1", 4, 24),
    (USD_010, 0, "1/1", 0, 0),
    (USD_010, 0, "60/60", 10, 60),
    (USD_010, 0, "60/60", 9, 0),  # not even the first minute: the call must not start
    (USD_010, 0, "60/60", 25, 120),
    (USD_010, 0, "30/6", 5, 30),
    (USD_010, 0, "30/6", 6, 36),
    (USD_010, CENT, "1/1", 5, 24),
    (USD_010, CENT, "1/1", 1, 0),  # the fee alone uses the budget
    (USD_0123, 0, "1/1", 1, 48),  # 48 s = 9840 micros -> 1 cent; 49 s = 10045 -> 2 cents
    (USD_010, 0, "1/1", -3, 0),
    (0, 0, "60/60", 0, UNLIMITED_SECONDS),  # a free destination
    (0, CENT, "60/60", 1, UNLIMITED_SECONDS),
    (0, CENT, "60/60", 0, 0),
])  # fmt: skip
def test_affordable_seconds(price, fee, inc, budget, seconds):
    r = rate(price, fee, inc)
    assert affordable_seconds(r, "USD", budget) == seconds
    if 0 < seconds < UNLIMITED_SECONDS:
        assert call_charge(r, seconds, "USD")[1] <= budget < call_charge(r, seconds + 1, "USD")[1]


def test_affordable_seconds_in_a_currency_without_cents():
    r = rate(price=10_000_000, inc="1/1")  # 10 yen per minute
    assert affordable_seconds(r, "JPY", 5) == 30
    assert call_charge(r, 30, "JPY") == (30, 5)


increments = st.builds(Increments, st.integers(1, 120), st.integers(1, 120))
rates = st.builds(Rate, st.just("1"), st.just("x"), st.integers(0, 2_000_000), st.integers(0, 200_000), increments,
                  st.just(EPOCH))  # fmt: skip
currencies = st.sampled_from(["USD", "JPY", "KWD"])
talks = st.floats(0, 20_000, allow_nan=False)


@given(rates, currencies, talks, talks)
def test_charge_never_falls_as_talk_time_rises(r, currency, a, b):
    low, high = sorted((a, b))
    assert billable_seconds(low, r.increments) <= billable_seconds(high, r.increments)
    assert call_charge(r, low, currency)[1] <= call_charge(r, high, currency)[1]


@given(increments, talks)
def test_billable_seconds_cover_the_talk_in_whole_increments(inc, talk):
    billable = billable_seconds(talk, inc)
    whole = round_talk_seconds(talk)
    if whole == 0:
        assert billable == 0
    else:
        assert billable >= max(whole, inc.first)
        assert (billable - inc.first) % inc.next == 0
        assert billable == inc.first or billable - whole < inc.next


BOUND = 4_200


@settings(max_examples=150, deadline=None)
@given(
    st.builds(Rate, st.just("1"), st.just("x"), st.integers(1_000, 2_000_000), st.integers(0, 200_000), increments,
              st.just(EPOCH)),
    currencies, st.integers(0, 2_000), st.integers(-1, 1),
)  # fmt: skip
def test_affordable_seconds_matches_brute_force(r, currency, talk, delta):
    budget = call_charge(r, talk, currency)[1] + delta
    assume(call_charge(r, BOUND, currency)[1] > budget)
    brute = max((t for t in range(BOUND) if call_charge(r, t, currency)[1] <= budget), default=0)
    assert affordable_seconds(r, currency, budget) == brute


# -- prefix table -----------------------------------------------------------------------------
def test_longest_prefix_wins_and_plus_is_optional():
    table = PrefixTable([rate(prefix="1", description="US"), rate(prefix="1415", description="San Francisco"),
                         rate(prefix="14155", description="SF downtown"), rate(prefix="44", description="UK")])
    on = date(2026, 3, 1)
    assert table.lookup("+14155550100", on).description == "SF downtown"
    assert table.lookup("14155550100", on).description == "SF downtown"
    assert table.lookup("+14165550100", on).description == "US"
    assert table.lookup("+442071234567", on).description == "UK"
    assert table.lookup("+33123456789", on) is None
    assert table.lookup("1415", on).description == "San Francisco"  # the whole number is a prefix
    for bad in ("", "+", "+1 415", "1415abc", "+١٤١٥"):  # not ASCII digits: nothing matches
        assert table.lookup(bad, on) is None
    assert len(table) == 4 and table.prefix_count == 4


def test_numbers_shorter_and_longer_than_the_head_of_the_index():
    assert PrefixTable.HEAD == 4
    table = PrefixTable([rate(prefix="4", description="4"), rate(prefix="447", description="447"),
                         rate(prefix="44771", description="44771"), rate(prefix="4477123", description="4477123")])
    on = date(2026, 3, 1)
    found = {n: getattr(table.lookup(n, on), "description", None) for n in (
        "4", "44", "447", "4477", "44771", "447712", "4477123", "44771234", "4478", "44781234", "5")}
    assert found == {"4": "4", "44": "4", "447": "447", "4477": "447", "44771": "44771", "447712": "44771",
                     "4477123": "4477123", "44771234": "4477123", "4478": "447", "44781234": "447", "5": None}


def test_effective_dates():
    old = rate(prefix="44", price=10_000, effective=date(2025, 1, 1))
    new = rate(prefix="44", price=12_000, effective=date(2026, 4, 1))
    future_only = rate(prefix="447", price=90_000, effective=date(2027, 1, 1))
    table = PrefixTable([new, future_only, old])
    assert table.lookup("+447700900123", date(2026, 3, 31)) is old  # 447 not yet in effect: falls back to 44
    assert table.lookup("+447700900123", date(2026, 4, 1)) is new  # the day a new rate starts, it applies
    assert table.lookup("+447700900123", date(2027, 1, 1)) is future_only
    assert table.lookup("+447700900123", date(2024, 12, 31)) is None
    assert len(table) == 3 and table.prefix_count == 2
    assert sorted(r.price_micros for r in table.rates()) == [10_000, 12_000, 90_000]


DAYS = [date(2025, 1, 1), date(2025, 6, 1), date(2026, 1, 1)]


@settings(max_examples=300)
@given(
    st.dictionaries(
        st.tuples(st.text("1234", min_size=1, max_size=6), st.sampled_from(DAYS)), st.integers(0, 1000),
        max_size=40,
    ),
    st.text("1234", max_size=8), st.sampled_from([date(2024, 1, 1), *DAYS, date(2025, 3, 1)]), st.booleans(),
)  # fmt: skip
def test_lookup_equals_brute_force_longest_prefix(rows, number, on, plus):
    deck = [rate(prefix=p, effective=d, price=price) for (p, d), price in rows.items()]
    candidates = [r for r in deck if number.startswith(r.prefix) and r.effective_from <= on]
    expected = max(candidates, key=lambda r: (len(r.prefix), r.effective_from), default=None)
    assert PrefixTable(deck).lookup(("+" if plus else "") + number, on) == expected


# -- money as text ----------------------------------------------------------------------------
@pytest.mark.parametrize(("text", "micros"), [
    ("0.0123", 12_300), ("0.10", 100_000), ("1", 1_000_000), (".5", 500_000), ("2.", 2_000_000),
    ("0.000001", 1), ("0.0123000", 12_300), (" 0.01 ", 10_000), ("0", 0),
])  # fmt: skip
def test_parse_micros(text, micros):
    assert parse_micros(text) == micros


@given(st.integers(0, 10**14), st.sampled_from(["USD", "JPY", "KWD"]))
def test_format_micros_round_trips(micros, currency):
    assert parse_micros(format_micros(micros, currency)) == micros


def test_format_micros():
    assert [format_micros(m, "USD") for m in (12_300, 100_000, 0, 1, 1_500_000)] == [
        "0.0123", "0.10", "0.00", "0.000001", "1.50"]
    assert format_micros(5_000_000, "JPY") == "5" and format_micros(12_300, "KWD") == "0.0123"


# -- CSV decks --------------------------------------------------------------------------------
HEADER = "prefix,description,price_per_minute,connection_fee,increments,effective_date\n"


def test_parse_a_deck():
    deck = parse_rates_csv([
        HEADER,
        "1,United States,0.0123,0,60/60,2026-01-01\n",
        "+44,United Kingdom,0.10,0.01,30/6,2026-02-01\n",
        '1415,"San Francisco, CA",0.02,,1/1,\n',
        "\n",
    ])  # fmt: skip
    assert deck == [
        Rate("1", "United States", 12_300, 0, Increments(60, 60), date(2026, 1, 1)),
        Rate("44", "United Kingdom", 100_000, 10_000, Increments(30, 6), date(2026, 2, 1)),
        Rate("1415", "San Francisco, CA", 20_000, 0, Increments(1, 1), EPOCH),
    ]


def test_header_is_case_insensitive_in_any_order_with_optional_columns():
    deck = parse_rates_csv(["\ufeffPrice_Per_Minute, Prefix ,DESCRIPTION\n", "0.5,33,France\n"])
    assert deck == [Rate("33", "France", 500_000, 0, Increments(60, 60), EPOCH)]
    assert parse_rates_csv(["prefix,description,price_per_minute,increments\n", "33,France,0.5,6/6\n"])[
        0].increments == Increments(6, 6)  # fmt: skip


def test_equal_descriptions_increments_and_dates_are_shared():
    a, b = parse_rates_csv([HEADER, "1,US,0.01,0,60/60,2026-01-01\n", "2,US,0.01,0,60/60,2026-01-01\n"])
    assert a.description is b.description and a.increments is b.increments
    assert a.effective_from is b.effective_from


@pytest.mark.parametrize(("line", "message"), [
    ("1,US,abc,0,60/60,2026-01-01", "line 3: price is not a number: 'abc'"),
    ("1,US,-0.01,0,60/60,2026-01-01", "line 3: price must not be negative: '-0.01'"),
    ("1,US,0.0000001,0,60/60,2026-01-01", "line 3: price has more than 6 decimals: '0.0000001'"),
    ("1,US,1e-3,0,60/60,2026-01-01", "line 3: price is not a number: '1e-3'"),
    ("1,US,,0,60/60,2026-01-01", "line 3: price is missing"),
    ("1,US,1000000000,0,60/60,2026-01-01", "line 3: price is too large: '1000000000'"),
    (f"1,US,{'9' * 5000},0,60/60,2026-01-01", f"line 3: price is too large: '{'9' * 5000}'"),
    ("1,US,0.01,x,60/60,2026-01-01", "line 3: connection fee is not a number: 'x'"),
    ("1,US,0.01,-1,60/60,2026-01-01", "line 3: connection fee must not be negative: '-1'"),
    ("1a,US,0.01,0,60/60,2026-01-01", "line 3: prefix must be 1 to 15 digits: '1a'"),
    (",US,0.01,0,60/60,2026-01-01", "line 3: prefix must be 1 to 15 digits: ''"),
    ("1234567890123456,US,0.01,0,60/60,2026-01-01", "line 3: prefix must be 1 to 15 digits: '1234567890123456'"),
    ("1,US,0.01,0,60,2026-01-01", "line 3: increments must look like 60/60: '60'"),
    ("1,US,0.01,0,0/60,2026-01-01", "line 3: increment first must be 1 to 86400 seconds, not 0"),
    ("1,US,0.01,0,60/0,2026-01-01", "line 3: increment next must be 1 to 86400 seconds, not 0"),
    ("1,US,0.01,0,60/60,2026-13-01", "line 3: effective date must be a date like 2026-01-31: '2026-13-01'"),
    ("1,US,0.01,0,60/60,01/02/2026", "line 3: effective date must be a date like 2026-01-31: '01/02/2026'"),
    ("1,US,0.01,0,60/60", "line 3: expected 6 fields like the header, got 5"),
    ("1,US,0.01,0,60/60,2026-01-01,extra", "line 3: expected 6 fields like the header, got 7"),
    ("44,UK again,0.02,0,60/60,2026-01-01", "line 3: duplicate rate for prefix 44 effective 2026-01-01 (first on "
                                            "line 2)"),
    (f"1,{'x' * 201},0.01,0,60/60,2026-01-01", "line 3: description is longer than 200 characters"),
])  # fmt: skip
def test_a_bad_line_rejects_the_deck_with_its_number(line, message):
    with pytest.raises(RateImportError) as info:
        parse_rates_csv([HEADER, "44,UK,0.01,0,60/60,2026-01-01\n", line + "\n", "45,DK,0.01,0,60/60,\n"])
    assert str(info.value) == message
    assert info.value.details == {"line": 3}
    assert info.value.error_id == "invalid_rate_deck" and isinstance(info.value, Invalid)


def test_line_numbers_count_blank_lines_and_the_header():
    with pytest.raises(RateImportError, match=r"^line 5: price") as info:
        parse_rates_csv([HEADER, "1,US,0.01,0,60/60,\n", "\n", "\n", "2,X,zz,0,60/60,\n"])
    assert info.value.details == {"line": 5}


def test_same_prefix_on_other_dates_is_not_a_duplicate():
    deck = parse_rates_csv([HEADER, "44,UK,0.01,0,60/60,2026-01-01\n", "44,UK,0.02,0,60/60,2026-07-01\n"])
    assert [r.price_micros for r in deck] == [10_000, 20_000]


@pytest.mark.parametrize(("lines", "message"), [
    ([], "line 1: empty file; expected a header such as prefix,description,price_per_minute,connection_fee,"
         "increments,effective_date"),
    (["\n"], "line 1: empty file; expected a header such as prefix,description,price_per_minute,connection_fee,"
             "increments,effective_date"),
    ([HEADER], "line 2: the deck has no rates"),
    ([HEADER, "\n"], "line 3: the deck has no rates"),
    (["prefix,description,price\n"], "line 1: unknown column 'price'; the columns are prefix,description,"
                                     "price_per_minute,connection_fee,increments,effective_date"),
    (["prefix,description\n"], "line 1: missing column 'price_per_minute'; the header must name prefix,"
                               "description,price_per_minute"),
    (["prefix,Prefix,description,price_per_minute\n"], "line 1: column 'prefix' appears twice"),
])  # fmt: skip
def test_empty_decks_and_bad_headers(lines, message):
    with pytest.raises(RateImportError) as info:
        parse_rates_csv(lines)
    assert str(info.value) == message


def test_exports_are_honest():
    for name in ("rates", "errors", "models", "repository", "service"):
        module = importlib.import_module(f"ringwell.features.rating.{name}")
        for exported in module.__all__:
            assert hasattr(module, exported), f"{name}.{exported}"
