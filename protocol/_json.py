"""JSON views of protocol values, for tools and people (bytes as lowercase hex)."""

from __future__ import annotations

import datetime
from typing import Any

from ._entry import Entry
from ._feed import ForkProof
from ._keys import fingerprint
from ._sealed import Envelope

__all__ = ["entry_json", "envelope_json", "fork_proof_json", "value_json"]


def value_json(value: Any) -> Any:
    """A decoded profile value with every bin as a hex string."""
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, dict):
        return {key: value_json(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [value_json(item) for item in value]
    return value


def _iso(ts: int) -> str | None:
    """``ts`` in ISO 8601 UTC, or None past 9999-12-31: an entry may be dated up to
    ``MAX_TS`` (year ~287,000), beyond what ISO 8601's four-digit years and
    ``datetime`` hold, and a tool must show such an entry, not crash on it."""
    try:
        moment = datetime.datetime.fromtimestamp(ts / 1000, tz=datetime.UTC)
    except (ValueError, OverflowError, OSError):
        return None
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def entry_json(entry: Entry) -> dict[str, Any]:
    return {
        "type": "entry",
        "id": entry.id.hex(),
        "net": entry.net.hex(),
        "author": entry.author.hex(),
        "author_fingerprint": fingerprint(entry.author),
        "seq": entry.seq,
        "prev": entry.prev.hex() if entry.prev is not None else None,
        "ts": entry.ts,
        "ts_utc": _iso(entry.ts),
        "kind": entry.kind,
        "known_kind": entry.body is not None,
        "content": value_json(entry.content),
        "size": len(entry.wire),
    }


def envelope_json(envelope: Envelope) -> dict[str, Any]:
    return {
        "type": "sealed_message",
        "id": envelope.id.hex(),
        "net": envelope.net.hex(),
        "to": envelope.to.hex(),
        "box_size": len(envelope.box),
        "size": len(envelope.wire),
    }


def fork_proof_json(proof: ForkProof) -> dict[str, Any]:
    return {
        "type": "fork_proof",
        "author": proof.first.author.hex(),
        "seq": proof.first.seq,
        "key": proof.key.hex(),
        "first": entry_json(proof.first),
        "second": entry_json(proof.second),
    }
