"""The alarm path's JSON text reads back as the standard library's did."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone

from hypothesis import given
from hypothesis import strategies as st

from vitalstation.storage.json_text import json_text

_STDLIB = json.JSONEncoder(default=str, sort_keys=True)

_scalars = (
    st.none() | st.booleans() | st.text(max_size=20)
    | st.integers(min_value=-(2**63), max_value=2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.datetimes(timezones=st.just(UTC))
)
_values = st.recursive(
    _scalars,
    lambda inner: st.lists(inner, max_size=4)
    | st.dictionaries(st.text(max_size=10), inner, max_size=5),
    max_leaves=20,
)


@given(_values)
def test_the_text_parses_to_what_the_standard_encoder_wrote(value) -> None:
    assert json.loads(json_text(value)) == json.loads(_STDLIB.encode(value))


@given(st.dictionaries(st.text(max_size=10), st.integers(), max_size=8))
def test_keys_are_sorted(value: dict[str, int]) -> None:
    assert list(json.loads(json_text(value))) == sorted(value)


def test_times_and_dataclasses_are_written_through_str_as_before() -> None:
    @dataclass
    class Point:
        x: int

    at = datetime(2026, 11, 23, 16, 0, 0, 5, tzinfo=timezone(timedelta(hours=1)))
    value = {"at": at, "point": Point(1)}
    assert json.loads(json_text(value)) == {"at": str(at), "point": str(Point(1))}


def test_what_orjson_refuses_goes_through_the_standard_encoder() -> None:
    big = 2**70  # beyond orjson's 64-bit integers
    assert json.loads(json_text({"n": big})) == {"n": big}


def test_non_ascii_text_is_kept_as_utf8_and_nan_becomes_null() -> None:
    text = json_text({"message": "Heart rate high: 160 /min (limit ≥ 149.5)", "v": float("nan")})
    assert "≥" in text
    assert json.loads(text) == {"message": "Heart rate high: 160 /min (limit ≥ 149.5)", "v": None}
