"""Which oracle configuration is in force: the ``oracle.config/1`` with the highest
epoch among those the federation's founder published (SPEC §5.9, §13.6).

Only the founder deals. Were any approved peer's configuration accepted, one NGO could
publish a higher epoch naming oracles it controls, deal itself the whole key, and
compute every household's pseudonym of that epoch alone: exactly what the threshold
exists to prevent. The founder is already the party every member trusted to found the
federation; dealing adds the trusted-dealer assumption to it (docs/pseudonyms.md).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import protocol
from node.config import NodeConfig
from node.storage import FeedStore, stored_content

from ._errors import OracleError, OracleErrorCode

__all__ = ["ActiveConfig", "active_config", "dealers_of", "founder_of"]


def founder_of(config: NodeConfig) -> bytes | None:
    """The node id that founded this node's federation (None while standalone)."""
    if config.genesis is None:
        return None
    return protocol.parse_genesis(bytes.fromhex(config.genesis), net=config.net).founder


def dealers_of(config: NodeConfig) -> Callable[[], Awaitable[set[bytes]]]:
    """The authors whose ``oracle.config/1`` count: the founder alone."""
    founder = founder_of(config)

    async def dealers() -> set[bytes]:
        return set() if founder is None else {founder}

    return dealers


@dataclass(frozen=True, slots=True, kw_only=True)
class ActiveConfig:
    """An epoch's oracles, as the dealer ``dealer`` published them."""

    body: protocol.OracleConfig
    dealer: bytes
    seq: int

    @property
    def epoch(self) -> int:
        return self.body.epoch

    @property
    def threshold(self) -> int:
        return self.body.threshold

    def share_keys(self) -> dict[int, bytes]:
        """Share public keys by share index (1-based)."""
        return {index + 1: key for index, key in enumerate(self.body.keys)}

    def oracles(self) -> dict[int, bytes]:
        """Oracle node ids by share index."""
        return {index + 1: node for index, node in enumerate(self.body.oracles)}

    def index_of(self, node_id: bytes) -> int | None:
        for index, node in self.oracles().items():
            if node == node_id:
                return index
        return None


async def active_config(
    feeds: FeedStore, scope: Callable[[], Awaitable[set[bytes]]], *, epoch: int | None = None
) -> ActiveConfig:
    """The configuration in force (or of ``epoch``).

    Raises:
        OracleError: NO_CONFIG if none is known (or none of ``epoch``);
            CONFIG_CONFLICT if two different ones claim that epoch.
    """
    authors = await scope()
    found: dict[int, list[ActiveConfig]] = {}
    for author, seq, wire in await feeds.all_of_kind(protocol.OracleConfig.KIND):
        if author not in authors:
            continue
        body = protocol.OracleConfig.build(stored_content(wire))
        found.setdefault(body.epoch, []).append(ActiveConfig(body=body, dealer=author, seq=seq))
    if epoch is None and found:
        epoch = max(found)
    candidates = found.get(epoch, []) if epoch is not None else []
    if not candidates:
        raise OracleError(
            "no pseudonym oracles are configured yet (watan oracle deal)",
            code=OracleErrorCode.NO_CONFIG,
        )
    if len({protocol.encode(c.body.to_content()) for c in candidates}) > 1:
        raise OracleError(
            f"two different oracle configurations claim epoch {epoch}; the dealers must "
            "publish a new epoch",
            code=OracleErrorCode.CONFIG_CONFLICT,
        )
    return candidates[0]
