"""Messages over signed node-to-node HTTP: the :class:`Transport` the message
service delivers through (``POST /fed/v1/messages``)."""

from __future__ import annotations

from typing import Any, Final

from ._messages import Ack, DeliveryFailed
from ._runtime import FederationService
from ._transport import MAX_FED_BODY, PeerCallError

__all__ = ["PeerTransport"]

_STATUSES: Final = frozenset({"delivered", "duplicate", "relayed", "rejected", "retry"})
#: Room left in a request body for the framing around the envelopes.
_FRAMING: Final = 4096


class PeerTransport:
    """Posts envelopes to an approved peer, in requests under the body limit."""

    def __init__(self, federation: FederationService) -> None:
        self._federation = federation

    async def post_envelopes(self, peer: bytes, envelopes: list[bytes]) -> list[Ack]:
        record = await self._federation.peers.get(peer)
        if record is None or record.state != "approved" or record.url is None:
            raise DeliveryFailed("NOT_A_PEER", "not an approved peer with an address")
        acks: list[Ack] = []
        for batch in _batches(envelopes):
            try:
                value = await self._federation.client.call(
                    peer, record.url, "POST", "/messages", {"envelopes": batch}
                )
            except PeerCallError as error:
                raise DeliveryFailed(error.code, error.message) from None
            acks.extend(_acks(value, batch))
        return acks


def _batches(envelopes: list[bytes]) -> list[list[bytes]]:
    batches: list[list[bytes]] = []
    current: list[bytes] = []
    size = 0
    for envelope in envelopes:
        if current and (size + len(envelope) > MAX_FED_BODY - _FRAMING or len(current) >= 64):
            batches.append(current)
            current, size = [], 0
        current.append(envelope)
        size += len(envelope) + 8
    if current:
        batches.append(current)
    return batches


def _acks(value: Any, batch: list[bytes]) -> list[Ack]:
    items = value.get("acks") if type(value) is dict else None
    if type(items) is not list or len(items) != len(batch):
        raise DeliveryFailed("BAD_RESPONSE", "acks do not match the envelopes sent")
    acks = []
    for item in items:
        if (
            type(item) is not list
            or len(item) != 3
            or type(item[0]) is not bytes
            or len(item[0]) != 32
            or item[1] not in _STATUSES
            or not (item[2] is None or (type(item[2]) is str and len(item[2]) <= 64))
        ):
            raise DeliveryFailed("BAD_RESPONSE", "malformed ack")
        acks.append(Ack(id=item[0], status=item[1], code=item[2]))
    return acks
