"""The benchmarked requests: each endpoint alone, the realistic mix, and Datasette's nearest equivalents."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from urllib.parse import quote

from .data import Dataset

DEEP_ROWS = 10_000  # how deep the deep cursor page and the deep feedback offset are
SEARCH = "refund"  # session titles: about 3% of them contain it
CONSUMER_SEARCH = "mar"  # consumers: a 3-character substring of names and emails
FILTER_SOURCE = "EMAIL"  # about 6% of sessions
SWEEP = (1, 16, 64)  # concurrency of the full sweep
# The realistic mix: what a dashboard or an export script asks for, weighted.
MIX_WEIGHTS = {
    "sessions_first": 30, "sessions_filtered": 8, "sessions_search": 8, "sessions_deep": 6,
    "messages_long": 25, "feedback_first": 5, "feedback_deep": 2, "consumers_first": 3, "consumers_search": 3,
    "memories_first": 2, "analytics_usage": 4, "token_usage": 4,
}


@dataclass
class Targets:
    """Request targets found in the data: the longest session, the deep cursor, the deep offset."""

    long_session: str
    deep_cursor: str
    deep_rows: int
    feedback_offset: int


@dataclass
class Case:
    """One benchmarked request (or, for the mix, a weighted list of requests) and its concurrencies."""

    name: str
    title: str
    path: str | None  # None for the mix
    conns: tuple[int, ...] = (1, 16)
    mix: list[str] = field(default_factory=list)  # the mix's case names, in request order
    workers_too: bool = False  # also run with two workers


def api_prefix(app_id: str) -> str:
    """The path prefix of one app's API."""
    return f"/api/v1/apps/{app_id}"


def build_cases(dataset: Dataset, targets: Targets) -> list[Case]:
    """Every case of the run, for this dataset's app and targets (the mix last)."""
    p = api_prefix(dataset.app_id)
    cases = [
        Case("sessions_first", "sessions, first page (limit=25)", f"{p}/sessions?limit=25", SWEEP, workers_too=True),
        Case("sessions_deep", f"sessions, cursor page {targets.deep_rows:,} rows deep",
             f"{p}/sessions?limit=25&cursor={quote(targets.deep_cursor)}"),
        Case("sessions_filtered", f"sessions, source={FILTER_SOURCE}",
             f"{p}/sessions?limit=25&source={FILTER_SOURCE}"),
        Case("sessions_search", f"sessions, search={SEARCH}", f"{p}/sessions?limit=25&search={SEARCH}"),
        Case("messages_long", "messages of the longest session, include=tool_details",
             f"{p}/sessions/{targets.long_session}/messages?limit=100&include=tool_details"),
        Case("feedback_first", "feedback, offset 0 (exact total)", f"{p}/feedback?limit=25"),
        Case("feedback_deep", f"feedback, offset {targets.feedback_offset:,}",
             f"{p}/feedback?limit=25&offset={targets.feedback_offset}"),
        Case("consumers_first", "consumers, offset 0 (exact total)", f"{p}/consumers?limit=25"),
        Case("consumers_search", f"consumers, search={CONSUMER_SEARCH}",
             f"{p}/consumers?limit=25&search={CONSUMER_SEARCH}"),
        Case("memories_first", "memories, offset 0 (exact total)", f"{p}/memories?limit=25"),
        Case("analytics_usage", "analytics usage, all time by day", f"{p}/analytics/usage?group_by=day"),
        Case("token_usage", "token usage, all time by day", f"{p}/analytics/token-usage"),
    ]
    order = [name for name, weight in MIX_WEIGHTS.items() for _ in range(weight)]
    random.Random(7).shuffle(order)
    cases.append(Case("mix", "realistic mix (weights in docs/benchmarks.md)", None, SWEEP, mix=order,
                      workers_too=True))
    return cases


def datasette_cases(dataset: Dataset) -> list[Case]:
    """Datasette's nearest equivalents of the sessions list: table JSON of the app's sessions."""
    db = dataset.size
    app_hex = dataset.app_id.replace("-", "")  # SQLAlchemy's Uuid is stored as 32 hex digits on SQLite
    base = f"/{db}/session.json?app_id={app_hex}&_sort_desc=started_at&_size=25"
    fast = "&_nocount=1&_nofacet=1&_nosuggest=1"
    return [
        Case("sessions_first", "sessions, first page", base + fast, (1, 16, 64)),
        Case("sessions_filtered", f"sessions, source={FILTER_SOURCE}", base + f"&source={FILTER_SOURCE}" + fast,
             (16,)),
        Case("sessions_first_counting", "sessions, first page, default counting and facets", base, (16,)),
    ]
