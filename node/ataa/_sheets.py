"""Reading a household file: CSV or XLSX bytes in, a :class:`Table` of cells out.

This module is the one boundary where the ``csv`` module's, ``zipfile``'s and openpyxl's
exceptions become :class:`ImportFileError` (STYLE §6): an uploaded file is hostile input,
and anything else escaping from here is a bug. Every limit below says why it is what it
is. Nothing here logs or echoes a cell: cells are PII.

CSV: UTF-8 with or without a byte order mark (Excel's "CSV UTF-8" writes one), UTF-16
with a BOM (Excel's "Unicode Text"), or, without a BOM and not valid UTF-8, Windows-1256
(what Excel's plain "CSV" writes on Arabic Windows). The delimiter is ``,``, ``;`` or a
tab, sniffed from the header line; Excel's ``sep=;`` first line is honoured.

XLSX: the first worksheet holds the households. A KoboToolbox export puts each repeat
group (the member roster) on a further sheet whose rows name their household by
``_parent_index`` (the household row's ``_index``); :func:`read_table` joins the one
sheet the caller recognizes as the roster.
"""

from __future__ import annotations

import codecs
import csv
import datetime
import enum
import io
import re
import unicodedata
import warnings
import zipfile
from collections.abc import Callable, Generator, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Literal

import openpyxl

import protocol

__all__ = [
    "INDEX_COLUMN",
    "MAX_COLUMNS",
    "MAX_FILE_BYTES",
    "MAX_HEADER_CHARS",
    "MAX_MEMBER_ROWS",
    "MAX_ROWS",
    "MAX_UNCOMPRESSED_BYTES",
    "PARENT_INDEX_COLUMN",
    "Cell",
    "ImportFileError",
    "ImportFileErrorCode",
    "Row",
    "Table",
    "index_key",
    "read_table",
]

#: Largest upload. Measured on generated files of 17 columns: 20,000 households are
#: 4.1 MB as CSV and 2.3 MB as XLSX, so 20 MB holds about 100,000 households as CSV
#: and more as XLSX, far more than one NGO registers in one file, while one upload's
#: parse stays within the memory of the small boxes NGOs run nodes on.
MAX_FILE_BYTES: Final = 20 * 1024 * 1024
#: Most household rows in one file: what 20 MB holds with a few narrow columns. It
#: bounds a run (openpyxl reads 20,000 such rows in 5-10 s) and the rows held in memory.
MAX_ROWS: Final = 200_000
#: Most roster rows: five members per household on average at MAX_ROWS (Iraqi
#: households average about six people, CSO 2017/18, not all of them listed).
MAX_MEMBER_ROWS: Final = 1_000_000
#: Most columns: KoboToolbox exports of long surveys run to several hundred columns.
#: openpyxl pads each row to the width it is asked for: the header row is read this
#: wide, the data rows as wide as the header. Excel's own 16,384 would let one hostile
#: cell far to the right make every row of a sheet cost 16 times more.
MAX_COLUMNS: Final = 1_000
#: Longest header: Kobo label exports use whole questions as headers (~100 characters).
MAX_HEADER_CHARS: Final = 200
#: Sum of an XLSX archive's uncompressed parts. Sheet XML compresses about tenfold (8.5
#: for the test suite's generated workbooks), so a 20 MB workbook unpacks to ~200 MB;
#: more is a ZIP bomb, or not a survey export.
MAX_UNCOMPRESSED_BYTES: Final = 256 * 1024 * 1024
#: Compression ratio above which a part (of at least ``_RATIO_FLOOR`` bytes) is a bomb:
#: sheet XML compresses about tenfold; a run of one byte, about 1,000 times (deflate's
#: limit is 1,032).
MAX_COMPRESSION_RATIO: Final = 200
_RATIO_FLOOR: Final = 1024 * 1024
#: Parts in an archive: a workbook has a dozen, plus one per sheet, image or chart.
MAX_ZIP_ENTRIES: Final = 1_000
#: Sheets examined for a roster: Kobo writes one per repeat group, rarely more than five.
MAX_SHEETS: Final = 20
#: Physical rows read from one sheet, empty or not: Excel's own limit (2^20), so no
#: real workbook reaches it, while a hostile row number (r="2000000000") stops here.
MAX_SHEET_ROWS: Final = 1_048_576

#: The Kobo columns that join a roster to its household (``_index`` on the main sheet).
INDEX_COLUMN: Final = "_index"
PARENT_INDEX_COLUMN: Final = "_parent_index"

_OLE2_MAGIC: Final = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"  # .xls, or an encrypted .xlsx
_ZIP_MAGIC: Final = b"PK"
_DELIMITERS: Final = (",", ";", "\t")
_SEP_LINE: Final = re.compile(r"sep=([,;\t|])\r?\n?")

#: One cell as read: text from CSV; from XLSX also numbers, booleans and Excel dates.
Cell = str | int | float | bool | datetime.datetime | datetime.date | datetime.time | None
#: A row: its number as a spreadsheet program shows it (the header is usually row 1)
#: and its cells, one per header.
Row = tuple[int, tuple[Cell, ...]]


class ImportFileErrorCode(enum.StrEnum):
    """Stable, machine-readable import error codes."""

    TOO_LARGE = "TOO_LARGE"  # over MAX_FILE_BYTES, or an XLSX that unpacks too large
    TOO_MANY_ROWS = "TOO_MANY_ROWS"  # over MAX_ROWS households or MAX_MEMBER_ROWS members
    TOO_MANY_COLUMNS = "TOO_MANY_COLUMNS"  # a header row wider than MAX_COLUMNS
    UNSUPPORTED = "UNSUPPORTED"  # an old .xls or a password-protected workbook
    UNREADABLE = "UNREADABLE"  # neither CSV nor XLSX we can read: corrupt, binary, bad text
    EMPTY = "EMPTY"  # no header row, or no worksheet
    BAD_HEADER = "BAD_HEADER"  # two columns with one header, or an over-long header
    BAD_MAPPING = "BAD_MAPPING"  # a mapping names an unknown field or header, or lacks one
    NOT_FOUND = "NOT_FOUND"  # no import with that id
    INTERRUPTED = "INTERRUPTED"  # the node stopped while the import ran
    INTERNAL = "INTERNAL"  # a bug stopped the run (it is logged where it was raised)


class ImportFileError(protocol.CodedError):
    """Every error of a household import: the file, the mapping or the run.

    Messages say what is wrong and where (a column or row number), never what a cell
    holds: cells are PII and these messages reach logs and the import's report.
    """

    code: ImportFileErrorCode

    def __init__(self, message: str, *, code: ImportFileErrorCode) -> None:
        super().__init__(message, code=code)


def _fail(code: ImportFileErrorCode, message: str) -> ImportFileError:
    return ImportFileError(message, code=code)


@dataclass(frozen=True, slots=True, kw_only=True)
class Table:
    """A household file as read: headers, rows of cells, and the roster joined by
    Kobo's ``_parent_index``.

    Attributes:
        format: ``"csv"`` or ``"xlsx"``.
        headers: the household columns' headers (cleaned; blank-headed columns dropped).
        rows: the non-empty household rows, each with as many cells as ``headers``.
        sheets: every worksheet's name, in order (``()`` for CSV).
        member_sheet: the roster sheet's name, if one was recognized.
        member_headers: the roster's headers.
        members: roster rows by their household's ``_index`` (see :func:`index_key`).
        member_rows: how many roster rows there are.
    """

    format: Literal["csv", "xlsx"]
    headers: tuple[str, ...]
    rows: tuple[Row, ...]
    sheets: tuple[str, ...] = ()
    member_sheet: str | None = None
    member_headers: tuple[str, ...] = ()
    members: Mapping[str, tuple[Row, ...]] = field(default_factory=dict)
    member_rows: int = 0


def index_key(value: Cell) -> str | None:
    """A Kobo ``_index``/``_parent_index`` cell as a join key: ``3``, ``3.0`` and
    ``"3"`` are one household."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, (int, float, str)):
        return str(value).strip() or None
    return None


def read_table(
    data: bytes,
    filename: str,
    *,
    is_roster: Callable[[Sequence[str]], bool] = lambda headers: False,
) -> Table:
    """Read a household file.

    Args:
        data: the uploaded bytes.
        filename: the name it was uploaded under (only ``.xlsx`` vs the content matters).
        is_roster: whether a further sheet with a ``_parent_index`` column, given its
            headers, is the member roster (the first such sheet is joined).

    Raises:
        ImportFileError: TOO_LARGE, TOO_MANY_ROWS, TOO_MANY_COLUMNS, UNSUPPORTED,
            UNREADABLE, EMPTY or BAD_HEADER; never any other exception.
    """
    if len(data) > MAX_FILE_BYTES:
        raise _fail(ImportFileErrorCode.TOO_LARGE, f"the file is over {MAX_FILE_BYTES // 2**20} MB")
    if data.startswith(_OLE2_MAGIC):
        raise _fail(
            ImportFileErrorCode.UNSUPPORTED,
            "an old .xls or a password-protected workbook: save it as .xlsx without a password",
        )
    if data.startswith(_ZIP_MAGIC):
        return _read_xlsx(data, is_roster)
    if filename.lower().endswith((".xlsx", ".xlsm")):
        raise _fail(ImportFileErrorCode.UNREADABLE, "the file is not an XLSX workbook")
    return _read_csv(data)


# --- shared: header row and data rows ------------------------------------------------


def _clean_header(value: Cell, column: int) -> str:
    if value is None:
        return ""
    text = value if isinstance(value, str) else str(value)
    text = " ".join(unicodedata.normalize("NFC", text).split())
    if len(text) > MAX_HEADER_CHARS:
        raise _fail(
            ImportFileErrorCode.BAD_HEADER,
            f"column {column}'s header is longer than {MAX_HEADER_CHARS} characters",
        )
    return text


def _blank(value: Cell) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


@dataclass(slots=True)
class _Sheet:
    headers: tuple[str, ...]
    keep: tuple[int, ...]  # the positions of the non-blank headers
    rows: list[Row]


def _read_rows(
    physical: Iterable[tuple[int, Sequence[Cell]]], *, max_rows: int, what: str
) -> _Sheet:
    """Header row (the first non-empty row) and the non-empty rows after it, projected
    onto the non-blank headers."""
    rows = iter(physical)
    for _, cells in rows:
        if not all(_blank(cell) for cell in cells):
            break
    else:
        raise _fail(ImportFileErrorCode.EMPTY, f"the {what} has no header row")
    if len(cells) > MAX_COLUMNS and not all(_blank(c) for c in cells[MAX_COLUMNS:]):
        raise _fail(ImportFileErrorCode.TOO_MANY_COLUMNS, f"more than {MAX_COLUMNS} columns")
    headers = [_clean_header(cell, column) for column, cell in enumerate(cells, start=1)]
    keep = tuple(i for i, header in enumerate(headers) if header)
    seen: dict[str, int] = {}
    for i in keep:
        if headers[i] in seen:
            raise _fail(
                ImportFileErrorCode.BAD_HEADER,
                f"columns {seen[headers[i]] + 1} and {i + 1} have the same header",
            )
        seen[headers[i]] = i
    width = len(cells)
    out: list[Row] = []
    for number, cells in rows:
        if all(_blank(cell) for cell in cells):
            continue
        if len(out) == max_rows:
            raise _fail(
                ImportFileErrorCode.TOO_MANY_ROWS, f"the {what} has more than {max_rows} rows"
            )
        if len(cells) < width:
            cells = (*cells, *(None,) * (width - len(cells)))
        out.append((number, tuple(cells[i] for i in keep)))
    return _Sheet(tuple(headers[i] for i in keep), keep, out)


# --- CSV ---------------------------------------------------------------------------


def _decode(data: bytes) -> str:
    try:
        if data.startswith(codecs.BOM_UTF8):
            return data[len(codecs.BOM_UTF8) :].decode("utf-8")
        if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
            return data.decode("utf-16")
    except UnicodeDecodeError:
        raise _fail(
            ImportFileErrorCode.UNREADABLE, "the text does not match its byte order mark"
        ) from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        # Excel's plain "CSV" on Arabic Windows. Every byte decodes in cp1256, so a
        # binary file gets here too and is caught by the NUL check or makes no sense.
        return data.decode("cp1256")


def _sniff(first_line: str) -> str:
    """The delimiter that splits the header line into the most fields (``,`` on a tie)."""
    best, best_count = ",", 1
    for delimiter in _DELIMITERS:
        try:
            count = len(next(csv.reader([first_line], delimiter=delimiter), []))
        except csv.Error:
            continue
        if count > best_count:
            best, best_count = delimiter, count
    return best


def _read_csv(data: bytes) -> Table:
    text = _decode(data)
    if "\x00" in text:
        raise _fail(ImportFileErrorCode.UNREADABLE, "not a text file (it contains NUL characters)")
    sep = _SEP_LINE.match(text)
    if sep is not None:
        delimiter, text = sep.group(1), text[sep.end() :]
    else:
        delimiter = _sniff(text[: text.find("\n") if "\n" in text else len(text)])
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)

    def physical() -> Iterator[tuple[int, Sequence[Cell]]]:
        for number, cells in enumerate(reader, start=1):
            if len(cells) > MAX_COLUMNS and not all(_blank(c) for c in cells[MAX_COLUMNS:]):
                raise _fail(
                    ImportFileErrorCode.TOO_MANY_COLUMNS,
                    f"row {number} has more than {MAX_COLUMNS} columns",
                )
            yield number, [cell or None for cell in cells[:MAX_COLUMNS]]

    try:
        sheet = _read_rows(physical(), max_rows=MAX_ROWS, what="file")
    except csv.Error:
        raise _fail(
            ImportFileErrorCode.UNREADABLE, "not a readable CSV file (a quote or a cell is broken)"
        ) from None
    return Table(format="csv", headers=sheet.headers, rows=tuple(sheet.rows))


# --- XLSX --------------------------------------------------------------------------


def _check_archive(data: bytes) -> None:
    """Refuse a ZIP bomb before openpyxl opens it. Declared sizes are enough: zipfile
    stops a part at its declared size and fails its CRC if there was more."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            infos = archive.infolist()
    except Exception:  # BadZipFile, but also OSError, ValueError, struct.error...
        raise _fail(ImportFileErrorCode.UNREADABLE, "not a readable XLSX workbook") from None
    if len(infos) > MAX_ZIP_ENTRIES:
        raise _fail(ImportFileErrorCode.TOO_LARGE, f"more than {MAX_ZIP_ENTRIES} parts")
    total = 0
    for info in infos:
        total += info.file_size
        ratio_bomb = info.file_size >= _RATIO_FLOOR and (
            info.file_size > MAX_COMPRESSION_RATIO * max(1, info.compress_size)
        )
        if total > MAX_UNCOMPRESSED_BYTES or ratio_bomb:
            raise _fail(
                ImportFileErrorCode.TOO_LARGE,
                "the workbook unpacks to more than it plausibly holds (a ZIP bomb?)",
            )


def _sheet_rows(worksheet: Any, width: int) -> Generator[tuple[int, Sequence[Cell]], None, None]:
    # The <dimension> a file declares may lie (too small drops rows); read what is there.
    worksheet.reset_dimensions()
    rows = worksheet.iter_rows(max_col=width, values_only=True)
    for number, cells in enumerate(rows, start=1):
        if number > MAX_SHEET_ROWS:
            raise _fail(
                ImportFileErrorCode.TOO_MANY_ROWS, f"a sheet has more than {MAX_SHEET_ROWS} rows"
            )
        yield number, [_xlsx_cell(cell) for cell in cells]


def _xlsx_cell(value: Any) -> Cell:
    if value is None or isinstance(value, (str, int, float, datetime.date, datetime.time)):
        return value  # bool is an int; datetime a date
    return str(value)  # a timedelta or anything newer: text, for the value parsers to refuse


#: Rows searched for a header before a sheet is taken as headerless.
_HEADER_SEARCH: Final = 100


def _header(worksheet: Any) -> tuple[str, ...]:
    """The first non-empty row's cells as headers, up to the last non-blank one (``()``
    if the first rows are empty). openpyxl pads every row to the width it is asked
    for, so the data rows are then read only this wide."""
    rows = _sheet_rows(worksheet, MAX_COLUMNS + 1)
    try:
        for number, cells in rows:
            filled = [i for i, cell in enumerate(cells) if not _blank(cell)]
            if filled:
                if filled[-1] >= MAX_COLUMNS:
                    raise _fail(
                        ImportFileErrorCode.TOO_MANY_COLUMNS, f"more than {MAX_COLUMNS} columns"
                    )
                width = filled[-1] + 1
                return tuple(_clean_header(c, i) for i, c in enumerate(cells[:width], start=1))
            if number >= _HEADER_SEARCH:
                break
    finally:
        rows.close()
    return ()


def _read_sheet(worksheet: Any, *, max_rows: int, what: str) -> _Sheet:
    width = len(_header(worksheet)) or MAX_COLUMNS + 1
    return _read_rows(_sheet_rows(worksheet, width), max_rows=max_rows, what=what)


def _roster(worksheet: Any) -> tuple[tuple[str, ...], dict[str, tuple[Row, ...]], int]:
    sheet = _read_sheet(worksheet, max_rows=MAX_MEMBER_ROWS, what="member sheet")
    parent = sheet.headers.index(PARENT_INDEX_COLUMN)
    grouped: dict[str, list[Row]] = {}
    for number, cells in sheet.rows:
        key = index_key(cells[parent])
        if key is not None:
            grouped.setdefault(key, []).append((number, cells))
    members = {key: tuple(rows) for key, rows in grouped.items()}
    return sheet.headers, members, len(sheet.rows)


def _read_xlsx(data: bytes, is_roster: Callable[[Sequence[str]], bool]) -> Table:
    _check_archive(data)
    # openpyxl warns about what it skips (data validation, missing styles); a file's
    # quirks are not the operator's concern, and under pytest a warning is an error.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return _read_workbook(data, is_roster)


def _read_workbook(data: bytes, is_roster: Callable[[Sequence[str]], bool]) -> Table:
    try:
        workbook = openpyxl.load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    except Exception:  # openpyxl raises KeyError, ValueError, TypeError... on bad files
        raise _fail(ImportFileErrorCode.UNREADABLE, "not a readable XLSX workbook") from None
    try:
        worksheets = list(workbook.worksheets)
        if not worksheets:
            raise _fail(ImportFileErrorCode.EMPTY, "the workbook has no worksheet")
        main = _read_sheet(worksheets[0], max_rows=MAX_ROWS, what="first sheet")
        roster_sheet = None
        for worksheet in worksheets[1 : 1 + MAX_SHEETS]:
            headers = _header(worksheet)
            if PARENT_INDEX_COLUMN in headers and is_roster(headers):
                roster_sheet = worksheet
                break
        member_headers: tuple[str, ...] = ()
        members: dict[str, tuple[Row, ...]] = {}
        member_rows = 0
        if roster_sheet is not None:
            member_headers, members, member_rows = _roster(roster_sheet)
        return Table(
            format="xlsx",
            headers=main.headers,
            rows=tuple(main.rows),
            sheets=tuple(str(name) for name in workbook.sheetnames),
            member_sheet=None if roster_sheet is None else str(roster_sheet.title),
            member_headers=member_headers,
            members=members,
            member_rows=member_rows,
        )
    except ImportFileError:
        raise
    except Exception:  # the sheets are parsed lazily, so errors surface while reading
        raise _fail(ImportFileErrorCode.UNREADABLE, "not a readable XLSX workbook") from None
    finally:
        try:
            workbook.close()
        except Exception:  # closing a broken archive must not hide the error above
            pass
