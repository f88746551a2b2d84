"""The OpenAPI-driven fuzz of ``tests/ingest/test_rest_fuzz.py``, against ``vitalstation serve``.

Same strategies (requests shaped by the document the station serves, then mutated), but sent
to a separate station process, so that "no crash" means the process is still there and
"memory bounded" is its resident set size, read from ``/proc``: after a warm-up, the cases
must not make it grow by more than ``RSS_GROWTH_MB``. ``VITALSTATION_FUZZ_EXAMPLES`` sets the
number of cases (CI: 200; the full form in docs/reliability.md: 5,000).
"""

from __future__ import annotations

import http.client
import json
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.faults.harness import FULL, StationProcess, inhealth_payload, make_home
from tests.ingest.test_rest_fuzz import encoded, from_schema, mutated
from tests.simulator.conftest import free_port

EXAMPLES = int(os.environ.get("VITALSTATION_FUZZ_EXAMPLES", "5000" if FULL else "200"))
RSS_GROWTH_MB = 40.0
pytestmark = pytest.mark.timeout(900 if EXAMPLES > 1000 else 90)


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


def test_fuzzed_requests_never_get_a_5xx_nor_crash_nor_grow_the_station(tmp_path: Path) -> None:
    home = make_home(tmp_path / "home", "[mqtt]\nenabled = false\n", rest_port=free_port(),
                     beds=1)
    device = home.devices[0]
    key = home.keys[device]
    station = StationProcess(home)
    station.start()
    conn = http.client.HTTPConnection("127.0.0.1", home.rest_port, timeout=10)
    seen: dict[int, int] = {}
    rss: list[float] = []

    def request(method: str, path: str, body: bytes | None,
                headers: dict[str, str]) -> tuple[int, bytes]:
        nonlocal conn
        try:
            conn.request(method, path, body=body, headers=headers)
            response = conn.getresponse()
            data = response.read()
        except (OSError, http.client.HTTPException):
            conn.close()  # the server closed a connection it had answered with "close"
            conn = http.client.HTTPConnection("127.0.0.1", home.rest_port, timeout=10)
            conn.request(method, path, body=body, headers=headers)
            response = conn.getresponse()
            data = response.read()
        if (response.getheader("Connection") or "").lower() == "close":
            conn.close()
            conn = http.client.HTTPConnection("127.0.0.1", home.rest_port, timeout=10)
        return response.status, data

    try:
        status, data = request("GET", "/api/openapi.json", None, {})
        assert status == 200
        document = json.loads(data)
        operations = [(method.upper(), path, op) for path, item in document["paths"].items()
                      for method, op in item.items()]
        bodies = {
            (method, path): mutated(from_schema(
                op["requestBody"]["content"]["application/json"]["schema"], document), device)
            for method, path, op in operations if "requestBody" in op
        }

        @settings(max_examples=EXAMPLES, deadline=None, database=None,
                  suppress_health_check=list(HealthCheck))
        @given(data=st.data())
        def fuzz(data: st.DataObject) -> None:
            method, path, _ = data.draw(st.sampled_from(operations), label="operation")
            headers = {"Authorization": f"Bearer {key}"} if data.draw(st.integers(0, 9)) else {}
            body = None
            if (method, path) in bodies:
                body = encoded(data.draw, data.draw(bodies[(method, path)], label="body"))
                headers["Content-Type"] = "application/json"
            status, answer = request(method, path, body, headers)
            seen[status] = seen.get(status, 0) + 1
            assert status < 500, (method, path, status, answer[:300])
            total = sum(seen.values())
            if total in (EXAMPLES // 5, EXAMPLES):
                rss.append(rss_mb(station.process.pid))
            assert station.process is not None and station.process.poll() is None

        fuzz()
        if len(rss) < 2:
            rss.append(rss_mb(station.process.pid))
        after = (device, datetime.now(UTC).replace(microsecond=0) - timedelta(seconds=1))
        status, _ = request("POST", "/api/iot/vitals/", inhealth_payload(after), {
            "Authorization": f"Bearer {key}", "Content-Type": "application/json"})
        station.stop()
    finally:
        conn.close()
        station.close()
    growth = rss[-1] - rss[0]
    print(f"fuzz x{sum(seen.values())} against serve: answers {dict(sorted(seen.items()))}; "
          f"RSS {rss[0]:.1f} MB after the warm-up, {rss[-1]:.1f} MB at the end")
    assert status == 200  # still storing readings after the fuzz
    assert sum(seen.values()) >= EXAMPLES
    assert seen.get(200, 0) >= min(20, EXAMPLES // 20), seen  # valid readings were stored too
    assert growth < RSS_GROWTH_MB, f"the station grew by {growth:.1f} MB over the fuzz"
