"""Alembic environment: runs migrations over our async engine, on SQLite or PostgreSQL."""

from __future__ import annotations

import asyncio

from alembic import context
from sqlalchemy.engine import Connection

from chipp_builder.server.db.engine import make_engine
from chipp_builder.server.db.tables import metadata

config = context.config


def _include(obj: object, name: str | None, type_: str, reflected: bool, compare_to: object) -> bool:
    # PostgreSQL-only indexes made by hand in migrations (trigram search) are not in the MetaData.
    return not (type_ == "index" and name is not None and name.endswith("_trgm"))


def _run(connection: Connection) -> None:
    sqlite = connection.dialect.name == "sqlite"
    if sqlite:
        # SQLite alters a table by copying it and dropping the old one; with foreign keys on (our engine turns
        # them on), that DROP would cascade: every session's consumer_id SET NULL when consumer is copied.
        # The pragma only takes effect outside a transaction, so it comes before the migrations' own.
        connection.exec_driver_sql("PRAGMA foreign_keys=OFF")
    context.configure(
        connection=connection,
        target_metadata=metadata,
        include_object=_include,
        render_as_batch=sqlite,  # SQLite alters tables by copying them
        compare_type=True,
    )
    try:
        with context.begin_transaction():
            context.run_migrations()
    finally:
        if sqlite:
            connection.exec_driver_sql("PRAGMA foreign_keys=ON")


async def _run_async(database_url: str) -> None:
    engine = make_engine(database_url)
    try:
        async with engine.connect() as connection:
            await connection.run_sync(_run)
            await connection.commit()
    finally:
        await engine.dispose()


def _main() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    asyncio.run(_run_async(config.attributes["database_url"]))


_main()
