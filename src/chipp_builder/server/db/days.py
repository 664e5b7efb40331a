"""The UTC calendar day of a stored timestamp, computed in SQL the same way on SQLite and PostgreSQL."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Date, cast, func


def utc_day(column: Any, dialect: str) -> Any:
    """The UTC calendar day of a timestamp column, on either backend, typed Date so that either read road
    gives a `date` (SQLite's text day is converted like a Date column's)."""
    if dialect == "sqlite":
        return func.substr(column, 1, 10, type_=Date)  # stored as 'YYYY-MM-DD HH:MM:SS.ffffff' in UTC
    return cast(func.timezone("UTC", column), Date)
