"""HTTP message signatures (RFC 9421) and digests (RFC 9530) between nodes (SPEC §11).

Four kinds of evidence: the RFC's own ed25519 vector reproduced byte for byte; an
independent implementation (pyauth's ``http-message-signatures``) verifying what we
sign and signing what we verify; one test per rejection code; and properties that
hostile header values raise nothing but RemoteProtocolError.
"""

from __future__ import annotations

import base64
import collections
import decimal
import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from http_message_signatures import (
    HTTPMessageSigner,
    HTTPMessageVerifier,
    InvalidSignature,
    MappingKeyResolver,
)
from http_message_signatures.algorithms import ED25519
from hypothesis import given
from hypothesis import strategies as st
from multidict import CIMultiDict

import protocol as p
from protocol import ErrorCode
from protocol._httpsig import (
    REQUEST_ITEMS,
    field_value,
    request_values,
    response_values,
    signature_base,
    signature_fields,
    signature_params_value,
)
from protocol._keys import verify as ed25519_verify
from protocol._sfv import (
    InnerList,
    Item,
    SFError,
    Token,
    parse_dictionary,
    serialize_bare,
    serialize_dictionary,
    serialize_inner_list,
    serialize_item,
    serialize_member,
)

from .conftest import AUTHOR, KEY, NOW, OTHER_AUTHOR, OTHER_KEY, THIRD_KEY, raises_code

NOW_S = NOW // 1000
NODE = AUTHOR.hex()
OTHER_NODE = OTHER_AUTHOR.hex()
KEYS = {NODE: AUTHOR, OTHER_NODE: OTHER_AUTHOR}
NONCE = base64.urlsafe_b64encode(bytes(range(18))).decode()
RESPONSE_NONCE = base64.urlsafe_b64encode(bytes(range(18, 36))).decode()
AUTHORITY = "node-b.example.org"
PATH = "/fed/v1/inbox"
QUERY = "?since=7&limit=100"
BODY = b"\x82\xa1a\x01\xa1b\xc4\x03\x00\x01\x02"
CONTENT_TYPE = "application/vnd.watan+msgpack"
TARGET = ("POST", AUTHORITY, PATH, QUERY)


def params(key: bytes = AUTHOR, **changes: Any) -> p.SignatureParams:
    fields: dict[str, Any] = {
        "keyid": key.hex(),
        "created": NOW_S - 5,
        "expires": NOW_S + 115,
        "nonce": NONCE,
    }
    fields.update(changes)
    return p.SignatureParams(**fields)


def signed_request(
    *, key: p.SigningKey = KEY, body: bytes = BODY, **changes: Any
) -> dict[str, str]:
    """The headers of a request to node B, signed by ``key``."""
    headers = {"Content-Type": CONTENT_TYPE, "Content-Digest": p.content_digest(body)}
    target = dict(zip(("method", "authority", "path", "query"), TARGET, strict=True))
    return headers | p.sign_request(
        **target, headers=headers, key=key, params=changes.pop("params", params())
    )


def verify_request(headers: Mapping[str, str], **changes: Any) -> p.VerifiedSignature:
    args: dict[str, Any] = {
        "method": "POST",
        "authority": AUTHORITY,
        "path": PATH,
        "query": QUERY,
        "headers": headers,
        "body": BODY,
        "now_s": NOW_S,
        "key_of": KEYS.get,
    }
    args.update(changes)
    return p.verify_request(**args)


def signed_response(
    request_signature: str, *, status: int = 200, body: bytes = b"", key: p.SigningKey = OTHER_KEY
) -> dict[str, str]:
    headers = {"Content-Type": CONTENT_TYPE, "Content-Digest": p.content_digest(body)}
    return headers | p.sign_response(
        status=status,
        headers=headers,
        request_signature=request_signature,
        request=TARGET,
        key=key,
        params=params(OTHER_AUTHOR, nonce=RESPONSE_NONCE),
    )


def verify_response(
    headers: Mapping[str, str], request_signature: str, **changes: Any
) -> p.VerifiedSignature:
    args: dict[str, Any] = {
        "status": 200,
        "headers": headers,
        "body": b"",
        "request_signature": request_signature,
        "request": TARGET,
        "now_s": NOW_S,
        "key_of": KEYS.get,
    }
    args.update(changes)
    return p.verify_response(**args)


def resign(components: Any = REQUEST_ITEMS, sf_params: Any = None, **kw: Any) -> dict[str, str]:
    """A request signed with any components and parameters (for what we refuse)."""
    headers = {"Content-Digest": p.content_digest(BODY)}
    values = request_values(
        method="POST", authority=AUTHORITY, path=PATH, query=QUERY, headers=headers
    )
    # Components outside the profile get a placeholder value: verifiers refuse them
    # before they look at any value.
    padded = collections.defaultdict(lambda: "x", values)
    sf = params().sf_params() if sf_params is None else sf_params
    return headers | signature_fields(components, padded, sf, KEY, **kw)[0]


def sf_params(**changes: Any) -> tuple[tuple[str, Any], ...]:
    """Our parameters as pairs; a change to None drops one."""
    out = dict(params().sf_params())
    out.update(changes)
    return tuple((k, v) for k, v in out.items() if v is not None)


# --- 1. RFC 9421 Appendix B.2.6 -----------------------------------------------------

# RFC 9421 Appendix B.1.4, "test-key-ed25519", PKCS #8 and SPKI as printed there.
RFC_PRIVATE_PEM = "MC4CAQAwBQYDK2VwBCIEIJ+DYvh6SEqVTm50DFtMDoQikTmiCqirVv9mWG9qfSnF"
RFC_PUBLIC_PEM = "MCowBQYDK2VwAyEAJrQLj5P/89iXES9+vFgrIy29clF9CC/oPPsw3c5D0bs="
# Appendix B.2, the test request. Its query is not covered by B.2.6.
RFC_HEADERS = {
    "Host": "example.com",
    "Date": "Tue, 20 Apr 2021 02:07:55 GMT",
    "Content-Type": "application/json",
    "Content-Digest": "sha-512=:WZDPaVn/7XgHaAy8pmojAkGWoRx2UFChF41A2svX+TaPm+AbwAgBWn"
    "rIiYllu7BNNyealdVLvRwEmTHWXvJwew==:",
    "Content-Length": "18",
}
RFC_BODY = b'{"hello": "world"}'
# Appendix B.2.6: the signature base (RFC 8792 line wrapping undone) and the fields.
RFC_BASE = (
    '"date": Tue, 20 Apr 2021 02:07:55 GMT\n'
    '"@method": POST\n'
    '"@path": /foo\n'
    '"@authority": example.com\n'
    '"content-type": application/json\n'
    '"content-length": 18\n'
    '"@signature-params": ("date" "@method" "@path" "@authority" "content-type" '
    '"content-length");created=1618884473;keyid="test-key-ed25519"'
)
RFC_SIGNATURE_INPUT = (
    'sig-b26=("date" "@method" "@path" "@authority" "content-type" "content-length")'
    ';created=1618884473;keyid="test-key-ed25519"'
)
RFC_SIGNATURE = (
    "sig-b26=:wqcAqbmYJ2ji2glfAMaRy4gruYYnx2nEFN2HN6jrnDnQCK1u02Gb04v9EDgwUPiu4A0w6vuQv5lIp5W"
    "PpBKRCw==:"
)


def rfc_key() -> p.SigningKey:
    der = base64.b64decode(RFC_PRIVATE_PEM)
    # OneAsymmetricKey { v1, id-Ed25519 (1.3.101.112), OCTET STRING { 32-byte seed } }
    assert der[:16].hex() == "302e020100300506032b657004220420"
    return p.signing_key(der[16:])


def test_rfc9421_b26_key_is_the_printed_key_pair() -> None:
    spki = base64.b64decode(RFC_PUBLIC_PEM)
    assert spki[:12].hex() == "302a300506032b6570032100"
    assert p.public_key(rfc_key()) == spki[12:]


def test_rfc9421_b26_ed25519_signature_base_and_signature() -> None:
    values = request_values(
        method="POST",
        authority="example.com",
        path="/foo",
        query="?param=Value&Pet=dog",
        headers=RFC_HEADERS,
    )
    for name in ("date", "content-type", "content-length"):
        values[f'"{name}"'] = field_value(RFC_HEADERS, name) or ""
    components = [
        Item(n)
        for n in ("date", "@method", "@path", "@authority", "content-type", "content-length")
    ]
    rfc_params = (("created", 1618884473), ("keyid", "test-key-ed25519"))
    fields, base = signature_fields(components, values, rfc_params, rfc_key(), label="sig-b26")
    assert base == RFC_BASE.encode("ascii")
    assert fields == {"Signature-Input": RFC_SIGNATURE_INPUT, "Signature": RFC_SIGNATURE}
    lines = [(serialize_item(c), values[serialize_item(c)]) for c in components]
    assert signature_base(lines, signature_params_value(components, rfc_params)) == base
    # The RFC's signature verifies under the RFC's public key with our Ed25519 check.
    ((label, member),) = parse_dictionary(RFC_SIGNATURE)
    assert label == "sig-b26" and isinstance(member, Item) and isinstance(member.value, bytes)
    ed25519_verify(p.public_key(rfc_key()), base, member.value)


def test_rfc9530_digest_examples() -> None:
    # RFC 9530 Appendix D (and RFC 9421 B.2's Content-Digest, SHA-512 of the same body).
    assert p.content_digest(RFC_BODY) == "sha-256=:X48E9qOokqqrvdts8nOJRJN3OWDUoyWxBf7kbu9DBPE=:"
    sha512 = hashlib.sha512(RFC_BODY).digest()
    assert RFC_HEADERS["Content-Digest"] == "sha-512=" + serialize_bare(sha512)
    assert p.content_digest(b"") == "sha-256=:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=:"


# --- 2. An independent implementation: http-message-signatures (pyauth) --------------


@dataclass
class LibRequest:
    """The request interface the library reads: method, absolute URL, headers."""

    method: str
    url: str
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class LibResponse:
    status_code: int
    request: LibRequest
    headers: dict[str, str] = field(default_factory=dict)


URL = f"https://{AUTHORITY}{PATH}{QUERY}"
REQUEST_COMPONENTS = p.REQUEST_COMPONENTS
RESPONSE_COMPONENTS = p.RESPONSE_COMPONENTS


def lib_verifier() -> HTTPMessageVerifier:
    resolver = MappingKeyResolver(
        public_keys={
            NODE: Ed25519PublicKey.from_public_bytes(AUTHOR),
            OTHER_NODE: Ed25519PublicKey.from_public_bytes(OTHER_AUTHOR),
        },
        private_keys={},
    )
    verifier = HTTPMessageVerifier(signature_algorithm=ED25519, key_resolver=resolver)
    # The library compares created/expires with the wall clock; our times are fixed
    # (NOW), so widen its tolerance. Our own time rules are tested below.
    verifier.max_clock_skew = timedelta(days=365 * 50)
    return verifier


def lib_signer() -> HTTPMessageSigner:
    resolver = MappingKeyResolver(
        public_keys={},
        private_keys={
            NODE: Ed25519PrivateKey.from_private_bytes(KEY.encode()),
            OTHER_NODE: Ed25519PrivateKey.from_private_bytes(OTHER_KEY.encode()),
        },
    )
    return HTTPMessageSigner(signature_algorithm=ED25519, key_resolver=resolver)


def lib_sign(message: LibRequest | LibResponse, keyid: str, nonce: str, body: bytes) -> None:
    components = RESPONSE_COMPONENTS if isinstance(message, LibResponse) else REQUEST_COMPONENTS
    lib_signer().sign(
        message,
        key_id=keyid,
        created=datetime.fromtimestamp(NOW_S - 5, UTC),
        expires=datetime.fromtimestamp(NOW_S + 115, UTC),
        nonce=nonce,
        label="watan",
        tag=p.SIGNATURE_TAG,
        include_alg=True,
        covered_component_ids=components,
        body=body,  # the library computes Content-Digest (sha-256) itself
    )


def test_library_verifies_our_request() -> None:
    message = LibRequest("POST", URL, signed_request())
    (result,) = lib_verifier().verify(
        message,
        max_age=None,
        expect_tag=p.SIGNATURE_TAG,
        expect_label="watan",
        require_components=REQUEST_COMPONENTS,
        body=BODY,
    )
    assert result.body == BODY  # the library checked Content-Digest against the body
    assert result.parameters == {
        "keyid": NODE,
        "created": NOW_S - 5,
        "expires": NOW_S + 115,
        "nonce": NONCE,
        "alg": "ed25519",
        "tag": p.SIGNATURE_TAG,
    }
    assert list(result.covered_components)[:-1] == list(REQUEST_COMPONENTS)
    # ...and it is really checking: another path fails there too.
    message.url = URL.replace(PATH, PATH + "x")
    with pytest.raises(InvalidSignature):
        lib_verifier().verify(message, max_age=None, expect_tag=p.SIGNATURE_TAG)


def test_we_verify_the_librarys_request() -> None:
    message = LibRequest("POST", URL, {"Content-Type": CONTENT_TYPE})
    lib_sign(message, NODE, NONCE, BODY)
    assert message.headers["Content-Digest"] == p.content_digest(BODY)
    # The library writes the parameters in another order than we do; any order is fine.
    assert message.headers["Signature-Input"] != signed_request()["Signature-Input"]
    assert message.headers["Signature-Input"].startswith('watan=("@method" "@authority"')
    verified = verify_request(message.headers)
    assert (verified.keyid, verified.nonce, verified.key) == (NODE, NONCE, AUTHOR)
    assert verified.components == REQUEST_COMPONENTS
    with raises_code(p.RemoteProtocolError, ErrorCode.BAD_SIGNATURE):
        verify_request(message.headers, query="?since=8&limit=100")


def test_library_verifies_our_response_bound_to_our_request() -> None:
    request = LibRequest("POST", URL, signed_request())
    body = b"\x81\xa2ok\xc3"
    response = LibResponse(200, request, signed_response(request.headers["Signature"], body=body))
    (result,) = lib_verifier().verify(
        response,
        max_age=None,
        expect_tag=p.SIGNATURE_TAG,
        expect_label="watan",
        require_components=RESPONSE_COMPONENTS,
        body=body,
    )
    assert result.parameters["keyid"] == OTHER_NODE
    assert list(result.covered_components)[:-1] == list(RESPONSE_COMPONENTS)
    # Bound to the request: the same response attached to another request fails there.
    other = LibRequest("POST", URL, signed_request(params=params(nonce="B" * 24)))
    with pytest.raises(InvalidSignature):
        lib_verifier().verify(
            LibResponse(200, other, response.headers), max_age=None, expect_tag=p.SIGNATURE_TAG
        )


def test_we_verify_the_librarys_response() -> None:
    request = LibRequest("POST", URL, signed_request())
    body = b"\x81\xa2ok\xc3"
    response = LibResponse(200, request, {"Content-Type": CONTENT_TYPE})
    lib_sign(response, OTHER_NODE, RESPONSE_NONCE, body)
    assert response.headers["Signature-Input"].startswith(
        'watan=("@status" "content-digest" "@method";req'
    )
    verified = verify_response(response.headers, request.headers["Signature"], body=body)
    assert (verified.keyid, verified.key) == (OTHER_NODE, OTHER_AUTHOR)
    assert verified.components == RESPONSE_COMPONENTS


# --- 3. Round trips and binding ------------------------------------------------------


def test_request_round_trip() -> None:
    headers = signed_request()
    verified = verify_request(headers)
    assert verified == p.VerifiedSignature(
        keyid=NODE,
        created=NOW_S - 5,
        expires=NOW_S + 115,
        nonce=NONCE,
        key=AUTHOR,
        components=p.REQUEST_COMPONENTS,
        signature=verified.signature,
    )
    assert len(verified.signature) == 64
    assert headers["Signature-Input"] == (
        'watan=("@method" "@authority" "@path" "@query" "content-digest")'
        f';keyid="{NODE}";created={NOW_S - 5};expires={NOW_S + 115};nonce="{NONCE}"'
        ';alg="ed25519";tag="watan-fed/v1"'
    )
    assert signed_request() == headers  # deterministic: same inputs, same bytes


def test_request_without_query_or_body_covers_question_mark_and_empty_digest() -> None:
    headers = {"Content-Digest": p.content_digest(b"")}
    headers |= p.sign_request(
        method="GET",
        authority=AUTHORITY,
        path="",
        query="",
        headers=headers,
        key=KEY,
        params=params(),
    )
    values = request_values(method="GET", authority=AUTHORITY, path="", query="", headers=headers)
    assert values['"@query"'] == "?" and values['"@path"'] == "/"
    verify_request(headers, method="GET", path="/", query="?", body=b"")
    verify_request(headers, method="GET", path="", query="", body=b"")


def test_header_names_in_any_case_and_repeated_field_lines() -> None:
    headers = signed_request()
    lower = {k.lower(): v for k, v in headers.items()}
    verify_request(lower | {"sïgnature": "ignored: not this field"})
    # A multidict, as aiohttp hands headers over: the signature split over two field
    # lines after another signer's member, and a second digest line, all combined.
    lines = CIMultiDict([(k, v) for k, v in headers.items() if k != "Signature-Input"])
    lines.add("signature-input", 'proxy=("@method");created=1;keyid="x"')
    lines.add("SIGNATURE-INPUT", headers["Signature-Input"])
    sha512 = hashlib.sha512(BODY).digest()
    digest = lines.popone("Content-Digest")
    lines.add("Content-Digest", digest)
    lines.add("Content-Digest", "sha-512=" + serialize_bare(sha512))
    with raises_code(p.RemoteProtocolError, ErrorCode.BAD_SIGNATURE):
        verify_request(lines)  # the covered digest is now both lines, not what was signed
    covered = {"Content-Digest": f"{digest}, sha-512={serialize_bare(sha512)}"}
    resigned = covered | p.sign_request(
        method="POST",
        authority=AUTHORITY,
        path=PATH,
        query=QUERY,
        headers=covered,
        key=KEY,
        params=params(),
    )
    lines["Signature"] = resigned["Signature"]
    assert verify_request(lines).keyid == NODE


def test_authority_is_lowercased() -> None:
    headers = signed_request()
    verify_request(headers, authority=AUTHORITY.upper())


def test_response_round_trip_and_binding() -> None:
    request_a = signed_request()
    request_b = signed_request(params=params(nonce="B" * 24))
    response = signed_response(request_a["Signature"], status=404)
    verified = verify_response(response, request_a["Signature"], status=404)
    assert (verified.keyid, verified.nonce, verified.components) == (
        OTHER_NODE,
        RESPONSE_NONCE,
        p.RESPONSE_COMPONENTS,
    )
    with raises_code(p.RemoteProtocolError, ErrorCode.BAD_SIGNATURE):
        verify_response(response, request_b["Signature"], status=404)
    with raises_code(p.RemoteProtocolError, ErrorCode.BAD_SIGNATURE):
        verify_response(response, request_a["Signature"], status=200)
    with raises_code(p.RemoteProtocolError, ErrorCode.BAD_SIGNATURE):
        verify_response(response, request_a["Signature"], status=404, request=(*TARGET[:3], ""))
    # A request's signature among other members, with whitespace: the member counts.
    spaced = f"other=:AAAA:,  {request_a['Signature']}"
    verify_response(response, spaced, status=404)


def test_response_values_name_the_request() -> None:
    request = signed_request()
    headers = {"Content-Digest": p.content_digest(b"")}
    member = request["Signature"].removeprefix("watan=")
    values = response_values(status=200, headers=headers, request=TARGET, request_member=member)
    assert list(values) == list(p.RESPONSE_COMPONENTS)
    assert values['"signature";req;key="watan"'] == member
    assert values['"@query";req'] == QUERY


# --- 4. Every rejection --------------------------------------------------------------


@pytest.mark.parametrize(
    ("change", "code"),
    [
        ({"method": "PUT"}, ErrorCode.BAD_SIGNATURE),
        ({"authority": "node-c.example.org"}, ErrorCode.BAD_SIGNATURE),
        ({"path": "/fed/v1/inbox/x"}, ErrorCode.BAD_SIGNATURE),
        ({"query": "?since=8&limit=100"}, ErrorCode.BAD_SIGNATURE),
        ({"query": ""}, ErrorCode.BAD_SIGNATURE),
        ({"body": BODY + b"\x00"}, ErrorCode.BAD_DIGEST),
        ({"now_s": NOW_S + 116}, ErrorCode.SIGNATURE_EXPIRED),
        ({"now_s": NOW_S - 5 - p.MAX_SIGNATURE_SKEW_S - 1}, ErrorCode.SIGNATURE_EARLY),
        ({"key_of": {}.get}, ErrorCode.UNKNOWN_SIGNER),
        ({"key_of": lambda keyid: OTHER_AUTHOR}, ErrorCode.BAD_SIGNATURE),
        ({"path": "/fed/v1/\ninbox"}, ErrorCode.BAD_SIGNATURE),
        ({"path": "fed"}, ErrorCode.BAD_SIGNATURE),
        ({"query": "since=7"}, ErrorCode.BAD_SIGNATURE),
        ({"method": ""}, ErrorCode.BAD_SIGNATURE),
        ({"authority": "ex\u0430mple.org"}, ErrorCode.BAD_SIGNATURE),
    ],
    # no memory addresses in ids: xdist workers must collect the same names
    ids=lambda x: re.sub(r" at 0x[0-9a-f]+", "", repr(x))[:40],
)
def test_tampered_request(change: dict[str, Any], code: ErrorCode) -> None:
    headers = signed_request()
    verify_request(headers)
    with raises_code(p.RemoteProtocolError, code):
        verify_request(headers, **change)


def test_exactly_on_the_time_bounds() -> None:
    headers = signed_request()
    verify_request(headers, now_s=NOW_S + 115)  # at expires: still valid
    verify_request(headers, now_s=NOW_S - 5 - p.MAX_SIGNATURE_SKEW_S)  # skew: still valid


def test_swapped_keyid() -> None:
    headers = signed_request(params=params(OTHER_AUTHOR))  # signed by KEY, claims OTHER
    with raises_code(p.RemoteProtocolError, ErrorCode.BAD_SIGNATURE):
        verify_request(headers)


def test_unknown_signer() -> None:
    third = p.public_key(THIRD_KEY)
    headers = signed_request(key=THIRD_KEY, params=params(third))
    with raises_code(p.RemoteProtocolError, ErrorCode.UNKNOWN_SIGNER):
        verify_request(headers)
    assert verify_request(headers, key_of={third.hex(): third}.get).key == third


@pytest.mark.parametrize(
    ("pairs", "code"),
    [
        (sf_params(expires=NOW_S - 5 + 301), ErrorCode.SIGNATURE_EXPIRED),
        (sf_params(expires=NOW_S - 5), ErrorCode.SIGNATURE_EXPIRED),
        (sf_params(created=NOW_S + 70, expires=NOW_S + 100), ErrorCode.SIGNATURE_EARLY),
        (sf_params(tag="watan-fed/v2"), ErrorCode.SIGNATURE_MALFORMED),
        (sf_params(alg="hmac-sha256"), ErrorCode.SIGNATURE_MALFORMED),
        (sf_params(nonce=None), ErrorCode.SIGNATURE_MALFORMED),
        (sf_params(nonce="A" * 15), ErrorCode.SIGNATURE_MALFORMED),
        (sf_params(nonce="A" * 65), ErrorCode.SIGNATURE_MALFORMED),
        (sf_params(nonce="A" * 23 + "="), ErrorCode.SIGNATURE_MALFORMED),
        (sf_params(keyid=NODE.upper()), ErrorCode.SIGNATURE_MALFORMED),
        (sf_params(keyid=Token("abc")), ErrorCode.SIGNATURE_MALFORMED),
        (sf_params(created=True), ErrorCode.SIGNATURE_MALFORMED),
        (sf_params(expires="1780000115"), ErrorCode.SIGNATURE_MALFORMED),
        (sf_params(created=decimal.Decimal("1779999995.0")), ErrorCode.SIGNATURE_MALFORMED),
        ((*sf_params(), ("extra", 1)), ErrorCode.SIGNATURE_MALFORMED),
        ((*sf_params(), ("nonce", NONCE)), ErrorCode.SIGNATURE_MALFORMED),
        (tuple(reversed(sf_params())), None),  # any order is fine
    ],
    ids=lambda x: repr(x)[-60:],
)
def test_signature_parameters(pairs: Any, code: ErrorCode | None) -> None:
    headers = resign(sf_params=pairs)
    if code is None:
        assert verify_request(headers).nonce == NONCE
        return
    with raises_code(p.RemoteProtocolError, code):
        verify_request(headers)


@pytest.mark.parametrize(
    "components",
    [
        [REQUEST_ITEMS[1], REQUEST_ITEMS[0], *REQUEST_ITEMS[2:]],
        REQUEST_ITEMS[:4],
        [*REQUEST_ITEMS, Item("content-type")],
        [*REQUEST_ITEMS[:4], Item("content-digest", (("sf", True),))],
        [Item("@method", (("req", 1),)), *REQUEST_ITEMS[1:]],
        [],
    ],
    ids=["order", "no digest", "one more", "digest;sf", "@method;req=1", "none"],
)
def test_wrong_components(components: Any) -> None:
    with raises_code(p.RemoteProtocolError, ErrorCode.SIGNATURE_COMPONENTS):
        verify_request(resign(components))


def test_response_signature_used_as_a_request() -> None:
    response = signed_response(signed_request()["Signature"])
    with raises_code(p.RemoteProtocolError, ErrorCode.SIGNATURE_COMPONENTS):
        verify_request(response, key_of={OTHER_NODE: OTHER_AUTHOR}.get, body=b"")


def test_request_signature_used_as_a_response() -> None:
    headers = signed_request()
    with raises_code(p.RemoteProtocolError, ErrorCode.SIGNATURE_COMPONENTS):
        verify_response(headers, headers["Signature"], body=BODY)


@pytest.mark.parametrize(
    ("change", "code"),
    [
        ({"Signature-Input": None}, ErrorCode.SIGNATURE_MISSING),
        ({"Signature": None}, ErrorCode.SIGNATURE_MISSING),
        ({"Signature-Input": "", "Signature": ""}, ErrorCode.SIGNATURE_MISSING),
        ({"Signature": "other=:AAAA:"}, ErrorCode.SIGNATURE_MISSING),
        ({"Signature-Input": "watan=("}, ErrorCode.SIGNATURE_MALFORMED),
        ({"Signature": "watan=:AAA:"}, ErrorCode.SIGNATURE_MALFORMED),
        ({"Signature-Input": "watan=:AAAA:"}, ErrorCode.SIGNATURE_MALFORMED),
        ({"Signature": 'watan=("a")'}, ErrorCode.SIGNATURE_MALFORMED),
        ({"Signature": "watan=:AAAA:"}, ErrorCode.BAD_SIGNATURE),
        ({"Signature-Input": "w" * 8193}, ErrorCode.SIGNATURE_MALFORMED),
        ({"Signature-Input": "watan=(\u00e9)"}, ErrorCode.SIGNATURE_MALFORMED),
        ({"Content-Digest": None}, ErrorCode.BAD_DIGEST),
        ({"Content-Digest": "sha-256=:\n:"}, ErrorCode.BAD_SIGNATURE),
    ],
    ids=lambda x: repr(x)[:50],
)
def test_malformed_or_missing_fields(change: dict[str, str | None], code: ErrorCode) -> None:
    headers = {k: v for k, v in signed_request().items() if change.get(k, "") is not None}
    headers |= {k: v for k, v in change.items() if v is not None}
    with raises_code(p.RemoteProtocolError, code):
        verify_request(headers)


def test_signature_member_with_parameters_or_twice() -> None:
    headers = signed_request()
    with raises_code(p.RemoteProtocolError, ErrorCode.SIGNATURE_MALFORMED):
        verify_request(headers | {"Signature": headers["Signature"] + ";x"})
    twice = headers["Signature-Input"] + ", " + headers["Signature-Input"]
    with raises_code(p.RemoteProtocolError, ErrorCode.SIGNATURE_MALFORMED):
        verify_request(headers | {"Signature-Input": twice})
    lines = CIMultiDict(headers)
    lines.add("Signature", headers["Signature"])  # the same member on a second line
    with raises_code(p.RemoteProtocolError, ErrorCode.SIGNATURE_MALFORMED):
        verify_request(lines)


@pytest.mark.parametrize(
    "value",
    [
        None,
        "",
        "x" * 8193,
        "sha-256",
        "sha-256=:YQ==:, sha-256=:YQ==:",
        "sha-256=(:YQ==:)",
        "sha-256=abc",
        "sha-512=" + serialize_bare(hashlib.sha512(BODY).digest()),
        "sha-256=" + serialize_bare(hashlib.sha256(BODY + b"x").digest()),
        "sha-256=" + serialize_bare(hashlib.sha256(BODY).digest())[:-2] + ":",
        "sha-256=:\u00e9:",
    ],
)
def test_bad_digests(value: str | None) -> None:
    with raises_code(p.RemoteProtocolError, ErrorCode.BAD_DIGEST):
        p.check_content_digest(value, BODY)


def test_good_digests() -> None:
    digest = serialize_bare(hashlib.sha256(BODY).digest())
    p.check_content_digest(f"sha-256={digest}", BODY)
    p.check_content_digest(f"md5=:AAAA:, sha-256={digest};x=1, unknown", BODY)


# --- local errors: what we refuse to sign --------------------------------------------


@pytest.mark.parametrize(
    "changes",
    [
        {"keyid": "node"},
        {"keyid": 7},
        {"nonce": "short"},
        {"nonce": b"A" * 24},
        {"alg": "ed448"},
        {"tag": "other"},
        {"created": -1, "expires": 10},
        {"expires": NOW_S - 5},
        {"expires": NOW_S - 5 + 301},
        {"created": 1.5},
        {"expires": True},
        {"created": 10**15, "expires": 10**15 + 1},
    ],
    ids=repr,
)
def test_signature_params_refuse_what_the_profile_forbids(changes: dict[str, Any]) -> None:
    with raises_code(p.LocalProtocolError, ErrorCode.BAD_VALUE):
        params(**changes)


@pytest.mark.parametrize(
    "changes",
    [
        {"method": "PO ST"},
        {"authority": "node/b"},
        {"path": "/a?b"},
        {"path": "a"},
        {"query": "a=1"},
        {"query": "?a=1#frag"},
        {"headers": {}},
        {"headers": {"Content-Digest": "sha-256=:\x00:"}},
    ],
    ids=repr,
)
def test_sign_request_refuses_unsignable_components(changes: dict[str, Any]) -> None:
    args: dict[str, Any] = dict(zip(("method", "authority", "path", "query"), TARGET, strict=True))
    args["headers"] = {"Content-Digest": p.content_digest(b"")}
    args.update(changes)
    with raises_code(p.LocalProtocolError, ErrorCode.BAD_VALUE):
        p.sign_request(**args, key=KEY, params=params())


@pytest.mark.parametrize(
    ("request_signature", "status"),
    [
        ("", 200),
        ("watan=(", 200),
        ("watan=:AAAA:, watan=:AAAA:", 200),
        ('watan=("a")', 200),
        ("watan=:AAAA:;x", 200),
        ("watan=:AAAA:", 99),
        ("watan=:AAAA:", 1000),
        ("watan=:AAAA:", True),
    ],
)
def test_sign_response_refuses(request_signature: str, status: Any) -> None:
    with raises_code(p.LocalProtocolError, ErrorCode.BAD_VALUE):
        p.sign_response(
            status=status,
            headers={"Content-Digest": p.content_digest(b"")},
            request_signature=request_signature,
            request=TARGET,
            key=KEY,
            params=params(),
        )


def test_verify_response_refuses_a_request_signature_we_never_made() -> None:
    with raises_code(p.LocalProtocolError, ErrorCode.BAD_VALUE):
        verify_response({}, "not a signature")


def test_verify_response_with_an_impossible_status() -> None:
    request = signed_request()
    response = signed_response(request["Signature"])
    with raises_code(p.RemoteProtocolError, ErrorCode.BAD_SIGNATURE):
        verify_response(response, request["Signature"], status=1000)


# --- 5. Hostile input raises RemoteProtocolError and nothing else ---------------------

SF_CHARS = st.sampled_from([*'watn=();:"*?-01 ,\t\\abc/+AZ.', "sha-256", "keyid", "req"])
SF_TEXT = st.lists(SF_CHARS, max_size=40).map("".join)
ANY_TEXT = st.one_of(
    st.text(max_size=200),
    st.binary(max_size=200).map(lambda b: b.decode("latin-1")),
    SF_TEXT,
)
VALID = signed_request()


def mutate(text: str, data: st.DataObject) -> str:
    """One random edit of a valid field value: delete, insert or replace a character."""
    index = data.draw(st.integers(0, len(text)))
    char = data.draw(st.sampled_from(list('=();:"*?-, \t\\a1é\n')))
    how = data.draw(st.sampled_from(["delete", "insert", "replace"]))
    if how == "insert":
        return text[:index] + char + text[index:]
    return text[:index] + (char if how == "replace" else "") + text[index + 1 :]


def only_remote_errors(headers: Mapping[str, str]) -> None:
    try:
        verify_request(headers)
    except p.RemoteProtocolError:
        pass


@given(ANY_TEXT, ANY_TEXT, ANY_TEXT)
def test_arbitrary_fields_raise_only_remote_errors(
    signature_input: str, signature: str, digest: str
) -> None:
    only_remote_errors(
        {"Signature-Input": signature_input, "Signature": signature, "Content-Digest": digest}
    )
    only_remote_errors(VALID | {"Signature-Input": signature_input})
    only_remote_errors(VALID | {"Signature": signature})
    only_remote_errors(VALID | {"Content-Digest": digest})
    try:
        p.check_content_digest(digest, BODY)
    except p.RemoteProtocolError:
        pass


@given(st.data(), st.sampled_from(["Signature-Input", "Signature", "Content-Digest"]))
def test_mutated_fields_raise_only_remote_errors(data: st.DataObject, name: str) -> None:
    only_remote_errors(VALID | {name: mutate(VALID[name], data)})


@given(ANY_TEXT)
def test_arbitrary_request_signature_in_a_response(text: str) -> None:
    try:
        verify_response(signed_response(VALID["Signature"]), text)
    except p.ProtocolError:  # local if ours is not a signature, remote if it mismatches
        pass


@given(
    st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZ-!", min_size=1, max_size=10),
    st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789/%-._~!$&'()*+,;=:@", max_size=40),
    st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789/?%-._~!$&'()*+,;=:@", max_size=40),
    st.binary(max_size=300),
)
def test_any_target_and_body_round_trip(method: str, path: str, query: str, body: bytes) -> None:
    path, query = "/" + path, "?" + query
    headers = {"Content-Digest": p.content_digest(body)}
    headers |= p.sign_request(
        method=method,
        authority=AUTHORITY,
        path=path,
        query=query,
        headers=headers,
        key=KEY,
        params=params(),
    )
    verify_request(headers, method=method, path=path, query=query, body=body)


# --- RFC 8941 parser and serializer --------------------------------------------------

BARE = st.one_of(
    st.booleans(),
    st.integers(-999_999_999_999_999, 999_999_999_999_999),
    st.decimals(min_value=-999_999_999_999, max_value=999_999_999_999, places=3, allow_nan=False),
    st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=20),
    st.from_regex(r"[A-Za-z*][A-Za-z0-9!#$%&'*+.^_`|~:/-]{0,10}", fullmatch=True).map(Token),
    st.binary(max_size=20),
)
KEY_NAMES = st.from_regex(r"[a-z*][a-z0-9_.*-]{0,8}", fullmatch=True)
PARAMS = st.lists(st.tuples(KEY_NAMES, BARE), max_size=3).map(tuple)
ITEMS = st.builds(Item, BARE, PARAMS)
MEMBERS = st.one_of(ITEMS, st.builds(InnerList, st.lists(ITEMS, max_size=3).map(tuple), PARAMS))


@given(st.lists(st.tuples(KEY_NAMES, MEMBERS), max_size=4))
def test_structured_fields_round_trip(members: list[tuple[str, Any]]) -> None:
    text = serialize_dictionary(members)
    parsed = parse_dictionary("  " + text)
    assert parsed == members
    assert serialize_dictionary(parsed) == text  # types too: ?1 is not 1


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", []),
        ("a", [("a", Item(True))]),
        ("a;x;y=?0", [("a", Item(True, (("x", True), ("y", False))))]),
        ("a=1, a=2", [("a", Item(1)), ("a", Item(2))]),  # duplicates kept, in order
        ("*a=-7;  b", [("*a", Item(-7, (("b", True),)))]),
        ("a=( 1  2 );p=:YQ==:", [("a", InnerList((Item(1), Item(2)), (("p", b"a"),)))]),
        ("a=()", [("a", InnerList(()))]),
        ('a="q\\"\\\\"', [("a", Item('q"\\'))]),
        ("a=foo/bar:baz", [("a", Item(Token("foo/bar:baz")))]),
        ("a=-1.5", [("a", Item(decimal.Decimal("-1.5")))]),
        ("a=123456789012.123", [("a", Item(decimal.Decimal("123456789012.123")))]),
        ("a=999999999999999", [("a", Item(999_999_999_999_999))]),
        ("a=::", [("a", Item(b""))]),
    ],
)
def test_parse_dictionary(text: str, expected: list[tuple[str, Any]]) -> None:
    assert parse_dictionary(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "A=1",
        "1a=1",
        "a=1 b=2",
        "a=1,",
        "a=1,  ",
        "a=(1",
        "a=(1,2)",
        "a=@1",
        "a=",
        "a=-",
        "a=-x",
        "a=1234567890123456",
        "a=1234567890123.5",
        "a=1.2345",
        "a=1.",
        '"a"',
        'a="\\n"',
        'a="\\',
        'a="\x01"',
        'a="\x7f"',
        'a="abc',
        "a=:abc",
        "a=:ab-c:",
        "a=:YQ:",
        "a=:YR==:",
        "a=:Y=Q=:",
        "a=?2",
        "a=?",
        "a=\u00e9",
        "\ta=1",
    ],
)
def test_parse_dictionary_refuses(text: str) -> None:
    with pytest.raises(SFError):
        parse_dictionary(text)


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (True, "?1"),
        (False, "?0"),
        (-12, "-12"),
        (decimal.Decimal("2"), "2.0"),
        (decimal.Decimal("-0.0005"), "-0.0"),
        (decimal.Decimal("1.2345"), "1.234"),
        (decimal.Decimal("1.2355"), "1.236"),
        ('a"b\\', '"a\\"b\\\\"'),
        (Token("*x"), "*x"),
        (b"\xff", ":/w==:"),
    ],
)
def test_serialize_bare(value: Any, text: str) -> None:
    assert serialize_bare(value) == text


@pytest.mark.parametrize(
    "value",
    [
        10**15,
        -(10**15),
        decimal.Decimal("1000000000000"),
        "\n",
        "é",
        Token(""),
        Token("1a"),
        Token("a b"),
    ],
)
def test_serialize_bare_refuses(value: Any) -> None:
    with pytest.raises(SFError):
        serialize_bare(value)


def test_serialize_containers() -> None:
    inner = InnerList((Item("a", (("req", True),)), Item(1)), (("k", Token("t")),))
    assert serialize_inner_list(inner) == '("a";req 1);k=t'
    assert serialize_member(inner) == serialize_inner_list(inner)
    assert serialize_dictionary([("x", Item(True, (("p", 1),))), ("y", inner)]) == (
        'x;p=1, y=("a";req 1);k=t'
    )
    for bad in ("", "A", "a b"):
        with pytest.raises(SFError):
            serialize_item(Item(1, ((bad, True),)))
        with pytest.raises(SFError):
            serialize_dictionary([(bad, Item(1))])
