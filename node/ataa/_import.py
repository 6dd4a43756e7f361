"""Household import: a CSV or XLSX survey file into the household store, row by row,
with progress the UI polls and a report of every rejected row.

The flow the UI follows: :func:`preview` (headers, row count, a suggested mapping),
staff edit the mapping, :func:`dry_run` (the first rows' problems), then
:meth:`ImportService.start` (an ``ataa_imports`` row) and :meth:`ImportService.run`
(usually as a background task) while the page polls :meth:`ImportService.status`.

Re-importing a file creates nothing new: the sink (``HouseholdService.upsert``) finds a
household by its national ID and answers "unchanged". The report holds row numbers,
fields and codes, never a cell's value (DESIGN §5); the audit log, counts only.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Literal, Protocol

from sqlalchemy import insert, select, update
from sqlalchemy.engine import Connection

import protocol
from node.audit import AuditLog, DetailValue
from node.clock import Clock
from node.storage import Database, StorageError
from node.storage._schema import ataa_imports

from ._columns import RowConverter, RowProblem, looks_like_roster, suggest_mapping, validate_mapping
from ._record import HouseholdRecord
from ._sheets import ImportFileError, ImportFileErrorCode, Row, Table, read_table

__all__ = [
    "CHUNK_ROWS",
    "MAX_REPORT_PROBLEMS",
    "ImportService",
    "ImportSink",
    "ImportStatus",
    "ImportSummary",
    "Outcome",
    "Preview",
    "dry_run",
    "preview",
]

#: Rows between two progress updates: one small write transaction per 200 households
#: keeps the database's share of a run small while the page polls (every second or
#: two) still sees it move.
CHUNK_ROWS: Final = 200
#: Problems kept in a report; the rest are only counted. 5,000 is ~500 KB of JSON, a
#: page the UI can still show, and more than anyone fixes before importing again.
MAX_REPORT_PROBLEMS: Final = 5_000
#: Longest filename kept (the ext4 and NTFS limit on one name).
MAX_FILENAME: Final = 255
#: Most imports :meth:`ImportService.recent` lists at once.
MAX_RECENT: Final = 100

_log = logging.getLogger(__name__)

Outcome = Literal["created", "updated", "unchanged"]
State = Literal["running", "done", "failed"]


class ImportSink(Protocol):
    """Where imported records go: ``HouseholdService`` in the node, a fake in tests.

    ``upsert`` finds the household by national ID (or creates it) and says what it did.
    A :class:`RecordError` (or another coded error that is not a ``StorageError``)
    rejects that row; a ``StorageError`` stops the run.
    """

    async def upsert(
        self, record: HouseholdRecord, *, actor: int | None, import_id: int | None
    ) -> Outcome: ...


@dataclass(frozen=True, slots=True, kw_only=True)
class Preview:
    """What the mapping step shows: the columns and counts, no cell values (PII).

    Attributes:
        format: ``"csv"`` or ``"xlsx"``.
        headers: the household columns.
        row_count: household rows (non-empty rows after the header).
        suggested_mapping: ``{field: header}`` (:func:`suggest_mapping`).
        missing: required fields the suggestion leaves unmapped.
        sheets: the workbook's sheet names (``()`` for CSV).
        member_sheet: the roster sheet joined by ``_parent_index``, if any.
        member_headers: its columns.
        member_row_count: its rows.
    """

    format: str
    headers: tuple[str, ...]
    row_count: int
    suggested_mapping: dict[str, str]
    missing: tuple[str, ...]
    sheets: tuple[str, ...] = ()
    member_sheet: str | None = None
    member_headers: tuple[str, ...] = ()
    member_row_count: int = 0


def _read(data: bytes, filename: str) -> Table:
    return read_table(data, filename, is_roster=looks_like_roster)


def preview(data: bytes, filename: str) -> Preview:
    """The file's shape and a suggested mapping. CPU-bound: call it in a thread.

    Raises:
        ImportFileError: the file cannot be read (see :func:`read_table`).
    """
    table = _read(data, filename)
    mapping = suggest_mapping(table.headers, table.member_headers)
    return Preview(
        format=table.format,
        headers=table.headers,
        row_count=len(table.rows),
        suggested_mapping=mapping,
        missing=validate_mapping(mapping, table.headers, table.member_headers),
        sheets=table.sheets,
        member_sheet=table.member_sheet,
        member_headers=table.member_headers,
        member_row_count=table.member_rows,
    )


def dry_run(
    data: bytes, filename: str, mapping: Mapping[str, str], limit: int = 50
) -> list[RowProblem]:
    """The problems of the first ``limit`` rows under ``mapping`` (``[]``: they would
    all import). CPU-bound: call it in a thread.

    Raises:
        ImportFileError: the file cannot be read, or BAD_MAPPING.
    """
    table = _read(data, filename)
    converter = RowConverter(mapping, table)
    problems: list[RowProblem] = []
    for row in table.rows[: max(0, limit)]:
        result = converter.convert(row)
        if isinstance(result, list):
            problems += result
    return problems


@dataclass(frozen=True, slots=True, kw_only=True)
class ImportSummary:
    """One import as the list of recent imports shows it.

    ``processed`` counts rows handled so far, ``created + updated + unchanged +
    rejected == processed``; ``error`` is the code that stopped a failed run.
    """

    id: int
    filename: str
    state: State
    total: int
    processed: int
    created: int
    updated: int
    rejected: int
    error: str | None
    created_by: int | None
    created_ms: int
    finished_ms: int | None

    @property
    def unchanged(self) -> int:
        return self.processed - self.created - self.updated - self.rejected


@dataclass(frozen=True, slots=True, kw_only=True)
class ImportStatus(ImportSummary):
    """An import with its report: the first :data:`MAX_REPORT_PROBLEMS` problems and
    how many more there were."""

    problems: tuple[RowProblem, ...] = ()
    problems_omitted: int = 0


@dataclass(slots=True)
class _Progress:
    processed: int = 0
    created: int = 0
    updated: int = 0
    rejected: int = 0
    problems: list[dict[str, Any]] = field(default_factory=list)
    omitted: int = 0
    report_changed: bool = False

    def reject(self, problems: Sequence[RowProblem]) -> None:
        self.rejected += 1
        room = MAX_REPORT_PROBLEMS - len(self.problems)
        self.problems += [p.to_dict() for p in problems[: max(0, room)]]
        self.omitted += max(0, len(problems) - max(0, room))
        self.report_changed = self.report_changed or room > 0

    def report(self, error: str | None = None) -> str:
        body = {"problems": self.problems, "omitted": self.omitted, "error": error}
        return json.dumps(body, ensure_ascii=False, separators=(",", ":"))

    def counts(self) -> dict[str, int]:
        return {
            "processed": self.processed,
            "created": self.created,
            "updated": self.updated,
            "rejected": self.rejected,
        }


def _digest(data: bytes) -> bytes:
    return hashlib.blake2b(data, digest_size=32).digest()


def _filename(name: str) -> str:
    """The name without a path or control characters, at most MAX_FILENAME long."""
    base = name.replace("\\", "/").rsplit("/", 1)[-1]
    clean = "".join(c for c in base if unicodedata.category(c)[0] != "C").strip()
    return clean[:MAX_FILENAME] or "upload"


class ImportService:
    """Runs household imports and reports on them (one per node).

    Args:
        db: the node's database, upgraded.
        sink: where records go (``HouseholdService``).
        audit: the audit log (``ataa.import.start`` / ``ataa.import.done``, counts only).
        clock: the node's clock.
        chunk_rows: rows between progress updates (:data:`CHUNK_ROWS`).
    """

    def __init__(
        self,
        db: Database,
        *,
        sink: ImportSink,
        audit: AuditLog,
        clock: Clock,
        chunk_rows: int = CHUNK_ROWS,
    ) -> None:
        self._db = db
        self._sink = sink
        self._audit = audit
        self._clock = clock
        self._chunk = max(1, chunk_rows)
        #: The last file :meth:`start` read, kept for the :meth:`run` that follows it
        #: (an XLSX of 200,000 rows takes openpyxl a minute or two to read).
        self._last: tuple[int, bytes, Table] | None = None

    async def preview(self, data: bytes, filename: str) -> Preview:
        """:func:`preview`, in a worker thread (reading a workbook takes seconds)."""
        return await asyncio.to_thread(preview, data, filename)

    async def dry_run(
        self, data: bytes, filename: str, mapping: Mapping[str, str], limit: int = 50
    ) -> list[RowProblem]:
        """:func:`dry_run`, in a worker thread."""
        return await asyncio.to_thread(dry_run, data, filename, mapping, limit)

    async def start(
        self, data: bytes, *, filename: str, mapping: Mapping[str, str], actor: int | None
    ) -> int:
        """Check the file and mapping and record a running import; :meth:`run` does it.

        Returns:
            The import's id.

        Raises:
            ImportFileError: the file cannot be read, or BAD_MAPPING (required fields
                unmapped, or columns the file does not have).
        """
        table = await asyncio.to_thread(_read, data, filename)
        RowConverter(mapping, table)  # BAD_MAPPING before anything is recorded
        import_id = await self._db.write(
            self._start_txn, _filename(filename), table.format, len(table.rows), actor
        )
        self._last = (import_id, _digest(data), table)
        return import_id

    def _start_txn(
        self, conn: Connection, filename: str, format_: str, total: int, actor: int | None
    ) -> int:
        now_ms = self._clock.now_ms()
        import_id: int = conn.execute(
            insert(ataa_imports)
            .values(
                filename=filename,
                state="running",
                total=total,
                processed=0,
                created=0,
                updated=0,
                rejected=0,
                report=_Progress().report(),
                created_by=actor,
                created_ms=now_ms,
                finished_ms=None,
            )
            .returning(ataa_imports.c.id)
        ).scalar_one()
        details: dict[str, DetailValue] = {"rows": total, "format": format_}
        self._audit.record_txn(
            conn, actor, "ataa.import.start", f"import:{import_id}", details, now_ms=now_ms
        )
        return import_id

    async def run(
        self, import_id: int, data: bytes, mapping: Mapping[str, str], actor: int | None
    ) -> ImportStatus:
        """Import the rows of a started import, updating its progress after every chunk.

        Runs once: an import that is no longer running is returned as it is. A file or
        mapping error, or a storage error from the sink, ends it 'failed' with that
        code (rows imported so far stay); any other exception ends it 'failed' with
        INTERNAL and is raised again.

        Returns:
            The final status.

        Raises:
            ImportFileError: NOT_FOUND.
        """
        summary = await self._db.read(_summary_txn, import_id)
        if summary.state != "running":
            return await self.status(import_id)
        progress = _Progress()
        try:
            table = await self._table(import_id, data, summary.filename)
            converter = RowConverter(mapping, table)
            if len(table.rows) != summary.total:
                await self._db.write(_total_txn, import_id, len(table.rows))
            for start in range(0, len(table.rows), self._chunk):
                for row in table.rows[start : start + self._chunk]:
                    await self._import_row(import_id, converter, row, actor, progress)
                # The report is rewritten only while it grows: once full, only the
                # count of the rest changes, and the final write stores it.
                report = progress.report() if progress.report_changed else None
                progress.report_changed = False
                await self._db.write(_progress_txn, import_id, progress.counts(), report)
        except (ImportFileError, StorageError) as error:
            return await self._finish(import_id, progress, actor, str(error.code))
        except Exception:
            _log.exception("import %d stopped by a bug", import_id)
            await self._finish(import_id, progress, actor, ImportFileErrorCode.INTERNAL.value)
            raise
        return await self._finish(import_id, progress, actor, None)

    async def _table(self, import_id: int, data: bytes, filename: str) -> Table:
        last, self._last = self._last, None
        if last is not None and last[0] == import_id and last[1] == _digest(data):
            return last[2]
        return await asyncio.to_thread(_read, data, filename)

    async def _import_row(
        self,
        import_id: int,
        converter: RowConverter,
        row: Row,
        actor: int | None,
        progress: _Progress,
    ) -> None:
        result = converter.convert(row)
        if isinstance(result, list):
            progress.reject(result)
        else:
            try:
                outcome = await self._sink.upsert(result, actor=actor, import_id=import_id)
            except StorageError:
                raise
            except protocol.CodedError as error:
                field_name = str(getattr(error, "field", "") or "record")
                message = error.message.split(": ", 1)[-1]
                progress.reject([RowProblem(row[0], field_name, str(error.code), message)])
            else:
                if outcome not in ("created", "updated", "unchanged"):
                    raise ValueError(f"the sink answered {outcome!r}")
                if outcome == "created":
                    progress.created += 1
                elif outcome == "updated":
                    progress.updated += 1
        progress.processed += 1

    async def _finish(
        self, import_id: int, progress: _Progress, actor: int | None, error: str | None
    ) -> ImportStatus:
        await self._db.write(self._finish_txn, import_id, progress, actor, error)
        return await self.status(import_id)

    def _finish_txn(
        self,
        conn: Connection,
        import_id: int,
        progress: _Progress,
        actor: int | None,
        error: str | None,
    ) -> None:
        now_ms = self._clock.now_ms()
        state = "failed" if error else "done"
        changed = conn.execute(
            update(ataa_imports)
            .where(ataa_imports.c.id == import_id, ataa_imports.c.state == "running")
            .values(
                state=state, report=progress.report(error), finished_ms=now_ms, **progress.counts()
            )
        ).rowcount
        if changed:
            details: dict[str, DetailValue] = {"state": state, "error": error, **progress.counts()}
            self._audit.record_txn(
                conn, actor, "ataa.import.done", f"import:{import_id}", details, now_ms=now_ms
            )

    async def status(self, import_id: int) -> ImportStatus:
        """An import's counters and report.

        Raises:
            ImportFileError: NOT_FOUND.
        """
        return await self._db.read(_status_txn, import_id)

    async def recent(self, limit: int = 20) -> list[ImportSummary]:
        """The newest imports first, at most ``limit`` (1..MAX_RECENT)."""
        return await self._db.read(_recent_txn, max(1, min(limit, MAX_RECENT)))

    async def interrupt_running(self) -> int:
        """Mark every import still 'running' as failed with INTERRUPTED: call it at
        start-up, when no run can be in progress (a stopped node left them so).

        Returns:
            How many imports it ended.
        """
        return await self._db.write(self._interrupt_txn)

    def _interrupt_txn(self, conn: Connection) -> int:
        now_ms = self._clock.now_ms()
        code = ImportFileErrorCode.INTERRUPTED.value
        rows = conn.execute(select(ataa_imports).where(ataa_imports.c.state == "running")).all()
        for row in rows:
            report = json.loads(row.report)
            report["error"] = code
            conn.execute(
                update(ataa_imports)
                .where(ataa_imports.c.id == row.id)
                .values(
                    state="failed",
                    report=json.dumps(report, ensure_ascii=False, separators=(",", ":")),
                    finished_ms=now_ms,
                )
            )
            details: dict[str, DetailValue] = {
                "state": "failed",
                "error": code,
                "processed": row.processed,
            }
            self._audit.record_txn(
                conn, None, "ataa.import.done", f"import:{row.id}", details, now_ms=now_ms
            )
        return len(rows)


# --- transactions ----------------------------------------------------------------------


def _not_found(import_id: int) -> ImportFileError:
    return ImportFileError(f"no import {import_id}", code=ImportFileErrorCode.NOT_FOUND)


def _summary(row: Any, report: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "id": row.id,
        "filename": row.filename,
        "state": row.state,
        "total": row.total,
        "processed": row.processed,
        "created": row.created,
        "updated": row.updated,
        "rejected": row.rejected,
        "error": report.get("error"),
        "created_by": row.created_by,
        "created_ms": row.created_ms,
        "finished_ms": row.finished_ms,
    }


def _summary_txn(conn: Connection, import_id: int) -> ImportSummary:
    row = conn.execute(select(ataa_imports).where(ataa_imports.c.id == import_id)).one_or_none()
    if row is None:
        raise _not_found(import_id)
    return ImportSummary(**_summary(row, json.loads(row.report)))


def _status_txn(conn: Connection, import_id: int) -> ImportStatus:
    row = conn.execute(select(ataa_imports).where(ataa_imports.c.id == import_id)).one_or_none()
    if row is None:
        raise _not_found(import_id)
    report = json.loads(row.report)
    return ImportStatus(
        **_summary(row, report),
        problems=tuple(RowProblem(**problem) for problem in report["problems"]),
        problems_omitted=report["omitted"],
    )


def _recent_txn(conn: Connection, limit: int) -> list[ImportSummary]:
    rows = conn.execute(select(ataa_imports).order_by(ataa_imports.c.id.desc()).limit(limit)).all()
    return [ImportSummary(**_summary(row, json.loads(row.report))) for row in rows]


def _total_txn(conn: Connection, import_id: int, total: int) -> None:
    conn.execute(update(ataa_imports).where(ataa_imports.c.id == import_id).values(total=total))


def _progress_txn(
    conn: Connection, import_id: int, counts: Mapping[str, int], report: str | None
) -> None:
    values: dict[str, Any] = dict(counts)
    if report is not None:
        values["report"] = report
    conn.execute(
        update(ataa_imports)
        .where(ataa_imports.c.id == import_id, ataa_imports.c.state == "running")
        .values(**values)
    )
