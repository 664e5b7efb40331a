"""The import's staging database: validated records spooled to a temporary SQLite file, where duplicates are
found and references resolved in SQL, so an import's memory is bounded by its chunk sizes, not by its file."""

from __future__ import annotations

import sqlite3
import tempfile
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any
from uuid import UUID

import orjson
from sqlalchemy import DateTime, Uuid

from chipp_builder.errors import InsufficientStorage
from chipp_builder.server.db.engine import is_disk_full
from chipp_builder.server.db.tables import UTCDateTime, metadata
from chipp_builder.server.ingest.records import RECORD_TYPES, REFERENCES, LineError, Record, parse_line
from chipp_builder.server.writes.events import Change
from chipp_builder.server.writes.imports import WRITE_ORDER

BATCH = 2000  # lines parsed between two inserts into the staging database

# One column per record type that others refer to (a record refers to each type at most once, see REFERENCES).
_SCHEMA = """
CREATE TABLE record (
    line INTEGER PRIMARY KEY, kind TEXT NOT NULL, key TEXT NOT NULL,
    consumer_ref TEXT, session_ref TEXT, tag_ref TEXT, message_ref TEXT,
    UNIQUE (kind, key)
);
CREATE TABLE payload (line INTEGER PRIMARY KEY, row BLOB NOT NULL);
CREATE TABLE error (line INTEGER PRIMARY KEY, reason TEXT NOT NULL);
CREATE TABLE dropped (kind TEXT, key TEXT, line INTEGER NOT NULL, PRIMARY KEY (kind, key)) WITHOUT ROWID;
CREATE TABLE existing (kind TEXT, id TEXT, owner TEXT NOT NULL, in_app INTEGER NOT NULL, PRIMARY KEY (kind, id))
    WITHOUT ROWID;
CREATE TABLE touched_consumer (id TEXT PRIMARY KEY) WITHOUT ROWID;
CREATE TABLE session_consumer (id TEXT PRIMARY KEY, consumer TEXT) WITHOUT ROWID;
CREATE TABLE rejected (line INTEGER PRIMARY KEY, kind TEXT NOT NULL, key TEXT NOT NULL, reason TEXT NOT NULL);
CREATE TABLE change (
    seq INTEGER PRIMARY KEY, kind TEXT NOT NULL, id TEXT NOT NULL, action TEXT NOT NULL, session TEXT,
    UNIQUE (kind, id)
);
"""
# One change per object (its first-noted place in the order kept): created stays created, else the latest wins.
_NOTE_CHANGE = """
INSERT INTO change (kind, id, action, session) VALUES (?, ?, ?, ?)
ON CONFLICT (kind, id) DO UPDATE SET
    action = CASE WHEN change.action = 'created' THEN 'created' ELSE excluded.action END,
    session = coalesce(excluded.session, change.session)
"""
_TARGETS = ("consumer", "session", "tag", "message")


def _converters(kind: str) -> list[tuple[str, Callable[[Any], Any]]]:
    """The columns of a record type's row that JSON holds as strings, with what turns them back."""
    found: list[tuple[str, Callable[[Any], Any]]] = []
    for column in metadata.tables[kind].c:
        if isinstance(column.type, Uuid):
            found.append((column.name, UUID))
        elif isinstance(column.type, DateTime | UTCDateTime):
            found.append((column.name, datetime.fromisoformat))
    return found


# Rows are stored as orjson, several times faster than pickle for UUIDs and datetimes; these restore the types.
_CONVERTERS = {kind: _converters(kind) for kind in RECORD_TYPES}


def _decode(kind: str, blob: bytes) -> dict[str, Any]:
    row: dict[str, Any] = orjson.loads(blob)
    for name, convert in _CONVERTERS[kind]:
        value = row.get(name)
        if value is not None:
            row[name] = convert(value)
    return row


def _key_text(record: Record) -> str:
    if record.kind == "message_tag":
        # Ids hold no control characters (records.py), so the separator cannot occur in either part.
        return f"{record.row['message_id']}\x1f{record.row['tag_id']}"
    return str(record.key)


def _show(key: Any) -> str:
    if isinstance(key, tuple):
        return "(" + ", ".join(str(part) for part in key) + ")"
    return str(key)


def _found(target: str) -> str:
    """SQL: the record r's reference to `target` is empty, a good record of the file, or a row of the app."""
    ref = f"r.{target}_ref"
    return (
        f"({ref} IS NULL"
        f" OR EXISTS (SELECT 1 FROM record t WHERE t.kind = '{target}' AND t.key = {ref})"
        f" OR EXISTS (SELECT 1 FROM existing e WHERE e.kind = '{target}' AND e.id = {ref} AND e.in_app))"
    )


def _why(target: str, field_name: str) -> str:
    """SQL: why the reference to `target` does not resolve, naming the bad line that had the id if any."""
    ref = f"r.{target}_ref"
    return (
        f"'{field_name} ' || {ref} || coalesce(' refers to the invalid line ' || "
        f"(SELECT d.line FROM dropped d WHERE d.kind = '{target}' AND d.key = {ref}), "
        "' does not exist in the file or the app')"
    )


def _reference_check(kind: str) -> str:
    """SQL: the records of `kind` with a reference that does not resolve, each with its first bad one's reason."""
    references = REFERENCES[kind]
    cases = " ".join(f"WHEN NOT {_found(target)} THEN {_why(target, name)}" for target, name in references)
    every = " AND ".join(_found(target) for target, _ in references)
    return (
        f"SELECT line, kind, key, '{kind}: ' || CASE {cases} END"
        f" FROM record r WHERE kind = '{kind}' AND NOT ({every})"
    )


_TAKEN = """
SELECT r.line, r.kind, r.key, r.kind || ': id ' || r.key || ' is not available: it belongs to another app'
FROM record r JOIN existing e ON e.kind = r.kind AND e.id = r.key
WHERE r.kind IN ('consumer', 'session', 'tag') AND NOT e.in_app
"""
# The session a feedback's message will be in after the import: the file's line wins over the stored row.
_WRONG_SESSION = """
SELECT line, kind, key, 'feedback: message ' || r.message_ref || ' is not in session ' || r.session_ref
FROM record r WHERE kind = 'feedback' AND coalesce(
    (SELECT t.session_ref FROM record t WHERE t.kind = 'message' AND t.key = r.message_ref),
    (SELECT e.owner FROM existing e WHERE e.kind = 'message' AND e.id = r.message_ref)
) IS NOT r.session_ref
"""
# A feedback line without a consumer_id is the rating of its session's consumer (none when the session has
# none): the file's session line wins over the stored session (the import replaces it). Run after the
# reference checks, so the session exists.
_SESSION_RATER = """
UPDATE record SET consumer_ref = CASE
    WHEN EXISTS (SELECT 1 FROM record s WHERE s.kind = 'session' AND s.key = record.session_ref)
    THEN (SELECT s.consumer_ref FROM record s WHERE s.kind = 'session' AND s.key = record.session_ref)
    ELSE (SELECT c.consumer FROM session_consumer c WHERE c.id = record.session_ref)
END
WHERE kind = 'feedback' AND consumer_ref IS NULL
"""
# Sessions whose derived counts the import changes: written ones, those of written messages, and those that
# written messages leave.
_TOUCHED_SESSIONS = """
SELECT key FROM record WHERE kind = 'session'
UNION SELECT session_ref FROM record WHERE kind = 'message'
UNION SELECT e.owner FROM record r JOIN existing e ON e.kind = 'message' AND e.id = r.key WHERE r.kind = 'message'
"""

_TOUCHED_CONSUMERS = """
SELECT id FROM touched_consumer
UNION SELECT consumer_ref FROM record WHERE kind = 'session' AND consumer_ref IS NOT NULL
ORDER BY 1
"""


class Staging:
    """One import's staging database: parsed lines go in, chunks of resolved rows come out."""

    def __init__(self, path: Path) -> None:
        self.db = sqlite3.connect(path, isolation_level=None)
        # A scratch file that nobody else opens and that is deleted afterwards: no journal, no fsync.
        self.db.executescript(
            "PRAGMA journal_mode = OFF; PRAGMA synchronous = OFF; PRAGMA locking_mode = EXCLUSIVE;"
            "PRAGMA cache_size = -16384;" + _SCHEMA
        )
        self.lines = 0
        self._parsed: list[Record] = []
        self._bad: list[tuple[int, LineError]] = []

    def close(self) -> None:
        """Close the database file."""
        self.db.close()

    def add(self, line_no: int, text: str | bytes) -> None:
        """Parse one line; the records and errors of a batch of lines go to the database together."""
        self.lines = line_no
        if not text.strip():
            return  # a blank line (often the last one) holds no record
        try:
            record = parse_line(text)
        except LineError as exc:
            self._bad.append((line_no, exc))
        else:
            record.line = line_no
            self._parsed.append(record)
        if len(self._parsed) + len(self._bad) >= BATCH:
            self.flush()

    def flush(self) -> None:
        """Store the lines parsed since the last flush; a record whose id an earlier line has is a bad line."""
        parsed, bad = self._parsed, self._bad
        self._parsed, self._bad = [], []
        self.db.executemany("INSERT INTO error VALUES (?, ?)", ((line, str(exc)) for line, exc in bad))
        # Ids of bad records, with their first line, so that a reference to one can say where to look.
        self.db.executemany(
            "INSERT OR IGNORE INTO dropped VALUES (?, ?, ?)",
            ((exc.kind, str(exc.key), line) for line, exc in bad if exc.kind is not None and exc.key is not None),
        )
        keys = [_key_text(record) for record in parsed]
        inserted = self.db.executemany(
            "INSERT OR IGNORE INTO record VALUES (?, ?, ?, ?, ?, ?, ?)",
            (
                (record.line, record.kind, key, *_refs(record))
                for record, key in zip(parsed, keys, strict=True)
            ),
        ).rowcount
        kept = parsed
        if inserted < len(parsed):
            # Some id was taken: the line the table holds for it is its first good one.
            kept = []
            for record, key in zip(parsed, keys, strict=True):
                (first,) = self.db.execute(
                    "SELECT line FROM record WHERE kind = ? AND key = ?", (record.kind, key)
                ).fetchone()
                if first == record.line:
                    kept.append(record)
                else:
                    reason = f"{record.kind}: duplicate id {_show(record.key)} (first on line {first})"
                    self.db.execute("INSERT INTO error VALUES (?, ?)", (record.line, reason))
        self.db.executemany(
            "INSERT INTO payload VALUES (?, ?)", ((record.line, orjson.dumps(record.row)) for record in kept)
        )

    def wanted(self, kind: str, size: int) -> Iterator[list[str]]:
        """In chunks of `size`: every id of a record type that the file defines or refers to."""
        cursor = self.db.execute(
            f"SELECT key FROM record WHERE kind = ? UNION SELECT {kind}_ref FROM record WHERE {kind}_ref IS NOT NULL",
            (kind,),
        )
        while chunk := cursor.fetchmany(size):
            yield [value for (value,) in chunk]

    def add_existing(self, kind: str, rows: Iterable[tuple[str, str, bool]]) -> None:
        """Note stored rows as (id, owner, whether it is the importing app's); a message's owner is its session."""
        self.db.executemany("INSERT INTO existing VALUES (?, ?, ?, ?)", ((kind, *row) for row in rows))

    def add_session_consumers(self, rows: Iterable[tuple[str, str | None]]) -> None:
        """Note the consumers of the app's stored sessions as (session id, consumer id or None)."""
        self.db.executemany("INSERT OR IGNORE INTO session_consumer VALUES (?, ?)", rows)

    def resolve(self) -> None:
        """Check ids and references in write order, so that a record pointing at a bad record is bad too."""
        self._reject(_TAKEN)  # Say only that the id is taken: never which app holds it or what it is.
        for kind in WRITE_ORDER:
            if kind in REFERENCES:
                self._reject(_reference_check(kind))
            if kind == "feedback":
                self._reject(_WRONG_SESSION)
                self.db.execute(_SESSION_RATER)

    def _reject(self, query: str) -> None:
        """Turn the records `query` selects as (line, kind, key, reason) into bad lines."""
        self.db.execute(f"INSERT INTO rejected {query}")
        self.db.execute("INSERT INTO error SELECT line, reason FROM rejected")
        self.db.execute("INSERT OR IGNORE INTO dropped SELECT kind, key, line FROM rejected")
        self.db.execute("DELETE FROM record WHERE line IN (SELECT line FROM rejected)")
        self.db.execute("DELETE FROM rejected")

    def has_errors(self) -> bool:
        """Whether any line is bad."""
        return bool(self.db.execute("SELECT EXISTS (SELECT 1 FROM error)").fetchone()[0])

    def errors(self) -> list[tuple[int, str]]:
        """Every bad line as (line, reason), by line."""
        return self.db.execute("SELECT line, reason FROM error ORDER BY line").fetchall()

    def rows(self, kind: str, size: int) -> Iterator[list[dict[str, Any]]]:
        """The good rows of a record type (without app_id), in chunks of `size`; a rating without a consumer_id
        has its session's (resolve)."""
        cursor = self.db.execute(
            "SELECT p.row, r.consumer_ref FROM record r JOIN payload p ON p.line = r.line WHERE r.kind = ?"
            " ORDER BY r.key",
            (kind,),
        )
        while chunk := cursor.fetchmany(size):
            rows = [_decode(kind, blob) for blob, _ in chunk]
            if kind == "feedback":
                for row, (_, rater) in zip(rows, chunk, strict=True):
                    row["consumer_id"] = None if rater is None else UUID(rater)
            yield rows

    def add_touched_consumers(self, consumer_ids: Iterable[UUID]) -> None:
        """Note consumers whose has_session the import may change (those replaced sessions name now)."""
        self.db.executemany("INSERT OR IGNORE INTO touched_consumer VALUES (?)", ((str(i),) for i in consumer_ids))

    def touched_consumers(self, size: int) -> Iterator[list[UUID]]:
        """In chunks, by id: the consumers noted, and those the written sessions name."""
        cursor = self.db.execute(_TOUCHED_CONSUMERS)
        while chunk := cursor.fetchmany(size):
            yield [UUID(value) for (value,) in chunk]

    def note_changes(self, changes: Iterable[Change]) -> None:
        """Keep the written objects' changes here until the write records them (one event per object, and the
        import's memory flat however many it changes)."""
        self.db.executemany(
            _NOTE_CHANGE,
            ((c.kind, c.object_id, c.action, None if c.session_id is None else str(c.session_id)) for c in changes),
        )

    def noted_changes(self, size: int) -> Iterator[list[Change]]:
        """The noted changes in the order first noted, in chunks."""
        cursor = self.db.execute("SELECT kind, id, action, session FROM change ORDER BY seq")
        while chunk := cursor.fetchmany(size):
            yield [Change(kind, action, oid, None if sid is None else UUID(sid)) for kind, oid, action, sid in chunk]

    def touched_sessions(self) -> Iterator[UUID]:
        """The sessions whose message counts and last activity the import may change."""
        for (value,) in self.db.execute(_TOUCHED_SESSIONS):
            yield UUID(value)


def _refs(record: Record) -> list[str | None]:
    """The record's reference columns, in _TARGETS order."""
    refs: dict[str, str | None] = dict.fromkeys(_TARGETS)
    for target, field_name in REFERENCES.get(record.kind, ()):
        value = record.row[field_name]
        refs[target] = None if value is None else str(value)
    return [refs[target] for target in _TARGETS]


SCRATCH_FULL = (
    "the import's scratch space in {folder} is out of storage (it needs about twice the file's size): free some "
    "room there or set TMPDIR to a folder with more; nothing was written"
)


@contextmanager
def staging() -> Iterator[Staging]:
    """A staging database in a new temporary folder, removed on the way out whatever happens.

    A full disk under the staging file is a 507 naming the scratch folder: it is not the target database that
    is out of room, and the writes to the target happen in one transaction, rolled back with the error.
    """
    with tempfile.TemporaryDirectory(prefix="chipp-import-") as folder:
        try:
            spool = Staging(Path(folder) / "staging.db")
            try:
                yield spool
            finally:
                spool.close()
        except sqlite3.OperationalError as error:  # the target database's errors come wrapped by SQLAlchemy
            if not is_disk_full(error):
                raise
            raise InsufficientStorage(SCRATCH_FULL.format(folder=Path(folder).parent)) from error
