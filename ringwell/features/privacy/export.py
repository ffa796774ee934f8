"""A person's data as one zip, streamed with bounded memory (GDPR arts. 15 and 20, CCPA access).

Contents, generated from the data register (:data:`ringwell.features.privacy.catalog.REGISTER`):

- ``register.json``: the register's entries for what the zip contains (table, column, category,
  purpose, legal basis, retention class), so the export explains itself;
- ``<category>.json`` and ``<category>.csv`` for every register category with data: the rows of
  this person only, and only the columns the register marks ``exported``. A table's exported
  columns that are not personal (ids, states) come with each of its categories, so rows can be
  related. CSV: one header ``table,<every column of the category>``; a table's row leaves the
  columns of other tables empty. Values are written the same on SQLite and PostgreSQL (the same
  data gives the same files): times ISO 8601 in UTC with ``Z`` and six fraction digits, booleans
  ``true``/``false``, JSON as its text;
- ``media/voicemail/...`` and ``media/recordings/...``: the audio (and transcripts) decrypted
  through :meth:`BlobStore.open`, stored uncompressed (audio does not deflate), transcripts deflated;
- ``manifest.json`` last: what was exported (row counts per table, media files and bytes).

How a person's rows are found is the main table-specific part (:data:`FINDERS`): a table not listed
there is searched by its ``user_id`` column when it has one, so a table declared later appears in
the export without a change here. Tables without a way to the person are left out on purpose
(rate decks and trunks say nothing about anyone). In the person's rows, a column naming someone
else (the other party of an internal call, the user an admin acted on) is left empty
(:func:`_own_only`): their ids are not the person's data. The financial ledger and payments are the
organization's books: exported only to a person who is their org's one owner (a one-person
business, whose books they are); anyone else finds their call charges in their call records'
billing columns.

Memory: rows are read with server-side cursors in partitions of :data:`PARTITION` rows (SQLAlchemy
``stream`` + ``yield_per``), media in the blob store's chunks; the zip is written to a non-seekable
sink that is drained after every write, so nothing accumulates and nothing is written to disk.
"""

from __future__ import annotations

import csv
import io
import json
import typing
import zipfile
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    ColumnElement,
    DateTime,
    Integer,
    Select,
    String,
    Text,
    and_,
    case,
    cast,
    false,
    func,
    literal,
    null,
    or_,
    select,
    type_coerce,
)
from sqlalchemy import Table as DbTable
from sqlalchemy.ext.asyncio import async_sessionmaker

from ringwell.blobs.store import BlobStore
from ringwell.features.privacy.register import Category, Register, Table
from ringwell.storage.base import Base, UTCDateTime, utcnow

__all__ = ["FINDERS", "MEDIA", "OWN_ONLY", "PARTITION", "ExportSummary", "MediaSpec", "PersonExport", "Progress",
           "Subject"]

PARTITION = 5000  # rows fetched per round trip
_FLUSH = 256 * 1024  # sink bytes handed on at a time

Progress = Callable[[int, int], None]  # (rows written, bytes written) so far


@dataclass(frozen=True, slots=True)
class Subject:
    """One ``users`` row of the person (a person with phones in several orgs has several)."""

    org_id: str
    user_id: str


Finder = Callable[[DbTable, Sequence[str], Sequence[str]], ColumnElement[bool]]


def _caller_or_callee(t: DbTable, orgs: Sequence[str], users: Sequence[str]) -> ColumnElement[bool]:
    return and_(t.c.org_id.in_(orgs), or_(t.c.caller_user_id.in_(users), t.c.callee_user_id.in_(users)))


def _their_bindings(t: DbTable, _orgs: Sequence[str], users: Sequence[str]) -> ColumnElement[bool]:
    credentials = Base.metadata.tables["sip_credentials"]
    return t.c.credential_id.in_(select(credentials.c.id).where(credentials.c.user_id.in_(users)))


def _sole_owner_orgs(t: DbTable, orgs: Sequence[str], users: Sequence[str]) -> ColumnElement[bool]:
    """The org's books are the person's own only when they are its one owner (a one-person business)."""
    people = Base.metadata.tables["users"]
    owners = (select(people.c.org_id).where(people.c.org_id.in_(orgs), people.c.role == "owner")
              .group_by(people.c.org_id).having(func.count() == 1))
    theirs = select(people.c.org_id).where(people.c.id.in_(users), people.c.role == "owner")
    return and_(t.c.org_id.in_(owners), t.c.org_id.in_(theirs))


# table -> the condition selecting the person's rows (beyond the default: ``user_id`` in theirs)
FINDERS: dict[str, Finder] = {
    "users": lambda t, _orgs, users: t.c.id.in_(users),
    "organizations": lambda t, orgs, _users: t.c.id.in_(orgs),
    "ledger_transactions": _sole_owner_orgs,
    "payments": _sole_owner_orgs,
    "call_records": _caller_or_callee,
    "recordings": _caller_or_callee,
    "bindings": _their_bindings,
    "api_keys": lambda t, _orgs, users: t.c.created_by.in_(users),
    "audit_events": lambda t, _orgs, users: t.c.actor_user_id.in_(users),
    # Not the person's: the org's books and the org's configuration.
    "ledger_accounts": lambda _t, _o, _u: false(),
    "ledger_postings": lambda _t, _o, _u: false(),
    "credit_reservations": lambda _t, _o, _u: false(),
    # Key material and blob bookkeeping: the media themselves are exported decrypted.
    "blobs": lambda _t, _o, _u: false(),
}


@dataclass(frozen=True, slots=True)
class MediaSpec:
    """Where a table's rows point at blobs, and how the decrypted files are named in the zip."""

    folder: str  # media/<folder>/
    time_column: str  # names files by time, then id
    blobs: tuple[tuple[str, str, bool], ...]  # (blob id column, file suffix, deflate)


MEDIA: dict[str, MediaSpec] = {
    "voicemails": MediaSpec("voicemail", "received_at",
                            (("audio_blob_id", ".wav", False), ("transcript_blob_id", ".txt", True))),
    "recordings": MediaSpec("recordings", "started_at", (("blob_id", ".ogg", False),)),
}


@dataclass(slots=True)
class ExportSummary:
    rows: dict[str, int] = field(default_factory=dict)  # table -> rows exported
    media_files: int = 0
    media_bytes: int = 0
    zip_bytes: int = 0


def _plain(value: Any) -> Any:
    """A JSON-ready value: times in ISO 8601 (UTC, ``Z``), decimals as strings, bytes never (none are exported)."""
    if isinstance(value, datetime):
        return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ") if value.tzinfo else value.isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, bytes | bytearray | memoryview):
        return None
    return value


def _iso_time(column: Any, dialect: str) -> ColumnElement[Any]:
    """A UTC timestamp as ISO 8601 text ``YYYY-MM-DDTHH:MM:SS.ffffffZ``, the same on both databases,
    made by the database (the export's hottest path: no datetime object per value).

    SQLite stores ``UTCDateTime`` as UTC text ``YYYY-MM-DD HH:MM:SS.ffffff`` (SQLAlchemy's format;
    a value written by SQL itself may have fewer or no fraction digits: padded to six)."""
    if dialect == "sqlite":
        text_ = type_coerce(column, String)
        padded = case((func.length(text_) == 19, text_.concat(".000000")), else_=text_.concat("000000"))
        return func.strftime("%Y-%m-%dT%H:%M:%S", text_).concat(func.substr(padded, 20, 7)).concat("Z")
    return func.to_char(func.timezone("UTC", column), 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"', type_=String)


def _text_of(column: Any, dialect: str) -> ColumnElement[Any]:
    """What the CSV gets, identical on both databases: times as ISO text (UTC, ``Z``), booleans as
    ``true``/``false`` (SQLite stores 1/0), JSON as its text, everything else as stored."""
    if isinstance(column.type, UTCDateTime | DateTime):
        return _iso_time(column, dialect)
    if isinstance(column.type, Boolean):
        return case((column.is_(None), null()), (column.is_(True), literal("true", String)),
                    else_=literal("false", String))
    if isinstance(column.type, JSON):
        return cast(column, Text)  # a cast, not a coercion: asyncpg would decode JSON itself
    return typing.cast(ColumnElement[Any], column)


def _json_value(column: Any, dialect: str) -> ColumnElement[Any]:
    """A column as a value of the database's JSON object builder (JSON embedded, booleans as booleans)."""
    if isinstance(column.type, UTCDateTime | DateTime):
        return _iso_time(column, dialect)
    if dialect == "sqlite" and isinstance(column.type, JSON):
        return func.json(type_coerce(column, String))
    if dialect == "sqlite" and isinstance(column.type, Boolean):
        return case((column.is_(None), null()), (type_coerce(column, Integer) != 0, func.json("true")),
                    else_=func.json("false"))
    return typing.cast(ColumnElement[Any], column)


# table -> column -> the rows in which it may be shown, for columns that can name another person
# beyond those :func:`_own_only` knows by themselves (a column naming a user).
OWN_ONLY: dict[str, dict[str, Callable[[DbTable, Sequence[str]], ColumnElement[bool]]]] = {
    "audit_events": {"target_id": lambda t, users: or_(t.c.target_type.is_(None), t.c.target_type != "user",
                                                       t.c.target_id.in_(users))},
}


def _own_only(db: DbTable, name: str, subjects: Sequence[Subject], value: ColumnElement[Any]) -> ColumnElement[Any]:
    """``value``, or NULL where the column names someone else than the subjects.

    A person's rows can name colleagues: the other party of an internal call, the user an admin
    changed. Those ids are not the person's data: a column naming a user (``*user_id``, or a
    foreign key to ``users``) keeps only the subjects' own ids; :data:`OWN_ONLY` adds the rest."""
    column = db.c[name]
    users = sorted({s.user_id for s in subjects})
    shown: ColumnElement[bool] | None = None
    if name.endswith("user_id") or any(fk.target_fullname.startswith("users.") for fk in column.foreign_keys):
        shown = column.in_(users) if db.name != "users" else None
    rule = OWN_ONLY.get(db.name, {}).get(name)
    if rule is not None:
        shown = rule(db, users)
    if shown is None:
        return value
    return case((shown, value), else_=null())


_MAX_DB_JSON = 45  # json_build_object takes at most 100 arguments on PostgreSQL (a name and a value each)


class _Sink:
    """A write-only, non-seekable file for zipfile: bytes pile up until :meth:`drain` hands them on."""

    def __init__(self) -> None:
        self._parts: list[bytes] = []
        self.pending = 0
        self.total = 0

    def write(self, data: bytes, /) -> int:
        if data:
            self._parts.append(bytes(data))
            self.pending += len(data)
            self.total += len(data)
        return len(data)

    def flush(self) -> None:
        """Nothing to flush: :meth:`drain` is how bytes leave."""

    def close(self) -> None:
        """Nothing to release: the owner drains what is left."""

    def drain(self) -> bytes:
        out = b"".join(self._parts)
        self._parts.clear()
        self.pending = 0
        return out


@dataclass(frozen=True, slots=True)
class _Part:
    """One table's contribution to one category file."""

    table: Table
    db: DbTable
    columns: tuple[str, ...]


class PersonExport:
    """Builds the zip of the given subjects' data. Reads only; the caller records the audit event."""

    def __init__(self, sessions: async_sessionmaker[Any], blobs: BlobStore, register: Register, *,
                 partition: int = PARTITION) -> None:
        self._sessions = sessions
        self._blobs = blobs
        self._register = register
        self._partition = partition

    # -- what goes in ------------------------------------------------------------------------------
    def _finder(self, name: str, db: DbTable) -> Finder | None:
        if name in FINDERS:
            return FINDERS[name]
        if "user_id" in db.c:
            return lambda t, _orgs, users: t.c.user_id.in_(users)
        return None

    def _where(self, name: str, db: DbTable, subjects: Sequence[Subject]) -> ColumnElement[bool] | None:
        finder = self._finder(name, db)
        if finder is None:
            return None
        orgs = sorted({s.org_id for s in subjects})
        users = sorted({s.user_id for s in subjects})
        return finder(db, orgs, users)

    def plan(self) -> dict[Category, list[_Part]]:
        """Per category, the tables (and their exported columns) that go into its files."""
        plan: dict[Category, list[_Part]] = {}
        for name, table in self._register.items():
            db = Base.metadata.tables.get(name)
            if db is None or self._finder(name, db) is None:
                continue
            exported = [c for c in table.columns if c.exported and c.name in db.c]
            context = tuple(c.name for c in exported if c.category is Category.NOT_PERSONAL)
            for category in Category:
                if category is Category.NOT_PERSONAL:
                    continue
                own = tuple(c.name for c in exported if c.category is category)
                if own:
                    plan.setdefault(category, []).append(_Part(table, db, context + own))
        return plan

    def register_entries(self, plan: Mapping[Category, list[_Part]]) -> dict[str, Any]:
        tables: dict[str, Any] = {}
        for parts in plan.values():
            for part in parts:
                entry = tables.setdefault(part.table.name, {
                    "description": part.table.description, "subject": part.table.subject, "columns": {}})
                for name in part.columns:
                    column = part.table.column(name)
                    entry["columns"][name] = {
                        "category": column.category.value, "purpose": column.purpose, "legal_basis": column.basis.value,
                        "retention": column.retention.value, "on_erasure": column.erasure.value,
                        **({"kept_because": column.exception} if column.exception else {}),
                    }
        return {"tables": dict(sorted(tables.items()))}

    # -- streaming ---------------------------------------------------------------------------------
    async def _rows(self, query: Select[Any]) -> AsyncIterator[Sequence[Any]]:
        """Partitions of rows through a server-side cursor (bounded memory on PostgreSQL and SQLite)."""
        async with self._sessions() as session:
            result = await session.stream(query.execution_options(yield_per=self._partition))
            async for partition in result.partitions():
                yield partition

    async def chunks(self, subjects: Sequence[Subject], *, progress: Progress | None = None,
                     summary: ExportSummary | None = None) -> AsyncIterator[bytes]:
        """The zip, as it is made. ``summary`` (when given) is filled in as the zip goes."""
        if not subjects:
            raise ValueError("an export needs at least one subject")
        summary = summary if summary is not None else ExportSummary()
        sink = _Sink()
        rows_done = 0

        def report() -> None:
            if progress is not None:
                progress(rows_done, sink.total)

        # Level 1: most of deflate's gain on JSON and CSV for a third of its time.
        zf = zipfile.ZipFile(sink, "w", compression=zipfile.ZIP_DEFLATED, allowZip64=True, compresslevel=1)
        plan = self.plan()
        zf.writestr("register.json", json.dumps(self.register_entries(plan), indent=2, ensure_ascii=False))
        yield sink.drain()
        for category in sorted(plan, key=lambda c: c.value):
            parts = plan[category]
            # JSON: {"category": ..., "tables": {table: [row, ...], ...}}
            with zf.open(f"{category.value}.json", "w", force_zip64=True) as out:
                out.write(json.dumps({"category": category.value})[:-1].encode() + b', "tables": {')
                for index, part in enumerate(parts):
                    out.write((", " if index else "") .encode() + json.dumps(part.table.name).encode() + b": [")
                    first = True
                    count = 0
                    async for batch in self._json_rows(part, subjects):
                        out.write((("\n" if first else ",\n") + ",\n".join(batch)).encode())
                        first = False
                        count += len(batch)
                        rows_done += len(batch)
                        if sink.pending >= _FLUSH:
                            yield sink.drain()
                            report()
                    out.write(b"]")
                    summary.rows[part.table.name] = max(summary.rows.get(part.table.name, 0), count)
                out.write(b"}}\n")
            yield sink.drain()
            report()
            header = ["table", *sorted({c for part in parts for c in part.columns})]
            with zf.open(f"{category.value}.csv", "w", force_zip64=True) as out:
                buffer = io.StringIO()
                writer = csv.writer(buffer, lineterminator="\r\n")
                writer.writerow(header)
                for part in parts:
                    slots = [header.index(c) for c in part.columns]
                    dense = slots == list(range(1, len(header)))  # the table has every column of the file
                    name = part.table.name
                    async for rows in self._part_rows(part, subjects):
                        if dense:
                            writer.writerows([(name, *row) for row in rows])
                        else:
                            for row in rows:
                                line: list[Any] = [name, *([""] * (len(header) - 1))]
                                for slot, value in zip(slots, row, strict=True):
                                    line[slot] = value
                                writer.writerow(line)
                        out.write(buffer.getvalue().encode())
                        buffer.seek(0)
                        buffer.truncate()
                        if sink.pending >= _FLUSH:
                            yield sink.drain()
                            report()
                out.write(buffer.getvalue().encode())
            yield sink.drain()
            report()
        async for piece in self._media(zf, sink, subjects, summary, report):
            yield piece
        summary.zip_bytes = sink.total  # before the manifest and the central directory: close enough
        manifest = {"generated_at": utcnow().isoformat(), "subjects": [s.user_id for s in subjects],
                    "rows": summary.rows, "media_files": summary.media_files, "media_bytes": summary.media_bytes}
        zf.writestr("manifest.json", json.dumps(manifest, indent=2))
        zf.close()
        summary.zip_bytes = sink.total
        yield sink.drain()
        report()

    async def _dialect(self) -> str:
        async with self._sessions() as session:
            return str(session.get_bind().dialect.name)

    def _query(self, part: _Part, subjects: Sequence[Subject], columns: Sequence[Any]) -> Select[Any] | None:
        where = self._where(part.table.name, part.db, subjects)
        if where is None:
            return None
        return select(*columns).where(where).order_by(*part.db.primary_key.columns)

    async def _part_rows(self, part: _Part, subjects: Sequence[Subject]) -> AsyncIterator[Sequence[Any]]:
        """The part's rows of the subjects in partitions, as the CSV writes them (times as ISO text)."""
        dialect = await self._dialect()
        query = self._query(part, subjects, [_own_only(part.db, name, subjects, _text_of(part.db.c[name], dialect))
                                             for name in part.columns])
        if query is None:
            return
        async for batch in self._rows(query):
            yield batch

    async def _json_rows(self, part: _Part, subjects: Sequence[Subject]) -> AsyncIterator[list[str]]:
        """The part's rows as JSON object texts, built by the database (one string per row)."""
        dialect = await self._dialect()
        if len(part.columns) > _MAX_DB_JSON:
            async for batch in self._part_rows(part, subjects):
                yield [self._python_json(part, row) for row in batch]
            return
        pairs: list[Any] = []
        for name in part.columns:
            pairs += [literal(name, String), _own_only(part.db, name, subjects, _json_value(part.db.c[name], dialect))]
        builder = func.json_object(*pairs) if dialect == "sqlite" else func.json_build_object(*pairs)
        query = self._query(part, subjects, [cast(builder, Text)])
        if query is None:
            return
        async for batch in self._rows(query):
            yield [row[0] for row in batch]

    @staticmethod
    def _python_json(part: _Part, row: Sequence[Any]) -> str:
        """A row of :meth:`_part_rows` (the CSV's texts) as a JSON object: JSON embedded, booleans as booleans."""
        def value_of(name: str, value: Any) -> Any:
            kind = part.db.c[name].type
            if isinstance(value, str) and isinstance(kind, JSON):
                return json.loads(value)
            if isinstance(value, str) and isinstance(kind, Boolean):
                return value == "true"
            return _plain(value)

        values = {name: value_of(name, value) for name, value in zip(part.columns, row, strict=True)}
        return json.dumps(values, ensure_ascii=False)

    async def _media(self, zf: zipfile.ZipFile, sink: _Sink, subjects: Sequence[Subject], summary: ExportSummary,
                     report: Callable[[], None]) -> AsyncIterator[bytes]:
        for name, spec in MEDIA.items():
            db = Base.metadata.tables.get(name)
            if db is None or name not in self._register:
                continue
            where = self._where(name, db, subjects)
            if where is None:
                continue
            blob_columns = [db.c[column] for column, _suffix, _deflate in spec.blobs]
            query = select(db.c.id, db.c.org_id, db.c[spec.time_column], *blob_columns).where(where).order_by(
                db.c[spec.time_column], db.c.id)
            # Media rows are few (thousands); reading their ids first frees the cursor before the
            # long decryptions, which keeps a PostgreSQL transaction from staying open for minutes.
            rows = [row async for batch in self._rows(query) for row in batch]
            for row in rows:
                row_id, org_id, moment = row[0], row[1], row[2]
                stamp = moment.strftime("%Y%m%dT%H%M%SZ") if isinstance(moment, datetime) else "undated"
                for (_column, suffix, deflate), blob_id in zip(spec.blobs, row[3:], strict=True):
                    if not blob_id:
                        continue
                    opened = await self._blobs.open(org_id, blob_id)
                    info = zipfile.ZipInfo(f"media/{spec.folder}/{stamp}_{row_id}{suffix}",
                                           date_time=(moment.timetuple()[:6] if isinstance(moment, datetime)
                                                      and moment.year >= 1980 else (1980, 1, 1, 0, 0, 0)))
                    info.compress_type = zipfile.ZIP_DEFLATED if deflate else zipfile.ZIP_STORED
                    info.file_size = opened.ref.size
                    with zf.open(info, "w", force_zip64=opened.ref.size > 0x7FFFFFFF) as out:
                        async for piece in opened:
                            out.write(piece)
                            summary.media_bytes += len(piece)
                            if sink.pending >= _FLUSH:
                                yield sink.drain()
                                report()
                    summary.media_files += 1
                    yield sink.drain()
                    report()
