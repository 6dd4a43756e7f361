"""The kinds this protocol version defines, and the registry that parses them (SPEC §5).

A kind name is ``namespace.name/version``. Content of a known kind must match its schema
exactly (no unknown fields: a new field means a new version). Content of an unknown kind
is kept opaque: checked only against the encoding profile, stored and relayed, so nodes
running an older release still carry kinds added later.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Final

from ._errors import ErrorCode, LocalProtocolError, RemoteProtocolError
from ._schema import (
    Body,
    bin_exact,
    bin_max,
    date_str,
    fail,
    finish,
    list_of,
    one_of,
    pattern,
    text,
    uint,
    wrong_type,
)

__all__ = [
    "ALLOCATION_CATEGORIES",
    "ALLOCATION_UNITS",
    "ATTACHMENT_TYPES",
    "ENTRY_KINDS",
    "KIND_NAME",
    "MESSAGE_KINDS",
    "MESSAGE_NAMESPACE",
    "ORACLE_SUITES",
    "SECTORS",
    "VOID_REASONS",
    "Allocation",
    "AllocationVoid",
    "Attachment",
    "Checkpoint",
    "KeyRotate",
    "OracleConfig",
    "OracleUsage",
    "Profile",
    "Receipt",
    "TextMessage",
    "Vouch",
    "check_kind_name",
]

#: ``namespace.name/version``: lowercase ASCII, at least two dotted parts, version >= 1.
KIND_NAME = re.compile(r"[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+/[1-9][0-9]{0,5}")
#: A kind name is repeated in every entry; 64 bytes is ample and keeps entries small.
MAX_KIND_BYTES: Final = 64
#: Kinds in this namespace travel only inside sealed messages, and only they do.
MESSAGE_NAMESPACE: Final = "msg."


def check_kind_name(name: str, value: Any) -> None:
    if type(value) is not str:
        wrong_type(name, value, "str")
    if len(value) > MAX_KIND_BYTES or KIND_NAME.fullmatch(value) is None:
        fail(ErrorCode.BAD_KIND, f"{name}: {value[:70]!r} is not namespace.name/version")


_KEY = bin_exact(32)
_SIG = bin_exact(64)
# OCHA common operational datasets (COD-AB) for Iraq: governorates IQGnn (IQG19 left
# open for Halabja, a governorate since 2014 that the 2019 COD still lists as a district
# of Sulaymaniyah), districts IQGnnQmm. The node checks codes against the shipped list
# (node/geo); the protocol checks only the format, so a new district needs no release.
_GOVERNORATE = pattern(r"IQG(0[1-9]|1[0-9])", "a governorate P-code IQG01..IQG19")
_DISTRICT = pattern(
    r"IQG(0[1-9]|1[0-9])Q[0-9]{2}", "a district P-code: governorate + Q + 2 digits (IQG08Q05)"
)
# A program id names a program, never a person: it starts with a letter and has no run
# of 7 or more digits, so a national ID (12 digits) or a phone number (11) cannot be
# smuggled into a feed through it (DESIGN §5).
_PROGRAM = pattern(
    r"(?!.*[0-9]{7})[A-Za-z][A-Za-z0-9._-]{0,63}",
    "1-64 of A-Z a-z 0-9 . _ -, starting with a letter, no run of 7+ digits",
)

#: Sectors an NGO can declare in its profile (coordinated with the cluster system).
SECTORS: Final = (
    "cash",
    "disability",
    "education",
    "food_security",
    "gbv",
    "health",
    "legal_aid",
    "livelihoods",
    "mental_health",
    "protection",
    "shelter",
    "wash",
)
NODE_ROLES: Final = ("ngo", "observer")
ROTATION_REASONS: Final = ("compromise", "device_change", "scheduled")
VOUCH_STANCES: Final = ("revoke", "vouch")

#: What an allocation record may say was delivered. A fixed list so that statistics
#: aggregate cleanly and no free text (which could carry PII) enters a feed.
ALLOCATION_CATEGORIES: Final = (
    "assistive_devices",
    "cash",
    "education",
    "food",
    "health",
    "livelihoods",
    "nfi",
    "protection",
    "shelter",
    "wash",
    "winterization",
)
ALLOCATION_UNITS: Final = (
    "basket",
    "item",
    "kg",
    "kit",
    "litre",
    "month",
    "session",
    "transfer",
    "voucher",
)
#: Why an allocation is voided; a code, never free text (privacy, SPEC §5.6).
VOID_REASONS: Final = ("duplicate", "entered_in_error", "not_delivered", "returned")

_URL = pattern(r"https?://[!-~]{1,240}", "an http(s) URL of printable ASCII, at most 248 bytes")


@finish
@dataclass(frozen=True, slots=True, kw_only=True)
class Profile(Body):
    """``node.profile/1``: who runs this node and how to reach it."""

    KIND = "node.profile/1"
    CHECKS = MappingProxyType(
        {
            "enc_key": _KEY,
            "endpoints": list_of(_URL, max_items=8),
            "governorate": _GOVERNORATE,
            "name_ar": text(200),
            "name_en": text(200),
            "registration": pattern(
                r"[A-Za-z0-9][A-Za-z0-9/-]{1,31}",
                "an NGO registration number (2-32 of A-Z 0-9 / -)",
            ),
            "role": one_of(NODE_ROLES),
            "sectors": list_of(one_of(SECTORS), max_items=len(SECTORS), sorted_unique=True),
        }
    )
    enc_key: bytes
    endpoints: list[str]
    governorate: str
    name_ar: str
    name_en: str
    registration: str
    role: str
    sectors: list[str]


@finish
@dataclass(frozen=True, slots=True, kw_only=True)
class KeyRotate(Body):
    """``node.key_rotate/1``: from the next entry on, the feed is signed by ``new_key``.

    The entry is signed by the current key; ``new_sig`` is the new key's signature over
    the rotation statement (SPEC §4.4), so both keys agree to the hand-over.
    """

    KIND = "node.key_rotate/1"
    CHECKS = MappingProxyType(
        {"new_key": _KEY, "new_sig": _SIG, "reason": one_of(ROTATION_REASONS)}
    )
    new_key: bytes
    new_sig: bytes
    reason: str


@finish
@dataclass(frozen=True, slots=True, kw_only=True)
class Vouch(Body):
    """``node.vouch/1``: this node approves (or stops approving) a peer node."""

    KIND = "node.vouch/1"
    CHECKS = MappingProxyType({"peer": _KEY, "stance": one_of(VOUCH_STANCES)})
    peer: bytes
    stance: str


@finish
@dataclass(frozen=True, slots=True, kw_only=True)
class Checkpoint(Body):
    """``node.checkpoint/1``: "feed ``author`` has entry ``id`` at ``seq``".

    About one's own feed it is a head statement; about another feed (an observer's
    witness) it is a cosignature that makes a later fork of that feed provable.
    """

    KIND = "node.checkpoint/1"
    CHECKS = MappingProxyType({"author": _KEY, "id": _KEY, "seq": uint(1, 2**63 - 1)})
    author: bytes
    id: bytes
    seq: int


@finish
@dataclass(frozen=True, slots=True, kw_only=True)
class Allocation(Body):
    """``ataa.allocation/1``: one delivery of aid to one household, minimally disclosed.

    Only what DESIGN §5 allows: pseudonym (with its key epoch), category, quantity and
    unit, value, program, date, district. The issuing NGO is the entry's author.
    """

    KIND = "ataa.allocation/1"
    CHECKS = MappingProxyType(
        {
            "category": one_of(ALLOCATION_CATEGORIES),
            "date": date_str,
            "district": _DISTRICT,
            "epoch": uint(1, 2**32 - 1),
            "program": _PROGRAM,
            "pseudonym": _KEY,
            "quantity": uint(1, 10**9),
            "unit": one_of(ALLOCATION_UNITS),
            # 10**12 IQD is about 700 million USD: far above any single delivery.
            "value_iqd": uint(0, 10**12),
        }
    )
    category: str
    date: str
    district: str
    epoch: int
    program: str
    pseudonym: bytes
    quantity: int
    unit: str
    value_iqd: int


@finish
@dataclass(frozen=True, slots=True, kw_only=True)
class AllocationVoid(Body):
    """``ataa.allocation_void/1``: an earlier allocation of this feed was a mistake."""

    KIND = "ataa.allocation_void/1"
    CHECKS = MappingProxyType({"allocation": _KEY, "reason": one_of(VOID_REASONS)})
    allocation: bytes
    reason: str


# --- pseudonym oracles (SPEC §5.9, §13) ----------------------------------------------

#: The RFC 9497 suite pseudonyms are computed with; a new suite means a new epoch.
ORACLE_SUITES: Final = ("ristretto255-SHA512",)
#: Shamir share indices are one byte (SPEC §13): at most 255 oracles.
MAX_ORACLES: Final = 255
_EPOCH = uint(1, 2**32 - 1)


def _cross_check(body_kind: str, problem: str | None, *, remote: bool) -> None:
    if problem is not None:
        error = RemoteProtocolError if remote else LocalProtocolError
        raise error(f"{body_kind}: {problem}", code=ErrorCode.BAD_VALUE)


def _config_problem(content: Any) -> str | None:
    oracles, keys = content["oracles"], content["keys"]
    if len(keys) != len(oracles):
        return "keys and oracles have the same length (one share key per oracle)"
    if content["threshold"] > len(oracles):
        return "threshold is at most the number of oracles"
    return None


@finish
@dataclass(frozen=True, slots=True, kw_only=True)
class OracleConfig(Body):
    """``oracle.config/1``: the dealer publishes who holds the shares of epoch ``epoch``.

    ``oracles[i]`` holds the share with index ``i + 1``, whose public key is ``keys[i]``;
    any ``threshold`` of them evaluate a pseudonym together (SPEC §13).
    """

    KIND = "oracle.config/1"
    CHECKS = MappingProxyType(
        {
            "epoch": _EPOCH,
            "keys": list_of(_KEY, min_items=2, max_items=MAX_ORACLES),
            "oracles": list_of(_KEY, min_items=2, max_items=MAX_ORACLES),
            "suite": one_of(ORACLE_SUITES),
            "threshold": uint(2, MAX_ORACLES),
        }
    )
    epoch: int
    keys: list[bytes]
    oracles: list[bytes]
    suite: str
    threshold: int

    def __post_init__(self) -> None:
        Body.__post_init__(self)
        _cross_check(self.KIND, _config_problem(self.to_content()), remote=False)

    @classmethod
    def check_content(cls, content: Any) -> dict[str, Any]:
        checked = Body.check_content.__func__(cls, content)  # type: ignore[attr-defined]
        _cross_check(cls.KIND, _config_problem(checked), remote=True)
        return checked  # type: ignore[no-any-return]


def _counts(name: str, value: Any) -> None:
    if type(value) is not list:
        wrong_type(name, value, "array")
    if not 1 <= len(value) <= MAX_ITEMS_USAGE:
        fail(ErrorCode.BAD_VALUE, f"{name}: needs 1..{MAX_ITEMS_USAGE} items")
    count = uint(1, 2**32 - 1)
    for index, item in enumerate(value):
        count(f"{name}[{index}]", item)


#: Requesters one usage entry can list (the encoding's per-container limit).
MAX_ITEMS_USAGE: Final = 4096


def _usage_problem(content: Any) -> str | None:
    if len(content["counts"]) != len(content["requesters"]):
        return "counts and requesters have the same length"
    return None


@finish
@dataclass(frozen=True, slots=True, kw_only=True)
class OracleUsage(Body):
    """``oracle.usage/1``: how many pseudonym evaluations each requester asked this
    oracle for on one UTC ``date`` (``counts[i]`` for ``requesters[i]``), so that the
    federation sees who queries a lot (DESIGN §5)."""

    KIND = "oracle.usage/1"
    CHECKS = MappingProxyType(
        {
            "counts": _counts,
            "date": date_str,
            "epoch": _EPOCH,
            "requesters": list_of(_KEY, min_items=1, max_items=MAX_ITEMS_USAGE, sorted_unique=True),
        }
    )
    counts: list[int]
    date: str
    epoch: int
    requesters: list[bytes]

    def __post_init__(self) -> None:
        Body.__post_init__(self)
        _cross_check(self.KIND, _usage_problem(self.to_content()), remote=False)

    @classmethod
    def check_content(cls, content: Any) -> dict[str, Any]:
        checked = Body.check_content.__func__(cls, content)  # type: ignore[attr-defined]
        _cross_check(cls.KIND, _usage_problem(checked), remote=True)
        return checked  # type: ignore[no-any-return]


# --- kinds carried inside sealed direct messages (SPEC §6), never in feeds ---------

#: File types an attachment may have: documents and pictures NGOs exchange; nothing
#: executable or scriptable (no HTML, SVG, or macro-enabled Office formats).
ATTACHMENT_TYPES: Final = (
    "application/pdf",
    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    "image/jpeg",
    "image/png",
    "text/csv",
    "text/plain",
)
#: Attachments together: 768 KiB, so a sealed message stays under 1 MiB on the wire.
MAX_ATTACHMENTS_BYTES: Final = 786_432
MAX_ATTACHMENTS: Final = 8


@finish
@dataclass(frozen=True, slots=True, kw_only=True)
class Attachment(Body):
    KIND = "msg.attachment"
    CHECKS = MappingProxyType(
        {
            "data": bin_max(MAX_ATTACHMENTS_BYTES),
            "name": text(128),
            "type": one_of(ATTACHMENT_TYPES),
        }
    )
    data: bytes
    name: str
    type: str


def _attachments(name: str, value: Any) -> None:
    if type(value) is not tuple:
        wrong_type(name, value, "array")
    if not 1 <= len(value) <= MAX_ATTACHMENTS:
        fail(ErrorCode.BAD_VALUE, f"{name}: 1..{MAX_ATTACHMENTS} attachments (omit if none)")
    total = 0
    for index, item in enumerate(value):
        if type(item) is not Attachment:
            fail(ErrorCode.WRONG_TYPE, f"{name}[{index}]: expected an attachment")
        total += len(item.data)
    if total > MAX_ATTACHMENTS_BYTES:
        fail(ErrorCode.BAD_VALUE, f"{name}: attachments exceed {MAX_ATTACHMENTS_BYTES} bytes")


@finish
@dataclass(frozen=True, slots=True, kw_only=True)
class TextMessage(Body):
    """``msg.text/1``: a coordinator's message to one peer NGO."""

    KIND = "msg.text/1"
    CHECKS = MappingProxyType(
        {
            "attachments": _attachments,
            "subject": text(200),
            "text": text(32_768, min_chars=0, multi_line=True),
            "thread": _KEY,
        }
    )
    attachments: tuple[Attachment, ...] | None = None
    subject: str | None = None
    text: str
    thread: bytes | None = None

    def to_content(self) -> dict[str, Any]:
        out = Body.to_content(self)
        if self.attachments is not None:
            out["attachments"] = [item.to_content() for item in self.attachments]
        return out

    @classmethod
    def _prepare(cls, content: dict[str, Any]) -> dict[str, Any]:
        attachments = content.get("attachments")
        if type(attachments) is list:
            if not 1 <= len(attachments) <= MAX_ATTACHMENTS:  # before parsing any of them
                fail(ErrorCode.BAD_VALUE, f"attachments: 1..{MAX_ATTACHMENTS} (omit if none)")
            content = dict(content)
            content["attachments"] = tuple(
                Attachment.from_content(item) for item in content["attachments"]
            )
        return content


@finish
@dataclass(frozen=True, slots=True, kw_only=True)
class Receipt(Body):
    """``msg.receipt/1``: the recipient confirms a message reached it or was read."""

    KIND = "msg.receipt/1"
    CHECKS = MappingProxyType({"message": _KEY, "state": one_of(("delivered", "read"))})
    message: bytes
    state: str


def _registry(*classes: type[Body]) -> MappingProxyType[str, type[Body]]:
    return MappingProxyType({cls.KIND: cls for cls in classes})


#: Kinds whose content this version interprets in feed entries.
ENTRY_KINDS: Final = _registry(
    Profile, KeyRotate, Vouch, Checkpoint, Allocation, AllocationVoid, OracleConfig, OracleUsage
)
#: Kinds this version interprets inside sealed messages.
MESSAGE_KINDS: Final = _registry(TextMessage, Receipt)
