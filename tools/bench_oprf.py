"""How fast are pseudonyms, against a plain ristretto255 scalar multiplication?

    python -m tools.bench_oprf [--json] [--quick]

Baseline (``scalarmult_per_s``): libsodium ``crypto_scalarmult_ristretto255`` of a
fixed scalar and point, one core: the unit every OPRF step is made of.

- ``oprf_eval_per_s``: an oracle's server-side work per request of one element, one
  core: ``evaluate_share`` (one scalar multiplication plus its DLEQ proof, RFC 9497
  VOPRF). ``oprf_eval_batch_per_s``: elements per second in batches of 64, as the
  pending-pseudonym worker sends them (the proof is shared by the batch).
- ``client_pseudonym_per_s``: one pseudonym end to end, as a node computes it: blind,
  ask all 3 oracles of a 2-of-3 key over signed HTTP on loopback (three real nodes in
  this process, so their server work shares this core), verify each answer's proof,
  combine the first 2, finalize. ``client_pseudonym_batch_per_s``: the same in
  batches of 64.

Each ``*_ratio`` divides a rate by the baseline measured in the same run, so the
figures compare across noisy machines.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import platform
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import pysodium

from node.clock import SystemClock
from protocol import oprf

from ._localfed import local_federation

BATCH = 64


def _rate(work: Callable[[], int], seconds: float) -> float:
    """Operations per second of ``work`` (which returns how many it did), repeated
    for about ``seconds``; the best of the repetitions (noise only adds time)."""
    best = 0.0
    deadline = time.perf_counter() + seconds
    while True:
        start = time.perf_counter()
        done = work()
        best = max(best, done / (time.perf_counter() - start))
        if time.perf_counter() >= deadline:
            return best


def _baseline(seconds: float) -> float:
    scalar = pysodium.crypto_core_ristretto255_scalar_reduce(hashlib.sha512(b"s").digest())
    point = pysodium.crypto_core_ristretto255_from_hash(hashlib.sha512(b"p").digest())

    def work() -> int:
        for _ in range(200):
            pysodium.crypto_scalarmult_ristretto255(scalar, point)
        return 200

    return _rate(work, seconds)


def _server(seconds: float) -> tuple[float, float]:
    secret, _ = oprf.derive_key_pair(b"\x01" * 32, b"bench", mode=oprf.MODE_VOPRF)
    [share, *_rest] = oprf.split_key(
        secret, threshold=2, shares=3, coefficients=[hashlib.sha512(b"c").digest()]
    )
    elements = [oprf.blind(b"IQ-NID:%012d" % n, mode=oprf.MODE_VOPRF)[1] for n in range(BATCH)]
    proof_random = hashlib.sha512(b"r").digest()

    def single() -> int:
        for element in elements[:20]:
            oprf.evaluate_share(share, [element], proof_random=proof_random)
        return 20

    def batch() -> int:
        oprf.evaluate_share(share, elements, proof_random=proof_random)
        return BATCH

    return _rate(single, seconds), _rate(batch, seconds)


async def _client(seconds: float) -> tuple[float, float]:
    with tempfile.TemporaryDirectory(prefix="watan-bench-") as tmp:
        async with local_federation(Path(tmp), ["a", "b", "c"], clock=SystemClock()) as nodes:
            for local in nodes:
                assert local.node.federation.oracle is not None
                await local.node.federation.oracle.set_quota(10_000_000, actor=None)
            service = nodes[0].node.federation.pseudonyms
            assert service is not None
            config = await service.config()
            counter = iter(range(10**11, 10**12))

            def inputs(count: int) -> list[oprf.PseudonymInput]:
                return [
                    oprf.PseudonymInput.from_national_id(str(next(counter))) for _ in range(count)
                ]

            async def rate(count: int, per_call: int) -> float:
                best = 0.0
                deadline = time.perf_counter() + seconds
                while True:
                    start = time.perf_counter()
                    for _ in range(count):
                        await service.evaluate(inputs(per_call), config=config)
                    best = max(best, count * per_call / (time.perf_counter() - start))
                    if time.perf_counter() >= deadline:
                        return best

            await rate(2, 1)  # warm up connections
            return await rate(10, 1), await rate(1, BATCH)


def run(*, quick: bool = False, client: bool = True) -> dict[str, object]:
    """Every figure (module docstring); without ``client``, the oracle's side only
    (no local federation: what ``tools.bench --quick`` keeps)."""
    seconds = 0.5 if quick else 3.0
    baseline = _baseline(seconds)
    server_single, server_batch = _server(seconds)
    clients: dict[str, object] = {}
    if client:
        client_single, client_batch = asyncio.run(_client(seconds))
        clients = {
            "client_pseudonym_per_s": round(client_single, 1),
            "client_pseudonym_ratio": round(client_single / baseline, 5),
            "client_pseudonym_batch_per_s": round(client_batch, 1),
            "client_pseudonym_batch_ratio": round(client_batch / baseline, 5),
        }
    return {
        "scalarmult_per_s": round(baseline),
        "oprf_eval_per_s": round(server_single),
        "oprf_eval_ratio": round(server_single / baseline, 4),
        "oprf_eval_batch_per_s": round(server_batch),
        "oprf_eval_batch_ratio": round(server_batch / baseline, 4),
        **clients,
        "threshold": "2 of 3",
        "batch": BATCH,
        "quick": quick,
        "python": platform.python_version(),
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.bench_oprf", description=__doc__)
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--quick", action="store_true", help="about 5 s instead of 20 s")
    args = parser.parse_args(argv)
    result = run(quick=args.quick)
    if args.json:
        print(json.dumps(result))
    else:
        for name, value in result.items():
            print(f"{name:30} {value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
