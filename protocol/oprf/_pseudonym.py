"""Pseudonyms from OPRF outputs (SPEC §13.4).

``pseudonym = SHA-256("watan/pseudonym/v1\\0" ‖ I2OSP(epoch, 4) ‖ output)``, where
``output`` is the 64-byte result of Finalize under the key of epoch ``epoch``. The
epoch is hashed in so that two epochs' pseudonyms of one person never compare equal by
accident, even if a key were reused; 32 bytes is what ``ataa.allocation/1`` carries.
"""

from __future__ import annotations

import hashlib
from typing import Final

from .._errors import ErrorCode, LocalProtocolError
from ._suite import OUTPUT_BYTES, i2osp

__all__ = ["PSEUDONYM_BYTES", "PSEUDONYM_TAG", "pseudonym"]

PSEUDONYM_TAG: Final = b"watan/pseudonym/v1\x00"
PSEUDONYM_BYTES: Final = 32


def pseudonym(output: bytes, *, epoch: int) -> bytes:
    """The 32-byte pseudonym of a 64-byte OPRF ``output`` for key epoch ``epoch``.

    Raises:
        LocalProtocolError: ``BAD_VALUE`` for an output that is not 64 bytes or an
            epoch outside 1 .. 2^32 − 1.
    """
    if type(output) is not bytes or len(output) != OUTPUT_BYTES:
        raise LocalProtocolError("an OPRF output is 64 bytes", code=ErrorCode.BAD_VALUE)
    if type(epoch) is not int or not 1 <= epoch <= 2**32 - 1:
        raise LocalProtocolError("epoch is 1 .. 2^32 - 1", code=ErrorCode.BAD_VALUE)
    return hashlib.sha256(PSEUDONYM_TAG + i2osp(epoch, 4) + output).digest()
