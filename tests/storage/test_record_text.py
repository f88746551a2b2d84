"""record_text_writer's text is exactly ``json_text(record.to_dict())`` for every kind of field:
enums (required and optional), times in UTC and not, tuples of enums, and a value of the wrong
type in an enum field."""

from __future__ import annotations

import enum
from datetime import UTC, datetime, timedelta, timezone
from typing import Any, NamedTuple

import pytest

from vitalstation.storage.json_text import json_text, record_text_writer


class Colour(enum.StrEnum):
    RED = "red"
    BLUE = "blue"


class Level(enum.IntEnum):
    LOW = 1
    HIGH = 3


class Sample(NamedTuple):
    name: str
    colour: Colour
    at: datetime
    level: Level | None = None
    until: datetime | None = None
    seen: tuple[Colour, ...] = ()
    count: int = 0
    zeta: float | None = None

    def to_dict(self) -> dict[str, Any]:
        def text(value: datetime | None) -> str | None:
            return None if value is None else value.isoformat()

        return {
            "name": self.name, "colour": getattr(self.colour, "value", self.colour),
            "at": text(self.at), "level": None if self.level is None else self.level.value,
            "until": text(self.until), "seen": [c.value for c in self.seen],
            "count": self.count, "zeta": self.zeta,
        }


AT = datetime(2026, 11, 24, 1, 2, 3, 456789, tzinfo=UTC)
_write = record_text_writer(Sample)


@pytest.mark.parametrize("record", [
    Sample("a", Colour.RED, AT),
    Sample("b", Colour.BLUE, AT, Level.HIGH, AT + timedelta(minutes=2), (Colour.RED,), 7, 1.5),
    Sample("c", Colour.RED, AT.replace(microsecond=0), Level.LOW),
    Sample("ünïcode ≥", Colour.BLUE, AT, seen=(Colour.BLUE, Colour.RED)),
], ids=["defaults", "every-field", "whole-seconds", "non-ascii"])
def test_the_text_is_to_dicts(record: Sample) -> None:
    text = _write(record)
    assert text == json_text(record.to_dict())
    assert text.startswith('{"at":') and '"zeta":' in text  # keys sorted


@pytest.mark.parametrize("at", [
    AT.astimezone(timezone(timedelta(hours=1))),
    AT.astimezone(timezone(timedelta(seconds=5))),
    AT.replace(tzinfo=None),
], ids=["plus-one-hour", "offset-with-seconds", "naive"])
def test_a_time_not_in_utc_is_written_as_to_dict_writes_it(at: datetime) -> None:
    for record in (Sample("a", Colour.RED, at), Sample("a", Colour.RED, AT, until=at)):
        assert _write(record) == json_text(record.to_dict())


def test_a_value_that_is_not_an_enum_in_an_enum_field_is_written_as_to_dict_writes_it() -> None:
    record = Sample("a", "green", AT)  # type: ignore[arg-type]
    assert _write(record) == json_text(record.to_dict()) == (
        '{"at":"2026-11-24T01:02:03.456789+00:00","colour":"green","count":0,"level":null,'
        '"name":"a","seen":[],"until":null,"zeta":null}'
    )


def test_json_text_writes_keys_that_are_not_strings_as_before() -> None:
    assert json_text({2: "x", "a": 1, Colour.BLUE: None}) == '{"2":"x","a":1,"blue":null}'
    assert json_text({"n": {AT: 1}}) == '{"n":{"2026-11-24T01:02:03.456789+00:00":1}}'
