"""Signed node-to-node HTTP: the client side, and the checks the server side shares.

Every federation request and response carries an RFC 9421 signature by the sending
node's Ed25519 key and an RFC 9530 ``Content-Digest`` (profile: SPEC §11). Bodies are
canonical msgpack documents (SPEC §2), ``Content-Type: application/vnd.watan+msgpack``.

The verifier keeps a replay cache of ``(keyid, nonce)`` until the signature expires.
The cache lives in memory; so that a restart cannot reopen it, a request signed before
this process started is refused as stale (the sender signs again and retries).
"""

from __future__ import annotations

import base64
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import urlsplit

import aiohttp

import protocol
from node.clock import Clock
from node.identity import Identity

__all__ = [
    "CONTENT_TYPE",
    "FED_PREFIX",
    "MAX_FED_BODY",
    "FedClient",
    "PeerCallError",
    "ReplayCache",
    "SignedRequest",
    "new_nonce",
    "sign_headers",
]

FED_PREFIX: Final = "/fed/v1"
CONTENT_TYPE: Final = "application/vnd.watan+msgpack"
#: A federation body is one canonical document (SPEC §2.6: at most 1 100 000 bytes).
MAX_FED_BODY: Final = protocol.MAX_DOCUMENT_BYTES
#: Per request: connecting may take this long on a bad link...
CONNECT_TIMEOUT_S: Final = 10.0
#: ...and the whole exchange this long; a slower peer counts as failed this round.
REQUEST_TIMEOUT_S: Final = 60.0
#: How long a signature we make stays valid.
SIGNATURE_LIFETIME_S: Final = 120

_log = logging.getLogger(__name__)


class PeerCallError(Exception):
    """A call to a peer failed: unreachable, timed out, refused, or its answer did not
    verify. ``code`` is machine-readable (an error code the peer sent, or ours:
    ``UNREACHABLE``, ``TIMEOUT``, ``BAD_RESPONSE``...); ``status`` the HTTP status."""

    def __init__(self, code: str, message: str, *, status: int | None = None) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.status = status


def new_nonce(random_bytes: Callable[[int], bytes]) -> str:
    """A fresh signature nonce (18 random bytes, base64url: 24 characters)."""
    return base64.urlsafe_b64encode(random_bytes(18)).decode("ascii")


def sign_headers(
    *,
    identity: Identity,
    method: str,
    authority: str,
    path: str,
    query: str,
    body: bytes,
    now_s: int,
    nonce: str,
) -> dict[str, str]:
    """The headers that authenticate a request we send."""
    headers = {"Content-Type": CONTENT_TYPE, "Content-Digest": protocol.content_digest(body)}
    params = protocol.SignatureParams(
        keyid=identity.node_id.hex(),
        created=now_s,
        expires=now_s + SIGNATURE_LIFETIME_S,
        nonce=nonce,
    )
    headers.update(
        protocol.sign_request(
            method=method,
            authority=authority,
            path=path,
            query=query,
            headers=headers,
            key=identity.signing_key,
            params=params,
        )
    )
    return headers


class ReplayCache:
    """``(keyid, nonce)`` pairs seen, each kept until its signature expires."""

    def __init__(self, *, started_s: int, max_entries: int = 200_000) -> None:
        self.started_s = started_s
        self._seen: dict[tuple[str, str], int] = {}
        self._max = max_entries

    def check(self, keyid: str, nonce: str, *, created: int, expires: int, now_s: int) -> None:
        """Record a verified signature's nonce.

        Raises:
            RemoteProtocolError: SIGNATURE_REPLAYED (seen before), SIGNATURE_EXPIRED
                (signed before this process started: we cannot know it is fresh).
        """
        if created < self.started_s - 1:
            raise protocol.RemoteProtocolError(
                "signed before this node started; sign again",
                code=protocol.ErrorCode.SIGNATURE_EXPIRED,
            )
        if len(self._seen) >= self._max:
            self._prune(now_s)
        key = (keyid, nonce)
        if key in self._seen:
            raise protocol.RemoteProtocolError(
                "this request was seen before", code=protocol.ErrorCode.SIGNATURE_REPLAYED
            )
        if len(self._seen) >= self._max:  # still full of live nonces: a flood
            raise protocol.RemoteProtocolError(
                "too many requests", code=protocol.ErrorCode.SIGNATURE_REPLAYED
            )
        self._seen[key] = expires

    def _prune(self, now_s: int) -> None:
        self._seen = {key: exp for key, exp in self._seen.items() if exp >= now_s}

    def prune(self, now_s: int) -> None:
        self._prune(now_s)


@dataclass(frozen=True, slots=True, kw_only=True)
class SignedRequest:
    """What the server learned from a verified request."""

    signer: bytes
    body: bytes
    signature: str
    value: Any


def _authority(url: str) -> tuple[str, str]:
    """``(authority, base path)`` of a peer's federation URL."""
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    if ":" in host:
        host = f"[{host}]"
    port = parts.port
    default = {"http": 80, "https": 443}.get(parts.scheme)
    authority = host if port is None or port == default else f"{host}:{port}"
    return authority, parts.path.rstrip("/")


class FedClient:
    """Signed calls to peers. One per node; close it on shutdown.

    Args:
        key_of: the key a peer signs with (its feed's current key), or None.
    """

    def __init__(
        self,
        identity: Identity,
        *,
        clock: Clock,
        random_bytes: Callable[[int], bytes],
        key_of: Callable[[bytes], Awaitable[bytes | None]],
        timeout_s: float = REQUEST_TIMEOUT_S,
    ) -> None:
        self._identity = identity
        self._clock = clock
        self._random = random_bytes
        self._key_of = key_of
        self._timeout = aiohttp.ClientTimeout(
            total=timeout_s, connect=CONNECT_TIMEOUT_S, sock_read=timeout_s
        )
        self._session: aiohttp.ClientSession | None = None

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                timeout=self._timeout,
                connector=aiohttp.TCPConnector(limit_per_host=4, ttl_dns_cache=60),
                auto_decompress=False,
            )
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def call(
        self,
        peer: bytes,
        url: str,
        method: str,
        path: str,
        body: Mapping[str, Any] | None = None,
        *,
        query: Mapping[str, str] | None = None,
        expect_signer: bytes | None = None,
    ) -> Any:
        """Send a signed request to ``url + path`` and return the verified, decoded
        response document.

        Args:
            peer: whom we mean to reach; the response must be signed by it
                (``expect_signer`` overrides, for the first contact of an invite).

        Raises:
            PeerCallError: on any failure (never a bare aiohttp or protocol error).
        """
        authority, base = _authority(url)
        full_path = base + path
        query_text = "&".join(f"{k}={v}" for k, v in (query or {}).items())
        data = protocol.encode(dict(body)) if body is not None else b""
        now_s = self._clock.now_ms() // 1000
        headers = sign_headers(
            identity=self._identity,
            method=method,
            authority=authority,
            path=full_path,
            query="?" + query_text if query_text else "",
            body=data,
            now_s=now_s,
            nonce=new_nonce(self._random),
        )
        target = url.rstrip("/") + path + ("?" + query_text if query_text else "")
        signer = expect_signer or peer
        try:
            async with self._client().request(
                method, target, data=data, headers=headers, allow_redirects=False
            ) as response:
                raw = await _read_limited(response)
                return await self._verified(
                    response.status,
                    response.headers,
                    raw,
                    headers["Signature"],
                    (method, authority, full_path, "?" + query_text if query_text else ""),
                    signer,
                )
        except PeerCallError:
            raise
        except TimeoutError:
            raise PeerCallError("TIMEOUT", "the peer did not answer in time") from None
        except aiohttp.ClientError as error:
            raise PeerCallError("UNREACHABLE", type(error).__name__) from None
        except OSError as error:
            raise PeerCallError("UNREACHABLE", error.strerror or "network error") from None

    async def _verified(
        self,
        status: int,
        headers: Mapping[str, str],
        raw: bytes,
        request_signature: str,
        request: tuple[str, str, str, str],
        signer: bytes,
    ) -> Any:
        if status >= 400 and "signature" not in {k.lower() for k in headers}:
            raise PeerCallError(_error_code(raw), f"refused with HTTP {status}", status=status)
        key = await self._key_of(signer) or signer
        try:
            verified = protocol.verify_response(
                status=status,
                headers=headers,
                body=raw,
                request_signature=request_signature,
                request=request,
                now_s=self._clock.now_ms() // 1000,
                key_of=lambda keyid: key if keyid == signer.hex() else None,
            )
            del verified
            value = protocol.decode(raw) if raw else None
        except protocol.ProtocolError as error:
            raise PeerCallError("BAD_RESPONSE", f"{error.code}: {error.message}") from None
        if status >= 400:
            raise PeerCallError(_error_code(raw), f"refused with HTTP {status}", status=status)
        if status >= 300:
            raise PeerCallError("BAD_RESPONSE", f"unexpected HTTP {status}", status=status)
        return value


def _error_code(raw: bytes) -> str:
    try:
        value = protocol.decode(raw)
        code = value["error"]["code"]
        if type(code) is str and code.isascii() and 0 < len(code) <= 64:
            return code
    except (protocol.ProtocolError, TypeError, KeyError):
        pass
    return "REFUSED"


async def _read_limited(response: aiohttp.ClientResponse) -> bytes:
    length = response.content_length
    if length is not None and length > MAX_FED_BODY:
        raise PeerCallError("BAD_RESPONSE", "response too large", status=response.status)
    chunks: list[bytes] = []
    size = 0
    while chunk := await response.content.readany():  # read(n) may return less than n
        size += len(chunk)
        if size > MAX_FED_BODY:
            raise PeerCallError("BAD_RESPONSE", "response too large", status=response.status)
        chunks.append(chunk)
    return b"".join(chunks)
