"""Consumers' writes: the one place consumers are matched and created (conversations/log, POST /consumers/auth)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any
from uuid import UUID

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from chipp_builder.errors import NotFound
from chipp_builder.server.db.counters import add_counts
from chipp_builder.server.db.tables import consumer
from chipp_builder.server.db.writelock import advisory_lock
from chipp_builder.server.writes.dependents import rows_showing
from chipp_builder.server.writes.events import CREATED, UPDATED, Change, record

CONSUMER_COLUMNS = (
    consumer.c.id, consumer.c.identifier, consumer.c.email, consumer.c.name, consumer.c.picture_url,
    consumer.c.email_verified, consumer.c.credits, consumer.c.subscription_active, consumer.c.mode,
    consumer.c.is_anonymous, consumer.c.created_at, consumer.c.updated_at,
)


async def authenticate_consumer(
    db: AsyncConnection,
    app_id: UUID,
    now: datetime,
    *,
    email: str | None,
    identifier: str | None,
    name: str | None,
    picture_url: str | None,
) -> tuple[dict[str, Any], bool]:
    """POST /consumers/auth's write: find or create the consumer and record its events."""
    feed: list[Change] = []
    found, created = await find_or_create_consumer(
        db, app_id, now, email=email, identifier=identifier, name=name, picture_url=picture_url, feed=feed
    )
    await record(db, app_id, feed)
    return found, created


async def consumer_exists(db: AsyncConnection, app_id: UUID, consumer_id: UUID) -> bool:
    """Whether the consumer is this app's, read in the caller's write transaction (not through the reader)."""
    query = select(consumer.c.id).where(consumer.c.id == consumer_id, consumer.c.app_id == app_id)
    return (await db.execute(query)).first() is not None


def search_folded(name: str | None, email: str | None, identifier: str | None) -> str:
    """The consumer's searchable text: casefold() of name, email and identifier, joined by \\x1f."""
    return "\x1f".join((value or "").casefold() for value in (name, email, identifier))


def _is_anonymous_identifier(identifier: str | None) -> bool:
    return identifier is None or identifier.startswith("anon_")


async def _consumer_where(db: AsyncConnection, app_id: UUID, condition: Any) -> dict[str, Any] | None:
    # The oldest match, so that the answer is the same every time when an import left duplicates.
    query = (
        select(*CONSUMER_COLUMNS)
        .where(consumer.c.app_id == app_id, condition)
        .order_by(consumer.c.created_at, consumer.c.id)
        .limit(1)
    )
    row = (await db.execute(query)).mappings().first()
    return None if row is None else dict(row)


async def find_or_create_consumer(
    db: AsyncConnection,
    app_id: UUID,
    now: datetime,
    *,
    consumer_id: UUID | None = None,
    email: str | None = None,
    identifier: str | None = None,
    name: str | None = None,
    picture_url: str | None = None,
    feed: list[Change],
) -> tuple[dict[str, Any], bool]:
    """The app's consumer matched by id, then email, then identifier, else a new one; and whether it is new.

    The one place consumers are matched and created (conversations/log and consumers/auth both call it).
    An id that is not this app's consumer is a 404. A match takes the details given: a new name or
    picture, an email when it had none, and an anonymous consumer becomes identified by a real identifier
    or email. A new consumer's identifier is the one given, else its email, else `anon_…`. The changes'
    events are added to `feed` (the caller records them with the rest of its transaction's).
    """
    found: dict[str, Any] | None
    if consumer_id is not None:
        found = await _consumer_where(db, app_id, consumer.c.id == consumer_id)
        if found is None:
            raise NotFound("Consumer not found")
    else:
        # Two requests for the same new person must not create two consumers; there is no row to lock yet.
        names = [f"consumer:{app_id}:email:{email}"] if email else []
        if identifier or email:
            names.append(f"consumer:{app_id}:identifier:{identifier or email}")
        await advisory_lock(db, *names)
        found = None
        if email is not None:
            found = await _consumer_where(db, app_id, consumer.c.email == email)
        if found is None and identifier is not None:
            found = await _consumer_where(db, app_id, consumer.c.identifier == identifier)
    if found is None:
        new_identifier = identifier or email or f"anon_{uuid.uuid4().hex}"
        created: dict[str, Any] = {
            "id": uuid.uuid4(),
            "identifier": new_identifier,
            "email": email,
            "name": name,
            "picture_url": picture_url,
            "email_verified": False,
            "credits": 0,
            "subscription_active": False,
            "mode": "default",
            "is_anonymous": email is None and _is_anonymous_identifier(identifier),
            "created_at": now,
            "updated_at": now,
        }
        await db.execute(
            consumer.insert().values(
                app_id=app_id,
                search_folded=search_folded(name, email, new_identifier),
                **created,
            )
        )
        await add_counts(db, app_id, consumers=1)  # the unfiltered list's total, in this transaction
        feed.append(Change("consumer", CREATED, str(created["id"])))
        return created, True
    changes: dict[str, Any] = {}
    if name is not None and name != found["name"]:
        changes["name"] = name
    if picture_url is not None and picture_url != found["picture_url"]:
        changes["picture_url"] = picture_url
    if email is not None and found["email"] is None:
        changes["email"] = email
    real_identifier = identifier if not _is_anonymous_identifier(identifier) else None
    if found["is_anonymous"] and (real_identifier or email):
        changes["is_anonymous"] = False
        changes["identifier"] = real_identifier or email
    if changes:
        merged = {**found, **changes, "updated_at": now}
        changed_summary = "name" in changes or "email" in changes
        changes["updated_at"] = now
        changes["search_folded"] = search_folded(merged["name"], merged["email"], merged["identifier"])
        await db.execute(update(consumer).where(consumer.c.id == found["id"]).values(**changes))
        found = merged
        feed.append(Change("consumer", UPDATED, str(found["id"])))
        if changed_summary:  # a session shows its consumer's name and email
            feed.extend(await rows_showing(db, app_id, "consumer", [found["id"]]))
    return found, False
