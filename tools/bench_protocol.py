"""How much does the protocol layer add to the Ed25519 signature check itself?

    python -m tools.bench_protocol [--json] [--entries N] [--rounds R]

Baseline (``raw_verify_per_s``): PyNaCl ``VerifyKey.verify`` of exactly the bytes each
entry signs (same sizes), with the key object built once. Measured
(``entry_verify_per_s``): :func:`protocol.verify_entry` on the wires of the same
``ataa.allocation/1`` entries: decode, canonical-form check, signature, schema check
and id. Both run on one core, interleaved round by round so that machine noise hits
both alike; each figure is the median over rounds. Target: ``ratio`` >= 0.85.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import platform
import statistics
import sys
import time
from collections.abc import Callable, Sequence

import protocol as p

NOW = 1_780_000_000_000
NET = hashlib.sha256(b"bench").digest()
CATEGORIES = ("food", "cash", "nfi", "shelter", "health")


def make_entries(count: int) -> list[p.Entry]:
    key = p.signing_key(hashlib.sha256(b"bench author").digest())
    entries: list[p.Entry] = []
    head: p.FeedHead | None = None
    for index in range(count):
        body = p.Allocation(
            category=CATEGORIES[index % len(CATEGORIES)],
            date=f"2026-0{1 + index % 9}-{10 + index % 18}",
            district=f"IQD{index % 120:03d}",
            epoch=1,
            program="winter-2026",
            pseudonym=hashlib.sha256(index.to_bytes(8, "big")).digest(),
            quantity=1 + index % 7,
            unit="basket",
            value_iqd=25_000 * (1 + index % 12),
        )
        entry = p.append(head, body, key=key, net=NET, now_ms=NOW + index)
        head = p.head_after(head, entry)
        entries.append(entry)
    return entries


def _rate(work: Callable[[], None], items: int) -> float:
    start = time.perf_counter()
    work()
    return items / (time.perf_counter() - start)


def run(entries: int = 2000, rounds: int = 7) -> dict[str, object]:
    built = make_entries(entries)
    verify_key = p.signing_key(hashlib.sha256(b"bench author").digest()).verify_key
    raw = [(p.ENTRY_TAG + e.payload, e.sig) for e in built]
    wires = [e.wire for e in built]

    def raw_round() -> None:
        for message, signature in raw:
            verify_key.verify(message, signature)

    def entry_round() -> None:
        for wire in wires:
            p.verify_entry(wire, net=NET, now_ms=NOW + entries)

    raw_round()  # warm up caches and allocators
    entry_round()
    raw_rates, entry_rates = [], []
    for _ in range(rounds):
        raw_rates.append(_rate(raw_round, entries))
        entry_rates.append(_rate(entry_round, entries))
    raw_rate = statistics.median(raw_rates)
    entry_rate = statistics.median(entry_rates)
    return {
        "raw_verify_per_s": round(raw_rate),
        "entry_verify_per_s": round(entry_rate),
        "ratio": round(entry_rate / raw_rate, 3),
        "target_ratio": 0.85,
        "entry_bytes": round(statistics.mean(len(w) for w in wires)),
        "entries": entries,
        "rounds": rounds,
        "python": platform.python_version(),
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.bench_protocol", description=__doc__)
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--entries", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args(argv)
    if args.entries < 1 or args.rounds < 1:
        parser.error("--entries and --rounds must be positive")
    result = run(args.entries, args.rounds)
    if args.json:
        print(json.dumps(result))
    else:
        for name, value in result.items():
            print(f"{name:20} {value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
