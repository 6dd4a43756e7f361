"""HTTP message signatures (RFC 9421) and digests (RFC 9530) between nodes (SPEC §11).

One strict profile; a verifier refuses everything else:

- one signature, labelled ``watan`` in both ``Signature-Input`` and ``Signature``
  (other labels may be present and are ignored);
- a request covers ``("@method" "@authority" "@path" "@query" "content-digest")``;
  a response covers ``("@status" "content-digest" "@method";req "@authority";req
  "@path";req "@query";req "signature";req;key="watan")``: the last names the request's
  own signature, so a response answers one request and no other (RFC 9421 §2.4);
- parameters are exactly ``keyid`` (the signer's node id, 64 lowercase hex digits),
  ``created``, ``expires``, ``nonce`` (16 to 64 base64url characters), ``alg="ed25519"``
  and ``tag="watan-fed/v1"``, in any order, each once;
- every message, bodiless ones included, carries ``Content-Digest: sha-256=:...:``,
  so the component list never depends on the method.

This module is pure (STYLE §1): callers pass the clock (``now_s``) and nonces in, and
keep the replay cache themselves. Verifiers MUST refuse a ``(keyid, nonce)`` they have
seen until its ``expires`` has passed (SPEC §11.6); nothing here can remember it.

Values travel as ``str`` as the HTTP library hands them over. Anything a signature base
cannot hold (a non-ASCII character, a control character, a line break that would
forge another line of the base) is refused before signing or verifying.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import string
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Final

from ._errors import ErrorCode, LocalProtocolError, RemoteProtocolError
from ._keys import SigningKey, sign, verify
from ._sfv import (
    BareItem,
    InnerList,
    Item,
    Member,
    Params,
    SFError,
    parse_dictionary,
    serialize_bare,
    serialize_dictionary,
    serialize_inner_list,
    serialize_item,
    serialize_member,
)

__all__ = [
    "MAX_SIGNATURE_LIFETIME_S",
    "MAX_SIGNATURE_SKEW_S",
    "REQUEST_COMPONENTS",
    "RESPONSE_COMPONENTS",
    "SIGNATURE_LABEL",
    "SIGNATURE_TAG",
    "SignatureParams",
    "VerifiedSignature",
    "check_content_digest",
    "content_digest",
    "sign_request",
    "sign_response",
    "verify_request",
    "verify_response",
]

SIGNATURE_LABEL: Final = "watan"
#: RFC 9421 §2.3 ``tag``: names the application, so a signature made for another
#: protocol with the same key is never taken for ours (and a v2 profile gets a new tag).
SIGNATURE_TAG: Final = "watan-fed/v1"
#: A signature is valid for at most 5 minutes: long enough for a slow link to deliver
#: a request (the client's whole exchange times out after 60 s), short enough that a
#: replay cache holding every nonce until expiry stays small.
MAX_SIGNATURE_LIFETIME_S: Final = 300
#: ``created`` may be 60 s ahead of the verifier's clock: nodes run NTP, but boxes on
#: unreliable links drift (the pyauth library allows 5 s; Kerberos 300 s, RFC 4120 §10).
MAX_SIGNATURE_SKEW_S: Final = 60
#: Largest Signature-Input, Signature or Content-Digest value parsed: 8 KiB, the field
#: size HTTP servers accept (aiohttp 8190, nginx 8 KiB), over 20 times what we send.
_MAX_FIELD_CHARS: Final = 8192
_ALG: Final = "ed25519"
_NONCE: Final = re.compile(r"[A-Za-z0-9_-]{16,64}")
_KEYID: Final = re.compile(r"[0-9a-f]{64}")
_MAX_SF_INTEGER: Final = 999_999_999_999_999  # RFC 8941 §3.3.1

_REQ: Final[Params] = (("req", True),)
REQUEST_ITEMS: Final = tuple(
    Item(name) for name in ("@method", "@authority", "@path", "@query", "content-digest")
)
RESPONSE_ITEMS: Final = (
    Item("@status"),
    Item("content-digest"),
    Item("@method", _REQ),
    Item("@authority", _REQ),
    Item("@path", _REQ),
    Item("@query", _REQ),
    Item("signature", (("req", True), ("key", SIGNATURE_LABEL))),
)
#: The covered components of a request, as serialized component identifiers, in order.
REQUEST_COMPONENTS: Final = tuple(serialize_item(c) for c in REQUEST_ITEMS)
#: The covered components of a response, as serialized component identifiers, in order.
RESPONSE_COMPONENTS: Final = tuple(serialize_item(c) for c in RESPONSE_ITEMS)

_VISIBLE: Final = frozenset(chr(c) for c in range(0x21, 0x7F))
_TCHAR: Final = frozenset(string.ascii_letters + string.digits + "!#$%&'*+-.^_`|~")
_AUTHORITY: Final = _VISIBLE - frozenset("/?#@")
_PATH: Final = _VISIBLE - frozenset("?#")
_QUERY: Final = _VISIBLE - frozenset("#")
_FIELD: Final = _VISIBLE | frozenset(" \t")


@dataclass(frozen=True, slots=True, kw_only=True)
class SignatureParams:
    """The signature parameters a node signs with (RFC 9421 §2.3).

    Raises:
        LocalProtocolError: BAD_VALUE for a keyid that is not a node id in lowercase
            hex, a nonce outside the profile, another ``alg`` or ``tag``, or times
            that are not ``0 <= created < expires <= created + 300``.
    """

    keyid: str
    created: int
    expires: int
    nonce: str
    alg: str = _ALG
    tag: str = SIGNATURE_TAG

    def __post_init__(self) -> None:
        problem = _format_problem(self.keyid, self.nonce, self.alg, self.tag)
        created, expires = self.created, self.expires
        if problem is None and not (
            type(created) is int
            and type(expires) is int
            and 0 <= created < expires <= min(created + MAX_SIGNATURE_LIFETIME_S, _MAX_SF_INTEGER)
        ):
            problem = f"need 0 <= created < expires <= created + {MAX_SIGNATURE_LIFETIME_S}"
        if problem is not None:
            raise LocalProtocolError(problem, code=ErrorCode.BAD_VALUE)

    def sf_params(self) -> Params:
        """The parameters in the order this implementation writes them."""
        return (
            ("keyid", self.keyid),
            ("created", self.created),
            ("expires", self.expires),
            ("nonce", self.nonce),
            ("alg", self.alg),
            ("tag", self.tag),
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class VerifiedSignature:
    """What a verified signature tells: who signed (``keyid``, ``key``), when, and
    the nonce a replay cache must remember until ``expires``."""

    keyid: str
    created: int
    expires: int
    nonce: str
    key: bytes
    components: tuple[str, ...]
    signature: bytes


def _format_problem(keyid: object, nonce: object, alg: object, tag: object) -> str | None:
    if type(keyid) is not str or not _KEYID.fullmatch(keyid):
        return "keyid is a node id: 64 lowercase hex digits"
    if type(nonce) is not str or not _NONCE.fullmatch(nonce):
        return "nonce is 16 to 64 characters of the base64url alphabet"
    if alg != _ALG:
        return f'alg must be "{_ALG}"'
    if tag != SIGNATURE_TAG:
        return f'tag must be "{SIGNATURE_TAG}"'
    return None


# --- digests (RFC 9530) --------------------------------------------------------------


def content_digest(body: bytes) -> str:
    """The ``Content-Digest`` value of ``body``: ``sha-256=:<base64>:`` (RFC 9530 §2)."""
    return "sha-256=" + serialize_bare(hashlib.sha256(body).digest())


def check_content_digest(header: str | None, body: bytes) -> None:
    """Check a ``Content-Digest`` value against the body received.

    The value is an RFC 8941 Dictionary; its one ``sha-256`` member must be the
    SHA-256 of ``body`` (compared in constant time). Other members (``sha-512``, ...)
    are ignored, and do not stand in for ``sha-256``.

    Raises:
        RemoteProtocolError: BAD_DIGEST if the field is absent, too long, not a
            Dictionary, has no (or two) ``sha-256`` byte sequences, or does not match.
    """
    if header is None:
        raise _remote(ErrorCode.BAD_DIGEST, "no Content-Digest field")
    if len(header) > _MAX_FIELD_CHARS:
        raise _remote(ErrorCode.BAD_DIGEST, "Content-Digest too long")
    try:
        members = parse_dictionary(header)
    except SFError as error:
        raise _remote(ErrorCode.BAD_DIGEST, f"Content-Digest: {error}") from None
    found = [member for name, member in members if name == "sha-256"]
    if len(found) != 1:
        raise _remote(ErrorCode.BAD_DIGEST, "Content-Digest needs exactly one sha-256 member")
    value = found[0].value if isinstance(found[0], Item) else None
    if not isinstance(value, bytes):
        raise _remote(ErrorCode.BAD_DIGEST, "the sha-256 digest is not a byte sequence")
    if not hmac.compare_digest(value, hashlib.sha256(body).digest()):
        raise _remote(ErrorCode.BAD_DIGEST, "body does not match its Content-Digest")


# --- component values (RFC 9421 §2.1, §2.2) -----------------------------------------


class _Unsignable(Exception):
    """A component that no signature base can hold, or that is missing."""

    def __init__(self, message: str, code: ErrorCode = ErrorCode.BAD_SIGNATURE) -> None:
        super().__init__(message)
        self.code = code


def _only(value: str, allowed: frozenset[str], what: str) -> str:
    if not value or not set(value) <= allowed:
        raise _Unsignable(f"{what} is empty or holds a character a signature cannot cover")
    return value


def field_value(headers: Mapping[str, str], name: str) -> str | None:
    """A header field's component value (RFC 9421 §2.1): every field line named
    ``name`` (in any case), each trimmed of SP and HTAB, joined by ``", "``; None if
    there is none. Iterates ``items()``, so a multidict's repeated lines all count."""
    lines = [v.strip(" \t") for k, v in headers.items() if k.isascii() and k.lower() == name]
    return ", ".join(lines) if lines else None


def _covered_field(headers: Mapping[str, str], name: str) -> str:
    value = field_value(headers, name)
    if value is None:
        raise _Unsignable(f"no {name} field", ErrorCode.BAD_DIGEST)
    if not set(value) <= _FIELD:
        raise _Unsignable(f"{name} holds a character a signature cannot cover")
    return value


def _path(path: str) -> str:
    # §2.2.6: the path as sent (percent-encoding kept); an empty path is "/".
    path = path or "/"
    if path[0] != "/":
        raise _Unsignable("@path must start with '/'")
    return _only(path, _PATH, "@path")


def _query(query: str) -> str:
    # §2.2.7: "?" and the query as sent; no query at all is "?".
    query = query or "?"
    if query[0] != "?":
        raise _Unsignable("@query must start with '?' (or be empty)")
    return _only(query, _QUERY, "@query")


def _target(method: str, authority: str, path: str, query: str) -> list[str]:
    """``@method``, ``@authority``, ``@path``, ``@query`` (RFC 9421 §2.2.1-§2.2.7)."""
    return [
        # §2.2.1: as given, not case-normalized; a method is a token (RFC 9110 §9.1).
        _only(method, _TCHAR, "@method"),
        # §2.2.3: the host in lowercase; the caller leaves out a default port.
        _only(authority, _AUTHORITY, "@authority").lower(),
        _path(path),
        _query(query),
    ]


def request_values(
    *, method: str, authority: str, path: str, query: str, headers: Mapping[str, str]
) -> dict[str, str]:
    """The value of each of :data:`REQUEST_COMPONENTS`, by identifier."""
    values = [*_target(method, authority, path, query), _covered_field(headers, "content-digest")]
    return dict(zip(REQUEST_COMPONENTS, values, strict=True))


def response_values(
    *,
    status: int,
    headers: Mapping[str, str],
    request: tuple[str, str, str, str],
    request_member: str,
) -> dict[str, str]:
    """The value of each of :data:`RESPONSE_COMPONENTS`, by identifier."""
    if type(status) is not int or not 100 <= status <= 999:
        raise _Unsignable("@status is a three-digit integer")  # §2.2.9
    digest = _covered_field(headers, "content-digest")
    values = [str(status), digest, *_target(*request), request_member]
    return dict(zip(RESPONSE_COMPONENTS, values, strict=True))


# --- the signature base (RFC 9421 §2.3, §2.5) ---------------------------------------


def signature_params_value(components: Sequence[Item], params: Params) -> str:
    """The ``@signature-params`` value: the inner list of component identifiers with
    the signature parameters (RFC 9421 §2.3); also the ``Signature-Input`` member."""
    return serialize_inner_list(InnerList(tuple(components), params))


def signature_base(lines: Sequence[tuple[str, str]], signature_params: str) -> bytes:
    """The signature base (RFC 9421 §2.5): a line ``identifier: value`` per covered
    component in order, then ``"@signature-params": ...``; lines end in LF except
    the last. ``lines`` pairs serialized identifiers with values already checked."""
    text = [f"{identifier}: {value}" for identifier, value in lines]
    text.append(f'"@signature-params": {signature_params}')
    return "\n".join(text).encode("ascii")


def signature_fields(
    components: Sequence[Item],
    values: Mapping[str, str],
    params: Params,
    key: SigningKey,
    *,
    label: str = SIGNATURE_LABEL,
) -> tuple[dict[str, str], bytes]:
    """Sign any component list with any parameters: the profile's signers use it, and
    tests use it to reproduce RFC 9421 vectors and to build signatures we refuse.

    Returns:
        The ``Signature-Input`` and ``Signature`` fields, and the signature base signed.
    """
    inner = InnerList(tuple(components), params)
    identifiers = [serialize_item(c) for c in components]
    base = signature_base([(i, values[i]) for i in identifiers], serialize_inner_list(inner))
    signature = Item(sign(key, base))
    fields = {
        "Signature-Input": serialize_dictionary([(label, inner)]),
        "Signature": serialize_dictionary([(label, signature)]),
    }
    return fields, base


def request_member(request_signature: str) -> str:
    """The ``"signature";req;key="watan"`` value: our member of the request's
    Signature field, serialized (RFC 9421 §2.1.2). It is our own request's field (on
    the server, one already verified), so a bad one is a local error."""
    try:
        member = _single(parse_dictionary(request_signature))
    except SFError:
        member = None
    if member is None or _signature_bytes(member) is None:
        raise LocalProtocolError(
            "request_signature has no single 'watan' signature", code=ErrorCode.BAD_VALUE
        )
    return serialize_member(member)


def _single(members: list[tuple[str, Member]]) -> Member | None:
    found = [member for name, member in members if name == SIGNATURE_LABEL]
    if len(found) > 1:
        raise SFError(f"two '{SIGNATURE_LABEL}' members")
    return found[0] if found else None


def _signature_bytes(member: Member) -> bytes | None:
    if isinstance(member, Item) and isinstance(member.value, bytes) and not member.params:
        return member.value
    return None


# --- signing ------------------------------------------------------------------------


def sign_request(
    *,
    method: str,
    authority: str,
    path: str,
    query: str,
    headers: Mapping[str, str],
    key: SigningKey,
    params: SignatureParams,
) -> dict[str, str]:
    """Sign a request to a peer (SPEC §11.3).

    Args:
        method: as sent, e.g. ``"POST"``.
        authority: the host in the request target or ``Host``, with a port only when
            it is not the scheme's default (RFC 9110 §4.2.3).
        path: the target's path as sent, percent-encoding kept.
        query: the target's query with its leading ``"?"``, or ``""`` for none.
        headers: the request's headers; they must include ``Content-Digest``
            (:func:`content_digest` of the body, also for an empty body).

    Returns:
        ``{"Signature-Input": ..., "Signature": ...}`` to add to the request.

    Raises:
        LocalProtocolError: BAD_VALUE for a missing Content-Digest or a component
            a signature base cannot hold.
    """
    try:
        values = request_values(
            method=method, authority=authority, path=path, query=query, headers=headers
        )
    except _Unsignable as error:
        raise LocalProtocolError(str(error), code=ErrorCode.BAD_VALUE) from None
    return signature_fields(REQUEST_ITEMS, values, params.sf_params(), key)[0]


def sign_response(
    *,
    status: int,
    headers: Mapping[str, str],
    request_signature: str,
    request: tuple[str, str, str, str],
    key: SigningKey,
    params: SignatureParams,
) -> dict[str, str]:
    """Sign a response, bound to the request it answers (SPEC §11.4).

    Args:
        headers: the response's headers, with its ``Content-Digest``.
        request_signature: the request's ``Signature`` field value.
        request: the request's ``(method, authority, path, query)``, as for
            :func:`sign_request`.

    Returns:
        ``{"Signature-Input": ..., "Signature": ...}`` to add to the response.

    Raises:
        LocalProtocolError: BAD_VALUE as for :func:`sign_request`, and if
            ``request_signature`` has no single ``watan`` byte sequence.
    """
    member = request_member(request_signature)
    try:
        values = response_values(
            status=status, headers=headers, request=request, request_member=member
        )
    except _Unsignable as error:
        raise LocalProtocolError(str(error), code=ErrorCode.BAD_VALUE) from None
    return signature_fields(RESPONSE_ITEMS, values, params.sf_params(), key)[0]


# --- verifying ----------------------------------------------------------------------


def _remote(code: ErrorCode, message: str) -> RemoteProtocolError:
    return RemoteProtocolError(message, code=code)


def _malformed(message: str) -> RemoteProtocolError:
    return _remote(ErrorCode.SIGNATURE_MALFORMED, message)


def _labelled(headers: Mapping[str, str], name: str) -> Member:
    value = field_value(headers, name)
    if value is None:
        raise _remote(ErrorCode.SIGNATURE_MISSING, f"no {name} field")
    if len(value) > _MAX_FIELD_CHARS:
        raise _malformed(f"{name} longer than {_MAX_FIELD_CHARS} characters")
    try:
        member = _single(parse_dictionary(value))
    except SFError as error:
        raise _malformed(f"{name}: {error}") from None
    if member is None:
        raise _remote(ErrorCode.SIGNATURE_MISSING, f"no '{SIGNATURE_LABEL}' member in {name}")
    return member


def _text(params: Mapping[str, BareItem], name: str) -> str:
    value = params.get(name)
    if not isinstance(value, str):
        raise _malformed(f"parameter {name} is missing or not a string")
    return value


def _integer(params: Mapping[str, BareItem], name: str) -> int:
    value = params.get(name)
    if isinstance(value, bool) or not isinstance(value, int):
        raise _malformed(f"parameter {name} is missing or not an integer")
    return value


def _check_params(params: Params) -> tuple[str, int, int, str]:
    found: dict[str, BareItem] = {}
    for name, value in params:
        if name not in ("keyid", "created", "expires", "nonce", "alg", "tag"):
            raise _malformed(f"unknown signature parameter {name}")
        if name in found:
            raise _malformed(f"signature parameter {name} given twice")
        found[name] = value
    keyid, nonce = _text(found, "keyid"), _text(found, "nonce")
    created, expires = _integer(found, "created"), _integer(found, "expires")
    problem = _format_problem(keyid, nonce, _text(found, "alg"), _text(found, "tag"))
    if problem is not None:
        raise _malformed(problem)
    return keyid, created, expires, nonce


def _verify(
    headers: Mapping[str, str],
    components: tuple[Item, ...],
    values: Callable[[], dict[str, str]],
    now_s: int,
    key_of: Callable[[str], bytes | None],
) -> VerifiedSignature:
    inner = _labelled(headers, "signature-input")
    member = _labelled(headers, "signature")
    if not isinstance(inner, InnerList):
        raise _malformed("the Signature-Input member is not an inner list")
    signature = _signature_bytes(member)
    if signature is None:
        raise _malformed("the Signature member is not a byte sequence")
    keyid, created, expires, nonce = _check_params(inner.params)
    # Compare serializations: Item equality would take ;req=1 for ;req (1 == True).
    identifiers = tuple(serialize_item(c) for c in components)
    if tuple(serialize_item(i) for i in inner.items) != identifiers:
        raise _remote(ErrorCode.SIGNATURE_COMPONENTS, "not the covered components required")
    if not created < expires <= created + MAX_SIGNATURE_LIFETIME_S:
        raise _remote(ErrorCode.SIGNATURE_EXPIRED, "signature lifetime out of bounds")
    if now_s > expires:
        raise _remote(ErrorCode.SIGNATURE_EXPIRED, "signature expired")
    if created > now_s + MAX_SIGNATURE_SKEW_S:
        raise _remote(ErrorCode.SIGNATURE_EARLY, "signature created in the future")
    key = key_of(keyid)
    if key is None:
        raise _remote(ErrorCode.UNKNOWN_SIGNER, "no key for this keyid")
    try:
        by_identifier = values()
    except _Unsignable as error:
        raise _remote(error.code, str(error)) from None
    lines = [(i, by_identifier[i]) for i in identifiers]
    verify(key, signature_base(lines, serialize_inner_list(inner)), signature)
    return VerifiedSignature(
        keyid=keyid,
        created=created,
        expires=expires,
        nonce=nonce,
        key=key,
        components=identifiers,
        signature=signature,
    )


def verify_request(
    *,
    method: str,
    authority: str,
    path: str,
    query: str,
    headers: Mapping[str, str],
    body: bytes,
    now_s: int,
    key_of: Callable[[str], bytes | None],
) -> VerifiedSignature:
    """Verify a peer's request (SPEC §11.5); then the caller checks the nonce is new.

    Args:
        method, authority, path, query: the request as received, in the forms
            :func:`sign_request` takes.
        headers: every header field line received (names in any case).
        body: the body as received.
        now_s: the verifier's clock, seconds since the epoch.
        key_of: the public key a ``keyid`` signs with, or None for a stranger.

    Raises:
        RemoteProtocolError: SIGNATURE_MISSING, SIGNATURE_MALFORMED,
            SIGNATURE_COMPONENTS, SIGNATURE_EXPIRED, SIGNATURE_EARLY, UNKNOWN_SIGNER,
            BAD_SIGNATURE or BAD_DIGEST (SPEC §7), checked in that order.
    """

    def values() -> dict[str, str]:
        return request_values(
            method=method, authority=authority, path=path, query=query, headers=headers
        )

    verified = _verify(headers, REQUEST_ITEMS, values, now_s, key_of)
    check_content_digest(field_value(headers, "content-digest"), body)
    return verified


def verify_response(
    *,
    status: int,
    headers: Mapping[str, str],
    body: bytes,
    request_signature: str,
    request: tuple[str, str, str, str],
    now_s: int,
    key_of: Callable[[str], bytes | None],
) -> VerifiedSignature:
    """Verify a peer's response to the request we signed (SPEC §11.5).

    Args:
        request_signature: the ``Signature`` field value of the request we sent.
        request: that request's ``(method, authority, path, query)``.

    Raises:
        RemoteProtocolError: as :func:`verify_request`.
        LocalProtocolError: BAD_VALUE if ``request_signature`` is not one we made.
    """
    member = request_member(request_signature)

    def values() -> dict[str, str]:
        return response_values(
            status=status, headers=headers, request=request, request_member=member
        )

    verified = _verify(headers, RESPONSE_ITEMS, values, now_s, key_of)
    check_content_digest(field_value(headers, "content-digest"), body)
    return verified
