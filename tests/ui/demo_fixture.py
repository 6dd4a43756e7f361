"""``watan demo`` in a subprocess, for browser tests of the whole federation: three NGO
nodes on 127.0.0.1, peered, each an oracle of the pseudonym key (tools/demo.py).

The demo's printed banner is the only interface used: each NGO's name and URL, the
staff logins and the "ready" line. It is parsed tolerantly (any line with a URL is a
node, in order; any indented ``username password`` line naming a known role is a
login), so that rewording the banner does not break the tests, and the whole output
is put in every failure message.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from .conftest import REPO

__all__ = ["Demo", "DemoNgo", "free_base_port", "start_demo", "stop_demo"]

#: First run: three nodes created, keys dealt, N households seeded and their
#: pseudonyms computed by the oracles (about 25 s for 30 each on one core).
READY_DEADLINE_S = 120.0
#: SIGINT stops the background work and the three servers.
STOP_DEADLINE_S = 30.0
#: Households per NGO: the demo's least (tools.demo.MIN_HOUSEHOLDS), to seed fast.
HOUSEHOLDS = 30

_URL = re.compile(r"https?://127\.0\.0\.1:\d+")
_LOGIN = re.compile(r"^\s+(?P<user>admin|coordinator|caseworker|case-worker|auditor)\s+(?P<pw>\S+)")
_READY = re.compile(r"^watan demo:.*\bready\b", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class DemoNgo:
    """One NGO of the demo as its banner line shows it."""

    url: str
    name_ar: str
    name_en: str

    def name(self, lang: str) -> str:
        """Its name as the UI in ``lang`` shows it (the profile's name in that
        language, admin_ui/_names.py)."""
        return self.name_ar if lang == "ar" else self.name_en


@dataclass
class Demo:
    """The running ``watan demo`` process."""

    process: subprocess.Popen[bytes]
    log: Path
    ngos: list[DemoNgo] = field(default_factory=list)
    #: username -> password, as printed
    logins: dict[str, str] = field(default_factory=dict)

    def output(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace")

    def login(self, role: str) -> tuple[str, str]:
        """``(username, password)`` of the demo account of ``role`` (``coordinator``,
        ``case_worker``, ...)."""
        wanted = role.replace("_", "")
        for user, password in self.logins.items():
            if user.replace("-", "") == wanted:
                return user, password
        raise AssertionError(f"no {role} login in the demo's banner:\n{self.output()}")


def _port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_base_port(count: int = 3) -> int:
    """A port P with P..P+count-1 free now (a small race with other programs, which
    the demo reports as an error, not a hang)."""
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind(("127.0.0.1", 0))
            base = int(sock.getsockname()[1])
        if base + count <= 65535 and all(_port_free(base + i) for i in range(count)):
            return base
    raise AssertionError(f"no {count} consecutive free ports found")


def _parse(demo: Demo, text: str) -> None:
    ngos, logins = [], {}
    for line in text.splitlines():
        url = _URL.search(line)
        if url:
            label = line[: url.start()].strip()
            name_ar, _, name_en = label.partition(" / ")
            ngos.append(DemoNgo(url=url.group(0), name_ar=name_ar.strip(), name_en=name_en.strip()))
        elif found := _LOGIN.match(line):
            logins[found.group("user")] = found.group("pw")
    demo.ngos, demo.logins = ngos, logins


def start_demo(directory: Path, *, households: int = HOUSEHOLDS) -> Demo:
    """Start ``watan demo`` in ``directory`` on free ports and wait for its "ready"
    line; parse its NGOs and logins."""
    log = directory.parent / f"{directory.name}.log"
    env = dict(os.environ, PYTHONPATH=str(REPO), PYTHONUNBUFFERED="1")
    env.pop("WATAN_DATABASE_URL", None)
    with log.open("wb") as out:
        process = subprocess.Popen(
            [
                *(sys.executable, "-m", "node.cli", "demo"),
                *("--dir", str(directory), "--base-port", str(free_base_port())),
                *("--households", str(households)),
            ],
            cwd=REPO,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    demo = Demo(process=process, log=log)
    deadline = time.monotonic() + READY_DEADLINE_S
    while not any(_READY.match(line) for line in demo.output().splitlines()):
        if process.poll() is not None:
            raise AssertionError(f"watan demo exited with {process.returncode}:\n{demo.output()}")
        if time.monotonic() > deadline:
            stop_demo(demo)
            raise AssertionError(f"watan demo not ready within the deadline:\n{demo.output()}")
        time.sleep(0.2)  # polling the log, bounded by the deadline above
    _parse(demo, demo.output())
    assert len(demo.ngos) >= 2 and all(n.name_ar and n.name_en for n in demo.ngos), demo.output()
    return demo


def stop_demo(demo: Demo) -> int:
    """SIGINT (Ctrl-C, as its banner says), then wait; returns the exit status."""
    if demo.process.poll() is None:
        demo.process.send_signal(signal.SIGINT)
    try:
        return demo.process.wait(timeout=STOP_DEADLINE_S)
    except subprocess.TimeoutExpired:
        demo.process.kill()
        demo.process.wait()
        raise
