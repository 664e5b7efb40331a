"""The export's time estimate: the requests it expects (from the session count analytics gives), and the time
they take at the pace so far and under the rate limit its X-RateLimit-* headers state."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest
from rich.progress import Task, TaskID

from chipp_builder.cli.export import Pace, TimeLeftColumn
from chipp_builder.client import Client
from chipp_builder.export import runner

APP_ID = str(uuid.uuid4())
KEY = "chipp_" + "e" * 32


def _client(status: int, sessions: int, seen: list[httpx.Request]) -> Client:
    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if status != 200:
            return httpx.Response(status, json={"error": {"code": "forbidden", "message": "no analytics"}})
        return httpx.Response(200, json={"data": {"summary": {"total_sessions": sessions, "unique_consumers": 1,
                                                              "total_messages": 0}, "timeseries": []}})

    return Client("http://api.test", KEY, APP_ID, transport=httpx.MockTransport(handler), max_retries=0)


@pytest.mark.parametrize(("resource", "filters", "expected"), [
    ("messages", {}, 250 + 3),  # one request per session, plus the sessions pages
    ("messages", {"started_after": "2025-01-01", "role": "user"}, 253),
    ("sessions", {}, 3),
    ("all", {}, 250 + 2 * 3 + 5),
    ("tags", {}, 1),
    ("consumers", {}, None),  # an offset list: its first page gives the total
    ("messages", {"source": "WIDGET"}, None),  # analytics cannot count sessions of one source
])
def test_expected_requests(resource: str, filters: dict[str, Any], expected: int | None) -> None:
    seen: list[httpx.Request] = []
    fetch = runner.Fetcher()
    assert runner.expected_requests(_client(200, 250, seen), fetch, resource, filters, 100) == expected
    if expected is not None and resource != "tags":
        assert seen[0].url.path.endswith("/analytics/usage")
        assert seen[0].url.params.get("started_after") == filters.get("started_after")
        assert fetch.requests == 1


def test_no_estimate_without_analytics_access() -> None:
    assert runner.expected_requests(_client(403, 250, []), runner.Fetcher(), "messages", {}, 100) is None


def test_pace_reads_the_rate_limit_headers_and_ignores_a_429() -> None:
    pace = Pace()
    pace.observe(httpx.Response(200, headers={"X-RateLimit-Limit": "120", "X-RateLimit-Remaining": "7",
                                              "X-RateLimit-Reset": "1700000060"}))
    pace.observe(httpx.Response(429, headers={"Retry-After": "30"}))
    assert (pace.limit, pace.remaining, pace.reset_at) == (120, 7, 1700000060.0)


def test_seconds_left_at_the_pace_so_far_and_under_the_limit() -> None:
    pace = Pace()
    assert pace.seconds_left(100, 0, 0.0, 0.0) is None  # no pace yet
    assert pace.seconds_left(100, 50, 10.0, 0.0) == pytest.approx(20.0)  # 5 requests a second
    # The demo's messages export: 120 requests went in 3 s, the window is used up and resets in 57 s, and
    # 82 more are needed: they wait for the next window.
    pace.limit, pace.remaining, pace.reset_at = 120, 0, 1057.0
    assert pace.seconds_left(82, 120, 3.0, 1000.0) == pytest.approx(57.0)
    # 10,000 sessions: 10,100 requests at 120 a minute is about 84 more minutes.
    assert pace.seconds_left(10_100 - 120, 120, 3.0, 1000.0) == pytest.approx(57 + 83 * 60)
    pace.remaining = 100  # enough left in this window: the pace so far decides
    assert pace.seconds_left(82, 120, 3.0, 1000.0) == pytest.approx(82 * 3 / 120)


def test_the_column_shows_the_time_left() -> None:
    pace, fetch = Pace(expected=300), runner.Fetcher()
    column = TimeLeftColumn(pace, fetch, page_size=100)
    task = Task(TaskID(0), "Exporting messages", None, 0, _get_time=lambda: 160.0)
    assert column.render(task).plain == "-:--:-- left"
    task.start_time, fetch.requests = 100.0, 100  # 100 requests in 60 s, 200 to go
    assert column.render(task).plain == "~0:02:00 left"
    offset_task = Task(TaskID(1), "Exporting consumers", 1_000, 400, _get_time=lambda: 160.0)
    offset_task.start_time, fetch.requests = 100.0, 4
    column = TimeLeftColumn(Pace(), fetch, page_size=100)  # 6 pages left, at 15 s a page
    assert column.render(offset_task).plain == "~0:01:30 left"
