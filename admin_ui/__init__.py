"""The admin web UI served by the node: pages in Arabic (default, right to left) and
English, rendered on the server (no JavaScript needed), through the node's route
table so that every page has an access rule (``node.web``).

The node finds :func:`setup` through the ``watan.ui`` entry point.
"""

from __future__ import annotations

from pathlib import Path

from aiohttp import web

from node.accounts import Account, Permission, allowed
from node.storage import StorageError
from node.web import PUBLIC, SERVICES, SIGNED_IN, RouteTable, Services

from . import (
    _auth,
    _distributions,
    _household_duplicates,
    _households,
    _imports,
    _messages,
    _oracles,
    _pages,
    _peers,
    _queue,
    _reports,
    _scoring,
)
from ._choices import ERRORS
from ._i18n import LOCALES, N_
from ._page import RENDERER, locale_of, render
from ._templating import Renderer

__all__ = ["setup"]

STATIC_DIR = Path(__file__).parent / "static"

_ERROR_TITLES = {
    403: N_("Not allowed"),
    404: N_("Page not found"),
    429: N_("Too many attempts"),
    503: N_("Temporarily unavailable"),
}


def _error_page(request: web.Request, status: int, code: str) -> web.Response:
    locale = locale_of(request)
    title = locale.gettext(_ERROR_TITLES.get(status, N_("Something went wrong")))
    message = locale.gettext(ERRORS.get(code, ERRORS["INTERNAL"]))
    try:
        return render(request, "error.html", title, status=status, message=message, code=code)
    except Exception:  # the page itself failed (e.g. the database is down): plain text
        return web.Response(text=f"{status} {code}", status=status)


async def _home(request: web.Request) -> web.Response:
    raise web.HTTPSeeOther("/dashboard")


def setup(table: RouteTable, svc: Services) -> None:
    """Add the UI's routes and static files to the node's route table."""
    add = table.add
    add("GET", "/", _home, access=PUBLIC)
    add("GET", "/lang/{code}", _auth.language, access=PUBLIC)
    add("GET", "/login", _auth.login_form, access=PUBLIC)
    add("POST", "/login", _auth.login, access=PUBLIC)
    add("POST", "/logout", _auth.logout, access=SIGNED_IN)
    add("GET", "/password", _auth.password_form, access=SIGNED_IN)
    add("POST", "/password", _auth.change_password, access=SIGNED_IN)
    add("GET", "/dashboard", _pages.dashboard, access=Permission.VIEW_DASHBOARD)
    add("GET", "/accounts", _pages.accounts_page, access=Permission.MANAGE_ACCOUNTS)
    add("POST", "/accounts", _pages.create_account, access=Permission.MANAGE_ACCOUNTS)
    add("GET", "/accounts/{id}", _pages.account_page, access=Permission.MANAGE_ACCOUNTS)
    add(
        "POST",
        "/accounts/{id}/{action}",
        _pages.account_action,
        access=Permission.MANAGE_ACCOUNTS,
    )
    add("GET", "/audit", _pages.audit_page, access=Permission.VIEW_AUDIT_LOG)
    add("GET", "/settings", _pages.settings_page, access=Permission.EDIT_SETTINGS)
    add("POST", "/settings", _pages.save_settings, access=Permission.EDIT_SETTINGS)
    peers = Permission.MANAGE_PEERS
    add("GET", "/peers", _peers.peers_page, access=peers)
    add("POST", "/peers/invites", _peers.create_invite, access=peers)
    add("POST", "/peers/block", _peers.block_by_id, access=peers)
    add("GET", "/peers/blocklist.csv", _peers.export_blocklist, access=peers)
    add("POST", "/peers/blocklist", _peers.import_blocklist, access=peers)
    add("POST", "/peers/{id}/{action}", _peers.peer_action, access=peers)
    add("GET", "/oracles", _oracles.oracles_page, access=peers)
    add("POST", "/oracles/quota", _oracles.set_quota, access=peers)
    message = Permission.MESSAGE  # "/messages/{thread}" last: it would match the others
    add("GET", "/messages", _messages.inbox, access=message)
    add("POST", "/messages", _messages.send, access=message)
    add("GET", "/messages/new", _messages.compose, access=message)
    add("GET", "/messages/events", _messages.events, access=message)
    add("GET", "/messages/{thread}", _messages.thread_page, access=message)
    add(
        "GET",
        "/messages/{thread}/attachments/{message}/{index}",
        _messages.attachment,
        access=message,
    )
    # Ata'a: households. Literal paths before "/households/{id}", which would match them.
    households, edit = Permission.VIEW_HOUSEHOLDS, Permission.EDIT_HOUSEHOLDS
    add("GET", "/households", _households.households_page, access=households)
    add("POST", "/households", _households.create_household, access=edit)
    add("POST", "/households/search", _households.search, access=households)
    add("GET", "/households/new", _households.new_form, access=edit)
    add("GET", "/households/duplicates", _household_duplicates.duplicates_page, access=households)
    add("POST", "/households/duplicates/merge", _household_duplicates.merge_duplicate, access=edit)
    add(
        "POST",
        "/households/duplicates/dismiss",
        _household_duplicates.dismiss_duplicate,
        access=edit,
    )
    add("GET", "/households/import", _imports.import_page, access=edit)
    add("POST", "/households/import", _imports.upload, access=edit)
    add("POST", "/households/import/check", _imports.check_mapping, access=edit)
    add("GET", "/households/import/{id}", _imports.import_status, access=edit)
    add("GET", "/households/{id}", _households.household_page, access=households)
    add("GET", "/households/{id}/edit", _households.edit_form, access=edit)
    add("POST", "/households/{id}/edit", _households.update_household, access=edit)
    add("POST", "/households/{id}/archive", _households.archive, access=edit)
    add("GET", "/scoring", _scoring.scoring_page, access=households)
    add("POST", "/scoring", _scoring.save_model, access=Permission.EDIT_SCORING)
    add("GET", "/settings/data-keys", _scoring.data_keys_page, access=Permission.EDIT_SETTINGS)
    add(
        "POST",
        "/settings/data-keys/rotate",
        _scoring.rotate_keys,
        access=Permission.EDIT_SETTINGS,
    )
    table.on_app(_imports.install)  # the uploads held between import steps
    # Ata'a: queue and distributions
    queue, programs = Permission.VIEW_HOUSEHOLDS, Permission.MANAGE_PROGRAMS
    deliveries = Permission.RECORD_DELIVERIES
    add("GET", "/queue", _queue.queue_page, access=queue)
    add("POST", "/queue/settings", _queue.save_settings, access=Permission.EDIT_SCORING)
    add("GET", "/distributions", _distributions.distributions_page, access=queue)
    add("POST", "/distributions", _distributions.create, access=programs)
    add("GET", "/distributions/{id}", _distributions.distribution_page, access=queue)
    add("POST", "/distributions/{id}/pick", _distributions.pick, access=programs)
    add("POST", "/distributions/{id}/include", _distributions.include, access=programs)
    add("POST", "/distributions/{id}/exclude", _distributions.exclude, access=programs)
    add("POST", "/distributions/{id}/close", _distributions.close, access=programs)
    add("POST", "/distributions/{id}/deliver", _distributions.deliver, access=deliveries)
    add("POST", "/distributions/{id}/void", _distributions.void, access=deliveries)
    add(
        "POST",
        "/distributions/{id}/override",
        _distributions.override,
        access=Permission.OVERRIDE_DUPLICATE,
    )
    add("GET", "/reports", _reports.reports_page, access=Permission.VIEW_REPORTS)
    add("GET", "/reports.csv", _reports.report_csv, access=Permission.VIEW_REPORTS)
    table.add_static("/static", str(STATIC_DIR))
    svc.error_page = _error_page
    table.on_app(_install)
    table.on_app(_messages.install)  # after _install: it needs the renderer


def _may(user: Account | None, permission: str) -> bool:
    """Whether ``user`` may use pages that need ``permission`` (templates' ``may``)."""
    return (
        user is not None
        and not user.must_change_password
        and allowed(user.role, Permission(permission))
    )


def _install(app: web.Application) -> None:
    renderer = Renderer()
    for code in LOCALES:
        renderer.environment(code).globals["may"] = _may
    app[RENDERER] = renderer

    async def read_profile(app: web.Application) -> None:
        try:
            await app[SERVICES].profiles.current()  # fills profiles.latest for headers
        except StorageError:  # the database is down at start: pages show no name yet
            pass

    app.on_startup.append(read_profile)
