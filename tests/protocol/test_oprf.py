"""RFC 9497 OPRF/VOPRF (ristretto255-SHA512) and threshold evaluation (SPEC §13).

The RFC's Appendix A.1 vectors are reproduced byte for byte; the threshold scheme is
checked against the unsplit key for every subset; every refusal has its code; and
hostile bytes raise nothing but ProtocolError.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import sys
import types
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import protocol
from protocol import ErrorCode, LocalProtocolError, ProtocolError, RemoteProtocolError, oprf
from protocol.oprf import _group, _proof, _suite

pytestmark = pytest.mark.skipif(
    not oprf.available(), reason="libsodium >= 1.0.18 with ristretto255 is not installed"
)

VECTORS = Path(protocol.__file__).parent / "vectors"
with (VECTORS / "oprf_rfc9497.json").open(encoding="utf-8") as _file:
    RFC = json.load(_file)
OPRF_MODE, VOPRF_MODE = RFC["modes"]
PROPERTY = settings(deadline=None, max_examples=200, suppress_health_check=[HealthCheck.too_slow])

h = bytes.fromhex


def wide(label: str) -> bytes:
    return hashlib.sha512(label.encode()).digest()


def scalar(label: str) -> bytes:
    return _group.scalar_reduce(wide(label))


SK, PK = oprf.derive_key_pair(bytes(range(32)), b"test oracle key", mode=oprf.MODE_VOPRF)
INPUTS = [b"first input", b"second input"]
BLINDS = [scalar("blind 1"), scalar("blind 2")]
BLINDED = [
    oprf.blind(x, blind=r, mode=oprf.MODE_VOPRF)[1] for x, r in zip(INPUTS, BLINDS, strict=True)
]
G = _group.base_mult(_group.int_to_scalar(1))


def codes(code: ErrorCode, kind: type[ProtocolError] = ProtocolError) -> Any:
    """``pytest.raises`` for a ProtocolError of class ``kind`` with ``code``."""
    return pytest.raises(kind, match=f"^{code.value}: ")


def direct(sk: bytes, x: bytes, mode: int) -> bytes:
    """RFC 9497 §3.3.1 Evaluate: the PRF computed with the key, no blinding."""
    unblinded = _group.mult(sk, _suite.hash_to_group(x, mode))
    return hashlib.sha512(_suite.length_prefixed(x, unblinded) + b"Finalize").digest()


# --- RFC 9497 Appendix A.1 ------------------------------------------------------


def test_the_vectors_are_the_rfcs() -> None:
    assert RFC["source"].startswith("RFC 9497")
    assert RFC["suite"] == oprf.SUITE == "ristretto255-SHA512"
    assert [m["appendix"] for m in RFC["modes"]] == ["A.1.1", "A.1.2"]
    assert [len(m["vectors"]) for m in RFC["modes"]] == [2, 3]


@pytest.mark.parametrize("suite", RFC["modes"], ids=lambda m: m["name"])
def test_derive_key_pair(suite: dict[str, Any]) -> None:
    sk, pk = oprf.derive_key_pair(h(suite["Seed"]), h(suite["KeyInfo"]), mode=suite["mode"])
    assert sk.hex() == suite["skSm"]
    assert pk == _group.base_mult(sk)
    if "pkSm" in suite:
        assert pk.hex() == suite["pkSm"]


@pytest.mark.parametrize("vector", OPRF_MODE["vectors"], ids=lambda v: v["name"])
def test_oprf_vector(vector: dict[str, Any]) -> None:
    sk = h(OPRF_MODE["skSm"])
    (x,), (r,) = map(h, vector["Input"]), map(h, vector["Blind"])
    blind, blinded = oprf.blind(x, blind=r, mode=oprf.MODE_OPRF)
    assert (blind, blinded.hex()) == (r, vector["BlindedElement"][0])
    evaluated = oprf.blind_evaluate(sk, blinded)
    assert evaluated.hex() == vector["EvaluationElement"][0]
    assert oprf.finalize(x, blind, evaluated).hex() == vector["Output"][0]
    assert direct(sk, x, oprf.MODE_OPRF).hex() == vector["Output"][0]


@pytest.mark.parametrize("vector", VOPRF_MODE["vectors"], ids=lambda v: v["name"])
def test_voprf_vector(vector: dict[str, Any]) -> None:
    sk, pk = h(VOPRF_MODE["skSm"]), h(VOPRF_MODE["pkSm"])
    inputs, blinds = [h(x) for x in vector["Input"]], [h(r) for r in vector["Blind"]]
    blinded = [
        oprf.blind(x, blind=r, mode=oprf.MODE_VOPRF)[1] for x, r in zip(inputs, blinds, strict=True)
    ]
    assert [b.hex() for b in blinded] == vector["BlindedElement"]
    evaluated, proof = oprf.voprf_blind_evaluate(
        sk, pk, blinded, proof_random=h(vector["ProofRandomScalar"])
    )
    assert [e.hex() for e in evaluated] == vector["EvaluationElement"]
    assert proof.hex() == vector["Proof"]
    oprf.verify_proof(pk, blinded, evaluated, proof)
    outputs = oprf.voprf_finalize(inputs, blinds, evaluated, blinded, pk, proof)
    assert [o.hex() for o in outputs] == vector["Output"]


def test_context_strings_are_the_specs() -> None:
    spec = (VECTORS.parent / "SPEC.md").read_text(encoding="utf-8")
    for mode in (oprf.MODE_OPRF, oprf.MODE_VOPRF):
        context = _suite.context_string(mode)
        assert context == b"OPRFV1-" + bytes([mode]) + b"-ristretto255-SHA512"
        assert f"`{context.hex()}`" in spec
    assert oprf.PSEUDONYM_TAG.hex() in spec


@pytest.mark.parametrize(
    ("msg", "length", "expected"),
    [  # RFC 9380 Appendix K.3, DST QUUX-V01-CS02-with-expander-SHA512-256
        (b"", 32, "6b9a7312411d92f921c6f68ca0b6380730a1a4d982c507211a90964c394179ba"),
        (b"abc", 32, "0da749f12fbe5483eb066a5f595055679b976e93abe9be6f0f6318bce7aca8dc"),
        (
            b"",
            128,
            "41b037d1734a5f8df225dd8c7de38f851efdb45c372887be655212d07251b921"
            "b052b62eaed99b46f72f2ef4cc96bfaf254ebbbec091e1a3b9e4fb5e5b619d2e"
            "0c5414800a1d882b62bb5cd1778f098b8eb6cb399d5d9d18f5d5842cf5d13d7e"
            "b00a7cff859b605da678b318bd0e65ebff70bec88c753b159a805d2c89c55961",
        ),
        (
            b"abc",
            128,
            "7f1dddd13c08b543f2e2037b14cefb255b44c83cc397c1786d975653e36a6b11"
            "bdd7732d8b38adb4a0edc26a0cef4bb45217135456e58fbca1703cd6032cb134"
            "7ee720b87972d63fbf232587043ed2901bce7f22610c0419751c065922b48843"
            "1851041310ad659e4b23520e1772ab29dcdeb2002222a363f0c2b1c972b3efe1",
        ),
    ],
)
def test_expand_message_xmd(msg: bytes, length: int, expected: str) -> None:
    dst = b"QUUX-V01-CS02-with-expander-SHA512-256"
    assert _suite.expand_message_xmd(msg, dst, length).hex() == expected


@pytest.mark.parametrize(
    ("length", "dst"), [(0, b"d"), (65536, b"d"), (64 * 256, b"d"), (64, b"d" * 256)]
)
def test_expand_message_xmd_limits(length: int, dst: bytes) -> None:
    with codes(ErrorCode.BAD_VALUE, LocalProtocolError):
        _suite.expand_message_xmd(b"", dst, length)


# --- encodings and the libsodium boundary ----------------------------------------

#: 32 bytes that are not a valid element: the identity, non-canonical, not on the curve.
BAD_ELEMENTS = {
    "identity": bytes(32),
    "all ff": b"\xff" * 32,
    "high bit": (b"\x00" * 31) + b"\x80",
    "negative": b"\x01" + bytes(31),  # odd field element: not a canonical ristretto255 encoding
    "p": (2**255 - 19).to_bytes(32, "little"),
    "G with high bit": G[:31] + bytes([G[31] | 0x80]),
}
BAD_SCALARS = {
    "zero": bytes(32),
    "L": _group.L.to_bytes(32, "little"),
    "2^256 - 1": b"\xff" * 32,
}


@pytest.mark.parametrize("element", BAD_ELEMENTS.values(), ids=BAD_ELEMENTS)
def test_invalid_elements(element: bytes) -> None:
    assert not _group.is_valid_point(element)
    with codes(ErrorCode.BAD_ELEMENT, RemoteProtocolError):
        oprf.blind_evaluate(SK, element)
    with codes(ErrorCode.BAD_ELEMENT, RemoteProtocolError):
        oprf.finalize(INPUTS[0], BLINDS[0], element)
    with codes(ErrorCode.BAD_ELEMENT, RemoteProtocolError):
        oprf.verify_proof(element, BLINDED[:1], BLINDED[:1], bytes(64))
    with codes(ErrorCode.BAD_ELEMENT, LocalProtocolError):
        oprf.verify_proof(PK, [element], BLINDED[:1], bytes(64))


@pytest.mark.parametrize("value", [b"", bytes(31), bytes(33), "00" * 32, bytearray(32), None])
def test_element_of_the_wrong_type_or_length(value: Any) -> None:
    assert not _group.is_valid_point(value)
    with codes(ErrorCode.BAD_VALUE, RemoteProtocolError):
        oprf.blind_evaluate(SK, value)


@pytest.mark.parametrize("sk", BAD_SCALARS.values(), ids=BAD_SCALARS)
def test_invalid_scalars(sk: bytes) -> None:
    with codes(ErrorCode.BAD_SCALAR, LocalProtocolError):
        oprf.blind_evaluate(sk, BLINDED[0])
    with codes(ErrorCode.BAD_SCALAR, LocalProtocolError):
        oprf.blind(b"x", blind=sk)
    with codes(ErrorCode.BAD_SCALAR, LocalProtocolError):
        oprf.finalize(b"x", sk, BLINDED[0])
    with codes(ErrorCode.BAD_SCALAR, LocalProtocolError):
        oprf.KeyShare(index=1, secret=sk)


def test_scalar_of_the_wrong_length() -> None:
    with codes(ErrorCode.BAD_VALUE, LocalProtocolError):
        oprf.blind_evaluate(SK[:31], BLINDED[0])


def test_group_helpers() -> None:
    x, y = scalar("x"), scalar("y")
    assert _group.scalar_add(x, _group.scalar_negate(x)) == bytes(32)
    assert _group.scalar_sub(_group.scalar_add(x, y), y) == x
    assert _group.scalar_mul(x, _group.scalar_invert(x)) == _group.int_to_scalar(1)
    assert _group.add(_group.base_mult(x), _group.base_mult(y)) == _group.base_mult(
        _group.scalar_add(x, y)
    )
    assert _group.sub(_group.base_mult(x), _group.base_mult(x)) == bytes(32)
    assert _group.mult(x, G) == _group.base_mult(x)
    r = _group.random_scalar()
    assert _group.check_scalar(r, "r") == r and r != _group.random_scalar()


def test_group_failures() -> None:
    with codes(ErrorCode.BAD_SCALAR, LocalProtocolError):
        _group.scalar_invert(bytes(32))
    with codes(ErrorCode.BAD_SCALAR, LocalProtocolError):
        _group.base_mult(bytes(32))
    with codes(ErrorCode.BAD_ELEMENT, RemoteProtocolError):
        _group.mult(scalar("x"), bytes(32))  # an identity product
    for op in (_group.add, _group.sub):
        with codes(ErrorCode.BAD_ELEMENT, RemoteProtocolError):
            op(G, b"\xff" * 32)
    with codes(ErrorCode.BAD_VALUE, LocalProtocolError):
        _group.from_hash(bytes(63))


def test_unavailable_libsodium(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_group, "_sodium", None)
    assert not oprf.available()
    message = "libsodium >= 1.0.18 with ristretto255 is required: apt-get install libsodium23"
    with pytest.raises(RuntimeError) as caught:
        oprf.blind_evaluate(SK, BLINDED[0])
    assert str(caught.value) == message


def _fake_pysodium(version_ok: bool, *names: str) -> types.ModuleType:
    module = types.ModuleType("pysodium")
    module.sodium_version_check = lambda *_: version_ok  # type: ignore[attr-defined]
    module.sodium = types.SimpleNamespace(**{n: None for n in names})  # type: ignore[attr-defined]
    return module


@pytest.mark.parametrize(
    "module",
    [
        None,  # import fails
        _fake_pysodium(False, *_group._REQUIRED),  # libsodium older than 1.0.18
        _fake_pysodium(True, "crypto_core_ristretto255_add"),  # functions missing
    ],
    ids=["no pysodium", "old libsodium", "missing functions"],
)
def test_load_without_a_usable_libsodium(
    monkeypatch: pytest.MonkeyPatch, module: types.ModuleType | None
) -> None:
    monkeypatch.setitem(sys.modules, "pysodium", module)
    assert _group._load() is None
    monkeypatch.setitem(sys.modules, "pysodium", _fake_pysodium(True, *_group._REQUIRED))
    assert _group._load() is sys.modules["pysodium"]


def test_input_limits() -> None:
    longest = bytes(2**16 - 1)
    assert len(oprf.finalize(longest, *oprf.blind(longest, blind=BLINDS[0]))) == 64
    with codes(ErrorCode.BAD_VALUE, LocalProtocolError):
        oprf.blind(bytes(2**16))
    with codes(ErrorCode.BAD_VALUE, LocalProtocolError):
        oprf.finalize(bytes(2**16), BLINDS[0], BLINDED[0])
    with codes(ErrorCode.BAD_VALUE, LocalProtocolError):
        oprf.blind("text")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("seed", "info", "mode"),
    [
        (bytes(31), b"", 0),
        (bytes(32), "info", 0),
        (bytes(32), bytes(2**16), 0),
        (bytes(32), b"", 2),
    ],
)
def test_derive_key_pair_arguments(seed: Any, info: Any, mode: int) -> None:
    with codes(ErrorCode.BAD_VALUE, LocalProtocolError):
        oprf.derive_key_pair(seed, info, mode=mode)


def test_derive_key_pair_counter(monkeypatch: pytest.MonkeyPatch) -> None:
    """RFC 9497 §3.2.1: a zero scalar moves on to the next counter; 256 of them fail."""
    real = _suite.hash_to_scalar
    zero = bytes(32)
    seen: list[bytes] = []

    def first_zero(msg: bytes, mode: int, dst: bytes | None = None) -> bytes:
        seen.append(msg[-1:])
        return zero if len(seen) == 1 else real(msg, mode, dst)

    monkeypatch.setattr(_suite, "hash_to_scalar", first_zero)
    sk, _ = oprf.derive_key_pair(bytes(32), b"", mode=oprf.MODE_OPRF)
    assert seen == [b"\x00", b"\x01"]
    assert sk == real(
        bytes(32) + b"\x00\x00" + b"\x01", 0, b"DeriveKeyPair" + _suite.context_string(0)
    )
    monkeypatch.setattr(_suite, "hash_to_scalar", lambda *_: zero)
    with codes(ErrorCode.BAD_SCALAR, LocalProtocolError):
        oprf.derive_key_pair(bytes(32), b"", mode=oprf.MODE_OPRF)


def test_blind_draws_a_fresh_scalar() -> None:
    (r1, b1), (r2, b2) = oprf.blind(b"same"), oprf.blind(b"same")
    assert r1 != r2 and b1 != b2
    assert oprf.finalize(b"same", r1, oprf.blind_evaluate(SK, b1)) == oprf.finalize(
        b"same", r2, oprf.blind_evaluate(SK, b2)
    )


# --- VOPRF proofs -----------------------------------------------------------------


def _evaluate(
    sk: bytes = SK, pk: bytes = PK, blinded: list[bytes] = BLINDED
) -> tuple[list[bytes], bytes]:
    return oprf.voprf_blind_evaluate(sk, pk, blinded, proof_random=wide("r"))


def test_proof_random_forms() -> None:
    # 64 bytes are reduced mod L: the same proof as their 32-byte reduction.
    assert _evaluate() == oprf.voprf_blind_evaluate(SK, PK, BLINDED, proof_random=scalar("r"))
    with codes(ErrorCode.BAD_SCALAR, LocalProtocolError):
        oprf.voprf_blind_evaluate(SK, PK, BLINDED, proof_random=bytes(64))  # reduces to 0
    with codes(ErrorCode.BAD_SCALAR, LocalProtocolError):
        oprf.voprf_blind_evaluate(SK, PK, BLINDED, proof_random=b"\xff" * 32)
    with codes(ErrorCode.BAD_VALUE, LocalProtocolError):
        oprf.voprf_blind_evaluate(SK, PK, BLINDED, proof_random=bytes(48))


def test_voprf_evaluation_checks_its_key_and_batch() -> None:
    _, other_pk = oprf.derive_key_pair(bytes(32), b"other", mode=oprf.MODE_VOPRF)
    with codes(ErrorCode.BAD_KEY, LocalProtocolError):
        _evaluate(pk=other_pk)
    with codes(ErrorCode.BAD_VALUE, RemoteProtocolError):
        _evaluate(blinded=[])
    with codes(ErrorCode.BAD_VALUE, RemoteProtocolError):
        _evaluate(blinded=BLINDED[:1] * (oprf.MAX_BATCH + 1))
    with codes(ErrorCode.BAD_ELEMENT, RemoteProtocolError):
        _evaluate(blinded=[BLINDED[0], bytes(32)])
    with codes(ErrorCode.BAD_VALUE, RemoteProtocolError):
        oprf.voprf_blind_evaluate(SK, PK, BLINDED[0], proof_random=wide("r"))  # type: ignore[arg-type]


def test_voprf_and_oprf_agree_after_finalize() -> None:
    evaluated, proof = _evaluate()
    outputs = oprf.voprf_finalize(INPUTS, BLINDS, evaluated, BLINDED, PK, proof)
    assert outputs == [direct(SK, x, oprf.MODE_VOPRF) for x in INPUTS]
    assert evaluated == [oprf.blind_evaluate(SK, b) for b in BLINDED]


def _flip(data: bytes, i: int) -> bytes:
    return data[:i] + bytes([data[i] ^ 1]) + data[i + 1 :]


@pytest.mark.parametrize("position", [0, 5, 31, 32, 40, 63])
def test_tampered_proof(position: int) -> None:
    evaluated, proof = _evaluate()
    with codes(ErrorCode.BAD_PROOF, RemoteProtocolError):
        oprf.verify_proof(PK, BLINDED, evaluated, _flip(proof, position))


def test_proofs_that_do_not_verify() -> None:
    evaluated, proof = _evaluate()
    _, other_pk = oprf.derive_key_pair(bytes(32), b"other", mode=oprf.MODE_VOPRF)
    cases = {
        "another key": (other_pk, BLINDED, evaluated, proof, oprf.MODE_VOPRF),
        "swapped elements": (PK, BLINDED, evaluated[::-1], proof, oprf.MODE_VOPRF),
        "other blinded": (PK, BLINDED[::-1], evaluated[::-1], proof, oprf.MODE_VOPRF),
        "OPRF mode": (PK, BLINDED, evaluated, proof, oprf.MODE_OPRF),
        "short": (PK, BLINDED, evaluated, proof[:63], oprf.MODE_VOPRF),
        "not bytes": (PK, BLINDED, evaluated, bytearray(proof), oprf.MODE_VOPRF),
        "zero c": (PK, BLINDED, evaluated, bytes(32) + proof[32:], oprf.MODE_VOPRF),
        "s = L": (PK, BLINDED, evaluated, proof[:32] + BAD_SCALARS["L"], oprf.MODE_VOPRF),
    }
    for name, (pk, blinded, ev, pr, mode) in cases.items():
        with codes(ErrorCode.BAD_PROOF, RemoteProtocolError):
            oprf.verify_proof(pk, blinded, ev, pr, mode=mode)  # type: ignore[arg-type]
            pytest.fail(name)


def test_wrong_evaluation_is_refused_even_with_its_own_proof() -> None:
    other_sk, other_pk = oprf.derive_key_pair(bytes(32), b"other", mode=oprf.MODE_VOPRF)
    evaluated, proof = _evaluate(other_sk, other_pk)
    with codes(ErrorCode.BAD_PROOF, RemoteProtocolError):
        oprf.voprf_finalize(INPUTS, BLINDS, evaluated, BLINDED, PK, proof)


def test_evaluated_count() -> None:
    evaluated, proof = _evaluate()
    with codes(ErrorCode.BAD_VALUE, RemoteProtocolError):
        oprf.verify_proof(PK, BLINDED, evaluated[:1], proof)
    with codes(ErrorCode.BAD_VALUE, LocalProtocolError):
        oprf.voprf_finalize(INPUTS[:1], BLINDS, evaluated, BLINDED, PK, proof)


def test_degenerate_composites_are_a_bad_proof(monkeypatch: pytest.MonkeyPatch) -> None:
    """Weights that cancel make the composite the identity: no proof can stand on it."""
    evaluated, proof = _evaluate(blinded=[BLINDED[0], BLINDED[0]])
    one, minus_one = _group.int_to_scalar(1), _group.int_to_scalar(-1)
    monkeypatch.setattr(_proof, "_composite_scalars", lambda *_, **__: [one, minus_one])
    with codes(ErrorCode.BAD_PROOF, RemoteProtocolError):
        oprf.verify_proof(PK, [BLINDED[0], BLINDED[0]], evaluated, proof)


# --- threshold evaluation ---------------------------------------------------------


def split(threshold: int, shares: int) -> list[oprf.KeyShare]:
    coefficients = [wide(f"coefficient {i}") for i in range(threshold - 1)]
    return oprf.split_key(SK, threshold=threshold, shares=shares, coefficients=coefficients)


def answers(
    shares: list[oprf.KeyShare], blinded: list[bytes] = BLINDED
) -> list[oprf.ShareEvaluation]:
    return [oprf.evaluate_share(s, blinded, proof_random=wide(f"r{s.index}")) for s in shares]


def keys(shares: list[oprf.KeyShare]) -> dict[int, bytes]:
    return {s.index: s.public_key for s in shares}


SHARES_3 = split(2, 3)
ANSWERS_3 = answers(SHARES_3)
SINGLE = [oprf.blind_evaluate(SK, b) for b in BLINDED]


def combine(
    evaluations: list[oprf.ShareEvaluation], threshold: int = 2, **kw: Any
) -> oprf.Combined:
    kw.setdefault("share_keys", keys(SHARES_3))
    kw.setdefault("blinded_elements", BLINDED)
    return oprf.combine(evaluations, threshold=threshold, **kw)


@pytest.mark.parametrize(("threshold", "n"), [(2, 3), (3, 5)])
def test_every_subset_combines_to_the_single_key_result(threshold: int, n: int) -> None:
    shares = split(threshold, n)
    all_answers = answers(shares)
    _, proof = _evaluate()
    single_outputs = oprf.voprf_finalize(INPUTS, BLINDS, SINGLE, BLINDED, PK, proof)
    for subset in itertools.combinations(all_answers, threshold):
        combined = combine(list(subset), threshold, share_keys=keys(shares))
        assert combined.used == tuple(a.index for a in subset)
        assert combined.evaluated_elements == tuple(SINGLE)
        outputs = [
            oprf.finalize(x, r, e)
            for x, r, e in zip(INPUTS, BLINDS, combined.evaluated_elements, strict=True)
        ]
        assert outputs == single_outputs == [direct(SK, x, oprf.MODE_VOPRF) for x in INPUTS]


def test_shares_interpolate_to_the_key() -> None:
    shares = split(3, 5)
    for subset in itertools.combinations(shares, 3):
        weights = oprf.lagrange_coefficients([s.index for s in subset])
        total = sum(
            _group.scalar_to_int(weights[s.index]) * _group.scalar_to_int(s.secret) for s in subset
        )
        assert _group.int_to_scalar(total) == SK
    assert oprf.lagrange_coefficients([1, 2]) == {
        1: _group.int_to_scalar(2),
        2: _group.int_to_scalar(-1),
    }


def test_the_lowest_valid_indices_are_used_in_any_order() -> None:
    combined = combine(ANSWERS_3[::-1])
    assert combined.used == (1, 2)
    assert combined.rejected == {}
    assert combined.evaluated_elements == tuple(SINGLE)


def test_a_share_evaluated_with_the_wrong_key_is_rejected_and_skipped() -> None:
    impostor = oprf.KeyShare(index=1, secret=SHARES_3[2].secret)
    forged = oprf.evaluate_share(impostor, BLINDED, proof_random=wide("forged"))
    combined = combine([forged, *ANSWERS_3[1:]])
    assert combined.rejected == {1: ErrorCode.BAD_PROOF}
    assert combined.used == (2, 3)
    assert combined.evaluated_elements == tuple(SINGLE)
    with pytest.raises(TypeError):
        combined.rejected[2] = ErrorCode.BAD_PROOF  # type: ignore[index]


def _tampered(answer: oprf.ShareEvaluation, **changes: Any) -> oprf.ShareEvaluation:
    fields: dict[str, Any] = {
        "index": answer.index,
        "evaluated_elements": answer.evaluated_elements,
        "proof": answer.proof,
    }
    return oprf.ShareEvaluation(**(fields | changes))


@pytest.mark.parametrize(
    ("change", "code"),
    [
        ({"proof": _flip(ANSWERS_3[0].proof, 3)}, ErrorCode.BAD_PROOF),
        ({"evaluated_elements": ANSWERS_3[0].evaluated_elements[::-1]}, ErrorCode.BAD_PROOF),
        ({"evaluated_elements": ANSWERS_3[0].evaluated_elements[:1]}, ErrorCode.BAD_VALUE),
        ({"evaluated_elements": ()}, ErrorCode.BAD_VALUE),
        ({"evaluated_elements": (bytes(32), BLINDED[0])}, ErrorCode.BAD_ELEMENT),
        ({"evaluated_elements": (b"\xff" * 32, BLINDED[0])}, ErrorCode.BAD_ELEMENT),
        ({"evaluated_elements": (bytes(31), BLINDED[0])}, ErrorCode.BAD_VALUE),
        ({"index": 9}, ErrorCode.BAD_VALUE),  # no share key
    ],
    ids=["proof", "elements swapped", "too few", "none", "identity", "invalid", "short", "unknown"],
)
def test_refused_evaluations(change: dict[str, Any], code: ErrorCode) -> None:
    bad = _tampered(ANSWERS_3[0], **change)
    combined = combine([bad, *ANSWERS_3[1:]])
    assert combined.rejected == {bad.index: code}
    assert combined.used == (2, 3)
    assert combined.evaluated_elements == tuple(SINGLE)


def test_a_duplicated_index_is_refused_entirely() -> None:
    copy = oprf.evaluate_share(SHARES_3[0], BLINDED, proof_random=wide("again"))
    combined = combine([ANSWERS_3[0], copy, *ANSWERS_3[1:]])
    assert combined.rejected == {1: ErrorCode.BAD_VALUE}
    assert combined.used == (2, 3)


def test_a_bad_share_key_refuses_that_share() -> None:
    combined = combine(ANSWERS_3, share_keys={**keys(SHARES_3), 1: bytes(32)})
    assert combined.rejected == {1: ErrorCode.BAD_ELEMENT}
    assert combined.used == (2, 3)


def test_too_few_shares() -> None:
    bad = _tampered(ANSWERS_3[0], proof=_flip(ANSWERS_3[0].proof, 0))
    with codes(ErrorCode.TOO_FEW_SHARES, RemoteProtocolError) as caught:
        combine([bad, ANSWERS_3[1]])
    assert caught.value.message == "1 valid share evaluations, 2 needed; rejected: 1: BAD_PROOF"
    with codes(ErrorCode.TOO_FEW_SHARES, RemoteProtocolError) as caught:
        combine(ANSWERS_3, threshold=4)
    assert caught.value.message.endswith("rejected: none")
    with codes(ErrorCode.TOO_FEW_SHARES, RemoteProtocolError):
        combine([])


@pytest.mark.parametrize("threshold", [1, 256, True, "2"])
def test_combine_threshold(threshold: Any) -> None:
    with codes(ErrorCode.BAD_VALUE, LocalProtocolError):
        combine(ANSWERS_3, threshold)


def test_combine_blinded_elements_are_ours() -> None:
    with codes(ErrorCode.BAD_ELEMENT, LocalProtocolError):
        combine(ANSWERS_3, blinded_elements=[bytes(32)])


@pytest.mark.parametrize(
    ("index", "elements", "proof"),
    [
        (0, (), bytes(64)),
        (256, (), bytes(64)),
        (True, (), bytes(64)),
        (1, [], bytes(64)),
        (1, ("00",), bytes(64)),
        (1, (), bytes(63)),
        (1, (), "00" * 64),
    ],
)
def test_share_evaluation_shape(index: Any, elements: Any, proof: Any) -> None:
    with codes(ErrorCode.BAD_VALUE, RemoteProtocolError):
        oprf.ShareEvaluation(index=index, evaluated_elements=elements, proof=proof)


@pytest.mark.parametrize("index", [0, 256, True, "1"])
def test_key_share_index(index: Any) -> None:
    with codes(ErrorCode.BAD_VALUE, LocalProtocolError):
        oprf.KeyShare(index=index, secret=SK)


def test_key_share_hides_its_secret() -> None:
    share = SHARES_3[0]
    assert share.secret.hex() not in repr(share)
    assert share.public_key == _group.base_mult(share.secret)


@pytest.mark.parametrize(
    ("threshold", "shares", "coefficients", "code"),
    [
        (1, 3, [], ErrorCode.BAD_VALUE),
        (4, 3, [wide("a")] * 3, ErrorCode.BAD_VALUE),
        (2, 256, [wide("a")], ErrorCode.BAD_VALUE),
        (2.0, 3, [wide("a")], ErrorCode.BAD_VALUE),
        (2, 3, [], ErrorCode.BAD_VALUE),
        (2, 3, [wide("a"), wide("b")], ErrorCode.BAD_VALUE),
        (2, 3, [bytes(32)], ErrorCode.BAD_VALUE),
        (2, 3, [bytes(64)], ErrorCode.BAD_SCALAR),
    ],
)
def test_split_key_arguments(
    threshold: Any, shares: int, coefficients: list[bytes], code: ErrorCode
) -> None:
    with codes(code, LocalProtocolError):
        oprf.split_key(SK, threshold=threshold, shares=shares, coefficients=coefficients)


def test_split_key_limits() -> None:
    shares = oprf.split_key(
        SK, threshold=255, shares=255, coefficients=[wide(str(i)) for i in range(254)]
    )
    assert [s.index for s in shares] == list(range(1, 256))
    with codes(ErrorCode.BAD_SCALAR, LocalProtocolError):
        oprf.split_key(bytes(32), threshold=2, shares=2, coefficients=[wide("a")])


@pytest.mark.parametrize("indices", [[], [1, 1], [0, 1], [1, 256], [True, 2]])
def test_lagrange_coefficients_arguments(indices: list[int]) -> None:
    with codes(ErrorCode.BAD_VALUE, LocalProtocolError):
        oprf.lagrange_coefficients(indices)


def test_evaluate_share_refuses_bad_elements() -> None:
    with codes(ErrorCode.BAD_ELEMENT, RemoteProtocolError):
        oprf.evaluate_share(SHARES_3[0], [bytes(32)], proof_random=wide("r"))


# --- pseudonyms -------------------------------------------------------------------


def test_pseudonym() -> None:
    output = direct(SK, b"household", oprf.MODE_VOPRF)
    expected = hashlib.sha256(b"watan/pseudonym/v1\x00" + (7).to_bytes(4, "big") + output).digest()
    assert oprf.pseudonym(output, epoch=7) == expected
    assert len(expected) == oprf.PSEUDONYM_BYTES
    assert oprf.pseudonym(output, epoch=8) != expected


@pytest.mark.parametrize(
    ("output", "epoch"),
    [(bytes(63), 1), (bytes(64), 0), (bytes(64), 2**32), (bytes(64), True), ("0" * 64, 1)],
)
def test_pseudonym_arguments(output: Any, epoch: Any) -> None:
    with codes(ErrorCode.BAD_VALUE, LocalProtocolError):
        oprf.pseudonym(output, epoch=epoch)


# --- the committed threshold vectors ----------------------------------------------


def test_threshold_vectors_are_generated_from_the_current_code() -> None:
    from tools import gen_vectors

    text = (VECTORS / "oprf_threshold.json").read_text(encoding="utf-8")
    assert text == gen_vectors.build()["oprf_threshold.json"]


def test_threshold_vectors_hold() -> None:
    v = json.loads((VECTORS / "oprf_threshold.json").read_text(encoding="utf-8"))
    sk, pk = oprf.derive_key_pair(h(v["key_seed"]), h(v["key_info"]), mode=v["mode"])
    assert (sk.hex(), pk.hex()) == (v["sk"], v["pk"])
    shares = oprf.split_key(
        sk, threshold=v["threshold"], shares=3, coefficients=[h(c) for c in v["coefficients"]]
    )
    assert [(s.index, s.secret.hex(), s.public_key.hex()) for s in shares] == [
        (s["index"], s["secret"], s["public_key"]) for s in v["shares"]
    ]
    x, r = h(v["input"]), h(v["blind"])
    assert oprf.blind(x, blind=r, mode=oprf.MODE_VOPRF)[1].hex() == v["blinded_element"]
    evaluations = [
        oprf.evaluate_share(s, [h(v["blinded_element"])], proof_random=h(e["proof_random"]))
        for s, e in zip(shares, v["evaluations"], strict=True)
    ]
    assert [(e.index, e.evaluated_elements[0].hex(), e.proof.hex()) for e in evaluations] == [
        (e["index"], e["evaluated_element"], e["proof"]) for e in v["evaluations"]
    ]
    combined = oprf.combine(
        evaluations[::-1],
        share_keys=keys(shares),
        blinded_elements=[h(v["blinded_element"])],
        threshold=2,
    )
    assert list(combined.used) == v["used"]
    assert combined.evaluated_elements[0].hex() == v["combined_element"]
    output = oprf.finalize(x, r, combined.evaluated_elements[0])
    assert output.hex() == v["output"] == direct(sk, x, oprf.MODE_VOPRF).hex()
    assert oprf.pseudonym(output, epoch=v["epoch"]).hex() == v["pseudonym"]


# --- properties -------------------------------------------------------------------

B32 = st.binary(min_size=32, max_size=32)
ANY = st.binary(max_size=70)


@PROPERTY
@given(element=B32 | ANY)
def test_blind_evaluate_raises_only_protocol_errors(element: bytes) -> None:
    try:
        evaluated = oprf.blind_evaluate(SK, element)
    except RemoteProtocolError:
        return
    assert _group.is_valid_point(evaluated)


@PROPERTY
@given(
    pk=B32,
    evaluated=st.lists(B32, min_size=1, max_size=3),
    proof=st.binary(min_size=64, max_size=64) | ANY,
)
def test_verify_proof_raises_only_protocol_errors(
    pk: bytes, evaluated: list[bytes], proof: bytes
) -> None:
    for key in (pk, PK):
        with pytest.raises(RemoteProtocolError):
            oprf.verify_proof(key, BLINDED, evaluated, proof)


@PROPERTY
@given(
    raw=st.lists(
        st.tuples(
            st.integers(0, 6), st.lists(B32, max_size=3), st.binary(min_size=64, max_size=64)
        ),
        max_size=4,
    )
)
def test_combine_raises_only_protocol_errors(raw: list[tuple[int, list[bytes], bytes]]) -> None:
    evaluations = []
    for index, elements, proof in raw:
        try:
            evaluations.append(
                oprf.ShareEvaluation(index=index, evaluated_elements=tuple(elements), proof=proof)
            )
        except RemoteProtocolError:
            continue
    with pytest.raises(RemoteProtocolError):
        combine(evaluations)
    # Junk under indices no share has does not keep the honest answers from combining.
    strangers = [e for e in evaluations if e.index > 3]
    combined = combine([*strangers, *ANSWERS_3])
    assert combined.evaluated_elements == tuple(SINGLE)
    assert set(combined.rejected) == {e.index for e in strangers}


@PROPERTY
@given(x=ANY, blind=B32, element=B32)
def test_finalize_raises_only_protocol_errors(x: bytes, blind: bytes, element: bytes) -> None:
    try:
        output = oprf.finalize(x, blind, element)
    except ProtocolError:
        return
    assert len(output) == oprf.OUTPUT_BYTES


@PROPERTY
@given(x=st.binary(max_size=100), seed=B32, blind=st.binary(min_size=64, max_size=64))
def test_blind_finalize_round_trip(x: bytes, seed: bytes, blind: bytes) -> None:
    sk, _ = oprf.derive_key_pair(seed, b"property", mode=oprf.MODE_VOPRF)
    r = _group.scalar_reduce(blind)
    if r == bytes(32):
        return
    r, blinded = oprf.blind(x, blind=r, mode=oprf.MODE_VOPRF)
    assert oprf.finalize(x, r, oprf.blind_evaluate(sk, blinded)) == direct(sk, x, oprf.MODE_VOPRF)
