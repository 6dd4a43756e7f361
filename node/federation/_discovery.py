"""LAN discovery: advertise this node and find peer nodes with multicast DNS.

Each node registers one DNS-SD service (RFC 6763) of type ``_watan._tcp`` on the local
link (RFC 6762, via python-zeroconf) and browses for the others. The TXT record carries
who the node claims to be and where its federation API lives::

    id=<node id, 64 lowercase hex>  fp=<protocol.fingerprint(node id)>
    net=<federation id, 64 lowercase hex>  v=<protocol version>  api=</fed/v1>

Discovery only ever *proposes* (DESIGN §4, Trust): anyone on the LAN can advertise
anything, so nothing here is trusted or stored. Each advert is parsed strictly
(:func:`parse_advert`), adverts of other federations and our own are ignored, and the
rest are handed to ``on_found`` for an admin to approve after comparing fingerprints.

Logs name nodes by fingerprint only: never addresses (logs.py) and never text copied
from a hostile advert.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import re
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Final

import ifaddr
from zeroconf import Error as ZeroconfError
from zeroconf import InterfaceChoice, ServiceStateChange, Zeroconf
from zeroconf.asyncio import AsyncServiceBrowser, AsyncServiceInfo, AsyncZeroconf

import protocol

__all__ = [
    "PROTOCOL_VERSION",
    "SERVICE_TYPE",
    "Advert",
    "Discovery",
    "DiscoveryError",
    "instance_name",
    "parse_advert",
]

SERVICE_TYPE: Final = "_watan._tcp.local."
PROTOCOL_VERSION: Final = 1
DEFAULT_API_PATH: Final = "/fed/v1"

#: How long to wait for a peer's SRV, TXT and address records. Responders answer within
#: 20-120 ms (RFC 6762 §6) and zeroconf re-asks; 3 s covers a lossy Wi-Fi link.
RESOLVE_TIMEOUT_MS: Final = 3000
#: A node is reported again at most this often unless its addresses change: responders
#: re-announce on every change of any record, and ``on_found`` should not be flooded.
REPORT_INTERVAL_S: Final = 10.0
#: Resolutions in flight at once. A hostile host can announce thousands of instances;
#: each resolution holds a record listener for up to RESOLVE_TIMEOUT_MS.
MAX_PENDING: Final = 64
#: Node ids remembered by the rate limit (~100 bytes each); a LAN of NGOs has tens.
MAX_REMEMBERED: Final = 1024
#: Addresses kept per advert. A multi-homed box has a handful; more is noise or attack.
MAX_ADDRESSES: Final = 16

_HEX_32_BYTES: Final = re.compile(rb"[0-9a-f]{64}")
#: Decimal without leading zeros or sign, at most 9 digits: one spelling per version.
#: protocol.fingerprint's form: six groups of five digits.
_FINGERPRINT: Final = re.compile(rb"[0-9]{5}(?: [0-9]{5}){5}")
_VERSION: Final = re.compile(rb"0|[1-9][0-9]{0,8}")
#: An absolute path of RFC 3986 unreserved characters: nothing that could change how
#: ``http://host:port`` + api parses (no ``%``, ``?``, ``#``, ``@``, spaces).
_API: Final = re.compile(rb"/[A-Za-z0-9._~/-]{0,63}")

_log = logging.getLogger(__name__)


class DiscoveryError(Exception):
    """Multicast DNS could not be started (e.g. no such interface address, port in use)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Advert:
    """A node seen on the LAN: a proposal to be checked by an admin, not a trusted peer."""

    node_id: bytes
    fingerprint: str
    net: bytes
    version: int
    #: ``http://<addr>:<port><api>`` per address: IPv4 first, IPv6 as ``[addr]``.
    urls: tuple[str, ...]
    api: str

    def __post_init__(self) -> None:
        if type(self.node_id) is not bytes or len(self.node_id) != 32:
            raise ValueError("node id must be 32 bytes")
        if self.fingerprint != protocol.fingerprint(self.node_id):
            raise ValueError("fingerprint does not match the node id")
        if type(self.net) is not bytes or len(self.net) != 32:
            raise ValueError("federation id must be 32 bytes")
        if type(self.version) is not int or self.version < 0:
            raise ValueError("version must be a non-negative int")
        if not isinstance(self.api, str) or not _API.fullmatch(self.api.encode()):
            raise ValueError("api must be an absolute path of unreserved characters")
        if not isinstance(self.urls, tuple) or not self.urls:
            raise ValueError("urls must be a non-empty tuple")


def instance_name(node_id: bytes) -> str:
    """The DNS-SD instance name of a node: ``watan-`` and the first 16 hex digits of its
    id, so it is stable across restarts and (64 bits) unique on any LAN.

    Raises:
        ValueError: ``node_id`` is not 32 bytes.
    """
    if type(node_id) is not bytes or len(node_id) != 32:
        raise ValueError("node id must be 32 bytes")
    return f"watan-{node_id.hex()[:16]}"


def txt_properties(*, node_id: bytes, net: bytes, api_path: str) -> dict[str, str]:
    """The TXT record a node advertises (all ASCII)."""
    return {
        "id": node_id.hex(),
        "fp": protocol.fingerprint(node_id),
        "net": net.hex(),
        "v": str(PROTOCOL_VERSION),
        "api": api_path,
    }


def parse_advert(
    properties: Mapping[bytes, bytes | None], addresses: Sequence[str], port: int | None
) -> Advert | None:
    """The advert in a resolved service's TXT record, addresses and port, or None if
    anything is missing or malformed. Never raises, whatever a hostile LAN sends.

    Unknown TXT keys are ignored, so that later versions can add some. Addresses that
    cannot reach a peer (loopback, unspecified, multicast, IPv6 link-local, which needs
    a zone that URLs do not carry portably) are dropped.
    """
    try:
        return _parse(properties, addresses, port)
    except ValueError:
        return None


def _parse(
    properties: Mapping[bytes, bytes | None], addresses: Sequence[str], port: int | None
) -> Advert:
    """:func:`parse_advert`, raising ``ValueError`` with a fixed reason (safe to log)."""
    node_hex = _field(properties, b"id", _HEX_32_BYTES)
    net_hex = _field(properties, b"net", _HEX_32_BYTES)
    version = _field(properties, b"v", _VERSION)
    api = _field(properties, b"api", _API).decode("ascii")
    fingerprint = _field(properties, b"fp", _FINGERPRINT).decode("ascii")
    node_id = bytes.fromhex(node_hex.decode("ascii"))
    if fingerprint != protocol.fingerprint(node_id):
        raise ValueError("fp: does not match the node id")
    if type(port) is not int or not 0 < port < 65536:
        raise ValueError("port: out of range")
    urls = tuple(_url(address, port, api) for address in _usable_addresses(addresses))
    if not urls:
        raise ValueError("no usable address")
    return Advert(
        node_id=node_id,
        fingerprint=fingerprint,
        net=bytes.fromhex(net_hex.decode("ascii")),
        version=int(version),
        urls=urls,
        api=api,
    )


def _field(
    properties: Mapping[bytes, bytes | None], key: bytes, pattern: re.Pattern[bytes]
) -> bytes:
    value = properties.get(key)
    if value is None:
        raise ValueError(f"{key.decode()}: missing")
    if type(value) is not bytes or not pattern.fullmatch(value):
        raise ValueError(f"{key.decode()}: malformed")
    return value


_Address = ipaddress.IPv4Address | ipaddress.IPv6Address


def _usable_addresses(addresses: Sequence[str]) -> list[_Address]:
    """Reachable unicast addresses, IPv4 first, without duplicates, at most MAX_ADDRESSES."""
    usable: dict[_Address, None] = {}
    for text in addresses:
        try:
            address = ipaddress.ip_address(text)
        except ValueError:
            continue
        if _reachable(address):
            usable[address] = None
    ordered = sorted(usable, key=lambda address: address.version)  # stable: keeps order
    return ordered[:MAX_ADDRESSES]


def _reachable(address: _Address) -> bool:
    if address.is_loopback or address.is_unspecified or address.is_multicast:
        return False
    if isinstance(address, ipaddress.IPv6Address):
        return not (address.is_link_local or address.scope_id or address.ipv4_mapped)
    return True


def _url(address: _Address, port: int, api: str) -> str:
    host = f"[{address}]" if address.version == 6 else str(address)
    return f"http://{host}:{port}{api}"


class _ReportLimit:
    """Reports a node at most once per ``interval_s`` unless its URLs changed."""

    def __init__(self, *, interval_s: float, monotonic: Callable[[], float]) -> None:
        self._interval_s = interval_s
        self._monotonic = monotonic
        #: node id -> (when last reported, its URLs then); oldest report first.
        self._last: dict[bytes, tuple[float, frozenset[str]]] = {}

    def allow(self, advert: Advert) -> bool:
        now = self._monotonic()
        urls = frozenset(advert.urls)  # zeroconf lists addresses newest first: order varies
        last = self._last.pop(advert.node_id, None)
        if last is not None and now - last[0] < self._interval_s and last[1] == urls:
            self._last[advert.node_id] = last
            return False
        if len(self._last) >= MAX_REMEMBERED:
            del self._last[next(iter(self._last))]
        self._last[advert.node_id] = (now, urls)
        return True


class Discovery:
    """Advertise this node on the LAN and report the other nodes of its federation.

    Args:
        node_id: our node id (Ed25519 public key, 32 bytes).
        net: our federation id (32 bytes); adverts of other federations are ignored.
        port: the TCP port our federation API listens on.
        api_path: the path of that API.
        on_found: awaited for each valid advert of another node of our federation; at
            most once per node per REPORT_INTERVAL_S unless its addresses change.
        interfaces: IP addresses of the interfaces to use; None for all (IPv4).
        addresses: the addresses to advertise; None for those of ``interfaces``.
        monotonic: the clock of the rate limit, in seconds.

    Raises:
        ValueError: a malformed id, port or API path.
    """

    def __init__(
        self,
        *,
        node_id: bytes,
        net: bytes,
        port: int,
        api_path: str = DEFAULT_API_PATH,
        on_found: Callable[[Advert], Awaitable[None]],
        interfaces: Sequence[str] | None = None,
        addresses: Sequence[str] | None = None,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        instance = instance_name(node_id)
        if type(net) is not bytes or len(net) != 32:
            raise ValueError("federation id must be 32 bytes")
        if type(port) is not int or not 0 < port < 65536:
            raise ValueError("port must be in 1..65535")
        if not _API.fullmatch(api_path.encode()):
            raise ValueError("API path must be an absolute path of unreserved characters")
        self._node_id, self._net, self._port, self._api = node_id, net, port, api_path
        self._instance = instance
        self._on_found = on_found
        self._interfaces = None if interfaces is None else list(interfaces)
        self._addresses = None if addresses is None else list(addresses)
        self._limit = _ReportLimit(interval_s=REPORT_INTERVAL_S, monotonic=monotonic)
        self._zc: AsyncZeroconf | None = None
        self._browser: AsyncServiceBrowser | None = None
        self._info: AsyncServiceInfo | None = None
        #: Resolutions in flight by service name: references keep the tasks alive.
        self._pending: dict[str, asyncio.Task[None]] = {}
        #: Names updated while being resolved: resolved once more when that ends.
        self._again: set[str] = set()

    async def start(self) -> None:
        """Register our service (zeroconf renames it on a conflict) and start browsing.

        Raises:
            DiscoveryError: multicast DNS could not start on the interfaces.
            RuntimeError: already started.
        """
        if self._zc is not None:
            raise RuntimeError("discovery already started")
        try:
            zc = AsyncZeroconf(
                interfaces=InterfaceChoice.All if self._interfaces is None else self._interfaces
            )
        except (OSError, ValueError, ZeroconfError) as error:
            raise DiscoveryError(f"cannot start multicast DNS: {error}") from None
        self._zc = zc
        addresses = self._advertised_addresses()
        if not addresses:
            _log.warning("no address to advertise", extra={"event": "discovery.no_address"})
        self._info = AsyncServiceInfo(
            SERVICE_TYPE,
            f"{self._instance}.{SERVICE_TYPE}",
            port=self._port,
            properties=txt_properties(node_id=self._node_id, net=self._net, api_path=self._api),
            server=f"{self._instance}.local.",
            parsed_addresses=addresses,
        )
        try:
            self._browser = AsyncServiceBrowser(
                zc.zeroconf, SERVICE_TYPE, handlers=[self._on_state_change]
            )
            announced = await zc.async_register_service(self._info, allow_name_change=True)
            await announced
        except (OSError, ZeroconfError) as error:
            await self.stop()
            raise DiscoveryError(f"cannot advertise on multicast DNS: {error}") from None
        _log.info(
            "advertising on the LAN",
            extra={"event": "discovery.started", "addresses": len(addresses)},
        )

    async def stop(self) -> None:
        """Stop browsing, withdraw our service (goodbye packets) and close. Idempotent."""
        zc, self._zc = self._zc, None
        if zc is None:
            return
        if self._browser is not None:
            await self._browser.async_cancel()
            self._browser = None
        tasks = list(self._pending.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._pending.clear()
        self._again.clear()
        await zc.async_close()  # unregisters our service first, which says goodbye
        self._info = None
        _log.info("stopped", extra={"event": "discovery.stopped"})

    def _advertised_addresses(self) -> list[str]:
        if self._addresses is not None:
            candidates = self._addresses
        elif self._interfaces is not None:
            candidates = self._interfaces
        else:
            candidates = [
                ip.ip if isinstance(ip.ip, str) else ip.ip[0]
                for adapter in ifaddr.get_adapters()
                for ip in adapter.ips
            ]
        return [str(address) for address in _usable_addresses(candidates)]

    def _on_state_change(
        self,
        zeroconf: Zeroconf,
        service_type: str,
        name: str,
        state_change: ServiceStateChange,
    ) -> None:
        """zeroconf's (synchronous) browser handler, called on the event loop: schedule
        a resolution. Never raises into zeroconf."""
        try:
            if state_change is ServiceStateChange.Removed or self._zc is None:
                return
            if name in self._pending:
                self._again.add(name)
                return
            if len(self._pending) >= MAX_PENDING:
                _log.debug("too many adverts at once", extra={"event": "discovery.busy"})
                return
            task = asyncio.get_running_loop().create_task(self._resolve(zeroconf, name))
            self._pending[name] = task
            task.add_done_callback(lambda _task: self._resolved(zeroconf, name))
        except Exception:
            _log.exception("browser callback failed", extra={"event": "discovery.error"})

    def _resolved(self, zeroconf: Zeroconf, name: str) -> None:
        self._pending.pop(name, None)
        if name in self._again and self._zc is not None:
            self._again.discard(name)
            self._on_state_change(zeroconf, SERVICE_TYPE, name, ServiceStateChange.Updated)

    async def _resolve(self, zeroconf: Zeroconf, name: str) -> None:
        try:
            info = AsyncServiceInfo(SERVICE_TYPE, name)
            if not await info.async_request(zeroconf, RESOLVE_TIMEOUT_MS):
                _log.debug("advert not resolved", extra={"event": "discovery.unresolved"})
                return
            properties, addresses, port = info.properties, info.parsed_addresses(), info.port
        except Exception:
            _log.warning("advert not resolved", extra={"event": "discovery.unresolved"})
            return
        await self._received(properties, addresses, port)

    async def _received(
        self, properties: Mapping[bytes, bytes | None], addresses: Sequence[str], port: int | None
    ) -> None:
        """Check one resolved advert and report it if it is another node of our net."""
        try:
            advert = _parse(properties, addresses, port)
        except ValueError as error:
            _log.warning(
                "invalid advert dropped", extra={"event": "discovery.invalid", "reason": str(error)}
            )
            return
        if advert.node_id == self._node_id:
            return
        if advert.net != self._net:
            _log.debug(
                "another federation",
                extra={"event": "discovery.other_net", "fingerprint": advert.fingerprint},
            )
            return
        if not self._limit.allow(advert):
            return
        _log.info(
            "node found on the LAN",
            extra={"event": "discovery.found", "fingerprint": advert.fingerprint},
        )
        try:
            await self._on_found(advert)
        except Exception:
            _log.exception(
                "on_found failed",
                extra={"event": "discovery.on_found_failed", "fingerprint": advert.fingerprint},
            )
