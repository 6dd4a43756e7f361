"""``python -m protocol``: decode and verify-chain, run in-process except where the entry
points themselves are under test."""

from __future__ import annotations

import io
import json
import runpy
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import node.cli
import protocol
import protocol._cli
from protocol import MAX_SEALED_BYTES, Entry, fingerprint
from protocol._cli import main

from .conftest import AUTHOR, KEY, NET, NOW, OTHER_KEY, OTHER_NET, allocation

ROOT = Path(__file__).resolve().parents[2]


def run(*argv: str) -> tuple[int, Any]:
    out = io.StringIO()
    status = main(list(argv), out=out)
    text = out.getvalue()
    assert text.endswith("\n")
    return status, json.loads(text)


def failed(argv: list[str], code: str) -> str:
    status, result = run(*argv)
    assert status == 2
    assert set(result) == {"error", "message"}
    assert result["error"] == code, result
    assert isinstance(result["message"], str) and result["message"]
    return str(result["message"])


def expected_entry_json(entry: Entry) -> dict[str, Any]:
    return {
        "type": "entry",
        "id": entry.id.hex(),
        "net": NET.hex(),
        "author": AUTHOR.hex(),
        "author_fingerprint": fingerprint(AUTHOR),
        "seq": entry.seq,
        "prev": entry.prev.hex() if entry.prev else None,
        "ts": entry.ts,
        "ts_utc": "2026-05-28T20:26:40.000Z",
        "kind": "ataa.allocation/1",
        "known_kind": True,
        "content": {
            "category": "food",
            "date": "2026-03-15",
            "district": "IQG08Q05",
            "epoch": 3,
            "program": "winter-2026",
            "pseudonym": entry.content["pseudonym"].hex(),
            "quantity": entry.content["quantity"],
            "unit": "basket",
            "value_iqd": 150000,
        },
        "size": len(entry.wire),
    }


# --- decode ----------------------------------------------------------------------------------


def test_decode_entry_from_hex_argument(alloc_entry: Entry) -> None:
    status, result = run("decode", alloc_entry.wire.hex())
    assert status == 0
    assert result == expected_entry_json(alloc_entry)


def test_decode_entry_from_hex_file(alloc_entry: Entry, tmp_path: Path) -> None:
    path = tmp_path / "entry.hex"
    hex_text = alloc_entry.wire.hex()
    # Whitespace and line breaks inside the hex are ignored.
    path.write_text("\n".join(hex_text[i : i + 64] for i in range(0, len(hex_text), 64)) + "\n")
    status, result = run("decode", f"@{path}")
    assert status == 0
    assert result == expected_entry_json(alloc_entry)


def test_decode_entry_from_raw_file(alloc_entry: Entry, tmp_path: Path) -> None:
    path = tmp_path / "entry.bin"
    path.write_bytes(alloc_entry.wire)
    status, result = run("decode", f"@{path}", "--net", NET.hex())
    assert status == 0
    assert result == expected_entry_json(alloc_entry)


def test_decode_from_stdin(alloc_entry: Entry, monkeypatch: pytest.MonkeyPatch) -> None:
    stdin = io.TextIOWrapper(io.BytesIO(alloc_entry.wire.hex().encode()))
    monkeypatch.setattr(sys, "stdin", stdin)
    status, result = run("decode", "@-")
    assert status == 0
    assert result["id"] == alloc_entry.id.hex()


def test_decode_unknown_kind(alloc_entry: Entry) -> None:
    entry = protocol.append(
        None, {"blob": b"\x01\x02", "list": [b"\xff"]}, key=KEY, net=NET, now_ms=NOW, kind="x.y/1"
    )
    status, result = run("decode", entry.wire.hex())
    assert status == 0
    assert result["known_kind"] is False
    assert result["content"] == {"blob": "0102", "list": ["ff"]}


def test_decode_sealed_envelope() -> None:
    sealed = protocol.seal(
        protocol.TextMessage(text="مرحبا"),
        sender_key=KEY,
        to=protocol.public_key(OTHER_KEY),
        recipient_enc_key=protocol.enc_public_key(bytes(32)),
        net=NET,
        now_ms=NOW,
        ephemeral_secret=bytes(range(32)),
        nonce=bytes(16),
    )
    status, result = run("decode", sealed.envelope.hex())
    assert status == 0
    box = protocol.decode(sealed.envelope)["box"]
    assert result == {
        "type": "sealed_message",
        "id": sealed.id.hex(),
        "net": NET.hex(),
        "to": protocol.public_key(OTHER_KEY).hex(),
        "box_size": len(box),
        "size": len(sealed.envelope),
    }
    failed(["decode", sealed.envelope.hex(), "--net", OTHER_NET.hex()], "WRONG_NET")


def fork_proof() -> protocol.ForkProof:
    one = protocol.append(None, allocation(quantity=1), key=KEY, net=NET, now_ms=NOW)
    two = protocol.append(None, allocation(quantity=2), key=KEY, net=NET, now_ms=NOW)
    return protocol.make_fork_proof(one, two)


def test_decode_fork_proof() -> None:
    proof = fork_proof()
    status, result = run("decode", proof.to_bytes().hex())
    assert status == 0
    assert result == {
        "type": "fork_proof",
        "author": AUTHOR.hex(),
        "seq": 1,
        "key": AUTHOR.hex(),
        "first": expected_entry_json(proof.first),
        "second": expected_entry_json(proof.second),
    }
    failed(["decode", proof.to_bytes().hex(), "--net", OTHER_NET.hex()], "WRONG_NET")


def test_decode_with_key_after_rotation(feed: list[Entry]) -> None:
    head = protocol.head_after(protocol.head_after(None, feed[0]), feed[1])
    rotation = protocol.rotate_key(
        head, key=KEY, new_key=OTHER_KEY, net=NET, now_ms=NOW + 2000, reason="scheduled"
    )
    after = protocol.append(
        protocol.head_after(head, rotation), allocation(), key=OTHER_KEY, net=NET, now_ms=NOW
    )
    failed(["decode", after.wire.hex()], "BAD_SIGNATURE")
    new_key = protocol.public_key(OTHER_KEY).hex()
    status, result = run("decode", after.wire.hex(), "--key", new_key)
    assert status == 0
    assert (result["seq"], result["author"]) == (4, AUTHOR.hex())


# --- decode: invalid input -----------------------------------------------------------------


def test_decode_errors(alloc_entry: Entry, tmp_path: Path) -> None:
    assert "not hex" in failed(["decode", "xyz"], "BAD_INPUT")
    assert "not hex" in failed(["decode", "abc"], "BAD_INPUT")  # odd length
    missing = tmp_path / "missing.hex"
    assert "cannot read" in failed(["decode", f"@{missing}"], "BAD_INPUT")
    assert "cannot read" in failed(["decode", f"@{tmp_path}"], "BAD_INPUT")  # a directory
    tampered = alloc_entry.wire[:-1] + bytes([alloc_entry.wire[-1] ^ 1])
    failed(["decode", tampered.hex()], "BAD_SIGNATURE")
    failed(["decode", alloc_entry.wire.hex(), "--net", OTHER_NET.hex()], "WRONG_NET")
    failed(["decode", alloc_entry.wire.hex(), "--net", NET.hex()[:62]], "BAD_INPUT")
    failed(["decode", alloc_entry.wire.hex(), "--net", "zz" * 32], "BAD_INPUT")
    failed(["decode", alloc_entry.wire.hex(), "--key", "00"], "BAD_INPUT")
    failed(["decode", "c1"], "MALFORMED")
    failed(["decode", ""], "MALFORMED")
    failed(["decode", (alloc_entry.wire + b"\x00").hex()], "MALFORMED")
    failed(["decode", protocol.encode({"a": 1}).hex()], "MALFORMED")
    failed(["decode", protocol.encode({"box": 1}).hex()], "MISSING_FIELD")
    failed(["decode", protocol.encode({"a": 1, "key": 2}).hex()], "MISSING_FIELD")
    failed(["decode", protocol.encode([1, 2]).hex()], "WRONG_TYPE")
    failed(["decode", protocol.encode([b"\xc1", bytes(64)]).hex()], "MALFORMED")


def test_decode_refuses_oversize_input(tmp_path: Path) -> None:
    path = tmp_path / "big.bin"
    path.write_bytes(b"\xc1" * (MAX_SEALED_BYTES + 1))
    assert "larger than" in failed(["decode", f"@{path}"], "BAD_INPUT")


def test_input_files_are_read_up_to_a_limit(
    feed: list[Entry], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The real limit is 256 MiB; a small one shows the file is not read past it.
    text = "\n".join(entry.wire.hex() for entry in feed) + "\n"
    path = tmp_path / "chain.txt"
    path.write_text(text)
    monkeypatch.setattr(protocol._cli, "_MAX_INPUT_BYTES", len(text))
    assert run("verify-chain", f"@{path}")[0] == 0
    monkeypatch.setattr(protocol._cli, "_MAX_INPUT_BYTES", len(text) - 1)
    assert "larger than" in failed(["verify-chain", f"@{path}"], "BAD_INPUT")
    assert "larger than" in failed(["decode", f"@{path}"], "BAD_INPUT")


# --- verify-chain ------------------------------------------------------------------------------


def chain_file(tmp_path: Path, lines: list[str]) -> str:
    path = tmp_path / "chain.txt"
    path.write_text("\n".join(lines) + "\n")
    return f"@{path}"


def test_verify_chain(feed: list[Entry], tmp_path: Path) -> None:
    lines = [
        "# three entries of one feed",
        feed[0].wire.hex(),
        "",
        "   # an indented comment",
        feed[1].wire.hex(),
        "   ",
        feed[2].wire.hex(),
    ]
    status, result = run("verify-chain", chain_file(tmp_path, lines))
    assert status == 0
    assert result == {
        "valid": True,
        "count": 3,
        "author": AUTHOR.hex(),
        "head": {"seq": 3, "id": feed[2].id.hex()},
        "entries": [
            {"seq": entry.seq, "id": entry.id.hex(), "kind": "ataa.allocation/1"}
            for entry in feed[:3]
        ],
    }
    status, _ = run("verify-chain", chain_file(tmp_path, lines), "--net", NET.hex())
    assert status == 0


def test_verify_chain_errors(feed: list[Entry], tmp_path: Path) -> None:
    gap = [feed[0].wire.hex(), feed[2].wire.hex()]
    assert failed(["verify-chain", chain_file(tmp_path, gap)], "SEQ_GAP").startswith("entry 1:")
    swapped = [feed[1].wire.hex(), feed[0].wire.hex()]
    failed(["verify-chain", chain_file(tmp_path, swapped)], "SEQ_GAP")
    tampered = feed[1].wire[:-1] + bytes([feed[1].wire[-1] ^ 1])
    failed(
        ["verify-chain", chain_file(tmp_path, [feed[0].wire.hex(), tampered.hex()])],
        "BAD_SIGNATURE",
    )
    good = [entry.wire.hex() for entry in feed[:3]]
    failed(["verify-chain", chain_file(tmp_path, good), "--net", OTHER_NET.hex()], "WRONG_NET")
    assert "line 2" in failed(
        ["verify-chain", chain_file(tmp_path, [good[0], "nothex"])], "BAD_INPUT"
    )
    failed(["verify-chain", chain_file(tmp_path, ["# nothing"])], "BAD_INPUT")
    failed(["verify-chain", good[0]], "BAD_INPUT")  # not @FILE
    failed(["verify-chain", f"@{tmp_path / 'missing'}"], "BAD_INPUT")
    binary = tmp_path / "chain.bin"
    binary.write_bytes(feed[0].wire)
    assert "not hex text" in failed(["verify-chain", f"@{binary}"], "BAD_INPUT")


def test_verify_chain_from_stdin(feed: list[Entry], monkeypatch: pytest.MonkeyPatch) -> None:
    text = "\n".join(entry.wire.hex() for entry in feed)
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(text.encode())))
    status, result = run("verify-chain", "@-")
    assert status == 0
    assert result["count"] == 5


def test_closed_pipe_is_not_an_error(alloc_entry: Entry) -> None:
    class ClosedPipe(io.StringIO):
        def write(self, text: str) -> int:
            raise BrokenPipeError

    assert main(["decode", alloc_entry.wire.hex()], out=ClosedPipe()) == 0
    assert main(["decode", "zz"], out=ClosedPipe()) == 2


def test_usage_errors_exit_through_argparse(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["frobnicate"], out=io.StringIO())
    assert info.value.code == 2
    assert "invalid choice" in capsys.readouterr().err


# --- the entry points ------------------------------------------------------------------------


def test_python_dash_m_protocol(alloc_entry: Entry) -> None:
    completed = subprocess.run(
        [sys.executable, "-m", "protocol", "decode", alloc_entry.wire.hex()],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    assert json.loads(completed.stdout) == expected_entry_json(alloc_entry)
    assert completed.stderr == ""


def test_module_entry_point_in_process(
    alloc_entry: Entry, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(sys, "argv", ["python -m protocol", "decode", alloc_entry.wire.hex()])
    with pytest.raises(SystemExit) as info:
        runpy.run_module("protocol", run_name="__main__")
    assert info.value.code == 0
    assert json.loads(capsys.readouterr().out) == expected_entry_json(alloc_entry)


def test_watan_protocol_subcommand(alloc_entry: Entry, capsys: pytest.CaptureFixture[str]) -> None:
    assert node.cli.main(["protocol", "decode", alloc_entry.wire.hex()]) == 0
    assert json.loads(capsys.readouterr().out) == expected_entry_json(alloc_entry)
    assert node.cli.main(["protocol", "decode", "zz"]) == 2
    assert json.loads(capsys.readouterr().out)["error"] == "BAD_INPUT"
