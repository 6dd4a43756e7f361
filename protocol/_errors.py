"""One error family for the whole protocol layer (STYLE §5).

Every failure the protocol layer can report is a :class:`ProtocolError` carrying a
machine-readable :class:`ErrorCode`. :class:`LocalProtocolError` means *we* tried to
build something illegal (a programming or configuration error on this node);
:class:`RemoteProtocolError` means bytes from outside (a peer, a file, a database row
written by an older version) are invalid. HTTP layers map codes to statuses in one
place; a peer's message text is never shown to our own users verbatim.
"""

from __future__ import annotations

import enum

__all__ = [
    "CodedError",
    "ErrorCode",
    "LocalProtocolError",
    "ProtocolError",
    "RemoteProtocolError",
]


class ErrorCode(enum.StrEnum):
    """Stable, machine-readable error codes. Values never change once published."""

    # Encoding (SPEC §2)
    MALFORMED = "MALFORMED"  # not msgpack, truncated, trailing bytes
    NON_CANONICAL = "NON_CANONICAL"  # valid msgpack, but not the one canonical encoding
    DUPLICATE_KEY = "DUPLICATE_KEY"
    FORBIDDEN_TYPE = "FORBIDDEN_TYPE"  # float, ext, non-str map key, unencodable value
    TOO_LARGE = "TOO_LARGE"
    TOO_DEEP = "TOO_DEEP"
    TOO_MANY_ITEMS = "TOO_MANY_ITEMS"
    # Schemas (SPEC §5)
    MISSING_FIELD = "MISSING_FIELD"
    UNKNOWN_FIELD = "UNKNOWN_FIELD"
    WRONG_TYPE = "WRONG_TYPE"
    BAD_VALUE = "BAD_VALUE"
    BAD_KIND = "BAD_KIND"
    UNSUPPORTED_VERSION = "UNSUPPORTED_VERSION"
    # Entries and feeds (SPEC §3-4)
    WRONG_NET = "WRONG_NET"
    BAD_SIGNATURE = "BAD_SIGNATURE"
    WRONG_AUTHOR = "WRONG_AUTHOR"
    BAD_PREV = "BAD_PREV"
    SEQ_GAP = "SEQ_GAP"
    TS_IN_FUTURE = "TS_IN_FUTURE"
    TS_BEFORE_PREV = "TS_BEFORE_PREV"
    EXPIRED = "EXPIRED"  # a sealed message older than MAX_MESSAGE_AGE_MS
    CLOCK_UNSET = "CLOCK_UNSET"
    FORK = "FORK"  # raised by nodes that find one (SPEC §4.2), not by this library
    NOT_A_FORK = "NOT_A_FORK"
    # Sealed messages (SPEC §6)
    WRONG_RECIPIENT = "WRONG_RECIPIENT"
    DECRYPT_FAILED = "DECRYPT_FAILED"
    ID_MISMATCH = "ID_MISMATCH"
    # HTTP message signatures (SPEC §11)
    SIGNATURE_MISSING = "SIGNATURE_MISSING"  # no Signature-Input/Signature member "watan"
    SIGNATURE_MALFORMED = "SIGNATURE_MALFORMED"  # bad RFC 8941 syntax, params, alg, tag, nonce
    SIGNATURE_COMPONENTS = "SIGNATURE_COMPONENTS"  # not exactly the covered components required
    SIGNATURE_EXPIRED = "SIGNATURE_EXPIRED"  # past expires, or a lifetime out of bounds
    SIGNATURE_EARLY = "SIGNATURE_EARLY"  # created more than MAX_SIGNATURE_SKEW_S ahead
    SIGNATURE_REPLAYED = "SIGNATURE_REPLAYED"  # raised by nodes' replay caches, not here
    UNKNOWN_SIGNER = "UNKNOWN_SIGNER"  # no key for the keyid
    BAD_DIGEST = "BAD_DIGEST"  # Content-Digest missing, malformed or not the body's
    # Keys and arguments
    BAD_KEY = "BAD_KEY"
    # OPRF and threshold evaluation (SPEC §13)
    BAD_ELEMENT = "BAD_ELEMENT"  # not a canonical ristretto255 element, or the identity
    BAD_SCALAR = "BAD_SCALAR"  # not a canonical scalar, or zero
    BAD_PROOF = "BAD_PROOF"  # a DLEQ proof does not verify against the key it names
    TOO_FEW_SHARES = "TOO_FEW_SHARES"  # fewer than threshold valid share evaluations
    # Pseudonym inputs (SPEC §14)
    BAD_NATIONAL_ID = "BAD_NATIONAL_ID"  # not 12 digits after normalization
    BAD_NAME = "BAD_NAME"  # a fallback-key field empty, too long, or not letters


class CodedError(Exception):
    """An error with a machine-readable code: the shape of every Watan error family
    (protocol here, storage and services in ``node``), so that one HTTP middleware
    can map any of them to a status and a body.

    Attributes:
        code: the machine-readable reason (a ``StrEnum`` member).
        message: a human-readable explanation, in English, safe to log (never PII).
    """

    code: enum.StrEnum
    message: str

    def __init__(self, message: str, *, code: enum.StrEnum) -> None:
        super().__init__(message)
        self.code = code
        self.message = message

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.message!r}, code={self.code.value})"

    def __str__(self) -> str:
        return f"{self.code.value}: {self.message}"


class ProtocolError(CodedError):
    """Base of every error raised by ``protocol``."""

    code: ErrorCode

    def __init__(self, message: str, *, code: ErrorCode) -> None:
        super().__init__(message, code=code)


class LocalProtocolError(ProtocolError):
    """We tried to create or send something the protocol forbids."""


class RemoteProtocolError(ProtocolError):
    """Bytes we received (from a peer, a file, or storage) violate the protocol."""
