"""Timestamp parsing of query parameters (SPEC section 1) and the two ways the API writes timestamps."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from chipp_builder.schemas.common import format_period, format_timestamp
from chipp_builder.server.params import parse_timestamp

INSTANT = datetime(2025, 6, 1, 12, 30, 15, 250000, tzinfo=UTC)


@pytest.mark.parametrize(
    "text",
    [
        "2025-06-01T12:30:15.25Z",
        "2025-06-01T12:30:15.250000Z",
        "2025-06-01T12:30:15.25z",
        "2025-06-01t12:30:15.25Z",
        "2025-06-01 12:30:15.25Z",
        "2025-06-01T14:30:15.25+02:00",
        "2025-06-01T14:30:15.25+0200",
        "2025-06-01T14:30:15.25 02:00",
        "2025-06-01T14:30:15.25 0200",
        "2025-06-01T10:30:15.25-02:00",
        "2025-06-01T10:30:15.25-0200",
        "2025-06-01T12:30:15.25",
        "2025-06-01T12:30:15.25+00:00",
        "2025-06-01T12:30:15.25-00:00",
        "2025-06-01T12:30:15.250000000Z",
        "  2025-06-01T12:30:15.25Z  ",
    ],
)
def test_every_documented_form_parses_to_the_same_instant(text):
    assert parse_timestamp(text) == INSTANT


@pytest.mark.parametrize("digits", range(1, 10))
def test_one_to_nine_fraction_digits_are_accepted(digits):
    fraction = "123456789"[:digits]
    expected_micro = int(fraction[:6].ljust(6, "0"))
    assert parse_timestamp(f"2025-06-01T00:00:00.{fraction}Z").microsecond == expected_micro


def test_fraction_digits_beyond_microseconds_are_dropped():
    assert parse_timestamp("2025-06-01T00:00:00.999999999Z") == datetime(
        2025, 6, 1, 0, 0, 0, 999999, tzinfo=UTC
    )


def test_a_bare_date_is_midnight_utc():
    assert parse_timestamp("2025-06-01") == datetime(2025, 6, 1, tzinfo=UTC)


def test_no_offset_means_utc():
    assert parse_timestamp("2025-06-01T08:00:00") == datetime(2025, 6, 1, 8, tzinfo=UTC)


def test_the_result_is_aware_and_in_utc():
    value = parse_timestamp("2025-06-01T08:00:00+05:30")
    assert value.tzinfo is not None and value.utcoffset() == timedelta(0)
    assert value == datetime(2025, 6, 1, 2, 30, tzinfo=UTC)


def test_an_offset_moves_the_date_across_midnight():
    assert parse_timestamp("2025-06-01T01:00:00+02:00") == datetime(2025, 5, 31, 23, tzinfo=UTC)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "yesterday",
        "2025-6-1",
        "2025-13-01",
        "2025-02-30",
        "2025-06-01T24:00:01Z",
        "2025-06-01T12:60:00Z",
        "2025-06-01T12:00:61Z",
        "2025-06-01T12:00:00.Z",
        "2025-06-01T12:00:00.1234567890Z",
        "2025-06-01T12:00:00+25:00",
        "2025-06-01T12:00:00+2",
        "2025-06-01T12:00:00ZZ",
        "2025-06-01T12:00:00 Z",
        "2025-06-01X12:00:00Z",
        "1717200000",
        "20250601T120000Z",
        "2025-06-01T12:00:00Z\x00",
        "２０２５-06-01",
    ],
)
def test_malformed_timestamps_raise_value_error(text):
    with pytest.raises(ValueError):
        parse_timestamp(text)


@pytest.mark.parametrize("text", ["9999-12-31T23:59:59-01:00", "0001-01-01T00:00:00+01:00"])
def test_instants_outside_the_utc_calendar_raise_value_error(text):
    with pytest.raises(ValueError):
        parse_timestamp(text)


def test_the_ends_of_the_calendar_in_utc_parse():
    assert parse_timestamp("0001-01-01T00:00:00Z") == datetime(1, 1, 1, tzinfo=UTC)
    assert parse_timestamp("9999-12-31T23:59:59.999999Z") == datetime(
        9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC
    )


def test_format_timestamp_ends_in_z_without_a_fraction():
    assert format_timestamp(datetime(2025, 6, 15, 14, 30, tzinfo=UTC)) == "2025-06-15T14:30:00Z"


def test_format_timestamp_writes_a_fraction_with_six_digits():
    assert (
        format_timestamp(datetime(2025, 6, 15, 14, 30, 0, 250000, tzinfo=UTC))
        == "2025-06-15T14:30:00.250000Z"
    )


def test_format_timestamp_converts_to_utc():
    plus_two = timezone(timedelta(hours=2))
    assert format_timestamp(datetime(2025, 6, 15, 16, 30, tzinfo=plus_two)) == "2025-06-15T14:30:00Z"


def test_format_timestamp_reads_naive_values_as_utc():
    assert format_timestamp(datetime(2025, 6, 15, 14, 30)) == "2025-06-15T14:30:00Z"


def test_format_period_writes_milliseconds():
    assert format_period(datetime(2025, 6, 1, tzinfo=UTC)) == "2025-06-01T00:00:00.000Z"


def test_format_period_converts_to_utc():
    assert (
        format_period(datetime(2025, 6, 1, 2, tzinfo=timezone(timedelta(hours=2))))
        == "2025-06-01T00:00:00.000Z"
    )


def test_format_period_pads_early_years_to_four_digits():
    assert format_period(datetime(1, 1, 1, tzinfo=UTC)) == "0001-01-01T00:00:00.000Z"
    assert format_period(datetime(999, 12, 1, tzinfo=UTC)) == "0999-12-01T00:00:00.000Z"
