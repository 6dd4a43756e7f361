"""Node-to-node routes under ``/fed/v1`` (SPEC §11, §12).

Every request must carry a valid RFC 9421 signature and Content-Digest; the signer
must be an approved peer (``hello`` excepted: it presents a one-time invite secret),
and each nonce is accepted once. Every answer, errors included once the request is
verified, is signed and bound to the request's signature. Errors are canonical
msgpack ``{"error": {"code", "message"}}``; nothing here renders HTML or JSON.

| route | answer |
|---|---|
| ``POST /fed/v1/hello`` | spend an invite: ``{node, url}`` |
| ``GET /fed/v1/heads`` | ``{heads: [[author, seq, id, role], ...], forks}`` |
| ``GET /fed/v1/feeds/{author}?after=N&limit=M`` | ``{entries: [wire, ...], more}`` |
| ``GET /fed/v1/forks`` | ``{proofs: [proof, ...]}`` |
| ``POST /fed/v1/notify`` | ``{heads: [...]}`` -> 202, we pull from the caller |
| ``POST /fed/v1/messages`` | ``{envelopes: [...]}`` -> ``{acks: [[id, status, code], ...]}`` |
| ``POST /fed/v1/oprf/evaluate`` | ``{epoch, elements}`` -> ``{elements, index, proof}`` |
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Awaitable, Callable
from typing import Any, Final

from aiohttp import web

import protocol
from node.federation import (
    CONTENT_TYPE,
    FED_PREFIX,
    MAX_FED_BODY,
    FederationError,
    FederationService,
    SignedRequest,
    new_nonce,
)
from node.oracle import MAX_BATCH, OracleError
from node.storage import MAX_RANGE, StorageError

from ._routes import PEER, RouteTable
from ._services import services

__all__ = ["add_federation_routes"]

#: A peer must send its whole body within this time (slow-loris bodies are cut off).
BODY_TIMEOUT_S: Final = 30.0
_HEX64: Final = re.compile(r"[0-9a-f]{64}")
#: Oracle key epochs are 1 .. 2^32 - 1 (SPEC §5.9, ``oracle.config/1``): checked before
#: an epoch reaches a query, where 2^63 and above overflow the database's integers.
_MAX_EPOCH: Final = 2**32 - 1
_STATUS: Final = {
    "SIGNATURE_MISSING": 401,
    "SIGNATURE_MALFORMED": 401,
    "SIGNATURE_COMPONENTS": 401,
    "SIGNATURE_EXPIRED": 401,
    "SIGNATURE_EARLY": 401,
    "SIGNATURE_REPLAYED": 401,
    "UNKNOWN_SIGNER": 401,
    "BAD_SIGNATURE": 401,
    "BAD_DIGEST": 400,
    "NOT_APPROVED": 403,
    "PEER_BLOCKED": 403,
    "STANDALONE": 403,
    "TOO_LARGE": 413,
    "BODY_TIMEOUT": 408,
    "UNSUPPORTED_MEDIA_TYPE": 415,
    "NOT_FOUND": 404,
    "UNAVAILABLE": 503,
    "NOT_AN_ORACLE": 404,
    "QUOTA_EXCEEDED": 429,
}

_log = logging.getLogger(__name__)

FedHandler = Callable[[web.Request, FederationService, SignedRequest], Awaitable[Any]]


class _Refused(Exception):
    def __init__(self, code: str, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status or _STATUS.get(code, 400)


def _body(value: Any) -> bytes:
    return protocol.encode(value)


def _plain_error(code: str, message: str, status: int) -> web.Response:
    """An unsigned error: the request itself could not be verified."""
    return web.Response(
        status=status,
        body=_body({"error": {"code": code, "message": message}}),
        content_type=CONTENT_TYPE,
    )


def _signed(
    request: web.Request, fed: FederationService, signed: SignedRequest, status: int, value: Any
) -> web.Response:
    data = _body(value)
    headers = {"Content-Type": CONTENT_TYPE, "Content-Digest": protocol.content_digest(data)}
    now_s = fed.clock.now_ms() // 1000
    params = protocol.SignatureParams(
        keyid=fed.identity.node_id.hex(),
        created=now_s,
        expires=now_s + 120,
        nonce=new_nonce(services(request).random_bytes),
    )
    headers.update(
        protocol.sign_response(
            status=status,
            headers=headers,
            request_signature=signed.signature,
            request=(
                request.method,
                _authority(request),
                request.rel_url.raw_path,
                _query(request),
            ),
            key=fed.identity.signing_key,
            params=params,
        )
    )
    return web.Response(status=status, body=data, headers=headers)


def _path(request: web.Request) -> str:
    """The path as sent (percent-encoding kept: that is what the signer covered)."""
    return request.rel_url.raw_path


def _authority(request: web.Request) -> str:
    return (request.host or "").lower()


def _query(request: web.Request) -> str:
    raw = request.rel_url.raw_query_string
    return "?" + raw if raw else ""


async def _read_body(request: web.Request) -> bytes:
    if request.content_length is not None and request.content_length > MAX_FED_BODY:
        raise _Refused("TOO_LARGE", f"a federation body is at most {MAX_FED_BODY} bytes")
    chunks: list[bytes] = []
    size = 0
    try:
        async with asyncio.timeout(BODY_TIMEOUT_S):
            while chunk := await request.content.readany():
                size += len(chunk)
                if size > MAX_FED_BODY:
                    raise _Refused(
                        "TOO_LARGE", f"a federation body is at most {MAX_FED_BODY} bytes"
                    )
                chunks.append(chunk)
    except TimeoutError:
        raise _Refused("BODY_TIMEOUT", "the body did not arrive in time") from None
    return b"".join(chunks)


async def _verify(
    request: web.Request, fed: FederationService, *, allow_unknown: bool
) -> SignedRequest:
    data = await _read_body(request)
    if data and request.content_type != CONTENT_TYPE:
        raise _Refused("UNSUPPORTED_MEDIA_TYPE", f"send {CONTENT_TYPE}", 415)
    now_s = fed.clock.now_ms() // 1000
    keys: dict[str, bytes | None] = {}

    async def resolve(keyid: str) -> bytes | None:
        if not _HEX64.fullmatch(keyid):
            return None
        node_id = bytes.fromhex(keyid)
        peer = await fed.peers.get(node_id)
        if peer is None and not allow_unknown:
            return None
        return await fed.key_of(node_id)

    signature_input = request.headers.get("Signature-Input", "")
    for keyid in re.findall(r'keyid="([0-9a-f]{64})"', signature_input)[:2]:
        keys[keyid] = await resolve(keyid)
    try:
        verified = protocol.verify_request(
            method=request.method,
            authority=_authority(request),
            path=_path(request),
            query=_query(request),
            headers=request.headers,
            body=data,
            now_s=now_s,
            key_of=lambda keyid: keys.get(keyid),
        )
        fed.replay.check(
            verified.keyid,
            verified.nonce,
            created=verified.created,
            expires=verified.expires,
            now_s=now_s,
        )
        value = protocol.decode(data) if data else None
    except protocol.ProtocolError as error:
        raise _Refused(str(error.code), error.message) from None
    signer = bytes.fromhex(verified.keyid)
    if not allow_unknown:
        peer = await fed.peers.get(signer)
        if peer is None:
            raise _Refused("UNKNOWN_SIGNER", "unknown node")
        if peer.state == "blocked":
            raise _Refused("PEER_BLOCKED", "this node is blocked here")
        if peer.state != "approved":
            raise _Refused("NOT_APPROVED", "not approved here yet; ask the admin to approve")
    return SignedRequest(
        signer=signer,
        body=data,
        signature=", ".join(request.headers.getall("Signature", [])),
        value=value,
    )


def _endpoint(handler: FedHandler, *, allow_unknown: bool = False) -> Any:
    async def run(request: web.Request) -> web.StreamResponse:
        fed = services(request).federation
        if fed is None or fed.standalone:
            return _plain_error("STANDALONE", "this node belongs to no federation", 403)
        try:
            signed = await _verify(request, fed, allow_unknown=allow_unknown)
        except _Refused as refused:
            _log.info(
                "federation request refused: %s",
                refused.code,
                extra={"event": "fed.refused", "code": refused.code},
            )
            return _plain_error(refused.code, refused.message, refused.status)
        except StorageError:
            return _plain_error("UNAVAILABLE", "database unavailable", 503)
        if not allow_unknown:
            fed.replicator.seen(signed.signer)
        try:
            status, value = await handler(request, fed, signed)
        except _Refused as refused:
            return _signed(
                request,
                fed,
                signed,
                refused.status,
                {"error": {"code": refused.code, "message": refused.message}},
            )
        except FederationError as error:
            return _signed(
                request,
                fed,
                signed,
                _STATUS.get(error.code.value, 403),
                {"error": {"code": error.code.value, "message": error.message}},
            )
        except StorageError:
            return _plain_error("UNAVAILABLE", "database unavailable", 503)
        return _signed(request, fed, signed, status, value)

    run.__name__ = handler.__name__
    run.__doc__ = handler.__doc__
    return run


# -- handlers -------------------------------------------------------------------------


async def _hello(
    request: web.Request, fed: FederationService, signed: SignedRequest
) -> tuple[int, Any]:
    """A node accepting our invite introduces itself with the invite's secret."""
    value = signed.value
    if (
        type(value) is not dict
        or type(value.get("secret")) is not bytes
        or value.get("node") != signed.signer
        or not (value.get("url") is None or type(value.get("url")) is str)
    ):
        raise _Refused("MALFORMED", "hello: {node, secret, url}")
    url = value.get("url")
    if url is not None and (len(url) > 248 or not re.fullmatch(r"https?://[!-~]+", url)):
        raise _Refused("MALFORMED", "hello: url is an http(s) URL")
    await fed.peers.spend_invite(value["secret"], node_id=signed.signer, url=url)
    fed.replicator.wake(signed.signer)
    return 200, {"node": fed.identity.node_id, "url": fed.public_url}


async def _heads(
    request: web.Request, fed: FederationService, signed: SignedRequest
) -> tuple[int, Any]:
    return 200, await fed.heads_document()


async def _feed(
    request: web.Request, fed: FederationService, signed: SignedRequest
) -> tuple[int, Any]:
    author_hex = request.match_info.get("author", "")
    if not _HEX64.fullmatch(author_hex):
        raise _Refused("NOT_FOUND", "no such feed", 404)
    author = bytes.fromhex(author_hex)
    after, limit = _int_arg(request, "after", 0), _int_arg(request, "limit", MAX_RANGE)
    if limit < 1:
        raise _Refused("BAD_VALUE", "limit is at least 1")
    if author not in await fed.peers.replicated_authors():
        raise _Refused("NOT_FOUND", "no such feed", 404)
    out = await fed.feeds.range(author, after, min(limit, MAX_RANGE))
    head = await fed.feeds.head(author)
    last = after + len(out)
    return 200, {"entries": out, "more": head is not None and head.seq > last}


def _int_arg(request: web.Request, name: str, default: int) -> int:
    raw = request.query.get(name)
    if raw is None:
        return default
    # ASCII digits only: str.isdigit() is also true of "²" (which int() refuses) and of
    # other scripts' digits (which a peer has no business sending)
    if not (raw.isascii() and raw.isdigit()) or len(raw) > 19:
        raise _Refused("BAD_VALUE", f"{name} is a non-negative integer")
    return min(int(raw), protocol.MAX_SEQ)


async def _forks(
    request: web.Request, fed: FederationService, signed: SignedRequest
) -> tuple[int, Any]:
    return 200, {"proofs": [record.proof for record in await fed.feeds.forks()][:64]}


async def _notify(
    request: web.Request, fed: FederationService, signed: SignedRequest
) -> tuple[int, Any]:
    fed.replicator.wake(signed.signer)
    return 202, {"ok": True}


async def _messages(
    request: web.Request, fed: FederationService, signed: SignedRequest
) -> tuple[int, Any]:
    value = signed.value
    if (
        type(value) is not dict
        or type(value.get("envelopes")) is not list
        or not 1 <= len(value["envelopes"]) <= 64
        or any(type(e) is not bytes for e in value["envelopes"])
    ):
        raise _Refused("MALFORMED", "messages: {envelopes: [bin, ...]} (1..64)")
    if fed.messages is None:
        raise _Refused("UNAVAILABLE", "messaging is not running", 503)
    acks = await fed.messages.receive(value["envelopes"], from_peer=signed.signer)
    return 200, {"acks": [[ack.id, ack.status, ack.code] for ack in acks]}


async def _oprf_evaluate(
    request: web.Request, fed: FederationService, signed: SignedRequest
) -> tuple[int, Any]:
    """Evaluate blinded elements with our key share (we are an oracle of ``epoch``)."""
    value = signed.value
    if (
        type(value) is not dict
        or set(value) != {"elements", "epoch"}
        or type(value["epoch"]) is not int
        or not 1 <= value["epoch"] <= _MAX_EPOCH
        or type(value["elements"]) is not list
        or not 1 <= len(value["elements"]) <= MAX_BATCH
        or any(type(e) is not bytes for e in value["elements"])
    ):
        raise _Refused(
            "MALFORMED",
            f"oprf/evaluate: {{elements: [bin, ...] (1..{MAX_BATCH}), epoch (1..2^32-1)}}",
        )
    if fed.oracle is None:
        raise _Refused("NOT_AN_ORACLE", "this node is not a pseudonym oracle", 404)
    try:
        evaluation = await fed.oracle.evaluate(
            signed.signer, epoch=value["epoch"], elements=value["elements"]
        )
    except OracleError as error:
        raise _Refused(error.code.value, error.message) from None
    except protocol.ProtocolError as error:
        raise _Refused(error.code.value, error.message) from None
    return 200, {
        "elements": list(evaluation.evaluated_elements),
        "index": evaluation.index,
        "proof": evaluation.proof,
    }


def add_federation_routes(table: RouteTable) -> None:
    """Register the node-to-node routes (access :data:`PEER`)."""
    add = table.add
    add("POST", f"{FED_PREFIX}/hello", _endpoint(_hello, allow_unknown=True), access=PEER)
    add("GET", f"{FED_PREFIX}/heads", _endpoint(_heads), access=PEER)
    add("GET", f"{FED_PREFIX}/feeds/{{author}}", _endpoint(_feed), access=PEER)
    add("GET", f"{FED_PREFIX}/forks", _endpoint(_forks), access=PEER)
    add("POST", f"{FED_PREFIX}/notify", _endpoint(_notify), access=PEER)
    add("POST", f"{FED_PREFIX}/messages", _endpoint(_messages), access=PEER)
    add("POST", f"{FED_PREFIX}/oprf/evaluate", _endpoint(_oprf_evaluate), access=PEER)
