"""``python -m protocol``: decode and verify protocol bytes from the command line.

For people extending the protocol and debugging interoperability. This is the only
module of ``protocol`` that touches files and streams; the library itself stays pure.

Exit status: 0 when the input is valid, 2 when it is not (or cannot be read), with a
JSON object ``{"error": CODE, "message": ...}`` on stdout either way.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from typing import Any, TextIO

from ._encoding import unpack_fast
from ._entry import MAX_ENTRY_BYTES, verify_entry
from ._errors import ProtocolError
from ._feed import verify_chain, verify_fork_proof
from ._json import entry_json, envelope_json, fork_proof_json
from ._sealed import MAX_SEALED_BYTES, open_envelope

__all__ = ["main"]

#: Input files are at most a few thousand entries; refuse to read gigabytes by mistake.
_MAX_INPUT_BYTES = 256 * 1024 * 1024


class _InputError(Exception):
    pass


def _hex(text: str, what: str) -> bytes:
    cleaned = "".join(text.split())
    try:
        return bytes.fromhex(cleaned)
    except ValueError:
        raise _InputError(f"{what} is not hex") from None


def _read(argument: str) -> bytes:
    """``@FILE`` (``@-`` is stdin) holding hex or raw bytes, or hex on the command line."""
    if not argument.startswith("@"):
        return _hex(argument, "the argument")
    path = argument[1:]
    data = _read_file(path)
    try:
        return _hex(data.decode("ascii"), path)
    except (UnicodeDecodeError, _InputError):
        return data  # raw bytes


def _read_file(path: str) -> bytes:
    try:
        if path == "-":
            data = sys.stdin.buffer.read(_MAX_INPUT_BYTES + 1)
        else:
            with open(path, "rb") as handle:
                data = handle.read(_MAX_INPUT_BYTES + 1)
    except OSError as exc:
        raise _InputError(f"cannot read {path!r}: {exc.strerror}") from None
    if len(data) > _MAX_INPUT_BYTES:
        raise _InputError(f"{path!r} is larger than {_MAX_INPUT_BYTES} bytes")
    return data


def _lines(argument: str) -> list[bytes]:
    if not argument.startswith("@"):
        raise _InputError("verify-chain takes @FILE with one hex wire per line")
    data = _read_text(argument[1:])
    return [
        _hex(line, f"line {number}")
        for number, line in enumerate(data.splitlines(), start=1)
        if line.strip() and not line.lstrip().startswith("#")
    ]


def _read_text(path: str) -> str:
    try:
        return _read_file(path).decode("ascii")
    except UnicodeDecodeError:
        raise _InputError(f"{path!r} is not hex text") from None


def _bytes32(value: str | None, option: str) -> bytes | None:
    if value is None:
        return None
    raw = _hex(value, option)
    if len(raw) != 32:
        raise _InputError(f"{option} must be 32 bytes (64 hex digits)")
    return raw


def _decode(data: bytes, net: bytes | None, key: bytes | None) -> dict[str, Any]:
    if len(data) > MAX_SEALED_BYTES:
        raise _InputError(f"input is larger than {MAX_SEALED_BYTES} bytes")
    top = unpack_fast(data)
    if isinstance(top, dict) and "box" in top:
        return envelope_json(open_envelope(data, net=net or _field(top, "net")))
    if isinstance(top, dict) and "key" in top and "a" in top:
        proof_net = net or _nested_net(top.get("a"))
        return fork_proof_json(verify_fork_proof(data, net=proof_net, key=key))
    entry_net = net or _nested_net(data)
    return entry_json(verify_entry(data, net=entry_net, now_ms=None, key=key))


def _field(value: dict[str, Any], name: str) -> bytes:
    field = value.get(name)
    return field if isinstance(field, bytes) else b""


def _nested_net(wire: Any) -> bytes:
    """Without --net, check the entry against the federation it names itself."""
    if not isinstance(wire, bytes) or len(wire) > MAX_ENTRY_BYTES:
        return b""
    try:
        outer = unpack_fast(wire)
        payload = unpack_fast(outer[0]) if isinstance(outer, list) and outer else None
    except ProtocolError:
        return b""
    if isinstance(payload, dict):
        return _field(payload, "net")
    return b""


def _verify_chain(wires: list[bytes], net: bytes | None) -> dict[str, Any]:
    if not wires:
        raise _InputError("the file holds no entries")
    entries, head = verify_chain(wires, net=net or _nested_net(wires[0]), now_ms=None)
    assert head is not None
    return {
        "valid": True,
        "count": len(entries),
        "author": head.author.hex(),
        "head": {"seq": head.seq, "id": head.id.hex()},
        "entries": [{"seq": e.seq, "id": e.id.hex(), "kind": e.kind} for e in entries],
    }


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m protocol", description="Decode and verify Watan protocol bytes."
    )
    commands = parser.add_subparsers(dest="command", required=True)
    decode = commands.add_parser(
        "decode", help="print an entry, sealed message envelope or fork proof as JSON"
    )
    decode.add_argument("input", metavar="HEX_OR_@FILE")
    decode.add_argument("--net", metavar="HEX", help="require this federation id")
    decode.add_argument(
        "--key", metavar="HEX", help="the feed's signing key, if it rotated (default: author)"
    )
    chain = commands.add_parser("verify-chain", help="verify one feed, one hex wire per line")
    chain.add_argument("input", metavar="@FILE")
    chain.add_argument("--net", metavar="HEX", help="require this federation id")
    return parser


def main(argv: Sequence[str] | None = None, *, out: TextIO | None = None) -> int:
    """Run the CLI; returns the exit status."""
    stream = out or sys.stdout
    args = _parser().parse_args(argv)
    try:
        net = _bytes32(args.net, "--net")
        if args.command == "decode":
            key = _bytes32(args.key, "--key")
            result = _decode(_read(args.input), net, key)
        else:
            result = _verify_chain(_lines(args.input), net)
    except ProtocolError as exc:
        result, status = {"error": exc.code.value, "message": exc.message}, 2
    except _InputError as exc:
        result, status = {"error": "BAD_INPUT", "message": str(exc)}, 2
    else:
        status = 0
    try:
        stream.write(json.dumps(result, ensure_ascii=False, indent=2) + "\n")
        stream.flush()
    except BrokenPipeError:  # e.g. piped into `head`: the reader has all it wanted
        pass
    return status
