"""Pseudonyms as a client: blind, ask every oracle of the epoch at once, combine the
first ``threshold`` valid answers, finalize (SPEC §13.4).

Lookups never wait for the network: :meth:`PseudonymService.lookup` answers from the
cache or queues the input and says "pending"; a background worker evaluates pending
inputs in batches and retries those it could not (too few oracles reachable) with
backoff. The cache is keyed by a keyed hash of the input, never the input itself; a
pending row keeps the input sealed to this node's own key until it is resolved.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Final, Literal

import nacl.bindings as sodium
from sqlalchemy import and_, delete, func, select, update
from sqlalchemy.engine import Connection

import protocol
from node.clock import Clock
from node.federation import FedClient, PeerCallError, PeerStore
from node.identity import Identity
from node.storage import Database, FeedStore
from node.storage._schema import pseudonyms
from protocol import oprf
from protocol.oprf import PseudonymInput

from ._config import ActiveConfig, active_config
from ._errors import OracleError, OracleErrorCode
from ._server import MAX_BATCH, OracleServer

__all__ = ["OracleAnswer", "PseudonymResult", "PseudonymService"]

#: One oracle call may take this long before we count it unreachable.
ORACLE_TIMEOUT_S: Final = 10.0
#: Retry backoff for a pending pseudonym: 5 s doubling to 10 minutes, with jitter.
RETRY_MIN_MS: Final = 5_000
RETRY_MAX_MS: Final = 600_000
#: The worker looks for due pending rows at least this often.
WORKER_INTERVAL_S: Final = 5.0

_log = logging.getLogger(__name__)

State = Literal["ready", "pending"]


@dataclass(frozen=True, slots=True, kw_only=True)
class PseudonymResult:
    """A pseudonym (``ready``) or the promise of one (``pending``, with the reason the
    last attempt gave, if any). ``weak`` pseudonyms only ever suggest a duplicate."""

    state: State
    weak: bool
    value: bytes | None = None
    epoch: int | None = None
    error: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class OracleAnswer:
    """How one oracle answered in the last evaluation (for the Peers page)."""

    index: int
    node_id: bytes
    ok: bool
    code: str | None
    at_ms: int


class PseudonymService:
    """The node's pseudonym client (one per node)."""

    def __init__(
        self,
        db: Database,
        *,
        feeds: FeedStore,
        peers: PeerStore,
        client: FedClient,
        server: OracleServer,
        identity: Identity,
        clock: Clock,
        random_bytes: Callable[[int], bytes],
        scope: Callable[[], Awaitable[set[bytes]]],
    ) -> None:
        self._db = db
        self._feeds = feeds
        self._peers = peers
        self._client = client
        self._server = server
        self._identity = identity
        self._clock = clock
        self._random = random_bytes
        self._scope = scope
        self._mac_key = hashlib.blake2b(
            identity.encryption_secret, digest_size=32, person=b"watan-pnym-key"
        ).digest()
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._idle = asyncio.Event()
        self._idle.set()
        #: The last answer of each oracle (index -> answer), newest evaluation.
        self.answers: dict[int, OracleAnswer] = {}

    # -- the cache ----------------------------------------------------------------------

    def mac(self, item: PseudonymInput) -> bytes:
        """The cache key of ``item``'s pseudonyms: a keyed hash (this node's secret),
        never the input itself. Households store it to join ``pseudonyms`` on
        ``(mac, epoch)`` without keeping the national ID in the clear."""
        return hashlib.blake2b(
            item.data, key=self._mac_key, digest_size=32, person=b"watan-pnym-mac"
        ).digest()

    async def config(self) -> ActiveConfig:
        """The oracle configuration in force (raises OracleError NO_CONFIG/CONFLICT)."""
        return await active_config(self._feeds, self._scope)

    async def lookup(self, item: PseudonymInput) -> PseudonymResult:
        """The pseudonym of ``item`` in the epoch in force, from the cache; otherwise
        queue it and answer ``pending`` at once (never waits for the network)."""
        epoch: int | None
        reason: str | None
        try:
            epoch = (await self.config()).epoch
        except OracleError as error:
            epoch, reason = None, error.code.value
        else:
            reason = None
        mac = self.mac(item)
        sealed = sodium.crypto_box_seal(
            protocol.encode({"data": item.data, "weak": item.weak}), self._identity.enc_key
        )
        result = await self._db.write(
            _lookup_txn, mac, epoch, item.weak, sealed, self._clock.now_ms(), reason
        )
        if result.state == "pending":
            self._wake.set()
        return result

    async def resolve(self, item: PseudonymInput, *, timeout_s: float) -> PseudonymResult:
        """:meth:`lookup`, then wait up to ``timeout_s`` for the worker to resolve it
        (for the CLI and tests; pages use :meth:`lookup`)."""
        result = await self.lookup(item)
        deadline = asyncio.get_running_loop().time() + timeout_s
        while result.state == "pending" and asyncio.get_running_loop().time() < deadline:
            if self._task is None:
                await self.run_pending(force=True)
            else:
                self._wake.set()
                await asyncio.sleep(0.05)
            result = await self.lookup(item)
        return result

    async def counts(self) -> dict[str, int]:
        """How many pseudonyms are ready and pending."""
        return await self._db.read(_counts_txn)

    # -- the worker ---------------------------------------------------------------------

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._loop(), name="pseudonyms")

    async def close(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _loop(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(WORKER_INTERVAL_S):
                    await self._wake.wait()
            self._wake.clear()
            try:
                while await self.run_pending() == MAX_BATCH:
                    pass  # a full batch: more may be due
            except Exception:
                _log.exception("pseudonym round failed", extra={"event": "pseudonyms.error"})

    async def run_pending(self, *, force: bool = False) -> int:
        """Evaluate up to one batch of due pending inputs; returns how many were tried.
        ``force`` ignores their backoff (a caller waiting on them)."""
        now_ms = self._clock.now_ms()
        rows = await self._db.read(_due_txn, None if force else now_ms, MAX_BATCH)
        if not rows:
            return 0
        items = []
        for row in rows:
            opened = protocol.decode(
                sodium.crypto_box_seal_open(
                    bytes(row.sealed_input),
                    self._identity.enc_key,
                    self._identity.encryption_secret,
                )
            )
            items.append((bytes(row.mac), PseudonymInput(data=opened["data"], weak=opened["weak"])))
        try:
            config = await self.config()
            values = await self.evaluate([item for _mac, item in items], config=config)
        except (OracleError, protocol.ProtocolError) as error:
            await self._db.write(
                _retry_txn, [mac for mac, _ in items], str(error.code), now_ms, self._random(2)
            )
            _log.info(
                "pseudonyms pending: %s",
                error.code,
                extra={"event": "pseudonyms.pending", "code": str(error.code), "count": len(items)},
            )
            return len(items)
        ready = [(mac, item.weak, value) for (mac, item), value in zip(items, values, strict=True)]
        await self._db.write(_ready_txn, ready, config.epoch, self._clock.now_ms())
        return len(items)

    # -- evaluation ---------------------------------------------------------------------

    async def evaluate(
        self, inputs: Sequence[PseudonymInput], *, config: ActiveConfig
    ) -> list[bytes]:
        """Pseudonyms of ``inputs`` in ``config``'s epoch, asking every oracle at once
        and using the first ``threshold`` valid answers.

        Raises:
            OracleError: TOO_FEW_ORACLES, naming how many answered and why others not.
        """
        blinded = [oprf.blind(item.data, mode=oprf.MODE_VOPRF) for item in inputs]
        elements = [element for _blind, element in blinded]
        combined = await self._gather(config, elements)
        outputs = []
        for item, (blind, _element), evaluated in zip(
            inputs, blinded, combined.evaluated_elements, strict=True
        ):
            output = oprf.finalize(item.data, blind, evaluated)
            outputs.append(oprf.pseudonym(output, epoch=config.epoch))
        return outputs

    async def _gather(self, config: ActiveConfig, elements: list[bytes]) -> oprf.Combined:
        oracles = config.oracles()
        keys = config.share_keys()
        tasks = {
            asyncio.create_task(self._ask(index, node_id, config.epoch, elements)): index
            for index, node_id in oracles.items()
        }
        valid: list[oprf.ShareEvaluation] = []
        failures: dict[int, str] = {}
        try:
            for next_done in asyncio.as_completed(tasks):
                index, answer = await next_done
                if not isinstance(answer, str):
                    answer = _checked(answer, keys[index], elements)
                if isinstance(answer, str):
                    failures[index] = answer
                    self._note(index, oracles[index], answer)
                    continue
                self._note(index, oracles[index], None)
                valid.append(answer)
                if len(valid) == config.threshold:
                    return oprf.combine(
                        valid,
                        share_keys=keys,
                        blinded_elements=elements,
                        threshold=config.threshold,
                    )
        finally:
            for task in tasks:
                task.cancel()
        reasons = ", ".join(f"#{i} {code}" for i, code in sorted(failures.items()))
        raise OracleError(
            f"{len(valid)} valid oracle answers, {config.threshold} needed"
            + (f" ({reasons})" if reasons else ""),
            code=OracleErrorCode.TOO_FEW_ORACLES,
        )

    def _note(self, index: int, node_id: bytes, code: str | None) -> None:
        self.answers[index] = OracleAnswer(
            index=index, node_id=node_id, ok=code is None, code=code, at_ms=self._clock.now_ms()
        )

    async def _ask(
        self, index: int, node_id: bytes, epoch: int, elements: list[bytes]
    ) -> tuple[int, oprf.ShareEvaluation | str]:
        """One oracle's evaluation, or the code of why there is none."""
        try:
            async with asyncio.timeout(ORACLE_TIMEOUT_S):
                if node_id == self._identity.node_id:
                    return index, await self._server.evaluate(
                        node_id, epoch=epoch, elements=elements
                    )
                peer = await self._peers.get(node_id)
                if peer is None or peer.state != "approved" or peer.url is None:
                    return index, "NOT_A_PEER"
                value = await self._client.call(
                    node_id,
                    peer.url,
                    "POST",
                    "/oprf/evaluate",
                    {"elements": elements, "epoch": epoch},
                )
        except TimeoutError:
            return index, "TIMEOUT"
        except PeerCallError as error:
            return index, error.code
        except (OracleError, protocol.ProtocolError) as error:
            return index, str(error.code)
        return index, _evaluation(value, index=index, count=len(elements))


def _checked(
    answer: oprf.ShareEvaluation, share_key: bytes, elements: list[bytes]
) -> oprf.ShareEvaluation | str:
    """The answer if its proof verifies against the oracle's share key, else the code
    (a bad oracle is identified and skipped, not trusted)."""
    try:
        oprf.verify_proof(share_key, elements, answer.evaluated_elements, answer.proof)
    except protocol.ProtocolError as error:
        return str(error.code)
    return answer


def _evaluation(value: Any, *, index: int, count: int) -> oprf.ShareEvaluation | str:
    if (
        type(value) is not dict
        or set(value) != {"elements", "index", "proof"}
        or value["index"] != index
        or type(value["elements"]) is not list
        or len(value["elements"]) != count
        or any(type(e) is not bytes for e in value["elements"])
        or type(value["proof"]) is not bytes
    ):
        return "BAD_RESPONSE"
    return oprf.ShareEvaluation(
        index=index, evaluated_elements=tuple(value["elements"]), proof=value["proof"]
    )


# -- transactions -----------------------------------------------------------------------


def _lookup_txn(
    conn: Connection,
    mac: bytes,
    epoch: int | None,
    weak: bool,
    sealed: bytes,
    now_ms: int,
    reason: str | None,
) -> PseudonymResult:
    if epoch is not None:
        ready = conn.execute(
            select(pseudonyms.c.value).where(pseudonyms.c.mac == mac, pseudonyms.c.epoch == epoch)
        ).scalar_one_or_none()
        if ready is not None:
            return PseudonymResult(state="ready", weak=weak, value=bytes(ready), epoch=epoch)
    pending = conn.execute(
        select(pseudonyms.c.last_error).where(pseudonyms.c.mac == mac, pseudonyms.c.epoch == 0)
    ).one_or_none()
    if pending is None:
        conn.execute(
            pseudonyms.insert().values(
                mac=mac,
                epoch=0,
                weak=weak,
                value=None,
                sealed_input=sealed,
                attempts=0,
                next_ms=now_ms,
                last_error=reason,
                created_ms=now_ms,
                updated_ms=now_ms,
            )
        )
        return PseudonymResult(state="pending", weak=weak, error=reason)
    return PseudonymResult(state="pending", weak=weak, error=pending.last_error or reason)


def _due_txn(conn: Connection, now_ms: int | None, limit: int) -> list[Any]:
    query = select(pseudonyms.c.mac, pseudonyms.c.sealed_input).where(pseudonyms.c.epoch == 0)
    if now_ms is not None:
        query = query.where(pseudonyms.c.next_ms <= now_ms)
    return list(conn.execute(query.order_by(pseudonyms.c.next_ms).limit(limit)))


def _retry_txn(conn: Connection, macs: list[bytes], code: str, now_ms: int, jitter: bytes) -> None:
    for mac in macs:
        where = and_(pseudonyms.c.mac == mac, pseudonyms.c.epoch == 0)
        attempts = conn.execute(select(pseudonyms.c.attempts).where(where)).scalar_one_or_none()
        if attempts is None:
            continue
        delay = min(RETRY_MIN_MS * 2 ** min(attempts, 20), RETRY_MAX_MS)
        delay = delay // 2 + delay * int.from_bytes(jitter, "big") // 2**17  # 50..100%
        conn.execute(
            update(pseudonyms)
            .where(where)
            .values(
                attempts=attempts + 1,
                next_ms=now_ms + delay,
                last_error=code[:64],
                updated_ms=now_ms,
            )
        )


def _ready_txn(
    conn: Connection, ready: list[tuple[bytes, bool, bytes]], epoch: int, now_ms: int
) -> None:
    for mac, weak, value in ready:
        conn.execute(delete(pseudonyms).where(pseudonyms.c.mac == mac, pseudonyms.c.epoch == 0))
        exists = conn.execute(
            select(pseudonyms.c.mac).where(pseudonyms.c.mac == mac, pseudonyms.c.epoch == epoch)
        ).one_or_none()
        if exists is None:
            conn.execute(
                pseudonyms.insert().values(
                    mac=mac,
                    epoch=epoch,
                    weak=weak,
                    value=value,
                    sealed_input=None,
                    attempts=0,
                    next_ms=0,
                    last_error=None,
                    created_ms=now_ms,
                    updated_ms=now_ms,
                )
            )


def _counts_txn(conn: Connection) -> dict[str, int]:
    def count(*where: Any) -> int:
        return int(
            conn.execute(select(func.count()).select_from(pseudonyms).where(*where)).scalar_one()
        )

    return {"ready": count(pseudonyms.c.epoch != 0), "pending": count(pseudonyms.c.epoch == 0)}
