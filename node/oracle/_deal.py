"""The key ceremony: a trusted dealer creates an epoch's key, splits it into shares,
seals each to its oracle, publishes ``oracle.config/1``, and forgets the key; each
oracle imports its share (SPEC §13.5).

The dealer is trusted: while it deals it holds the whole key, and a dealer that kept
a copy could compute every pseudonym of that epoch alone. Deal on a node whose admin
the federation trusts with that, and re-deal (a new epoch) if that trust ends.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

import protocol
from node.audit import AuditLog
from node.clock import Clock
from node.identity import Identity
from node.storage import FeedStore, stored_content
from protocol import oprf

from ._config import active_config
from ._errors import OracleError, OracleErrorCode
from ._shares import HeldShare, ShareStore, open_share_file, seal_share_file

__all__ = ["Dealt", "deal", "import_share"]

#: The info string of the dealer's key derivation (RFC 9497 DeriveKeyPair).
KEY_INFO = b"watan pseudonym oracle key"


@dataclass(frozen=True, slots=True, kw_only=True)
class Dealt:
    """What a dealing produced: the published config entry and the share files, by
    oracle node id (our own share, if we are an oracle, is already imported)."""

    epoch: int
    entry: protocol.Entry
    files: dict[bytes, str]
    imported_own: bool


async def _next_epoch(feeds: FeedStore, dealer: bytes) -> int:
    epochs = [
        protocol.OracleConfig.build(stored_content(wire)).epoch
        for author, _seq, wire in await feeds.all_of_kind(protocol.OracleConfig.KIND)
        if author == dealer  # others' configurations count for nothing (_config)
    ]
    return max(epochs, default=0) + 1


async def _enc_keys(feeds: FeedStore, oracles: Sequence[bytes]) -> dict[bytes, bytes]:
    keys = {}
    for node_id in oracles:
        wire = await feeds.latest_of_kind(node_id, protocol.Profile.KIND)
        if wire is None:
            raise OracleError(
                f"no profile of oracle {protocol.fingerprint(node_id)} here yet: approve it "
                "as a peer and let it sync first",
                code=OracleErrorCode.NO_PROFILE,
            )
        keys[node_id] = protocol.Profile.build(stored_content(wire)).enc_key
    return keys


async def deal(
    *,
    feeds: FeedStore,
    audit: AuditLog,
    identity: Identity,
    net: bytes,
    clock: Clock,
    shares: ShareStore,
    threshold: int,
    oracles: Sequence[bytes],
    random_bytes: Callable[[int], bytes],
    founder: bytes | None,
    actor: int | None = None,
    epoch: int | None = None,
) -> Dealt:
    """Deal a new epoch (module docstring); only the federation's founder may
    (``node.oracle.founder_of``): other nodes ignore anyone else's configuration.

    Raises:
        OracleError: NOT_FOUNDER, BAD_DEAL (threshold, duplicates, epoch not new),
            NO_PROFILE.
    """
    if founder != identity.node_id:
        raise OracleError(
            "only the node that founded the federation deals the oracle key (the others "
            "ignore anyone else's configuration); run this on the founding node",
            code=OracleErrorCode.NOT_FOUNDER,
        )
    if len(set(oracles)) != len(oracles) or not 2 <= threshold <= len(oracles) <= 255:
        raise OracleError(
            "deal to 2..255 distinct oracles with a threshold of 2..(number of oracles)",
            code=OracleErrorCode.BAD_DEAL,
        )
    next_epoch = await _next_epoch(feeds, identity.node_id)
    if epoch is None:
        epoch = next_epoch
    elif epoch < next_epoch:
        raise OracleError(
            f"epoch {epoch} is not new (the next is {next_epoch})", code=OracleErrorCode.BAD_DEAL
        )
    enc_keys = await _enc_keys(feeds, oracles)
    secret, _public = oprf.derive_key_pair(random_bytes(32), KEY_INFO, mode=oprf.MODE_VOPRF)
    split = oprf.split_key(
        secret,
        threshold=threshold,
        shares=len(oracles),
        coefficients=[random_bytes(64) for _ in range(threshold - 1)],
    )
    del secret  # the whole key never outlives the ceremony
    body = protocol.OracleConfig(
        epoch=epoch,
        keys=[share.public_key for share in split],
        oracles=list(oracles),
        suite=oprf.SUITE,
        threshold=threshold,
    )
    now_ms = clock.now_ms()
    key = identity.signing_key
    entry = await feeds.append_own(
        lambda head: protocol.append(head, body, key=key, net=net, now_ms=now_ms), now_ms=now_ms
    )
    files = {}
    imported_own = False
    for share, node_id in zip(split, oracles, strict=True):
        if node_id == identity.node_id:
            await shares.put(
                share, epoch=epoch, threshold=threshold, dealer=identity.node_id, now_ms=now_ms
            )
            imported_own = True
            continue
        files[node_id] = seal_share_file(
            share,
            epoch=epoch,
            threshold=threshold,
            net=net,
            dealer=identity.node_id,
            oracle=node_id,
            oracle_enc_key=enc_keys[node_id],
        )
    await audit.record(
        actor,
        "oracle.deal",
        f"epoch:{epoch}",
        {"threshold": threshold, "oracles": len(oracles)},
        now_ms=now_ms,
    )
    return Dealt(epoch=epoch, entry=entry, files=files, imported_own=imported_own)


async def import_share(
    text: str,
    *,
    feeds: FeedStore,
    scope: Callable[[], Awaitable[set[bytes]]],
    audit: AuditLog,
    identity: Identity,
    net: bytes,
    clock: Clock,
    shares: ShareStore,
    actor: int | None = None,
) -> HeldShare:
    """Import a share file after checking it against the published configuration.

    Raises:
        OracleError: BAD_SHARE_FILE, NO_CONFIG (sync first), SHARE_MISMATCH,
            SHARE_EXISTS.
    """
    document, share = open_share_file(text, identity=identity, net=net)
    epoch = document["epoch"]
    config = await active_config(feeds, scope, epoch=epoch)
    index = share.index
    if (
        config.dealer != document["dealer"]
        or config.threshold != document["threshold"]
        or config.oracles().get(index) != identity.node_id
        or config.share_keys().get(index) != share.public_key
    ):
        raise OracleError(
            f"this share does not match the published configuration of epoch {epoch}",
            code=OracleErrorCode.SHARE_MISMATCH,
        )
    now_ms = clock.now_ms()
    await shares.put(
        share, epoch=epoch, threshold=config.threshold, dealer=config.dealer, now_ms=now_ms
    )
    await audit.record(actor, "oracle.import", f"epoch:{epoch}", {"index": index}, now_ms=now_ms)
    held = await shares.get(epoch)
    assert held is not None
    return held
