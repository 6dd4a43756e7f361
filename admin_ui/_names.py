"""Organisation names of nodes, as the pages show them: from the newest
``node.profile/1`` of the node's feed, in the UI's language if it has one, else the
node's fingerprint."""

from __future__ import annotations

import protocol
from node.federation import FederationService
from node.storage import stored_content

from ._i18n import Locale

__all__ = ["Names", "profile_name"]


def profile_name(wire: bytes | None, locale: Locale) -> str | None:
    """An organisation's name from the wire of its newest ``node.profile/1`` entry (a
    stored entry, hence verified), in the UI's language if it has one."""
    if wire is None:
        return None
    try:
        content = stored_content(wire)
    except protocol.ProtocolError:
        return None
    order = ("name_ar", "name_en") if locale.code == "ar" else ("name_en", "name_ar")
    for key in order:
        name = content.get(key)
        if type(name) is str and name.strip():
            return name
    return None


class Names:
    """Organisation names of authors, read once per page."""

    def __init__(self, fed: FederationService, locale: Locale) -> None:
        self._fed = fed
        self._locale = locale
        self._known: dict[bytes, str | None] = {}

    async def of(self, author: bytes) -> str | None:
        """The organisation's name, or None if its profile is not held here."""
        if author not in self._known:
            wire = await self._fed.feeds.latest_of_kind(author, protocol.Profile.KIND)
            self._known[author] = profile_name(wire, self._locale)
        return self._known[author]

    async def label(self, author: bytes) -> str:
        """The name if known, else the fingerprint (in the locale's digits)."""
        name = await self.of(author)
        return name or self._locale.digits(protocol.fingerprint(author))
