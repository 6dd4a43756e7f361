"""Oblivious pseudorandom functions for pseudonyms: RFC 9497, ristretto255-SHA512 (SPEC §13).

- OPRF (mode 0) and VOPRF (mode 1) exactly as RFC 9497 specifies them, checked
  against its Appendix A.1 vectors (``protocol/vectors/oprf_rfc9497.json``).
- Threshold evaluation: the key Shamir-split t-of-n among oracles, each answer proved
  against its share's public key, combined by the client (SPEC §13.3).
- :func:`pseudonym`: the 32-byte value feeds carry, from an OPRF output and an epoch.
- :class:`PseudonymInput` and friends: the normalized bytes a pseudonym is computed
  from (SPEC §14, ``_inputs``).

Pure like the rest of ``protocol``: the caller supplies seeds, coefficients and proof
randomness. The one exception is :func:`blind` without ``blind=``, which draws the blind
from libsodium. Group operations run in the system libsodium (>= 1.0.18) through
pysodium; without it this package still imports, :func:`available` is False and the
first operation raises :class:`RuntimeError`.

Client flow, threshold::

    r, blinded = blind(national_id_input, mode=MODE_VOPRF)
    answers = [oracle_i(blinded) for each oracle]           # evaluate_share on each
    combined = combine(answers, share_keys=keys, blinded_elements=[blinded], threshold=t)
    output = finalize(national_id_input, r, combined.evaluated_elements[0])
    pseudonym(output, epoch=epoch)
"""

from ._group import ELEMENT_BYTES, SCALAR_BYTES, available
from ._inputs import (
    FALLBACK_PREFIX,
    MAX_FIELD_CHARS,
    MAX_YEAR,
    MIN_YEAR,
    NATIONAL_ID_DIGITS,
    NATIONAL_ID_PREFIX,
    PseudonymInput,
    fallback_input,
    national_id_input,
    normalize_arabic,
    normalize_national_id,
)
from ._oprf import (
    MAX_BATCH,
    blind,
    blind_evaluate,
    check_elements,
    finalize,
    verify_proof,
    voprf_blind_evaluate,
    voprf_finalize,
)
from ._proof import PROOF_BYTES
from ._pseudonym import PSEUDONYM_BYTES, PSEUDONYM_TAG, pseudonym
from ._suite import MODE_OPRF, MODE_VOPRF, OUTPUT_BYTES, SUITE, derive_key_pair
from ._threshold import (
    MAX_SHARES,
    Combined,
    KeyShare,
    ShareEvaluation,
    combine,
    evaluate_share,
    lagrange_coefficients,
    split_key,
)

__all__ = [
    "ELEMENT_BYTES",
    "FALLBACK_PREFIX",
    "MAX_BATCH",
    "MAX_FIELD_CHARS",
    "MAX_SHARES",
    "MAX_YEAR",
    "MIN_YEAR",
    "MODE_OPRF",
    "MODE_VOPRF",
    "NATIONAL_ID_DIGITS",
    "NATIONAL_ID_PREFIX",
    "OUTPUT_BYTES",
    "PROOF_BYTES",
    "PSEUDONYM_BYTES",
    "PSEUDONYM_TAG",
    "SCALAR_BYTES",
    "SUITE",
    "Combined",
    "KeyShare",
    "PseudonymInput",
    "ShareEvaluation",
    "available",
    "blind",
    "blind_evaluate",
    "check_elements",
    "combine",
    "derive_key_pair",
    "evaluate_share",
    "fallback_input",
    "finalize",
    "lagrange_coefficients",
    "national_id_input",
    "normalize_arabic",
    "normalize_national_id",
    "pseudonym",
    "split_key",
    "verify_proof",
    "voprf_blind_evaluate",
    "voprf_finalize",
]
