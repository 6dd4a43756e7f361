"""What request handlers reach: the node's services, and the signed-in account."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

from aiohttp import web

from node.accounts import Account, AccountService, RandomBytes, Session
from node.audit import AuditLog
from node.clock import Clock
from node.config import NodeConfig
from node.identity import Identity
from node.profile import ProfileService
from node.storage import Database, FeedStore

if TYPE_CHECKING:
    from node.ataa import Ataa
    from node.federation import FederationService, MessageService

__all__ = [
    "SERVICES",
    "SESSION",
    "Services",
    "current_account",
    "current_session",
    "services",
]


@dataclass(slots=True, kw_only=True)
class Services:
    """The node's services, shared by every handler (one instance per node).

    Attributes:
        trust_proxy: honour ``X-Forwarded-Proto`` from a TLS-terminating reverse proxy
            (only when the node listens where nothing but the proxy can reach it).
        peer_count: how many approved peers the node has (federation fills it in).
    """

    identity: Identity
    config: NodeConfig
    db: Database
    feeds: FeedStore
    accounts: AccountService
    audit: AuditLog
    profiles: ProfileService
    clock: Clock
    random_bytes: RandomBytes
    started_ms: int
    trust_proxy: bool = False
    peer_count: Callable[[], int] = lambda: 0
    #: Called with an account's username after it changed its own password.
    on_password_changed: Callable[[str], None] = lambda _username: None
    #: Peers, invites, blocklist and replication (None on a node built without them).
    federation: FederationService | None = None
    #: Org-to-org messages: outbox, inbox, relay (None without federation).
    messages: MessageService | None = None
    #: Ata'a: households, scoring, the queue, distributions (None on a node built
    #: without it).
    ataa: Ataa | None = None
    #: Set by the UI package: renders an error page for an HTML route.
    error_page: Callable[[web.Request, int, str], web.Response] | None = None

    def now_ms(self) -> int:
        return self.clock.now_ms()


SERVICES: Final = web.AppKey("watan_services", Services)
#: The request's live session, or None (set by the middleware).
SESSION: Final = web.RequestKey("watan_session", Session)


def services(request: web.Request) -> Services:
    """The node's services."""
    return request.app[SERVICES]


def current_session(request: web.Request) -> Session | None:
    """The request's live session, or None when nobody is signed in."""
    session: Session | None = request.get(SESSION)
    return session


def current_account(request: web.Request) -> Account:
    """The signed-in account (routes that are not PUBLIC always have one).

    Raises:
        HTTPUnauthorized: nobody is signed in (a PUBLIC route asked).
    """
    session = current_session(request)
    if session is None:
        raise web.HTTPUnauthorized()
    return session.account
