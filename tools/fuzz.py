"""Coverage-guided fuzzing of the protocol's decoders with atheris (libFuzzer for Python).

    python -m tools.fuzz TARGET [-atheris_runs=N] [libFuzzer options] [CORPUS_DIR ...]
    python -m tools.fuzz --list

Each target feeds the fuzzer's bytes to one decoder of ``protocol``. The decoder may
accept them (the target then checks what it returned: one value, one encoding) or
raise :class:`protocol.RemoteProtocolError` with an error code; **anything else is a
crash** (STYLE §6), which libFuzzer reports with the input, saved as ``crash-<sha1>``
in the working directory (``-artifact_prefix=DIR/`` puts it elsewhere). Run a saved
input again with ``python -m tools.fuzz TARGET crash-<sha1>``.

Arbitrary bytes rarely get past a signature, so several targets are *structure-aware*:
the bytes are the signed part (an entry's payload, a sealed message's inner payload, a
genesis), which the target signs and wraps before decoding, so the fuzzer explores the
parsing behind the signature. Every target starts from valid seeds (written to
``$TMPDIR/watan-fuzz-seeds/TARGET`` and passed with ``-seed_inputs``) and learns the
rest from coverage of ``protocol``'s code, which is instrumented when imported here.

tests/tools/test_fuzz.py runs every target for 2,000 inputs. Longer runs are for
people: e.g. ``python -m tools.fuzz verify_entry -max_total_time=600 corpus/``.

atheris is in the test extras; without it this module still imports (``--list`` and the
tests' target list work) and running a target says what to install.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import importlib
import io
import json
import sys
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

__all__ = ["TARGETS", "Target", "main"]

#: The federation every fuzzed entry and message belongs to, and the verifier's clock.
NOW = 1_780_000_000_000
NET = hashlib.sha256(b"watan fuzz federation").digest()


@dataclass(frozen=True, slots=True)
class Target:
    """One fuzz target: ``run(fx, data)`` decodes, ``seeds(fx)`` are valid inputs."""

    name: str
    doc: str
    run: Callable[[Fixtures, bytes], None]
    seeds: Callable[[Fixtures], list[bytes]]
    needs_sodium: bool = False


class Fixtures:
    """Keys and valid documents, built after ``protocol`` is imported (instrumented)."""

    #: for the ``oprf`` target (set by :func:`_prepare` when libsodium is there)
    share: Any = None
    blinded: tuple[bytes, ...] = ()

    def __init__(self, protocol: ModuleType) -> None:
        p = self.p = protocol
        self.key = p.signing_key(bytes(range(32)))
        self.other_key = p.signing_key(bytes(range(32, 64)))
        self.author = p.public_key(self.key)
        self.recipient = p.public_key(self.other_key)
        self.enc_secret = bytes(range(100, 132))
        self.enc_key = p.enc_public_key(self.enc_secret)
        allocation = p.Allocation(
            category="food",
            date="2026-03-15",
            district="IQG08Q05",
            epoch=3,
            program="winter-2026",
            pseudonym=hashlib.sha256(b"household").digest(),
            quantity=2,
            unit="basket",
            value_iqd=150_000,
        )
        first = p.append(None, allocation, key=self.key, net=NET, now_ms=NOW)
        head = p.head_after(None, first)
        rotation = p.rotate_key(
            head, key=self.key, new_key=self.other_key, net=NET, now_ms=NOW, reason="scheduled"
        )
        fork = p.append(None, {"n": 1}, key=self.key, net=NET, now_ms=NOW, kind="test.note/1")
        self.entries = [first, rotation, fork]
        self.proof = p.make_fork_proof(first, fork).to_bytes()
        text = p.TextMessage(text="نص", subject="موضوع", thread=bytes(32))
        self.sealed = [
            p.seal(
                body,
                sender_key=self.key,
                to=self.recipient,
                recipient_enc_key=self.enc_key,
                net=NET,
                now_ms=NOW,
                ephemeral_secret=bytes(range(200, 232)),
                nonce=bytes(16),
            )
            for body in (text, p.Receipt(message=bytes(32), state="read"))
        ]
        self.genesis = p.create_genesis("Basra hub", key=self.key, now_ms=NOW)
        self.invite = p.Invite.create(
            url="http://10.0.0.5:8470/fed/v1",
            node=self.author,
            genesis=self.genesis,
            secret=bytes(32),
            expires=NOW + 86_400_000,
        ).to_token()
        self.headers = self._signed_headers()

    def _signed_headers(self) -> dict[str, str]:
        p = self.p
        headers = {"Content-Digest": p.content_digest(b"body")}
        params = p.SignatureParams(
            keyid=self.author.hex(), created=NOW // 1000, expires=NOW // 1000 + 60, nonce="n" * 24
        )
        signed: dict[str, str] = p.sign_request(
            method="POST",
            authority="node.example",
            path="/fed/v1/messages",
            query="?a=1",
            headers=headers,
            key=self.key,
            params=params,
        )
        return headers | signed

    def remote(self, call: Callable[[], Any]) -> Any:
        """``call()``, or None if it raised RemoteProtocolError with a code."""
        try:
            return call()
        except self.p.RemoteProtocolError as error:
            if not isinstance(error.code, self.p.ErrorCode):
                raise AssertionError(f"an error without a code: {error!r}") from None
            return None

    def sign_wrap(self, tag: bytes, payload: bytes) -> bytes:
        """``[payload, sig]`` as the protocol frames signed documents."""
        wire: bytes = self.p.encode([payload, self.key.sign(tag + payload).signature])
        return wire

    def check_entry(self, entry: Any) -> None:
        p = self.p
        body = entry.body
        if body is not None:
            assert p.encode(body.to_content()) == p.encode(entry.content)
        importlib.import_module("protocol._json").entry_json(entry)
        assert p.entry_position(entry.wire, net=NET, now_ms=None) == (entry.author, entry.seq)


# --- targets ------------------------------------------------------------------------------


def _decode(fx: Fixtures, data: bytes) -> None:
    value = fx.remote(lambda: fx.p.decode(data))
    if value is not None or data == b"\xc0":
        assert fx.p.encode(value) == data, "accepted bytes are not the one encoding"


def _verify_entry(fx: Fixtures, data: bytes) -> None:
    entry = fx.remote(lambda: fx.p.verify_entry(data, net=NET, now_ms=NOW))
    if entry is not None:
        fx.check_entry(entry)
    fx.remote(lambda: fx.p.entry_position(data, net=NET, now_ms=NOW))


def _signed_entry(fx: Fixtures, data: bytes) -> None:
    if len(data) > fx.p.MAX_ENTRY_BYTES - 100:
        return
    wire = fx.sign_wrap(fx.p.ENTRY_TAG, data)
    entry = fx.remote(lambda: fx.p.verify_entry(wire, net=NET, now_ms=None))
    if entry is not None:
        fx.check_entry(entry)


def _fork_proof(fx: Fixtures, data: bytes) -> None:
    proof = fx.remote(lambda: fx.p.verify_fork_proof(data, net=NET))
    if proof is not None:
        assert proof.to_bytes() == data


def _unseal(fx: Fixtures, data: bytes) -> None:
    envelope = fx.remote(lambda: fx.p.open_envelope(data, net=NET))
    if envelope is not None:
        assert envelope.wire == data
    fx.remote(
        lambda: fx.p.unseal(
            data, net=NET, recipient=fx.recipient, enc_secret=fx.enc_secret, now_ms=NOW
        )
    )


def _sealed_message(fx: Fixtures, data: bytes) -> None:
    """``data`` is a message payload: signed by the sender, sealed to the recipient."""
    p = fx.p
    inner = fx.sign_wrap(p.MESSAGE_TAG, data)
    box = importlib.import_module("nacl.public")
    sealed = box.SealedBox(box.PublicKey(fx.enc_key)).encrypt(inner)
    envelope = p.encode(
        {
            "box": sealed,
            "id": hashlib.sha256(inner).digest(),
            "net": NET,
            "to": fx.recipient,
            "v": 1,
        }
    )
    message = fx.remote(
        lambda: p.unseal(
            envelope, net=NET, recipient=fx.recipient, enc_secret=fx.enc_secret, now_ms=NOW
        )
    )
    if message is not None and message.body is not None:
        assert p.encode(message.body.to_content()) == p.encode(message.content)


def _genesis(fx: Fixtures, data: bytes) -> None:
    genesis = fx.remote(lambda: fx.p.parse_genesis(data))
    if genesis is not None:
        assert genesis.net == hashlib.sha256(data).digest()


def _signed_genesis(fx: Fixtures, data: bytes) -> None:
    _genesis(fx, fx.sign_wrap(fx.p.GENESIS_TAG, data))


def _invite(fx: Fixtures, data: bytes) -> None:
    """A first byte 0 means: the rest is the token's document (base64url is added);
    otherwise the bytes, as latin-1, are the token."""
    if data[:1] == b"\x00":
        token = fx.p.INVITE_PREFIX + base64.urlsafe_b64encode(data[1:]).rstrip(b"=").decode()
    else:
        token = data.decode("latin-1")
    invite = fx.remote(lambda: fx.p.parse_invite(token))
    if invite is not None:
        assert invite.to_token() == token.strip()


def _fields(data: bytes) -> list[str]:
    return [part.decode("latin-1") for part in data.split(b"\n", 2)] + ["", ""]


def _httpsig(fx: Fixtures, data: bytes) -> None:
    """Signature-Input, Signature and Content-Digest: the bytes split at newlines."""
    p = fx.p
    signature_input, signature, digest = _fields(data)[:3]
    headers = {"Signature-Input": signature_input, "Signature": signature}
    headers["Content-Digest"] = digest
    verified = fx.remote(
        lambda: p.verify_request(
            method="POST",
            authority="node.example",
            path="/fed/v1/messages",
            query="?a=1",
            headers=headers,
            body=b"body",
            now_s=NOW // 1000,
            key_of={fx.author.hex(): fx.author}.get,
        )
    )
    if verified is not None:
        assert verified.key == fx.author
    fx.remote(lambda: p.check_content_digest(digest, b"body"))


def _sfv(fx: Fixtures, data: bytes) -> None:
    sfv = importlib.import_module("protocol._sfv")
    try:
        members = sfv.parse_dictionary(data.decode("latin-1"))
    except sfv.SFError:
        return
    assert sfv.parse_dictionary(sfv.serialize_dictionary(members)) == members


def _kinds(fx: Fixtures, data: bytes) -> None:
    """The decoded document as the content of every kind this version knows."""
    p = fx.p
    content = fx.remote(lambda: p.decode(data))
    for spec in (*p.ENTRY_KINDS.values(), *p.MESSAGE_KINDS.values()):

        def check(spec: Any = spec) -> Any:
            return spec.check_content(content)

        checked = fx.remote(check)
        if checked is not None:
            assert p.encode(spec.build(checked).to_content()) == data


def _oprf(fx: Fixtures, data: bytes) -> None:
    """An oracle's view: 32-byte chunks are a client's blinded elements."""
    oprf = importlib.import_module("protocol.oprf")
    share = fx.share
    elements = [data[i : i + 32] for i in range(0, len(data), 32)]
    checked = fx.remote(lambda: oprf.check_elements(elements))
    evaluation = fx.remote(
        lambda: oprf.evaluate_share(share, elements, proof_random=bytes(range(64)))
    )
    assert (checked is None) == (evaluation is None)
    if evaluation is not None:
        oprf.verify_proof(
            share.public_key, checked, list(evaluation.evaluated_elements), evaluation.proof
        )


def _cli(fx: Fixtures, data: bytes) -> None:
    """``python -m protocol decode HEX``: exit 0 or 2 with JSON, never a traceback."""
    cli = importlib.import_module("protocol._cli")
    out = io.StringIO()
    status = cli.main(["decode", data.hex()], out=out)
    result = json.loads(out.getvalue())
    assert status in (0, 2) and ("error" in result) == (status == 2)


def _selftest(fx: Fixtures, data: bytes) -> None:
    """A deliberately broken decoder (``--list`` hides it): proves crashes are caught."""
    if data.startswith(b"\x92"):
        raise KeyError("selftest")


def _entry_seeds(fx: Fixtures) -> list[bytes]:
    return [entry.wire for entry in fx.entries]


TARGETS: dict[str, Target] = {
    target.name: target
    for target in (
        Target("decode", "protocol.decode: any document", _decode, _entry_seeds),
        Target(
            "verify_entry",
            "verify_entry and entry_position of an entry wire",
            _verify_entry,
            _entry_seeds,
        ),
        Target(
            "signed_entry",
            "verify_entry of a wire around a payload the fuzzer writes, validly signed",
            _signed_entry,
            lambda fx: [entry.payload for entry in fx.entries],
        ),
        Target("fork_proof", "verify_fork_proof", _fork_proof, lambda fx: [fx.proof]),
        Target(
            "unseal",
            "open_envelope and unseal of an envelope",
            _unseal,
            lambda fx: [s.envelope for s in fx.sealed],
        ),
        Target(
            "sealed_message",
            "unseal of a message payload the fuzzer writes, signed and sealed to us",
            _sealed_message,
            lambda fx: [_inner_payload(fx, s.envelope) for s in fx.sealed],
        ),
        Target("genesis", "parse_genesis", _genesis, lambda fx: [fx.genesis.wire]),
        Target(
            "signed_genesis",
            "parse_genesis of a payload the fuzzer writes, signed by its founder",
            _signed_genesis,
            lambda fx: [fx.p.decode(fx.genesis.wire)[0]],
        ),
        Target(
            "invite",
            "parse_invite of a token, or of a document (first byte 0)",
            _invite,
            lambda fx: [
                fx.invite.encode(),
                b"\x00" + base64.urlsafe_b64decode(fx.invite.split(".", 1)[1] + "=="),
            ],
        ),
        Target(
            "httpsig",
            "verify_request of Signature-Input, Signature, Content-Digest (lines)",
            _httpsig,
            lambda fx: [
                "\n".join(
                    fx.headers[h] for h in ("Signature-Input", "Signature", "Content-Digest")
                ).encode("latin-1")
            ],
        ),
        Target(
            "sfv",
            "RFC 8941 Dictionary parsing (SFError only)",
            _sfv,
            lambda fx: [v.encode("latin-1") for v in fx.headers.values()],
        ),
        Target(
            "kinds",
            "check_content of every kind on any document",
            _kinds,
            lambda fx: [fx.p.encode(e.content) for e in fx.entries],
        ),
        Target(
            "oprf",
            "an oracle's check_elements and evaluate_share",
            _oprf,
            lambda fx: [b"".join(fx.blinded)],
            needs_sodium=True,
        ),
        Target(
            "cli",
            "python -m protocol decode (exit 0 or 2, JSON)",
            _cli,
            lambda fx: [*_entry_seeds(fx), fx.proof, fx.sealed[0].envelope],
        ),
        Target("selftest", "a broken decoder: must crash", _selftest, lambda fx: [b"\x92\x00"]),
    )
}


def _inner_payload(fx: Fixtures, envelope: bytes) -> bytes:
    """The signed payload inside one of our own envelopes (we hold the recipient key)."""
    nacl = importlib.import_module("nacl.bindings")
    box = fx.p.decode(envelope)["box"]
    inner = nacl.crypto_box_seal_open(box, fx.enc_key, fx.enc_secret)
    payload: bytes = fx.p.decode(inner)[0]
    return payload


def _load_atheris() -> Any:
    try:
        return importlib.import_module("atheris")
    except ImportError:
        return None


def _import_protocol(atheris: Any) -> ModuleType:
    """Import ``protocol`` with coverage instrumentation (it must not be loaded yet)."""
    loaded = [name for name in sys.modules if name == "protocol" or name.startswith("protocol.")]
    if loaded:
        raise RuntimeError("protocol was imported before atheris could instrument it")
    with atheris.instrument_imports(include=["protocol"]):
        protocol = importlib.import_module("protocol")
        for name in ("protocol._cli", "protocol._json", "protocol._sfv", "protocol.oprf"):
            importlib.import_module(name)
    return protocol


def _prepare(target: Target, protocol: ModuleType) -> Fixtures:
    fx = Fixtures(protocol)
    if target.needs_sodium:
        oprf = importlib.import_module("protocol.oprf")
        if not oprf.available():
            raise SystemExit("libsodium >= 1.0.18 with ristretto255 is not installed")
        sk, _ = oprf.derive_key_pair(bytes(32), b"fuzz", mode=oprf.MODE_VOPRF)
        shares = oprf.split_key(sk, threshold=2, shares=2, coefficients=[bytes(range(64))])
        fx.share = shares[0]
        fx.blinded = tuple(oprf.blind(b"input %d" % i, mode=oprf.MODE_VOPRF)[1] for i in range(2))
    return fx


def _write_seeds(name: str, seeds: Sequence[bytes]) -> list[Path]:
    folder = Path(tempfile.gettempdir()) / "watan-fuzz-seeds" / name
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for index, seed in enumerate(seeds):
        path = folder / f"seed-{index}"
        path.write_bytes(seed)
        paths.append(path)
    return paths


def main(argv: Sequence[str] | None = None) -> int:
    """Run one target under libFuzzer; it exits the process when done (or on a crash)."""
    args = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(
        prog="python -m tools.fuzz",
        description="Fuzz a protocol decoder with atheris (libFuzzer options pass through).",
    )
    parser.add_argument("target", nargs="?", choices=sorted(TARGETS), metavar="TARGET")
    parser.add_argument("--list", action="store_true", help="list the targets")
    known, fuzzer_args = parser.parse_known_args(args)
    if known.list or known.target is None:
        for target in TARGETS.values():
            if target.name != "selftest":
                print(f"{target.name:16} {target.doc}")
        return 0 if known.list else 2
    atheris = _load_atheris()
    if atheris is None:
        print("atheris is not installed: pip install atheris (or -e '.[test]')", file=sys.stderr)
        return 2
    target = TARGETS[known.target]
    protocol = _import_protocol(atheris)
    fx = _prepare(target, protocol)
    seeds = _write_seeds(target.name, target.seeds(fx))
    fuzzer_args.append("-seed_inputs=" + ",".join(str(path) for path in seeds))

    def one_input(data: bytes) -> None:
        target.run(fx, data)

    atheris.Setup([sys.argv[0], *fuzzer_args], one_input)
    atheris.Fuzz()
    return 0  # not reached: libFuzzer exits the process


if __name__ == "__main__":
    raise SystemExit(main())
