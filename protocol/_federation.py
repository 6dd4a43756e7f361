"""Federations and invites (SPEC §12).

A federation is founded once by one node: the **genesis** is a small document the
founder signs (its name, the founder's node id, when), and the federation id ``net`` is
SHA-256 of the genesis wire. Anyone holding the genesis can check both the founder's
signature and that it hashes to the ``net`` they were told, so an invite cannot smuggle
a node into another federation than the one its genesis names.

An **invite** is a one-time token an admin hands to another NGO out of band (a chat
message, a printed QR code): the inviter's URL and node id, the genesis, a 32-byte
secret and an expiry. It is text, ``watan-invite-1.`` then base64url (no padding) of a
canonical document, so it survives copy and paste and fits a QR code. The token
proves nothing by itself: the accepting admin compares the inviter's fingerprint
before anything is trusted, and the inviter spends the secret once.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from dataclasses import dataclass
from typing import Any, Final

from ._encoding import decode, encode
from ._entry import MAX_TS, MIN_TS
from ._errors import ErrorCode, LocalProtocolError, RemoteProtocolError
from ._keys import SigningKey, public_key, sign, verify
from ._schema import bin_exact, bin_max, check_map, pattern, text, uint

__all__ = [
    "GENESIS_TAG",
    "INVITE_PREFIX",
    "MAX_GENESIS_BYTES",
    "MAX_INVITE_CHARS",
    "Genesis",
    "Invite",
    "create_genesis",
    "parse_genesis",
    "parse_invite",
]

GENESIS_TAG: Final = b"watan/federation/v1\x00"
INVITE_PREFIX: Final = "watan-invite-1."
#: A genesis is a name, a key, a time and a signature: 512 bytes is ample.
MAX_GENESIS_BYTES: Final = 512
#: An invite must fit one QR code (version 40, low error correction: 2953 bytes).
MAX_INVITE_CHARS: Final = 2048

_GENESIS_FIELDS: Final = {
    "founder": bin_exact(32),
    "name": text(100),
    "ts": uint(MIN_TS, MAX_TS),
    "v": uint(0, 2**32 - 1),
}
_URL_CHECK: Final = pattern(r"https?://[!-~]{1,240}", "an http(s) URL of printable ASCII")
_INVITE_FIELDS: Final = {
    "expires": uint(MIN_TS, MAX_TS),
    "genesis": bin_max(MAX_GENESIS_BYTES),
    "node": bin_exact(32),
    "secret": bin_exact(32),
    "url": _URL_CHECK,
    "v": uint(0, 2**32 - 1),
}


def _remote(code: ErrorCode, message: str) -> Any:
    raise RemoteProtocolError(message, code=code)


@dataclass(frozen=True, slots=True, kw_only=True)
class Genesis:
    """A verified federation genesis.

    Attributes:
        net: the federation id, SHA-256 of ``wire``.
        name: the federation's name, as its founder gave it.
        founder: the founding node's id.
        ts: when it was founded (ms since the epoch).
        wire: the exact signed bytes (``[payload, sig]``).
    """

    net: bytes
    name: str
    founder: bytes
    ts: int
    wire: bytes


def create_genesis(name: str, *, key: SigningKey, now_ms: int) -> Genesis:
    """Found a federation: sign its genesis with the founder's key.

    Raises:
        LocalProtocolError: an invalid name (empty, over 100 bytes, control characters)
            or a clock before 2025 (``CLOCK_UNSET``).
    """
    if now_ms < MIN_TS:
        raise LocalProtocolError("the clock is not set (before 2025)", code=ErrorCode.CLOCK_UNSET)
    fields = {"founder": public_key(key), "name": name, "ts": now_ms, "v": 1}
    try:
        check_map("genesis", fields, _GENESIS_FIELDS)
    except RemoteProtocolError as error:
        raise LocalProtocolError(error.message, code=error.code) from None
    payload = encode(fields)
    wire = encode([payload, sign(key, GENESIS_TAG + payload)])
    return parse_genesis(wire)


def parse_genesis(wire: bytes, *, net: bytes | None = None) -> Genesis:
    """Verify a genesis: canonical, well-formed, signed by its founder, and (when
    ``net`` is given) the genesis of that federation.

    Raises:
        RemoteProtocolError: malformed, oversized, ``BAD_SIGNATURE``, or ``WRONG_NET``.
    """
    wire = bytes(wire)
    outer = decode(wire, max_size=MAX_GENESIS_BYTES)
    if type(outer) is not list or len(outer) != 2:
        _remote(ErrorCode.MALFORMED, "a genesis is [payload, sig]")
    payload, sig = outer
    if type(payload) is not bytes or type(sig) is not bytes or len(sig) != 64:
        _remote(ErrorCode.WRONG_TYPE, "a genesis is [bin, bin 64]")
    fields = check_map("genesis", decode(payload, max_size=MAX_GENESIS_BYTES), _GENESIS_FIELDS)
    if fields["v"] != 1:
        _remote(ErrorCode.UNSUPPORTED_VERSION, "genesis version is not 1")
    verify(fields["founder"], GENESIS_TAG + payload, sig)
    digest = hashlib.sha256(wire).digest()
    if net is not None and digest != net:
        _remote(ErrorCode.WRONG_NET, "the genesis is of another federation")
    return Genesis(
        net=digest, name=fields["name"], founder=fields["founder"], ts=fields["ts"], wire=wire
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class Invite:
    """A parsed invite token; its genesis is verified.

    Attributes:
        url: the inviter's federation API base URL (``https://host/fed/v1``).
        node: the inviter's node id: the fingerprint the accepting admin compares.
        genesis: the federation the invite is for.
        secret: the one-time secret the inviter checks (and then spends).
        expires: ms since the epoch after which the inviter refuses it.
    """

    url: str
    node: bytes
    genesis: Genesis
    secret: bytes
    expires: int

    def to_token(self) -> str:
        """The token text (``watan-invite-1.`` + base64url)."""
        data = encode(
            {
                "expires": self.expires,
                "genesis": self.genesis.wire,
                "node": self.node,
                "secret": self.secret,
                "url": self.url,
                "v": 1,
            }
        )
        token = INVITE_PREFIX + base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")
        if len(token) > MAX_INVITE_CHARS:
            raise LocalProtocolError("invite token too long", code=ErrorCode.TOO_LARGE)
        return token

    @classmethod
    def create(
        cls, *, url: str, node: bytes, genesis: Genesis, secret: bytes, expires: int
    ) -> Invite:
        """A checked invite (raises LocalProtocolError on a bad URL, key or secret)."""
        invite = cls(url=url, node=node, genesis=genesis, secret=secret, expires=expires)
        try:
            return parse_invite(invite.to_token())
        except RemoteProtocolError as error:
            raise LocalProtocolError(error.message, code=error.code) from None


def parse_invite(token: str) -> Invite:
    """Parse and check an invite token (surrounding white space is ignored).

    Raises:
        RemoteProtocolError: not an invite (``MALFORMED``), too long (``TOO_LARGE``),
            a malformed document, or an invalid genesis.
    """
    if type(token) is not str:
        _remote(ErrorCode.WRONG_TYPE, "an invite is text")
    token = token.strip()
    if len(token) > MAX_INVITE_CHARS:
        _remote(ErrorCode.TOO_LARGE, f"an invite is at most {MAX_INVITE_CHARS} characters")
    if not token.startswith(INVITE_PREFIX):
        _remote(ErrorCode.MALFORMED, f"an invite starts with {INVITE_PREFIX!r}")
    body = token[len(INVITE_PREFIX) :]
    if not body.isascii() or "=" in body:
        _remote(ErrorCode.MALFORMED, "an invite is base64url without padding")
    try:
        data = base64.b64decode(body + "=" * (-len(body) % 4), altchars=b"-_", validate=True)
    except (binascii.Error, ValueError):
        _remote(ErrorCode.MALFORMED, "an invite is base64url without padding")
    if base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii") != body:
        _remote(ErrorCode.NON_CANONICAL, "the invite's base64url is not canonical")
    fields = check_map("invite", decode(data), _INVITE_FIELDS)
    if fields["v"] != 1:
        _remote(ErrorCode.UNSUPPORTED_VERSION, "invite version is not 1")
    return Invite(
        url=fields["url"],
        node=fields["node"],
        genesis=parse_genesis(fields["genesis"]),
        secret=fields["secret"],
        expires=fields["expires"],
    )
