"""parse_cik: the forms of a CIK FinLoom accepts, and one-line errors for the rest."""

from __future__ import annotations

import pytest

from finloom_core.cik import cik10, parse_cik
from finloom_core.errors import InputError, InvalidCikError


@pytest.mark.parametrize("value", [320193, "320193", "0000320193", "CIK0000320193", "cik320193"])
def test_parse_cik_accepts_int_and_padded_forms(value: object) -> None:
    assert parse_cik(value) == 320193


def test_parse_cik_accepts_the_largest_ten_digit_cik() -> None:
    assert parse_cik("9999999999") == 9_999_999_999
    assert parse_cik(9_999_999_999) == 9_999_999_999


@pytest.mark.parametrize(
    "value", ["", "abc", "-5", 0, "0", "12345678901", 10**10, True, False, None, 1.5, "32019x"]
)
def test_parse_cik_rejects_with_one_line_error_naming_the_value(value: object) -> None:
    with pytest.raises(InvalidCikError) as info:
        parse_cik(value)
    message = str(info.value)
    assert "\n" not in message
    assert repr(value) in message
    assert info.value.value == value


def test_invalid_cik_is_an_input_error_and_a_value_error() -> None:
    with pytest.raises(InputError):
        parse_cik("abc")
    with pytest.raises(ValueError):
        parse_cik("abc")


def test_cik10_pads_to_ten_digits_and_round_trips() -> None:
    assert cik10(320193) == "0000320193"
    assert parse_cik(f"CIK{cik10(1045810)}") == 1045810
