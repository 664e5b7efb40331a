"""Wakes the long polls of GET /events in this process when a transaction that moved an app's feed commits;
writes from other processes are seen by the polls' periodic re-read of the feed's head."""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Iterable
from uuid import UUID

from sqlalchemy import Engine
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

# connection.info key: the apps whose feed the open transaction moved (set by writes/events.py)
MOVED_FEEDS = "chipp_moved_feeds"


class FeedSignal:
    """One asyncio.Event per app with waiters, set and dropped when the app's feed moves."""

    def __init__(self) -> None:
        self._waiting: dict[UUID, asyncio.Event] = {}

    def notify(self, app_ids: Iterable[UUID]) -> None:
        """The apps' feeds moved: wake everyone waiting on them."""
        for app_id in app_ids:
            waiting = self._waiting.pop(app_id, None)
            if waiting is not None:
                waiting.set()

    async def wait(self, app_id: UUID, timeout: float) -> None:
        """Return when the app's feed moves in this process, or after `timeout` seconds."""
        waiting = self._waiting.setdefault(app_id, asyncio.Event())
        try:
            await asyncio.wait_for(waiting.wait(), timeout)
        except TimeoutError:
            pass


_signals: weakref.WeakKeyDictionary[Engine, FeedSignal] = weakref.WeakKeyDictionary()


def signal_of(engine: AsyncEngine | Engine) -> FeedSignal:
    """The signal of the database behind this engine, in this process."""
    sync = engine.sync_engine if isinstance(engine, AsyncEngine) else engine
    return _signals.setdefault(sync, FeedSignal())


def take_moved(db: AsyncConnection) -> set[UUID]:
    """The apps whose feed this transaction moved, forgotten from the connection (read before the commit)."""
    moved: set[UUID] = db.info.pop(MOVED_FEEDS, set())
    return moved


def notify_committed(db: AsyncConnection, moved: set[UUID]) -> None:
    """After a commit: wake the long polls of the apps it moved."""
    if moved:
        signal_of(db.engine).notify(moved)
