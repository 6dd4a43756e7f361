"""The committed vectors in protocol/vectors/ hold, byte for byte, and are current."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import msgpack
import pytest
from nacl.public import PrivateKey, SealedBox

import protocol as p
from protocol._json import value_json

VECTORS = Path(p.__file__).parent / "vectors"


def load(name: str) -> list[dict[str, Any]]:
    data = json.loads((VECTORS / name).read_text(encoding="utf-8"))
    assert isinstance(data, list) and data
    return data


ENTRIES = load("entries.json")
REJECTS = load("reject.json")
SEALED = load("sealed.json")


def test_vectors_are_generated_from_the_current_code() -> None:
    from tools import gen_vectors

    for name, text in gen_vectors.build().items():
        assert (VECTORS / name).read_text(encoding="utf-8") == text, f"{name} is stale"


@pytest.mark.parametrize("vector", ENTRIES, ids=[v["name"] for v in ENTRIES])
def test_entry_vector_bytes(vector: dict[str, Any]) -> None:
    key = p.signing_key(bytes.fromhex(vector["seed"]))
    assert p.public_key(key).hex() == vector["public_key"]
    payload = bytes.fromhex(vector["payload"])
    assert vector["sig_input"] == (p.ENTRY_TAG + payload).hex()
    # Ed25519 is deterministic (RFC 8032 §5.1.6): the signature is reproducible.
    assert key.sign(bytes.fromhex(vector["sig_input"])).signature.hex() == vector["signature"]
    wire = bytes.fromhex(vector["wire"])
    assert wire == msgpack.packb([payload, bytes.fromhex(vector["signature"])], use_bin_type=True)
    assert hashlib.sha256(wire).hexdigest() == vector["id"]
    entry = p.verify_entry(
        wire, net=bytes.fromhex(vector["net"]), now_ms=None, key=p.public_key(key)
    )
    assert entry.id.hex() == vector["id"]
    assert (entry.author.hex(), entry.seq, entry.kind) == (
        vector["author"],
        vector["seq"],
        vector["kind"],
    )
    assert value_json(entry.content) == vector["content"]
    assert p.decode(payload) == msgpack.unpackb(payload)


def test_every_entry_kind_has_a_vector() -> None:
    kinds = {v["kind"] for v in ENTRIES}
    assert set(p.ENTRY_KINDS) <= kinds
    assert any(kind not in p.ENTRY_KINDS for kind in kinds), "an opaque kind is covered"


def test_feed_a_is_a_valid_chain_across_a_key_rotation() -> None:
    chain = [v for v in ENTRIES if v["name"].startswith("A")]
    assert len(chain) >= 3
    wires = [bytes.fromhex(v["wire"]) for v in chain]
    entries, head = p.verify_chain(wires, net=bytes.fromhex(chain[0]["net"]), now_ms=None)
    assert head is not None and head.seq == len(chain)
    assert head.key.hex() == chain[-1]["public_key"] != chain[0]["public_key"]
    assert [e.id.hex() for e in entries] == [v["id"] for v in chain]
    text = (VECTORS / "chain.txt").read_text(encoding="ascii").splitlines()
    assert [line for line in text if not line.startswith("#")] == [v["wire"] for v in chain]


REQUIRED_FAULTS = {
    "non-canonical key order": "NON_CANONICAL",
    "non-minimal int": "NON_CANONICAL",
    "float": "FORBIDDEN_TYPE",
    "duplicate key": "DUPLICATE_KEY",
    "str/bin confusion: author": "WRONG_TYPE",
    "bad signature": "BAD_SIGNATURE",
    "wrong net": "WRONG_NET",
    "wrong prev": "BAD_PREV",
    "seq gap": "SEQ_GAP",
    "oversize": "TOO_LARGE",
    "too deep": "TOO_DEEP",
    "future timestamp": "TS_IN_FUTURE",
}


def test_reject_vectors_cover_the_required_faults() -> None:
    by_name = {v["name"]: v["code"] for v in REJECTS}
    assert {name: by_name.get(name) for name in REQUIRED_FAULTS} == REQUIRED_FAULTS
    assert {v["code"] for v in REJECTS} <= {code.value for code in p.ErrorCode}


@pytest.mark.parametrize("vector", REJECTS, ids=[v["name"] for v in REJECTS])
def test_reject_vector(vector: dict[str, Any]) -> None:
    net = bytes.fromhex(vector["net"])
    chain = [bytes.fromhex(w) for w in vector["chain"]]
    _, head = p.verify_chain(chain, net=net, now_ms=vector["now_ms"])  # the prefix is valid
    with pytest.raises(p.RemoteProtocolError) as caught:
        p.verify_next(head, bytes.fromhex(vector["wire"]), net=net, now_ms=vector["now_ms"])
    assert caught.value.code.value == vector["code"], caught.value.message


@pytest.mark.parametrize("vector", SEALED, ids=[v["name"] for v in SEALED])
def test_sealed_vector(vector: dict[str, Any]) -> None:
    h = bytes.fromhex
    envelope = h(vector["envelope"])
    outer = msgpack.unpackb(envelope)
    box = outer["box"]
    assert box[:32].hex() == vector["ephemeral_public"]
    expected_nonce = hashlib.blake2b(box[:32] + h(vector["recipient_enc_key"]), digest_size=24)
    assert expected_nonce.hexdigest() == vector["box_nonce"]
    # An independent opener (libsodium's crypto_box_seal_open via PyNaCl) agrees.
    inner = SealedBox(PrivateKey(h(vector["recipient_enc_secret"]))).decrypt(box)
    assert inner.hex() == vector["inner"]
    assert hashlib.sha256(inner).hexdigest() == vector["id"] == outer["id"].hex()
    payload, _sig = msgpack.unpackb(inner)
    assert payload.hex() == vector["payload"]
    assert (p.MESSAGE_TAG + payload).hex() == vector["sig_input"]
    message = p.unseal(
        envelope,
        net=h(vector["net"]),
        recipient=h(vector["recipient"]),
        enc_secret=h(vector["recipient_enc_secret"]),
        now_ms=vector["ts"],
    )
    assert message.sender.hex() == vector["sender"]
    assert (message.kind, message.ts, message.nonce.hex()) == (
        vector["kind"],
        vector["ts"],
        vector["nonce"],
    )
    assert value_json(message.content) == vector["content"]
    # With the same ephemeral key and nonce, sealing reproduces the exact envelope.
    body = p.MESSAGE_KINDS[vector["kind"]].from_content(msgpack.unpackb(payload)["content"])
    again = p.seal(
        body,
        sender_key=p.signing_key(h(vector["sender_seed"])),
        to=h(vector["recipient"]),
        recipient_enc_key=h(vector["recipient_enc_key"]),
        net=h(vector["net"]),
        now_ms=vector["ts"],
        ephemeral_secret=h(vector["ephemeral_secret"]),
        nonce=h(vector["nonce"]),
    )
    assert again.envelope == envelope
