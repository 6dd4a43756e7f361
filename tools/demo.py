"""``watan demo``: three NGOs' nodes on this machine, federated, with synthetic
households and past deliveries, for trying Ata'a in a browser.

    watan demo [--dir DIR] [--base-port P] [--households N]

Starts "منظمة الأمل / Al-Amal", "منظمة الرحمة / Al-Rahma" and "منظمة النور / Al-Noor"
in ``DIR/ngo-a``, ``ngo-b``, ``ngo-c`` (default ``./watan-demo``), serving the full UI
on 127.0.0.1 ports P, P+1, P+2 (default 8470), in one process: all approved peers of
each other, each an oracle of a 2-of-3 pseudonym key (Al-Amal founded the federation
and dealt it), with every node's background work running as under ``watan up``.

The first run seeds each node: staff accounts with known passwords (printed), N
synthetic households (``tools._synthetic``) from overlapping serial ranges, so that
some households are registered at two NGOs, exactly as real ones are; their
pseudonyms (computed by the oracles); and past deliveries, some of them to households
another NGO also served, so queues already explain "received ... from ...". A later
run with the same DIR reuses the nodes and seeds nothing.

DEMO ONLY: the passwords are printed and the same on every demo; the people are
invented (National Card numbers ``9…``, a series no real card uses).

Runs until Ctrl-C or SIGTERM, then stops every node and exits 0.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import json
import logging
import os
import secrets
import signal
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, TextIO

from node.accounts import FIRST_ADMIN, Account, AccountError, AccountErrorCode, Role
from node.ataa import AllocationError, DistributionPlan, HouseholdError, HouseholdErrorCode
from node.clock import Clock, SystemClock
from node.daemon import FIRST_PASSWORD_FILE, NodeError, OrgDetails
from node.logs import configure_logging
from node.web import load_ui
from protocol import oprf

from . import _synthetic
from ._localfed import (
    CHEAP_HASHER,
    LocalNode,
    converge,
    local_federation,
    start_background,
    stop_background,
)

__all__ = [
    "DEFAULT_BASE_PORT",
    "DEFAULT_DIR",
    "DEFAULT_HOUSEHOLDS",
    "NGOS",
    "STAFF",
    "Demo",
    "DemoNgo",
    "Staff",
    "add_parser",
    "demo_federation",
    "household_id",
    "main",
    "run",
]

DEFAULT_DIR: Final = Path("watan-demo")
DEFAULT_BASE_PORT: Final = 8470
DEFAULT_HOUSEHOLDS: Final = 300
#: Fewer households and the overlaps (a third of each range) get too small to show.
MIN_HOUSEHOLDS: Final = 30
MAX_HOUSEHOLDS: Final = 5_000
#: Written in DIR once seeding is complete: its presence means "seeded, do not again".
MARKER: Final = "demo.json"
#: Seeding waits this long for the oracles to compute every pseudonym (about 400 a
#: second on one core in batches: a few seconds for the default 900).
PSEUDONYM_DEADLINE_S: Final = 180.0
READY: Final = "watan demo: ready"


@dataclass(frozen=True, slots=True, kw_only=True)
class DemoNgo:
    """One demo NGO: its directory, organisation, and the aid it gave in the past.

    ``days_ago``: when its past distribution was delivered (all within the queue's
    30-day window, so that other NGOs' queues count it).
    """

    dir: str
    org: OrgDetails
    title: str
    program: str
    category: str
    unit: str
    value_iqd: int
    days_ago: int

    @property
    def label(self) -> str:
        return f"{self.org.name_ar} / {self.org.name_en}"


NGOS: Final = (
    DemoNgo(
        dir="ngo-a",
        org=OrgDetails(
            name_ar="منظمة الأمل",
            name_en="Al-Amal",
            registration="DEMO-1001",
            governorate="IQG08",  # Baghdad
        ),
        title="سلال غذائية — Food baskets",
        program="amal.food.2026",
        category="food",
        unit="basket",
        value_iqd=75_000,
        days_ago=12,
    ),
    DemoNgo(
        dir="ngo-b",
        org=OrgDetails(
            name_ar="منظمة الرحمة",
            name_en="Al-Rahma",
            registration="DEMO-1002",
            governorate="IQG15",  # Nineveh
        ),
        title="منحة نقدية — Cash grant",
        program="rahma.cash.2026",
        category="cash",
        unit="transfer",
        value_iqd=150_000,
        days_ago=7,
    ),
    DemoNgo(
        dir="ngo-c",
        org=OrgDetails(
            name_ar="منظمة النور",
            name_en="Al-Noor",
            registration="DEMO-1003",
            governorate="IQG02",  # Basra
        ),
        title="حقائب شتوية — Winter kits",
        program="noor.winter.2026",
        category="winterization",
        unit="kit",
        value_iqd=60_000,
        days_ago=3,
    ),
)


@dataclass(frozen=True, slots=True, kw_only=True)
class Staff:
    username: str
    display_name: str
    role: Role
    #: DEMO ONLY: known to everyone who reads this file.
    password: str
    duties: str


STAFF: Final = (
    Staff(
        username=FIRST_ADMIN,
        display_name="مدير النظام",
        role=Role.ADMIN,
        password="demo-admin-2026",
        duties="accounts, peers, oracles, settings, audit log",
    ),
    Staff(
        username="coordinator",
        display_name="منسقة البرامج",
        role=Role.COORDINATOR,
        password="demo-coord-2026",
        duties="distributions, queue settings, messages, reports",
    ),
    Staff(
        username="caseworker",
        display_name="باحث اجتماعي",
        role=Role.CASE_WORKER,
        password="demo-case-2026",
        duties="households, deliveries",
    ),
    Staff(
        username="auditor",
        display_name="مدققة",
        role=Role.AUDITOR,
        password="demo-audit-2026",
        duties="reports and the audit log, read-only",
    ),
)


def first_serials(count: int) -> list[int]:
    """Each NGO's first household serial: ranges of ``count`` that overlap by a third
    (300: A 0..299, B 200..499, C 400..699)."""
    step = count - count // 3
    return [index * step for index in range(len(NGOS))]


@dataclass
class Demo:
    """The running demo: its nodes (in :data:`NGOS` order) and what was seeded."""

    nodes: list[LocalNode]
    count: int
    seeded_now: bool

    def serials(self, index: int) -> range:
        first = first_serials(self.count)[index]
        return range(first, first + self.count)


async def household_id(local: LocalNode, serial: int) -> int:
    """The id, at ``local``, of the household with synthetic serial ``serial``
    (looked up by its National Card number, as staff would search).

    Raises:
        LookupError: not registered there.
    """
    found = await local.node.ataa.households.search(_synthetic.national_id(serial), limit=1)
    if not found:
        raise LookupError(f"serial {serial} is not registered at {local.name}")
    return found[0].id


# -- seeding ------------------------------------------------------------------------------


async def _admin_password(local: LocalNode, clock: Clock) -> str:
    """The first admin's current password: the one-time one saved at creation, or a
    new one-time one (``watan accounts recover``) if that file is gone."""
    saved = local.node.data_dir / FIRST_PASSWORD_FILE
    if saved.exists():
        lines = saved.read_text(encoding="utf-8").splitlines()
        if len(lines) >= 2:
            return lines[1].strip()
    return await local.node.accounts.recover(
        FIRST_ADMIN, random_bytes=secrets.token_bytes, now_ms=clock.now_ms()
    )


async def _seed_staff(local: LocalNode, clock: Clock) -> dict[Role, int]:
    """Every :data:`STAFF` account with its demo password, no change forced."""
    accounts = local.node.accounts
    admin = await accounts.store.by_username(FIRST_ADMIN)
    assert admin is not None
    if admin.must_change_password:
        current = await _admin_password(local, clock)
        admin = await accounts.change_password(
            admin, current, STAFF[0].password, now_ms=clock.now_ms()
        )
        local.node.forget_first_password(FIRST_ADMIN)
    ids = {Role.ADMIN: admin.id}
    for staff in STAFF[1:]:
        ids[staff.role] = (await _staff_account(local, admin, staff, clock)).id
    return ids


async def _staff_account(local: LocalNode, admin: Account, staff: Staff, clock: Clock) -> Account:
    accounts = local.node.accounts
    try:
        account, one_time = await accounts.create_account(
            admin,
            username=staff.username,
            display_name=staff.display_name,
            role=staff.role,
            random_bytes=secrets.token_bytes,
            now_ms=clock.now_ms(),
        )
    except AccountError as error:  # made by a run that stopped part way
        if error.code is not AccountErrorCode.CONFLICT:
            raise
        existing = await accounts.store.by_username(staff.username)
        assert existing is not None
        one_time = await accounts.reset_password(
            admin, existing.id, random_bytes=secrets.token_bytes, now_ms=clock.now_ms()
        )
        account = existing
    return await accounts.change_password(account, one_time, staff.password, now_ms=clock.now_ms())


async def _seed_households(local: LocalNode, serials: range, actor: int) -> None:
    households = local.node.ataa.households
    for serial in serials:
        record = next(_synthetic.households(0, 1, first_serial=serial))
        try:
            await households.create(record, actor=actor)
        except HouseholdError as error:  # registered by a run that stopped part way
            if error.code is not HouseholdErrorCode.DUPLICATE_NATIONAL_ID:
                raise


async def resolve_pseudonyms(nodes: Sequence[LocalNode], *, deadline_s: float) -> None:
    """Compute every pending pseudonym of every node now, in full batches (the
    oracles are the nodes themselves, so they are up).

    Raises:
        NodeError: some still pending after ``deadline_s`` (an oracle unreachable).
    """
    loop = asyncio.get_running_loop()
    end = loop.time() + deadline_s
    for local in nodes:
        service = local.node.federation.pseudonyms
        assert service is not None
        while (await service.counts())["pending"]:
            if loop.time() > end:
                raise NodeError(f"{local.name}: pseudonyms still pending; are the oracles up?")
            await service.run_pending(force=True)


def _shared(count: int) -> list[list[int]]:
    """The serials each NGO includes in its past distribution by hand: households it
    shares with a neighbour, partly the same ones that neighbour served too (300: A
    200..214; B 205..219 and 400..409; C 405..419)."""
    _a, b, c = first_serials(count)  # A and B share b.., B and C share c..
    k = max(3, count // 20)
    return [
        list(range(b, b + k)),
        list(range(b + k // 3, b + k // 3 + k)) + list(range(c, c + 2 * k // 3)),
        list(range(c + k // 3, c + k // 3 + k)),
    ]


async def _past_distribution(
    local: LocalNode, ngo: DemoNgo, serials: list[int], staff: dict[Role, int]
) -> None:
    """One past distribution: the shared households included by hand, the rest picked
    from the top of the queue, all delivered ``ngo.days_ago`` days ago."""
    service = local.node.ataa.distributions
    existing = [d for d in await service.list_all() if d.plan.title == ngo.title]
    if existing:
        distribution = existing[0]
    else:
        plan = DistributionPlan(
            title=ngo.title,
            program=ngo.program,
            category=ngo.category,
            unit=ngo.unit,
            quantity=1,
            value_iqd=ngo.value_iqd,
            target_count=2 * len(serials),
        )
        distribution = await service.create(plan, actor=staff[Role.COORDINATOR])
    for serial in serials:
        with suppress(AllocationError):  # delivered by a run that stopped part way
            await service.include(
                distribution.id,
                await household_id(local, serial),
                "حالة مشتركة مع منظمة أخرى (عرض تجريبي)",
                actor=staff[Role.COORDINATOR],
            )
    await service.pick(distribution.id, actor=staff[Role.COORDINATOR])
    day = local.node.ataa.queue.today() - datetime.timedelta(days=ngo.days_ago)
    for row in await service.households(distribution.id, state="planned"):
        await service.deliver(
            distribution.id, row.household_id, actor=staff[Role.CASE_WORKER], date=day.isoformat()
        )


async def seed(nodes: Sequence[LocalNode], *, count: int, clock: Clock) -> None:
    """Staff, households, pseudonyms, past deliveries; then replicate them all.

    Runs before the nodes' background work starts: households registered meanwhile
    would each wake the pseudonym worker for a batch of one, and its writes would
    compete with seeding's for each database's single write lock."""
    staff = [await _seed_staff(local, clock) for local in nodes]
    # three databases: their writes overlap (SQLite works outside the GIL)
    await asyncio.gather(
        *(
            _seed_households(local, range(first, first + count), ids[Role.CASE_WORKER])
            for local, first, ids in zip(nodes, first_serials(count), staff, strict=True)
        )
    )
    await resolve_pseudonyms(nodes, deadline_s=PSEUDONYM_DEADLINE_S)
    for local, ngo, serials, ids in zip(nodes, NGOS, _shared(count), staff, strict=True):
        await _past_distribution(local, ngo, serials, ids)
    await converge(nodes)


@asynccontextmanager
async def demo_federation(
    base: Path,
    *,
    clock: Clock,
    base_port: int = DEFAULT_BASE_PORT,
    count: int = DEFAULT_HOUSEHOLDS,
    ports: Sequence[int] | None = None,
) -> AsyncIterator[Demo]:
    """The demo's three nodes, running and seeded (once: a marker in ``base``).

    Args:
        ports: the nodes' ports (default ``base_port`` and the next two; tests pass
            zeros for any free ones).

    Raises:
        NodeError: a port in use, a demo already running in ``base``, seeding that
            could not finish (oracles unreachable).
    """
    base.mkdir(mode=0o700, parents=True, exist_ok=True)
    marker = base / MARKER
    if marker.exists():
        count = int(json.loads(marker.read_text(encoding="utf-8"))["households"])
    async with local_federation(
        base,
        [ngo.dir for ngo in NGOS],
        clock=clock,
        orgs=[ngo.org for ngo in NGOS],
        ports=ports if ports is not None else [base_port + i for i in range(len(NGOS))],
        ui=load_ui(),
        lock=True,
        # the demo's passwords are public: hashing them at production cost protects
        # nothing and would add seconds per account
        hasher=CHEAP_HASHER,
    ) as nodes:
        seeded_now = not marker.exists()
        if seeded_now:
            await seed(nodes, count=count, clock=clock)
            marker.write_text(
                json.dumps({"households": count, "seeded_ms": clock.now_ms()}) + "\n",
                encoding="utf-8",
            )
        try:
            await start_background(nodes)
            yield Demo(nodes, count, seeded_now)
        finally:
            await stop_background(nodes)


# -- the command ---------------------------------------------------------------------------


def _print_banner(demo: Demo, base: Path, out: TextIO) -> None:
    line = "=" * 78
    print(line, file=out)
    print("Watan demo: three NGO nodes on this machine, one federation", file=out)
    print("DEMO ONLY: invented households, known passwords. Never enter real data.", file=out)
    print(line, file=out)
    for local, ngo in zip(demo.nodes, NGOS, strict=True):
        print(f"  {ngo.label:<28} {local.base_url:<24} {base / ngo.dir}", file=out)
    print("", file=out)
    print("Sign in at any of them (the same demo accounts on all three):", file=out)
    for staff in STAFF:
        print(f"  {staff.username:<12} {staff.password:<17} {staff.duties}", file=out)
    a, b, c = first_serials(demo.count)
    nid = _synthetic.national_id
    names = [ngo.org.name_en for ngo in NGOS]
    print("", file=out)
    print(
        f"Households: {demo.count} per NGO. {names[0]} and {names[1]} both registered "
        f"National Cards {nid(b)}..{nid(a + demo.count - 1)}; {names[1]} and {names[2]} "
        f"both {nid(c)}..{nid(b + demo.count - 1)}.",
        file=out,
    )
    print(
        "Each NGO delivered aid in the past, some to shared households: their queues say "
        "what others gave. A delivery at one NGO re-ranks the others' queues within seconds.",
        file=out,
    )
    print(line, file=out)
    state = "seeded now" if demo.seeded_now else "already seeded"
    print(f"{READY} ({len(demo.nodes)} nodes, {state}); Ctrl-C stops them all", file=out)
    out.flush()


async def run(args: argparse.Namespace) -> int:
    """``watan demo``: start, seed once, print, serve until SIGINT or SIGTERM."""
    os.umask(0o077)
    configure_logging(os.environ.get("WATAN_LOG_FORMAT", "text"), level=logging.WARNING)
    if not oprf.available():
        raise NodeError(
            "the system libsodium (>= 1.0.18, with ristretto255) is missing: "
            "install it (Debian: apt-get install libsodium23) and start again"
        )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    print(f"watan demo: starting in {args.dir} (first run: seeding takes a minute)", flush=True)
    started = asyncio.create_task(_serve(args, stop))
    stopped = asyncio.create_task(stop.wait())
    await asyncio.wait({started, stopped}, return_when=asyncio.FIRST_COMPLETED)
    if not started.done():  # stopped while starting: stop at once
        started.cancel()
    stopped.cancel()
    with suppress(asyncio.CancelledError):
        await started
    print("watan demo: stopped", file=sys.stderr, flush=True)
    return 0


async def _serve(args: argparse.Namespace, stop: asyncio.Event) -> None:
    async with demo_federation(
        args.dir, clock=SystemClock(), base_port=args.base_port, count=args.households
    ) as demo:
        _print_banner(demo, args.dir, sys.stdout)
        await stop.wait()
        print("watan demo: shutting down", file=sys.stderr, flush=True)


def _base_port(text: str) -> int:
    try:
        port = int(text)
    except ValueError:
        port = 0
    if not 1 <= port <= 65535 - len(NGOS) + 1:
        raise argparse.ArgumentTypeError(f"{text!r}: ports P..P+2 must be 1-65535")
    return port


def _households(text: str) -> int:
    try:
        count = int(text)
    except ValueError:
        count = 0
    if not MIN_HOUSEHOLDS <= count <= MAX_HOUSEHOLDS:
        raise argparse.ArgumentTypeError(f"{MIN_HOUSEHOLDS}..{MAX_HOUSEHOLDS} households")
    return count


Handler = Callable[[argparse.Namespace], Awaitable[int]]


def add_parser(commands: Any) -> None:
    """Add ``demo`` to the ``watan`` command (the ``watan.commands`` entry point)."""
    demo = commands.add_parser(
        "demo",
        help="three federated NGO nodes with synthetic data, on this machine (DEMO ONLY)",
        description="Three federated NGO nodes on this machine, with synthetic households "
        "and past deliveries, for trying Ata'a in a browser. DEMO ONLY: known passwords.",
    )
    demo.add_argument(
        "--dir",
        type=Path,
        default=DEFAULT_DIR,
        metavar="DIR",
        help=f"where the nodes live (default ./{DEFAULT_DIR}); reused by later runs",
    )
    demo.add_argument(
        "--base-port",
        type=_base_port,
        default=DEFAULT_BASE_PORT,
        metavar="P",
        help=f"ports P, P+1, P+2 on 127.0.0.1 (default {DEFAULT_BASE_PORT})",
    )
    demo.add_argument(
        "--households",
        type=_households,
        default=DEFAULT_HOUSEHOLDS,
        metavar="N",
        help=f"households per NGO on the first run (default {DEFAULT_HOUSEHOLDS})",
    )
    handler: Handler = run
    demo.set_defaults(handler=handler)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m tools.demo`` (the same as ``watan demo``)."""
    parser = argparse.ArgumentParser(prog="watan")
    add_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["demo", *(sys.argv[1:] if argv is None else argv)])
    try:
        return asyncio.run(run(args))
    except NodeError as error:
        print(f"watan: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
