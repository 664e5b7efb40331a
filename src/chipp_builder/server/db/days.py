"""The UTC calendar day of a stored timestamp, computed in SQL the same way on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import date
from typing import Any

from sqlalchemy import Date, cast, func


def utc_day(column: Any, dialect: str) -> Any:
    """The UTC calendar day of a timestamp column, on either backend."""
    if dialect == "sqlite":
        return func.substr(column, 1, 10)  # stored as 'YYYY-MM-DD HH:MM:SS.ffffff' in UTC
    return cast(func.timezone("UTC", column), Date)


def as_date(value: Any) -> date:
    """A day read from either backend (SQLite returns the text of a computed day)."""
    return value if isinstance(value, date) else date.fromisoformat(str(value))
