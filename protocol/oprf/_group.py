"""ristretto255 (RFC 9496) through libsodium: the one module that touches pysodium (SPEC §13.1).

PyNaCl does not expose libsodium's ``crypto_core_ristretto255_*`` functions, so this
module wraps pysodium, a ctypes binding of the system libsodium (>= 1.0.18). It is the
one boundary where libsodium's failures (pysodium raises a bare ``ValueError``) become
:class:`ProtocolError` (STYLE §6):

- 32 bytes that are not a canonical ristretto255 encoding, or encode the identity:
  ``BAD_ELEMENT``; a product that comes out as the identity: ``BAD_ELEMENT``.
- a scalar that is zero or not below the group order ``L``: ``BAD_SCALAR``.
- a value of the wrong type or length: ``BAD_VALUE``.

Elements and scalars are plain ``bytes``: 32-byte canonical encodings, scalars
little-endian (RFC 9496 §4.3, RFC 9497 §4.1). If libsodium cannot be loaded, importing
still succeeds; the first operation raises :class:`RuntimeError`.
"""

from __future__ import annotations

from types import ModuleType
from typing import Any, Final

from .._errors import ErrorCode, LocalProtocolError, ProtocolError, RemoteProtocolError

__all__ = [
    "ELEMENT_BYTES",
    "SCALAR_BYTES",
    "L",
    "add",
    "available",
    "base_mult",
    "check_element",
    "check_scalar",
    "from_hash",
    "int_to_scalar",
    "is_valid_point",
    "mult",
    "random_scalar",
    "scalar_add",
    "scalar_invert",
    "scalar_mul",
    "scalar_negate",
    "scalar_reduce",
    "scalar_sub",
    "scalar_to_int",
    "sub",
]

ELEMENT_BYTES: Final = 32
SCALAR_BYTES: Final = 32
#: The order of the ristretto255 group (RFC 9496 §4.1).
L: Final = 2**252 + 27742317777372353535851937790883648493
_IDENTITY: Final = bytes(ELEMENT_BYTES)
_UNAVAILABLE: Final = (
    "libsodium >= 1.0.18 with ristretto255 is required: apt-get install libsodium23"
)
#: Everything this module calls: a libsodium older than 1.0.18 lacks them.
_REQUIRED: Final = (
    "crypto_core_ristretto255_add",
    "crypto_core_ristretto255_from_hash",
    "crypto_core_ristretto255_is_valid_point",
    "crypto_core_ristretto255_scalar_invert",
    "crypto_core_ristretto255_scalar_random",
    "crypto_core_ristretto255_scalar_reduce",
    "crypto_core_ristretto255_sub",
    "crypto_scalarmult_ristretto255",
    "crypto_scalarmult_ristretto255_base",
)


def _load() -> ModuleType | None:
    """pysodium, if it and a libsodium with ristretto255 can be loaded; else None."""
    try:
        import pysodium

        module: ModuleType = pysodium
        if not module.sodium_version_check(1, 0, 18):
            return None
        for name in _REQUIRED:
            getattr(module.sodium, name)
    except (ImportError, OSError, AttributeError, TypeError, ValueError):
        return None
    return module


_sodium: ModuleType | None = _load()


def available() -> bool:
    """Whether libsodium with ristretto255 could be loaded (the OPRF works at all)."""
    return _sodium is not None


def _lib() -> Any:
    if _sodium is None:
        raise RuntimeError(_UNAVAILABLE)
    return _sodium


def _fail(code: ErrorCode, message: str, *, local: bool) -> ProtocolError:
    return (LocalProtocolError if local else RemoteProtocolError)(message, code=code)


def _check_bytes(value: object, size: int, name: str, *, local: bool) -> bytes:
    if type(value) is not bytes or len(value) != size:
        raise _fail(ErrorCode.BAD_VALUE, f"{name} must be {size} bytes", local=local)
    return value


# --- elements -------------------------------------------------------------------


def is_valid_point(data: bytes) -> bool:
    """Whether ``data`` is the canonical encoding of an element other than the identity.

    The top bit is checked here: libsodium 1.0.18 (Debian 12's) ignores it, so it would
    take ``G`` with bit 255 set for ``G``, a second encoding RFC 9496 §4.3.1 forbids
    (libsodium 1.0.19 rejects it too).
    """
    if type(data) is not bytes or len(data) != ELEMENT_BYTES or data == _IDENTITY:
        return False
    if data[-1] & 0x80:
        return False
    return bool(_lib().crypto_core_ristretto255_is_valid_point(data))


def check_element(data: object, name: str, *, local: bool = False) -> bytes:
    """``data`` if it is a valid, non-identity element (RFC 9497 §4.1 DeserializeElement).

    Raises:
        ProtocolError: ``BAD_VALUE`` (not 32 bytes) or ``BAD_ELEMENT``; remote unless
            ``local``.
    """
    element = _check_bytes(data, ELEMENT_BYTES, name, local=local)
    if not is_valid_point(element):
        raise _fail(ErrorCode.BAD_ELEMENT, f"{name} is not a ristretto255 element", local=local)
    return element


def from_hash(uniform: bytes) -> bytes:
    """The ristretto255 one-way map of 64 uniform bytes (RFC 9496 §4.3.4).

    The identity is a possible (if negligibly likely) result: RFC 9497's check for it in
    Blind is the libsodium failure of the multiplication that follows (``BAD_ELEMENT``).
    """
    _check_bytes(uniform, 64, "uniform bytes", local=True)
    out: bytes = _lib().crypto_core_ristretto255_from_hash(uniform)
    return out


def mult(scalar: bytes, element: bytes) -> bytes:
    """``scalar * element``. Both must already be checked; an identity result is ``BAD_ELEMENT``."""
    try:
        out: bytes = _lib().crypto_scalarmult_ristretto255(scalar, element)
    except ValueError:
        raise RemoteProtocolError(
            "scalar multiplication gave the identity or met an invalid element",
            code=ErrorCode.BAD_ELEMENT,
        ) from None
    return out


def base_mult(scalar: bytes) -> bytes:
    """``scalar * G`` for the ristretto255 generator ``G`` (RFC 9497 ScalarMultGen)."""
    try:
        out: bytes = _lib().crypto_scalarmult_ristretto255_base(scalar)
    except ValueError:
        raise LocalProtocolError("scalar is zero or malformed", code=ErrorCode.BAD_SCALAR) from None
    return out


def add(p: bytes, q: bytes) -> bytes:
    """``p + q``; the identity is a possible result here."""
    try:
        out: bytes = _lib().crypto_core_ristretto255_add(p, q)
    except ValueError:
        raise RemoteProtocolError("not ristretto255 elements", code=ErrorCode.BAD_ELEMENT) from None
    return out


def sub(p: bytes, q: bytes) -> bytes:
    """``p - q``; the identity is a possible result here."""
    try:
        out: bytes = _lib().crypto_core_ristretto255_sub(p, q)
    except ValueError:
        raise RemoteProtocolError("not ristretto255 elements", code=ErrorCode.BAD_ELEMENT) from None
    return out


# --- scalars --------------------------------------------------------------------


def scalar_to_int(scalar: bytes) -> int:
    return int.from_bytes(scalar, "little")


def int_to_scalar(value: int) -> bytes:
    """The canonical encoding of ``value mod L``."""
    return (value % L).to_bytes(SCALAR_BYTES, "little")


def check_scalar(data: object, name: str, *, local: bool = True) -> bytes:
    """``data`` if it is a canonical, non-zero scalar (RFC 9497 §4.1 DeserializeScalar).

    Raises:
        ProtocolError: ``BAD_VALUE`` (not 32 bytes) or ``BAD_SCALAR``; local unless
            ``local`` is false.
    """
    scalar = _check_bytes(data, SCALAR_BYTES, name, local=local)
    if not 0 < scalar_to_int(scalar) < L:
        raise _fail(ErrorCode.BAD_SCALAR, f"{name} is zero or not below L", local=local)
    return scalar


def scalar_reduce(data: bytes) -> bytes:
    """64 bytes, little-endian, reduced mod L (how RFC 9496 §4.4 makes uniform scalars)."""
    _check_bytes(data, 64, "wide scalar", local=True)
    out: bytes = _lib().crypto_core_ristretto255_scalar_reduce(data)
    return out


def scalar_invert(scalar: bytes) -> bytes:
    """``1 / scalar`` mod L."""
    try:
        out: bytes = _lib().crypto_core_ristretto255_scalar_invert(scalar)
    except ValueError:
        raise LocalProtocolError("zero has no inverse", code=ErrorCode.BAD_SCALAR) from None
    return out


def scalar_add(x: bytes, y: bytes) -> bytes:
    return int_to_scalar(scalar_to_int(x) + scalar_to_int(y))


def scalar_sub(x: bytes, y: bytes) -> bytes:
    return int_to_scalar(scalar_to_int(x) - scalar_to_int(y))


def scalar_mul(x: bytes, y: bytes) -> bytes:
    return int_to_scalar(scalar_to_int(x) * scalar_to_int(y))


def scalar_negate(x: bytes) -> bytes:
    return int_to_scalar(-scalar_to_int(x))


def random_scalar() -> bytes:
    """A uniformly random non-zero scalar from libsodium's CSPRNG (``randombytes``)."""
    out: bytes = _lib().crypto_core_ristretto255_scalar_random()
    return out
