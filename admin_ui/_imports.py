"""Household import pages: upload a CSV or XLSX file, map its columns to household
fields (suggested from the headers), check the first rows, start the import, then
watch its progress and read its report (row, field and problem, never a cell).

Between the upload and the start the file has to be kept somewhere. It holds PII, so
it is never written to disk by this module: :class:`UploadCache` keeps the bytes in the
node's memory, bound to the account that uploaded them, one upload per account, for
:data:`UPLOAD_TTL_MS` at most and :data:`MAX_HELD_BYTES` in all (the oldest uploads
give way). A node restart forgets them: staff upload again. Re-uploading at every step
instead would cost a phone on a slow link the whole file three times.

Size: the node reads at most ``node.web``'s request limit (``_MAX_REQUEST``, about
1.1 MB) per request, so that is the largest file this page takes: a CSV of several
thousand households, an XLSX (compressed) of many more. A larger one is refused with
413 before this module sees it. The limit is deliberately not raised for this route:
aiohttp buffers an uploaded part in memory up to 1 MiB and spools anything larger to
an (unlinked) temporary file while it parses the request
(``aiohttp.web_request._FILE_SPOOL_MAX_SIZE``), which would put PII on disk in the
clear. A file between 1 MiB and the request limit still takes that path; lowering
``_MAX_REQUEST`` to 1 MiB, or streaming uploads past ``request.post()``, would close it.

The page of a running import refreshes itself with the ``Refresh`` response header
(what ``<meta http-equiv="refresh">`` emulates; every browser honours both) rather than
the meta element, which ``base.html`` has no place for; ``?auto=0`` stops it, for
screen reader users whom a reload would interrupt (WCAG 2.2.1).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from typing import Any, Final

from aiohttp import web

import protocol
from node.web import current_account, services

from ._choices import ERRORS
from ._household_forms import FIELD_LABELS, NAME_FIELDS, problem_text
from ._households import ataa_of, id_in_path
from ._i18n import N_, Locale
from ._page import locale_of, render

__all__ = [
    "DRY_RUN_ROWS",
    "MAX_HELD_BYTES",
    "UPLOADS",
    "UPLOAD_TTL_MS",
    "UploadCache",
    "check_mapping",
    "import_page",
    "import_status",
    "install",
    "upload",
]

#: How long an uploaded file is kept for its mapping step: long enough to match a few
#: dozen columns on a phone, short enough that a forgotten upload does not linger.
UPLOAD_TTL_MS: Final = 30 * 60 * 1000
#: Bytes of uploads held at once, all accounts together: 32 files at the request limit.
MAX_HELD_BYTES: Final = 32 * 1024 * 1024
#: Rows the "check" step converts: a screen of problems, found in well under a second.
DRY_RUN_ROWS: Final = 50
#: Seconds between refreshes of a running import's page (the ``Refresh`` header, which
#: browsers treat as ``<meta http-equiv="refresh">``).
REFRESH_S: Final = 2
_RECENT: Final = 10
_MEMBER_PREFIX: Final = "members."
#: Required fields besides the name (four parts, or one full-name column).
_REQUIRED: Final = ("mother_name", "governorate", "district")

FILE_ERRORS: Final = {
    "TOO_LARGE": N_("The file is too large."),
    "TOO_MANY_ROWS": N_("The file has too many rows for one import: split it into several files."),
    "TOO_MANY_COLUMNS": N_("The file has too many columns."),
    "UNSUPPORTED": N_(
        "Old Excel files (.xls) and password-protected workbooks cannot be read: save it "
        "as .xlsx or CSV, without a password."
    ),
    "UNREADABLE": N_("The file could not be read as CSV or XLSX."),
    "EMPTY": N_("The file has no header row, or no worksheet."),
    "BAD_HEADER": N_("Two columns have the same header, or a header is too long."),
    "BAD_MAPPING": N_("The columns chosen do not match this file: choose them again."),
    "NOT_FOUND": N_("There is no such import."),
    "INTERRUPTED": N_(
        "The node stopped while this import ran. Households imported before that are "
        "kept; import the file again to finish (households already imported are not "
        "registered twice)."
    ),
    "INTERNAL": N_(
        "An error on the node stopped this import; it is in the node's log. Households "
        "imported before that are kept."
    ),
    "UNAVAILABLE": ERRORS["UNAVAILABLE"],
}
_NO_FILE: Final = N_("Choose a CSV or XLSX file.")
_EXPIRED: Final = N_(
    "The uploaded file is no longer held (uploads are kept for 30 minutes). Upload it again."
)
_UNMAPPED: Final = N_("Required: choose the column that holds it.")
_STATES: Final = {
    "running": N_("In progress"),
    "done": N_("Finished"),
    "failed": N_("Stopped"),
}


# -- the upload cache -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class Upload:
    """One uploaded file waiting for its mapping (in memory only)."""

    token: str
    account: int
    filename: str
    data: bytes = b""
    #: What ``ImportService.preview`` found (headers, rows, suggested mapping).
    shape: Any = None
    expires_ms: int = 0


class UploadCache:
    """Uploaded files between the upload and the start of an import: in memory, one per
    account, for ``ttl_ms``, ``max_bytes`` in all (module docstring)."""

    def __init__(self, *, ttl_ms: int = UPLOAD_TTL_MS, max_bytes: int = MAX_HELD_BYTES) -> None:
        self._ttl = ttl_ms
        self._max = max_bytes
        self._held: dict[str, Upload] = {}

    def put(self, upload: Upload, now_ms: int) -> Upload:
        """Hold ``upload`` (replacing the account's earlier one) until ``now + ttl``."""
        self._expire(now_ms)
        for token in [t for t, u in self._held.items() if u.account == upload.account]:
            del self._held[token]
        held = replace(upload, expires_ms=now_ms + self._ttl)
        while self._held and self.size + len(held.data) > self._max:
            oldest = min(self._held.values(), key=lambda u: u.expires_ms)
            del self._held[oldest.token]
        self._held[held.token] = held
        return held

    def get(self, token: str, account: int, now_ms: int) -> Upload | None:
        """The upload ``account`` holds under ``token``, if not expired."""
        self._expire(now_ms)
        found = self._held.get(token)
        return found if found is not None and found.account == account else None

    def drop(self, token: str) -> None:
        self._held.pop(token, None)

    @property
    def size(self) -> int:
        return sum(len(u.data) for u in self._held.values())

    def __len__(self) -> int:
        return len(self._held)

    def _expire(self, now_ms: int) -> None:
        for token in [t for t, u in self._held.items() if u.expires_ms <= now_ms]:
            del self._held[token]


UPLOADS: Final = web.AppKey("watan_import_uploads", UploadCache)


def install(app: web.Application) -> None:
    """Give the application its upload cache."""
    app[UPLOADS] = UploadCache()


# -- labels ---------------------------------------------------------------------------------


def _file_error(locale: Locale, code: str) -> str:
    return locale.gettext(FILE_ERRORS.get(code, FILE_ERRORS["UNREADABLE"]))


def _field_label(locale: Locale, name: str) -> str:
    """A report's field (``members[2].age``, ``record``) in words."""
    if found := re.fullmatch(r"members\[(\d+)\]\.(\w+)", name):
        label = locale.gettext(FIELD_LABELS.get(_MEMBER_PREFIX + found.group(2), name))
        return locale.gettext(N_("%(field)s (member %(n)s)")) % {
            "field": label,
            "n": locale.number(int(found.group(1)) + 1),
        }
    if name in FIELD_LABELS:
        return locale.gettext(FIELD_LABELS[name])
    return locale.gettext(N_("The whole row"))


def _problems(locale: Locale, problems: Any) -> list[dict[str, Any]]:
    return [
        {
            "row": p.row,
            "field": _field_label(locale, p.field),
            "code": p.code,
            "text": locale.gettext(problem_text(p.field, p.code)),
        }
        for p in problems
    ]


def _recent_rows(locale: Locale, imports: Any) -> list[dict[str, Any]]:
    return [
        {
            "id": i.id,
            "filename": i.filename,
            "state": i.state,
            "state_label": locale.gettext(_STATES.get(i.state, i.state)),
            "total": i.total,
            "processed": i.processed,
            "created": i.created,
            "updated": i.updated,
            "unchanged": i.unchanged,
            "rejected": i.rejected,
            "created_ms": i.created_ms,
        }
        for i in imports
    ]


# -- step 1: upload -------------------------------------------------------------------------


async def import_page(
    request: web.Request, *, status: int = 200, error: str | None = None
) -> web.Response:
    """GET /households/import: the upload form and the recent imports."""
    ataa = ataa_of(request)
    locale = locale_of(request)
    return render(
        request,
        "import.html",
        locale.gettext(N_("Import households")),
        status=status,
        flash=[("error", error)] if error else [],
        error=error,
        recent=_recent_rows(locale, await ataa.imports.recent(_RECENT)),
    )


async def upload(request: web.Request) -> web.Response:
    """POST /households/import: read the file, keep it, show the mapping step."""
    ataa = ataa_of(request)
    locale = locale_of(request)
    form = await request.post()
    sent = form.get("file")
    if not isinstance(sent, web.FileField) or not sent.filename:
        return await import_page(request, status=422, error=locale.gettext(_NO_FILE))
    data = sent.file.read()
    filename = sent.filename
    if not data:
        return await import_page(request, status=422, error=_file_error(locale, "EMPTY"))
    try:
        shape = await ataa.imports.preview(data, filename)
    except protocol.CodedError as failure:
        return await import_page(request, status=422, error=_file_error(locale, str(failure.code)))
    svc = services(request)
    held = request.app[UPLOADS].put(
        Upload(
            token=svc.random_bytes(16).hex(),
            account=current_account(request).id,
            filename=filename,
            data=data,
            shape=shape,
        ),
        svc.now_ms(),
    )
    return _mapping_page(request, held, shape, dict(shape.suggested_mapping))


# -- step 2: mapping, check, start ----------------------------------------------------------


def _mapping_fields(
    locale: Locale, shape: Any, mapping: dict[str, str], missing: tuple[str, ...]
) -> list[dict[str, Any]]:
    names = [n for n in FIELD_LABELS if not n.startswith(_MEMBER_PREFIX)]
    if shape.member_sheet:
        names += [n for n in FIELD_LABELS if n.startswith(_MEMBER_PREFIX)]
    return [
        {
            "name": name,
            "label": locale.gettext(FIELD_LABELS[name]),
            "required": name in _REQUIRED or name in ("members.age", "members.sex"),
            "member": name.startswith(_MEMBER_PREFIX),
            "selected": mapping.get(name, ""),
            "error": locale.gettext(_UNMAPPED) if name in missing else None,
        }
        for name in names
    ]


def _mapping_page(
    request: web.Request,
    held: Upload,
    shape: Any,
    mapping: dict[str, str],
    *,
    status: int = 200,
    missing: tuple[str, ...] = (),
    problems: list[dict[str, Any]] | None = None,
    error: str | None = None,
) -> web.Response:
    locale = locale_of(request)
    flash = [("error", error)] if error else []
    if missing and not error:
        flash = [("error", locale.gettext(ERRORS["INVALID"]))]
    return render(
        request,
        "import_mapping.html",
        locale.gettext(N_("Match the columns")),
        status=status,
        flash=flash,
        token=held.token,
        filename=held.filename,
        shape=shape,
        fields=_mapping_fields(locale, shape, mapping, missing),
        name_fields=NAME_FIELDS,
        problems=problems,
        checked=min(DRY_RUN_ROWS, shape.row_count),
    )


def _posted_mapping(form: Any, shape: Any) -> dict[str, str]:
    """``{field: header}`` from the form's ``map.FIELD`` selects (unknown headers are
    left for ``validate_mapping`` to refuse)."""
    mapping = {}
    for name in FIELD_LABELS:
        value = form.get("map." + name, "")
        if isinstance(value, str) and value:
            mapping[name] = value[:300]
    if not shape.member_sheet:
        mapping = {k: v for k, v in mapping.items() if not k.startswith(_MEMBER_PREFIX)}
    return mapping


async def check_mapping(request: web.Request) -> web.Response:
    """POST /households/import/check: ``action=check`` converts the first rows and
    shows their problems; ``action=start`` starts the import and shows its progress."""
    ataa = ataa_of(request)
    locale = locale_of(request)
    form = await request.post()
    account = current_account(request).id
    token = str(form.get("token", ""))[:64]
    held = request.app[UPLOADS].get(token, account, services(request).now_ms())
    if held is None:
        return await import_page(request, status=410, error=locale.gettext(_EXPIRED))
    shape = held.shape
    mapping = _posted_mapping(form, shape)
    missing = _missing(mapping, shape)
    try:
        if missing:
            return _mapping_page(request, held, shape, mapping, status=422, missing=missing)
        if form.get("action") == "start":
            import_id = await ataa.imports.start(
                held.data, filename=held.filename, mapping=mapping, actor=account
            )
            request.app[UPLOADS].drop(held.token)
            ataa.run_import(import_id, held.data, mapping, account)
            raise web.HTTPSeeOther(f"/households/import/{import_id}")
        found = await ataa.imports.dry_run(held.data, held.filename, mapping, DRY_RUN_ROWS)
    except protocol.CodedError as failure:
        error = _file_error(locale, str(failure.code))
        return _mapping_page(request, held, shape, mapping, status=422, error=error)
    return _mapping_page(request, held, shape, mapping, problems=_problems(locale, found))


def _missing(mapping: dict[str, str], shape: Any) -> tuple[str, ...]:
    """The required fields ``mapping`` leaves out (what ``validate_mapping`` checks,
    here to mark each one on the form)."""
    missing = [name for name in _REQUIRED if name not in mapping]
    if "full_name" not in mapping:
        missing += [name for name in NAME_FIELDS if name not in mapping]
    if any(k.startswith(_MEMBER_PREFIX) for k in mapping):
        missing += [n for n in ("members.age", "members.sex") if n not in mapping]
    return tuple(missing)


# -- step 3: progress and report ------------------------------------------------------------


async def import_status(request: web.Request) -> web.Response:
    """GET /households/import/{id}: progress (the page refreshes itself while the
    import runs, unless ``?auto=0``), counts and the report."""
    ataa = ataa_of(request)
    locale = locale_of(request)
    import_id = id_in_path(request)
    try:
        found = await ataa.imports.status(import_id)
    except protocol.CodedError as failure:
        if str(failure.code) == "NOT_FOUND":
            raise web.HTTPNotFound() from None
        raise
    auto = request.query.get("auto") != "0"
    response = render(
        request,
        "import_status.html",
        locale.gettext(N_("Household import")),
        status=200,
        item=_recent_rows(locale, [found])[0],
        running=found.state == "running",
        auto=auto,
        error=_file_error(locale, found.error) if found.error else None,
        problems=_problems(locale, found.problems),
        omitted=found.problems_omitted,
        recent=_recent_rows(locale, await ataa.imports.recent(_RECENT)),
    )
    if found.state == "running" and auto:
        response.headers["Refresh"] = str(REFRESH_S)
    return response
