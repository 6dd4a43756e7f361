"""Settings for the whole suite when it runs in parallel (pytest-xdist).

``tools/check.sh`` runs ``pytest -n 2 --dist loadgroup``: every test is a unit of work
of its own, handed to whichever worker is free, except the groups below, each run whole
and in order on one worker, never at the same time as another test of its group (the
groups are chosen by path, by :func:`pytest_xdist_make_scheduler`):

* ``ui``: the browser tests share one node and one Chromium per worker session (and a
  federated node per module); split, each worker would start its own.
* ``ui-flow``: the whole Ata'a flow runs on its own ``watan demo`` (three nodes) in
  both languages; kept together, apart from ``ui`` so that the two run side by side.
* ``netns``: the tests that build network namespaces, bridges and veth pairs with
  ``ip netns`` (``tests/integration/netns.py``). Their names and networks are unique per
  run, but two workers creating the first namespaces on a fresh machine would race to
  set up the ``/run/netns`` mount.

Every other resource is per test: PostgreSQL databases (random names), ports (free ones
from the kernel, or :func:`restartable_port` for a process that restarts on its port),
directories (``tmp_path``), network namespaces (random names). A plain ``pytest``
(no ``-n``) ignores the groups.
"""

from __future__ import annotations

import os
import random
import re
import socket
from typing import Any

import pytest
from hypothesis import settings

#: (group, test path prefix relative to the repository root)
GROUPS = (
    # The whole-flow test runs its own demo federation and browser: a group of its
    # own, so that it runs beside the other browser tests, not after them.
    ("ui-flow", "tests/ui/test_ataa_flow.py"),
    ("ui", "tests/ui/"),
    ("netns", "tests/integration/test_netns_"),
)

#: Tests that take tens of seconds alone (measured with ``--durations``), by path prefix:
#: collected first, so that xdist hands them out early. Started last, one of them would
#: keep a worker busy while the other idles at the end of the run. (xdist then orders
#: the work by group size, so the groups above still come before these.)
SLOW_FIRST = (
    "tests/integration/test_crash.py",
    "tests/integration/test_api_fuzz.py",
    "tests/tools/test_soak.py",
    "tests/tools/test_demo.py",
    "tests/tools/test_bench",
    "tests/integration/test_outages.py",
    "tests/integration/test_fed_fuzz.py",
    "tests/node/test_web.py::test_every_route_for_every_role",
    "tests/node/test_scoring.py::test_generated_models",
    "tests/tools/test_fuzz.py",
    "tests/tools/test_tools.py::test_bench_oprf",
    "tests/integration/test_multiprocess.py",
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Move the :data:`SLOW_FIRST` tests to the front, keeping every other order."""

    def slow(item: pytest.Item) -> bool:
        return item.nodeid.startswith(SLOW_FIRST)

    items[:] = [item for item in items if slow(item)] + [item for item in items if not slow(item)]


# Hypothesis's default deadline (200 ms per example) is a timing budget, not a check of
# the code: with two workers on two cores one example that waits for a core fails a
# correct test as "Flaky". Its built-in CI profile drops it too; this inherits the rest
# from whichever profile is loaded (the CI one under CI=true).
settings.register_profile("watan", deadline=None)
settings.load_profile("watan")


@pytest.hookimpl(optionalhook=True)  # a hook of pytest-xdist: no-op without it
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """``--dist loadgroup`` with the groups of :data:`GROUPS`, chosen by path in the
    controller. (xdist reads ``xdist_group`` marks by appending ``@group`` to node ids in
    the workers, which pytest 9.2's structured node ids silently ignore:
    pytest-dev/pytest-xdist#1386. Marks still count once xdist fixes that.)"""
    if config.getvalue("dist") != "loadgroup":
        return None
    from xdist.scheduler import LoadGroupScheduling  # type: ignore[import-untyped]

    class PathGroupScheduling(LoadGroupScheduling):  # type: ignore[misc]  # xdist: untyped
        def _split_scope(self, nodeid: str) -> str:
            for group, prefix in GROUPS:
                if nodeid.startswith(prefix):
                    return group
            return str(super()._split_scope(nodeid))

    return PathGroupScheduling(config, log)


def worker_port_block(size: int = 500) -> range:
    """Ports for this xdist worker alone (``gw0``: 10500-10999, ``gw1``: 11000-11499, ...;
    10000-10499 without xdist), below the ephemeral range (32768-60999 on Linux) that
    ``bind(("", 0))`` and outgoing connections draw from."""
    found = re.fullmatch(r"gw(\d+)", os.environ.get("PYTEST_XDIST_WORKER", ""))
    index = int(found.group(1)) + 1 if found else 0
    start = 10000 + index * size
    if start + size > 32768:
        raise RuntimeError(f"no port block for xdist worker {index - 1}: too many workers")
    return range(start, start + size)


_handed_out: set[int] = set()


def restartable_port() -> int:
    """A free port from :func:`worker_port_block`, for a process a test stops and starts
    again on the same port. A port from ``bind(("", 0))`` is free only until the process
    stops: while it is down another worker may draw the same port (for a node of its own,
    or as the source port of a connection) and still hold it at the restart. No other
    worker draws from this block; the random pick within it keeps two test runs on one
    machine apart as well as random ephemeral ports do."""
    block = worker_port_block()
    for port in random.sample(block, len(block)):
        if port in _handed_out:
            continue
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
        _handed_out.add(port)
        return port
    raise RuntimeError(f"no free port left in {block}")
