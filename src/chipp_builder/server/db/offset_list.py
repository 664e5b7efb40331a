"""OffsetList: an offset list read through the reader, its page and count statements compiled per combination of
filters, its unfiltered total read from the app's row counter (db/counters.py)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy import and_, bindparam, func, select

from chipp_builder.server.db.counters import read_counter
from chipp_builder.server.db.fastread import Reader, ReadQuery


class OffsetList:
    """An offset list read through the reader (db/fastread.py): a page and a count query compiled once per
    combination of filters, and the exact unfiltered total read from the app's row counter.

    `filters` maps each filter's name to a function building its condition with bindparams (named after the
    filter, or after the values the caller passes); a filter applies when the caller passes it a value other
    than None.
    """

    def __init__(
        self,
        table: Any,
        columns: Sequence[Any],
        order_by: Sequence[Any],
        filters: dict[str, Callable[[], Any]],
        counter: str,
        select_from: Any = None,
    ) -> None:
        self.table, self.columns, self.order_by = table, tuple(columns), tuple(order_by)
        self.filters, self.counter, self.select_from = filters, counter, select_from
        self._statements: dict[tuple[str, ...], tuple[ReadQuery, ReadQuery]] = {}

    def statements(self, active: tuple[str, ...]) -> tuple[ReadQuery, ReadQuery]:
        """The page and count statements for these filters."""
        found = self._statements.get(active)
        if found is None:
            conditions = [self.table.c.app_id == bindparam("app_id"), *(self.filters[name]() for name in active)]
            if self.select_from is None:
                page = (
                    select(*self.columns).where(*conditions).order_by(*self.order_by)
                    .limit(bindparam("limit")).offset(bindparam("offset"))
                )
            else:
                # A joined list skips its OFFSET rows on the table's own index, then joins only the page's rows:
                # joining every skipped row cost 25 ms at offset 10,000 of a million-row feedback list.
                keys = (
                    select(self.table.c.app_id, self.table.c.id).where(*conditions).order_by(*self.order_by)
                    .limit(bindparam("limit")).offset(bindparam("offset")).subquery("page_keys")
                )
                on_page = and_(self.table.c.app_id == keys.c.app_id, self.table.c.id == keys.c.id)
                page = select(*self.columns).select_from(self.select_from.join(keys, on_page)).order_by(*self.order_by)
            count = select(func.count().label("total")).select_from(self.table).where(*conditions)
            found = self._statements[active] = (ReadQuery(page), ReadQuery(count))
        return found

    async def fetch(
        self, reader: Reader, app_id: Any, limit: int, offset: int, **values: Any
    ) -> tuple[list[dict[str, Any]], int]:
        """One page of rows as wire-value dicts, and the exact total of the filtered set."""
        active = tuple(name for name in self.filters if values.get(name) is not None)
        page, count = self.statements(active)
        if active:
            total = int((await reader.fetch(count, app_id=app_id, **values))[0]["total"])
        else:
            total = await read_counter(reader, app_id, self.counter)
        if offset >= total:
            return [], total
        return await reader.fetch(page, app_id=app_id, limit=limit, offset=offset, **values), total
