"""The committed HTTP signature vectors (protocol/vectors/httpsig.json) hold, byte for
byte, and are current (SPEC §9, §11)."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest
from nacl.signing import VerifyKey

import protocol as p

VECTORS = Path(p.__file__).parent / "vectors"
HTTPSIG: list[dict[str, Any]] = json.loads((VECTORS / "httpsig.json").read_text(encoding="utf-8"))
VALID = [v for v in HTTPSIG if v["code"] is None]
REJECTS = [v for v in HTTPSIG if v["code"] is not None]


def target(vector: dict[str, Any]) -> tuple[str, str, str, str]:
    r = vector["request"]
    return r["method"], r["authority"], r["path"], r["query"]


def verify(vector: dict[str, Any]) -> p.VerifiedSignature:
    """Verify a vector the way a node does, with the vector's clock and known keys."""
    keys = {keyid: bytes.fromhex(key) for keyid, key in vector["keys"].items()}
    common: dict[str, Any] = {
        "headers": vector["headers"],
        "body": bytes.fromhex(vector["body"]),
        "now_s": vector["now_s"],
        "key_of": keys.get,
    }
    if vector["message"] == "request":
        method, authority, path, query = target(vector)
        return p.verify_request(
            method=method, authority=authority, path=path, query=query, **common
        )
    return p.verify_response(
        status=vector["status"],
        request_signature=vector["request"]["signature"],
        request=target(vector),
        **common,
    )


def test_httpsig_vectors_are_generated_from_the_current_code() -> None:
    from tools import gen_vectors

    text = (VECTORS / "httpsig.json").read_text(encoding="utf-8")
    assert text == gen_vectors.build()["httpsig.json"], "run python -m tools.gen_vectors"


def test_vectors_cover_requests_responses_and_every_code() -> None:
    assert {v["message"] for v in VALID} == {"request", "response"}
    assert {v["code"] for v in REJECTS} == {
        "SIGNATURE_MISSING",
        "SIGNATURE_MALFORMED",
        "SIGNATURE_COMPONENTS",
        "SIGNATURE_EXPIRED",
        "SIGNATURE_EARLY",
        "UNKNOWN_SIGNER",
        "BAD_SIGNATURE",
        "BAD_DIGEST",
    }
    assert len({v["name"] for v in HTTPSIG}) == len(HTTPSIG)


@pytest.mark.parametrize("vector", VALID, ids=[v["name"] for v in VALID])
def test_valid_vector(vector: dict[str, Any]) -> None:
    key = p.signing_key(bytes.fromhex(vector["signer_seed"]))
    headers = vector["headers"]
    verified = verify(vector)
    assert verified.keyid == p.public_key(key).hex() == verified.key.hex()
    assert headers["Content-Digest"] == p.content_digest(bytes.fromhex(vector["body"]))
    # The Signature field is Ed25519 (PyNaCl, directly) over the stated base...
    signature = base64.b64decode(headers["Signature"].removeprefix("watan=:").removesuffix(":"))
    assert signature == verified.signature
    base = vector["signature_base"].encode("ascii")
    VerifyKey(verified.key).verify(base, signature)
    assert key.sign(base).signature == signature  # deterministic (RFC 8032 §5.1.6)
    # ...and signing the same inputs again reproduces both fields byte for byte.
    params = p.SignatureParams(
        keyid=verified.keyid,
        created=verified.created,
        expires=verified.expires,
        nonce=verified.nonce,
    )
    if vector["message"] == "request":
        method, authority, path, query = target(vector)
        fields = p.sign_request(
            method=method,
            authority=authority,
            path=path,
            query=query,
            headers=headers,
            key=key,
            params=params,
        )
    else:
        fields = p.sign_response(
            status=vector["status"],
            headers=headers,
            request_signature=vector["request"]["signature"],
            request=target(vector),
            key=key,
            params=params,
        )
    assert fields == {k: headers[k] for k in ("Signature-Input", "Signature")}


def test_responses_answer_the_requests_in_the_file() -> None:
    signatures = {v["headers"]["Signature"] for v in VALID if v["message"] == "request"}
    responses = [v for v in VALID if v["message"] == "response"]
    assert responses and all(v["request"]["signature"] in signatures for v in responses)


def test_the_spec_example_is_vector_r1() -> None:
    spec = (Path(p.__file__).parent / "SPEC.md").read_text(encoding="utf-8")
    (r1,) = [v for v in VALID if v["name"].startswith("R1 ")]
    assert r1["signature_base"] in spec


@pytest.mark.parametrize("vector", REJECTS, ids=[v["name"] for v in REJECTS])
def test_reject_vector(vector: dict[str, Any]) -> None:
    with pytest.raises(p.RemoteProtocolError) as caught:
        verify(vector)
    assert caught.value.code.value == vector["code"], caught.value.message
