"""Password policy, one-time passwords and the argon2id hasher.

Hashing: Argon2id with RFC 9106 §4's second recommended option ("uniformly safe" with
less memory): t=3 passes, m=64 MiB, p=4 lanes, 16-byte salt, 32-byte tag. That is
argon2-cffi's ``profiles.RFC_9106_LOW_MEMORY`` and exceeds OWASP's Password Storage
Cheat Sheet minimum (m=19 MiB, t=2, p=1); 64 MiB fits the small boxes NGOs run.
Hashes carry their parameters, so old ones still verify and are re-hashed at the next
login when these change.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Callable
from typing import Final

import argon2
from argon2 import PasswordHasher
from argon2.profiles import RFC_9106_LOW_MEMORY

from ._errors import AccountError, AccountErrorCode, PasswordProblem

__all__ = [
    "MAX_PASSWORD",
    "MIN_PASSWORD",
    "Hasher",
    "check_password_policy",
    "one_time_password",
    "production_hasher",
]

#: OWASP ASVS 4.0.3 V2.1.1: at least 12 characters (counted after NFC normalization,
#: so an Arabic letter with a combining mark counts as one whether typed composed or not).
MIN_PASSWORD: Final = 12
#: ASVS V2.1.2 asks to allow at least 64; 256 bounds the work one login can cost.
MAX_PASSWORD: Final = 256

#: The most common passwords of at least MIN_PASSWORD characters (shorter ones fail
#: the length rule anyway), from public breach-frequency lists (SecLists
#: "10-million-password-list-top-10000", NCSC "100k-most-used"), compared lower-cased.
COMMON_PASSWORDS: Final = frozenset(
    {
        "123456789012",
        "1234567890123",
        "12345678901234",
        "123456123456",
        "111111111111",
        "000000000000",
        "123123123123",
        "qwertyuiop12",
        "qwerty123456",
        "qwertyuiopasdf",
        "1q2w3e4r5t6y",
        "1qaz2wsx3edc",
        "password1234",
        "password123!",
        "passwordpassword",
        "iloveyou1234",
        "welcome12345",
        "administrator",
        "admin1234567",
        "adminadmin123",
        "changeme1234",
        "letmein12345",
        "abcdefghijkl",
        "abc123456789",
        "asdfghjkl123",
        "football1234",
        "superman1234",
        "iraq12345678",
        "baghdad12345",
        "watan1234567",
    }
)

#: Crockford's base32 alphabet: no i, l, o, u, so a one-time password read aloud or
#: copied from a screen is not mistyped. 256 is a multiple of 32: ``byte % 32`` is
#: unbiased.
_OTP_ALPHABET: Final = "0123456789abcdefghjkmnpqrstvwxyz"
#: 20 symbols x 5 bits = 100 bits; shown in groups of 4 (24 characters with dashes).
_OTP_SYMBOLS: Final = 20

Hasher = PasswordHasher


def production_hasher() -> PasswordHasher:
    """The argon2id hasher with the parameters stated in this module's docstring."""
    return PasswordHasher.from_parameters(RFC_9106_LOW_MEMORY)


def normalize_password(password: str) -> str:
    """NFC, so that the same password typed on two keyboards hashes the same."""
    return unicodedata.normalize("NFC", password)


def check_password_policy(password: str, *, username: str, old: str | None = None) -> str:
    """The normalized ``password`` if it is acceptable.

    Raises:
        AccountError: WEAK_PASSWORD, with ``problem`` saying which rule failed.
    """
    password = normalize_password(password)

    def weak(message: str, problem: PasswordProblem) -> AccountError:
        return AccountError(message, code=AccountErrorCode.WEAK_PASSWORD, problem=problem)

    if len(password) < MIN_PASSWORD:
        raise weak(
            f"a password needs at least {MIN_PASSWORD} characters", PasswordProblem.TOO_SHORT
        )
    if len(password) > MAX_PASSWORD:
        raise weak(f"a password has at most {MAX_PASSWORD} characters", PasswordProblem.TOO_LONG)
    if password.casefold() == username.casefold():
        raise weak("the password must not be the username", PasswordProblem.SAME_AS_USERNAME)
    if password.casefold() in COMMON_PASSWORDS or len(set(password)) == 1:
        raise weak("this password is among the most common ones", PasswordProblem.TOO_COMMON)
    if old is not None and password == normalize_password(old):
        raise weak("the new password must differ from the old one", PasswordProblem.UNCHANGED)
    return password


def one_time_password(random_bytes: Callable[[int], bytes]) -> str:
    """A 100-bit password such as ``7k2m-...``, shown once and changed at first login."""
    raw = random_bytes(_OTP_SYMBOLS)
    if len(raw) != _OTP_SYMBOLS:
        raise ValueError("random_bytes returned the wrong length")
    symbols = "".join(_OTP_ALPHABET[byte % 32] for byte in raw)
    return "-".join(symbols[i : i + 4] for i in range(0, _OTP_SYMBOLS, 4))


def verify_hash(hasher: PasswordHasher, stored: str, password: str) -> bool:
    """Whether ``password`` matches ``stored``; any malformed hash is a mismatch."""
    try:
        return hasher.verify(stored, normalize_password(password))
    except argon2.exceptions.VerificationError:
        return False
    except argon2.exceptions.InvalidHashError:
        return False
