"""LAN discovery over real multicast DNS between network namespaces (``netns.py``).

Three nodes of one federation and a fourth of another, each a separate process in its
own namespace on one bridged LAN. Each of the three must report exactly the other two,
with their ids, fingerprints and URLs on the LAN, and must have *seen and ignored* the
fourth (so its absence is not just a race); the fourth reports nobody and ignores all
three. Node 3 listens on all interfaces (``interfaces=None``), the others on their
``eth0`` address, so both ways of choosing interfaces are exercised.

This module is also the node program: ``python -m tests.integration.test_netns_discovery
--seed N ...`` runs one Discovery, prints JSON lines (``started``, ``found``,
``other_net``, then ``done`` or ``timeout``) and, once done, keeps advertising until its
stdin closes, so that no node withdraws before the others have found it.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import ipaddress
import json
import logging
import subprocess
import sys
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import protocol
from node.federation._discovery import Advert, Discovery
from tests.integration.netns import Lan, lan_or_skip

REPO = Path(__file__).resolve().parents[2]
NET = hashlib.sha256(b"watan netns discovery federation").digest()
OTHER_NET = hashlib.sha256(b"watan netns discovery, another federation").digest()
PORT = 8443
API = "/fed/v1"
#: Each node gives up after this; registration (probing, RFC 6762 §8.1) takes ~1 s.
NODE_TIMEOUT_S = 30.0


def node_id(seed: int) -> bytes:
    return protocol.public_key(protocol.signing_key(bytes([seed]) * 32))


def _start(net: Lan, index: int, *, federation: bytes, found: int, other: int) -> Any:
    host = net.hosts[index - 1]
    argv = [
        sys.executable, "-m", "tests.integration.test_netns_discovery",
        "--seed", str(index), "--net", federation.hex(),
        "--interface", "all" if index == 3 else host.address,
        "--expect-found", str(found), "--expect-other-net", str(other),
    ]  # fmt: skip
    return net.run_in(host, argv, cwd=REPO, env={"PYTHONUNBUFFERED": "1"}, stdin=subprocess.PIPE)


def test_nodes_of_one_federation_find_each_other_and_only_each_other() -> None:
    started = time.monotonic()
    with lan_or_skip(4) as net:
        nodes = [_start(net, i, federation=NET, found=2, other=1) for i in (1, 2, 3)]
        nodes.append(_start(net, 4, federation=OTHER_NET, found=0, other=3))
        for node in nodes:
            node.wait_for_line('"done"', timeout=NODE_TIMEOUT_S + 5)
        for node in nodes:
            node.stdin.close()  # now everyone may withdraw
        for node in nodes:
            assert node.wait(10) == 0, node.stderr_text
        reports = [[json.loads(line) for line in node.lines] for node in nodes]
        addresses = {node_id(host.index).hex(): host.address for host in net.hosts}
        network = net.network

    ours = {node_id(i).hex() for i in (1, 2, 3)}
    for index, lines in enumerate(reports, start=1):
        found = [line["found"] for line in lines if "found" in line]
        ignored = {line["other_net"] for line in lines if "other_net" in line}
        me = node_id(index).hex()
        if index == 4:
            assert found == []
            assert ignored == {protocol.fingerprint(bytes.fromhex(i)) for i in ours}
            continue
        assert {advert["id"] for advert in found} == ours - {me}
        assert ignored == {protocol.fingerprint(node_id(4))}
        for advert in found:
            assert advert["fp"] == protocol.fingerprint(bytes.fromhex(advert["id"]))
            assert advert["net"] == NET.hex()
            assert advert["api"] == API
            assert advert["urls"] == [f"http://{addresses[advert['id']]}:{PORT}{API}"]
            url = urlsplit(advert["urls"][0])
            assert url.hostname is not None
            assert ipaddress.ip_address(url.hostname) in network
    assert time.monotonic() - started < 30


# --- the node program ---


_BORN = time.monotonic()


def _emit(value: dict[str, Any]) -> None:
    """One JSON line, with ``t``: seconds since this process started (for diagnosis)."""
    print(json.dumps(value | {"t": round(time.monotonic() - _BORN, 3)}), flush=True)


def _advert_json(advert: Advert) -> dict[str, Any]:
    return {
        "id": advert.node_id.hex(),
        "fp": advert.fingerprint,
        "net": advert.net.hex(),
        "version": advert.version,
        "urls": list(advert.urls),
        "api": advert.api,
    }


async def _run_node(args: argparse.Namespace) -> int:
    found: set[bytes] = set()
    other: set[str] = set()
    complete = asyncio.Event()

    def check() -> None:
        if len(found) >= args.expect_found and len(other) >= args.expect_other_net:
            complete.set()

    async def on_found(advert: Advert) -> None:
        found.add(advert.node_id)
        _emit({"found": _advert_json(advert)})
        check()

    class OtherNet(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            fingerprint = getattr(record, "fingerprint", None)
            if getattr(record, "event", None) == "discovery.other_net" and fingerprint:
                if fingerprint not in other:
                    other.add(fingerprint)
                    _emit({"other_net": fingerprint})
                check()

    logger = logging.getLogger("node.federation._discovery")
    logger.setLevel(logging.DEBUG)
    logger.addHandler(OtherNet())
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)

    discovery = Discovery(
        node_id=node_id(args.seed),
        net=bytes.fromhex(args.net),
        port=PORT,
        api_path=API,
        on_found=on_found,
        interfaces=None if args.interface == "all" else [args.interface],
    )
    deadline = time.monotonic() + args.timeout
    await discovery.start()
    try:
        _emit({"started": node_id(args.seed).hex()})
        try:
            await asyncio.wait_for(complete.wait(), args.timeout)
        except TimeoutError:
            _emit({"timeout": True})
            return 1
        _emit({"done": True})
        stdin = asyncio.StreamReader()
        transport, _ = await asyncio.get_running_loop().connect_read_pipe(
            lambda: asyncio.StreamReaderProtocol(stdin), sys.stdin
        )
        try:
            await asyncio.wait_for(stdin.read(), max(deadline - time.monotonic(), 1.0))
        finally:
            transport.close()
        return 0
    finally:
        await discovery.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seed", type=int, required=True)
    parser.add_argument("--net", required=True, help="federation id, hex")
    parser.add_argument("--interface", required=True, help="an address, or 'all'")
    parser.add_argument("--expect-found", type=int, required=True)
    parser.add_argument("--expect-other-net", type=int, required=True)
    parser.add_argument("--timeout", type=float, default=NODE_TIMEOUT_S)
    return asyncio.run(_run_node(parser.parse_args()))


if __name__ == "__main__":
    sys.exit(main())
