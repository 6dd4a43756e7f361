"""Generate ``protocol/vectors/*`` from fixed seeds, so vectors never drift from code.

    python -m tools.gen_vectors          # rewrite the files
    python -m tools.gen_vectors --check  # exit 1 if the committed files are stale

Every valid vector is produced by the protocol library and then re-verified; every
reject vector is hand-built (the library refuses to make invalid entries), signed
properly where the fault is not the signature, and checked to fail with its code.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import msgpack

import protocol as p
from protocol import _httpsig as httpsig
from protocol import oprf
from protocol._json import value_json
from protocol._sfv import Item
from protocol.oprf import _group as oprf_group

VECTORS = Path(__file__).resolve().parent.parent / "protocol" / "vectors"

#: The verifier's clock for every vector (2026-05-28T20:26:40Z).
NOW = 1_780_000_000_000
NET = hashlib.sha256(b"watan test vectors federation").digest()
OTHER_NET = hashlib.sha256(b"another federation").digest()


def seed(label: str) -> bytes:
    """A fixed 32-byte seed, derived from a label so vectors are reproducible."""
    return hashlib.sha256(b"watan vector seed: " + label.encode()).digest()


def _entry_vector(name: str, key_seed: bytes, entry: p.Entry) -> dict[str, Any]:
    key = p.signing_key(key_seed)
    return {
        "name": name,
        "seed": key_seed.hex(),
        "public_key": p.public_key(key).hex(),
        "author": entry.author.hex(),
        "net": entry.net.hex(),
        "seq": entry.seq,
        "kind": entry.kind,
        "content": value_json(entry.content),
        "payload": entry.payload.hex(),
        "sig_input": (p.ENTRY_TAG + entry.payload).hex(),
        "signature": entry.sig.hex(),
        "wire": entry.wire.hex(),
        "id": entry.id.hex(),
    }


def _profile(name_ar: str, name_en: str, enc_label: str) -> p.Profile:
    return p.Profile(
        enc_key=p.enc_public_key(seed(enc_label)),
        endpoints=["https://watan.example-ngo.iq/fed"],
        governorate="IQG08",
        name_ar=name_ar,
        name_en=name_en,
        registration="1Z23456",
        role="ngo",
        sectors=["cash", "food_security", "shelter"],
    )


def _allocation(pseudonym_label: str, **changes: Any) -> p.Allocation:
    fields: dict[str, Any] = {
        "category": "food",
        "date": "2026-05-27",
        "district": "IQG02Q06",
        "epoch": 1,
        "program": "ramadan-2026",
        "pseudonym": hashlib.sha256(pseudonym_label.encode()).digest(),
        "quantity": 2,
        "unit": "basket",
        "value_iqd": 150_000,
    }
    fields.update(changes)
    return p.Allocation(**fields)


def main_chain() -> list[tuple[str, bytes, p.Entry]]:
    """Feed A: one entry of every kind, a key rotation, and an entry by the new key."""
    key_a, key_a2, key_b = (p.signing_key(seed(x)) for x in ("A", "A2", "B"))
    out: list[tuple[str, bytes, p.Entry]] = []
    head: p.FeedHead | None = None

    def add(name: str, key_seed: bytes, entry: p.Entry) -> None:
        nonlocal head
        out.append((name, key_seed, entry))
        head = p.head_after(head, entry)

    add(
        "A1 node.profile/1",
        seed("A"),
        p.append(
            None,
            _profile("منظمة الأمل للإغاثة", "Al-Amal Relief", "A-enc"),
            key=key_a,
            net=NET,
            now_ms=NOW - 9_000,
        ),
    )
    assert head is not None
    add(
        "A2 node.vouch/1",
        seed("A"),
        p.append(
            head,
            p.Vouch(peer=p.public_key(key_b), stance="vouch"),
            key=key_a,
            net=NET,
            now_ms=NOW - 8_000,
        ),
    )
    add(
        "A3 ataa.allocation/1",
        seed("A"),
        p.append(head, _allocation("household-1"), key=key_a, net=NET, now_ms=NOW - 7_000),
    )
    allocation_id = out[-1][2].id
    add(
        "A4 ataa.allocation_void/1",
        seed("A"),
        p.append(
            head,
            p.AllocationVoid(allocation=allocation_id, reason="entered_in_error"),
            key=key_a,
            net=NET,
            now_ms=NOW - 6_000,
        ),
    )
    add(
        "A5 node.checkpoint/1",
        seed("A"),
        p.append(
            head,
            p.Checkpoint(author=head.author, id=head.id, seq=head.seq),
            key=key_a,
            net=NET,
            now_ms=NOW - 5_000,
        ),
    )
    add(
        "A6 node.key_rotate/1",
        seed("A"),
        p.rotate_key(
            head, key=key_a, new_key=key_a2, net=NET, now_ms=NOW - 4_000, reason="scheduled"
        ),
    )
    add(
        "A7 ataa.allocation/1 signed by the rotated key",
        seed("A2"),
        p.append(
            head,
            _allocation(
                "household-2", category="cash", quantity=1, unit="transfer", value_iqd=250_000
            ),
            key=key_a2,
            net=NET,
            now_ms=NOW - 3_000,
        ),
    )
    oracles = [p.public_key(key_a), p.public_key(key_b), p.public_key(p.signing_key(seed("C")))]
    secret, _ = oprf.derive_key_pair(seed("oracle key"), b"vectors", mode=oprf.MODE_VOPRF)
    shares = oprf.split_key(secret, threshold=2, shares=3, coefficients=[wide_seed("coef 1")])
    add(
        "A8 oracle.config/1",
        seed("A2"),
        p.append(
            head,
            p.OracleConfig(
                epoch=1,
                keys=[share.public_key for share in shares],
                oracles=oracles,
                suite=oprf.SUITE,
                threshold=2,
            ),
            key=key_a2,
            net=NET,
            now_ms=NOW - 2_000,
        ),
    )
    add(
        "A9 oracle.usage/1",
        seed("A2"),
        p.append(
            head,
            p.OracleUsage(
                counts=[412, 37], date="2026-05-27", epoch=1, requesters=sorted(oracles[1:])
            ),
            key=key_a2,
            net=NET,
            now_ms=NOW - 1_000,
        ),
    )
    return out


def other_entries() -> list[tuple[str, bytes, p.Entry]]:
    key_b = p.signing_key(seed("B"))
    opaque = {"note": "a kind this version does not know", "rows": [1, -2, b"\x00\xff", None, True]}
    return [
        (
            "B1 node.profile/1",
            seed("B"),
            p.append(
                None,
                _profile("جمعية النور", "Al-Noor Society", "B-enc"),
                key=key_b,
                net=NET,
                now_ms=NOW,
            ),
        ),
        (
            "C1 unknown kind (opaque)",
            seed("C"),
            p.create_entry(
                key=p.signing_key(seed("C")),
                net=NET,
                seq=1,
                prev=None,
                ts=NOW,
                kind="future.survey_result/2",
                content=opaque,
            ),
        ),
    ]


# --- reject vectors ---------------------------------------------------------------

_packer = msgpack.Packer(use_bin_type=True)


def pk(value: Any) -> bytes:
    return _packer.pack(value)  # type: ignore[no-any-return]


def raw_map(pairs: Sequence[tuple[str, bytes]]) -> bytes:
    """A msgpack map from (key, already-packed value) pairs, in the order given."""
    return _packer.pack_map_header(len(pairs)) + b"".join(pk(k) + v for k, v in pairs)  # type: ignore[no-any-return]


def payload_pairs(key: p.SigningKey, **overrides: bytes) -> list[tuple[str, bytes]]:
    """A valid allocation payload at seq 1 as packed pairs; override any raw value."""
    content = _allocation("household-reject").to_content()
    values = {
        "author": pk(p.public_key(key)),
        "content": pk(content),
        "kind": pk("ataa.allocation/1"),
        "net": pk(NET),
        "prev": pk(None),
        "seq": pk(1),
        "ts": pk(NOW),
        "v": pk(1),
    }
    values.update(overrides)
    return sorted(values.items())


def wire_of(payload: bytes, key: p.SigningKey) -> bytes:
    sig = key.sign(p.ENTRY_TAG + payload).signature
    return pk([payload, sig])


def reject_vectors() -> list[dict[str, Any]]:
    key = p.signing_key(seed("R"))
    other = p.signing_key(seed("R-other"))
    good = raw_map(payload_pairs(key))
    content = _allocation("household-reject").to_content()
    chain_1 = p.append(None, _allocation("household-chain"), key=key, net=NET, now_ms=NOW - 1_000)
    head_1 = p.head_after(None, chain_1)
    chain_2 = p.append(head_1, _allocation("household-chain-2"), key=key, net=NET, now_ms=NOW)

    def later(**overrides: bytes) -> bytes:
        base = {"prev": pk(chain_1.id), "seq": pk(2), "ts": pk(NOW)}
        base.update(overrides)
        return wire_of(raw_map(payload_pairs(key, **base)), key)

    def content_with(**changes: bytes) -> bytes:
        pairs = {k: pk(v) for k, v in content.items()}
        pairs.update(changes)
        return raw_map(sorted(pairs.items()))

    def nested(depth: int) -> bytes:
        return b"\x91" * depth + b"\xc0"

    cases: list[tuple[str, str, bytes, str, list[bytes]]] = [
        (
            "non-canonical key order",
            "payload keys not sorted (seq before prev)",
            wire_of(raw_map(sorted(payload_pairs(key), key=lambda kv: kv[0] == "prev")), key),
            "NON_CANONICAL",
            [],
        ),
        (
            "non-canonical content key order",
            "content keys not sorted",
            wire_of(
                raw_map(
                    payload_pairs(
                        key,
                        content=raw_map(
                            list(reversed(sorted((k, pk(v)) for k, v in content.items())))
                        ),
                    )
                ),
                key,
            ),
            "NON_CANONICAL",
            [],
        ),
        (
            "non-minimal int",
            "seq 1 encoded as uint8 (cc 01) instead of fixint 01",
            wire_of(raw_map(payload_pairs(key, seq=b"\xcc\x01")), key),
            "NON_CANONICAL",
            [],
        ),
        (
            "non-minimal bin header",
            "payload bin with a bin32 header although it is under 65536 bytes",
            b"\x92\xc6"
            + len(good).to_bytes(4, "big")
            + good
            + b"\xc4\x40"
            + key.sign(p.ENTRY_TAG + good).signature,
            "NON_CANONICAL",
            [],
        ),
        (
            "float",
            "quantity encoded as float64 2.0",
            wire_of(
                raw_map(
                    payload_pairs(
                        key, content=content_with(quantity=bytes.fromhex("cb4000000000000000"))
                    )
                ),
                key,
            ),
            "FORBIDDEN_TYPE",
            [],
        ),
        (
            "float32",
            "quantity encoded as float32 2.0",
            wire_of(
                raw_map(
                    payload_pairs(key, content=content_with(quantity=bytes.fromhex("ca40000000")))
                ),
                key,
            ),
            "FORBIDDEN_TYPE",
            [],
        ),
        (
            "ext",
            "content value is an ext type (fixext1)",
            wire_of(raw_map(payload_pairs(key, content=content_with(unit=b"\xd4\x01\x00"))), key),
            "FORBIDDEN_TYPE",
            [],
        ),
        (
            "duplicate key",
            "content map has 'unit' twice",
            wire_of(
                raw_map(
                    payload_pairs(
                        key,
                        content=raw_map(
                            sorted([(k, pk(v)) for k, v in content.items()] + [("unit", pk("kg"))])
                        ),
                    )
                ),
                key,
            ),
            "DUPLICATE_KEY",
            [],
        ),
        (
            "str/bin confusion: author",
            "author is a str of 32 characters, not bin",
            wire_of(raw_map(payload_pairs(key, author=pk("a" * 32))), key),
            "WRONG_TYPE",
            [],
        ),
        (
            "str/bin confusion: pseudonym",
            "pseudonym is a hex str, not 32 bytes of bin",
            wire_of(
                raw_map(payload_pairs(key, content=content_with(pseudonym=pk("ab" * 32)))), key
            ),
            "WRONG_TYPE",
            [],
        ),
        (
            "bad signature",
            "last signature byte flipped",
            (lambda w: w[:-1] + bytes([w[-1] ^ 1]))(wire_of(good, key)),
            "BAD_SIGNATURE",
            [],
        ),
        (
            "signed by another key",
            "valid signature, but by a key that is not the author",
            wire_of(good, other),
            "BAD_SIGNATURE",
            [],
        ),
        (
            "wrong net",
            "entry of another federation",
            wire_of(raw_map(payload_pairs(key, net=pk(OTHER_NET))), key),
            "WRONG_NET",
            [],
        ),
        (
            "unsupported version",
            "v = 2",
            wire_of(raw_map(payload_pairs(key, v=pk(2))), key),
            "UNSUPPORTED_VERSION",
            [],
        ),
        (
            "unknown payload field",
            "payload has an extra field 'x'",
            wire_of(raw_map(payload_pairs(key, x=pk(1))), key),
            "UNKNOWN_FIELD",
            [],
        ),
        (
            "missing payload field",
            "payload lacks 'ts'",
            wire_of(raw_map([kv for kv in payload_pairs(key) if kv[0] != "ts"]), key),
            "MISSING_FIELD",
            [],
        ),
        (
            "prev at seq 1",
            "the first entry names a prev",
            wire_of(raw_map(payload_pairs(key, prev=pk(b"\x00" * 32))), key),
            "BAD_PREV",
            [],
        ),
        (
            "wrong prev",
            "entry 2 names an id that is not entry 1's",
            later(prev=pk(hashlib.sha256(b"not entry 1").digest())),
            "BAD_PREV",
            [chain_1.wire],
        ),
        ("seq gap", "entry 3 follows entry 1", later(seq=pk(3)), "SEQ_GAP", [chain_1.wire]),
        (
            "ts before prev",
            "entry 2 is older than entry 1",
            later(ts=pk(NOW - 2_000)),
            "TS_BEFORE_PREV",
            [chain_1.wire],
        ),
        (
            "wrong author in chain",
            "entry 2 of another author after entry 1",
            (lambda k: wire_of(raw_map(payload_pairs(k, prev=pk(chain_1.id), seq=pk(2))), k))(
                other
            ),
            "WRONG_AUTHOR",
            [chain_1.wire],
        ),
        (
            "oversize",
            "entry larger than 65536 bytes (opaque kind with a 70000-byte bin)",
            wire_of(
                raw_map(
                    payload_pairs(
                        key, kind=pk("future.blob/1"), content=pk({"data": b"\x00" * 70_000})
                    )
                ),
                key,
            ),
            "TOO_LARGE",
            [],
        ),
        (
            "too deep",
            "opaque content nested 17 arrays deep (payload map is depth 1)",
            wire_of(
                raw_map(
                    payload_pairs(
                        key, kind=pk("future.tree/1"), content=raw_map([("t", nested(15))])
                    )
                ),
                key,
            ),
            "TOO_DEEP",
            [],
        ),
        (
            "future timestamp",
            "ts is 10 minutes and 1 ms ahead of the verifier's clock",
            wire_of(raw_map(payload_pairs(key, ts=pk(NOW + p.MAX_CLOCK_SKEW_MS + 1))), key),
            "TS_IN_FUTURE",
            [],
        ),
        (
            "timestamp before 2025",
            "ts from a box whose clock reset to 1970",
            wire_of(raw_map(payload_pairs(key, ts=pk(86_400_000))), key),
            "BAD_VALUE",
            [],
        ),
        (
            "bad kind name",
            "kind without a version",
            wire_of(raw_map(payload_pairs(key, kind=pk("ataa.allocation"))), key),
            "BAD_KIND",
            [],
        ),
        (
            "bad category",
            "category outside the fixed list",
            wire_of(raw_map(payload_pairs(key, content=content_with(category=pk("weapons")))), key),
            "BAD_VALUE",
            [],
        ),
        (
            "bad date",
            "2026-02-30 is not a calendar date",
            wire_of(raw_map(payload_pairs(key, content=content_with(date=pk("2026-02-30")))), key),
            "BAD_VALUE",
            [],
        ),
        (
            "free text in an allocation",
            "an extra 'name' field (PII has no place in a feed)",
            wire_of(
                raw_map(payload_pairs(key, content=content_with(name=pk("محمد علي حسين")))), key
            ),
            "UNKNOWN_FIELD",
            [],
        ),
        (
            "national ID in a program id",
            "program 'p199012345678' carries a 12-digit number (no run of 7+ digits allowed)",
            wire_of(
                raw_map(payload_pairs(key, content=content_with(program=pk("p199012345678")))),
                key,
            ),
            "BAD_VALUE",
            [],
        ),
        (
            "message kind in a feed",
            "msg.* kinds travel only inside sealed messages",
            wire_of(raw_map(payload_pairs(key, kind=pk("msg.text/1"), content=pk({}))), key),
            "BAD_KIND",
            [],
        ),
        (
            "trailing bytes",
            "a valid wire followed by one more byte",
            wire_of(good, key) + b"\xc0",
            "MALFORMED",
            [],
        ),
        (
            "truncated",
            "a valid wire missing its last byte",
            wire_of(good, key)[:-1],
            "MALFORMED",
            [],
        ),
    ]
    # keep the chain's second entry referenced, so a reader sees a valid continuation
    assert p.verify_chain([chain_1.wire, chain_2.wire], net=NET, now_ms=NOW)[1] is not None
    out = []
    for name, why, wire, code, chain in cases:
        out.append(
            {
                "name": name,
                "why": why,
                "net": NET.hex(),
                "now_ms": NOW,
                "code": code,
                "chain": [w.hex() for w in chain],
                "wire": wire.hex(),
            }
        )
    return out


def check_reject(vector: dict[str, Any]) -> str:
    """Verify a reject vector the way a node would; return the code it fails with."""
    net = bytes.fromhex(vector["net"])
    wires = [bytes.fromhex(w) for w in vector["chain"]] + [bytes.fromhex(vector["wire"])]
    try:
        p.verify_chain(wires, net=net, now_ms=vector["now_ms"])
    except p.RemoteProtocolError as exc:
        return exc.code.value
    return "ACCEPTED"


# --- sealed message vectors ----------------------------------------------------------


def sealed_vectors() -> list[dict[str, Any]]:
    sender = p.signing_key(seed("A"))
    recipient = p.signing_key(seed("B"))
    enc_secret = seed("B-enc")
    attachment = p.Attachment(
        data=b"district,households\nIQG02Q06,120\n", name="قائمة.csv", type="text/csv"
    )
    cases: list[tuple[str, p.Body]] = [
        (
            "text in Arabic",
            p.TextMessage(
                subject="توزيع السلال الغذائية", text="نرجو التنسيق قبل التوزيع يوم الخميس.\nشكراً"
            ),
        ),
        (
            "text with an attachment and a thread",
            p.TextMessage(
                text="Attached: households per district.",
                thread=hashlib.sha256(b"thread").digest(),
                attachments=(attachment,),
            ),
        ),
        (
            "delivery receipt",
            p.Receipt(message=hashlib.sha256(b"some message").digest(), state="delivered"),
        ),
    ]
    out = []
    for index, (name, body) in enumerate(cases):
        ephemeral = seed(f"ephemeral-{index}")
        nonce = seed(f"nonce-{index}")[:16]
        sealed = p.seal(
            body,
            sender_key=sender,
            to=p.public_key(recipient),
            recipient_enc_key=p.enc_public_key(enc_secret),
            net=NET,
            now_ms=NOW + index,
            ephemeral_secret=ephemeral,
            nonce=nonce,
        )
        envelope = msgpack.unpackb(sealed.envelope)
        inner = _open(envelope["box"], enc_secret)
        payload = msgpack.unpackb(inner)[0]
        out.append(
            {
                "name": name,
                "net": NET.hex(),
                "sender_seed": seed("A").hex(),
                "sender": p.public_key(sender).hex(),
                "recipient": p.public_key(recipient).hex(),
                "recipient_enc_secret": enc_secret.hex(),
                "recipient_enc_key": p.enc_public_key(enc_secret).hex(),
                "ephemeral_secret": ephemeral.hex(),
                "ephemeral_public": p.enc_public_key(ephemeral).hex(),
                "box_nonce": hashlib.blake2b(
                    p.enc_public_key(ephemeral) + p.enc_public_key(enc_secret), digest_size=24
                ).hexdigest(),
                "nonce": nonce.hex(),
                "ts": NOW + index,
                "kind": body.KIND,
                "content": value_json(body.to_content()),
                "payload": payload.hex(),
                "sig_input": (p.MESSAGE_TAG + payload).hex(),
                "inner": inner.hex(),
                "id": sealed.id.hex(),
                "envelope": sealed.envelope.hex(),
            }
        )
    return out


def _open(box: bytes, secret: bytes) -> bytes:
    from nacl.public import PrivateKey, SealedBox

    return SealedBox(PrivateKey(secret)).decrypt(box)


# --- HTTP signature vectors (SPEC §11) ----------------------------------------------

#: The verifier's clock for the HTTP signature vectors, in seconds.
NOW_S = NOW // 1000
_CONTENT_TYPE = "application/vnd.watan+msgpack"
_Params = tuple[tuple[str, Any], ...]


def _nonce(label: str) -> str:
    """18 fixed bytes in base64url: 24 characters, like the nonces nodes draw."""
    return base64.urlsafe_b64encode(seed("nonce: " + label)[:18]).decode("ascii")


def _sig_params(key: p.SigningKey, label: str, **changes: Any) -> _Params:
    """The profile's parameters in the reference's order; a change to None drops one."""
    created = changes.pop("created", NOW_S - 5)
    params: dict[str, Any] = {
        "keyid": p.public_key(key).hex(),
        "created": created,
        "expires": created + 120,
        "nonce": _nonce(label),
        "alg": "ed25519",
        "tag": p.SIGNATURE_TAG,
    }
    params.update(changes)
    return tuple((name, value) for name, value in params.items() if value is not None)


def _request(
    name: str,
    key: p.SigningKey,
    target: tuple[str, str, str, str],
    body: bytes,
    *,
    components: Sequence[Item] = httpsig.REQUEST_ITEMS,
    params: _Params | None = None,
    digest: str | None = None,
    label: str = p.SIGNATURE_LABEL,
) -> dict[str, Any]:
    """A request signed as given: by the profile unless the arguments say otherwise."""
    method, authority, path, query = target
    headers = {"Content-Type": _CONTENT_TYPE, "Content-Digest": digest or p.content_digest(body)}
    values = httpsig.request_values(
        method=method, authority=authority, path=path, query=query, headers=headers
    )
    fields, base = httpsig.signature_fields(
        components, values, _sig_params(key, name) if params is None else params, key, label=label
    )
    return {
        "name": name,
        "message": "request",
        "request": dict(zip(("method", "authority", "path", "query"), target, strict=True)),
        "headers": headers | fields,
        "body": body.hex(),
        "signer_seed": key.encode().hex(),
        "now_s": NOW_S,
        "signature_base": base.decode("ascii"),
    }


def _response(
    name: str, key: p.SigningKey, request: dict[str, Any], status: int, body: bytes
) -> dict[str, Any]:
    """A response signed by the profile, bound to ``request`` (a request vector)."""
    target = (
        request["request"]["method"],
        request["request"]["authority"],
        request["request"]["path"],
        request["request"]["query"],
    )
    signature = request["headers"]["Signature"]
    headers = {"Content-Type": _CONTENT_TYPE, "Content-Digest": p.content_digest(body)}
    values = httpsig.response_values(
        status=status,
        headers=headers,
        request=target,
        request_member=httpsig.request_member(signature),
    )
    params = _sig_params(key, name)
    fields, base = httpsig.signature_fields(httpsig.RESPONSE_ITEMS, values, params, key)
    public = p.sign_response(
        status=status,
        headers=headers,
        request_signature=signature,
        request=target,
        key=key,
        params=p.SignatureParams(**dict(params)),
    )
    assert public == fields, "sign_response and the vector builder disagree"
    return {
        "name": name,
        "message": "response",
        "request": {**request["request"], "signature": signature},
        "status": status,
        "headers": headers | fields,
        "body": body.hex(),
        "signer_seed": key.encode().hex(),
        "now_s": NOW_S,
        "signature_base": base.decode("ascii"),
    }


def _reject(
    name: str, why: str, code: str, vector: dict[str, Any], **changes: Any
) -> dict[str, Any]:
    """``vector`` with one fault: fields replaced by ``changes``, or signed as the
    fault needs (then ``vector`` is already faulty and ``changes`` is empty)."""
    out = {k: v for k, v in vector.items() if k != "signature_base"}
    out.update(changes, name=name, why=why, code=code)
    return out


def httpsig_vectors() -> list[dict[str, Any]]:
    """Signed requests and responses between node A and node B, then one fault each."""
    node_a, node_b, stranger = (p.signing_key(seed(x)) for x in ("A", "B", "stranger"))
    keys = {p.public_key(k).hex(): p.public_key(k).hex() for k in (node_a, node_b)}
    get = ("GET", "node-b.example.org", "/fed/v1/heads", "")
    post = ("POST", "node-b.example.org:8443", "/fed/v1/entries", "?since=7&limit=100")
    post_body = p.encode({"entries": [b"\x00\x01\x02"], "v": 1})
    r1 = _request("R1 GET, empty body, no query", node_a, get, b"")
    r2 = _request("R2 POST with a body, a query and a port", node_a, post, post_body)
    s1 = _response("S1 200 answering R2", node_b, r2, 200, p.encode({"accepted": 1}))
    s2 = _response("S2 404 answering R1", node_b, r1, 404, p.encode({"error": "NOT_FOUND"}))
    valid = [r1, r2, s1, s2]
    for vector in valid:
        vector["code"] = None

    def signed(name: str, key: p.SigningKey = node_a, **kwargs: Any) -> dict[str, Any]:
        """R2's request, signed again as ``kwargs`` say, with its own nonce."""
        return _request(name, key, post, post_body, **kwargs)

    def params(name: str, **changes: Any) -> _Params:
        return _sig_params(node_a, name, **changes)

    items = list(httpsig.REQUEST_ITEMS)
    no_signature = {k: v for k, v in r1["headers"].items() if k != "Signature"}
    twice = r2["headers"]["Signature-Input"] + ", " + r2["headers"]["Signature-Input"]
    sha512 = base64.b64encode(hashlib.sha512(post_body).digest()).decode("ascii")
    faults: list[tuple[str, str, str, dict[str, Any], dict[str, Any]]] = [
        (
            "no Signature",
            "the Signature field is absent",
            "SIGNATURE_MISSING",
            r1,
            {"headers": no_signature},
        ),
        (
            "another label",
            "signed under the label sig1, not watan",
            "SIGNATURE_MISSING",
            signed("another label", label="sig1"),
            {},
        ),
        (
            "watan twice",
            "Signature-Input has the watan member twice",
            "SIGNATURE_MALFORMED",
            r2,
            {"headers": r2["headers"] | {"Signature-Input": twice}},
        ),
        (
            "parameter twice",
            "the nonce parameter twice",
            "SIGNATURE_MALFORMED",
            signed(
                "parameter twice", params=(*params("parameter twice"), ("nonce", _nonce("again")))
            ),
            {},
        ),
        (
            "unknown parameter",
            "an extra parameter x-extra=1",
            "SIGNATURE_MALFORMED",
            signed("unknown parameter", params=(*params("unknown parameter"), ("x-extra", 1))),
            {},
        ),
        (
            "no nonce",
            "the nonce parameter is absent",
            "SIGNATURE_MALFORMED",
            signed("no nonce", params=params("no nonce", nonce=None)),
            {},
        ),
        (
            "short nonce",
            "a nonce of 5 characters",
            "SIGNATURE_MALFORMED",
            signed("short nonce", params=params("short nonce", nonce="short")),
            {},
        ),
        (
            "wrong alg",
            "alg is rsa-pss-sha512",
            "SIGNATURE_MALFORMED",
            signed("wrong alg", params=params("wrong alg", alg="rsa-pss-sha512")),
            {},
        ),
        (
            "wrong tag",
            "the tag of another application",
            "SIGNATURE_MALFORMED",
            signed("wrong tag", params=params("wrong tag", tag="other-app/v1")),
            {},
        ),
        (
            "components out of order",
            "@authority covered before @method",
            "SIGNATURE_COMPONENTS",
            signed("components out of order", components=[items[1], items[0], *items[2:]]),
            {},
        ),
        (
            "no @query",
            "@query is not covered",
            "SIGNATURE_COMPONENTS",
            signed("no @query", components=[c for c in items if c.value != "@query"]),
            {},
        ),
        (
            "expired",
            "the verifier's clock is 1 s past expires",
            "SIGNATURE_EXPIRED",
            r2,
            {"now_s": NOW_S - 5 + 120 + 1},
        ),
        (
            "lifetime too long",
            "expires is 301 s after created",
            "SIGNATURE_EXPIRED",
            signed(
                "lifetime too long", params=params("lifetime too long", expires=NOW_S - 5 + 301)
            ),
            {},
        ),
        (
            "early",
            "created is 61 s ahead of the verifier's clock",
            "SIGNATURE_EARLY",
            signed("early", params=params("early", created=NOW_S + 61)),
            {},
        ),
        (
            "unknown signer",
            "signed by a node the verifier does not know",
            "UNKNOWN_SIGNER",
            signed("unknown signer", stranger),
            {},
        ),
        (
            "keyid of another node",
            "node A's keyid, signed by another key",
            "BAD_SIGNATURE",
            signed("keyid of another node", stranger, params=params("keyid of another node")),
            {},
        ),
        (
            "path changed",
            "the path was changed in transit",
            "BAD_SIGNATURE",
            r2,
            {"request": r2["request"] | {"path": "/fed/v1/entries/all"}},
        ),
        (
            "body changed",
            "the body was changed in transit",
            "BAD_DIGEST",
            r2,
            {"body": p.encode({"entries": [b"\x00\x01\x03"], "v": 1}).hex()},
        ),
        (
            "sha-512 only",
            "a correct sha-512 digest, but no sha-256",
            "BAD_DIGEST",
            signed("sha-512 only", digest=f"sha-512=:{sha512}:"),
            {},
        ),
        (
            "response to another request",
            "S1 (answering R2) checked against R1",
            "BAD_SIGNATURE",
            s1,
            {"request": r1["request"] | {"signature": r1["headers"]["Signature"]}},
        ),
    ]
    rejects = [_reject(*fault[:4], **fault[4]) for fault in faults]
    for vector in [*valid, *rejects]:
        vector["keys"] = keys
    return [*valid, *rejects]


def check_httpsig(vector: dict[str, Any]) -> str:
    """Verify an HTTP signature vector as a node would; return its code or ACCEPTED."""
    keys = {k: bytes.fromhex(v) for k, v in vector["keys"].items()}
    target = vector["request"]
    common: dict[str, Any] = {
        "headers": vector["headers"],
        "body": bytes.fromhex(vector["body"]),
        "now_s": vector["now_s"],
        "key_of": keys.get,
    }
    request = (target["method"], target["authority"], target["path"], target["query"])
    try:
        if vector["message"] == "request":
            method, authority, path, query = request
            p.verify_request(method=method, authority=authority, path=path, query=query, **common)
        else:
            p.verify_response(
                status=vector["status"],
                request_signature=target["signature"],
                request=request,
                **common,
            )
    except p.RemoteProtocolError as exc:
        return exc.code.value
    return "ACCEPTED"


# --- threshold OPRF vectors (SPEC §13.3) ------------------------------------------


def wide_seed(label: str) -> bytes:
    """64 fixed bytes from a label: an RNG's output where the library wants 64 (reduced mod L)."""
    return hashlib.sha512(b"watan vector seed: " + label.encode()).digest()


def oprf_threshold_vectors() -> dict[str, Any]:
    """A 2-of-3 split of a VOPRF key; every oracle evaluates one blinded input; the
    client combines the two lowest valid shares. Checked against the unsplit key."""
    key_seed, key_info = seed("oprf threshold key"), b"watan oracle key, epoch 1"
    sk, pk = oprf.derive_key_pair(key_seed, key_info, mode=oprf.MODE_VOPRF)
    coefficients = [wide_seed("oprf threshold coefficient 1")]
    shares = oprf.split_key(sk, threshold=2, shares=3, coefficients=coefficients)
    private_input = b"watan example pseudonym input"
    blind_scalar = oprf_group.scalar_reduce(wide_seed("oprf threshold blind"))
    _, blinded = oprf.blind(private_input, blind=blind_scalar, mode=oprf.MODE_VOPRF)
    randoms = [wide_seed(f"oprf threshold proof random {s.index}") for s in shares]
    answers = [
        oprf.evaluate_share(s, [blinded], proof_random=r)
        for s, r in zip(shares, randoms, strict=True)
    ]
    keys = {s.index: s.public_key for s in shares}
    combined = oprf.combine(answers, share_keys=keys, blinded_elements=[blinded], threshold=2)
    element = combined.evaluated_elements[0]
    assert element == oprf.blind_evaluate(sk, blinded), "shares do not combine to the key"
    output = oprf.finalize(private_input, blind_scalar, element)
    return {
        "name": "2-of-3 threshold VOPRF evaluation of one input",
        "suite": oprf.SUITE,
        "mode": oprf.MODE_VOPRF,
        "key_seed": key_seed.hex(),
        "key_info": key_info.hex(),
        "sk": sk.hex(),
        "pk": pk.hex(),
        "threshold": 2,
        "coefficients": [c.hex() for c in coefficients],
        "shares": [
            {"index": s.index, "secret": s.secret.hex(), "public_key": s.public_key.hex()}
            for s in shares
        ],
        "input": private_input.hex(),
        "blind": blind_scalar.hex(),
        "blinded_element": blinded.hex(),
        "evaluations": [
            {
                "index": a.index,
                "proof_random": r.hex(),
                "evaluated_element": a.evaluated_elements[0].hex(),
                "proof": a.proof.hex(),
            }
            for a, r in zip(answers, randoms, strict=True)
        ],
        "used": list(combined.used),
        "lagrange": {str(i): v.hex() for i, v in oprf.lagrange_coefficients(combined.used).items()},
        "combined_element": element.hex(),
        "output": output.hex(),
        "epoch": 1,
        "pseudonym": oprf.pseudonym(output, epoch=1).hex(),
    }


# --- files ------------------------------------------------------------------------


def build() -> dict[str, str]:
    """Every vector file's exact text."""
    chain = main_chain()
    entries = [_entry_vector(n, s, e) for n, s, e in chain + other_entries()]
    rejects = reject_vectors()
    for vector in rejects:
        got = check_reject(vector)
        if got != vector["code"]:
            raise AssertionError(
                f"reject vector {vector['name']!r}: expected {vector['code']}, got {got}"
            )

    signatures = httpsig_vectors()
    for vector in signatures:
        got = check_httpsig(vector)
        if got != (vector["code"] or "ACCEPTED"):
            raise AssertionError(f"httpsig vector {vector['name']!r}: {vector['code']}, got {got}")

    def dump(value: Any) -> str:
        return json.dumps(value, ensure_ascii=False, indent=2) + "\n"

    header = "# Feed A of protocol/vectors/entries.json: one hex wire per line, in order.\n"
    return {
        "entries.json": dump(entries),
        "reject.json": dump(rejects),
        "sealed.json": dump(sealed_vectors()),
        "httpsig.json": dump(signatures),
        "oprf_threshold.json": dump(oprf_threshold_vectors()),
        "chain.txt": header + "".join(e.wire.hex() + "\n" for _, _, e in chain),
    }


def main(
    argv: Sequence[str] | None = None, *, write: Callable[[Path, str], None] | None = None
) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.gen_vectors", description=__doc__)
    parser.add_argument("--check", action="store_true", help="exit 1 if the files are stale")
    args = parser.parse_args(argv)
    stale = []
    for name, text in build().items():
        path = VECTORS / name
        if path.exists() and path.read_text(encoding="utf-8") == text:
            continue
        stale.append(name)
        if not args.check:
            (write or (lambda p, t: p.write_text(t, encoding="utf-8")))(path, text)
    if args.check and stale:
        print(
            f"stale vectors: {', '.join(stale)}; run python -m tools.gen_vectors", file=sys.stderr
        )
        return 1
    print(("rewrote " + ", ".join(stale)) if stale else "vectors are up to date")
    return 0


if __name__ == "__main__":
    sys.exit(main())
