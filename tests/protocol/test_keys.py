"""Ed25519 against RFC 8032 §7.1, X25519 against RFC 7748 §6.1, and fingerprints."""

from __future__ import annotations

import hashlib
import re

import pytest

import protocol
from protocol import ErrorCode, LocalProtocolError, RemoteProtocolError, fingerprint
from protocol._keys import sign, verify

from .conftest import AUTHOR, OTHER_AUTHOR, raises_code

# RFC 8032 §7.1, "Test Vectors for Ed25519": (secret key, public key, message, signature).
RFC8032 = {
    "TEST 1": (
        "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60",
        "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a",
        "",
        "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b",
    ),
    "TEST 2": (
        "4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb",
        "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c",
        "72",
        "92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da085ac1e43e15996e458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00",
    ),
    "TEST 3": (
        "c5aa8df43f9f837bedb7442f31dcb7b166d38535076f094b85ce3a2e0b4458f7",
        "fc51cd8e6218a1a38da47ed00230f0580816ed13ba3303ac5deb911548908025",
        "af82",
        "6291d657deec24024827e69c3abe01a30ce548a284743a445e3680d7db5ac3ac18ff9b538d16f290ae67f760984dc6594a7c15e9716ed28dc027beceea1ec40a",
    ),
    "TEST SHA(abc)": (
        "833fe62409237b9d62ec77587520911e9a759cec1d19755b7da901b96dca3d42",
        "ec172b93ad5e563bf4932c70e1245034c35467ef2efd4d64ebf819683467e2bf",
        "ddaf35a193617abacc417349ae20413112e6fa4e89a97ea20a9eeee64b55d39a"
        "2192992a274fc1a836ba3c23a3feebbd454d4423643ce80e2a9ac94fa54ca49f",
        "dc2a4459e7369633a52b1bf277839a00201009a3efbf3ecb69bea2186c26b589"
        "09351fc9ac90b3ecfdfbc7c66431e0303dca179c138ac17ad9bef1177331a704",
    ),
}

#: The group order of edwards25519 (RFC 8032 §5.1).
L = 2**252 + 27742317777372353535851937790883648493


def test_sha_abc_message_is_sha512_of_abc() -> None:
    assert RFC8032["TEST SHA(abc)"][2] == hashlib.sha512(b"abc").hexdigest()


@pytest.mark.parametrize("name", sorted(RFC8032))
def test_rfc8032_vectors(name: str) -> None:
    secret, public, message, signature = (bytes.fromhex(x) for x in RFC8032[name])
    key = protocol.signing_key(secret)
    assert protocol.public_key(key) == public
    assert sign(key, message) == signature
    verify(public, message, signature)


@pytest.mark.parametrize("name", sorted(RFC8032))
def test_rfc8032_signatures_fail_when_anything_changes(name: str) -> None:
    _, public, message, signature = (bytes.fromhex(x) for x in RFC8032[name])
    flipped = bytes([signature[0] ^ 1]) + signature[1:]
    with raises_code(RemoteProtocolError, ErrorCode.BAD_SIGNATURE):
        verify(public, message, flipped)
    with raises_code(RemoteProtocolError, ErrorCode.BAD_SIGNATURE):
        verify(public, message + b"\x00", signature)
    other_public = bytes.fromhex(RFC8032["TEST 1" if name != "TEST 1" else "TEST 2"][1])
    with raises_code(RemoteProtocolError, ErrorCode.BAD_SIGNATURE):
        verify(other_public, message, signature)


def test_verify_rejects_wrong_lengths() -> None:
    _, public, message, signature = (bytes.fromhex(x) for x in RFC8032["TEST 2"])
    for bad_key in (public[:31], public + b"\x00", b""):
        with raises_code(RemoteProtocolError, ErrorCode.BAD_SIGNATURE):
            verify(bad_key, message, signature)
    for bad_sig in (signature[:63], signature + b"\x00", b""):
        with raises_code(RemoteProtocolError, ErrorCode.BAD_SIGNATURE):
            verify(public, message, bad_sig)
    # libsodium reads signature || message: a 63-byte signature must not borrow the
    # message's first byte, nor a 33-byte key pass as its first 32 bytes.
    with raises_code(RemoteProtocolError, ErrorCode.BAD_SIGNATURE):
        verify(public, signature[63:] + message, signature[:63])
    with raises_code(RemoteProtocolError, ErrorCode.BAD_SIGNATURE):
        verify(public + b"\x00", message, signature)
    with raises_code(RemoteProtocolError, ErrorCode.BAD_SIGNATURE):
        verify(public.hex(), message, signature)  # type: ignore[arg-type]


def test_verify_rejects_non_canonical_s() -> None:
    # S + L is the same scalar mod L: RFC 8032 §5.1.7 requires S < L, so a verifier
    # that reduced S would accept a second encoding of every signature (malleability).
    _, public, message, signature = (bytes.fromhex(x) for x in RFC8032["TEST 3"])
    s = int.from_bytes(signature[32:], "little")
    assert s < L
    malleated = signature[:32] + (s + L).to_bytes(32, "little")
    with raises_code(RemoteProtocolError, ErrorCode.BAD_SIGNATURE):
        verify(public, message, malleated)
    top = signature[:32] + b"\xff" * 32
    with raises_code(RemoteProtocolError, ErrorCode.BAD_SIGNATURE):
        verify(public, message, top)


def test_verify_rejects_small_order_keys() -> None:
    # The identity point: every "signature" with R = identity and S = 0 would verify
    # under it in a lax implementation.
    identity = b"\x01" + bytes(31)
    forged = identity + bytes(32)
    for message in (b"", b"anything"):
        with raises_code(RemoteProtocolError, ErrorCode.BAD_SIGNATURE):
            verify(identity, message, forged)


def test_verify_never_returns_a_bool() -> None:
    _, public, message, signature = (bytes.fromhex(x) for x in RFC8032["TEST 1"])
    assert verify(public, message, signature) is None  # type: ignore[func-returns-value]


def test_signing_key_needs_32_bytes() -> None:
    for seed in (bytes(31), bytes(33), b"", bytearray(32)):
        with raises_code(LocalProtocolError, ErrorCode.BAD_KEY):
            protocol.signing_key(seed)  # type: ignore[arg-type]


# RFC 7748 §6.1: Alice's and Bob's X25519 private and public keys.
RFC7748 = [
    (
        "77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a",
        "8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a",
    ),
    (
        "5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb",
        "de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f",
    ),
]


@pytest.mark.parametrize(("secret", "public"), RFC7748)
def test_enc_public_key_rfc7748(secret: str, public: str) -> None:
    assert protocol.enc_public_key(bytes.fromhex(secret)) == bytes.fromhex(public)


def test_enc_public_key_needs_32_bytes() -> None:
    for secret in (bytes(31), bytes(33), "00" * 32):
        with raises_code(LocalProtocolError, ErrorCode.BAD_KEY):
            protocol.enc_public_key(secret)  # type: ignore[arg-type]


# --- fingerprints -----------------------------------------------------------------------

FINGERPRINT = re.compile(r"[0-9]{5}( [0-9]{5}){5}")


def test_fingerprint_shape_and_determinism() -> None:
    text = fingerprint(AUTHOR)
    assert FINGERPRINT.fullmatch(text), text
    assert fingerprint(bytes(AUTHOR)) == text
    assert fingerprint(OTHER_AUTHOR) != text
    assert FINGERPRINT.fullmatch(fingerprint(OTHER_AUTHOR))


def test_fingerprint_derivation() -> None:
    # Six groups: bytes 0-4, 5-9 ... 25-29 of SHA-512(tag || key), big-endian, mod 10**5.
    public = bytes.fromhex(RFC8032["TEST 1"][1])
    digest = hashlib.sha512(b"watan/fingerprint/v1\x00" + public).digest()
    groups = [int.from_bytes(digest[i : i + 5], "big") % 100_000 for i in range(0, 30, 5)]
    assert fingerprint(public) == " ".join(f"{g:05d}" for g in groups)


def test_fingerprint_changes_with_any_bit() -> None:
    seen = {fingerprint(AUTHOR)}
    for index in range(32):
        key = bytearray(AUTHOR)
        key[index] ^= 0x80
        seen.add(fingerprint(bytes(key)))
    assert len(seen) == 33


def test_fingerprint_needs_a_public_key() -> None:
    for key in (AUTHOR[:31], AUTHOR + b"\x00", AUTHOR.hex()):
        with raises_code(LocalProtocolError, ErrorCode.BAD_KEY):
            fingerprint(key)  # type: ignore[arg-type]
