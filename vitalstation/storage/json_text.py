"""JSON text for the columns written with every alarm transition (snapshot, chain, details,
outbox payload): orjson, with the standard library's encoder for anything orjson refuses.

An alarm raised and resolved writes two alarm snapshots, its chain, four event details and an
outbox payload; with ``json.JSONEncoder`` that text was a sixth of the alarm service's time on
the pipeline thread. orjson writes the same JSON four to five times faster. The text is what
``json.JSONEncoder(default=str, sort_keys=True)`` gives, parsed back, with three differences
that no reader sees: no spaces after separators, non-ASCII characters as UTF-8 rather than
``\\uXXXX`` escapes, and NaN or infinity as ``null`` (standard JSON has neither; the station's
values are never either, by validation). Times and dataclasses go through ``str`` as before
(``OPT_PASSTHROUGH_*``), so a ``datetime`` in event details reads as it always did.

A value orjson cannot write (an integer beyond 64 bits, a key of a type it refuses) falls back
to the standard encoder: a transition is never left unstored for the encoder's sake.

:func:`record_text_writer` writes the same text as ``json_text(record.to_dict())`` for the
named tuples stored whole (an alarm's snapshot, its escalation chain: one of each per alarm row
written) without building that dict in Python: orjson writes their times and enums itself.
"""

from __future__ import annotations

import enum
import json
import types
import typing
from collections.abc import Callable, Sequence
from datetime import UTC
from typing import Any, NamedTuple

import orjson

__all__ = ["json_text", "record_text_writer"]

_OPTIONS = (
    orjson.OPT_SORT_KEYS
    | orjson.OPT_NON_STR_KEYS
    | orjson.OPT_PASSTHROUGH_DATETIME
    | orjson.OPT_PASSTHROUGH_DATACLASS
)
# Times and enums as orjson writes them: for a time in UTC the text of isoformat().
_RECORD_OPTIONS = orjson.OPT_SORT_KEYS
# Tried first: the same text for a value whose keys are all strings (nearly every one), which
# orjson writes faster without OPT_NON_STR_KEYS (an outbox payload 7.0k -> 5.6k instructions,
# an event's details 2.3k -> 1.9k); a key of another type makes it raise, and the full
# options write the value.
_STR_KEY_OPTIONS = _OPTIONS & ~orjson.OPT_NON_STR_KEYS
_FALLBACK = json.JSONEncoder(default=str, sort_keys=True)
_dumps = orjson.dumps


def json_text(value: Any) -> str:
    """``value`` as JSON text with sorted keys; what it cannot serialise goes through ``str``."""
    try:
        return _dumps(value, str, _STR_KEY_OPTIONS).decode()
    except TypeError:  # orjson.JSONEncodeError included: a key that is not a str, or worse
        pass
    try:
        return _dumps(value, str, _OPTIONS).decode()
    except TypeError:
        return _FALLBACK.encode(value)


def record_text_writer(
    record_type: type[NamedTuple], fields: Sequence[str] | None = None
) -> Callable[[Any], str]:
    """A function giving ``json_text(record.to_dict())`` for records of ``record_type``, a
    named tuple whose ``to_dict`` holds each field under its own name, its times by
    ``isoformat()``, its enums by value and its tuples as lists. With ``fields``, only those
    of its fields (``json_text`` of ``to_dict()``'s items under those names).

    The record's own fields go to orjson as they are, which writes that same text about twice
    as fast. orjson and ``isoformat()`` agree on every time in UTC, naive or at an offset of
    whole minutes, but not on an offset with seconds (``+00:00:05``): a record with a time
    (a field annotated ``datetime``) not in UTC, or a value orjson refuses, goes through
    ``to_dict`` instead, so the text is always exactly ``to_dict``'s.
    """
    written = tuple(record_type._fields if fields is None else fields)
    unknown = set(written) - set(record_type._fields)
    if unknown:
        raise ValueError(f"{record_type.__name__} has no field {', '.join(sorted(unknown))}")
    build = _dict_builder(record_type, written)
    # The dict has its keys in sorted order, so orjson need not sort them: the same text, as
    # long as no field holds a mapping of its own (whose keys only sorting would order); a
    # record type that may still sorts.
    annotations = record_type.__annotations__
    nested = any(
        word in str(annotations.get(name)) for name in written
        for word in ("dict", "Mapping", "Any", "object")
    )
    options = _RECORD_OPTIONS if nested else 0

    def record_text(record: Any) -> str:
        try:
            values = build(record)
            if values is not None:
                return _dumps(values, None, options).decode()
        except (AttributeError, TypeError):  # orjson.JSONEncodeError included
            pass
        data = record.to_dict()
        return json_text(data if fields is None else {name: data[name] for name in written})

    return record_text


def _dict_builder(
    record_type: type[NamedTuple], written: Sequence[str]
) -> Callable[[Any], dict[str, Any] | None]:
    """A function making a record's dict for orjson: its ``written`` fields under their names,
    in sorted order, an enum field (by its resolved annotation, ``E`` or ``E | None``) by its
    value; None when one of those times (a field annotated ``datetime``) is not in UTC.

    Written once per record type from its field names (as ``namedtuple`` writes its classes):
    the record unpacked into locals, a dict of its keys copied and its values set. An alarm
    snapshot's text 40.3k -> 27.5k instructions, its chain's 26.3k -> 17.4k (callgrind) against
    ``dict(zip(names, itemgetter(...)(record)))`` and a loop over its times: a named tuple's
    items are read through the generic subscript, and a dict of more than 16 keys written as
    one display grows step by step. An enum read as ``_value_`` costs less than orjson's own
    enum path (the ``value`` property); a field that is not an enum after all raises
    ``AttributeError`` and the record goes through ``to_dict``.
    """
    fields = record_type._fields
    annotations = record_type.__annotations__
    try:
        hints = typing.get_type_hints(record_type)
    except (NameError, TypeError):  # an annotation that does not resolve: no enum shortcut
        hints = {}
    names = ", ".join(f"f{index}" for index in range(len(fields)))
    lines = ["def build(record, _copy=_template.copy, UTC=UTC):", f"    {names}, = record"]
    checks = [
        f"(f{index} is not None and f{index}.tzinfo is not UTC)"
        for index, name in enumerate(fields)
        if name in written and "datetime" in str(annotations.get(name))
    ]
    if checks:
        lines += [f"    if {' or '.join(checks)}:", "        return None"]
    lines.append("    values = _copy()")
    for name in sorted(written):
        index = fields.index(name)
        enum_type, optional = _enum_of(hints.get(name))
        if enum_type is None:
            value = f"f{index}"
        elif optional:
            value = f"None if f{index} is None else f{index}._value_"
        else:
            value = f"f{index}._value_"
        lines.append(f"    values[{name!r}] = {value}")
    lines.append("    return values")
    # Field names are identifiers (``NamedTuple`` checks them), written here by ``repr``.
    namespace: dict[str, Any] = {"_template": dict.fromkeys(sorted(written)), "UTC": UTC}
    exec("\n".join(lines), namespace)  # noqa: S102
    return namespace["build"]  # type: ignore[no-any-return]


def _enum_of(hint: Any) -> tuple[type[enum.Enum] | None, bool]:
    """The enum type of an annotation ``E`` or ``E | None`` and whether None is allowed."""
    if isinstance(hint, type) and issubclass(hint, enum.Enum):
        return hint, False
    args = typing.get_args(hint)
    if typing.get_origin(hint) in (typing.Union, types.UnionType) and len(args) == 2:
        rest = [arg for arg in args if arg is not type(None)]
        if len(rest) == 1 and isinstance(rest[0], type) and issubclass(rest[0], enum.Enum):
            return rest[0], True
    return None, False
