"""Property-based fuzz of the REST receiver, generated from its own OpenAPI document.

Requests are built from the schemas the receiver serves at ``/api/openapi.json`` (valid-shaped
bodies, so that many reach the store), then mutated: fields replaced by arbitrary JSON, extra
fields, bodies that are not JSON, wrong content types, keys, methods and paths. Whatever comes
in, the answer is never a 5xx (a 503 is allowed only with its Retry-After, and does not happen
here), always the JSON error or success shape, and the receiver still answers afterwards.
"""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.ingest.test_rest_harness import (
    Client,
    Station,
    backend_params,
    backend_url,
    open_station,
)

# 500 in the suite; the full form (docs/reliability.md) sets VITALSTATION_FUZZ_EXAMPLES=5000.
EXAMPLES = int(os.environ.get("VITALSTATION_FUZZ_EXAMPLES", "500"))


@pytest.fixture(scope="module", params=backend_params())
def station_url(request, tmp_path_factory):
    yield from backend_url(request, tmp_path_factory)


@pytest.fixture(scope="module")
def station(station_url):
    opened = open_station(station_url)
    yield opened
    opened.close()


JSON_LEAVES = (
    st.none() | st.booleans() | st.integers(min_value=-(10**20), max_value=10**20)
    | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=12)
)
ANY_JSON = st.recursive(
    JSON_LEAVES,
    lambda children: st.lists(children, max_size=3)
    | st.dictionaries(st.text(max_size=8), children, max_size=3),
    max_leaves=4,
)
NOW = datetime.now(UTC)


def timestamps() -> st.SearchStrategy[str]:
    recent = st.datetimes(
        min_value=(NOW - timedelta(days=30)).replace(tzinfo=None),
        max_value=(NOW - timedelta(seconds=1)).replace(tzinfo=None),
    ).map(lambda d: d.isoformat() + "Z")
    anywhen = st.datetimes().map(lambda d: d.isoformat())
    return st.one_of(recent, recent, anywhen, st.text(max_size=40))


def from_schema(schema: dict[str, Any], document: dict[str, Any]) -> st.SearchStrategy[Any]:
    """Values shaped by an OpenAPI schema (the subset the receiver's document uses)."""
    if "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[-1]
        return from_schema(document["components"]["schemas"][name], document)
    kind = schema.get("type")
    strategy: st.SearchStrategy[Any]
    if kind == "object":
        props = schema.get("properties", {})
        required = [name for name in schema.get("required", []) if name in props]
        fields = {name: from_schema(sub, document) for name, sub in props.items()}
        optional = sorted(set(props) - set(required))

        @st.composite
        def some_fields(draw: st.DrawFn) -> dict[str, Any]:
            # The required fields and a few optional ones: drawing all twenty optional fields
            # every time would spend the run generating, not requesting.
            names = required + draw(st.lists(st.sampled_from(optional), max_size=4, unique=True))
            return {name: draw(fields[name]) for name in names}

        strategy = some_fields()
    elif kind == "array":
        strategy = st.lists(from_schema(schema["items"], document), max_size=6)
    elif kind == "string" and schema.get("format") == "date-time":
        strategy = timestamps()
    elif kind == "string":
        texts = st.text(max_size=schema.get("maxLength", 40) + 5)
        strategy = st.sampled_from([schema["example"]]) | texts if "example" in schema else texts
    elif kind in ("number", "integer"):
        low, high = schema.get("minimum", -1000), schema.get("maximum", 1000)
        strategy = (
            st.integers(min_value=int(low), max_value=int(high))
            | st.floats(min_value=low, max_value=high)
            | st.floats(allow_nan=False, allow_infinity=False)
        )
    elif kind == "boolean":
        strategy = st.booleans()
    else:
        strategy = ANY_JSON
    if schema.get("nullable"):
        strategy = strategy | st.none()
    return strategy


@st.composite
def mutated(draw: st.DrawFn, base: st.SearchStrategy[Any], device_id: str) -> Any:
    """A schema-shaped value, usually with the key's device, often with a field gone wrong."""
    value = draw(base)
    if isinstance(value, dict):
        if "device_id" in value and draw(st.integers(0, 9)) < 8:
            value["device_id"] = device_id
        if value and draw(st.booleans()):
            field = draw(st.sampled_from(sorted(value)))
            value[field] = draw(ANY_JSON)
        if draw(st.integers(0, 9)) == 0:
            value[draw(st.text(max_size=12))] = draw(ANY_JSON)
        for reading in value.get("readings", []) if isinstance(value.get("readings"), list) else []:
            if isinstance(reading, dict) and "device_id" in reading and draw(st.booleans()):
                reading["device_id"] = device_id
    return value


def encoded(draw: st.DrawFn, value: Any) -> bytes:
    how = draw(st.integers(0, 19))
    text = json.dumps(value, allow_nan=True)
    if how == 0:
        return draw(st.binary(max_size=200))
    if how == 1:
        return text.encode()[: draw(st.integers(0, len(text)))]
    if how == 2:
        return text.replace("1", "NaN", 1).encode()
    if how == 3:
        return ("\ufeff" + text).encode()
    return text.encode()


def test_no_request_gets_a_5xx_and_the_receiver_keeps_answering(station: Station) -> None:
    device = station.device()
    key = station.key(device).key
    read_only = station.key(device, can_write_vitals=False).key
    client: Client = station.client()
    document = client.get("/api/openapi.json").json
    operations = [
        (method.upper(), path, op)
        for path, item in document["paths"].items()
        for method, op in item.items()
    ]
    bodies = {
        (method, path): mutated(
            from_schema(op["requestBody"]["content"]["application/json"]["schema"], document),
            device,
        )
        for method, path, op in operations if "requestBody" in op
    }
    documented = {
        (method, path): {int(code) for code in op["responses"]}
        for method, path, op in operations
    }
    seen: dict[int, int] = {}

    @settings(
        max_examples=EXAMPLES, deadline=None, database=None, derandomize=False,
        suppress_health_check=list(HealthCheck),
    )
    @given(data=st.data())
    def fuzz(data: st.DataObject) -> None:
        method, path, _ = data.draw(st.sampled_from(operations), label="operation")
        send_method = method if data.draw(st.integers(0, 9)) else data.draw(
            st.sampled_from(["GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "HEAD"]))
        send_path = path if data.draw(st.integers(0, 14)) else data.draw(
            st.sampled_from([path.rstrip("/"), path + "x", "/", "/api/iot/", path + "?a=1"]))
        headers: dict[str, str] = {}
        auth = data.draw(st.integers(0, 9))
        if auth < 7:
            headers["Authorization"] = f"Bearer {key}"
        elif auth == 7:
            headers["Authorization"] = f"Bearer {read_only}"
        elif auth == 8:
            headers["Authorization"] = data.draw(st.sampled_from(
                ["Bearer ", "Basic abc", f"Bearer {key[:-1]}", "Bearer vs_", key]))
        body = None
        if (method, path) in bodies and send_method != "HEAD":
            value = data.draw(bodies[(method, path)], label="body")
            body = encoded(data.draw, value)
            kind = data.draw(st.integers(0, 19))
            headers["Content-Type"] = (
                "application/json" if kind < 17
                else data.draw(st.sampled_from(["text/plain", "application/json; charset=latin-1",
                                                "application/xml"]))
            )
        reply = client.request(send_method, send_path, body, headers=headers, content_type=None)
        seen[reply.status] = seen.get(reply.status, 0) + 1
        assert reply.status < 500, (send_method, send_path, reply.status, reply.body[:300])
        if send_method == "HEAD":
            return
        answer = reply.json
        assert isinstance(answer, dict)
        if path == "/api/openapi.json" and reply.status == 200:
            return
        assert answer["success"] is (reply.status == 200), answer
        if reply.status != 200:
            assert isinstance(answer["error"], str) and answer["error"]
        if send_method == method and send_path == path:
            assert reply.status in documented[(method, path)] | {400, 411}, (
                reply.status, answer)
        if reply.status == 200 and path == "/api/iot/vitals/":
            assert isinstance(answer["vital_sign_id"], int)

    fuzz()
    assert sum(seen.values()) >= EXAMPLES
    assert seen.get(200, 0) > 20, seen  # valid readings reached the store, not only refusals
    assert client.get("/api/iot/status/", key=key).status == 200
